//! What `vicuna eval judge` tells the user when the endpoint misbehaves: an endpoint that echoes
//! the API key (in an error body or in a reply) never gets it printed or written, a repeated error
//! is printed once with its count, and a run whose key variable is unset stops before any request
//! unless the endpoint is declared keyless (`--api-key-env ''`).
mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// A pairwise judge run of two models (six judgments) against `base`, one request at a time.
fn judge_args(s: &Scratch, base: &str, out: &Path, key_env: &str) -> Vec<String> {
    common::judge_args(s, base, out, &["--api-key-env", key_env, "--concurrency", "1", "--max-retries", "1"])
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn an_echoed_key_never_leaks_and_a_repeated_error_is_printed_once_with_its_count() {
    let key = "sk-test-Secret0123456789abcdef";
    let s = Scratch::new();
    // The first judgment's two games get replies that quote the key; every later request gets a
    // 401 whose body quotes it, as some proxies do.
    let server = FaultServer::start(
        vec![
            Fault::Status(200, completion(&format!("[[A]] (request signed with {key})")), None),
            Fault::Status(200, completion(&format!("Authorization: Bearer {key}. [[B]]")), None),
            Fault::Status(
                401,
                serde_json::json!({"error": {"message": format!("Incorrect API key provided: {key}")}}).to_string(),
                None,
            ),
        ],
        Duration::from_secs(60),
    );
    let out = s.path("judgments.jsonl");
    let args = judge_args(&s, &server.base, &out, "VICUNA_TEST_JUDGE_KEY");
    let run = vicuna_env(&strs(&args), &[("VICUNA_TEST_JUDGE_KEY", key)]);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!run.status.success(), "five judgments failed");
    assert_no_panic(&stderr);
    assert!(!stderr.contains(key) && !stderr.contains("Secret0123"), "the key leaked to stderr:\n{stderr}");
    assert!(!stdout.contains(key), "the key leaked to stdout:\n{stdout}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(!written.contains(key), "the key leaked into the judgment file:\n{written}");
    let records = read_records(&out);
    assert_eq!(records.len(), 1);
    assert!(records[0]["judgment_text"].as_str().unwrap().contains("[[A]] (request signed with"));
    assert_eq!(server.count(), 2 + 5, "a 401 is not retried");

    // The same error five times: printed once, with its count.
    assert_eq!(stderr.matches("Incorrect API key provided").count(), 1, "printed once:\n{stderr}");
    assert!(stderr.contains("5 judgments failed with"), "with its count:\n{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
}

#[test]
fn judge_without_its_key_variable_stops_before_any_request_unless_keyless() {
    let s = Scratch::new();
    let server = FaultServer::start(vec![Fault::Status(200, completion("[[A]]"), None)], Duration::from_secs(60));
    let out = s.path("judgments.jsonl");
    let unset = "VICUNA_TEST_UNSET_JUDGE_KEY";
    let err = fails(&strs(&judge_args(&s, &server.base, &out, unset)));
    assert!(err.contains(&format!("--api-key-env {unset}")) && err.contains("not set"), "{err}");
    assert!(err.contains("--api-key-env ''"), "the message says how to run keyless: {err}");
    assert_eq!(server.count(), 0, "nothing was sent");
    assert!(!out.exists(), "nothing was written");

    // The same variable set but empty is no key either.
    let run = vicuna_env(&strs(&judge_args(&s, &server.base, &out, unset)), &[(unset, "")]);
    assert!(!run.status.success());
    assert_eq!(server.count(), 0);

    // A keyless endpoint, declared so.
    ok(&strs(&judge_args(&s, &server.base, &out, "")));
    assert_eq!(server.count(), 12);
    assert_eq!(read_records(&out).len(), 6);
}
