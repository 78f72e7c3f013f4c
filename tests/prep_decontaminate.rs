//! `prep decontaminate`: sentence BLEU against NLTK's golden values; planted paraphrases and
//! copies of Vicuna-80 and MT-bench questions (the bundled samples in examples/questions/) are
//! removed, unrelated conversations kept, and the report names each match with its scores; the
//! plain `{"text"}` question format; question-file errors.
mod common;
use common::*;
use serde_json::json;
use vicuna::data::bleu::{sentence_bleu, NgramCounts};
use vicuna::data::words::word_hashes;

#[test]
fn sentence_bleu_equals_nltk() {
    let golden = std::fs::read_to_string(repo().join("tests/golden/sentence_bleu.jsonl")).unwrap();
    let mut checked = 0;
    for line in golden.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let (reference, hypothesis) = (case["reference"].as_str().unwrap(), case["hypothesis"].as_str().unwrap());
        let ours =
            sentence_bleu(&NgramCounts::new(&word_hashes(reference)), &NgramCounts::new(&word_hashes(hypothesis)));
        let nltk = case["bleu"].as_f64().unwrap();
        assert!((ours - nltk).abs() < 1e-12, "{reference:?} / {hypothesis:?}: ours {ours}, nltk {nltk}");
        checked += 1;
    }
    assert_eq!(checked, 210);
}

/// Training conversations: `p*` paraphrase or copy a bundled benchmark question (p5 in its second
/// user turn, p6 inside a longer turn), `u*` are unrelated.
const RECORDS: &[(&str, &[&str])] = &[
        ("u1", &["What is the best way to cook rice in a pressure cooker?"]),
        ("p1", &["What are some ways I can improve my time management skills?"]),
        ("u2", &["Can you summarize the plot of Hamlet in three paragraphs?"]),
        ("p2", &["Pretend you are a medieval knight at a royal feast. How would you introduce yourself to the court?"]),
        ("u3", &["Translate 'good morning, how are you' into Spanish and German."]),
        ("p3", &["Write a Python function returning the n-th Fibonacci number with dynamic programming."]),
        ("u4", &["My laptop fan is very loud when I play games. What could cause this?"]),
        ("p4", &["Write a short travel blog post about a weekend trip to Kyoto that highlights two cultural experiences."]),
        ("u5", &["List five healthy breakfast ideas that take less than ten minutes."]),
        ("p5", &["Give me three tips for writing clear emails at work.", "Now rewrite your previous response so every sentence starts with the letter K."]),
        ("u6", &["Help me plan a birthday party for my daughter who turns seven.", "Can you make the budget smaller?"]),
        ("p6", &["I have an exam tomorrow and my teacher gave us a practice sheet with lots of different problems. One of them says: You are in a race and overtake the second person. What is your position now? I answered first place but I am not sure, and I would like a detailed explanation of the reasoning with a diagram if possible, thanks a lot."]),
        ("u7", &["Write a SQL query that returns the ten customers with the highest total orders."]),
        ("p7", &["Explain quantum superposition in two sentences."]),
        ("u8", &["Why is the sky blue during the day but red at sunset?"]),
];

fn training_file(s: &Scratch) -> String {
    let records: Vec<_> = RECORDS
        .iter()
        .map(|(id, users)| {
            let turns: Vec<_> = users
                .iter()
                .flat_map(|u| [json!({"from": "human", "value": u}), json!({"from": "gpt", "value": "An answer."})])
                .collect();
            json!({"id": id, "conversations": turns})
        })
        .collect();
    s.write("train.json", &serde_json::to_string(&records).unwrap()).to_str().unwrap().to_string()
}

fn questions() -> [String; 2] {
    ["vicuna80_sample.jsonl", "mt_bench_sample.jsonl"]
        .map(|f| repo().join("examples/questions").join(f).to_str().unwrap().to_string())
}

fn kept(path: &std::path::Path) -> Vec<String> {
    read_records(path).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn planted_paraphrases_are_removed_and_the_report_names_each_match() {
    let s = Scratch::new();
    let input = training_file(&s);
    let out = s.path("clean.json");
    let [vicuna80, mt_bench] = questions();
    let stdout = ok(&["prep", "decontaminate", &input, "--against", &vicuna80, &mt_bench, "-o", out.to_str().unwrap()]);
    // Scores computed independently with NLTK 3.10.4 (sentence_bleu, method1) and Python sets.
    let expected = [
        "decontaminate: 15 records in, 9 out, 6 dropped".to_string(),
        format!("  {:<22} {:>9}", "contaminated", 6),
        "removed (6 conversations, against 18 questions):".to_string(),
        "  \"p1\" turn 1: vicuna80_sample.jsonl question 1 turn 1 (bleu 0.382, overlap 0.000): \"How can I improve my time management skills?\"".to_string(),
        "  \"p2\" turn 1: vicuna80_sample.jsonl question 2 turn 1 (bleu 0.592, overlap 0.125): \"Imagine you are a medieval knight at a royal banquet. How would you introduce yourself?\"".to_string(),
        "  \"p3\" turn 1: vicuna80_sample.jsonl question 4 turn 1 (bleu 0.488, overlap 0.000): \"Write a Python function that returns the n-th Fibonacci number using dynamic programming.\"".to_string(),
        "  \"p4\" turn 1: mt_bench_sample.jsonl question 81 turn 1 (bleu 0.575, overlap 0.250): \"Write a short travel blog post about a weekend in Kyoto, highlighting two cultural experiences.\"".to_string(),
        "  \"p5\" turn 2: mt_bench_sample.jsonl question 81 turn 2 (bleu 0.761, overlap 0.000): \"Rewrite your previous response so that every sentence starts with the letter K.\"".to_string(),
        "  \"p6\" turn 1: mt_bench_sample.jsonl question 101 turn 1 (bleu 0.215, overlap 1.000): \"You are in a race and overtake the second person. What is your position now?\"".to_string(),
    ];
    assert_eq!(stdout, expected.map(|l| l + "\n").concat());
    assert_eq!(kept(&out), ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "p7", "u8"]);

    // p7 reorders the question's words ("quantum superposition" for "superposition in quantum
    // physics"): BLEU 0.191, kept at the default 0.2 and removed at 0.15, where every question is
    // scored without the bigram index.
    let json_out = ok(&[
        "prep",
        "decontaminate",
        &input,
        "--against",
        &vicuna80,
        &mt_bench,
        "-o",
        out.to_str().unwrap(),
        "--bleu",
        "0.15",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(report["dropped"], json!({"contaminated": 7}));
    assert_eq!(report["records_out"], 8);
    let p7 = &report["removed"][6];
    assert_eq!(p7["id"], "p7");
    assert_eq!(p7["record"], 13);
    assert_eq!(p7["source"], "mt_bench_sample.jsonl");
    assert_eq!(p7["question_id"], 141);
    assert_eq!(p7["question_turn"], 1);
    assert_eq!(p7["question"], "Explain superposition in quantum physics in two sentences.");
    assert_eq!(format!("{:.3}", p7["bleu"].as_f64().unwrap()), "0.191");
}

#[test]
fn plain_text_questions_and_bad_question_files() {
    let s = Scratch::new();
    let input = training_file(&s);
    let out = s.path("clean.jsonl");
    let plain = s.write(
        "plain.jsonl",
        "{\"text\": \"Why is the sky blue?\"}\n\n{\"text\": \"Cook rice in a pressure cooker, the best way.\"}\n",
    );
    let stdout =
        ok(&["prep", "decontaminate", &input, "--against", plain.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(stdout.contains("\"u8\" turn 1: plain.jsonl question 1 turn 1 (bleu 0.3"), "{stdout}");
    assert!(stdout.contains("\"u1\" turn 1: plain.jsonl question 3 turn 1 (bleu "), "{stdout}");
    assert_eq!(kept(&out).len(), 13);

    let bad = s.write("bad.jsonl", "{\"text\": \"fine\"}\n{\"question_id\": 2, \"turns\": [\"ok\", 3]}\n");
    let stderr =
        fails(&["prep", "decontaminate", &input, "--against", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(stderr.contains(&format!("{}:2: every element of \"turns\" must be a string", bad.display())), "{stderr}");
    let none = s.write("none.jsonl", "{\"category\": \"x\"}\n");
    let stderr =
        fails(&["prep", "decontaminate", &input, "--against", none.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(stderr.contains(":1: a question needs \"turns\""), "{stderr}");
    let stderr = fails(&["prep", "decontaminate", &input, "-o", out.to_str().unwrap()]);
    assert!(stderr.contains("--against"), "{stderr}");
    // A question file is an input: never overwritten.
    let stderr =
        fails(&["prep", "decontaminate", &input, "--against", plain.to_str().unwrap(), "-o", plain.to_str().unwrap()]);
    assert!(stderr.contains("vicuna never overwrites its input"), "{stderr}");
    assert!(std::fs::read_to_string(&plain).unwrap().starts_with("{\"text\": \"Why is the sky blue?\"}"));
}
