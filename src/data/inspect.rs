//! `prep inspect`: shows a person exactly what the model will learn from a sample: the rendered
//! text with every trained token highlighted (green) and every masked one plain, token by token
//! from the tokenizer's offsets, plus the counts. Without colour, trained text is wrapped in
//! `[[` and `]]`.
use super::conversation::Conversation;
use super::encode::{label, IGNORE};
use super::template::Template;
use crate::data::tokenizer::Tokenizer;
use anyhow::Result;
use std::fmt::Write;

const GREEN: &str = "\x1b[30;42m";
const RESET: &str = "\x1b[0m";

/// `prep inspect`: the records at `indices` of `path`, each as [`show`] renders it.
pub fn show_records(
    path: &std::path::Path,
    indices: &[usize],
    template: &Template,
    tokenizer: &Tokenizer,
    max_len: usize,
    color: bool,
) -> Result<String> {
    let file = super::records::RecordFile::open(path)?;
    let mut out = String::new();
    for &i in indices {
        anyhow::ensure!(
            i < file.len(),
            "{}: --index {i} is out of range (the file has {} records)",
            path.display(),
            file.len()
        );
        let conversation = Conversation::parse(file.record(i), i).map_err(|reason| {
            anyhow::anyhow!("{}: record {i} is not a conversation ({})", path.display(), reason.name())
        })?;
        out.push_str(&show(&conversation, template, tokenizer, max_len, color)?);
    }
    Ok(out)
}

/// Renders `conversation` as the trainer sees it, truncated to `max_len` tokens.
pub fn show(
    conversation: &Conversation,
    template: &Template,
    tokenizer: &Tokenizer,
    max_len: usize,
    color: bool,
) -> Result<String> {
    let rendered = template.render(conversation.system.as_deref(), &conversation.turns)?;
    let encoding = tokenizer.encode(&rendered.text)?;
    let offsets = encoding.offsets.clone();
    let total = encoding.ids.len();
    let sample = label(&conversation.id, &rendered, encoding, max_len);
    let labels = match &sample {
        Ok(s) => s.labels.clone(),
        Err(_) => vec![IGNORE; total.min(max_len)],
    };
    let (open, close) = if color { (GREEN, RESET) } else { ("[[", "]]") };
    let mut out = String::new();
    let mut printed = 0;
    let mut in_trained = false;
    for (i, &(_, end)) in offsets.iter().enumerate().take(labels.len()) {
        let trained = labels[i] != IGNORE;
        if trained != in_trained {
            out.push_str(if trained { open } else { close });
            in_trained = trained;
        }
        if end > printed {
            out.push_str(&rendered.text[printed..end]);
            printed = end;
        }
    }
    if in_trained {
        out.push_str(close);
    }
    let trained = labels.iter().filter(|&&l| l != IGNORE).count();
    writeln!(out)?;
    writeln!(out, "--- {}: {total} tokens, {} kept (max {max_len}), {trained} trained", conversation.id, labels.len())?;
    if sample.is_err() {
        writeln!(out, "--- no trainable token: this sample would be dropped")?;
    }
    Ok(out)
}
