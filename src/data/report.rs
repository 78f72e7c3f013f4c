//! Accounting for every record a data command sees: how many came in, how many went out, and why
//! each of the others was dropped. Printed after every run, as a table or as JSON (`--json`,
//! `--report FILE`), so no sample ever disappears without a count.
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Why a record was not written. Names are stable: scripts read them from `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The record is not a JSON object (a bare string, number, array or null).
    NotAnObject,
    /// `id` is neither a string nor a number.
    BadId,
    /// No `conversations` or `messages` array.
    MissingConversations,
    /// A turn is not an object with a string role and a string text.
    BadTurn,
    /// A turn's role is none of the known spellings.
    UnknownRole,
    /// Roles do not alternate user, assistant, user, ... (or a system turn is not first).
    WrongFormat,
    /// Fewer than one user turn and one assistant turn left after cleaning.
    TooShort,
    /// An assistant turn is a service error (rate limit, content policy, network error).
    ServiceError,
    /// A turn contains a blocked word (default `openai`, `chatgpt`).
    BlockedWords,
    /// The conversation used ChatGPT plugins.
    Plugins,
    /// An earlier record has the same id.
    DuplicateId,
    /// An earlier record has the same first user turn and first assistant turn.
    DuplicateContent,
    /// The user turns nearly copy an earlier conversation's (MinHash LSH, `prep dedup --near`).
    NearDuplicate,
    /// A user turn resembles a benchmark question (`prep decontaminate`).
    Contaminated,
    /// The detected language is not kept (`--keep-lang`, `--skip-lang`).
    Language,
    /// A turn holds a run of 9 identical digits (`--reduce-rep`).
    Repetition,
    /// A numbered list restarts at `1.` (broken markdown lists).
    WrongListFormat,
    /// Fewer turns than `--min-turns`.
    TooFewTurns,
    /// More turns than `--max-turns`.
    TooManyTurns,
    /// Left out by `sample` or assigned to the other side of `split-train-test`.
    NotSelected,
    /// No token left to train on after truncation to the maximum length.
    NoTrainableTokens,
    /// Every turn pair was too long to fit the maximum length and could not be kept.
    LongPairs,
    /// A field a source format requires (`prep convert --from`) is missing, mistyped or impossible.
    BadField,
    /// A required text of a source record (question, answer, response) is empty.
    EmptyText,
    /// A speaker-marked transcript (OIG, hh-rlhf) does not split into alternating turns.
    BadTranscript,
    /// A preference record whose two answers are equally preferred (a tie: nothing to learn).
    PreferenceTie,
}

impl Reason {
    /// The stable snake_case name used in reports.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// Records in, records out, and the drop count for each reason.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// What ran (`clean`, `filter`, `prep`, ...).
    pub command: String,
    pub records_in: usize,
    /// Input records kept (with `records_in - records_out` dropped, each under a reason).
    pub records_out: usize,
    pub dropped: BTreeMap<Reason, usize>,
    /// Records written: more than `records_out` when conversations are split into segments.
    pub written: usize,
    /// Events below the record level: pairs truncated or dropped by split, samples truncated, ...
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, usize>,
}

impl Report {
    /// An empty report for `command`.
    pub fn new(command: &str) -> Report {
        Report { command: command.to_string(), ..Report::default() }
    }

    /// Counts one dropped record.
    pub fn drop(&mut self, reason: Reason) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    /// Adds `n` to a named counter.
    pub fn count(&mut self, name: &str, n: usize) {
        if n > 0 {
            *self.counters.entry(name.to_string()).or_default() += n;
        }
    }

    /// Total of all drops; with `records_out` it adds up to `records_in`.
    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: {} records in, {} out, {} dropped",
            self.command,
            self.records_in,
            self.records_out,
            self.dropped_total()
        )?;
        // A record can become several (split segments, `convert --from` answers): say so.
        if self.written != self.records_out {
            write!(f, ", {} written", self.written)?;
        }
        writeln!(f)?;
        for (reason, n) in &self.dropped {
            writeln!(f, "  {:<22} {n:>9}", reason.name())?;
        }
        if !self.counters.is_empty() {
            writeln!(f, "also counted:")?;
            for (name, n) in &self.counters {
                writeln!(f, "  {name:<22} {n:>9}")?;
            }
        }
        Ok(())
    }
}
