//! End to end: `vicuna prep` on the bundled raw example must write exactly the reviewed golden
//! output and report (every markup era, pager text, service errors, duplicates, bad records).
mod common;
use common::*;

#[test]
fn bundled_example_matches_golden_output_and_report() {
    let s = Scratch::new();
    let (out, report) = (s.path("clean.json"), s.path("report.json"));
    let example = repo().join("examples/sharegpt_raw_example.json");
    let stdout = ok(&[
        "prep",
        example.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--json",
    ]);
    let golden = |name: &str| std::fs::read_to_string(repo().join("tests/golden").join(name)).unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    let want = golden("sharegpt_raw_example.clean.json");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {i} of the cleaned example differs from tests/golden");
    }
    assert_eq!(got, want);
    assert_eq!(std::fs::read_to_string(&report).unwrap(), golden("sharegpt_raw_example.report.json"));
    assert_eq!(format!("{}\n", stdout.trim_end()), golden("sharegpt_raw_example.report.json"));
}

#[test]
fn text_report_lists_every_reason() {
    let example = repo().join("examples/sharegpt_raw_example.json");
    let s = Scratch::new();
    let stdout = ok(&["prep", example.to_str().unwrap(), "-o", s.path("o.jsonl").to_str().unwrap()]);
    assert_eq!(
        stdout,
        "prep: 16 records in, 9 out, 7 dropped\n  not_an_object                  1\n  missing_conversations          1\n  wrong_format                   1\n  service_error                  1\n  blocked_words                  1\n  duplicate_id                   1\n  duplicate_content              1\n"
    );
}
