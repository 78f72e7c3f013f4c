//! Bad input to `vicuna prep`: exact error messages naming file, record and byte offset, skipped
//! and counted records, `--strict`, and no output (not even a partial one) when a run fails.
mod common;
use common::*;

#[test]
fn malformed_json_array_names_file_record_and_offset() {
    let s = Scratch::new();
    let input =
        s.write("bad.json", "[{\"id\": \"a\", \"conversations\": []},\n {\"id\": \"b\" \"conversations\": []}]");
    let out = s.path("out.json");
    let err = fails(&["prep", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(
        err.trim(),
        format!("error: {}: malformed JSON in record 1 at byte offset 47: expected `,` or `}}`", input.display())
    );
    assert!(!out.exists(), "a failed run must not leave output");
}

#[test]
fn truncated_json_array_is_reported() {
    let s = Scratch::new();
    let input = s.write("cut.json", "[{\"id\": \"a\", \"conversations\": []}, {\"id\": \"b\", \"conv");
    let err = fails(&["prep", "clean", input.to_str().unwrap(), "-o", s.path("o.json").to_str().unwrap()]);
    assert_eq!(
        err.trim(),
        format!("error: {}: malformed JSON in record 1 at byte offset 51: EOF while parsing a string", input.display())
    );
}

#[test]
fn malformed_json_line_names_record_and_offset() {
    let s = Scratch::new();
    let input =
        s.write("bad.jsonl", "{\"id\": \"a\", \"conversations\": []}\n\n{\"id\": \"b\", \"conversations\": [}\n");
    let err = fails(&["prep", "dedup", input.to_str().unwrap(), "-o", s.path("o.jsonl").to_str().unwrap()]);
    assert_eq!(
        err.trim(),
        format!("error: {}: malformed JSON in record 1 at byte offset 64: expected value", input.display())
    );
}

#[test]
fn invalid_utf8_is_reported_with_offset() {
    let s = Scratch::new();
    let input = s.write_bytes("latin1.json", b"[{\"id\": \"caf\xe9\"}]");
    let err = fails(&["prep", "stats", input.to_str().unwrap()]);
    assert_eq!(
        err.trim(),
        format!("error: {}: invalid UTF-8 at byte offset 12; the file must be UTF-8 JSON", input.display())
    );
}

#[test]
fn unknown_extension_is_refused_before_work() {
    let s = Scratch::new();
    let input = s.write("dump.txt", "[]");
    let err = fails(&["prep", "stats", input.to_str().unwrap()]);
    assert_eq!(
        err.trim(),
        format!(
            "error: {}: unknown format; use a .json (JSON array) or .jsonl (JSON Lines) file name",
            input.display()
        )
    );
}

#[test]
fn missing_input_names_the_file() {
    let s = Scratch::new();
    let err = fails(&["prep", "stats", s.path("nope.json").to_str().unwrap()]);
    assert!(err.starts_with(&format!("error: cannot open {}: ", s.path("nope.json").display())), "{err}");
}

const MIXED: &str = r#"[
 "a bare string",
 {"id": "ok", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
 {"id": {"nested": 1}, "conversations": []},
 {"id": "noconv"},
 {"id": "badturn", "conversations": [{"from": "human", "value": 5}]},
 {"id": "role", "conversations": [{"from": "narrator", "value": "x"}]},
 null
]"#;

#[test]
fn malformed_records_are_counted_by_reason_and_skipped() {
    let s = Scratch::new();
    let input = s.write("mixed.json", MIXED);
    let out = s.path("out.jsonl");
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["prep", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(report["records_in"], 7);
    assert_eq!(report["records_out"], 1);
    assert_eq!(
        report["dropped"],
        serde_json::json!({"not_an_object": 2, "bad_id": 1, "missing_conversations": 1, "bad_turn": 1, "unknown_role": 1})
    );
    assert_eq!(read_records(&out).len(), 1);
}

#[test]
fn strict_makes_a_malformed_record_fatal_and_writes_nothing() {
    let s = Scratch::new();
    let input = s.write("mixed.json", MIXED);
    let out = s.path("out.json");
    std::fs::write(&out, "previous output").unwrap();
    let err = fails(&["prep", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--strict"]);
    assert_eq!(
        err.trim(),
        format!(
            "error: {}: record 0 at byte offset 3 is malformed (not_an_object); fix the record or run without --strict to skip it",
            input.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "previous output",
        "a failed run must leave the old output untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary file may remain: {leftovers:?}");
}

#[test]
fn bad_language_code_is_refused_with_advice() {
    let s = Scratch::new();
    let input = s.write("in.json", "[]");
    let err = fails(&[
        "prep",
        "filter",
        input.to_str().unwrap(),
        "-o",
        s.path("o.json").to_str().unwrap(),
        "--keep-lang",
        "klingon",
    ]);
    assert_eq!(
        err.trim(),
        "error: unknown language \"klingon\": use an ISO 639-1 code (en, ko, zh, ...), an ISO 639-3 code (eng) or an English name"
    );
}
