//! `vicuna model init`, `model inspect`, `generate` and `chat` end to end on a tiny model: prompt
//! ids are the template's rendering, sampling is reproducible by seed, batches give each prompt
//! its own answer, and chat carries the conversation across turns.
mod common;
use common::*;
use std::io::Write;
use std::process::Stdio;

fn generate(model: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["generate", "--model", model, "--template", "chatml", "--max-new-tokens", "12", "--json"];
    args.extend_from_slice(extra);
    ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn generate_renders_the_prompt_with_the_template_and_samples_reproducibly() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    let inspect: serde_json::Value = serde_json::from_str(&ok(&["model", "inspect", &model, "--json"])).unwrap();
    assert_eq!(inspect["config"]["num_hidden_layers"], 2);
    assert_eq!(inspect["tensors"].as_array().unwrap().len(), 2 * 9 + 3);

    let greedy = generate(&model, &["--prompt", "Hello there"]);
    let tokenizer =
        vicuna::data::tokenizer::Tokenizer::load(std::path::Path::new(&model), &Default::default()).unwrap();
    let want = tokenizer.encode("<s><|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n").unwrap().ids;
    let got: Vec<u32> = serde_json::from_value(greedy[0]["prompt_ids"].clone()).unwrap();
    assert_eq!(got, want, "the prompt is the chatml rendering up to the answer");
    assert!(greedy[0]["ids"].as_array().unwrap().len() <= 12);
    assert_eq!(generate(&model, &["--prompt", "Hello there"]), greedy, "greedy is deterministic");

    let sample = |seed: &str| {
        generate(&model, &["--prompt", "Hello there", "--temperature", "1.0", "--top-p", "0.95", "--seed", seed])
    };
    assert_eq!(sample("7"), sample("7"), "same seed, same sample");
    assert_ne!(sample("7")[0]["ids"], sample("8")[0]["ids"], "another seed, another sample");

    let batch =
        generate(&model, &["--prompt", "Hello there", "--prompt", "A longer prompt that needs left padding here"]);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["ids"], greedy[0]["ids"], "batching (with left padding) does not change an answer");
}

#[test]
fn chat_keeps_the_conversation_across_turns() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    let mut child = vicuna_command()
        .args(["chat", "--model", &model, "--template", "chatml", "--max-new-tokens", "6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hi\nTell me more\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("ASSISTANT: ").count(), 2, "two answers: {text:?}");
    assert_eq!(text.matches("USER: ").count(), 3, "prompted three times (the empty line quits): {text:?}");
}

#[test]
fn sampling_settings_out_of_range_are_refused_naming_the_flag() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    for (flag, value) in [
        ("--temperature", "-0.5"),
        ("--temperature", "2.5"),
        ("--temperature", "NaN"),
        ("--temperature", "inf"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--top-p", "NaN"),
        ("--repetition-penalty", "0"),
        ("--repetition-penalty", "-1"),
        ("--repetition-penalty", "inf"),
        ("--max-new-tokens", "0"),
    ] {
        for command in ["generate", "chat"] {
            let setting = format!("{flag}={value}");
            let mut args = vec![command, "--model", &model, "--template", "chatml", &setting];
            if command == "generate" {
                args.extend(["--prompt", "Hi"]);
            }
            let err = fails(&args);
            assert!(err.contains(flag), "{command} {flag} {value}: the error names the flag: {err}");
        }
    }
}

/// Runs `vicuna generate --json` on one libtorch thread (see `ONE_THREAD`); returns prompt and
/// answer lengths per prompt.
fn lengths(args: &[&str]) -> Vec<(usize, usize)> {
    let out = vicuna_env(&[&["generate", "--template", "chatml", "--json"], args].concat(), ONE_THREAD);
    assert!(out.status.success(), "vicuna {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let count = |v: &serde_json::Value, key: &str| v[key].as_array().unwrap().len();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (count(&v, "prompt_ids"), count(&v, "ids")))
        .collect()
}

#[test]
fn huge_max_new_tokens_stop_at_the_end_of_the_context() {
    let s = Scratch::new();
    // Seed 2 does not stop on its own: the answer runs to the end of the context (256 tokens, to
    // keep the test fast).
    let model = tiny_model_with_context(&s, "endless", 2, 256).to_str().unwrap().to_string();
    for huge in ["1000000000", "9223372036854775807", "18446744073709551615"] {
        let got = lengths(&["--model", &model, "--max-new-tokens", huge, "--prompt", "Count to a million."]);
        let (prompt, answer) = got[0];
        assert_eq!(prompt + answer, 256, "--max-new-tokens {huge}: the answer fills the context and stops there");
    }
    // In a left-padded batch, each row stops at its own end of the context.
    let long = vec!["a"; 200].join(" ");
    let got = lengths(&[
        "--model",
        &model,
        "--max-new-tokens",
        "18446744073709551615",
        "--prompt",
        "Count to a million.",
        "--prompt",
        &long,
    ]);
    assert_eq!(got[0].0 + got[0].1, 256, "the short prompt's answer runs to the end of the context: {got:?}");
    assert!(got[1].0 + got[1].1 <= 256, "the long prompt's answer stops at the end of the context: {got:?}");
}

#[test]
fn a_prompt_over_the_context_is_refused_with_a_clear_error() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    let long = vec!["a"; 3000].join(" ");
    // Alone, and batched with a short prompt (left padding once skipped the check).
    for prompts in [vec!["--prompt", &long], vec!["--prompt", "Hi", "--prompt", &long]] {
        let mut args = vec!["generate", "--model", &model, "--template", "chatml", "--max-new-tokens", "4"];
        args.extend(prompts.iter().copied());
        let err = fails(&args);
        assert!(err.contains("context") && err.contains("2048"), "the error names the context: {err}");
    }
    let mut child = vicuna_command()
        .args(["chat", "--model", &model, "--template", "chatml", "--max-new-tokens", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Chat reports the turn it cannot answer and goes on with the conversation.
    child.stdin.take().unwrap().write_all(format!("{long}\nHi\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_no_panic(&err);
    assert!(out.status.success(), "chat goes on after a turn it cannot answer: {err}");
    assert!(err.contains("context") && err.contains("2048"), "the error names the context: {err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("ASSISTANT: ").count(), 2);
}

#[test]
fn a_tokenizer_larger_than_the_model_is_refused_at_load() {
    let s = Scratch::new();
    // A model built for a 300-token vocabulary, then given the 600-token tokenizer.
    let small = s.path("small_tok");
    ok(&["tokenizer", "train", train_data().to_str().unwrap(), "-o", small.to_str().unwrap(), "--vocab-size", "300"]);
    let model = s.path("model");
    ok(&["model", "init", "--preset", "tiny", "--tokenizer", small.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny_tokenizer().join(file), model.join(file)).unwrap();
    }
    let model = model.to_str().unwrap();
    let err = fails(&["generate", "--model", model, "--template", "chatml", "--prompt", "Hello there, how are you?"]);
    assert!(err.contains("600") && err.contains("300"), "the error names both sizes: {err}");
    let err = fails(&["serve", "--model", model, "--template", "chatml", "--port", "0"]);
    assert!(err.contains("600") && err.contains("300"), "serve refuses it at load too: {err}");
}

/// The second turn's prompt holds the first exchange: the question and the answer the model gave,
/// rendered as in training, then the new question.
#[test]
fn the_second_turn_of_a_chat_is_prompted_with_the_first_exchange() {
    use vicuna::data::template::{Template, TemplateName};
    use vicuna::infer::chat::Chat;
    let s = Scratch::new();
    let model = tiny_model(&s);
    let engine =
        vicuna::infer::engine::Engine::load(&model, Some(TemplateName::Chatml), tch::Device::Cpu, tch::Kind::Float)
            .unwrap();
    let sampling = vicuna::infer::generate::Sampling { max_new_tokens: 6, ..Default::default() };
    let mut chat = Chat::new(&engine, None);
    let mut streamed = String::new();
    let first = chat.say("Hi", &sampling, &mut |piece| streamed.push_str(piece)).unwrap();
    assert_eq!(streamed.trim(), first, "the streamed pieces are the answer");
    assert_eq!(chat.turns().len(), 2);
    assert_eq!((chat.turns()[0].text.as_str(), chat.turns()[1].text.as_str()), ("Hi", first.as_str()));
    let second = engine.tokenizer.decode(&chat.prompt_ids("Tell me more").unwrap(), false).unwrap();
    let template = Template::new(TemplateName::Chatml, &engine.tokenizer).unwrap();
    let exchange = template.render(None, chat.turns()).unwrap().text;
    let bos = engine.tokenizer.bos.as_ref().map_or(String::new(), |b| b.text.clone());
    let exchange = exchange.strip_prefix(&bos).unwrap_or(&exchange).to_string();
    assert!(second.contains(&exchange), "the first exchange {exchange:?} is in the second prompt {second:?}");
    assert!(second.contains(&format!("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n{first}")), "{second:?}");
    assert!(
        second.trim_end().ends_with("<|im_start|>user\nTell me more<|im_end|>\n<|im_start|>assistant"),
        "{second:?}"
    );
}
