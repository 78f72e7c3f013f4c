//! `vicuna eval judge` against a local server that fails on purpose (429 with Retry-After, 500, a
//! response slower than the timeout, a dropped connection): it retries, finishes, loses no
//! judgment, and a rerun of the same command sends no request.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn judge_survives_faults_and_a_rerun_asks_nothing() {
    let s = Scratch::new();
    let server = FaultServer::start(
        vec![
            Fault::Status(429, "{\"error\": \"rate limited\"}".into(), Some(0.2)),
            Fault::Status(200, completion("Assistant A is better. [[A]]"), None),
            Fault::Status(500, "{}".into(), None),
            Fault::Status(200, completion("[[B]]"), None),
            Fault::Slow(Duration::from_millis(1500), completion("[[A]]")),
            Fault::Drop,
            Fault::Status(200, completion("Both are equal. [[C]]"), None),
        ],
        Duration::from_secs(60),
    );
    let out = s.path("judgments.jsonl");
    let extra = ["--api-key-env", "", "--timeout", "0.5", "--max-retries", "5", "--concurrency", "2", "--json"];
    let args = judge_args(&s, &server.base, &out, &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let summary: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        (summary["planned"].as_u64(), summary["written"].as_u64(), summary["failed"].as_u64()),
        (Some(6), Some(6), Some(0)),
        "{summary}"
    );
    assert_eq!(summary["requests"], 12, "two games (one swapped) per judgment");
    let sent = server.count();
    assert!(sent >= 12 + 4, "the four faults were retried: {sent} requests");
    let records = read_records(&out);
    assert_eq!(records.len(), 6);
    assert!(
        records
            .iter()
            .all(|r| r["verdict"].get("unparsed").is_none() && r["swapped_verdict"].get("unparsed").is_none()),
        "every verdict was read"
    );

    let again: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        (again["skipped"].as_u64(), again["written"].as_u64(), again["requests"].as_u64()),
        (Some(6), Some(0), Some(0))
    );
    assert_eq!(server.count(), sent, "the rerun sent nothing");
    assert_eq!(read_records(&out).len(), 6, "nothing was written twice");
}
