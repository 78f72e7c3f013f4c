//! Training batches. Samples (`{input_ids, labels}`) come from `prep encode` output or are
//! encoded from conversations on load. Which samples an optimizer step trains on is a pure
//! function of (seed, epoch, position): a seeded shuffle per epoch, grouped by length in
//! megabatches of 50 global batches (as the Hugging Face `LengthGroupedSampler`), so resuming at
//! any step needs no replay and a step holds the same samples whatever the micro-batch size.
//! Micro-batches are padded to their longest sample, or packed: several samples per row, each with
//! its own positions and attention confined to itself.
use super::conversation::Fields;
use super::encode::{Sample, IGNORE};
use super::pipeline::{run_into, Plan, Read, TokenStages};
use super::records::RecordFile;
use super::report::{Reason, Report};
use super::select::SplitMix64;
use super::template::Template;
use crate::model::llama::Mask;
use crate::model::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Megabatch size in global batches for length grouping.
const MEGABATCH: usize = 50;

/// Loads samples from `path`: JSON Lines of `{id, input_ids, labels}` (as `prep encode` writes),
/// or conversations encoded here with `tokenizer` and `template`, truncated to `max_len`. Every id
/// and label must index a row of the model's embedding (`vocab_size`): a sample that does not is
/// an error naming the file and record here, before step 1, instead of a crash inside libtorch
/// at whatever step first draws it (and again at the same step after every resume).
pub fn load_samples(
    path: &Path,
    tokenizer: &Tokenizer,
    template: &Template,
    max_len: usize,
    vocab_size: usize,
) -> Result<(Vec<Sample>, Report)> {
    let file = RecordFile::open(path)?;
    // Only the top level of the first record is read (borrowed), so a deeply nested field can
    // neither exhaust the parser's recursion limit nor cost a copy.
    let pretokenized = file.len() > 0 && Fields::parse(file.record(0)).is_ok_and(|f| f.get("input_ids").is_some());
    if !pretokenized {
        let stages = TokenStages { tokenizer, template, split: None, encode: Some(max_len) };
        let plan = Plan { tokens: Some(stages), ..Plan::new("load", Read::Conversations) };
        let mut samples = Vec::new();
        let report = run_into(&plan, std::slice::from_ref(&file), &mut |_, bytes| {
            samples.push(serde_json::from_slice(bytes)?);
            Ok(())
        })?;
        return Ok((samples, report));
    }
    let mut report = Report::new("load");
    report.records_in = file.len();
    let mut samples = Vec::with_capacity(file.len());
    for i in 0..file.len() {
        let mut s: Sample = serde_json::from_str(file.record(i))
            .with_context(|| format!("{}: record {i} is not an {{id, input_ids, labels}} sample", path.display()))?;
        if let Some(bad) = s
            .input_ids
            .iter()
            .map(|&id| i64::from(id))
            .chain(s.labels.iter().copied().filter(|&l| l != IGNORE))
            .find(|&id| id < 0 || id >= i64::try_from(vocab_size).unwrap_or(i64::MAX))
        {
            let field = if s.input_ids.iter().any(|&id| i64::from(id) == bad) { "input id" } else { "label" };
            bail!(
                "{}: record {i} ({}) holds {field} {bad}, outside the model's vocabulary of {vocab_size} tokens; encode the data with the model's own tokenizer",
                path.display(),
                s.id
            );
        }
        if s.input_ids.len() != s.labels.len() {
            bail!(
                "{}: record {i} ({}) has {} input ids but {} labels",
                path.display(),
                s.id,
                s.input_ids.len(),
                s.labels.len()
            );
        }
        s.input_ids.truncate(max_len);
        s.labels.truncate(max_len);
        if targets(&s).iter().all(|&t| t == IGNORE) {
            report.drop(Reason::NoTrainableTokens);
            continue;
        }
        report.records_out += 1;
        samples.push(s);
    }
    report.written = report.records_out;
    Ok((samples, report))
}

/// What a data set holds, by content: sample count, token count and a CRC32 over every id, input id
/// and label in order. A resumed run compares it with the checkpoint's, so a data file replaced
/// under the same path (shrunk, grown, re-encoded) is refused instead of training on a different
/// order, while the same samples reached by another path are accepted.
pub fn fingerprint(samples: &[Sample]) -> String {
    let mut hasher = crc32fast::Hasher::new();
    let mut tokens = 0;
    for s in samples {
        hasher.update(&(s.id.len() as u64).to_le_bytes());
        hasher.update(s.id.as_bytes());
        hasher.update(&(s.input_ids.len() as u64).to_le_bytes());
        s.input_ids.iter().for_each(|id| hasher.update(&id.to_le_bytes()));
        s.labels.iter().for_each(|l| hasher.update(&l.to_le_bytes()));
        tokens += s.input_ids.len();
    }
    format!("{} samples, {tokens} tokens, crc32 {:08x}", samples.len(), hasher.finalize())
}

/// Next-token targets of a sample: `targets[t] = labels[t + 1]`, the last one ignored.
pub fn targets(s: &Sample) -> Vec<i64> {
    let mut t: Vec<i64> = s.labels.iter().skip(1).copied().collect();
    t.push(IGNORE);
    t
}

/// Number of trained targets of a sample (what the loss is averaged over).
pub fn trained_targets(s: &Sample) -> usize {
    s.labels.iter().skip(1).filter(|&&l| l != IGNORE).count()
}

/// The order of samples: a pure function of the seed, the epoch and the position in it.
#[derive(Debug, Clone)]
pub struct Sampler {
    lengths: Vec<usize>,
    /// Samples per optimizer step, over all processes and micro-batches.
    pub global_batch: usize,
    pub seed: u64,
    pub group_by_length: bool,
}

impl Sampler {
    /// A sampler over samples of `lengths`.
    pub fn new(lengths: Vec<usize>, global_batch: usize, seed: u64, group_by_length: bool) -> Sampler {
        Sampler { lengths, global_batch: global_batch.max(1), seed, group_by_length }
    }

    /// Optimizer steps per epoch (the last one may hold fewer samples).
    pub fn steps_per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.global_batch)
    }

    /// Sample indices of every step of `epoch`, in order: a seeded shuffle; with length grouping,
    /// megabatches sorted by length (stable, so equal lengths keep their shuffled order), cut into
    /// global batches whose order is shuffled again, so no two epochs repeat even when the whole
    /// data set fits in one megabatch.
    pub fn epoch(&self, epoch: usize) -> Vec<Vec<usize>> {
        let n = self.lengths.len();
        let mut rng = SplitMix64::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, &mut rng);
        if !self.group_by_length {
            return order.chunks(self.global_batch).map(<[usize]>::to_vec).collect();
        }
        for mega in order.chunks_mut(MEGABATCH * self.global_batch) {
            mega.sort_by(|&a, &b| self.lengths[b].cmp(&self.lengths[a]));
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(self.global_batch).map(<[usize]>::to_vec).collect();
        shuffle(&mut batches, &mut rng);
        batches
    }
}

/// Fisher-Yates with the project's portable generator.
fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// One micro-batch on the device: ids and next-token targets `[rows, len]`, positions, mask.
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub positions: Tensor,
    pub mask: Mask,
    /// Targets that are not ignored.
    pub trained: usize,
    /// Tokens that are not padding.
    pub tokens: usize,
}

/// Right-pads `samples` to the longest; causal attention keeps padding out of real tokens' view.
pub fn padded_batch(samples: &[&Sample], pad_id: u32, device: Device) -> Batch {
    let len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(1);
    let rows: Vec<Vec<&Sample>> = samples.iter().map(|&s| vec![s]).collect();
    let (ids, tgt, pos, _) = layout(&rows, len, pad_id);
    let b = samples.len() as i64;
    finish(ids, tgt, pos, b, len as i64, Mask::Causal, samples, device)
}

/// Packs `samples` (in order) into rows of at most `max_len` tokens, first fit; each row attends
/// block-diagonally (a token sees only earlier tokens of its own sample).
pub fn packed_batch(samples: &[&Sample], max_len: usize, pad_id: u32, device: Device) -> Batch {
    let mut rows: Vec<Vec<&Sample>> = Vec::new();
    let mut fill: Vec<usize> = Vec::new();
    for &s in samples {
        let n = s.input_ids.len();
        match fill.iter().position(|&f| f + n <= max_len) {
            Some(r) => {
                rows[r].push(s);
                fill[r] += n;
            }
            None => {
                rows.push(vec![s]);
                fill.push(n);
            }
        }
    }
    let len = fill.iter().copied().max().unwrap_or(1);
    let (ids, tgt, pos, seg) = layout(&rows, len, pad_id);
    let (b, t) = (rows.len() as i64, len as i64);
    let seg = Tensor::from_slice(&seg).view([b, t]);
    let same = seg.unsqueeze(2).eq_tensor(&seg.unsqueeze(1));
    let causal = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).tril(0);
    let mask = same.logical_and(&causal).unsqueeze(1).to_device(device);
    finish(ids, tgt, pos, b, t, Mask::Explicit(mask), samples, device)
}

/// Flat ids, targets, positions and segment numbers of rows laid out to `len`.
fn layout(rows: &[Vec<&Sample>], len: usize, pad_id: u32) -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) {
    let n = rows.len() * len;
    let (mut ids, mut tgt, mut pos, mut seg) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for row in rows {
        let mut used = 0;
        for (k, s) in row.iter().enumerate() {
            ids.extend(s.input_ids.iter().map(|&i| i64::from(i)));
            tgt.extend(targets(s));
            pos.extend(0..s.input_ids.len() as i64);
            seg.extend(std::iter::repeat_n(k as i64, s.input_ids.len()));
            used += s.input_ids.len();
        }
        // Padding: its own segment, ignored targets.
        ids.extend(std::iter::repeat_n(i64::from(pad_id), len - used));
        tgt.extend(std::iter::repeat_n(IGNORE, len - used));
        pos.extend(0..(len - used) as i64);
        seg.extend(std::iter::repeat_n(-1, len - used));
    }
    (ids, tgt, pos, seg)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    ids: Vec<i64>,
    tgt: Vec<i64>,
    pos: Vec<i64>,
    b: i64,
    t: i64,
    mask: Mask,
    samples: &[&Sample],
    device: Device,
) -> Batch {
    Batch {
        ids: Tensor::from_slice(&ids).view([b, t]).to_device(device),
        targets: Tensor::from_slice(&tgt).view([b, t]).to_device(device),
        positions: Tensor::from_slice(&pos).view([b, t]).to_device(device),
        mask,
        trained: samples.iter().map(|s| trained_targets(s)).sum(),
        tokens: samples.iter().map(|s| s.input_ids.len()).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_is_a_pure_function_and_covers_each_epoch() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 50 + 1).collect();
        let s = Sampler::new(lengths, 8, 5, true);
        assert_eq!(s.steps_per_epoch(), 13);
        let e0 = s.epoch(0);
        assert_eq!(e0, s.epoch(0));
        assert_ne!(e0, s.epoch(1));
        let mut all: Vec<usize> = e0.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(e0.iter().filter(|b| b.len() == 8).count(), 12, "all but one step are full");
        let plain = Sampler::new((0..103).map(|i| (i * 37) % 50 + 1).collect(), 8, 5, false);
        assert_eq!(plain.epoch(3), plain.epoch(3));
        assert_eq!(plain.epoch(3).last().unwrap().len(), 103 - 12 * 8);
    }

    #[test]
    fn length_grouping_keeps_similar_lengths_together() {
        let lengths: Vec<usize> = (0..64).map(|i| if i % 2 == 0 { 10 } else { 500 }).collect();
        let s = Sampler::new(lengths.clone(), 8, 1, true);
        for batch in s.epoch(0) {
            let first = lengths[batch[0]];
            assert!(batch.iter().all(|&i| lengths[i] == first), "a step mixes short and long samples: {batch:?}");
        }
    }
}
