//! `prep convert --from FORMAT`: the instruction, dialogue and preference datasets Koala trained on
//! (Geng et al. 2023, "Koala: A Dialogue Model for Academic Research"), each read from its
//! published schema into our conversations. Every converted id starts with the source's name
//! (`dolly_12`, `hh_rlhf_7_rejected`); a record that does not fit its schema is counted under a
//! reason with a detail naming the field (fatal with `--strict`).
//!
//! One parser per shape, shared by the formats of that shape:
//! - [`instruction`]: one question, one answer (`alpaca`, `dolly`);
//! - [`transcript`]: speaker-marked text split into turns (`oig`'s `<human>:`/`<bot>:`,
//!   `hh-rlhf`'s `\n\nHuman:`/`\n\nAssistant:`);
//! - [`preference`]: two answers to one prompt and which one people preferred (`hh-rlhf`,
//!   `webgpt-comparisons`, `summarize-comparisons`), kept as the preferred answer only or as both
//!   answers conditioned on Koala-style markers;
//! - `hc3` (question, human and ChatGPT answers) in [`qa`].
//!
//! **Preference markers.** Koala conditioned its model on human preference by telling it, in the
//! prompt, whether the answer that follows is the preferred one, then prompted it with the
//! positive marker at inference. `--preference both-conditioned` writes the marker as the
//! conversation's system prompt: `a helpful answer` for the preferred answer and
//! `a non-helpful answer` for the other (the wording of EasyLM's Koala data processing, as far as
//! we know it; `--positive-marker` and `--negative-marker` change it). Serve or evaluate such a
//! model with the positive marker as its system prompt.
pub mod instruction;
pub mod preference;
pub mod qa;
pub mod transcript;

use super::conversation::{Conversation, Fields};
use super::report::Reason;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The record formats `prep convert --from` reads, named as the datasets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Stanford Alpaca: `instruction`, `input`, `output` (as `prep convert` detects it).
    Alpaca,
    /// databricks-dolly-15k: `instruction`, `context`, `response`, `category`.
    Dolly,
    /// OpenAI chat `messages: [{role, content}]`.
    OpenaiMessages,
    /// LAION OIG: `text` holding `<human>: ...` / `<bot>: ...` turns, optional `metadata`.
    Oig,
    /// Hello-SimpleAI HC3: `question`, `human_answers`, `chatgpt_answers`, `source`.
    Hc3,
    /// Anthropic hh-rlhf: `chosen` and `rejected` `\n\nHuman: ...\n\nAssistant: ...` transcripts.
    HhRlhf,
    /// openai/webgpt_comparisons: `question.full_text`, `answer_0`/`answer_1`, `score_0`/`score_1`.
    WebgptComparisons,
    /// openai/summarize_from_feedback comparisons: `info` (post), `summaries` (two), `choice`.
    SummarizeComparisons,
}

impl Source {
    /// The prefix of every id converted from this source.
    pub fn prefix(self) -> &'static str {
        match self {
            Source::Alpaca => "alpaca",
            Source::Dolly => "dolly",
            Source::OpenaiMessages => "openai",
            Source::Oig => "oig",
            Source::Hc3 => "hc3",
            Source::HhRlhf => "hh_rlhf",
            Source::WebgptComparisons => "webgpt",
            Source::SummarizeComparisons => "summarize",
        }
    }
}

/// What to keep of a preference record (two answers, one preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Preference {
    /// The preferred answer only, as a plain conversation.
    #[default]
    KeepPreferred,
    /// Both answers, each with its marker as the system prompt (Koala's conditioning).
    BothConditioned,
}

/// How `prep convert --from` reads records.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub source: Source,
    pub preference: Preference,
    /// System prompt of the preferred answer under `both-conditioned`.
    pub positive_marker: String,
    /// System prompt of the other answer under `both-conditioned`.
    pub negative_marker: String,
}

/// Koala's marker for the preferred answer (the default of `--positive-marker`).
pub const POSITIVE_MARKER: &str = "a helpful answer";
/// Koala's marker for the answer people did not prefer (the default of `--negative-marker`).
pub const NEGATIVE_MARKER: &str = "a non-helpful answer";

/// A record that does not fit its source's schema: the counted reason, and for `--strict` a
/// detail naming the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    pub reason: Reason,
    pub detail: Option<String>,
}

impl Bad {
    /// A drop under `reason` explained by `detail`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Bad {
        Bad { reason, detail: Some(detail.into()) }
    }

    /// A field absent, of the wrong type or with an impossible value.
    pub fn field(name: &str, what: &str) -> Bad {
        Bad::new(Reason::BadField, format!("`{name}` {what}"))
    }
}

impl From<Reason> for Bad {
    fn from(reason: Reason) -> Bad {
        Bad { reason, detail: None }
    }
}

/// What one record converts to: one conversation or several (HC3's answers, both preference
/// sides), with counts of parts left out for the report.
#[derive(Debug)]
pub struct Converted {
    /// Never empty: a record with nothing to keep is a [`Bad`].
    pub conversations: Vec<Conversation>,
    pub counters: Vec<(&'static str, usize)>,
}

impl From<Conversation> for Converted {
    fn from(c: Conversation) -> Converted {
        Converted { conversations: vec![c], counters: Vec::new() }
    }
}

/// Converts record `index` (its JSON) of a `source` file.
pub fn convert(json: &str, index: usize, options: &SourceOptions) -> Result<Converted, Bad> {
    let fields = Fields::parse(json)?;
    let id = format!("{}_{index}", options.source.prefix());
    match options.source {
        Source::Alpaca => Ok(instruction::alpaca(fields, index)?.into()),
        Source::Dolly => Ok(instruction::dolly(fields, id)?.into()),
        Source::OpenaiMessages => {
            if fields.get("messages").is_none() {
                return Err(Bad::field("messages", "is missing"));
            }
            let mut c = Conversation::parse(json, index)?;
            if fields.get("id").is_none() {
                c.id = id;
            }
            Ok(c.into())
        }
        Source::Oig => Ok(transcript::oig(fields, id)?.into()),
        Source::Hc3 => qa::hc3(fields, &id),
        Source::HhRlhf => preference::hh_rlhf(fields, &id, options),
        Source::WebgptComparisons => preference::webgpt(fields, &id, options),
        Source::SummarizeComparisons => preference::summarize(fields, &id, options),
    }
}

/// Field `name` as a string (`Err` naming it when absent or not a string).
pub(crate) fn text<'a>(fields: &Fields<'a>, name: &str) -> Result<Cow<'a, str>, Bad> {
    let raw = fields.get(name).ok_or_else(|| Bad::field(name, "is missing"))?;
    parse_as(raw, name, "is not a string")
}

/// Field `name` as a string, empty when absent.
pub(crate) fn text_or_empty<'a>(fields: &Fields<'a>, name: &str) -> Result<Cow<'a, str>, Bad> {
    match fields.get(name) {
        None => Ok(Cow::Borrowed("")),
        Some(raw) => parse_as(raw, name, "is not a string"),
    }
}

/// Field `name` as a nested object's fields.
pub(crate) fn object<'a>(fields: &Fields<'a>, name: &str) -> Result<Fields<'a>, Bad> {
    let raw = fields.get(name).ok_or_else(|| Bad::field(name, "is missing"))?;
    Fields::parse(raw.get()).map_err(|_| Bad::field(name, "is not an object"))
}

/// Deserializes one raw field, naming it in the error.
pub(crate) fn parse_as<'a, T: Deserialize<'a>>(raw: &'a RawValue, name: &str, what: &str) -> Result<T, Bad> {
    serde_json::from_str(raw.get()).map_err(|_| Bad::field(name, what))
}

/// The record's fields other than `known`, carried into the conversation as they are; the
/// record's own `id` (the conversation's id is the source's prefix and the record's position)
/// is kept as `source_id`.
pub(crate) fn rest(fields: &Fields<'_>, known: &[&str]) -> Vec<(String, Box<RawValue>)> {
    fields
        .0
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_ref()))
        .map(|(k, v)| (if k == "id" { "source_id".to_string() } else { k.to_string() }, (*v).to_owned()))
        .collect()
}

/// A JSON string as a raw extra field value (`name` is the field it goes into).
pub(crate) fn raw_string(name: &str, s: &str) -> Result<(String, Box<RawValue>), Bad> {
    let raw = serde_json::value::to_raw_value(s).map_err(|e| Bad::field(name, &format!("cannot be written: {e}")))?;
    Ok((name.to_string(), raw))
}
