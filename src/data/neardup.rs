//! Near-duplicate dedup (`prep dedup --near`): conversations whose user queries are near-copies
//! of an earlier one (a few words edited, added or removed) are dropped; the first of each
//! cluster, in input order, stays.
//!
//! The method is MinHash with LSH banding (Broder 1997; Leskovec, Rajaraman and Ullman, "Mining
//! of Massive Datasets", ch. 3), as datasketch's `MinHashLSH`, text-dedup's `minhash` and
//! datatrove's `MinhashDedup` do it:
//! - the text is the conversation's user turns, read as one sequence of words (`data::words`:
//!   alphanumeric runs, case-insensitive); its shingles are the word `shingle`-grams (a text
//!   shorter than that is one shingle);
//! - the signature is, for each of `num_perm` hash functions, the minimum over the shingles
//!   (64-bit shingle hash XOR a per-function seed from SplitMix64(`seed`), mixed with SplitMix64's
//!   finaliser, top 32 bits kept). Two signatures agree at a position with probability equal to
//!   the Jaccard similarity of the shingle sets;
//! - the signature is cut into `bands` bands of `rows` values; two texts are candidates when any
//!   band is identical, which happens with probability `1 - (1 - J^rows)^bands`. Without explicit
//!   bands and rows, they are datasketch's choice for the threshold: the pair minimising the
//!   equally weighted areas of false positives below the threshold and false negatives above it.
//!
//! Clusters are built in input order, as datasketch's usual insert-or-query loop does: a
//! conversation that is a candidate of a kept one is dropped (and joins the earliest such kept
//! conversation's cluster); otherwise it is kept and indexed. Dropped conversations are not
//! indexed, so a cluster never chains through removed texts. No pair is verified after LSH (as in
//! text-dedup and datatrove); the S-curve's steepness is what separates near from far.
//!
//! Written here rather than taken from a crate: the Rust MinHash crates on crates.io are small
//! and unmaintained, and the whole method is a hash, a minimum and a hash map.
use super::words::{ngram_hashes, word_hashes_into};
use crate::util::rng::mix64;
use crate::util::rng::SplitMix64;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// Settings of near-duplicate detection, checked by [`NearOptions::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct NearOptions {
    /// Jaccard similarity of shingle sets at which the LSH S-curve is centred.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle: usize,
    /// Hash functions in a signature.
    pub num_perm: usize,
    /// LSH bands and rows per band (`bands * rows <= num_perm`).
    pub bands: usize,
    pub rows: usize,
    /// Seed of the hash functions: the same seed gives the same clusters on every machine.
    pub seed: u64,
}

impl NearOptions {
    /// Checked options; `bands_rows` of `None` takes datasketch's optimum for the threshold.
    pub fn new(
        threshold: f64,
        shingle: usize,
        num_perm: usize,
        bands_rows: Option<(usize, usize)>,
        seed: u64,
    ) -> Result<NearOptions> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            bail!("--near-threshold {threshold} must be in (0, 1]");
        }
        if shingle == 0 || num_perm == 0 {
            bail!("--shingle and --num-perm must be at least 1");
        }
        let (bands, rows) = bands_rows.unwrap_or_else(|| optimal_bands_rows(threshold, num_perm));
        if bands == 0 || rows == 0 || bands.checked_mul(rows).is_none_or(|p| p > num_perm) {
            bail!("--bands {bands} x --rows {rows} must be at least 1 each and at most --num-perm {num_perm}");
        }
        Ok(NearOptions { threshold, shingle, num_perm, bands, rows, seed })
    }

    /// The per-function seeds of the signature.
    fn perm_seeds(&self) -> Vec<u64> {
        let mut rng = SplitMix64::new(self.seed);
        (0..self.num_perm).map(|_| rng.next_u64()).collect()
    }
}

/// `∫ f` over `[a, b]` by Simpson's rule (the S-curves are smooth; 200 intervals give about 1e-9).
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const N: usize = 200;
    let h = (b - a) / N as f64;
    let inner: f64 = (1..N).map(|i| if i % 2 == 1 { 4.0 } else { 2.0 } * f(a + i as f64 * h)).sum();
    (f(a) + f(b) + inner) * h / 3.0
}

/// datasketch's `_optimal_param(threshold, num_perm, 0.5, 0.5)`: the (bands, rows) with
/// `bands * rows <= num_perm` that minimise the mean of the false-positive area below the
/// threshold and the false-negative area above it.
pub fn optimal_bands_rows(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best = (f64::INFINITY, (1, 1));
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let (bf, rf) = (b as f64, r as i32);
            let fp = integrate(|s| 1.0 - (1.0 - s.powi(rf)).powf(bf), 0.0, threshold);
            let fn_ = integrate(|s| (1.0 - s.powi(rf)).powf(bf), threshold, 1.0);
            let error = 0.5 * fp + 0.5 * fn_;
            if error < best.0 {
                best = (error, (b, r));
            }
        }
    }
    best.1
}

/// Computes signatures: holds the hash seeds, shared by all threads.
#[derive(Debug, Clone)]
pub struct MinHasher {
    shingle: usize,
    seeds: Vec<u64>,
}

impl MinHasher {
    /// A hasher for `options`.
    pub fn new(options: &NearOptions) -> MinHasher {
        MinHasher { shingle: options.shingle, seeds: options.perm_seeds() }
    }

    /// The signature of a text given as parts read in order (a conversation's user turns); `None`
    /// when it has no word at all (nothing to compare: never a near-duplicate).
    pub fn signature<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> Option<Vec<u32>> {
        let mut words = Vec::new();
        for part in parts {
            word_hashes_into(part, &mut words);
        }
        let mut shingles = ngram_hashes(&words, self.shingle);
        if shingles.is_empty() {
            return None;
        }
        shingles.sort_unstable();
        shingles.dedup();
        let mut signature = vec![u32::MAX; self.seeds.len()];
        for (slot, &seed) in signature.iter_mut().zip(&self.seeds) {
            let min = shingles.iter().map(|&s| (mix64(s ^ seed) >> 32) as u32).min();
            *slot = min.unwrap_or(u32::MAX);
        }
        Some(signature)
    }
}

/// What [`NearIndex::check`] found for a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Near {
    /// No kept conversation is a candidate: kept, and indexed.
    Kept,
    /// A near-duplicate of kept conversation `cluster` (numbered from 0 in order of keeping);
    /// `first` when it is the first one removed from that cluster.
    Duplicate { cluster: usize, first: bool },
}

/// The LSH index of the kept conversations: one hash map per band from the band's hash to the
/// kept conversation that has it. Each bucket holds one conversation, since a later one landing
/// in it is dropped.
pub struct NearIndex {
    rows: usize,
    bands: Vec<HashMap<u64, usize>>,
    kept: usize,
    /// Whether each kept conversation has lost a near-duplicate yet.
    has_duplicates: Vec<bool>,
}

impl NearIndex {
    /// An empty index for `options`.
    pub fn new(options: &NearOptions) -> NearIndex {
        NearIndex {
            rows: options.rows,
            bands: vec![HashMap::new(); options.bands],
            kept: 0,
            has_duplicates: Vec::new(),
        }
    }

    /// Decides on the next conversation in input order, given its signature.
    pub fn check(&mut self, signature: &[u32]) -> Near {
        let keys: Vec<u64> = (0..self.bands.len())
            .map(|band| {
                let values = &signature[band * self.rows..(band + 1) * self.rows];
                values.iter().fold(mix64(band as u64), |h, &v| mix64(h.rotate_left(23) ^ u64::from(v)))
            })
            .collect();
        let cluster = keys.iter().zip(&self.bands).filter_map(|(key, map)| map.get(key).copied()).min();
        match cluster {
            Some(cluster) => {
                let first = !std::mem::replace(&mut self.has_duplicates[cluster], true);
                Near::Duplicate { cluster, first }
            }
            None => {
                for (key, map) in keys.into_iter().zip(&mut self.bands) {
                    map.insert(key, self.kept);
                }
                self.has_duplicates.push(false);
                self.kept += 1;
                Near::Kept
            }
        }
    }
}

/// A conversation named in the clusters file: its id and its position across all inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub record: usize,
}

/// One removal: the kept conversation of the cluster and the near-duplicate removed.
#[derive(Debug, Clone)]
pub struct Removed {
    pub kept: Member,
    pub removed: Member,
}

/// Writes the clusters (`--clusters FILE`, JSON Lines, in order of their kept conversation):
/// `{"kept": {"id", "record"}, "removed": [{"id", "record"}, ...]}`, so a reviewer can see what
/// each removal was judged to copy. Returns the number of clusters.
pub fn write_clusters(path: &Path, removed: &[Removed]) -> Result<usize> {
    let mut clusters: Vec<(&Member, Vec<&Member>)> = Vec::new();
    let mut sorted: Vec<&Removed> = removed.iter().collect();
    sorted.sort_by_key(|r| (r.kept.record, r.removed.record));
    for r in sorted {
        match clusters.last_mut() {
            Some((kept, members)) if kept.record == r.kept.record => members.push(&r.removed),
            _ => clusters.push((&r.kept, vec![&r.removed])),
        }
    }
    let mut out = Vec::new();
    for (kept, removed) in &clusters {
        serde_json::to_writer(&mut out, &serde_json::json!({"kept": kept, "removed": removed}))?;
        out.push(b'\n');
    }
    crate::util::atomic::write_bytes(path, &out)?;
    Ok(clusters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_rows_match_datasketch() {
        // datasketch 1.6 `_optimal_param(t, 128, 0.5, 0.5)` (scipy quad integration).
        assert_eq!(optimal_bands_rows(0.5, 128), (25, 5));
        assert_eq!(optimal_bands_rows(0.7, 128), (14, 9));
        assert_eq!(optimal_bands_rows(0.8, 128), (9, 13));
    }

    #[test]
    fn identical_texts_share_signatures_and_different_ones_do_not() {
        let options = NearOptions::new(0.5, 2, 128, None, 1).unwrap();
        let hasher = MinHasher::new(&options);
        let a = hasher.signature(["How do I bake bread at home without yeast?"]).unwrap();
        let b = hasher.signature(["how do i bake BREAD at home, without yeast"]).unwrap();
        let c = hasher.signature(["Explain the rules of cricket to a ten year old child."]).unwrap();
        assert_eq!(a, b);
        let agree = a.iter().zip(&c).filter(|(x, y)| x == y).count();
        assert!(agree < 8, "{agree} of 128 positions agree for unrelated texts");
        assert!(hasher.signature(["?!"]).is_none());
        let mut index = NearIndex::new(&options);
        assert_eq!(index.check(&a), Near::Kept);
        assert_eq!(index.check(&c), Near::Kept);
        assert_eq!(index.check(&b), Near::Duplicate { cluster: 0, first: true });
        assert_eq!(index.check(&b), Near::Duplicate { cluster: 0, first: false });
    }
}
