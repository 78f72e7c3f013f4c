//! API keys from the environment, for the judge's client and the server's bearer check: the key
//! is named by a variable (`--api-key-env VAR`), never given on the command line where `ps` and
//! shell histories would show it.

/// The key in variable `var`: `None` when `var` is empty (an endpoint declared keyless, `--api-key-env
/// ''`); an error naming the flag when the variable is unset or empty.
pub fn key_from_env(var: &str) -> anyhow::Result<Option<String>> {
    if var.is_empty() {
        return Ok(None);
    }
    match std::env::var(var) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ => anyhow::bail!(
            "--api-key-env {var}: the variable is not set (or empty); export the key in it, or pass --api-key-env '' for an endpoint that needs no key"
        ),
    }
}
