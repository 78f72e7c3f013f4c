//! `prep split`: long conversations cut at turn-pair boundaries so that every segment, rendered
//! with its template (BOS and system prompt included), encodes to at most `max_len` tokens. This
//! fixes FastChat's `split_long_conversation.py`, which loses the last pair when it overflows,
//! counts neither the system prompt nor the role tags, and keeps a single over-long pair over
//! length. Here no pair is lost: a pair that cannot fit alone is truncated (its answer cut at a
//! token boundary) or dropped, by flag, and counted. Segments are `{id}_{k}`.
use super::conversation::{Conversation, Turn};
use super::template::Template;
use crate::data::tokenizer::Tokenizer;
use anyhow::Result;

/// What to do with one user-assistant pair that does not fit in `max_len` tokens on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LongPair {
    /// Cut the answer at a token boundary so the pair fits (the question must fit whole).
    #[default]
    Truncate,
    /// Leave the pair out.
    Drop,
}

/// Settings of the split stage.
#[derive(Debug, Clone, Copy)]
pub struct SplitOptions {
    pub max_len: usize,
    pub long_pair: LongPair,
}

/// What splitting one conversation did, for the report.
#[derive(Debug, Clone, Default)]
pub struct SplitOutcome {
    pub segments: Vec<Conversation>,
    /// Pairs whose answer was cut to fit.
    pub truncated_pairs: usize,
    /// Pairs left out (by `--long-pair drop`, or because the question alone does not fit).
    pub dropped_pairs: usize,
}

/// Splits one clean conversation (alternating user, assistant; a trailing user turn is ignored).
pub fn split(
    conversation: &Conversation,
    template: &Template,
    tokenizer: &Tokenizer,
    options: SplitOptions,
) -> Result<SplitOutcome> {
    let system = conversation.system.as_deref();
    let pairs: Vec<&[Turn]> = conversation.turns.chunks_exact(2).collect();
    let costs = pair_costs(conversation, template, tokenizer)?;
    let mut out = SplitOutcome::default();
    let mut start = 0;
    while start < pairs.len() {
        // Greedy by the costs measured in context, then confirmed by encoding the segment itself.
        let mut end = start;
        let mut total = costs.header;
        while end < pairs.len() && total + costs.pairs[end] <= options.max_len {
            total += costs.pairs[end];
            end += 1;
        }
        // The whole conversation's count is exact already (every token was attributed); a proper
        // part is re-encoded, since BPE at its edges may differ from the tokens in context.
        let whole = start == 0 && end == pairs.len();
        while end > start && !whole && count(template, tokenizer, system, &pairs[start..end])? > options.max_len {
            end -= 1;
        }
        if end > start {
            out.segments.push(segment(conversation, out.segments.len(), pairs[start..end].concat()));
            start = end;
            continue;
        }
        // The pair at `start` does not fit alone.
        match options.long_pair {
            LongPair::Drop => out.dropped_pairs += 1,
            LongPair::Truncate => match truncate_pair(template, tokenizer, system, pairs[start], options.max_len)? {
                Some(pair) => {
                    out.segments.push(segment(conversation, out.segments.len(), pair));
                    out.truncated_pairs += 1;
                }
                None => out.dropped_pairs += 1,
            },
        }
        start += 1;
    }
    Ok(out)
}

/// Token counts of one rendering of the whole conversation: the part before the first turn
/// (BOS, system prompt) and each user-assistant pair with its role tags.
struct Costs {
    header: usize,
    pairs: Vec<usize>,
}

fn pair_costs(conversation: &Conversation, template: &Template, tokenizer: &Tokenizer) -> Result<Costs> {
    let rendered = template.render(conversation.system.as_deref(), &conversation.turns)?;
    let encoding = tokenizer.encode(&rendered.text)?;
    // Pair k starts at turn 2k; tokens are attributed to the pair their first byte falls in.
    let bounds: Vec<usize> = rendered.turn_starts.iter().step_by(2).copied().collect();
    let mut header = 0;
    let mut pairs = vec![0; conversation.turns.len() / 2];
    for &(start, _) in &encoding.offsets {
        match bounds.iter().rposition(|&b| b <= start) {
            Some(k) if k < pairs.len() => pairs[k] += 1,
            Some(_) => {}
            None => header += 1,
        }
    }
    Ok(Costs { header, pairs })
}

/// Exact token count of a candidate segment.
fn count(template: &Template, tokenizer: &Tokenizer, system: Option<&str>, pairs: &[&[Turn]]) -> Result<usize> {
    let turns = pairs.concat();
    Ok(tokenizer.encode(&template.render(system, &turns)?.text)?.ids.len())
}

/// Cuts the answer of a pair so the pair fits in `max_len`; `None` when the question alone
/// (with the template around it and at least one answer token) does not fit.
fn truncate_pair(
    template: &Template,
    tokenizer: &Tokenizer,
    system: Option<&str>,
    pair: &[Turn],
    max_len: usize,
) -> Result<Option<Vec<Turn>>> {
    let answer = &pair[1].text;
    let encoding = tokenizer.encode(answer)?;
    let with = |n: usize| -> Vec<Turn> {
        let cut = if n == 0 { 0 } else { encoding.offsets[n - 1].1 };
        vec![pair[0].clone(), Turn { role: pair[1].role, text: answer[..cut].to_string() }]
    };
    // Binary search the longest answer prefix (in tokens) whose pair fits.
    let (mut lo, mut hi) = (0usize, encoding.ids.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(template, tokenizer, system, &[&with(mid)])? <= max_len {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok((lo > 0).then(|| with(lo)))
}

fn segment(conversation: &Conversation, k: usize, turns: Vec<Turn>) -> Conversation {
    Conversation {
        id: format!("{}_{k}", conversation.id),
        system: conversation.system.clone(),
        turns,
        extra: conversation.extra.clone(),
    }
}
