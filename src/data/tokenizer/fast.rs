//! An exact fast path for SentencePiece-style BPE tokenizers without a pre-tokenizer (Llama-1/2,
//! legacy Mistral). Their `tokenizer.json` normalizes with `Prepend("▁")` then `Replace(" ", "▁")`
//! and has no pre-tokenizer, so `tokenizers` runs BPE over each whole text as a single word: its
//! word cache never hits and a long conversation costs one big merge loop (~6 MB/s).
//!
//! In such a vocabulary no token has `▁` after a non-`▁` character, so no merge can join a
//! non-`▁` character with the `▁` that follows it. Cutting the normalized text before every run
//! of `▁` that follows another character therefore gives pieces that BPE handles independently:
//! tokenizing the pieces one by one (behind a per-thread cache, since the same words recur)
//! gives exactly the ids of the whole text, and the offsets are mapped back to the original text
//! with the alignment conventions of `tokenizers` (the prepended `▁` belongs to the first
//! character of its segment; a byte-fallback token covers its whole character).
//!
//! [`FastEncoder::try_new`] refuses every configuration where this is not provably the same as
//! `tokenizers::Tokenizer::encode(text, false)`: another model or normalizer, a pre-tokenizer,
//! BPE dropout or `ignore_merges`, subword prefixes or suffixes, added tokens that are
//! normalized or strip spaces, truncation or padding, a post-processor that could move offsets,
//! and a vocabulary without the property above. The integration test `tests/fast_encode.rs`
//! compares it with the plain encoder on real text and random strings.
use super::Encoding;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use tokenizers::models::bpe::BPE;
use tokenizers::models::ModelWrapper;
use tokenizers::Model;

/// The word boundary marker of SentencePiece vocabularies.
const SPACE: char = '▁';
/// Its UTF-8 length: every `▁` in the normalized text is 3 bytes.
const SPACE_LEN: usize = 3;
/// Pieces longer than this (bytes) are tokenized every time rather than cached: they are rare
/// (long runs without spaces) and would fill the cache with text that does not recur.
const MAX_CACHED_PIECE: usize = 128;
/// Entries per thread and encoder before the cache is emptied (bounds its memory to ~100 MB).
const MAX_CACHE_ENTRIES: usize = 1 << 20;

/// Encodes texts exactly like `tokenizers::Tokenizer::encode(text, false)` for a Llama-2-style
/// tokenizer, an order of magnitude faster, because data preparation tokenizes every
/// conversation at least once and the plain encoder is the bottleneck of `prep split`/`encode`.
pub struct FastEncoder {
    /// Distinguishes the per-thread caches of different encoders.
    id: u64,
    /// A copy of the tokenizer's BPE model (its own cache only sees our cache misses).
    bpe: BPE,
    /// Leftmost-longest matcher of the added tokens (all `normalized: false`) and their ids.
    added: Option<(AhoCorasick, Vec<u32>)>,
}

impl FastEncoder {
    /// The fast encoder for `tokenizer` when it is provably exact for it, else the reason the
    /// fast path does not apply (callers keep the plain encoder), so tests and logs can say why.
    pub fn try_new(tokenizer: &tokenizers::Tokenizer) -> Result<FastEncoder, String> {
        let bpe = match tokenizer.get_model() {
            ModelWrapper::BPE(bpe) => bpe,
            _ => return Err("the model is not BPE".into()),
        };
        if bpe.dropout.is_some_and(|p| p > 0.0) {
            return Err("BPE dropout is on".into());
        }
        if bpe.ignore_merges {
            return Err("BPE ignore_merges is on (a whole piece found in the vocabulary would skip merges)".into());
        }
        if bpe.continuing_subword_prefix.is_some() || bpe.end_of_word_suffix.is_some() {
            return Err("BPE has a continuing-subword prefix or end-of-word suffix".into());
        }
        let expected = json!({
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        });
        let normalizer = tokenizer.get_normalizer().map(serde_json::to_value).transpose().map_err(|e| e.to_string())?;
        if normalizer.as_ref() != Some(&expected) {
            return Err(format!("the normalizer is not Sequence[Prepend(▁), Replace(' ', ▁)]: {normalizer:?}"));
        }
        if tokenizer.get_pre_tokenizer().is_some() {
            return Err("the tokenizer has a pre-tokenizer".into());
        }
        if tokenizer.get_truncation().is_some() || tokenizer.get_padding().is_some() {
            return Err("the tokenizer truncates or pads".into());
        }
        if let Some(post) = tokenizer.get_post_processor() {
            // Without special tokens, TemplateProcessing leaves the encoding as it is; others
            // (ByteLevel, RoBERTa) may trim offsets.
            let kind = serde_json::to_value(post).map_err(|e| e.to_string())?;
            if kind.get("type").and_then(Value::as_str) != Some("TemplateProcessing") {
                return Err(format!("the post-processor may change offsets: {}", kind["type"]));
            }
        }
        let added_vocab = tokenizer.get_added_vocabulary();
        if added_vocab.get_encode_special_tokens() {
            return Err("special tokens are encoded as text".into());
        }
        let mut added: Vec<(String, u32)> = Vec::new();
        for (&id, token) in added_vocab.get_added_tokens_decoder() {
            if token.normalized || token.lstrip || token.rstrip || token.single_word {
                return Err(format!("added token {:?} is normalized or strips spaces", token.content));
            }
            added.push((token.content.clone(), id));
        }
        // Any order gives the same leftmost-longest matches; sort for determinism.
        added.sort();
        let vocab = bpe.get_vocab();
        if !vocab.contains_key(SPACE.encode_utf8(&mut [0; 4]) as &str) {
            return Err("`▁` is not in the vocabulary".into());
        }
        if let Some(token) = vocab.keys().find(|t| space_after_other(t)) {
            return Err(format!("token {token:?} has `▁` after another character: merges may cross words"));
        }
        let added = if added.is_empty() {
            None
        } else {
            let matcher = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(added.iter().map(|(t, _)| t))
                .map_err(|e| e.to_string())?;
            Some((matcher, added.into_iter().map(|(_, id)| id).collect()))
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(FastEncoder { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), bpe: bpe.clone(), added })
    }

    /// Encodes `text` (special-token strings become their ids; nothing is added): the ids and
    /// byte offsets of `tokenizers::Tokenizer::encode(text, false)`.
    pub fn encode(&self, text: &str) -> tokenizers::Result<Encoding> {
        CACHES.with(|caches| {
            let mut caches = caches.borrow_mut();
            let cache = match caches.iter().position(|(id, _)| *id == self.id) {
                Some(i) => &mut caches[i].1,
                None => {
                    if caches.len() >= 4 {
                        caches.remove(0);
                    }
                    caches.push((self.id, PieceCache::default()));
                    &mut caches.last_mut().expect("just pushed").1
                }
            };
            let mut run =
                Runner { bpe: &self.bpe, cache, norm: String::new(), spaces: Vec::new(), out: Encoding::default() };
            run.out.ids.reserve(text.len() / 3);
            run.out.offsets.reserve(text.len() / 3);
            let mut last = 0;
            if let Some((matcher, ids)) = &self.added {
                for m in matcher.find_iter(text) {
                    if m.start() > last {
                        run.segment(text, last, m.start())?;
                    }
                    run.out.ids.push(ids[m.pattern().as_usize()]);
                    run.out.offsets.push((m.start(), m.end()));
                    last = m.end();
                }
            }
            if last < text.len() {
                run.segment(text, last, text.len())?;
            }
            Ok(run.out)
        })
    }
}

/// Whether `token` has `▁` right after a character other than `▁` (a merge across words).
fn space_after_other(token: &str) -> bool {
    let mut prev: Option<char> = None;
    for c in token.chars() {
        if c == SPACE && prev.is_some_and(|p| p != SPACE) {
            return true;
        }
        prev = Some(c);
    }
    false
}

/// A cached piece: `(id, start, end)` per token, offsets in bytes of the normalized piece.
type Tokens = Box<[(u32, u32, u32)]>;
type Fx = BuildHasherDefault<FxHasher>;

/// Normalized pieces of at most this many bytes are keyed inline (most words: `▁` and up to 12
/// ASCII letters), so that a cache hit reads one table slot and chases no pointer.
const SMALL_PIECE: usize = 15;
/// Tokens a small piece may have to be cached inline (more go to the general map).
const SMALL_TOKENS: usize = 4;

/// The tokens of a small piece: ids and `(start, end)` in the normalized piece.
#[derive(Clone, Copy)]
struct Small {
    len: u8,
    ids: [u32; SMALL_TOKENS],
    offsets: [(u8, u8); SMALL_TOKENS],
}

/// Slots of the direct-mapped table of recent small pieces (48 bytes each: it stays in the CPU
/// cache, where the frequent words are found without touching the big maps).
const HOT_SLOTS: usize = 1 << 14;

/// One thread's cache for one encoder: small pieces inline (key: the normalized bytes padded
/// with zeros, and the length in the last byte; a zero key is an empty slot), recent ones in a
/// small direct-mapped table in front; others by their normalized text.
struct PieceCache {
    hot: Box<[(u128, Small)]>,
    small: HashMap<u128, Small, Fx>,
    large: HashMap<Box<str>, Tokens, Fx>,
}

impl Default for PieceCache {
    fn default() -> Self {
        let empty = Small { len: 0, ids: [0; SMALL_TOKENS], offsets: [(0, 0); SMALL_TOKENS] };
        PieceCache {
            hot: vec![(0, empty); HOT_SLOTS].into_boxed_slice(),
            small: HashMap::default(),
            large: HashMap::default(),
        }
    }
}

/// The slot of a small piece in the hot table.
#[inline]
fn hot_slot(key: u128) -> usize {
    let mut h = FxHasher::default();
    h.add(key as u64);
    h.add((key >> 64) as u64);
    h.finish() as usize & (HOT_SLOTS - 1)
}

impl PieceCache {
    fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }
}

thread_local! {
    /// Per-thread piece caches, one per live encoder (the few most recent), so that worker
    /// threads never contend on a lock.
    static CACHES: RefCell<Vec<(u64, PieceCache)>> = const { RefCell::new(Vec::new()) };
}

/// The state of one `encode` call.
struct Runner<'a> {
    bpe: &'a BPE,
    cache: &'a mut PieceCache,
    /// The normalized piece, built on cache misses and for long pieces.
    norm: String,
    /// Original byte range of each `▁` at the start of the current piece.
    spaces: Vec<(usize, usize)>,
    out: Encoding,
}

/// Whether `b[i..]` starts with the UTF-8 encoding of `▁` (E2 96 81).
#[inline]
fn space_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + SPACE_LEN && b[i] == 0xE2 && b[i + 1] == 0x96 && b[i + 2] == 0x81
}

impl Runner<'_> {
    /// Normalizes `text[start..end]`, a segment between added tokens, and encodes it piece by
    /// piece. Normalized, a piece is a run of `▁` (the prepended one, spaces, literal `▁`) then
    /// a stretch of the original text without either, so only the run needs an offset map.
    fn segment(&mut self, text: &str, start: usize, end: usize) -> tokenizers::Result<()> {
        let b = &text.as_bytes()[..end];
        let first = text[start..end].chars().next().map_or(0, char::len_utf8);
        self.spaces.clear();
        // Prepend("▁"): aligned with the segment's first character.
        self.spaces.push((start, start + first));
        let mut i = start;
        loop {
            while i < end {
                if b[i] == b' ' {
                    self.spaces.push((i, i + 1));
                    i += 1;
                } else if space_at(b, i) {
                    self.spaces.push((i, i + SPACE_LEN));
                    i += SPACE_LEN;
                } else {
                    break;
                }
            }
            let body = i;
            loop {
                match memchr::memchr2(b' ', 0xE2, &b[i..]) {
                    None => {
                        i = end;
                        break;
                    }
                    Some(j) => {
                        i += j;
                        if b[i] == b' ' || space_at(b, i) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
            self.piece(text, body, i)?;
            if i >= end {
                return Ok(());
            }
            self.spaces.clear();
        }
    }

    /// Encodes one piece (its leading `▁`s in `spaces`, then `text[body..body_end]`) and
    /// appends its tokens with original offsets.
    fn piece(&mut self, text: &str, body: usize, body_end: usize) -> tokenizers::Result<()> {
        let head = self.spaces.len() * SPACE_LEN;
        let len = head + body_end - body;
        if len <= SMALL_PIECE {
            let mut key = [0u8; 16];
            for k in 0..self.spaces.len() {
                key[k * SPACE_LEN..(k + 1) * SPACE_LEN].copy_from_slice("▁".as_bytes());
            }
            key[head..len].copy_from_slice(&text.as_bytes()[body..body_end]);
            key[15] = len as u8;
            let key = u128::from_le_bytes(key);
            let slot = hot_slot(key);
            let hit = if self.cache.hot[slot].0 == key {
                Some(self.cache.hot[slot].1)
            } else {
                let found = self.cache.small.get(&key).copied();
                if let Some(small) = found {
                    self.cache.hot[slot] = (key, small);
                }
                found
            };
            if let Some(small) = hit {
                for t in 0..small.len as usize {
                    let (a, b) = small.offsets[t];
                    emit(&mut self.out, &self.spaces, text, body, small.ids[t], a as usize, b as usize);
                }
                return Ok(());
            }
            self.normalize(text, body, body_end);
            if self.cache.large.contains_key(self.norm.as_str()) {
                return self.large(text, body);
            }
            let tokens = self.bpe.tokenize(&self.norm)?;
            if tokens.len() <= SMALL_TOKENS {
                let mut small =
                    Small { len: tokens.len() as u8, ids: [0; SMALL_TOKENS], offsets: [(0, 0); SMALL_TOKENS] };
                for (t, token) in tokens.iter().enumerate() {
                    small.ids[t] = token.id;
                    small.offsets[t] = (token.offsets.0 as u8, token.offsets.1 as u8);
                    emit(&mut self.out, &self.spaces, text, body, token.id, token.offsets.0, token.offsets.1);
                }
                self.make_room();
                self.cache.small.insert(key, small);
                self.cache.hot[slot] = (key, small);
                return Ok(());
            }
        } else {
            self.normalize(text, body, body_end);
        }
        self.large(text, body)
    }

    /// Encodes the piece in `norm` through the general map.
    fn large(&mut self, text: &str, body: usize) -> tokenizers::Result<()> {
        if let Some(tokens) = self.cache.large.get(self.norm.as_str()) {
            for &(id, a, b) in tokens.iter() {
                emit(&mut self.out, &self.spaces, text, body, id, a as usize, b as usize);
            }
            return Ok(());
        }
        let tokens: Tokens = self
            .bpe
            .tokenize(&self.norm)?
            .into_iter()
            .map(|t| (t.id, t.offsets.0 as u32, t.offsets.1 as u32))
            .collect();
        for &(id, a, b) in tokens.iter() {
            emit(&mut self.out, &self.spaces, text, body, id, a as usize, b as usize);
        }
        if self.norm.len() <= MAX_CACHED_PIECE {
            self.make_room();
            self.cache.large.insert(self.norm.as_str().into(), tokens);
        }
        Ok(())
    }

    /// Writes the normalized piece into `norm`.
    fn normalize(&mut self, text: &str, body: usize, body_end: usize) {
        self.norm.clear();
        for _ in 0..self.spaces.len() {
            self.norm.push(SPACE);
        }
        self.norm.push_str(&text[body..body_end]);
    }

    /// Empties the cache when it is full (bounds its memory).
    fn make_room(&mut self) {
        if self.cache.len() >= MAX_CACHE_ENTRIES {
            *self.cache = PieceCache::default();
        }
    }
}

/// Appends one token whose range in the normalized piece is `a..b` (the piece: one `▁` per
/// entry of `spaces`, then `text[body..]`). As in `tokenizers`, a normalized range maps to the
/// original range from the start of the character holding its first byte to the end of the
/// character holding its last byte.
#[inline]
fn emit(out: &mut Encoding, spaces: &[(usize, usize)], text: &str, body: usize, id: u32, a: usize, b: usize) {
    let head = spaces.len() * SPACE_LEN;
    let start = if a < head {
        spaces[a / SPACE_LEN].0
    } else {
        let mut s = body + (a - head);
        while !text.is_char_boundary(s) {
            s -= 1;
        }
        s
    };
    let end = if b <= head {
        spaces[(b - 1) / SPACE_LEN].1
    } else {
        let mut e = body + (b - head);
        while !text.is_char_boundary(e) {
            e += 1;
        }
        e
    };
    out.ids.push(id);
    out.offsets.push((start, end));
}

/// The Firefox/rustc word-at-a-time hash with a MurmurHash3 finalizer (hashbrown picks buckets
/// from the low bits, which plain Fx leaves poorly mixed): several times faster than SipHash on
/// short keys (the pieces are words), and the keys are our own text, so flooding is no concern.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::normalizers::Replace;
    use tokenizers::AddedToken;

    /// A tiny Llama-style `tokenizer.json`: `▁` only at token starts, byte fallback, `<s>`/`</s>`.
    fn llama_like(extra: &[(&str, u32)], merges: &[(&str, &str)]) -> tokenizers::Tokenizer {
        let mut vocab = serde_json::Map::new();
        for (i, t) in ["<unk>", "<s>", "</s>", "▁"].iter().enumerate() {
            vocab.insert(t.to_string(), json!(i));
        }
        for b in 0..=255u32 {
            vocab.insert(format!("<{b:#04X}>"), json!(4 + b));
        }
        for (i, c) in "abcdehlorw".chars().enumerate() {
            vocab.insert(c.to_string(), json!(260 + i));
        }
        for (t, id) in extra {
            vocab.insert(t.to_string(), json!(id));
        }
        let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
        let special = |id: u32, content: &str| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        };
        let config = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ]},
            "pre_tokenizer": null,
            "post_processor": null,
            "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
                      "vocab": vocab, "merges": merges},
        });
        config.to_string().parse().expect("valid tokenizer.json")
    }

    fn same(tok: &tokenizers::Tokenizer, fast: &FastEncoder, text: &str) {
        let plain = tok.encode(text, false).unwrap();
        let got = fast.encode(text).unwrap();
        assert_eq!(got.ids, plain.get_ids(), "ids of {text:?}");
        assert_eq!(got.offsets, plain.get_offsets(), "offsets of {text:?}");
    }

    #[test]
    fn equals_plain_encoder_on_a_toy_vocabulary() {
        let tok = llama_like(
            &[("▁h", 300), ("▁he", 301), ("ll", 302), ("▁hell", 303), ("▁hello", 304), ("▁▁", 305), ("lo", 306)],
            &[("▁", "h"), ("▁h", "e"), ("l", "l"), ("▁he", "ll"), ("▁hell", "o"), ("▁", "▁"), ("l", "o")],
        );
        let fast = FastEncoder::try_new(&tok).expect("fast path applies");
        for text in [
            "",
            " ",
            "   ",
            "hello",
            " hello",
            "hello world",
            "hello  world   ",
            "hello</s>  hello<s>",
            "<s></s>",
            "</s> hello",
            "héllo wörld 中文 🦙",
            "a▁b ▁▁c",
            "\n\thello\n",
            "e\u{301}e\u{301} x",
        ] {
            same(&tok, &fast, text);
        }
    }

    #[test]
    fn refuses_a_vocabulary_with_space_inside_tokens() {
        let tok = llama_like(&[("o▁", 300)], &[("o", "▁")]);
        let why = FastEncoder::try_new(&tok).err().expect("must fall back");
        assert!(why.contains("after another character"), "{why}");
    }

    #[test]
    fn refuses_other_normalizers_and_pre_tokenizers() {
        let mut tok = llama_like(&[], &[]);
        tok.with_normalizer(Some(Replace::new(" ", "▁").unwrap()));
        assert!(FastEncoder::try_new(&tok).is_err());
        let mut tok = llama_like(&[], &[]);
        tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
        assert!(FastEncoder::try_new(&tok).is_err());
        let mut tok = llama_like(&[], &[]);
        tok.add_tokens(&[AddedToken::from("hel", false)]);
        assert!(FastEncoder::try_new(&tok).is_err(), "normalized added tokens fall back");
    }
}
