//! `prep convert --from FORMAT`: every dataset format converts its fixture (small records written
//! for the project from each dataset's published schema, under tests/fixtures/sources/) to the
//! committed golden conversations, byte for byte; bad records are counted by reason, and
//! `--strict` stops at the first one with a message naming the file, the record and the field.
mod common;
use common::*;
use serde_json::json;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/sources").join(name)
}

/// Converts the fixture `name` with `args` into a scratch file; returns the output and the report.
fn convert(s: &Scratch, name: &str, args: &[&str]) -> (String, serde_json::Value) {
    convert_file(s, &fixture(name), args)
}

/// Converts `input` with `args` into a scratch file; returns the output and the report.
fn convert_file(s: &Scratch, input: &std::path::Path, args: &[&str]) -> (String, serde_json::Value) {
    let out = s.path("out.jsonl");
    let mut all = vec!["prep", "convert", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let report = serde_json::from_str(&ok(&all)).expect("report JSON");
    (std::fs::read_to_string(&out).expect("output written"), report)
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("golden file")
}

#[test]
fn every_source_converts_to_its_golden_conversations() {
    // (--from, fixture, golden, drops by reason, conversations written, counters)
    let cases = [
        ("dolly", "dolly", json!({"not_an_object": 1, "bad_field": 2, "empty_text": 1}), 2, json!(null)),
        ("oig", "oig", json!({"bad_field": 1, "bad_transcript": 2}), 3, json!(null)),
        ("hc3", "hc3", json!({"bad_field": 1, "empty_text": 1}), 4, json!({"empty_answers": 1})),
        ("hh-rlhf", "hh_rlhf", json!({"bad_field": 1, "bad_transcript": 1, "preference_tie": 1}), 2, json!(null)),
        ("webgpt-comparisons", "webgpt", json!({"bad_field": 1, "empty_text": 1, "preference_tie": 1}), 2, json!(null)),
        ("summarize-comparisons", "summarize", json!({"bad_field": 2}), 2, json!(null)),
        ("alpaca", "alpaca", json!({}), 2, json!(null)),
        ("openai-messages", "openai_messages", json!({"bad_field": 1}), 2, json!(null)),
    ];
    for (from, name, dropped, written, counters) in cases {
        let s = Scratch::new();
        let (out, report) = convert(&s, &format!("{name}.jsonl"), &["--from", from]);
        assert_eq!(out, golden(&format!("{name}.golden.jsonl")), "--from {from}");
        assert_eq!(report["dropped"], dropped, "--from {from}: {report}");
        assert_eq!(report["written"], written, "--from {from}: {report}");
        assert_eq!(report["counters"], counters, "--from {from}: {report}");
    }
}

#[test]
fn golden_values_spelled_out() {
    // The goldens are reviewed by hand; these pin the rules they follow, so a regenerated golden
    // cannot quietly change them.
    let s = Scratch::new();
    let (out, _) = convert(&s, "oig.jsonl", &["--from", "oig"]);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        json!({"id": "oig_0", "conversations": [{"from": "human", "value": "What is the capital of France?"}, {"from": "gpt", "value": "Paris is the capital of France."}], "metadata": {"source": "unified_chip2"}})
    );
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(turns(&records[1]).len(), 4, "OIG turns split at every line-start marker");
    assert_eq!(turns(&records[1])[3].1, "2 is the only even prime.\nIt is also the smallest prime.");
    assert_eq!(turns(&records[2])[0].1, "What does the tag <bot>: mean in OIG?", "a marker mid-line is text");

    let (out, _) = convert(&s, "hc3.jsonl", &["--from", "hc3"]);
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let origins: Vec<(&str, &str)> =
        records.iter().map(|r| (r["id"].as_str().unwrap(), r["answer_origin"].as_str().unwrap())).collect();
    assert_eq!(
        origins,
        [
            ("hc3_0_human_0", "human"),
            ("hc3_0_chatgpt_0", "chatgpt"),
            ("hc3_1_human_0", "human"),
            ("hc3_1_human_1", "human")
        ]
    );
    assert_eq!(records[0]["source_id"], "0", "the record's own id is kept");
    assert_eq!(records[0]["source"], "reddit_eli5");

    let (out, _) = convert(&s, "webgpt.jsonl", &["--from", "webgpt-comparisons"]);
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(turns(&records[0])[1].1, "Cats purr by vibrating the muscles of the larynx [1].", "score_0 > score_1");
    assert_eq!(turns(&records[1])[1].1, "About 384,400 km on average [1].", "score_1 > score_0");

    let (out, _) = convert(&s, "summarize.jsonl", &["--from", "summarize-comparisons"]);
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(turns(&records[1])[1].1, "The council approved a Main Street bike lane.", "choice 1");
}

#[test]
fn preference_sources_keep_both_answers_with_markers() {
    for (from, name) in
        [("hh-rlhf", "hh_rlhf"), ("webgpt-comparisons", "webgpt"), ("summarize-comparisons", "summarize")]
    {
        let s = Scratch::new();
        let (out, report) =
            convert(&s, &format!("{name}.jsonl"), &["--from", from, "--preference", "both-conditioned"]);
        assert_eq!(out, golden(&format!("{name}.both.golden.jsonl")), "--from {from}");
        assert_eq!(report["written"], 4, "two comparisons kept, two conversations each: {report}");
    }
    // The markers are the system prompts, and can be chosen.
    let s = Scratch::new();
    let (out, _) = convert(
        &s,
        "hh_rlhf.jsonl",
        &[
            "--from",
            "hh-rlhf",
            "--preference",
            "both-conditioned",
            "--positive-marker",
            "good",
            "--negative-marker",
            "bad",
        ],
    );
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sides: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["system"].as_str().unwrap(), r["preference"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sides,
        [
            ("hh_rlhf_0_preferred", "good", "preferred"),
            ("hh_rlhf_0_rejected", "bad", "rejected"),
            ("hh_rlhf_1_preferred", "good", "preferred"),
            ("hh_rlhf_1_rejected", "bad", "rejected"),
        ]
    );
    // The multi-turn comparison shares its prefix and differs in the last answer only.
    assert_eq!(turns(&records[2])[..3], turns(&records[3])[..3]);
    assert_eq!(turns(&records[2])[3].1, "Try Dune by Frank Herbert.");
    assert_eq!(turns(&records[3])[3].1, "No.");
}

#[test]
fn strict_stops_at_a_bad_record_naming_the_field() {
    let cases = [
        ("dolly", r#"{"instruction": "q", "context": ""}"#, "bad_field: `response` is missing"),
        ("dolly", r#"{"instruction": " ", "response": "a"}"#, "empty_text: `instruction` is empty"),
        (
            "oig",
            r#"{"text": "Intro\n<human>: hi\n<bot>: yo"}"#,
            "bad_transcript: `text` has text before its first `<human>:`",
        ),
        (
            "oig",
            r#"{"text": "<human>: hi\n<bot>: yo\n<human>: more"}"#,
            "bad_transcript: `text` ends with a human turn, without an answer",
        ),
        (
            "hc3",
            r#"{"question": "q", "human_answers": "a", "chatgpt_answers": []}"#,
            "bad_field: `human_answers` is not a list of strings",
        ),
        (
            "hh-rlhf",
            r#"{"chosen": "\n\nHuman: hi\n\nHuman: again\n\nAssistant: x", "rejected": "\n\nHuman: hi\n\nAssistant: y"}"#,
            "bad_transcript: `chosen` turn 1 is `Human:` where the speakers should alternate",
        ),
        (
            "hh-rlhf",
            r#"{"chosen": "\n\nHuman: hi\n\nAssistant: x", "rejected": "\n\nHuman: hi\n\nAssistant: "}"#,
            "bad_transcript: `rejected` turn 1 (`Assistant:`) is empty",
        ),
        (
            "webgpt-comparisons",
            r#"{"question": {"full_text": "q"}, "answer_0": "a", "answer_1": "b", "score_0": 1, "score_1": "high"}"#,
            "bad_field: `score_1` is not a number",
        ),
        (
            "webgpt-comparisons",
            r#"{"question": "q", "answer_0": "a", "answer_1": "b", "score_0": 1, "score_1": -1}"#,
            "bad_field: `question` is not an object",
        ),
        (
            "summarize-comparisons",
            r#"{"info": {"post": "p", "title": "t"}, "summaries": [{"text": "a"}, {"text": "b"}], "choice": 2}"#,
            "bad_field: `choice` is not 0 or 1",
        ),
        (
            "summarize-comparisons",
            r#"{"info": {"post": "p"}, "summaries": [{"text": "a"}], "choice": 0}"#,
            "bad_field: `summaries` has 1 items where a comparison has 2",
        ),
        ("openai-messages", r#"{"conversations": []}"#, "bad_field: `messages` is missing"),
    ];
    for (from, record, detail) in cases {
        let s = Scratch::new();
        let input = s.write("in.jsonl", &format!("{record}\n"));
        let out = s.path("out.jsonl");
        let stderr = fails(&[
            "prep",
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--from",
            from,
            "--strict",
        ]);
        assert_eq!(
            stderr.trim_end(),
            format!(
                "error: {}: record 0 at byte offset 0 is malformed ({detail}); fix the record or run without --strict to skip it",
                input.display()
            ),
            "--from {from}"
        );
        assert!(!out.exists(), "no output after a fatal record");
        // Without --strict the same record is counted and skipped.
        let (_, report) = convert_file(&s, &input, &["--from", from]);
        let reason = detail.split(':').next().unwrap();
        assert_eq!(report["dropped"], json!({reason: 1}), "--from {from}");
    }
}

#[test]
fn preference_flags_need_a_source() {
    let s = Scratch::new();
    let input = fixture("hh_rlhf.jsonl");
    let out = s.path("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let stderr = fails(&["prep", "convert", i, "-o", o, "--preference", "both-conditioned"]);
    assert!(stderr.contains("the following required arguments were not provided:\n  --from <FROM>"), "{stderr}");
    let stderr = fails(&["prep", "convert", i, "-o", o, "--positive-marker", "good"]);
    assert!(stderr.contains("--from <FROM>"), "{stderr}");
}

#[test]
fn ties_are_counted_not_fatal_under_strict() {
    let s = Scratch::new();
    let (_, report) = convert(&s, "webgpt.jsonl", &["--from", "webgpt-comparisons"]);
    assert_eq!(report["dropped"]["preference_tie"], 1);
    let input = s.write(
        "tie.jsonl",
        "{\"question\": {\"full_text\": \"q\"}, \"answer_0\": \"a\", \"answer_1\": \"b\", \"score_0\": 0.0, \"score_1\": 0.0}\n",
    );
    let (out, report) = convert_file(&s, &input, &["--from", "webgpt-comparisons", "--strict"]);
    assert_eq!(report["dropped"], json!({"preference_tie": 1}));
    assert_eq!(out, "");
}

#[test]
fn text_report_shows_conversations_written_and_counters() {
    let s = Scratch::new();
    let out = s.path("out.jsonl");
    let input = fixture("hc3.jsonl");
    let text = ok(&["prep", "convert", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--from", "hc3"]);
    assert_eq!(
        text,
        "convert: 4 records in, 2 out, 2 dropped, 4 written\n  bad_field                      1\n  empty_text                     1\nalso counted:\n  empty_answers                  1\n"
    );
}
