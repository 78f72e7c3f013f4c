//! What every stage may use: atomic file output and output checks, exclusive locks, the seeded
//! random number generator, progress bars and API keys from the environment. Depends on no other
//! module of the crate.
pub mod atomic;
pub mod lock;
pub mod progress;
pub mod rng;
pub mod secret;

/// The JSON type of `value` in words ("a string", "an integer", "an array"...), for messages that
/// say what a field holds instead of what was expected.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Test hook: sleeps for the milliseconds in the environment variable `var`, when set, so that a
/// test can signal or kill a process at a point it can observe (`VICUNA_TEST_SAVE_DELAY_MS` after
/// each checkpoint file, `VICUNA_TEST_STEP_DELAY_MS` after each micro-step). Unset, it costs one
/// environment lookup.
pub fn pause_for_tests(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
