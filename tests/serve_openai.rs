//! The real pretrained model behind the user-facing commands: `vicuna serve` with SmolLM2-135M-Instruct
//! (fetched and imported by `make test`) chats with the official OpenAI Python client (installed by
//! the set-up into `.venv/openai`), plainly and streaming; `vicuna eval answer` answers the bundled
//! Vicuna-80 sample in one batch, in English.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn smollm2() -> PathBuf {
    let dir = repo().join(".cache/models/smollm2-135m-instruct");
    assert!(
        dir.join("config.json").exists(),
        "{} is missing: make test fetches it (scripts/fetch_models.sh)",
        dir.display()
    );
    dir
}

#[test]
fn the_official_openai_client_chats_with_the_served_real_model() {
    let python = repo().join(".venv/openai/bin/python");
    assert!(python.exists(), "{} is missing: make test installs it (scripts/setup.sh)", python.display());
    let served = Served::start(&smollm2(), &[]);
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
models = [m.id for m in client.models.list().data]
ask = lambda text, **kw: client.chat.completions.create(
    model=models[0], messages=[{"role": "user", "content": text}], max_tokens=24, temperature=0, **kw)
answer = ask("What is the capital of Japan?")
stream = "".join(c.choices[0].delta.content or "" for c in ask("Name three colors.", stream=True))
print(json.dumps({"models": models, "answer": answer.choices[0].message.content,
                  "completion_tokens": answer.usage.completion_tokens, "stream": stream}))
"#;
    let out = Command::new(&python).args(["-c", script, &served.base]).output().unwrap();
    assert!(out.status.success(), "the openai client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["models"], serde_json::json!(["smollm2-135m-instruct"]), "{got}");
    assert!(got["answer"].as_str().unwrap().contains("Tokyo"), "{got}");
    assert!(got["completion_tokens"].as_u64().unwrap() > 0, "{got}");
    let colors = got["stream"].as_str().unwrap().to_lowercase();
    let named = ["red", "blue", "green", "yellow", "white", "black"].iter().filter(|c| colors.contains(*c)).count();
    assert!(named >= 2, "a streamed answer naming colors: {got}");
}

#[test]
fn eval_answer_with_the_real_model_answers_the_vicuna80_sample_in_english() {
    let s = Scratch::new();
    let out = s.path("answers.jsonl");
    let questions = repo().join("examples/questions/vicuna80_sample.jsonl");
    let model = smollm2();
    ok(&[
        "eval",
        "answer",
        "--model",
        model.to_str().unwrap(),
        "--template",
        "tokenizer",
        "--questions",
        questions.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--batch-size",
        "6",
        "--max-new-tokens",
        "48",
    ]);
    let answers = read_records(&out);
    assert_eq!(answers.len(), std::fs::read_to_string(&questions).unwrap().lines().count());
    let mut prose_answers = 0;
    for a in &answers {
        let text = a["choices"][0]["turns"][0].as_str().unwrap();
        assert!(text.split_whitespace().count() >= 10, "a real answer, not noise: {a}");
        // The prose outside code fences is English (a code answer may have little prose).
        let prose: String = text.split("```").step_by(2).collect::<Vec<_>>().join(" ");
        if prose.split_whitespace().count() >= 8 {
            prose_answers += 1;
            assert_eq!(whatlang::detect_lang(&prose), Some(whatlang::Lang::Eng), "English: {text:?}");
        }
    }
    assert!(prose_answers >= answers.len() - 1, "answers in prose: {answers:?}");
}
