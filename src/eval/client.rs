//! A client for any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, FastChat's server,
//! `vicuna serve`), made for long judge runs: a timeout per request, retries with exponential
//! backoff on transport errors, 429 and 5xx (honouring `Retry-After`), and a clear error for the
//! requests that cannot succeed (other 4xx). The API key is sent, never printed or logged: an
//! endpoint may echo it (in an error body, or a proxy in a reply), so every text the client
//! returns, error or completion, has it replaced by `<redacted>` ([`Client::redact`]).
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// Connection and retry settings.
#[derive(Clone)]
pub struct ClientOptions {
    /// Base URL up to `/v1` (e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`).
    pub api_base: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff; it doubles on each retry, up to 30 s.
    pub backoff: Duration,
}

impl ClientOptions {
    /// Options with the default backoff (half a second, doubling on each retry).
    pub fn new(api_base: String, api_key: Option<String>, timeout: Duration, max_retries: u32) -> ClientOptions {
        ClientOptions { api_base, api_key, timeout, max_retries, backoff: Duration::from_millis(500) }
    }
}

impl std::fmt::Debug for ClientOptions {
    /// The key never appears in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("api_base", &self.api_base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// A reusable client (its connection pool is shared by all threads that clone it).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    options: ClientOptions,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The parts of a completion a judge needs.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    /// Attempts it took (1 when the first one succeeded).
    pub attempts: u32,
}

impl Client {
    /// A client for `options`.
    pub fn new(options: ClientOptions) -> Client {
        let config =
            ureq::Agent::config_builder().timeout_global(Some(options.timeout)).http_status_as_error(false).build();
        Client { agent: config.into(), options }
    }

    /// Sends one Chat Completions request, retrying what can be retried.
    pub fn chat(&self, model: &str, messages: &[Message], temperature: f64, max_tokens: usize) -> Result<Completion> {
        let url = format!("{}/chat/completions", self.options.api_base.trim_end_matches('/'));
        let body = json!({"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens});
        let mut backoff = self.options.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.agent.post(&url).header("content-type", "application/json");
            if let Some(key) = &self.options.api_key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let wait = match request.send_json(&body) {
                Err(e) => Retry::After(None, format!("{e}")),
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        // An endpoint's header is not trusted: NaN, negative or huge waits would
                        // panic in Duration (or stall); anything else is capped below anyway.
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s.min(120.0)));
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    match status {
                        200..=299 => match completion_text(&text) {
                            Some(text) => return Ok(Completion { text: self.redact(&text), attempts: attempt }),
                            None => Retry::After(
                                None,
                                format!("HTTP {status} with an unreadable body: {}", clip(&self.redact(&text))),
                            ),
                        },
                        429 | 500..=599 => {
                            Retry::After(retry_after, format!("HTTP {status}: {}", clip(&self.redact(&text))))
                        }
                        _ => Retry::Never(format!("HTTP {status}: {}", clip(&self.redact(&text)))),
                    }
                }
            };
            match wait {
                Retry::Never(message) => bail!(self.redact(&format!("{url}: {message}"))),
                Retry::After(_, message) if attempt > self.options.max_retries => {
                    bail!(self.redact(&format!("{url}: giving up after {attempt} attempts; last error: {message}")))
                }
                Retry::After(hint, _) => {
                    std::thread::sleep(hint.unwrap_or(backoff).min(Duration::from_secs(120)));
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

impl Client {
    /// `text` with the API key replaced by `<redacted>`, as sent and as JSON escapes it, so that
    /// nothing printed or written (errors, warnings, judgment records) carries the key even when
    /// the endpoint echoes it back. Text is returned unchanged when there is no key.
    pub fn redact(&self, text: &str) -> String {
        let Some(key) = self.options.api_key.as_deref().filter(|k| !k.is_empty()) else {
            return text.to_string();
        };
        let mut text = text.replace(key, "<redacted>");
        let escaped = serde_json::to_string(key).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if !escaped.is_empty() && escaped != key {
            text = text.replace(escaped, "<redacted>");
        }
        text
    }
}

enum Retry {
    /// Retry after the server's hint, or the current backoff.
    After(Option<Duration>, String),
    Never(String),
}

fn completion_text(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.get("choices")?.get(0)?.get("message")?.get("content")?.as_str().map(str::to_string)
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(key: Option<&str>) -> Client {
        Client::new(ClientOptions {
            api_base: "http://127.0.0.1:9/v1".into(),
            api_key: key.map(str::to_string),
            timeout: Duration::from_secs(1),
            max_retries: 0,
            backoff: Duration::from_millis(1),
        })
    }

    #[test]
    fn redact_hides_the_key_as_sent_and_json_escaped() {
        let c = client(Some("sk-\"abc\"/1"));
        assert_eq!(c.redact("key sk-\"abc\"/1 and again sk-\"abc\"/1"), "key <redacted> and again <redacted>");
        assert_eq!(c.redact(r#"{"echo": "sk-\"abc\"/1"}"#), r#"{"echo": "<redacted>"}"#);
        assert_eq!(client(None).redact("sk-abc"), "sk-abc");
        assert_eq!(client(Some("")).redact("sk-abc"), "sk-abc");
    }
}
