//! The instruction shape: one question (an instruction, with an optional input or context) and
//! one answer. Alpaca follows FastChat's `convert_alpaca.py` (the input appended after
//! "\nInput:\n" when it has more than one character, id `alpaca_{i}` unless the record has one);
//! Dolly appends its reference `context` after "\n\nContext:\n" and keeps `category`.
use super::{rest, text_or_empty, Bad};
use crate::data::conversation::{Conversation, Fields, Role, Turn};
use crate::data::report::Reason;

/// The field names and joining rule of one instruction dataset.
struct Names {
    instruction: &'static str,
    input: &'static str,
    output: &'static str,
    /// Put between the instruction and a non-empty input.
    joiner: &'static str,
    /// Inputs of at most this many characters (trimmed) are left out, as FastChat does for Alpaca.
    ignore_up_to: usize,
}

/// An Alpaca record (`instruction`, `input`, `output`, optional `id` and `system`). String fields
/// of the wrong type are `bad_turn`, a mistyped id `bad_id`, as `prep convert` always counted them.
pub fn alpaca(fields: Fields<'_>, index: usize) -> Result<Conversation, Bad> {
    let names =
        Names { instruction: "instruction", input: "input", output: "output", joiner: "\nInput:\n", ignore_up_to: 1 };
    let id = match fields.get("id").map(|raw| serde_json::from_str::<serde_json::Value>(raw.get())) {
        Some(Ok(serde_json::Value::String(s))) => s,
        Some(Ok(serde_json::Value::Number(n))) => n.to_string(),
        Some(_) => return Err(Bad::new(Reason::BadId, "`id` is neither a string nor a number")),
        None => format!("alpaca_{index}"),
    };
    let retype = |bad: Bad| Bad { reason: Reason::BadTurn, ..bad };
    let system = match fields.get("system") {
        Some(raw) => super::parse_as::<Option<String>>(raw, "system", "is not a string").map_err(retype)?,
        None => None,
    };
    let mut c = exchange(&fields, &names, id, &["id", "system"]).map_err(retype)?;
    c.system = system;
    Ok(c)
}

/// A databricks-dolly-15k record (`instruction`, `context`, `response`, `category` kept).
pub fn dolly(fields: Fields<'_>, id: String) -> Result<Conversation, Bad> {
    let names = Names {
        instruction: "instruction",
        input: "context",
        output: "response",
        joiner: "\n\nContext:\n",
        ignore_up_to: 0,
    };
    for name in [names.instruction, names.output] {
        if fields.get(name).is_none() {
            return Err(Bad::field(name, "is missing"));
        }
    }
    let c = exchange(&fields, &names, id, &[])?;
    for (turn, name) in c.turns.iter().zip([names.instruction, names.output]) {
        if turn.text.trim().is_empty() {
            return Err(Bad::new(Reason::EmptyText, format!("`{name}` is empty")));
        }
    }
    Ok(c)
}

/// The question and answer of an instruction record, its other fields (but `also_known`) kept.
fn exchange(fields: &Fields<'_>, names: &Names, id: String, also_known: &[&str]) -> Result<Conversation, Bad> {
    let instruction = text_or_empty(fields, names.instruction)?;
    let input = text_or_empty(fields, names.input)?;
    let output = text_or_empty(fields, names.output)?;
    let question = if input.trim().chars().count() > names.ignore_up_to {
        format!("{instruction}{}{input}", names.joiner)
    } else {
        instruction.into_owned()
    };
    let mut known = vec![names.instruction, names.input, names.output];
    known.extend_from_slice(also_known);
    Ok(Conversation {
        id,
        system: None,
        turns: vec![
            Turn { role: Role::User, text: question },
            Turn { role: Role::Assistant, text: output.into_owned() },
        ],
        extra: rest(fields, &known),
    })
}
