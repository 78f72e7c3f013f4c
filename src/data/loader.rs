//! Training samples: `{id, input_ids, labels}` from `prep encode` output, or encoded from
//! conversations on load, checked against the model's vocabulary; their next-token targets; and a
//! fingerprint of the whole set by content, which checkpoints record.
use super::conversation::Fields;
use super::encode::{Sample, IGNORE};
use super::pipeline::{run_into, Plan, Read, TokenStages};
use super::records::RecordFile;
use super::report::{Reason, Report};
use super::template::Template;
use crate::data::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use std::path::Path;

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
