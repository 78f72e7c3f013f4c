//! The fast Llama-2 encoder (the tokenizer's private fast path) against the plain `tokenizers` encoder:
//! with the real Llama-2 tokenizer the fast path is taken and gives the same ids and the same byte
//! offsets on every turn and rendered conversation of the bundled example and on thousands of
//! random strings (spaces, tabs, newlines, CJK, emoji, combining marks, special-token spellings,
//! `▁`, byte-fallback characters); Llama-3 and the trained byte-level tokenizer fall back; and
//! `prep split` writes the same bytes with the fast path on and off.
mod common;
use common::*;
use vicuna::data::conversation::Conversation;
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
use vicuna::util::rng::SplitMix64;

fn load(dir: &std::path::Path) -> Tokenizer {
    Tokenizer::load(dir, &SpecialOverrides::default()).expect("load tokenizer")
}

fn bundled() -> Vec<Conversation> {
    let file =
        vicuna::data::records::RecordFile::open(&repo().join("tests/golden/sharegpt_raw_example.clean.json")).unwrap();
    (0..file.len()).map(|i| Conversation::parse(file.record(i), i).unwrap()).collect()
}

/// Asserts that `Tokenizer::encode` (the fast path) equals the plain encoder on `text`.
fn assert_same(tokenizer: &Tokenizer, text: &str) {
    let plain = tokenizer.inner().encode(text, false).expect("plain encode");
    let got = tokenizer.encode(text).expect("Tokenizer::encode");
    assert_eq!(got.ids, plain.get_ids(), "ids differ on {text:?}");
    assert_eq!(got.offsets, plain.get_offsets(), "offsets differ on {text:?}");
}

fn llama2() -> Tokenizer {
    let tokenizer = load(&real_tokenizer("llama2"));
    if std::env::var_os("VICUNA_NO_FAST_TOKENIZER").is_none() {
        assert!(tokenizer.is_fast(), "no fast path for Llama-2: {:?}", tokenizer.slow_because());
    }
    tokenizer
}

#[test]
fn llama2_bundled_example_is_identical() {
    let tokenizer = llama2();
    let templates: Vec<Template> = [TemplateName::VicunaV11, TemplateName::VicunaV0, TemplateName::Llama2]
        .into_iter()
        .map(|name| Template::new(name, &tokenizer).unwrap())
        .collect();
    let mut compared = 0;
    for c in bundled() {
        for t in &c.turns {
            assert_same(&tokenizer, &t.text);
            compared += 1;
        }
        if let Some(system) = &c.system {
            assert_same(&tokenizer, system);
            compared += 1;
        }
        for template in &templates {
            let rendered = template.render(c.system.as_deref(), &c.turns).unwrap();
            assert_same(&tokenizer, &rendered.text);
            compared += 1;
        }
    }
    assert!(compared > 30, "only {compared} texts compared");
    eprintln!("bundled example: {compared} texts identical");
}

/// Pieces random strings are made of: the places where offsets and merges are delicate.
const ALPHABET: &[&str] = &[
    " ",
    " ",
    " ",
    "  ",
    "   ",
    "    ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    " \n",
    "\u{a0}",
    "\u{3000}",
    "a",
    "e",
    "t",
    "s",
    "the",
    "The",
    "hello",
    "world",
    "ing",
    "tion",
    "▁",
    "▁▁",
    "▁ ",
    " ▁",
    "0",
    "1",
    "7",
    "42",
    "2023",
    "3.14",
    ".",
    ",",
    "!",
    "?",
    "'",
    "\"",
    "-",
    "_",
    "__",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "/",
    "\\",
    "#",
    "##",
    "*",
    "`",
    "```",
    "=",
    "==",
    "://",
    "http",
    "<s>",
    "</s>",
    "<unk>",
    "<s",
    "</",
    "s>",
    "</s",
    "<<SYS>>",
    "[INST]",
    "<0x0A>",
    "<pad>",
    "é",
    "e\u{301}",
    "n\u{303}",
    "a\u{308}\u{304}",
    "ß",
    "ø",
    "Ж",
    "привет",
    "γειά",
    "שלום",
    "مرحبا",
    "नमस्ते",
    "中",
    "文",
    "中文",
    "你好世界",
    "日本語",
    "カタカナ",
    "한국어",
    "龘",
    "𠜎",
    "🦙",
    "😀",
    "👍🏽",
    "🇫🇷",
    "👨\u{200d}👩\u{200d}👧",
    "\u{200b}",
    "\u{feff}",
    "\u{7}",
    "\u{0}",
    "\u{1b}[0m",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{e000}",
    "™",
    "€",
    "½",
    "→",
    "∑",
    "√",
    "ℝ",
    "ﬁ",
];

fn random_text(rng: &mut SplitMix64) -> String {
    let n = match rng.below(10) {
        0 => rng.below(4),
        1..=6 => rng.below(30),
        _ => rng.below(300),
    };
    (0..n).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()
}

#[test]
fn llama2_random_strings_are_identical() {
    let tokenizer = llama2();
    let mut rng = SplitMix64::new(0x5eed_f00d);
    let n = 5000;
    for _ in 0..n {
        let text = random_text(&mut rng);
        assert_same(&tokenizer, &text);
    }
    // Edge cases spelled out.
    for text in [
        "",
        " ",
        "  ",
        "\n",
        "▁",
        "▁▁ ",
        "<s>",
        "</s>",
        "<s></s>",
        "<s> </s>",
        " <s>",
        "<s> ",
        "a<s>b",
        "</s>\n</s>",
        "<unk><unk>",
        "🦙",
        " 🦙 ",
        "e\u{301}",
        "\u{301}",
        " \u{301}",
        "中文 中文",
        "a  b   c    d",
    ] {
        assert_same(&tokenizer, text);
    }
    eprintln!("random strings: {n} identical");
}

#[test]
fn other_tokenizers_fall_back() {
    let llama3 = load(&real_tokenizer("llama3"));
    assert!(!llama3.is_fast(), "Llama-3 (byte-level BPE with a pre-tokenizer) must use the plain encoder");
    let why = llama3.slow_because().expect("no fast path for Llama-3");
    eprintln!("llama3 falls back: {why}");
    let tiny = load(tiny_tokenizer());
    assert!(!tiny.is_fast(), "the trained byte-level tokenizer must use the plain encoder");
    let why = tiny.slow_because().expect("no fast path for the tiny tokenizer");
    eprintln!("tiny falls back: {why}");
}

#[test]
fn prep_split_is_byte_identical_without_fast_path() {
    let s = Scratch::new();
    let input = repo().join("tests/golden/sharegpt_raw_example.clean.json");
    let tok = real_tokenizer("llama2");
    let (fast_out, plain_out) = (s.path("fast.json"), s.path("plain.json"));
    for (out, env) in [(&fast_out, "0"), (&plain_out, "1")] {
        let args = [
            "prep",
            "split",
            input.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "--max-length",
            "256",
            "-o",
            out.to_str().unwrap(),
        ];
        let o = vicuna_env(&args, &[("VICUNA_NO_FAST_TOKENIZER", env)]);
        assert!(o.status.success(), "prep split failed:\n{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (std::fs::read(&fast_out).unwrap(), std::fs::read(&plain_out).unwrap());
    assert!(!a.is_empty());
    assert!(a == b, "prep split differs with and without the fast tokenizer");
}
