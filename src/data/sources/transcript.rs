//! The transcript shape: one text in which each turn starts with a speaker marker. LAION's OIG
//! writes `<human>: ...` and `<bot>: ...` at line starts; Anthropic's hh-rlhf writes
//! `\n\nHuman: ...` and `\n\nAssistant: ...`. A transcript must start with the human, alternate,
//! end with the assistant, and have no empty turn; anything else is `bad_transcript`.
use super::{rest, text, Bad};
use crate::data::conversation::{Conversation, Fields, Role, Turn};
use crate::data::report::Reason;

/// A speaker marker and the role of the turn it opens.
pub struct Marker {
    pub text: &'static str,
    pub role: Role,
}

/// OIG's markers (at the start of a line).
pub const OIG: &[Marker] =
    &[Marker { text: "<human>:", role: Role::User }, Marker { text: "<bot>:", role: Role::Assistant }];

/// hh-rlhf's markers (a blank line, then the speaker).
pub const HH_RLHF: &[Marker] =
    &[Marker { text: "\n\nHuman:", role: Role::User }, Marker { text: "\n\nAssistant:", role: Role::Assistant }];

/// Splits the transcript in field `field` into turns, trimmed. A marker counts at the start of a
/// line (or anywhere when it starts with its own line break), so `<bot>:` quoted mid-sentence is
/// text.
pub fn split(transcript: &str, markers: &[Marker], field: &str) -> Result<Vec<Turn>, Bad> {
    let bad = |what: String| Bad::new(Reason::BadTranscript, format!("`{field}` {what}"));
    let mut starts: Vec<(usize, &Marker)> = markers
        .iter()
        .flat_map(|m| transcript.match_indices(m.text).map(move |(at, _)| (at, m)))
        .filter(|&(at, m)| m.text.starts_with('\n') || at == 0 || transcript.as_bytes()[at - 1] == b'\n')
        .collect();
    starts.sort_by_key(|&(at, _)| at);
    let Some(&(first, _)) = starts.first() else {
        return Err(bad(format!("has no `{}` turn", markers[0].text.trim())));
    };
    if !transcript[..first].trim().is_empty() {
        return Err(bad(format!("has text before its first `{}`", markers[0].text.trim())));
    }
    let mut turns = Vec::with_capacity(starts.len());
    for (k, &(at, marker)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(transcript.len(), |&(next, _)| next);
        let body = transcript[at + marker.text.len()..end].trim();
        let expected = if k % 2 == 0 { Role::User } else { Role::Assistant };
        if marker.role != expected {
            return Err(bad(format!("turn {k} is `{}` where the speakers should alternate", marker.text.trim())));
        }
        if body.is_empty() {
            return Err(bad(format!("turn {k} (`{}`) is empty", marker.text.trim())));
        }
        turns.push(Turn { role: marker.role, text: body.to_string() });
    }
    if turns.len() % 2 == 1 {
        return Err(bad("ends with a human turn, without an answer".to_string()));
    }
    Ok(turns)
}

/// An OIG record: `text` split at `<human>:` / `<bot>:`, other fields (`metadata`) kept.
pub fn oig(fields: Fields<'_>, id: String) -> Result<Conversation, Bad> {
    let turns = split(&text(&fields, "text")?, OIG, "text")?;
    Ok(Conversation { id, system: None, turns, extra: rest(&fields, &["text"]) })
}
