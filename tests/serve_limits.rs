//! `vicuna serve` checks every request at the boundary (issue 10): sampling fields out of their
//! OpenAI/vLLM ranges, wrong JSON types and `n` > 1 are 400s naming the field; `max_tokens` of any
//! size is clamped to the context the prompt leaves (never a crash of the model worker); a prompt
//! over the model's context is a 400 with or without streaming, and a short request batched with
//! it still gets its answer. Loopback only, on the tiny model (2,048-token context).
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The tiny preset's `max_position_embeddings`.
const CONTEXT: u64 = 2048;

fn message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON error body: {body}"));
    v["error"]["message"].as_str().unwrap_or_else(|| panic!("an error message: {body}")).to_string()
}

#[test]
fn out_of_range_sampling_fields_n_and_wrong_types_are_400s_naming_the_field() {
    let s = Scratch::new();
    let server = LoggedServer::start(&tiny_model(&s), &["--default-max-tokens", "4"], ONE_THREAD);
    let served = &server.served;
    let agent = http_agent(Duration::from_secs(60));
    let bad: Vec<(&str, Value)> = vec![
        ("temperature", json!(-0.1)),
        ("temperature", json!(2.5)),
        ("temperature", json!(1e300)),
        ("temperature", json!("NaN")),
        ("temperature", json!("0.5")),
        ("top_p", json!(0)),
        ("top_p", json!(-0.5)),
        ("top_p", json!(1.01)),
        ("top_p", json!([1])),
        ("top_k", json!(-2)),
        ("top_k", json!(1.5)),
        ("top_k", json!("5")),
        ("repetition_penalty", json!(0)),
        ("repetition_penalty", json!(-1.2)),
        ("repetition_penalty", json!(true)),
        ("max_tokens", json!(0)),
        ("max_tokens", json!(-1)),
        ("max_tokens", json!(2.5)),
        ("max_tokens", json!("16")),
        ("max_tokens", json!(1e30)),
        ("max_completion_tokens", json!(0)),
        ("n", json!(2)),
        ("n", json!(0)),
        ("n", json!("1")),
        ("seed", json!("7")),
        ("stream", json!("yes")),
    ];
    for (field, value) in &bad {
        for stream in [false, true] {
            let mut body = chat_body("Name a color.", json!({ *field: value.clone() }));
            if *field != "stream" {
                body["stream"] = stream.into();
            }
            let (status, text) = post_chat(&agent, &served.base, &body);
            assert_eq!(status, 400, "{field} = {value} (stream {stream}) must be refused: {text}");
            let m = message(&text);
            assert!(m.contains(field), "{field} = {value}: the message names the field: {m}");
        }
    }
    // The edges of each range are accepted (top_k -1 is "off" as in vLLM).
    for extra in [
        json!({"temperature": 0}),
        json!({"temperature": 2, "seed": 3}),
        json!({"top_p": 1, "temperature": 1}),
        json!({"top_p": 1e-9, "temperature": 1}),
        json!({"top_k": -1, "temperature": 1}),
        json!({"top_k": 0}),
        json!({"repetition_penalty": 1e-3}),
        json!({"n": 1, "max_tokens": 1}),
        json!({"temperature": null, "top_p": null, "n": null, "max_tokens": null}),
    ] {
        let (status, text) = post_chat(&agent, &served.base, &chat_body("Name a color.", extra.clone()));
        assert_eq!(status, 200, "{extra} is valid: {text}");
    }
    // Wrong shapes of the request itself.
    for body in [
        json!([]),
        json!({"model": "m"}),
        json!({"messages": "hi"}),
        json!({"messages": [{"role": "user"}]}),
        json!({"messages": [{"role": 3, "content": "hi"}]}),
        json!({"messages": [{"role": "user", "content": 5}]}),
        json!({"messages": []}),
    ] {
        let (status, text) = post_chat(&agent, &served.base, &body);
        assert_eq!(status, 400, "{body}: {text}");
        assert!(message(&text).contains("messages"), "{body}: the message names the field: {text}");
    }
}

#[test]
fn huge_max_tokens_are_clamped_to_the_context_and_the_worker_keeps_serving() {
    // A 256-token context keeps answers that run to its end short.
    let s = Scratch::new();
    let server = LoggedServer::start(&tiny_model_with_context(&s, "model", 1, 256), &[], ONE_THREAD);
    let served = &server.served;
    let agent = http_agent(Duration::from_secs(60));
    for huge in [json!(1_000_000_000u64), json!(i64::MAX), json!(u64::MAX)] {
        for key in ["max_tokens", "max_completion_tokens"] {
            let (status, text) = post_chat(&agent, &served.base, &chat_body("Name a color.", json!({ key: huge })));
            assert_eq!(status, 200, "{key} = {huge}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            let (prompt, completion) =
                (v["usage"]["prompt_tokens"].as_u64().unwrap(), v["usage"]["completion_tokens"].as_u64().unwrap());
            assert!(prompt + completion <= 256, "{key} = {huge}: generation stays in the context: {text}");
        }
        // Streaming too: a complete stream.
        let body = chat_body("Name a color.", json!({"max_tokens": huge, "stream": true}));
        let (status, text) = post_chat(&agent, &served.base, &body);
        assert_eq!(status, 200, "stream, max_tokens = {huge}: {text}");
        assert!(text.trim_end().ends_with("data: [DONE]") && !text.contains("\"error\""), "{text}");
    }
    // A request that runs to the end of the context says so.
    let endless = tiny_model_with_context(&s, "endless", 2, 256);
    let server = LoggedServer::start(&endless, &[], ONE_THREAD);
    let served = &server.served;
    let (status, text) =
        post_chat(&agent, &served.base, &chat_body("Count to a million.", json!({"max_tokens": u64::MAX})));
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{text}");
    let total = v["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(total, 256, "generation fills the context exactly: {text}");
    let (status, text) = post_chat(&agent, &served.base, &chat_body("Hi", json!({"max_tokens": 3})));
    assert_eq!(status, 200, "the next request is answered: {text}");
}

#[test]
fn a_prompt_over_the_context_is_a_400_with_and_without_streaming() {
    let s = Scratch::new();
    let server = LoggedServer::start(&tiny_model(&s), &[], ONE_THREAD);
    let served = &server.served;
    let agent = http_agent(Duration::from_secs(60));
    for tokens in [CONTEXT as usize, 3000, 250_000] {
        for stream in [false, true] {
            let body = chat_body(&long_prompt(tokens), json!({"stream": stream, "max_tokens": 4}));
            let (status, text) = post_chat(&agent, &served.base, &body);
            assert_eq!(status, 400, "a prompt of about {tokens} tokens (stream {stream}): {text}");
            let m = message(&text);
            assert!(m.contains("context") && m.contains("2048"), "the message names the context: {m}");
        }
    }
    // A prompt that leaves room for a few tokens gets them, and no more.
    let prompt = long_prompt(CONTEXT as usize - 40);
    let (status, text) = post_chat(&agent, &served.base, &chat_body(&prompt, json!({"max_tokens": 1000})));
    assert_eq!(status, 200, "{}", &text[..text.len().min(500)]);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() <= CONTEXT, "{}", v["usage"]);
}

#[test]
fn a_short_request_batched_with_a_prompt_over_the_context_still_gets_its_answer() {
    let s = Scratch::new();
    // Seed 2 does not stop early, so the first request keeps the worker busy while the other two
    // queue up and would form one (left-padded) batch.
    let model = tiny_model_named(&s, "busy", 2);
    let server = LoggedServer::start(&model, &["--max-batch", "8"], ONE_THREAD);
    let served = &server.served;
    let agent = http_agent(Duration::from_secs(120));
    std::thread::scope(|scope| {
        let busy = scope
            .spawn(|| post_chat(&agent, &served.base, &chat_body("Count to a million.", json!({"max_tokens": 1500}))));
        std::thread::sleep(Duration::from_millis(300));
        let long = scope
            .spawn(|| post_chat(&agent, &served.base, &chat_body(&long_prompt(250_000), json!({"max_tokens": 8}))));
        let short =
            scope.spawn(|| post_chat(&agent, &served.base, &chat_body("Name a color.", json!({"max_tokens": 8}))));
        let (status, text) = long.join().unwrap();
        assert_eq!(status, 400, "the prompt over the context is refused: {}", &text[..text.len().min(500)]);
        let (status, text) = short.join().unwrap();
        assert_eq!(status, 200, "the short request is answered: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1, "{text}");
        assert_eq!(busy.join().unwrap().0, 200);
    });
}
