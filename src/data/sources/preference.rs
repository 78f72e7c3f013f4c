//! The preference shape: two answers to one prompt and which one people preferred. hh-rlhf gives
//! two whole transcripts (`chosen` preferred; they share the turns before the last answer);
//! WebGPT gives a question, two answers and two scores (`score_0 = -score_1`, 0 a tie);
//! summarize-from-feedback gives a post, two summaries and `choice`. `--preference` keeps the
//! preferred answer only (id `{source}_{i}`) or both, each with its Koala marker as the system
//! prompt and `preference: "preferred"|"rejected"` (ids `{source}_{i}_preferred`,
//! `{source}_{i}_rejected`). A tie (equal scores, identical transcripts) carries no preference:
//! it is dropped and counted as `preference_tie`.
use super::transcript::{split, HH_RLHF};
use super::{object, raw_string, text, text_or_empty, Bad, Converted, Preference, SourceOptions};
use crate::data::conversation::{Conversation, Fields, Role, Turn};
use crate::data::report::Reason;
use serde_json::value::RawValue;

/// Two conversations that differ in their answer, and which one people preferred.
struct Comparison {
    preferred: Vec<Turn>,
    rejected: Vec<Turn>,
    extra: Vec<(String, Box<RawValue>)>,
}

/// The conversations a comparison becomes under `options.preference`.
fn resolve(id: &str, c: Comparison, options: &SourceOptions) -> Result<Converted, Bad> {
    if c.preferred == c.rejected {
        return Err(Bad::new(Reason::PreferenceTie, "both answers are the same"));
    }
    let conversations = match options.preference {
        Preference::KeepPreferred => {
            vec![Conversation { id: id.to_string(), system: None, turns: c.preferred, extra: c.extra }]
        }
        Preference::BothConditioned => {
            let side = |name: &str, marker: &str, turns: Vec<Turn>| -> Result<Conversation, Bad> {
                let mut extra = c.extra.clone();
                extra.push(raw_string("preference", name)?);
                Ok(Conversation { id: format!("{id}_{name}"), system: Some(marker.to_string()), turns, extra })
            };
            vec![
                side("preferred", &options.positive_marker, c.preferred)?,
                side("rejected", &options.negative_marker, c.rejected)?,
            ]
        }
    };
    Ok(Converted { conversations, counters: Vec::new() })
}

/// One question and one answer as turns.
fn exchange(question: &str, answer: &str) -> Vec<Turn> {
    vec![
        Turn { role: Role::User, text: question.to_string() },
        Turn { role: Role::Assistant, text: answer.to_string() },
    ]
}

/// Field `name` trimmed, `empty_text` when nothing is left.
fn non_empty(fields: &Fields<'_>, name: &str, shown: &str) -> Result<String, Bad> {
    let value = text(fields, name)?;
    match value.trim() {
        "" => Err(Bad::new(Reason::EmptyText, format!("`{shown}` is empty"))),
        trimmed => Ok(trimmed.to_string()),
    }
}

/// An hh-rlhf record: `chosen` and `rejected` transcripts; other fields kept.
pub fn hh_rlhf(fields: Fields<'_>, id: &str, options: &SourceOptions) -> Result<Converted, Bad> {
    let preferred = split(&text(&fields, "chosen")?, HH_RLHF, "chosen")?;
    let rejected = split(&text(&fields, "rejected")?, HH_RLHF, "rejected")?;
    let extra = super::rest(&fields, &["chosen", "rejected"]);
    resolve(id, Comparison { preferred, rejected, extra }, options)
}

/// A WebGPT comparison: `question.full_text`, `answer_0`/`answer_1` and `score_0`/`score_1`
/// (the higher score wins); the quotes, token lists and scores are left out.
pub fn webgpt(fields: Fields<'_>, id: &str, options: &SourceOptions) -> Result<Converted, Bad> {
    let question = non_empty(&object(&fields, "question")?, "full_text", "question.full_text")?;
    let answers = [non_empty(&fields, "answer_0", "answer_0")?, non_empty(&fields, "answer_1", "answer_1")?];
    let score = |name: &str| -> Result<f64, Bad> {
        let raw = fields.get(name).ok_or_else(|| Bad::field(name, "is missing"))?;
        super::parse_as(raw, name, "is not a number")
    };
    let (s0, s1) = (score("score_0")?, score("score_1")?);
    if s0 == s1 {
        return Err(Bad::new(Reason::PreferenceTie, format!("`score_0` and `score_1` are both {s0}")));
    }
    let [a0, a1] = answers;
    let (preferred, rejected) = if s0 > s1 { (a0, a1) } else { (a1, a0) };
    let comparison = Comparison {
        preferred: exchange(&question, &preferred),
        rejected: exchange(&question, &rejected),
        extra: Vec::new(),
    };
    resolve(id, comparison, options)
}

/// A summarize-from-feedback comparison: the post (or, for CNN/DM items, the article) as the
/// request, `summaries[choice]` preferred over the other. The request reads
/// "Write a short summary of this post.\n\nSUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}"
/// (lines without a value left out; "article" and "ARTICLE:" for articles).
pub fn summarize(fields: Fields<'_>, id: &str, options: &SourceOptions) -> Result<Converted, Bad> {
    let info = object(&fields, "info")?;
    let optional = |name: &str| -> Result<String, Bad> {
        match info.get(name) {
            Some(raw) => Ok(super::parse_as::<Option<String>>(raw, &format!("info.{name}"), "is not a string")?
                .unwrap_or_default()
                .trim()
                .to_string()),
            None => Ok(String::new()),
        }
    };
    let (post, article) = (optional("post")?, optional("article")?);
    let (kind, label, body) = match (post.is_empty(), article.is_empty()) {
        (false, _) => ("post", "POST", post),
        (true, false) => ("article", "ARTICLE", article),
        (true, true) => return Err(Bad::new(Reason::EmptyText, "`info` has neither a `post` nor an `article`")),
    };
    let mut request = format!("Write a short summary of this {kind}.\n\n");
    let subreddit = optional("subreddit")?;
    if !subreddit.is_empty() {
        request.push_str(&format!("SUBREDDIT: r/{subreddit}\n"));
    }
    let title = optional("title")?;
    if !title.is_empty() {
        request.push_str(&format!("TITLE: {title}\n"));
    }
    request.push_str(&format!("{label}: {body}"));
    let raw = fields.get("summaries").ok_or_else(|| Bad::field("summaries", "is missing"))?;
    let items: Vec<&RawValue> = super::parse_as(raw, "summaries", "is not a list")?;
    if items.len() != 2 {
        return Err(Bad::field("summaries", &format!("has {} items where a comparison has 2", items.len())));
    }
    let mut summaries = Vec::with_capacity(2);
    for (k, item) in items.iter().enumerate() {
        let shown = format!("summaries[{k}]");
        let summary = Fields::parse(item.get()).map_err(|_| Bad::field(&shown, "is not an object"))?;
        let value =
            text_or_empty(&summary, "text").map_err(|_| Bad::field(&format!("{shown}.text"), "is not a string"))?;
        if value.trim().is_empty() {
            return Err(Bad::new(Reason::EmptyText, format!("`{shown}.text` is empty or missing")));
        }
        summaries.push(value.trim().to_string());
    }
    let raw = fields.get("choice").ok_or_else(|| Bad::field("choice", "is missing"))?;
    let choice = match super::parse_as::<u64>(raw, "choice", "is not 0 or 1")? {
        choice @ (0 | 1) => choice as usize,
        _ => return Err(Bad::field("choice", "is not 0 or 1")),
    };
    let comparison = Comparison {
        preferred: exchange(&request, &summaries[choice]),
        rejected: exchange(&request, &summaries[1 - choice]),
        extra: Vec::new(),
    };
    resolve(id, comparison, options)
}
