//! `prep mix`: several conversation files into one training mix by weight, as Koala mixed its
//! sources. A source of `n` readable conversations with weight `w` contributes `round(w * n)`
//! conversations: a weight above 1 repeats the whole source `floor(w)` times and samples the
//! rest, a weight below 1 samples it, 0 leaves it out. With `--total N` the same proportions
//! (`w * n` each) are scaled to exactly `N` conversations (largest remainders; ties go to the
//! earlier source). Copies after the first get the id `{id}_copy{k}`, so a source's ids stay
//! unique (ids two sources share are kept as they are: `convert --from` prefixes them by format),
//! and the whole mix is shuffled, so no source comes in one block. Mix last: a dedup after it
//! would take the copies for duplicates.
//!
//! Deterministic: every random choice comes from SplitMix64 seeded by `--seed` (one stream per
//! source for the sample, one for the shuffle), and records are parsed in parallel but written
//! in the shuffled order, so the same inputs and seed give the same bytes on any thread count.
//! The report gives each source's conversations and share (and tokens and token share with
//! `--tokenizer`: the conversation rendered with the template, untruncated).
use super::conversation::{Conversation, Style};
use super::pipeline::{is_malformed, malformed, open_all};
use super::records::RecordFile;
use super::report::{Reason, Report};
use super::select::choose;
use super::stats::encode_whole;
use super::template::Template;
use super::tokenizer::Tokenizer;
use super::writer::RecordWriter;
use crate::util::progress::progress_bar;
use crate::util::rng::SplitMix64;
use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One `PATH=WEIGHT` argument.
#[derive(Debug, Clone)]
pub struct Weighted {
    pub path: PathBuf,
    pub weight: f64,
}

impl FromStr for Weighted {
    type Err = String;

    /// Splits at the last `=`, so a path may hold one; the weight is a finite number >= 0.
    fn from_str(arg: &str) -> Result<Weighted, String> {
        let Some((path, weight)) = arg.rsplit_once('=') else {
            return Err(format!("`{arg}` is not SOURCE=WEIGHT (a file, `=`, and a weight such as 0.5 or 2)"));
        };
        match weight.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 && !path.is_empty() => Ok(Weighted { path: path.into(), weight: w }),
            _ => Err(format!("`{arg}`: the weight must be a finite number at least 0 after a file name")),
        }
    }
}

/// How to mix.
pub struct MixOptions<'a> {
    pub seed: u64,
    /// Scale the mix to exactly this many conversations.
    pub total: Option<usize>,
    pub style: Style,
    /// Malformed records stop the run instead of being counted.
    pub strict: bool,
    /// Count tokens per source with this tokenizer and template.
    pub tokens: Option<(&'a Tokenizer, &'a Template)>,
}

/// What one source gave to the mix.
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    pub source: String,
    pub weight: f64,
    /// Readable conversations in the source.
    pub conversations_in: usize,
    /// Conversations of this source in the mix (copies included).
    pub conversations: usize,
    /// `conversations` over the whole mix.
    pub share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_share: Option<f64>,
}

/// The mix's report: records in and out with drops by reason, and each source's share.
#[derive(Debug, Clone, Serialize)]
pub struct MixReport {
    #[serde(flatten)]
    pub report: Report,
    pub seed: u64,
    pub sources: Vec<Share>,
}

/// A readable record of one source, with its token count when counted.
struct Valid {
    index: u32,
    tokens: u32,
}

/// One conversation of the mix: which source, which record, which copy.
#[derive(Clone, Copy)]
struct Pick {
    source: u32,
    record: u32,
    copy: u32,
}

/// Records parsed (and serialised) per parallel batch.
const BATCH: usize = 2048;

/// Mixes `sources` into `output` and reports each one's share.
pub fn mix(sources: &[Weighted], output: &Path, options: &MixOptions) -> Result<MixReport> {
    let paths: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    for (i, path) in paths.iter().enumerate() {
        let same = |other: &PathBuf| crate::util::atomic::same_file(path, other);
        if let Some(earlier) = paths[..i].iter().find(|other| same(other)) {
            bail!(
                "{} is listed twice (also as {}); give each source one weight (2 repeats it)",
                path.display(),
                earlier.display()
            );
        }
    }
    let files = open_all(&paths)?;
    let mut report = Report::new("mix");
    let mut valid = Vec::with_capacity(files.len());
    for file in &files {
        report.records_in += file.len();
        valid.push(readable(file, options, &mut report)?);
    }
    let counts = counts(sources, &valid, options.total)?;
    let mut rng = SplitMix64::new(options.seed);
    let mut picks = Vec::with_capacity(counts.iter().sum());
    for (s, (records, &count)) in valid.iter().zip(&counts).enumerate() {
        let source_seed = rng.next_u64();
        if records.is_empty() {
            continue;
        }
        let (full, rest) = (count / records.len(), count % records.len());
        let extra = choose(records.len(), rest, source_seed);
        for (r, record) in records.iter().enumerate() {
            let copies = full + usize::from(extra[r]);
            if copies == 0 {
                report.drop(Reason::NotSelected);
                continue;
            }
            report.records_out += 1;
            for copy in 0..copies as u32 {
                picks.push(Pick { source: s as u32, record: record.index, copy });
            }
        }
    }
    rng.shuffle(&mut picks);
    write(&files, &picks, output, options.style)?;
    report.written = picks.len();
    let shares = shares(sources, &valid, &picks, options.tokens.is_some());
    Ok(MixReport { report, seed: options.seed, sources: shares })
}

/// The readable records of `file` (malformed ones counted, or fatal under `--strict`), with
/// their token counts when asked.
fn readable(file: &RecordFile, options: &MixOptions, report: &mut Report) -> Result<Vec<Valid>> {
    let bar = progress_bar(file.len() as u64, "mix", "records");
    let mut out = Vec::with_capacity(file.len());
    let mut start = 0;
    while start < file.len() {
        let end = (start + BATCH).min(file.len());
        let parsed: Vec<Result<u32, Reason>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let c = Conversation::parse(file.record(i), i)?;
                let tokens = options.tokens.and_then(|t| encode_whole(&c, t)).map_or(0, |s| s.input_ids.len());
                Ok(tokens.min(u32::MAX as usize) as u32)
            })
            .collect();
        for (i, outcome) in (start..end).zip(parsed) {
            match outcome {
                Ok(tokens) => out.push(Valid { index: i as u32, tokens }),
                Err(reason) if options.strict && is_malformed(reason) => return Err(malformed(file, i, reason, None)),
                Err(reason) => report.drop(reason),
            }
        }
        bar.inc((end - start) as u64);
        start = end;
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The most conversations one mix writes: picks number their copies in a `u32`, and the pick list
/// (12 bytes each) stays in memory.
const MAX_MIX: usize = u32::MAX as usize;

/// Conversations each source contributes: `round(w * n)`, or with `total` those amounts scaled
/// to sum to exactly `total` (largest remainders, earlier sources first on ties).
/// Refuses a mix larger than [`MAX_MIX`] before anything is allocated.
fn counts(sources: &[Weighted], valid: &[Vec<Valid>], total: Option<usize>) -> Result<Vec<usize>> {
    let wanted: Vec<f64> = sources.iter().zip(valid).map(|(s, v)| s.weight * v.len() as f64).collect();
    for (source, w) in sources.iter().zip(&wanted) {
        if !(w.round() <= MAX_MIX as f64) {
            bail!(
                "{}: weight {:e} asks for {w:e} conversations, more than a mix can hold ({MAX_MIX}); lower the weight",
                source.path.display(),
                source.weight
            );
        }
    }
    let sum: f64 = wanted.iter().sum();
    let Some(total) = total else {
        if sum.round() > MAX_MIX as f64 {
            bail!("the sources ask for {sum:e} conversations together, more than a mix can hold ({MAX_MIX}); lower the weights");
        }
        return Ok(wanted.iter().map(|w| w.round() as usize).collect());
    };
    if total > MAX_MIX {
        bail!("--total {total}: more conversations than a mix can hold ({MAX_MIX})");
    }
    if sum <= 0.0 {
        bail!("--total {total}: nothing to mix (every source is empty or has weight 0)");
    }
    let exact: Vec<f64> = wanted.iter().map(|w| w * total as f64 / sum).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let missing = total.saturating_sub(counts.iter().sum());
    for &s in order.iter().cycle().take(missing) {
        counts[s] += 1;
    }
    Ok(counts)
}

/// Writes the picks in order: batches are parsed and serialised in parallel, written in sequence.
fn write(files: &[RecordFile], picks: &[Pick], output: &Path, style: Style) -> Result<()> {
    let mut writer = RecordWriter::create(output)?;
    let bar = progress_bar(picks.len() as u64, "mix", "conversations");
    for batch in picks.chunks(BATCH) {
        let records: Vec<Vec<u8>> = batch
            .par_iter()
            .map(|p| {
                let (file, i) = (&files[p.source as usize], p.record as usize);
                // The record was read once already; it parses the same way again unless the file
                // changed under us.
                let mut c = Conversation::parse(file.record(i), i).map_err(|reason| {
                    anyhow::anyhow!(
                        "{}: record {i} could not be read again ({}); was the file changed while mixing?",
                        file.path().display(),
                        reason.name()
                    )
                })?;
                if p.copy > 0 {
                    c.id = format!("{}_copy{}", c.id, p.copy);
                }
                let mut bytes = Vec::new();
                c.write_json(style, &mut bytes);
                Ok(bytes)
            })
            .collect::<Result<_>>()?;
        for bytes in records {
            writer.push(&bytes)?;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    writer.finish()?;
    Ok(())
}

/// Each source's conversations and tokens in the mix, and their shares.
fn shares(sources: &[Weighted], valid: &[Vec<Valid>], picks: &[Pick], tokens: bool) -> Vec<Share> {
    let mut conversations = vec![0usize; sources.len()];
    let mut token_counts = vec![0u64; sources.len()];
    for p in picks {
        let s = p.source as usize;
        conversations[s] += 1;
        if tokens {
            // Record indices are increasing, so a pick's token count is found by binary search.
            let records = &valid[s];
            if let Ok(k) = records.binary_search_by_key(&p.record, |v| v.index) {
                token_counts[s] += u64::from(records[k].tokens);
            }
        }
    }
    let total = picks.len().max(1) as f64;
    let total_tokens = token_counts.iter().sum::<u64>().max(1) as f64;
    sources
        .iter()
        .enumerate()
        .map(|(s, w)| Share {
            source: w.path.display().to_string(),
            weight: w.weight,
            conversations_in: valid[s].len(),
            conversations: conversations[s],
            share: conversations[s] as f64 / total,
            tokens: tokens.then_some(token_counts[s]),
            token_share: tokens.then(|| token_counts[s] as f64 / total_tokens),
        })
        .collect()
}

impl fmt::Display for MixReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.report)?;
        writeln!(
            f,
            "  {:<32} {:>8} {:>10} {:>13} {:>7} {:>12} {:>7}",
            "source", "weight", "readable", "conversations", "share", "tokens", "share"
        )?;
        for s in &self.sources {
            let (tokens, token_share) = match (s.tokens, s.token_share) {
                (Some(t), Some(share)) => (t.to_string(), format!("{:.1}%", 100.0 * share)),
                _ => ("-".to_string(), "-".to_string()),
            };
            writeln!(
                f,
                "  {:<32} {:>8} {:>10} {:>13} {:>6.1}% {:>12} {:>7}",
                s.source,
                s.weight,
                s.conversations_in,
                s.conversations,
                100.0 * s.share,
                tokens,
                token_share
            )?;
        }
        Ok(())
    }
}
