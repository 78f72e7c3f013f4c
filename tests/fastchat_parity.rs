//! Golden test against FastChat: `preprocess()` of fschat 0.2.36 with the real Llama-2 vocabulary
//! (slow LlamaTokenizer, legacy mode) and `vicuna_v1.1`, recorded by
//! `scripts/fixtures/make_fastchat_fixture.sh`. Where FastChat reports no tokenization mismatch,
//! our input ids and labels are identical to its; where it does (and masks the whole sample), we
//! tokenize identically and still train exactly the assistant turns.
mod common;
use common::*;
use vicuna::data::clean::repair_structure;
use vicuna::data::conversation::Conversation;
use vicuna::data::encode::{encode, IGNORE};
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};

fn fixture() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/fastchat_vicuna_v1_1_llama2.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["meta"]["fschat"], "0.2.36");
    v["samples"].as_array().unwrap().clone()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn ids_and_labels_equal_fastchat_preprocess() {
    let tokenizer = Tokenizer::load(&real_tokenizer("llama2"), &SpecialOverrides::default()).unwrap();
    let template = Template::new(TemplateName::VicunaV11, &tokenizer).unwrap();
    let samples = fixture();
    let mut compared = 0;
    for s in &samples {
        let record = serde_json::json!({"id": s["id"], "conversations": s["conversations"]}).to_string();
        let mut c = Conversation::parse(&record, 0).unwrap();
        repair_structure(&mut c.turns).unwrap();
        let ours = encode(&c, &template, &tokenizer, 2048).unwrap().unwrap();
        let our_ids: Vec<i64> = ours.input_ids.iter().map(|&i| i64::from(i)).collect();
        let (their_ids, their_labels) = (ids(&s["input_ids"]), ids(&s["labels"]));
        let id = s["id"].as_str().unwrap();
        if !s["mismatch"].as_bool().unwrap() {
            assert_eq!(our_ids, their_ids, "{id}: input ids");
            assert_eq!(ours.labels, their_labels, "{id}: labels");
            compared += 1;
            continue;
        }
        // FastChat masked this sample entirely; it is trainable, and we train it.
        assert!(their_labels.iter().all(|&l| l == IGNORE), "{id}");
        if id == "trailing_human_turn" {
            assert!(
                their_ids.starts_with(&our_ids) && their_ids.len() > our_ids.len(),
                "{id}: we drop the unanswered last question"
            );
        } else {
            assert_eq!(our_ids, their_ids, "{id}: same tokenization");
        }
        // The trained tokens are one run from right after the last `ASSISTANT:` to the end, and
        // decode to the answer and `</s>` (the decoder spaces out special tokens inside text, so
        // whitespace is ignored in this comparison; the ids were compared exactly above).
        let first = ours.labels.iter().position(|&l| l != IGNORE).unwrap();
        assert!(ours.labels[first..].iter().all(|&l| l != IGNORE), "{id}: one trained run to the end");
        assert_eq!(
            tokenizer.token(ours.input_ids[first - 1]).as_deref(),
            Some(":"),
            "{id}: the run starts after `ASSISTANT:`"
        );
        let squash = |t: &str| t.split_whitespace().collect::<String>();
        let decoded = tokenizer.decode(&ours.input_ids[first..], false).unwrap();
        let answer = &c.turns.last().unwrap().text;
        assert_eq!(squash(&decoded), squash(&format!("{answer}</s>")), "{id}: the answer is trained");
    }
    assert_eq!(compared, 7, "seven samples FastChat encodes without mismatch");
}
