//! Sentence BLEU (Papineni et al. 2002) exactly as NLTK computes it:
//! `nltk.translate.bleu_score.sentence_bleu([reference], hypothesis,
//! smoothing_function=SmoothingFunction().method1)` with the default weights (0.25 for 1- to
//! 4-grams), one reference, over the words of `data::words` (lowercased alphanumeric runs).
//!
//! - modified precision `p_n` = hypothesis n-grams clipped by their count in the reference,
//!   over `max(1, hypothesis n-gram count)`;
//! - no matching unigram gives 0;
//! - smoothing method 1 (Chen and Cherry 2014): a precision with 0 matches becomes
//!   `0.1 / denominator`;
//! - brevity penalty 1 when the hypothesis is longer than the reference, else
//!   `exp(1 - r / c)`; the score is `BP * exp(sum 0.25 * ln p_n)`, in 0 to 1.
//!
//! Golden values from NLTK 3.10.4 are in `tests/golden/sentence_bleu.jsonl`
//! (`scripts/fixtures/make_bleu_golden.sh`).
use super::words::ngram_hash;

/// BLEU's n-gram orders (1 to 4) with equal weights.
const MAX_ORDER: usize = 4;
/// NLTK's `SmoothingFunction().epsilon`.
const EPSILON: f64 = 0.1;

/// A text's n-gram counts for n = 1..=4, each sorted by n-gram hash, computed once per text so
/// that scoring one text against many others only merges sorted lists.
#[derive(Debug, Clone, Default)]
pub struct NgramCounts {
    /// Number of words.
    pub len: usize,
    /// `orders[n - 1]`: (n-gram hash, count), sorted by hash.
    orders: [Vec<(u64, u32)>; MAX_ORDER],
}

impl NgramCounts {
    /// The counts of `words` (word hashes, `data::words`).
    pub fn new(words: &[u64]) -> NgramCounts {
        let mut orders: [Vec<(u64, u32)>; MAX_ORDER] = Default::default();
        for (n, counts) in (1..=MAX_ORDER).zip(orders.iter_mut()) {
            let mut hashes: Vec<u64> = words.windows(n).map(ngram_hash).collect();
            hashes.sort_unstable();
            for h in hashes {
                match counts.last_mut() {
                    Some((last, count)) if *last == h => *count += 1,
                    _ => counts.push((h, 1)),
                }
            }
        }
        NgramCounts { len: words.len(), orders }
    }

    /// The hypothesis n-grams of order `n` (1-based) found in `reference`, each clipped to its
    /// count there.
    fn clipped_matches(&self, reference: &NgramCounts, n: usize) -> u64 {
        let (hyp, refs) = (&self.orders[n - 1], &reference.orders[n - 1]);
        let (mut i, mut j, mut matches) = (0, 0, 0u64);
        while i < hyp.len() && j < refs.len() {
            match hyp[i].0.cmp(&refs[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    matches += u64::from(hyp[i].1.min(refs[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
        matches
    }
}

/// The n-gram count of order `n` in a text of `len` words, at least 1 (NLTK's denominator).
fn denominator(len: usize, n: usize) -> f64 {
    (len + 1).saturating_sub(n).max(1) as f64
}

/// NLTK's brevity penalty for a hypothesis of `c` words against a reference of `r`.
fn brevity_penalty(r: usize, c: usize) -> f64 {
    if c > r {
        1.0
    } else if c == 0 {
        0.0
    } else {
        (1.0 - r as f64 / c as f64).exp()
    }
}

/// Sentence BLEU of `hypothesis` against one `reference` (see the module doc).
pub fn sentence_bleu(reference: &NgramCounts, hypothesis: &NgramCounts) -> f64 {
    let c = hypothesis.len;
    let mut log_sum = 0.0;
    for n in 1..=MAX_ORDER {
        let matches = hypothesis.clipped_matches(reference, n);
        if n == 1 && matches == 0 {
            return 0.0;
        }
        let p = if matches == 0 { EPSILON } else { matches as f64 } / denominator(c, n);
        log_sum += 0.25 * p.ln();
    }
    brevity_penalty(reference.len, c) * log_sum.exp()
}

/// An upper bound of [`sentence_bleu`] knowing only the lengths and `bigram_hits`, the number of
/// hypothesis positions whose bigram occurs in the reference: a matching 3- or 4-gram at a
/// position implies a matching bigram there, so `bigram_hits` bounds the matches of orders 2 to 4
/// (and 1 bounds the unigram precision). Used to skip exact scoring of hopeless candidates.
pub fn bleu_upper_bound(reference_len: usize, hypothesis_len: usize, bigram_hits: usize) -> f64 {
    let c = hypothesis_len;
    let mut log_sum = 0.0;
    for n in 2..=MAX_ORDER {
        let d = denominator(c, n);
        let p = if bigram_hits == 0 { EPSILON / d } else { (bigram_hits as f64).min(d) / d };
        log_sum += 0.25 * p.ln();
    }
    brevity_penalty(reference_len, c) * log_sum.exp()
}

/// The best score a hypothesis can reach without sharing a bigram with the reference:
/// `0.1^(3/4)`, about 0.178. Above it, only texts sharing a bigram need scoring.
pub fn max_without_shared_bigram() -> f64 {
    EPSILON.powf(0.75)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::words::word_hashes;

    fn bleu(reference: &str, hypothesis: &str) -> f64 {
        sentence_bleu(&NgramCounts::new(&word_hashes(reference)), &NgramCounts::new(&word_hashes(hypothesis)))
    }

    #[test]
    fn worked_example_and_edge_cases() {
        // p1 = 3/6; no bigram matches: 0.1/5, 0.1/4, 0.1/3; BP = 1 (6 > 5 words).
        let expected =
            (0.25 * ((3.0f64 / 6.0).ln() + (0.1f64 / 5.0).ln() + (0.1f64 / 4.0).ln() + (0.1f64 / 3.0).ln())).exp();
        assert!((bleu("a b c d e", "a x c y e z") - expected).abs() < 1e-15);
        assert_eq!(bleu("a b c", "x y z"), 0.0);
        assert_eq!(bleu("a b c", ""), 0.0);
        assert!((bleu("The cat sat on the mat.", "the cat sat on the mat") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_bound_is_never_below_the_score() {
        let texts = ["a b c d e f g", "a b x d e f y", "b c a", "x y z w", "a b a b a b", "f g"];
        for r in texts {
            for h in texts {
                let (rw, hw) = (word_hashes(r), word_hashes(h));
                let ref_bigrams: std::collections::HashSet<u64> = rw.windows(2).map(ngram_hash).collect();
                let hits = hw.windows(2).filter(|w| ref_bigrams.contains(&ngram_hash(w))).count();
                let score = sentence_bleu(&NgramCounts::new(&rw), &NgramCounts::new(&hw));
                assert!(score <= bleu_upper_bound(rw.len(), hw.len(), hits) + 1e-12, "{r:?} {h:?}");
                if hits == 0 {
                    assert!(score <= max_without_shared_bigram() + 1e-12);
                }
            }
        }
    }
}
