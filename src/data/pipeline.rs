//! The record pipeline every `prep` command runs: input files are mapped, records are read and
//! cleaned or filtered in parallel batches (rayon), then deduplicated, selected and written in
//! input order, so the output is the same whatever the thread count. Memory stays at one batch
//! plus the dedup keys (and, with near-dedup, the LSH buckets of kept conversations), whatever the input size. Every record ends up written or counted in the
//! report under the reason it was dropped.
use super::clean::{clean_record, repair_structure, CleanOptions};
use super::conversation::{Conversation, Role, Style};
use super::convert::parse_any;
use super::dedup::Dedup;
use super::encode::{self, IGNORE};
use super::filter::{self, FilterOptions};
use super::neardup::{Member, MinHasher, Near, NearIndex, NearOptions, Removed};
use super::records::RecordFile;
use super::report::{Reason, Report};
use super::sources::{self, SourceOptions};
use super::split::{self, SplitOptions};
use super::template::Template;
use super::writer::RecordWriter;
use crate::data::tokenizer::Tokenizer;
use crate::util::progress::progress_bar;
use anyhow::Result;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How records are read.
#[derive(Debug, Clone)]
pub enum Read {
    /// Raw ShareGPT export: HTML to markdown, pager, service errors, blocked words (`clean`).
    Clean(CleanOptions),
    /// Clean conversations in ShareGPT or OpenAI shape.
    Conversations,
    /// Any shape, Alpaca included (`convert`).
    AnyShape,
    /// One dataset's format, a record becoming one conversation or several (`convert --from`);
    /// no filter, dedup or token stage applies to it.
    Source(SourceOptions),
}

/// Which records a run keeps, by their position across all inputs (`sample`, `split-train-test`).
pub type Select<'a> = &'a (dyn Fn(usize) -> bool + Sync);

/// A per-conversation drop rule of a stage outside the pipeline (`decontaminate`), given the
/// record's position across all inputs; it runs in parallel after the filters.
pub type Check<'a> = &'a (dyn Fn(usize, &Conversation) -> Option<Reason> + Sync);

/// One run of the pipeline: how to read, what to drop, how to write.
pub struct Plan<'a> {
    /// The command name shown in the report.
    pub command: &'a str,
    pub read: Read,
    pub filter: FilterOptions,
    pub dedup: bool,
    /// Also drop near-duplicate user queries (MinHash LSH), after the exact dedup.
    pub near: Option<NearOptions>,
    /// With `near`: receives every near-duplicate removed with the kept conversation it copies.
    pub near_removed: Option<&'a std::sync::Mutex<Vec<Removed>>>,
    pub check: Option<Check<'a>>,
    pub select: Option<Select<'a>>,
    pub tokens: Option<TokenStages<'a>>,
    pub style: Style,
    /// Malformed records (not an object, missing or mistyped fields) stop the run instead of being counted.
    pub strict: bool,
}

/// The stages that need tokens: split long conversations, and/or encode to ids and labels.
pub struct TokenStages<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: &'a Template,
    /// Split conversations into segments that fit (`prep split`, `prep --tokenizer`).
    pub split: Option<SplitOptions>,
    /// Write `{id, input_ids, labels}` samples truncated to this length instead of conversations.
    pub encode: Option<usize>,
}

/// What one kept record turns into: the conversation (for dedup) and the JSON of every record to
/// write (several when split), with counters for the report.
struct Kept {
    conversation: Conversation,
    /// The MinHash signature of the user turns, with `Plan::near`.
    signature: Option<Vec<u32>>,
    records: Vec<Vec<u8>>,
    counters: Vec<(&'static str, usize)>,
}

/// A dropped record: why (and, for `--strict`, which field), and the counters of what happened
/// before it was dropped.
struct Dropped {
    reason: Reason,
    detail: Option<String>,
    counters: Vec<(&'static str, usize)>,
}

impl From<Reason> for Dropped {
    fn from(reason: Reason) -> Dropped {
        Dropped { reason, detail: None, counters: Vec::new() }
    }
}

impl Plan<'_> {
    /// A plan that only reads `read` and writes, with nothing dropped on purpose.
    pub fn new(command: &str, read: Read) -> Plan<'_> {
        Plan {
            command,
            read,
            filter: FilterOptions::default(),
            dedup: false,
            near: None,
            near_removed: None,
            check: None,
            select: None,
            tokens: None,
            style: Style::default(),
            strict: false,
        }
    }
}

/// Records processed per parallel batch: large enough to keep both cores busy, small enough that
/// a batch of converted conversations stays a few MB.
const BATCH: usize = 2048;

/// Opens every input (failing early on malformed JSON, before any output is written).
pub fn open_all(inputs: &[PathBuf]) -> Result<Vec<RecordFile>> {
    inputs.iter().map(|p| RecordFile::open(p)).collect()
}

/// Runs `plan` over `inputs` into `output` (format from its extension); returns the report.
pub fn run(plan: &Plan, inputs: &[PathBuf], output: &Path) -> Result<Report> {
    let files = open_all(inputs)?;
    let mut writer = RecordWriter::create(output)?;
    let report = run_into(plan, &files, &mut |_, bytes| writer.push(bytes))?;
    writer.finish()?;
    Ok(report)
}

/// Runs `plan` over opened files, handing each kept record (its global index and its JSON) to `sink`.
pub fn run_into(plan: &Plan, files: &[RecordFile], sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<Report> {
    let total: usize = files.iter().map(RecordFile::len).sum();
    let mut report = Report::new(plan.command);
    report.records_in = total;
    let bar = progress_bar(total as u64, plan.command, "records");
    let mut dedup = Dedup::default();
    let hasher = plan.near.as_ref().map(MinHasher::new);
    let mut near = plan.near.as_ref().map(NearIndex::new);
    // The kept conversations of the near-duplicate index, by cluster number (for `near_removed`).
    let mut near_kept: Vec<Member> = Vec::new();
    let mut base = 0;
    for file in files {
        let mut start = 0;
        while start < file.len() {
            let end = (start + BATCH).min(file.len());
            let outcomes: Vec<Result<Result<Kept, Dropped>>> =
                (start..end).into_par_iter().map(|i| process(plan, hasher.as_ref(), file, i, base + i)).collect();
            for (offset, outcome) in outcomes.into_iter().enumerate() {
                let i = start + offset;
                let kept = match outcome? {
                    Err(dropped) => {
                        for (name, n) in dropped.counters {
                            report.count(name, n);
                        }
                        Err((dropped.reason, dropped.detail))
                    }
                    Ok(kept) => match plan.dedup.then(|| dedup.check(&kept.conversation)).flatten() {
                        Some(reason) => Err((reason, None)),
                        None => match (&mut near, &kept.signature) {
                            (Some(near), Some(signature)) => match near.check(signature) {
                                Near::Kept => {
                                    if plan.near_removed.is_some() {
                                        near_kept.push(Member { id: kept.conversation.id.clone(), record: base + i });
                                    }
                                    Ok(kept)
                                }
                                Near::Duplicate { cluster, first } => {
                                    report.count("near_duplicate_clusters", usize::from(first));
                                    if let Some(sink) = plan.near_removed {
                                        let removed = Member { id: kept.conversation.id.clone(), record: base + i };
                                        let pair = Removed { kept: near_kept[cluster].clone(), removed };
                                        sink.lock().unwrap_or_else(|e| e.into_inner()).push(pair);
                                    }
                                    Err((Reason::NearDuplicate, None))
                                }
                            },
                            _ => Ok(kept),
                        },
                    },
                };
                match kept {
                    Ok(kept) => {
                        for record in &kept.records {
                            sink(base + i, record)?;
                        }
                        report.records_out += 1;
                        report.written += kept.records.len();
                        for (name, n) in kept.counters {
                            report.count(name, n);
                        }
                    }
                    Err((reason, detail)) if plan.strict && is_malformed(reason) => {
                        return Err(malformed(file, i, reason, detail))
                    }
                    Err((reason, _)) => report.drop(reason),
                }
            }
            bar.inc((end - start) as u64);
            start = end;
        }
        base += file.len();
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Reads, cleans, filters, splits and encodes one record, and serialises what is kept. The outer
/// error is a failure of the run (a broken tokenizer template); the inner one a dropped record.
fn process(
    plan: &Plan,
    hasher: Option<&MinHasher>,
    file: &RecordFile,
    i: usize,
    global: usize,
) -> Result<Result<Kept, Dropped>> {
    if plan.select.is_some_and(|select| !select(global)) {
        return Ok(Err(Reason::NotSelected.into()));
    }
    let json = file.record(i);
    let parsed = match &plan.read {
        Read::Clean(options) => clean_record(json, global, options),
        Read::Conversations => Conversation::parse(json, global),
        Read::AnyShape => parse_any(json, global),
        Read::Source(options) => return Ok(convert_source(plan.style, json, global, options)),
    };
    let conversation = match parsed {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason.into())),
    };
    if let Some(reason) = plan.filter.is_active().then(|| filter::check(&conversation, &plan.filter)).flatten() {
        return Ok(Err(reason.into()));
    }
    if let Some(reason) = plan.check.and_then(|check| check(global, &conversation)) {
        return Ok(Err(reason.into()));
    }
    let signature = hasher
        .and_then(|h| h.signature(conversation.turns.iter().filter(|t| t.role == Role::User).map(|t| t.text.as_str())));
    let Some(tokens) = &plan.tokens else {
        let mut bytes = Vec::with_capacity(json.len());
        conversation.write_json(plan.style, &mut bytes);
        return Ok(Ok(Kept { conversation, signature, records: vec![bytes], counters: Vec::new() }));
    };
    // Templates assume alternating turns: repair what `clean` would have (leading assistant or
    // trailing user turns) and drop what cannot be repaired.
    let mut conversation = conversation;
    if let Err(reason) = repair_structure(&mut conversation.turns) {
        return Ok(Err(reason.into()));
    }
    let mut counters = Vec::new();
    let segments = match tokens.split {
        Some(options) => {
            let outcome = split::split(&conversation, tokens.template, tokens.tokenizer, options)?;
            counters.push(("pairs_truncated", outcome.truncated_pairs));
            counters.push(("pairs_dropped", outcome.dropped_pairs));
            if outcome.segments.is_empty() {
                return Ok(Err(Dropped { reason: Reason::LongPairs, detail: None, counters }));
            }
            outcome.segments
        }
        None => vec![conversation.clone()],
    };
    let mut records = Vec::with_capacity(segments.len());
    for segment in &segments {
        let mut bytes = Vec::new();
        match tokens.encode {
            None => segment.write_json(plan.style, &mut bytes),
            Some(max_len) => {
                let rendered = tokens.template.render(segment.system.as_deref(), &segment.turns)?;
                let encoding = tokens.tokenizer.encode(&rendered.text)?;
                let full = encoding.ids.len();
                match encode::label(&segment.id, &rendered, encoding, max_len) {
                    Ok(sample) => {
                        counters.push(("samples_truncated", usize::from(full > max_len)));
                        counters.push(("tokens", sample.input_ids.len()));
                        counters.push(("trained_tokens", sample.labels.iter().filter(|&&l| l != IGNORE).count()));
                        serde_json::to_writer(&mut bytes, &sample)?;
                    }
                    Err(_) => {
                        counters.push(("segments_without_trainable_tokens", 1));
                        continue;
                    }
                }
            }
        }
        records.push(bytes);
    }
    if records.is_empty() {
        return Ok(Err(Dropped { reason: Reason::NoTrainableTokens, detail: None, counters }));
    }
    Ok(Ok(Kept { conversation, signature, records, counters }))
}

/// Converts one record of a dataset's format (`convert --from`) into its conversations.
fn convert_source(style: Style, json: &str, global: usize, options: &SourceOptions) -> Result<Kept, Dropped> {
    let converted = sources::convert(json, global, options).map_err(|bad| Dropped {
        reason: bad.reason,
        detail: bad.detail,
        counters: Vec::new(),
    })?;
    let records = converted
        .conversations
        .iter()
        .map(|c| {
            let mut bytes = Vec::with_capacity(json.len());
            c.write_json(style, &mut bytes);
            bytes
        })
        .collect();
    let conversation = converted.conversations.into_iter().next().ok_or(Dropped::from(Reason::EmptyText))?;
    Ok(Kept { conversation, signature: None, records, counters: converted.counters })
}

/// The `--strict` error for record `i` of `file`, dropped as `reason` (`detail` names the field).
pub fn malformed(file: &RecordFile, i: usize, reason: Reason, detail: Option<String>) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: record {} at byte offset {} is malformed ({}{}); fix the record or run without --strict to skip it",
        file.path().display(),
        i,
        file.offset(i),
        reason.name(),
        detail.map(|d| format!(": {d}")).unwrap_or_default()
    )
}

/// Reasons that mean the input itself is broken (fatal under `--strict`), as opposed to content
/// the pipeline decided to drop.
pub fn is_malformed(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::NotAnObject
            | Reason::BadId
            | Reason::MissingConversations
            | Reason::BadTurn
            | Reason::UnknownRole
            | Reason::BadField
            | Reason::EmptyText
            | Reason::BadTranscript
    )
}
