//! `vicuna serve` survives what goes wrong inside it (issue 10): a panic while generating one
//! batch answers that batch's requests with 500, is counted in the log, and the next request is
//! served; `/health` says when the model worker is gone (and requests then fail at once instead
//! of hanging); a streaming client that disconnects frees the model at its next token. The panics
//! are injected with the test-only variables `VICUNA_TEST_PANIC_ON_PROMPT` and
//! `VICUNA_TEST_KILL_WORKER_ON_PROMPT` (see `src/eval/serve.rs`). Loopback only.
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

fn health(agent: &ureq::Agent, base: &str) -> u16 {
    let url = format!("{}/health", base.trim_end_matches("/v1"));
    agent.get(&url).call().map(|r| r.status().as_u16()).unwrap_or(0)
}

#[test]
fn a_panic_in_one_batch_answers_500_and_the_worker_keeps_serving() {
    let s = Scratch::new();
    let server = LoggedServer::start(
        &tiny_model(&s),
        &["--max-batch", "4"],
        &[("VICUNA_TEST_PANIC_ON_PROMPT", "boom"), ONE_THREAD[0]],
    );
    let base = server.served.base.clone();
    let agent = http_agent(Duration::from_secs(30));
    for round in 1..=3 {
        for stream in [false, true] {
            let (status, text) =
                post_chat(&agent, &base, &chat_body("boom", json!({"stream": stream, "max_tokens": 4})));
            if stream {
                // The stream had started: it ends with an error event instead of a finish reason.
                assert_eq!(status, 200, "{text}");
                assert!(text.contains("\"error\"") && text.trim_end().ends_with("data: [DONE]"), "{text}");
            } else {
                assert_eq!(status, 500, "the panicking batch answers 500: {text}");
            }
            let (status, text) = post_chat(&agent, &base, &chat_body("Name a color.", json!({"max_tokens": 4})));
            assert_eq!(status, 200, "round {round}: the next request is served: {text}");
        }
        assert_eq!(health(&agent, &base), 200, "the worker is alive");
        let count = (round - 1) * 2 + 2;
        let line = server.wait_for_log(&format!("{count} so far"), Duration::from_secs(5));
        assert!(line.is_some(), "the log counts panicked batches ({count}):\n{}", server.log_text());
    }
}

#[test]
fn health_is_unhealthy_and_requests_fail_fast_once_the_worker_is_gone() {
    let s = Scratch::new();
    let server =
        LoggedServer::start(&tiny_model(&s), &[], &[("VICUNA_TEST_KILL_WORKER_ON_PROMPT", "die"), ONE_THREAD[0]]);
    let base = server.served.base.clone();
    let agent = http_agent(Duration::from_secs(30));
    assert_eq!(health(&agent, &base), 200);
    let (status, text) = post_chat(&agent, &base, &chat_body("die", json!({"max_tokens": 4})));
    assert!(status >= 500, "the request whose batch killed the worker fails: {status} {text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(&agent, &base) == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(health(&agent, &base), 503, "/health reports the dead worker");
    let start = Instant::now();
    let (status, text) = post_chat(&agent, &base, &chat_body("Name a color.", json!({"max_tokens": 4})));
    assert_eq!(status, 503, "{text}");
    assert!(start.elapsed() < Duration::from_secs(2), "refused at once, not after a wait: {:?}", start.elapsed());
    assert!(text.contains("worker"), "{text}");
}

/// Sends a streaming request on a raw connection, reads until the first content chunk and
/// closes the connection: a client that goes away mid-answer.
fn stream_then_disconnect(base: &str, body: &Value) {
    let addr = base.trim_start_matches("http://").trim_end_matches("/v1");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended before any content");
        if line.contains("\"content\"") {
            break;
        }
    }
    stream.shutdown(std::net::Shutdown::Both).unwrap();
}

#[test]
fn a_disconnected_stream_frees_the_model_at_its_next_token() {
    let s = Scratch::new();
    // Seed 2 never stops on its own; a 65,536-token context lets it run for a long time.
    let model = tiny_model_with_context(&s, "endless", 2, 65_536);
    let server = LoggedServer::start(&model, &["--max-batch", "1"], ONE_THREAD);
    let base = server.served.base.clone();
    let agent = http_agent(Duration::from_secs(20));
    let request = chat_body("Count to a million.", json!({"max_tokens": 40_000, "stream": true}));
    stream_then_disconnect(&base, &request);
    let start = Instant::now();
    let (status, text) = post_chat(&agent, &base, &chat_body("Name a color.", json!({"max_tokens": 8})));
    assert_eq!(status, 200, "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the next request waited {:?}: the model kept generating for a client that had left",
        start.elapsed()
    );
    let line = server.wait_for_log("disconnected", Duration::from_secs(2));
    let line = line.unwrap_or_else(|| panic!("the log says the client left:\n{}", server.log_text()));
    // "... after N tokens": far fewer than the 40,000 asked for.
    let tokens: usize = line
        .split("after ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the log line counts tokens: {line}"));
    assert!(tokens < 2_000, "{line}");
    // Twice more, to be sure the slot is really free each time.
    for _ in 0..2 {
        stream_then_disconnect(&base, &request);
        let start = Instant::now();
        let (status, _) = post_chat(&agent, &base, &chat_body("Hi", json!({"max_tokens": 4})));
        assert_eq!(status, 200);
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    }
}
