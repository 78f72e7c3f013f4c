//! `prep convert`: records in any accepted shape to one shape. Reads ShareGPT, OpenAI `messages`
//! and Alpaca (`instruction`, `input`, `output`, converted as FastChat's `convert_alpaca.py` does:
//! the input appended after "\nInput:\n" when it has more than one character, id `alpaca_{i}`).
use super::conversation::{owned_extra, Conversation, Fields, Role, Turn};
use super::records::RecordFile;
use super::report::Reason;
use anyhow::Result;
use std::borrow::Cow;
use std::path::PathBuf;

/// Parses a record of any supported shape into a conversation.
pub fn parse_any(json: &str, index: usize) -> Result<Conversation, Reason> {
    let fields = Fields::parse(json)?;
    if fields.get("instruction").is_some() && fields.get("conversations").is_none() && fields.get("messages").is_none()
    {
        return alpaca(fields, index);
    }
    Conversation::parse(json, index)
}

fn alpaca(fields: Fields<'_>, index: usize) -> Result<Conversation, Reason> {
    let text = |name: &str| -> Result<Cow<'_, str>, Reason> {
        match fields.get(name) {
            None => Ok(Cow::Borrowed("")),
            Some(raw) => serde_json::from_str::<Cow<str>>(raw.get()).map_err(|_| Reason::BadTurn),
        }
    };
    let (instruction, input, output) = (text("instruction")?, text("input")?, text("output")?);
    let question = if input.trim().chars().count() > 1 {
        format!("{instruction}\nInput:\n{input}")
    } else {
        instruction.into_owned()
    };
    let id = match fields.get("id").map(|raw| serde_json::from_str::<serde_json::Value>(raw.get())) {
        Some(Ok(serde_json::Value::String(s))) => s,
        Some(Ok(serde_json::Value::Number(n))) => n.to_string(),
        Some(_) => return Err(Reason::BadId),
        None => format!("alpaca_{index}"),
    };
    let system = match fields.get("system") {
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get()).map_err(|_| Reason::BadTurn)?,
        None => None,
    };
    let output = output.into_owned();
    let known = ["id", "instruction", "input", "output", "system"];
    let extra = fields.0.into_iter().filter(|(k, _)| !known.contains(&k.as_ref())).collect();
    Ok(Conversation {
        id,
        system,
        turns: vec![Turn { role: Role::User, text: question }, Turn { role: Role::Assistant, text: output }],
        extra: owned_extra(extra),
    })
}

/// Every system prompt and turn text of the readable records in `inputs` (tokenizer training).
pub fn texts(inputs: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for path in inputs {
        let file = RecordFile::open(path)?;
        for i in 0..file.len() {
            if let Ok(c) = parse_any(file.record(i), i) {
                out.extend(c.system);
                out.extend(c.turns.into_iter().map(|t| t.text));
            }
        }
    }
    Ok(out)
}
