//! The judgment file of `vicuna eval judge` belongs to one run at a time and survives a crash in
//! the middle of a line: a second run on the same file stops at once naming the first one's pid
//! (and a killed holder leaves no lock behind), and a torn last line is set aside in `.torn` so
//! the next judgment starts on a fresh line and nothing already judged is asked again. An output
//! that is one of the inputs (an answer file) is refused before anything is read or written.
mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A pairwise judge run of two models (six judgments, twelve requests) against `base`.
fn judge_args(s: &Scratch, base: &str, out: &Path, concurrency: &str) -> Vec<String> {
    common::judge_args(s, base, out, &["--api-key-env", "", "--concurrency", concurrency, "--json"])
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

#[test]
fn a_second_run_on_the_same_file_stops_at_once_naming_the_first_and_a_killed_holder_frees_it() {
    let s = Scratch::new();
    let out = s.path("judgments.jsonl");
    let slow =
        FaultServer::start(vec![Fault::Slow(Duration::from_secs(4), completion("[[A]]"))], Duration::from_secs(60));
    let mut first = vicuna_command()
        .args(judge_args(&s, &slow.base, &out, "1"))
        .env_remove("LD_LIBRARY_PATH")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the first judge run");
    // Once its first request has arrived, the first run is judging.
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.count() == 0 {
        assert!(Instant::now() < deadline, "the first run never sent a request");
        std::thread::sleep(Duration::from_millis(20));
    }

    let fast = FaultServer::start(vec![Fault::Status(200, completion("[[B]]"), None)], Duration::from_secs(60));
    let second = judge_args(&s, &fast.base, &out, "4");
    let start = Instant::now();
    let err = fails(&strs(&second));
    let took = start.elapsed();
    assert!(err.contains(&format!("pid {}", first.id())), "the message names the holder's pid: {err}");
    assert!(err.contains("judgment file") && err.contains("judgments.jsonl"), "{err}");
    // The first run needs 48 s (twelve 4 s replies); a second run that waited for it, or for a
    // slow reply, would take far longer than this generous bound for a loaded machine.
    assert!(took < Duration::from_secs(10), "refused at once, not after waiting: {took:?}");
    assert_eq!(fast.count(), 0, "the second run asked nothing");

    // The holder dies without cleaning up: its lock dies with it.
    first.kill().unwrap();
    first.wait().unwrap();
    let done = summary(&ok(&strs(&second)));
    assert_eq!((done["planned"].as_u64(), done["failed"].as_u64()), (Some(6), Some(0)), "{done}");
    assert_eq!(read_records(&out).len(), 6);
    assert!(!s.path(".judgments.jsonl.lock").exists(), "a clean exit removes the lock file");
}

#[test]
fn a_torn_last_line_is_set_aside_and_nothing_judged_is_asked_again() {
    let s = Scratch::new();
    let server = FaultServer::start(vec![Fault::Status(200, completion("[[A]]"), None)], Duration::from_secs(60));
    let out = s.path("judgments.jsonl");
    let args = judge_args(&s, &server.base, &out, "2");
    summary(&ok(&strs(&args)));
    let whole = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines.len(), 6);

    // A crash while the third judgment was being written: two whole lines and half a line.
    let fragment = &lines[2][..lines[2].len() / 2];
    std::fs::write(&out, format!("{}\n{}\n{fragment}", lines[0], lines[1])).unwrap();
    let before = server.count();
    let run = vicuna(&strs(&args));
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    let done = summary(&String::from_utf8_lossy(&run.stdout));
    assert_eq!(
        (done["skipped"].as_u64(), done["written"].as_u64(), done["requests"].as_u64()),
        (Some(2), Some(4), Some(8)),
        "only the four judgments not on disk were asked: {done}"
    );
    assert_eq!(server.count() - before, 8);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a judgment was glued onto the fragment: {l:?}: {e}"))
        })
        .collect();
    assert_eq!(records.len(), 6);
    let ids: std::collections::BTreeSet<String> = records.iter().map(|r| r["question_id"].to_string()).collect();
    assert_eq!(ids.len(), 6, "each judgment once");
    let torn = s.path("judgments.jsonl.torn");
    assert_eq!(std::fs::read_to_string(&torn).unwrap(), format!("{fragment}\n"), "the fragment is kept");
    assert!(stderr.contains("judgments.jsonl.torn"), "the user is told: {stderr}");
    let again = summary(&ok(&strs(&args)));
    assert_eq!(again["requests"], 0, "a rerun asks nothing: {again}");

    // A last line without its newline is torn even when it happens to be whole JSON (the rule is
    // simple: only a line with its newline was written completely); it is set aside too and its
    // judgment asked again.
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&out, format!("{}\n{}", lines[..5].join("\n"), lines[5])).unwrap();
    let before = server.count();
    let done = summary(&ok(&strs(&args)));
    assert_eq!((done["skipped"].as_u64(), done["written"].as_u64()), (Some(5), Some(1)), "{done}");
    assert_eq!(server.count() - before, 2);
    let torn_text = std::fs::read_to_string(&torn).unwrap();
    assert_eq!(torn_text, format!("{fragment}\n{}\n", lines[5]), "fragments accumulate, one per line");
    assert_eq!(read_records(&out).len(), 6);
}

#[test]
fn an_output_that_is_one_of_the_inputs_is_refused_before_anything_is_written() {
    let s = Scratch::new();
    let server = FaultServer::start(vec![Fault::Status(200, completion("[[A]]"), None)], Duration::from_secs(30));
    let answers = s.path("alpha.jsonl");
    let args = judge_args(&s, &server.base, &answers, "1");
    let before = std::fs::read(&answers).unwrap();
    let err = fails(&strs(&args));
    assert!(err.contains("--output") && err.contains("is the input"), "{err}");
    assert_eq!(std::fs::read(&answers).unwrap(), before, "the answer file is untouched");
    assert_eq!(server.count(), 0);
}
