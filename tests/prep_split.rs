//! `prep split` and `prep encode`: every segment encodes to at most `--max-length` tokens with its
//! template (system prompt and role tags included), the segments hold every turn of the input in
//! order, an over-long pair is truncated or dropped by flag and counted, and encoded samples carry
//! labels that are -100 exactly outside the assistant turns.
mod common;
use common::*;
use vicuna::data::conversation::{Conversation, Role};
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};

fn conversations(path: &std::path::Path) -> Vec<Conversation> {
    let file = vicuna::data::records::RecordFile::open(path).unwrap();
    (0..file.len()).map(|i| Conversation::parse(file.record(i), i).unwrap()).collect()
}

/// Splits the bundled example with `tokenizer` and checks the split contract.
fn check_split(tokenizer_dir: &std::path::Path, template: &str, max_len: usize) -> serde_json::Value {
    let s = Scratch::new();
    let input = repo().join("tests/golden/sharegpt_raw_example.clean.json");
    let out = s.path("split.json");
    let args = [
        "prep",
        "split",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        tokenizer_dir.to_str().unwrap(),
        "--template",
        template,
        "--max-length",
        &max_len.to_string(),
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let tokenizer = Tokenizer::load(tokenizer_dir, &SpecialOverrides::default()).unwrap();
    let name = <TemplateName as clap::ValueEnum>::from_str(template, false).unwrap();
    let tpl = Template::new(name, &tokenizer).unwrap();
    let segments = conversations(&out);
    for seg in &segments {
        let n = tokenizer.encode(&tpl.render(seg.system.as_deref(), &seg.turns).unwrap().text).unwrap().ids.len();
        assert!(n <= max_len, "segment {} encodes to {n} > {max_len} tokens", seg.id);
    }
    // Every input turn appears, in order, in the segments of its conversation (answers of truncated
    // pairs as a prefix).
    for original in conversations(&input) {
        let prefix = format!("{}_", original.id);
        let mine: Vec<&Conversation> = segments
            .iter()
            .filter(|s| s.id.starts_with(&prefix) && s.id[prefix.len()..].parse::<usize>().is_ok())
            .collect();
        for (k, seg) in mine.iter().enumerate() {
            assert_eq!(seg.id, format!("{}{k}", prefix), "segment ids are {{id}}_{{k}}");
            assert_eq!(seg.system, original.system);
        }
        let got: Vec<_> = mine.iter().flat_map(|s| s.turns.iter()).collect();
        assert_eq!(got.len(), original.turns.len(), "{}: no turn is lost", original.id);
        for (g, o) in got.iter().zip(&original.turns) {
            assert_eq!(g.role, o.role);
            if g.role == Role::Assistant {
                assert!(o.text.starts_with(&g.text), "{}: answers are kept or cut at a token boundary", original.id);
            } else {
                assert_eq!(g.text, o.text);
            }
        }
    }
    report
}

#[test]
fn every_segment_fits_and_no_turn_is_lost_with_trained_tokenizer() {
    let report = check_split(tiny_tokenizer(), "vicuna_v1.1", 160);
    assert!(
        report["written"].as_u64().unwrap() > report["records_out"].as_u64().unwrap(),
        "160 tokens must force splits: {report}"
    );
    check_split(tiny_tokenizer(), "llama-3", 200);
}

#[test]
fn every_segment_fits_with_real_llama2_tokenizer_at_512_and_at_96() {
    check_split(&real_tokenizer("llama2"), "vicuna_v1.1", 512);
    let report = check_split(&real_tokenizer("llama2"), "vicuna_v1.1", 96);
    assert!(report["counters"]["pairs_truncated"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn long_pair_drop_counts_and_drops() {
    let s = Scratch::new();
    let long = "word ".repeat(400);
    let input = s.write(
        "in.json",
        &serde_json::json!([{"id": "a", "conversations": [
            {"from": "human", "value": "short?"}, {"from": "gpt", "value": "short."},
            {"from": "human", "value": "long?"}, {"from": "gpt", "value": long},
            {"from": "human", "value": "again?"}, {"from": "gpt", "value": "yes."}
        ]}, {"id": "b", "conversations": [{"from": "human", "value": long}, {"from": "gpt", "value": "x"}]}])
        .to_string(),
    );
    let out = s.path("out.json");
    let tok = tiny_tokenizer().to_str().unwrap();
    let run = |mode: &str| -> serde_json::Value {
        let args = [
            "prep",
            "split",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--tokenizer",
            tok,
            "--template",
            "chatml",
            "--max-length",
            "120",
            "--long-pair",
            mode,
            "--json",
        ];
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let dropped = run("drop");
    assert_eq!(dropped["counters"]["pairs_dropped"], 2, "{dropped}");
    assert_eq!(dropped["dropped"]["long_pairs"], 1, "b has no pair that fits: {dropped}");
    let ids: Vec<String> = conversations(&out).iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, ["a_0", "a_1"]);
    let truncated = run("truncate");
    assert_eq!(truncated["counters"]["pairs_truncated"], 1, "{truncated}");
    assert_eq!(truncated["counters"]["pairs_dropped"], 1, "b's question alone does not fit: {truncated}");
    assert_eq!(conversations(&out).len(), 3);
}

#[test]
fn encode_writes_ids_and_labels_masked_outside_answers() {
    let s = Scratch::new();
    let input = repo().join("tests/golden/sharegpt_raw_example.clean.json");
    let out = s.path("samples.jsonl");
    let tok = tiny_tokenizer().to_str().unwrap();
    let args = [
        "prep",
        "encode",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        tok,
        "--template",
        "chatml",
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let samples = read_records(&out);
    assert_eq!(samples.len(), 9);
    assert_eq!(report["records_out"], 9);
    let tokenizer = Tokenizer::load(tiny_tokenizer(), &SpecialOverrides::default()).unwrap();
    let mut trained_total = 0;
    for s in &samples {
        let ids: Vec<u32> = serde_json::from_value(s["input_ids"].clone()).unwrap();
        let labels: Vec<i64> = serde_json::from_value(s["labels"].clone()).unwrap();
        assert_eq!(ids.len(), labels.len());
        let trained: Vec<u32> = ids.iter().zip(&labels).filter(|(_, &l)| l != -100).map(|(&i, _)| i).collect();
        trained_total += trained.len();
        let text = tokenizer.decode(&trained, false).unwrap();
        assert!(text.ends_with("<|im_end|>") && !text.contains("<|im_start|>"), "{}: {text:?}", s["id"]);
    }
    assert_eq!(report["counters"]["trained_tokens"], trained_total);
}

#[test]
fn split_without_tokenizer_says_what_to_pass() {
    let s = Scratch::new();
    let input = s.write("in.json", "[]");
    let err = fails(&["prep", "split", input.to_str().unwrap(), "-o", s.path("o.json").to_str().unwrap()]);
    assert_eq!(err.trim(), "error: prep split needs --tokenizer (a tokenizer.json or a model directory)");
}

#[test]
fn stats_token_counts_agree_with_encode() {
    let s = Scratch::new();
    let input = repo().join("tests/golden/sharegpt_raw_example.clean.json");
    let tok = tiny_tokenizer().to_str().unwrap();
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["prep", "stats", input.to_str().unwrap(), "--tokenizer", tok, "--json"])).unwrap();
    let out = s.path("samples.jsonl");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "prep",
        "encode",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        tok,
        "--json",
    ]))
    .unwrap();
    assert_eq!(stats["tokens"]["tokens"], report["counters"]["tokens"]);
    assert_eq!(stats["tokens"]["trained_tokens"], report["counters"]["trained_tokens"]);
    let histogram_total: u64 =
        stats["tokens"]["histogram"].as_array().unwrap().iter().map(|b| b[1].as_u64().unwrap()).sum();
    assert_eq!(histogram_total, 9);
}
