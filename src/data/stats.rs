//! `prep stats`: what a data set holds before anyone trains on it: conversations, turns,
//! characters (tokens once a tokenizer is given), a length histogram, languages, and the records
//! that could not be read, by reason. Computed in parallel over the mapped files.
use super::clean::repair_structure;
use super::conversation::{Conversation, Role};
use super::encode::{encode, Sample};
use super::records::RecordFile;
use super::report::Reason;
use super::template::Template;
use crate::data::tokenizer::Tokenizer;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Upper bounds (exclusive) of the histogram buckets of characters per conversation; the last
/// bucket is open.
const BUCKETS: &[usize] = &[256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

/// Upper bounds (exclusive) of the histogram buckets of tokens per conversation.
const TOKEN_BUCKETS: &[usize] = &[256, 512, 1024, 2048, 4096, 8192];

/// Language detection reads this many characters of each conversation: enough for a confident
/// guess, and it keeps `stats` fast on large dumps.
const LANG_SAMPLE: usize = 2000;

/// Summary figures of a data set.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub conversations: usize,
    pub turns: usize,
    pub user_turns: usize,
    pub assistant_turns: usize,
    pub with_system_prompt: usize,
    pub characters: usize,
    pub user_characters: usize,
    pub assistant_characters: usize,
    pub max_turns: usize,
    pub max_characters: usize,
    /// Conversations per bucket of total characters, labelled by the bucket's range.
    pub length_histogram: Vec<(String, usize)>,
    /// Conversations per detected language (English name), `unknown` when undecidable.
    pub languages: BTreeMap<String, usize>,
    /// Records that could not be read as conversations, by reason.
    pub unreadable: BTreeMap<Reason, usize>,
    /// Token counts, when a tokenizer and template are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenStats>,
}

/// Token figures of the conversations as rendered by a template (BOS and role tags included).
#[derive(Debug, Default, Clone, Serialize)]
pub struct TokenStats {
    pub tokens: usize,
    /// Tokens of the assistant turns and their end-of-turn markers (what the loss sees).
    pub trained_tokens: usize,
    pub max_tokens: usize,
    /// Conversations per bucket of tokens.
    pub histogram: Vec<(String, usize)>,
}

#[derive(Default)]
struct Acc {
    stats: Stats,
    histogram: Vec<usize>,
    tokens: TokenStats,
    token_histogram: Vec<usize>,
}

impl Acc {
    fn add(mut self, c: &Conversation, tokens: Option<(&Tokenizer, &Template)>) -> Acc {
        if let Some(sample) = tokens.and_then(|tokens| encode_whole(c, tokens)) {
            let n = sample.input_ids.len();
            self.tokens.tokens += n;
            self.tokens.trained_tokens += sample.trained_tokens();
            self.tokens.max_tokens = self.tokens.max_tokens.max(n);
            self.token_histogram.resize(TOKEN_BUCKETS.len() + 1, 0);
            self.token_histogram[TOKEN_BUCKETS.iter().position(|&b| n < b).unwrap_or(TOKEN_BUCKETS.len())] += 1;
        }
        let s = &mut self.stats;
        s.conversations += 1;
        s.turns += c.turns.len();
        s.with_system_prompt += usize::from(c.system.is_some());
        let mut chars = 0;
        for t in &c.turns {
            let n = t.text.chars().count();
            chars += n;
            match t.role {
                Role::User => (s.user_turns, s.user_characters) = (s.user_turns + 1, s.user_characters + n),
                Role::Assistant => {
                    (s.assistant_turns, s.assistant_characters) = (s.assistant_turns + 1, s.assistant_characters + n)
                }
                Role::System => {}
            }
        }
        s.characters += chars;
        s.max_turns = s.max_turns.max(c.turns.len());
        s.max_characters = s.max_characters.max(chars);
        self.histogram.resize(BUCKETS.len() + 1, 0);
        self.histogram[BUCKETS.iter().position(|&b| chars < b).unwrap_or(BUCKETS.len())] += 1;
        *s.languages.entry(language(c)).or_default() += 1;
        self
    }

    fn merge(mut self, other: Acc) -> Acc {
        let (a, b) = (&mut self.stats, other.stats);
        a.conversations += b.conversations;
        a.turns += b.turns;
        a.user_turns += b.user_turns;
        a.assistant_turns += b.assistant_turns;
        a.with_system_prompt += b.with_system_prompt;
        a.characters += b.characters;
        a.user_characters += b.user_characters;
        a.assistant_characters += b.assistant_characters;
        a.max_turns = a.max_turns.max(b.max_turns);
        a.max_characters = a.max_characters.max(b.max_characters);
        for (k, v) in b.languages {
            *a.languages.entry(k).or_default() += v;
        }
        for (k, v) in b.unreadable {
            *a.unreadable.entry(k).or_default() += v;
        }
        self.histogram.resize(BUCKETS.len() + 1, 0);
        for (i, v) in other.histogram.into_iter().enumerate() {
            self.histogram[i] += v;
        }
        self.tokens.tokens += other.tokens.tokens;
        self.tokens.trained_tokens += other.tokens.trained_tokens;
        self.tokens.max_tokens = self.tokens.max_tokens.max(other.tokens.max_tokens);
        self.token_histogram.resize(TOKEN_BUCKETS.len() + 1, 0);
        for (i, v) in other.token_histogram.into_iter().enumerate() {
            self.token_histogram[i] += v;
        }
        self
    }
}

fn language(c: &Conversation) -> String {
    let mut sample = String::with_capacity(LANG_SAMPLE + 64);
    for t in &c.turns {
        if sample.len() >= LANG_SAMPLE {
            break;
        }
        let end = t.text.char_indices().nth(LANG_SAMPLE).map_or(t.text.len(), |(i, _)| i);
        sample.push_str(&t.text[..end]);
        sample.push('\n');
    }
    whatlang::detect_lang(&sample).map_or_else(|| "unknown".to_string(), |l| l.eng_name().to_string())
}

/// A conversation as the trainer would see it, untruncated (its structure repaired as `prep`
/// would): what token counts are taken from. `None` when it cannot be rendered or encoded.
pub fn encode_whole(c: &Conversation, (tokenizer, template): (&Tokenizer, &Template)) -> Option<Sample> {
    let mut repaired = c.clone();
    repair_structure(&mut repaired.turns).ok()?;
    encode(&repaired, template, tokenizer, usize::MAX).ok()?.ok()
}

/// Computes the statistics of clean conversation files; with `tokens`, also token counts.
pub fn compute(files: &[RecordFile], tokens: Option<(&Tokenizer, &Template)>) -> Stats {
    let acc = files
        .par_iter()
        .flat_map(|f| (0..f.len()).into_par_iter().map(move |i| (f, i)))
        .fold(Acc::default, |acc, (f, i)| match Conversation::parse(f.record(i), i) {
            Ok(c) => acc.add(&c, tokens),
            Err(reason) => {
                let mut acc = acc;
                *acc.stats.unreadable.entry(reason).or_default() += 1;
                acc
            }
        })
        .reduce(Acc::default, Acc::merge);
    let mut stats = acc.stats;
    stats.length_histogram = labelled(acc.histogram, BUCKETS);
    if tokens.is_some() {
        stats.tokens = Some(TokenStats { histogram: labelled(acc.token_histogram, TOKEN_BUCKETS), ..acc.tokens });
    }
    stats
}

/// Pairs each histogram count with its bucket's range, `lo-hi` (the last one `lo+`).
fn labelled(mut counts: Vec<usize>, bounds: &[usize]) -> Vec<(String, usize)> {
    counts.resize(bounds.len() + 1, 0);
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let lo = if i == 0 { 0 } else { bounds[i - 1] };
            let label = bounds.get(i).map_or_else(|| format!("{lo}+"), |hi| format!("{lo}-{}", hi - 1));
            (label, n)
        })
        .collect()
}

/// Writes a labelled histogram as rows of `#`, scaled to the largest bucket.
fn bars(f: &mut fmt::Formatter, rows: &[(String, usize)]) -> fmt::Result {
    let widest = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    for (label, n) in rows {
        writeln!(f, "  {label:>12} {n:>9} {}", "#".repeat(n * 40 / widest))?;
    }
    Ok(())
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let per = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        writeln!(f, "conversations        {:>12}", self.conversations)?;
        writeln!(f, "  with system prompt {:>12}", self.with_system_prompt)?;
        writeln!(
            f,
            "turns                {:>12}  ({:.2} per conversation, max {})",
            self.turns,
            per(self.turns, self.conversations),
            self.max_turns
        )?;
        writeln!(f, "  user               {:>12}", self.user_turns)?;
        writeln!(f, "  assistant          {:>12}", self.assistant_turns)?;
        writeln!(
            f,
            "characters           {:>12}  ({:.0} per conversation, max {})",
            self.characters,
            per(self.characters, self.conversations),
            self.max_characters
        )?;
        writeln!(
            f,
            "  user               {:>12}  ({:.0} per turn)",
            self.user_characters,
            per(self.user_characters, self.user_turns)
        )?;
        writeln!(
            f,
            "  assistant          {:>12}  ({:.0} per turn)",
            self.assistant_characters,
            per(self.assistant_characters, self.assistant_turns)
        )?;
        writeln!(f, "characters per conversation:")?;
        bars(f, &self.length_histogram)?;
        if let Some(t) = &self.tokens {
            writeln!(
                f,
                "tokens               {:>12}  ({:.0} per conversation, max {})",
                t.tokens,
                per(t.tokens, self.conversations),
                t.max_tokens
            )?;
            writeln!(
                f,
                "  trained            {:>12}  ({:.1}%)",
                t.trained_tokens,
                100.0 * per(t.trained_tokens, t.tokens)
            )?;
            writeln!(f, "tokens per conversation:")?;
            bars(f, &t.histogram)?;
        }
        writeln!(f, "languages:")?;
        let mut langs: Vec<_> = self.languages.iter().collect();
        langs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (lang, n) in langs {
            writeln!(f, "  {lang:<18} {n:>9}")?;
        }
        if !self.unreadable.is_empty() {
            writeln!(f, "unreadable records:")?;
            for (reason, n) in &self.unreadable {
                writeln!(f, "  {:<18} {n:>9}", reason.name())?;
            }
        }
        Ok(())
    }
}
