//! Every numeric flag is checked when the command line is parsed: a value out of its range, not a
//! number, NaN or infinite is refused with a message naming the flag and the allowed range, and
//! the command exits non-zero without a panic and before doing any work. (`eval judge --timeout
//! -1`, `NaN` or `1e30` used to panic; `--batch-size 0`, `--top-p 0` and the like were accepted
//! and silently changed.) The inputs are real, so without the checks each case would run.
mod common;
use common::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One tiny model for the whole file (the model commands need one to get past loading).
fn model() -> String {
    static MODEL: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let s = Scratch::new();
        let path = tiny_model(&s);
        (s, path)
    });
    path.to_str().unwrap().to_string()
}

/// Runs `base` with each `(flag, value, what the message must say)` (replacing the flag's value
/// when `base` has it) and checks the refusal;
/// every case is run, and the test fails listing all the cases that were not refused properly.
fn refused(base: &[&str], cases: &[(&str, &str, &str)]) {
    let mut wrong = Vec::new();
    for (flag, value, range) in cases {
        let mut args = base.to_vec();
        match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = value,
            None => args.extend([*flag, *value]),
        }
        let checked = std::panic::catch_unwind(|| {
            let err = fails(&args);
            assert!(
                err.contains(&format!("'{value}' for '{flag} ")),
                "{flag} {value}: the message names the flag and the value:\n{err}"
            );
            assert!(err.contains(range), "{flag} {value}: the message gives the range ({range}):\n{err}");
        });
        if checked.is_err() {
            wrong.push(format!("{flag} {value}"));
        }
    }
    assert!(wrong.is_empty(), "not refused cleanly (see above): {}", wrong.join(", "));
}

const FLOAT_POSITIVE_DAY: &str = "a finite number greater than 0 and at most 86400";

#[test]
fn eval_judge_numeric_flags() {
    let s = Scratch::new();
    let lines: Vec<String> = (1..=6)
        .map(|q| serde_json::json!({"question_id": q, "model_id": "alpha", "choices": [{"index": 0, "turns": ["an answer"]}]}).to_string())
        .collect();
    let answers = s.write("alpha.jsonl", &(lines.join("\n") + "\n"));
    let questions = repo().join("examples/questions/vicuna80_sample.jsonl");
    let server = FaultServer::start(
        vec![Fault::Status(400, "{\"error\": \"no\"}".into(), None)],
        std::time::Duration::from_secs(120),
    );
    let out = s.path("judgments.jsonl");
    let base = [
        "eval",
        "judge",
        "--questions",
        questions.to_str().unwrap(),
        "--answers",
        answers.to_str().unwrap(),
        "--mode",
        "single",
        "--judge-model",
        "judge",
        "--api-base",
        &server.base,
        "--api-key-env",
        "",
        "-o",
        out.to_str().unwrap(),
    ];
    refused(
        &base,
        &[
            ("--timeout", "-1", FLOAT_POSITIVE_DAY),
            ("--timeout", "NaN", FLOAT_POSITIVE_DAY),
            ("--timeout", "1e30", FLOAT_POSITIVE_DAY),
            ("--timeout", "inf", FLOAT_POSITIVE_DAY),
            ("--timeout", "0", FLOAT_POSITIVE_DAY),
            ("--timeout", "86401", FLOAT_POSITIVE_DAY),
            ("--timeout", "soon", FLOAT_POSITIVE_DAY),
            ("--concurrency", "0", "1..=1024"),
            ("--concurrency", "100000000", "1..=1024"),
            ("--max-retries", "101", "0..=100"),
            ("--max-retries", "-1", "0..=100"),
            ("--max-tokens", "0", "1.."),
        ],
    );
    assert_eq!(server.count(), 0, "no request was sent");
    assert!(!out.exists(), "nothing was written");
}

#[test]
fn eval_answer_numeric_flags() {
    let s = Scratch::new();
    let model = model();
    let questions = repo().join("examples/questions/vicuna80_sample.jsonl");
    let out = s.path("answers.jsonl");
    let base = [
        "eval",
        "answer",
        "--model",
        &model,
        "--template",
        "chatml",
        "--questions",
        questions.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "2",
    ];
    let temperature = "a finite number at least 0 and at most 2";
    refused(
        &base,
        &[
            ("--batch-size", "0", "1.."),
            ("--max-new-tokens", "0", "1.."),
            ("--temperature", "-0.5", temperature),
            ("--temperature", "2.5", temperature),
            ("--temperature", "NaN", temperature),
            ("--temperature", "inf", temperature),
        ],
    );
    assert!(!out.exists(), "nothing was written");
}

#[test]
fn generate_and_chat_sampling_flags() {
    let model = model();
    let temperature = "a finite number at least 0";
    let top_p = "a finite number greater than 0 and at most 1";
    let penalty = "a finite number greater than 0";
    let sampling = [
        ("--temperature", "-1", temperature),
        ("--temperature", "NaN", temperature),
        ("--temperature", "inf", temperature),
        ("--top-p", "0", top_p),
        ("--top-p", "1.5", top_p),
        ("--top-p", "-0.1", top_p),
        ("--top-p", "NaN", top_p),
        ("--repetition-penalty", "0", penalty),
        ("--repetition-penalty", "-1", penalty),
        ("--repetition-penalty", "NaN", penalty),
        ("--repetition-penalty", "inf", penalty),
        ("--max-new-tokens", "0", "1.."),
    ];
    refused(
        &["generate", "--model", &model, "--template", "chatml", "--prompt", "Hello", "--max-new-tokens", "2"],
        &sampling,
    );
    // chat shares the sampling flags (stdin is empty, so a valid run would end at once).
    refused(&["chat", "--model", &model, "--template", "chatml", "--max-new-tokens", "2"], &sampling);
}

#[test]
fn serve_numeric_flags() {
    // Refused before the model is even looked for.
    let base = ["serve", "--model", "/nonexistent/model"];
    refused(
        &base,
        &[
            ("--queue", "0", "1.."),
            ("--max-batch", "0", "1.."),
            ("--default-max-tokens", "0", "1.."),
            ("--port", "65536", "65535"),
        ],
    );
}

#[test]
fn prep_and_tokenizer_numeric_flags() {
    let s = Scratch::new();
    let data = train_data();
    let data = data.to_str().unwrap();
    let out = s.path("out.json");
    let out = out.to_str().unwrap();
    let share = "a finite number at least 0 and at most 1";
    refused(
        &["prep", "sample", data, "-o", out],
        &[("--fraction", "2", share), ("--fraction", "-0.1", share), ("--fraction", "NaN", share)],
    );
    let (train, test) = (s.path("train.json"), s.path("test.json"));
    refused(
        &["prep", "split-train-test", data, "--train", train.to_str().unwrap(), "--test", test.to_str().unwrap()],
        &[("--test-ratio", "1.5", share), ("--test-ratio", "-1", share), ("--test-ratio", "NaN", share)],
    );
    let tokenizer = tiny_tokenizer().to_str().unwrap();
    refused(&["prep", "encode", data, "-o", out, "--tokenizer", tokenizer], &[("--max-length", "0", "1..")]);
    refused(&["prep", "split", data, "-o", out, "--tokenizer", tokenizer], &[("--max-length", "0", "1..")]);
    refused(&["prep", data, "-o", out, "--tokenizer", tokenizer], &[("--max-length", "0", "1..")]);
    assert!(!std::path::Path::new(out).exists(), "nothing was written");

    let dir = s.path("tok");
    let vocab = "264..=1048576";
    refused(
        &["tokenizer", "train", data, "-o", dir.to_str().unwrap()],
        &[
            ("--vocab-size", "0", vocab),
            ("--vocab-size", "100", vocab),
            ("--vocab-size", "18446744073709551615", vocab),
        ],
    );
    assert!(!dir.exists(), "nothing was written");
}

#[test]
fn model_init_shard_size() {
    let s = Scratch::new();
    let dir = s.path("m");
    let base = ["model", "init", "--preset", "tiny", "--tokenizer", tiny_tokenizer().to_str().unwrap(), "-o"];
    let mut base = base.to_vec();
    base.push(dir.to_str().unwrap());
    refused(
        &base,
        &[
            ("--max-shard-size", "0", "more than 0 bytes"),
            ("--max-shard-size", "GB", "expected a number"),
            ("--max-shard-size", "5XB", "unknown unit"),
        ],
    );
    assert!(!dir.exists(), "nothing was written");
}

#[test]
fn values_at_the_edges_of_the_ranges_are_accepted() {
    let s = Scratch::new();
    let model = model();
    let one = ok(&[
        "generate",
        "--model",
        &model,
        "--template",
        "chatml",
        "--prompt",
        "Hello",
        "--max-new-tokens",
        "1",
        "--temperature",
        "0",
        "--top-p",
        "1",
        "--repetition-penalty",
        "1e-3",
        "--json",
    ]);
    assert_eq!(one.lines().count(), 1);
    let data = train_data();
    let data = data.to_str().unwrap();
    for fraction in ["0", "1"] {
        let out = s.path(&format!("sample{fraction}.json"));
        ok(&["prep", "sample", data, "-o", out.to_str().unwrap(), "--fraction", fraction]);
    }
    let (train, test) = (s.path("train.json"), s.path("test.json"));
    ok(&[
        "prep",
        "split-train-test",
        data,
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--test-ratio",
        "1",
    ]);
}
