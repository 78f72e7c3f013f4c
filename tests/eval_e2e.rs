//! Evaluation end to end over real HTTP on loopback: `vicuna serve` a tiny model as the judge,
//! `vicuna eval answer` two tiny models on the bundled question sets (Vicuna-80 and MT-bench
//! formats), `vicuna eval judge` pairwise (with the swapped game) and single, `vicuna eval report`.
//! The judge is a random tiny model, so the test checks the files' structure and counts, not the
//! verdicts; a rerun of the judge makes no request.
mod common;
use common::*;

fn answer(model: &std::path::Path, questions: &str, out: &std::path::Path, id: &str) {
    ok(&answer_args(model, questions, out, id).iter().map(String::as_str).collect::<Vec<_>>());
}

/// `vicuna eval answer` of `model` on a bundled question set into `out` as model `id`.
fn answer_args(model: &std::path::Path, questions: &str, out: &std::path::Path, id: &str) -> Vec<String> {
    let q = repo().join("examples/questions").join(questions);
    [
        "eval",
        "answer",
        "--model",
        model.to_str().unwrap(),
        "--template",
        "chatml",
        "--questions",
        q.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model-id",
        id,
        "--max-new-tokens",
        "8",
        "--batch-size",
        "4",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

#[test]
fn answer_judge_and_report_over_http() {
    let s = Scratch::new();
    let judge_model = tiny_model(&s);
    let other = tiny_model_named(&s, "other", 9);
    let served = Served::start(&judge_model, &["--default-max-tokens", "8"]);

    // Answers in FastChat's format, two turns for MT-bench questions.
    let (v_a, v_b, m_a, m_b) = (s.path("v_a.jsonl"), s.path("v_b.jsonl"), s.path("m_a.jsonl"), s.path("m_b.jsonl"));
    answer(&judge_model, "vicuna80_sample.jsonl", &v_a, "alpha");
    answer(&other, "vicuna80_sample.jsonl", &v_b, "beta");
    answer(&judge_model, "mt_bench_sample.jsonl", &m_a, "alpha");
    answer(&other, "mt_bench_sample.jsonl", &m_b, "beta");
    let answers = read_records(&m_a);
    assert_eq!(answers.len(), 6);
    for a in &answers {
        assert_eq!(a["model_id"], "alpha");
        assert_eq!(
            a["choices"][0]["turns"].as_array().unwrap().len(),
            2,
            "MT-bench questions are answered in two turns"
        );
        assert!(a["answer_id"].is_string() && a["tstamp"].is_number());
    }
    assert_eq!(read_records(&v_a)[0]["choices"][0]["turns"].as_array().unwrap().len(), 1);

    // Pairwise, Vicuna-80 style (two scores, answers swapped too), against the served judge.
    let judge =
        |questions: &str, answers: [&std::path::Path; 2], mode: &str, out: &std::path::Path| -> serde_json::Value {
            let q = repo().join("examples/questions").join(questions);
            let args = [
                "eval",
                "judge",
                "--questions",
                q.to_str().unwrap(),
                "--answers",
                answers[0].to_str().unwrap(),
                answers[1].to_str().unwrap(),
                "--mode",
                mode,
                "--judge-model",
                "tiny-judge",
                "--api-base",
                &served.base,
                "--api-key-env",
                "",
                "-o",
                out.to_str().unwrap(),
                "--max-tokens",
                "8",
                "--json",
            ];
            serde_json::from_str(&ok(&args)).unwrap()
        };
    let pairwise = s.path("pairwise.jsonl");
    let summary = judge("vicuna80_sample.jsonl", [&v_a, &v_b], "vicuna80", &pairwise);
    assert_eq!(
        (summary["planned"].as_u64(), summary["written"].as_u64(), summary["requests"].as_u64()),
        (Some(6), Some(6), Some(12)),
        "{summary}"
    );
    let records = read_records(&pairwise);
    assert_eq!(records.len(), 6);
    for r in &records {
        assert_eq!(
            (r["mode"].as_str(), r["model_a"].as_str(), r["model_b"].as_str(), r["judge"].as_str()),
            (Some("vicuna80"), Some("alpha"), Some("beta"), Some("tiny-judge"))
        );
        assert!(
            r["judgment_text"].is_string() && r["swapped_judgment_text"].is_string(),
            "both orders were judged: {r}"
        );
        assert!(r["verdict"].is_object() && r["swapped_verdict"].is_object());
    }
    let unparsed = records
        .iter()
        .filter(|r| r["verdict"].get("unparsed").is_some() || r["swapped_verdict"].get("unparsed").is_some())
        .count() as u64;
    assert_eq!(summary["unparsed"].as_u64(), Some(unparsed), "every unreadable verdict is counted");

    // Single-answer grading, MT-bench style: both turns of both models.
    let single = s.path("single.jsonl");
    let summary = judge("mt_bench_sample.jsonl", [&m_a, &m_b], "single", &single);
    assert_eq!(
        (summary["planned"].as_u64(), summary["written"].as_u64(), summary["requests"].as_u64()),
        (Some(24), Some(24), Some(24)),
        "{summary}"
    );
    let turns: Vec<u64> = read_records(&single).iter().map(|r| r["turn"].as_u64().unwrap()).collect();
    assert_eq!(turns.iter().filter(|&&t| t == 2).count(), 12);

    // A rerun finds everything on disk and asks nothing.
    let again = judge("mt_bench_sample.jsonl", [&m_a, &m_b], "single", &single);
    assert_eq!(
        (again["skipped"].as_u64(), again["written"].as_u64(), again["requests"].as_u64()),
        (Some(24), Some(0), Some(0))
    );

    // Reports in JSON and Markdown, and the chart.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "report", pairwise.to_str().unwrap(), "--json"])).unwrap();
    assert!(report.is_object());
    let markdown = ok(&["eval", "report", single.to_str().unwrap()]);
    assert!(markdown.starts_with("# Evaluation report"), "{markdown}");
}

/// Regression: answering as another `--model-id` into an existing answer file replaced the first
/// model's answers question by question; the file holds one model, so that is refused.
#[test]
fn an_answer_file_of_another_model_is_refused_not_overwritten() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("answers.jsonl");
    answer(&model, "vicuna80_sample.jsonl", &out, "first");
    let before = std::fs::read(&out).unwrap();
    let second = answer_args(&model, "vicuna80_sample.jsonl", &out, "second");
    let err = fails(&second.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("holds answers of model \"first\", not \"second\""), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

/// Regression: one question whose prompt leaves no room in the model's context failed its whole
/// batch (and every rerun); it is answered "ERROR" (as FastChat's gen_model_answer does) with a
/// warning, and the other questions of the batch get their answers.
#[test]
fn a_question_too_long_for_the_context_is_answered_error_not_fatal() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let long = vec!["word"; 3000].join(" ");
    let questions = s.write(
        "questions.jsonl",
        &format!(
            "{}\n{}\n",
            serde_json::json!({"question_id": 1, "text": "Name a color.", "category": "generic"}),
            serde_json::json!({"question_id": 2, "text": long, "category": "generic"})
        ),
    );
    let out = s.path("answers.jsonl");
    let mut args = answer_args(&model, "vicuna80_sample.jsonl", &out, "m");
    let at = args.iter().position(|a| a == "--questions").unwrap();
    args[at + 1] = questions.to_str().unwrap().to_string();
    let run = vicuna(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("warning: question 2 turn 1: the prompt is "), "{stderr}");
    let answers = read_records(&out);
    assert_eq!(answers.len(), 2);
    let turns = |q: u64| answers.iter().find(|a| a["question_id"] == q).unwrap()["choices"][0]["turns"].clone();
    assert_eq!(turns(2), serde_json::json!(["ERROR"]));
    assert_ne!(turns(1), serde_json::json!(["ERROR"]));
}
