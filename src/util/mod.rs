//! What every stage may use: atomic file output and output checks, exclusive locks, the seeded
//! random number generator, progress bars, API keys from the environment and the peak RSS. Depends on no other
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

/// Peak resident memory of this process so far (VmHWM of /proc/self/status), in bytes; 0 where the
/// kernel does not report it. Training logs it per step; `model delta` prints it to show that a
/// streamed pass held about one shard.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// Resident memory of this process now (VmRSS), in bytes; 0 where the kernel does not report it.
/// Read before the work starts, it tells how much of the peak is the libraries themselves.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// A size line (`KEY: N kB`) of /proc/self/status, in bytes.
fn proc_status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
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
