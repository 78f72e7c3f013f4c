//! Encoding with masking by construction (DESIGN.md): a conversation is rendered by its template,
//! the text is tokenized once, exactly as at inference, and each token's label follows from its
//! byte offsets: a token overlapping a trained range (an assistant turn and its end-of-turn
//! marker) keeps its id as label, every other token gets -100. Labels cannot drift from the text,
//! unlike FastChat's offset arithmetic, which drops every sample where its count is off.
use super::conversation::Conversation;
use super::report::Reason;
use super::template::{Rendered, Template};
use crate::data::tokenizer::{Encoding, Tokenizer};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The label of a token the loss ignores (PyTorch's `ignore_index` default).
pub const IGNORE: i64 = -100;

/// One training sample: token ids and labels of the same length (labels are not shifted; the
/// loss shifts them, as in `transformers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

impl Sample {
    /// Number of tokens that carry a label.
    pub fn trained_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE).count()
    }
}

/// Renders, tokenizes and labels one conversation, truncated to `max_len` tokens. A sample with
/// no trained token left is refused (`NoTrainableTokens`), never trained on silently.
pub fn encode(
    conversation: &Conversation,
    template: &Template,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<Result<Sample, Reason>> {
    let rendered = template.render(conversation.system.as_deref(), &conversation.turns)?;
    let encoding = tokenizer.encode(&rendered.text)?;
    Ok(label(&conversation.id, &rendered, encoding, max_len))
}

/// Labels an encoding of `rendered.text` and truncates it.
pub fn label(id: &str, rendered: &Rendered, encoding: Encoding, max_len: usize) -> Result<Sample, Reason> {
    let mut labels = labels_from_offsets(&encoding.ids, &encoding.offsets, &rendered.trained);
    let mut input_ids = encoding.ids;
    input_ids.truncate(max_len);
    labels.truncate(max_len);
    let sample = Sample { id: id.to_string(), input_ids, labels };
    if sample.trained_tokens() == 0 {
        return Err(Reason::NoTrainableTokens);
    }
    Ok(sample)
}

/// A token is trained when its byte range overlaps a trained range. Both lists are sorted, so one
/// forward pass decides every token. A token with an empty range (a marker the normalizer
/// inserted) belongs to the range it sits inside.
pub fn labels_from_offsets(ids: &[u32], offsets: &[(usize, usize)], trained: &[Range<usize>]) -> Vec<i64> {
    let mut labels = Vec::with_capacity(ids.len());
    let mut r = 0;
    for (&id, &(start, end)) in ids.iter().zip(offsets) {
        while r < trained.len() && trained[r].end <= start {
            r += 1;
        }
        let inside = r < trained.len() && {
            let range = &trained[r];
            if start == end {
                range.start <= start && start < range.end
            } else {
                start < range.end && end > range.start
            }
        };
        labels.push(if inside { i64::from(id) } else { IGNORE });
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_decides_labels() {
        let ids = [1, 2, 3, 4, 5, 6];
        let offsets = [(0, 0), (0, 4), (4, 9), (9, 12), (12, 12), (12, 16)];
        let trained = [5..10, 12..13];
        assert_eq!(labels_from_offsets(&ids, &offsets, &trained), vec![IGNORE, IGNORE, 3, 4, 5, 6]);
        assert_eq!(labels_from_offsets(&ids, &offsets, &[]), vec![IGNORE; 6]);
    }
}
