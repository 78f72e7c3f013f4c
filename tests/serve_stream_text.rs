//! Streamed text is the answer's text: `TextStream` (the incremental decoder behind `vicuna serve`'s
//! deltas and `vicuna chat`) releases pieces whose concatenation equals decoding all ids at once,
//! for the tiny byte-level tokenizer and the real Llama-2 (SentencePiece, byte fallback) and
//! Llama-3 tokenizers, on text with multi-byte characters and on random ids; and a streamed
//! answer from `vicuna serve` reads the same as the non-streamed one.
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use vicuna::data::tokenizer::Tokenizer;
use vicuna::infer::stream::TextStream;
use vicuna::util::rng::SplitMix64;

/// The pieces `TextStream` releases for `ids`, joined, and whether any was held back.
fn streamed(tokenizer: &Tokenizer, ids: &[u32]) -> String {
    let mut stream = TextStream::default();
    let mut text = String::new();
    for &id in ids {
        if let Some(piece) = stream.push(tokenizer, id).unwrap() {
            text.push_str(&piece);
        }
    }
    if let Some(piece) = stream.finish(tokenizer).unwrap() {
        text.push_str(&piece);
    }
    text
}

#[test]
fn streamed_pieces_join_to_the_decoded_text() {
    let mut tokenizers = vec![("tiny", tiny_tokenizer().to_path_buf())];
    for name in ["llama2", "llama3"] {
        tokenizers.push((name, real_tokenizer(name)));
    }
    let texts = [
        "Hello there, how are you?",
        "  leading spaces and\ttabs\nand new lines\n\n",
        "Café, naïve, Straße, Ελληνικά, русский, 中文字符, 日本語のテキスト, 한국어",
        "Emoji 🦙🦙 and families 👩‍👩‍👧 and flags 🇫🇷, combining e\u{301}, zero\u{200b}width",
        "Code: fn main() { println!(\"{}\", 1 + 2); }   // done",
    ];
    for (name, path) in tokenizers {
        let tokenizer = Tokenizer::load(&path, &Default::default()).unwrap();
        for text in texts {
            let ids = tokenizer.encode(text).unwrap().ids;
            let want = tokenizer.decode(&ids, true).unwrap();
            assert_eq!(streamed(&tokenizer, &ids), want, "{name}: {text:?}");
            // Any suffix, as an answer starting mid-text would.
            for start in 1..ids.len().min(6) {
                let want = tokenizer.decode(&ids[start..], true).unwrap();
                assert_eq!(streamed(&tokenizer, &ids[start..]), want, "{name}: {text:?} from token {start}");
            }
        }
        let vocab = tokenizer.vocab_size() as u64;
        let mut rng = SplitMix64::new(7);
        for round in 0..200 {
            let ids: Vec<u32> = (0..1 + rng.below(40)).map(|_| (rng.next_u64() % vocab) as u32).collect();
            let want = tokenizer.decode(&ids, true).unwrap();
            assert_eq!(streamed(&tokenizer, &ids), want, "{name}: random ids, round {round}: {ids:?}");
        }
    }
}

#[test]
fn a_streamed_answer_reads_like_the_non_streamed_one() {
    let s = Scratch::new();
    let server = LoggedServer::start(&tiny_model(&s), &[], ONE_THREAD);
    let served = &server.served;
    let agent = http_agent(Duration::from_secs(60));
    for prompt in ["Name a color.", "Écris un poème 🦙", "中文"] {
        let (status, text) = post_chat(&agent, &served.base, &chat_body(prompt, json!({"max_tokens": 60})));
        assert_eq!(status, 200, "{text}");
        let whole: Value = serde_json::from_str(&text).unwrap();
        let body = chat_body(prompt, json!({"max_tokens": 60, "stream": true}));
        let (status, text) = post_chat(&agent, &served.base, &body);
        assert_eq!(status, 200, "{text}");
        let mut joined = String::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
            let chunk: Value = serde_json::from_str(line).unwrap();
            joined.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
        assert_eq!(joined.trim(), whole["choices"][0]["message"]["content"], "{prompt}");
    }
}
