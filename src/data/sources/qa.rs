//! HC3 (Hello-SimpleAI, "How Close is ChatGPT to Human Experts?"): one question with lists of
//! human and ChatGPT answers. Each non-empty answer becomes its own conversation, with the
//! answer's origin (`human` or `chatgpt`) in the field `answer_origin` and the record's other
//! fields (`source`, `id`) kept; ids are `hc3_{record}_{origin}_{k}`. Empty answers are skipped
//! and counted (`empty_answers`); a record left with none is `empty_text`.
use super::{raw_string, rest, text, Bad, Converted};
use crate::data::conversation::{Conversation, Fields, Role, Turn};
use crate::data::report::Reason;
use std::borrow::Cow;

/// The answer lists of an HC3 record and the origin each one records.
const ORIGINS: [(&str, &str); 2] = [("human_answers", "human"), ("chatgpt_answers", "chatgpt")];

/// Converts one HC3 record.
pub fn hc3(fields: Fields<'_>, id: &str) -> Result<Converted, Bad> {
    let question = text(&fields, "question")?;
    if question.trim().is_empty() {
        return Err(Bad::new(Reason::EmptyText, "`question` is empty"));
    }
    let kept = rest(&fields, &["question", "human_answers", "chatgpt_answers"]);
    let mut conversations = Vec::new();
    let mut empty = 0;
    for (list, origin) in ORIGINS {
        let raw = fields.get(list).ok_or_else(|| Bad::field(list, "is missing"))?;
        let answers: Vec<Cow<'_, str>> = super::parse_as(raw, list, "is not a list of strings")?;
        for (k, answer) in answers.iter().enumerate() {
            if answer.trim().is_empty() {
                empty += 1;
                continue;
            }
            let mut extra = kept.clone();
            extra.push(raw_string("answer_origin", origin)?);
            conversations.push(Conversation {
                id: format!("{id}_{origin}_{k}"),
                system: None,
                turns: vec![
                    Turn { role: Role::User, text: question.trim().to_string() },
                    Turn { role: Role::Assistant, text: answer.trim().to_string() },
                ],
                extra,
            });
        }
    }
    if conversations.is_empty() {
        return Err(Bad::new(Reason::EmptyText, "no non-empty answer in `human_answers` or `chatgpt_answers`"));
    }
    Ok(Converted { conversations, counters: vec![("empty_answers", empty)] })
}
