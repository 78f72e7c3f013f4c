//! Reading verdicts out of what judges actually write.
//!
//! Formats (the prompt's `output_format`, see [`super::prompts::OutputFormat`]):
//! - `[[A]]` (MT-bench pairwise, FastChat `run_judge_pair`): `[[A]]`, `[[B]]`, `[[C]]` (tie; `[[Tie]]`
//!   also accepted), in any case, with markdown around or inside (`**[[A]]**`, `[[**B**]]`).
//! - `[[rating]]` (MT-bench single, `run_judge_single`): `[[8]]`, `[[7.5]]`, `Rating: [[9]]`,
//!   `[[8/10]]`; FastChat's fallback `[8]` is accepted only with a rating cue before it on its line
//!   (`rating`, `score`, `rate`, `grade`, `評価`) or on the last line, because a bare `[1]` is usually
//!   a citation.
//! - `[[rating_a,rating_b]]`: `[[8, 6]]`, fallback `[8, 6]` under the same cue rule.
//! - Vicuna-80 (`eval_gpt_review.py`): two scores on the first line (`8 9`, `8, 9`, `8\t9`,
//!   `(8, 9)`, `8/10 9/10`, `Score: 8 and 9`); otherwise labelled scores anywhere (`Assistant 1:
//!   7` ... `Assistant 2: 9`, `Assistant 1 a score of 10`), or a score tuple (`(10, 1)`) on a line
//!   that says score/tuple/output/rating, or standing alone, or last — the math prompt asks for
//!   "a Python tuple" after working the problem.
//!
//! Several verdicts in one reply: the judges are told to give the verdict after the explanation,
//! so the **last** line carrying a verdict decides. A line naming different verdicts (`[[A]]` if
//! A is better, `[[B]]` if ...; `[[7]] or [[8]]`) is an echo of the instructions or a hedge and
//! never decides; if it is the last such line the reply is unparsed. This differs from FastChat,
//! which takes `[[A]]` whenever it appears anywhere (so an echoed instruction reads as "A wins")
//! and takes the *first* rating (so an echoed `Rating: [[5]]` example reads as 5).
//!
//! Scores must lie in 0..=10 (the prompts ask for 1 to 10; GPT-4 gives 0 to empty answers in
//! FastChat's own Vicuna-80 review tables). Anything else — out of range, negative, missing,
//! contradictory — becomes [`Verdict::Unparsed`], which keeps the text and the reason so it is
//! counted and shown, never scored.
//!
//! Checked on FastChat's 1,040 stored GPT-4 Vicuna-80 reviews (`fastchat/eval/table/review/`):
//! all parse, and 1,038 give the stored `score`; the other two (question 70, a math review) store
//! `[10, 2]` where the review's text says "Assistant 2: 4".
use super::prompts::OutputFormat;
use serde::{Deserialize, Serialize};

/// Lowest score accepted.
pub const SCORE_MIN: f64 = 0.0;
/// Highest score accepted.
pub const SCORE_MAX: f64 = 10.0;
/// Two scores this close are a tie (`TIE_DELTA` in llm_judge/common.py).
pub const TIE_DELTA: f64 = 0.1;

/// The outcome of one pairwise game, in the positions the judge saw (A = first answer shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PairVerdict {
    /// The first answer shown is better (`[[A]]`).
    A,
    /// The second answer shown is better (`[[B]]`).
    B,
    /// Neither (`[[C]]`).
    #[serde(rename = "tie")]
    Tie,
}

impl PairVerdict {
    /// The same verdict seen from the other order: A and B trade places, a tie stays a tie (used
    /// to map the swapped game back onto the original positions).
    pub fn flipped(self) -> PairVerdict {
        match self {
            PairVerdict::A => PairVerdict::B,
            PairVerdict::B => PairVerdict::A,
            PairVerdict::Tie => PairVerdict::Tie,
        }
    }

    /// The winner implied by two scores (A's, B's), tying within [`TIE_DELTA`] as FastChat does.
    pub fn from_scores(a: f64, b: f64) -> PairVerdict {
        if (a - b).abs() <= TIE_DELTA {
            PairVerdict::Tie
        } else if a > b {
            PairVerdict::A
        } else {
            PairVerdict::B
        }
    }
}

/// What one judge reply says, or why it says nothing usable. Serialised externally tagged:
/// `{"winner": "A"}`, `{"scores": [8.0, 9.0]}`, `{"rating": 7.5}`,
/// `{"unparsed": {"text": "...", "reason": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A pairwise winner, in the positions shown to the judge.
    Winner(PairVerdict),
    /// Two scores (first answer shown, second answer shown).
    Scores(f64, f64),
    /// One score for a single answer.
    Rating(f64),
    /// Nothing usable: kept with the judge's text and the reason, counted, never scored.
    Unparsed {
        /// The judge's whole reply.
        text: String,
        /// Why it could not be read, in words.
        reason: String,
    },
}

impl Verdict {
    /// Whether the reply could be read.
    pub fn is_parsed(&self) -> bool {
        !matches!(self, Verdict::Unparsed { .. })
    }

    /// The pairwise outcome, for winners and score pairs (via [`PairVerdict::from_scores`]).
    pub fn pair(&self) -> Option<PairVerdict> {
        match *self {
            Verdict::Winner(v) => Some(v),
            Verdict::Scores(a, b) => Some(PairVerdict::from_scores(a, b)),
            _ => None,
        }
    }
}

fn unparsed(text: &str, reason: impl Into<String>) -> Verdict {
    Verdict::Unparsed { text: text.to_string(), reason: reason.into() }
}

/// Reads a reply in the format its prompt asked for.
pub fn parse(format: OutputFormat, text: &str) -> Verdict {
    match format {
        OutputFormat::Winner => parse_winner(text),
        OutputFormat::Rating => parse_rating(text),
        OutputFormat::TwoRatings => parse_two_ratings(text),
        OutputFormat::Vicuna80Scores => parse_vicuna80(text),
    }
}

/// Reads a `[[A]]` / `[[B]]` / `[[C]]` verdict (see the module notes for several verdicts).
pub fn parse_winner(text: &str) -> Verdict {
    let tokens: Vec<(usize, PairVerdict)> = bracket_tokens(text)
        .into_iter()
        .filter_map(|t| {
            let verdict = match t.inner.to_ascii_uppercase().as_str() {
                "A" => PairVerdict::A,
                "B" => PairVerdict::B,
                "C" | "TIE" => PairVerdict::Tie,
                _ => return None,
            };
            Some((t.line, verdict))
        })
        .collect();
    match last_decisive(&tokens) {
        Decision::Found(v) => Verdict::Winner(v),
        Decision::None => unparsed(text, "no [[A]], [[B]] or [[C]] verdict"),
        Decision::Conflict => unparsed(text, "the last verdict line names different verdicts"),
    }
}

/// Reads a single `[[rating]]` (see the module notes for the `[8]` fallback).
pub fn parse_rating(text: &str) -> Verdict {
    let tokens: Vec<(usize, f64)> =
        bracket_tokens(text).into_iter().filter_map(|t| Some((t.line, score_text(t.inner)?))).collect();
    let value = match last_decisive(&tokens) {
        Decision::Found(v) => v,
        Decision::Conflict => return unparsed(text, "the last rating line gives different ratings"),
        Decision::None => {
            let singles = single_bracket_numbers(text, 1);
            match cued_last(text, &singles) {
                Some(values) => values[0],
                None if singles.is_empty() => return unparsed(text, "no [[rating]]"),
                None => return unparsed(text, "no [[rating]]; a bracketed number without a rating cue is not taken"),
            }
        }
    };
    match in_range(&[value]) {
        Ok(()) => Verdict::Rating(value),
        Err(reason) => unparsed(text, reason),
    }
}

/// Reads a `[[rating_a,rating_b]]` pair (fallback `[a, b]` under the cue rule).
pub fn parse_two_ratings(text: &str) -> Verdict {
    let tokens: Vec<(usize, (f64, f64))> = bracket_tokens(text)
        .into_iter()
        .filter_map(|t| {
            let (a, b) = t.inner.split_once(',')?;
            Some((t.line, (score_text(a)?, score_text(b)?)))
        })
        .collect();
    let (a, b) = match last_decisive(&tokens) {
        Decision::Found(pair) => pair,
        Decision::Conflict => return unparsed(text, "the last rating line gives different rating pairs"),
        Decision::None => match cued_last(text, &single_bracket_numbers(text, 2)) {
            Some(values) => (values[0], values[1]),
            None => return unparsed(text, "no [[rating_a,rating_b]]"),
        },
    };
    match in_range(&[a, b]) {
        Ok(()) => Verdict::Scores(a, b),
        Err(reason) => unparsed(text, reason),
    }
}

/// Reads the two Vicuna-80 scores (Assistant 1, Assistant 2): the first line when it is a clean
/// pair (FastChat's `parse_score` reads only that line), otherwise labelled scores and score
/// tuples anywhere; if both kinds are present they must agree.
pub fn parse_vicuna80(text: &str) -> Verdict {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first_count = match first_line_numbers(first) {
        Some(values) if values.len() == 2 => {
            return match in_range(&values) {
                Ok(()) => Verdict::Scores(values[0], values[1]),
                Err(reason) => unparsed(text, reason),
            };
        }
        Some(values) if !values.is_empty() => Some(values.len()),
        _ => None,
    };
    let labelled = match labelled_scores(text) {
        Ok(pair) => pair,
        Err(reason) => return unparsed(text, reason),
    };
    let tuple = cued_last(text, &tuples(text)).map(|v| (v[0], v[1]));
    let (a, b) = match (labelled, tuple) {
        (Some(l), Some(t)) if l != t => {
            return unparsed(
                text,
                format!("contradictory scores: labelled {} {} but tuple ({}, {})", l.0, l.1, t.0, t.1),
            );
        }
        (Some(pair), _) | (None, Some(pair)) => pair,
        (None, None) => {
            let reason = match first_count {
                Some(n) => format!("the first line has {n} number(s), expected two scores"),
                None => "no pair of scores (first line, \"Assistant 1: x\" labels or a score tuple)".to_string(),
            };
            return unparsed(text, reason);
        }
    };
    match in_range(&[a, b]) {
        Ok(()) => Verdict::Scores(a, b),
        Err(reason) => unparsed(text, reason),
    }
}

fn in_range(values: &[f64]) -> Result<(), String> {
    match values.iter().find(|v| !(SCORE_MIN..=SCORE_MAX).contains(*v)) {
        Some(v) => Err(format!("score {v} is outside {SCORE_MIN}..={SCORE_MAX}")),
        None => Ok(()),
    }
}

enum Decision<T> {
    Found(T),
    None,
    Conflict,
}

/// The verdict of the last line that carries any: decided if every token on that line agrees.
fn last_decisive<T: Copy + PartialEq>(tokens: &[(usize, T)]) -> Decision<T> {
    let Some(&(line, value)) = tokens.last() else { return Decision::None };
    if tokens.iter().filter(|(l, _)| *l == line).all(|(_, v)| *v == value) {
        Decision::Found(value)
    } else {
        Decision::Conflict
    }
}

/// A `[[...]]` group: its line number (0-based) and its inner text, trimmed of spaces, quotes
/// and markdown emphasis.
struct BracketToken<'a> {
    line: usize,
    inner: &'a str,
}

fn bracket_tokens(text: &str) -> Vec<BracketToken<'_>> {
    let mut tokens = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("[[") {
        let start = from + found;
        let body = &text[start + 2..];
        let close = body.find("]]").filter(|&end| end <= 40 && !body[..end].contains(['[', ']', '\n']));
        match close {
            Some(end) => {
                let inner = body[..end].trim_matches(|c: char| c.is_whitespace() || "*_`\"'".contains(c));
                tokens.push(BracketToken { line: line_of(text, start), inner });
                from = start + 2 + end + 2;
            }
            None => from = start + 1,
        }
    }
    tokens
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte].iter().filter(|&&b| b == b'\n').count()
}

/// A whole string read as one score: `8`, `7.5`, `-1`, `8/10`, `8 / 10`, `8 out of 10`.
fn score_text(s: &str) -> Option<f64> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || "*_`".contains(c));
    let (value, end) = scan_number(s, 0)?;
    let end = end + out_of_ten(&s[end..]);
    s[end..].trim().is_empty().then_some(value)
}

/// A number at byte `at`: optional `-`, digits, optional `.digits`. Returns the value and the
/// byte after it.
fn scan_number(s: &str, at: usize) -> Option<(f64, usize)> {
    let bytes = s.as_bytes();
    let mut i = at;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == digits {
        return None;
    }
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    s[at..i].parse().ok().map(|v| (v, i))
}

/// Bytes taken by a `/10`, ` / 10` or ` out of 10` suffix at the start of `s` (0 if none).
fn out_of_ten(s: &str) -> usize {
    let trimmed = s.trim_start_matches(' ');
    let spaces = s.len() - trimmed.len();
    for suffix in ["/10", "/ 10", "out of 10"] {
        if let Some(rest) = trimmed.strip_prefix(suffix) {
            if !rest.starts_with(|c: char| {
                c.is_ascii_digit() || c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())
            }) {
                return spaces + suffix.len();
            }
        }
    }
    0
}

/// Numbers in single brackets (`[8]` for `want == 1`, `[8, 6]` / `(8, 6)` for `want == 2`),
/// with their 0-based line numbers.
fn single_bracket_numbers(text: &str, want: usize) -> Vec<(usize, Vec<f64>)> {
    bracketed_numbers(text, want, &[('[', ']')])
}

/// Score tuples `(8, 9)` or `[8, 9]` with their line numbers.
fn tuples(text: &str) -> Vec<(usize, Vec<f64>)> {
    bracketed_numbers(text, 2, &[('(', ')'), ('[', ']')])
}

fn bracketed_numbers(text: &str, want: usize, pairs: &[(char, char)]) -> Vec<(usize, Vec<f64>)> {
    let mut found = Vec::new();
    for (at, c) in text.char_indices() {
        let Some(&(open, close)) = pairs.iter().find(|(o, _)| *o == c) else { continue };
        // `[[8]]` is the primary form, handled elsewhere; skip both of its brackets.
        if open == '[' && (text[..at].ends_with('[') || text[at + 1..].starts_with('[')) {
            continue;
        }
        let Some(end) = text[at + 1..].find(close) else { continue };
        let inner = &text[at + 1..at + 1 + end];
        if inner.contains('\n') || (open == '[' && text[at + 1 + end + 1..].starts_with(']')) {
            continue;
        }
        let parts: Vec<&str> = inner.split(',').collect();
        if parts.len() != want {
            continue;
        }
        if let Some(values) = parts.iter().map(|p| score_text(p)).collect::<Option<Vec<f64>>>() {
            found.push((line_of(text, at), values));
        }
    }
    found
}

/// The last candidate whose line has a score cue before it, stands alone, or is the last
/// non-empty line; `None` when no candidate qualifies.
fn cued_last(text: &str, candidates: &[(usize, Vec<f64>)]) -> Option<Vec<f64>> {
    let lines: Vec<&str> = text.lines().collect();
    let last_line = lines.iter().rposition(|l| !l.trim().is_empty());
    candidates
        .iter()
        .rev()
        .find(|(line, _)| {
            let content = lines.get(*line).copied().unwrap_or("");
            let lower = content.to_lowercase();
            let alone = content.trim_matches(|c: char| c.is_whitespace() || "*_`.".contains(c)).len() <= 16
                && content.chars().filter(char::is_ascii_alphabetic).count() == 0;
            Some(*line) == last_line
                || alone
                || ["rating", "score", "rate", "grade", "tuple", "output", "評価"].iter().any(|cue| lower.contains(cue))
        })
        .map(|(_, values)| values.clone())
}

/// The numbers of a first line that holds only numbers and separators (spaces, tabs, commas,
/// parentheses, `and`, `vs`, `/10`), after dropping markdown and a short label such as
/// `Scores:`; `None` when the line holds anything else.
fn first_line_numbers(line: &str) -> Option<Vec<f64>> {
    let stripped: String = line.chars().filter(|c| !"*`#_>".contains(*c)).collect();
    let mut s = stripped.trim();
    if let Some((label, rest)) = s.split_once(':') {
        if !label.contains(|c: char| c.is_ascii_digit()) && label.split_whitespace().count() <= 3 {
            s = rest.trim();
        }
    }
    let lower = s.to_ascii_lowercase();
    let mut values = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &lower[i..];
        let c = rest.chars().next()?;
        if c.is_whitespace() || ",;()[]|&.".contains(c) {
            i += c.len_utf8();
        } else if let Some(word) = ["and", "vs.", "vs"]
            .iter()
            .find(|w| rest.starts_with(**w) && !rest[w.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        {
            i += word.len();
        } else if let Some((value, end)) = scan_number(s, i) {
            values.push(value);
            i = end + out_of_ten(&s[end..]);
        } else {
            return None;
        }
    }
    Some(values)
}

/// `Assistant 1: 7` / `Assistant 2 receives a score of 9` anywhere in the text. `Ok(None)` when
/// either assistant has no labelled score; an error when one assistant is given two different
/// labelled scores.
fn labelled_scores(text: &str) -> Result<Option<(f64, f64)>, String> {
    let lower = text.to_ascii_lowercase();
    let mut found: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut from = 0;
    while let Some(pos) = lower[from..].find("assistant ") {
        let label = from + pos + "assistant ".len();
        from = label;
        let which = match lower.as_bytes().get(label) {
            Some(b'1') => 0,
            Some(b'2') => 1,
            _ => continue,
        };
        if lower.as_bytes().get(label + 1).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        if let Some(value) = score_after_label(text, &lower, label + 1) {
            found[which].push(value);
        }
    }
    for (i, values) in found.iter().enumerate() {
        if values.iter().any(|v| v != &values[0]) {
            return Err(format!("contradictory scores: Assistant {} is given {values:?}", i + 1));
        }
    }
    Ok(match (found[0].first(), found[1].first()) {
        (Some(&a), Some(&b)) => Some((a, b)),
        _ => None,
    })
}

/// The score right after an assistant label, through filler such as `'s score is`, `: `,
/// `receives a score of`; needs a colon, `=`, a dash or the word score/rating on the way, and a
/// number not followed by arithmetic (so `Assistant 2: 5 * 8 = 40` is not a score).
fn score_after_label(text: &str, lower: &str, mut i: usize) -> Option<f64> {
    const FILLER: [&str; 19] = [
        "'s", "’s", "scores", "score", "rating", "overall", "final", "receives", "received", "receive", "gets", "get",
        "earns", "deserves", "would", "an", "a", "of", "is",
    ];
    let mut strong = false;
    let line_end = lower[i..].find('\n').map_or(lower.len(), |e| i + e);
    while i < line_end {
        let rest = &lower[i..line_end];
        let c = rest.chars().next()?;
        if c == ' ' || c == '\t' || c == '*' || c == '(' {
            i += c.len_utf8();
        } else if ":=-–—".contains(c) {
            strong = true;
            i += c.len_utf8();
        } else if let Some(word) =
            FILLER.iter().find(|w| rest.starts_with(**w) && !rest[w.len()..].starts_with(|c: char| c.is_alphanumeric()))
        {
            strong |= word.starts_with("score") || *word == "rating";
            i += word.len();
        } else if c.is_ascii_digit() && strong {
            let (value, end) = scan_number(text, i)?;
            let end = end + out_of_ten(&text[end..line_end]);
            let after = text[end..line_end].trim_start_matches("**");
            return (!is_arithmetic(after)).then_some(value);
        } else {
            return None;
        }
    }
    None
}

/// Whether the text after a number continues a calculation (`x`, `* 8`, `= 40`, `+(3)`) rather
/// than a comment (` - The answer is wrong`, ` (correct)`).
fn is_arithmetic(after: &str) -> bool {
    if after.starts_with(|c: char| c.is_alphanumeric()) {
        return true;
    }
    let mut rest = after.trim_start().chars();
    match rest.next() {
        Some(op) if "+-*/=^×÷%".contains(op) => {
            rest.as_str().trim_start().starts_with(|c: char| c.is_ascii_digit() || c == '(')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutputFormat::*;

    enum Want {
        Win(PairVerdict),
        Two(f64, f64),
        One(f64),
        Fails(&'static str),
    }
    use PairVerdict::{Tie, A, B};
    use Want::*;

    /// Judge replies as they come back (the first Vicuna-80 rows are excerpts of GPT-4 reviews in
    /// FastChat's `fastchat/eval/table/review/`, the MT-bench ones of its `model_judgment` files),
    /// the variants seen from other judges, and the failures.
    const CASES: &[(OutputFormat, &str, Want)] = &[
        // MT-bench pairwise.
        (Winner, "Assistant A's answer is more detailed and accurate.\n\n[[A]]", Win(A)),
        (Winner, "Both are correct, but B explains the steps.\n\nFinal verdict: [[B]].", Win(B)),
        (Winner, "Both responses are equally good. [[C]]", Win(Tie)),
        (Winner, "**[[A]]**", Win(A)),
        (Winner, "My final verdict is: **[[B]]**", Win(B)),
        (Winner, "Verdict: [[**A**]]", Win(A)),
        (Winner, "It is a tie: [[Tie]]", Win(Tie)),
        (Winner, "I was asked to output \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.\nAssistant B is more accurate.\n\n[[B]]", Win(B)),
        (Winner, "Assistant A first said [[A]] would be fair.\nOn reflection:\n[[B]]", Win(B)),
        (Winner, "Both answers are wrong.", Fails("no [[A]]")),
        (Winner, "It could be [[A]] or [[B]] depending on taste.", Fails("different verdicts")),
        (Winner, "Final verdict: [A]", Fails("no [[A]]")),
        (Winner, "$ERROR$", Fails("no [[A]]")),
        // MT-bench single.
        (Rating, "The assistant's answer is mostly correct ... I would rate this response as follows: \n\nRating: [[7]]", One(7.0)),
        (Rating, "アシスタントの回答は有用で、関連性があり、詳細です。評価：[[9]]", One(9.0)),
        (Rating, "Therefore, I would rate it a [[6]].", One(6.0)),
        (Rating, "Rating: [[7.5]]", One(7.5)),
        (Rating, "Rating: [[ 8 ]]", One(8.0)),
        (Rating, "Rating: [[8/10]]", One(8.0)),
        (Rating, "The answer is good.\nRating: [8]", One(8.0)),
        (Rating, "Good work overall.\n[9]", One(9.0)),
        (Rating, "I must rate on a scale of 1 to 10 by following \"[[rating]]\", for example: \"Rating: [[5]]\".\nThe answer misses the second part.\nRating: [[3]]", One(3.0)),
        (Rating, "As shown in [1], the claim is right.\nOverall the answer is fine.", Fails("without a rating cue")),
        (Rating, "Rating: [[11]]", Fails("outside")),
        (Rating, "Rating: [[-1]]", Fails("outside")),
        (Rating, "Rating: 8/10", Fails("no [[rating]]")),
        (Rating, "Rating: [[7]] or [[8]]", Fails("different ratings")),
        (Rating, "Rating: [[N/A]]", Fails("no [[rating]]")),
        // Pairwise with two ratings.
        (TwoRatings, "Scores: [[8, 6]]", Two(8.0, 6.0)),
        (TwoRatings, "[[7,7.5]]", Two(7.0, 7.5)),
        (TwoRatings, "The scores are [9, 4]", Two(9.0, 4.0)),
        (TwoRatings, "[[8, 12]]", Fails("outside")),
        // Vicuna-80, from FastChat's GPT-4 review tables.
        (Vicuna80Scores, "9 8\nAssistant 1 provided a more detailed and structured answer, listing 16 specific strategies.", Two(9.0, 8.0)),
        (Vicuna80Scores, "0 9\n\nAssistant 1 did not provide any response, so it receives a score of 0.", Two(0.0, 9.0)),
        (Vicuna80Scores, "8.5 9.5\nBoth assistants provided helpful answers.", Two(8.5, 9.5)),
        (Vicuna80Scores, "First, I will solve the problem independently:\n...\nScores:\nAssistant 1: 10\nAssistant 2: 4\n\nAssistant 1 performed better because they provided the correct steps.", Two(10.0, 4.0)),
        (Vicuna80Scores, "First, let's solve the problem independently:\n...\nScores:\nAssistant 1: 2 (incorrect steps and answer)\nAssistant 2: 1 (incorrect answer and no steps provided)\n", Two(2.0, 1.0)),
        (Vicuna80Scores, "First, let's solve the problem independently. We can use the distance formula, from (2, -2) to (10, 4):\n...\nTherefore, I would give Assistant 1 a score of 10 and Assistant 2 a score of 1.\n\nThe output tuple is (10, 1). Assistant 1 performed better in this case.", Two(10.0, 1.0)),
        (Vicuna80Scores, "First, I will solve the problem independently:\nf(2) = 5(2)^3 - 2(2) + 3 = 39\n...\nAssistant 2 performed better.\n\nOutput: (1, 7)", Two(1.0, 7.0)),
        (Vicuna80Scores, "First, I will solve the problem independently:\n...\nScores:\nAssistant 1: 1/10\nAssistant 2: 2/10\n\nBoth assistants performed poorly.", Two(1.0, 2.0)),
        (Vicuna80Scores, "First, I will solve the problem independently:\n\n3x + 10 = 5(x - 2)\n...\nAssistant 1:\nx = 6.\n\nNow, I will provide the scores for Assistant 1 and Assistant 2:\n\nAssistant 1: 1/10 - The answer is incorrect.\n\nAssistant 2: 2/10 - The answer is incorrect, and the steps are confusing.", Two(1.0, 2.0)),
        (Vicuna80Scores, "In conclusion, the scores are (1, 5) for Assistant 1 and Assistant 2, respectively.", Two(1.0, 5.0)),
        // Vicuna-80, other spellings of the first line.
        (Vicuna80Scores, "8/10 9/10\nBoth are good.", Two(8.0, 9.0)),
        (Vicuna80Scores, "Assistant 1: 7\nAssistant 2: 9\nAssistant 2 is more detailed.", Two(7.0, 9.0)),
        (Vicuna80Scores, "(8, 9)\nExplanation follows.", Two(8.0, 9.0)),
        (Vicuna80Scores, "8, 9\nExplanation follows.", Two(8.0, 9.0)),
        (Vicuna80Scores, "Score: 8 and 9", Two(8.0, 9.0)),
        (Vicuna80Scores, "8\t9", Two(8.0, 9.0)),
        (Vicuna80Scores, "**8 9**\n", Two(8.0, 9.0)),
        (Vicuna80Scores, "Assistant 1's score: 6, Assistant 2's score: 8.", Two(6.0, 8.0)),
        // Vicuna-80 failures.
        (Vicuna80Scores, "85 90\nScores out of 100.", Fails("outside")),
        (Vicuna80Scores, "-1 8\n", Fails("outside")),
        (Vicuna80Scores, "8\nAssistant 2 did not answer.", Fails("first line has 1 number")),
        (Vicuna80Scores, "8 9 10\n", Fails("first line has 3 number")),
        (Vicuna80Scores, "Both assistants gave excellent answers.", Fails("no pair of scores")),
        (Vicuna80Scores, "Assistant 1 performed better; Assistant 2 made an error in step 3.", Fails("no pair of scores")),
        (Vicuna80Scores, "Scores:\nAssistant 1: 10\nAssistant 2: 4\n\nThe output tuple is (10, 2).", Fails("contradictory")),
        (Vicuna80Scores, "Assistant 1: 8\nAssistant 2: 7\nOn reflection, Assistant 1: 6", Fails("contradictory")),
        (Vicuna80Scores, "Assistant 1: 5 * 8 - 2 = 38 is wrong.\nAssistant 2: 3 + 4 = 7.", Fails("no pair of scores")),
        (Vicuna80Scores, "", Fails("no pair of scores")),
    ];

    #[test]
    fn table_of_real_world_judge_replies() {
        assert!(CASES.len() >= 30);
        for (format, text, want) in CASES {
            let got = parse(*format, text);
            let ok = match (want, &got) {
                (Win(w), Verdict::Winner(v)) => w == v,
                (Two(a, b), Verdict::Scores(x, y)) => a == x && b == y,
                (One(a), Verdict::Rating(x)) => a == x,
                (Fails(reason), Verdict::Unparsed { text: kept, reason: got_reason }) => {
                    kept == text && got_reason.contains(reason)
                }
                _ => false,
            };
            assert!(ok, "{format:?} {text:?}\n=> {got:?}");
        }
    }

    #[test]
    fn verdicts_serialise_externally_tagged() {
        let cases = [
            (Verdict::Winner(PairVerdict::Tie), r#"{"winner":"tie"}"#),
            (Verdict::Scores(8.0, 9.5), r#"{"scores":[8.0,9.5]}"#),
            (Verdict::Rating(7.0), r#"{"rating":7.0}"#),
            (unparsed("x", "why"), r#"{"unparsed":{"text":"x","reason":"why"}}"#),
        ];
        for (verdict, json) in cases {
            assert_eq!(serde_json::to_string(&verdict).unwrap(), json);
            assert_eq!(serde_json::from_str::<Verdict>(json).unwrap(), verdict);
        }
    }

    #[test]
    fn score_pairs_tie_within_fastchats_delta() {
        assert_eq!(PairVerdict::from_scores(8.0, 8.1), PairVerdict::Tie);
        assert_eq!(PairVerdict::from_scores(8.0, 8.5), PairVerdict::B);
        assert_eq!(PairVerdict::from_scores(9.0, 8.0), PairVerdict::A);
        assert_eq!(Verdict::Scores(3.0, 7.0).pair(), Some(PairVerdict::B));
        assert_eq!(PairVerdict::A.flipped(), PairVerdict::B);
        assert_eq!(PairVerdict::Tie.flipped(), PairVerdict::Tie);
    }

    #[test]
    fn never_panics_on_odd_text() {
        let texts = [
            "[[",
            "]]",
            "[[]]",
            "[[[A]]]",
            "Assistant ",
            "Assistant 1",
            "Assistant 1:",
            "(",
            "[1,",
            "é[[8]]ü",
            "8/",
            "8 /10",
            "\u{2028}[[A]]",
            "-",
            "1.",
            "[[1.]]",
        ];
        for text in texts {
            for format in [Winner, Rating, TwoRatings, Vicuna80Scores] {
                let _ = parse(format, text);
            }
        }
        assert_eq!(parse(Winner, "[[[A]]]"), Verdict::Winner(PairVerdict::A));
        assert_eq!(parse(Rating, "é[[8]]ü"), Verdict::Rating(8.0));
    }
}
