//! The judge's HTTP client against a local server that fails on purpose: it retries 429 (waiting
//! as `Retry-After` says), 500, a response slower than the timeout and a dropped connection, then
//! succeeds; it gives up at once on other 4xx, with the server's message.
mod common;
use common::*;
use std::time::{Duration, Instant};
use vicuna::eval::client::{Client, ClientOptions, Message};

fn client(base: &str, retries: u32) -> Client {
    Client::new(ClientOptions {
        api_base: base.to_string(),
        api_key: Some("sk-test".into()),
        timeout: Duration::from_millis(400),
        max_retries: retries,
        backoff: Duration::from_millis(10),
    })
}

fn ask(c: &Client) -> anyhow::Result<vicuna::eval::client::Completion> {
    c.chat("judge", &[Message { role: "user".into(), content: "Which is better?".into() }], 0.0, 16)
}

#[test]
fn retries_rate_limits_errors_timeouts_and_dropped_connections() {
    let server = FaultServer::start(
        vec![
            Fault::Status(429, "{\"error\": \"slow down\"}".into(), Some(0.3)),
            Fault::Status(500, "{}".into(), None),
            Fault::Slow(Duration::from_millis(900), completion("too late")),
            Fault::Drop,
            Fault::Status(200, completion("[[A]]"), None),
        ],
        Duration::from_secs(20),
    );
    let start = Instant::now();
    let done = ask(&client(&server.base, 6)).unwrap();
    assert_eq!(done.text, "[[A]]");
    assert_eq!(done.attempts, 5);
    assert_eq!(server.count(), 5);
    assert!(start.elapsed() >= Duration::from_millis(300), "Retry-After was honoured");
}

#[test]
fn client_errors_are_not_retried_and_retries_run_out() {
    let server = FaultServer::start(
        vec![Fault::Status(401, "{\"error\": {\"message\": \"bad key\"}}".into(), None)],
        Duration::from_secs(10),
    );
    let err = ask(&client(&server.base, 5)).unwrap_err().to_string();
    assert_eq!(err, format!("{}/chat/completions: HTTP 401: {{\"error\": {{\"message\": \"bad key\"}}}}", server.base));
    assert_eq!(server.count(), 1);
    assert!(!err.contains("sk-test"), "the key never appears in messages");

    let server = FaultServer::start(vec![Fault::Status(503, "busy".into(), Some(0.01))], Duration::from_secs(10));
    let err = ask(&client(&server.base, 2)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}/chat/completions: giving up after 3 attempts; last error: HTTP 503: busy", server.base)
    );
    assert_eq!(server.count(), 3);
}

/// Regression: a `Retry-After` of -1, inf or NaN from the endpoint panicked inside
/// `Duration::from_secs_f64` and took the judge run down; such hints are ignored now (a huge
/// finite one is capped at the client's 120 s, as before).
#[test]
fn absurd_retry_after_headers_are_ignored_not_fatal() {
    for hint in [-1.0, f64::INFINITY, f64::NAN] {
        let server = FaultServer::start(
            vec![Fault::Status(429, "{}".into(), Some(hint)), Fault::Status(200, completion("[[B]]"), None)],
            Duration::from_secs(10),
        );
        let start = Instant::now();
        let done = ask(&client(&server.base, 3)).unwrap();
        assert_eq!(done.text, "[[B]]", "Retry-After {hint}");
        assert!(start.elapsed() < Duration::from_secs(5), "Retry-After {hint} made it wait {:?}", start.elapsed());
    }
}

/// A key echoed in an error body is redacted before the body is clipped for the message, so a
/// key that straddles the clip never shows in part.
#[test]
fn a_key_straddling_the_clip_of_an_error_body_is_not_shown_in_part() {
    let body = format!("{}sk-test", "x".repeat(296));
    let server = FaultServer::start(vec![Fault::Status(400, body, None)], Duration::from_secs(10));
    let err = ask(&client(&server.base, 0)).unwrap_err().to_string();
    assert!(!err.contains("sk-t"), "{err}");
}
