//! `vicuna serve` under load: 32 concurrent streaming clients all get complete streams within a
//! bounded time, and requests beyond the queue get HTTP 503 with Retry-After (loopback only).
mod common;
use common::*;
use std::time::{Duration, Instant};

fn stream_request(base: &str, max_tokens: u32) -> (u16, String, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();
    let body = serde_json::json!({"model": "x", "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": max_tokens, "stream": true});
    let mut response = agent.post(&format!("{base}/chat/completions")).send_json(&body).unwrap();
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, response.body_mut().read_to_string().unwrap_or_default(), retry)
}

#[test]
fn thirty_two_streaming_clients_then_503_beyond_the_queue() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let served = Served::start(&model, &["--queue", "64", "--max-batch", "16"]);
    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32).map(|_| scope.spawn(|| stream_request(&served.base, 16))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(start.elapsed() < Duration::from_secs(60), "32 streams took {:?}", start.elapsed());
    for (status, body, _) in &results {
        assert_eq!(*status, 200, "{body}");
        assert!(body.starts_with("data: {") && body.trim_end().ends_with("data: [DONE]"), "a complete stream: {body}");
        assert!(body.contains("\"finish_reason\":\"stop\"") || body.contains("\"finish_reason\":\"length\""));
    }
    drop(served);

    // A queue of 2 and one request at a time: a burst of 12 overflows it.
    let served = Served::start(&model, &["--queue", "2", "--max-batch", "1"]);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12).map(|_| scope.spawn(|| stream_request(&served.base, 64))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(
        !busy.is_empty(),
        "some requests must be turned away: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(busy.iter().all(|r| r.2.as_deref() == Some("1") && r.1.contains("queue is full")));
    assert!(results.iter().all(|r| r.0 == 200 || r.0 == 503));
}
