//! `prep convert`: records in any accepted shape to one shape. Reads ShareGPT, OpenAI `messages`
//! and Alpaca (`instruction`, `input`, `output`, converted as FastChat's `convert_alpaca.py` does:
//! the input appended after "\nInput:\n" when it has more than one character, id `alpaca_{i}`).
//! The other dataset formats (`--from`) are in `sources`.
use super::conversation::{Conversation, Fields};
use super::records::RecordFile;
use super::report::Reason;
use anyhow::Result;
use std::path::PathBuf;

/// Parses a record of any supported shape into a conversation.
pub fn parse_any(json: &str, index: usize) -> Result<Conversation, Reason> {
    let fields = Fields::parse(json)?;
    if fields.get("instruction").is_some() && fields.get("conversations").is_none() && fields.get("messages").is_none()
    {
        return super::sources::instruction::alpaca(fields, index).map_err(|bad| bad.reason);
    }
    Conversation::parse(json, index)
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
