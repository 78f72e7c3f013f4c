//! Text to words, for the stages that compare texts by their words: near-duplicate dedup
//! (MinHash over word shingles) and decontamination (n-gram overlap and sentence BLEU). A word is a
//! maximal run of alphanumeric characters (Unicode), compared case-insensitively: for Latin and
//! most other scripts what Python's `re.findall(r"[^\W_]+", text.lower())` gives, so reference
//! scripts tokenize the same way (combining vowel signs, dotted capital I and final sigma differ).
//! Words are kept as 64-bit hashes (FNV-1a of the lowercased UTF-8), so comparing and indexing
//! them allocates nothing; two different words collide with probability about 2^-64 per pair.

use crate::util::rng::mix64;

/// FNV-1a 64-bit offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of every word of `text`, in order (appended to `out`, so several texts can be read
/// as one word sequence).
pub fn word_hashes_into(text: &str, out: &mut Vec<u64>) {
    let mut h = FNV_OFFSET;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            in_word = true;
            for lower in c.to_lowercase() {
                let mut buf = [0u8; 4];
                for &b in lower.encode_utf8(&mut buf).as_bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                }
            }
        } else if in_word {
            out.push(h);
            h = FNV_OFFSET;
            in_word = false;
        }
    }
    if in_word {
        out.push(h);
    }
}

/// The hash of every word of `text`, in order.
pub fn word_hashes(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    word_hashes_into(text, &mut out);
    out
}

/// The hash of a sequence of words (an n-gram), order-sensitive: `[a, b]` and `[b, a]` differ.
pub fn ngram_hash(words: &[u64]) -> u64 {
    let mut h = words.len() as u64;
    for &w in words {
        h = mix64(h.rotate_left(17) ^ w);
    }
    h
}

/// The hash of every `n`-gram of `words`, in order; a sequence shorter than `n` gives one hash,
/// of the whole sequence (so a short text still has a shingle), and an empty one none.
pub fn ngram_hashes(words: &[u64], n: usize) -> Vec<u64> {
    if words.is_empty() {
        return Vec::new();
    }
    if words.len() <= n {
        return vec![ngram_hash(words)];
    }
    words.windows(n).map(ngram_hash).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_alphanumeric_runs_compared_case_insensitively() {
        let a = word_hashes("Hello, WORLD! it's x_y 3.14 Ünïcode");
        let b = word_hashes("hello world it s x y 3 14 ünïcode");
        assert_eq!(a, b);
        assert_eq!(a.len(), 9);
        assert!(word_hashes(" ,;- ").is_empty());
        assert_ne!(word_hashes("ab"), word_hashes("ba"));
    }

    #[test]
    fn ngrams_are_ordered_and_short_texts_keep_one() {
        let w = word_hashes("a b c");
        assert_eq!(ngram_hashes(&w, 2).len(), 2);
        assert_eq!(ngram_hashes(&w, 5), vec![ngram_hash(&w)]);
        assert_ne!(ngram_hash(&w[0..2]), ngram_hash(&[w[1], w[0]]));
        assert!(ngram_hashes(&[], 3).is_empty());
    }
}
