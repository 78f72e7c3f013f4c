//! `prep decontaminate DATA... --against QUESTIONS... -o OUT`: drops training conversations any
//! of whose user turns resembles a benchmark question, so a model is not evaluated on what it was
//! trained on, and lists every removal with the question it matched and the scores.
//!
//! A user turn matches a question when either
//! - **n-gram overlap**: at least `overlap` of the question's distinct word `ngram`-grams occur
//!   in the turn (a question shorter than `ngram` words counts as one n-gram, itself). This finds
//!   a question copied into a longer turn, as GPT-3's and Llama's 13-gram checks do, with a
//!   shorter n because benchmark questions are one or two sentences; or
//! - **sentence BLEU** of the turn (hypothesis) against the question (reference) is at least
//!   `bleu` (default 0.2, as Koala's decontamination of its training data against its test
//!   prompts): this finds paraphrases. BLEU is NLTK's, defined in `data::bleu`.
//!
//! Words are `data::words`' (lowercased alphanumeric runs). Questions are indexed, so a turn is
//! scored only against questions it can match: an inverted index of the questions' bigrams gives,
//! for each question, the turn positions whose bigram it contains; BLEU is computed exactly only
//! where the bound of `bleu::bleu_upper_bound` reaches the threshold (without a shared bigram
//! BLEU cannot exceed 0.178, so at the default threshold nothing is missed; at a threshold below
//! that every question is scored). A second index of the questions' n-grams counts the overlap.
//!
//! Question files are JSON Lines in any of FastChat's formats: Vicuna-80's `question.jsonl`
//! (`{"question_id", "text", "category"}`), MT-bench's (`{"question_id", "category", "turns":
//! [..]}`, every turn a question), or plain `{"text"}`. The reader is this module's own, not
//! `eval::questions` (the data stage may not use the eval stage, and this one needs less: no
//! category, an optional id).
use super::bleu::{bleu_upper_bound, max_without_shared_bigram, sentence_bleu, NgramCounts};
use super::conversation::{Conversation, Role};
use super::pipeline::{self, Plan};
use super::report::{Reason, Report};
use super::words::{ngram_hash, ngram_hashes, word_hashes};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Thresholds of a match, checked by [`DecontaminateOptions::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecontaminateOptions {
    /// Sentence BLEU at or above which a turn matches a question (0 to 1).
    pub bleu: f64,
    /// Words per n-gram of the overlap test.
    pub ngram: usize,
    /// Share of the question's n-grams found in the turn at or above which it matches (0 to 1).
    pub overlap: f64,
}

impl DecontaminateOptions {
    /// Checked options.
    pub fn new(bleu: f64, ngram: usize, overlap: f64) -> Result<DecontaminateOptions> {
        if !(bleu > 0.0 && bleu <= 1.0) || !(overlap > 0.0 && overlap <= 1.0) {
            bail!("--bleu {bleu} and --overlap {overlap} must be in (0, 1]");
        }
        if ngram == 0 {
            bail!("--ngram must be at least 1");
        }
        Ok(DecontaminateOptions { bleu, ngram, overlap })
    }
}

/// One benchmark question (one turn of an MT-bench question), with its precomputed n-grams.
#[derive(Debug, Clone)]
pub struct BenchmarkQuestion {
    /// The question file's name (without its folder), for the report.
    pub source: String,
    /// `question_id` as written (a number or a string), or the 1-based line number when absent.
    pub question_id: Value,
    /// 1-based turn within the question (MT-bench has two; Vicuna-80 and plain text one).
    pub turn: usize,
    pub text: String,
    counts: NgramCounts,
    /// Distinct n-grams of the overlap test.
    overlap_ngrams: usize,
}

impl BenchmarkQuestion {
    /// A question turn with its n-grams; `None` when the text has no word.
    pub fn new(source: &str, question_id: Value, turn: usize, text: &str, ngram: usize) -> Option<BenchmarkQuestion> {
        let words = word_hashes(text);
        let mut grams = ngram_hashes(&words, ngram);
        grams.sort_unstable();
        grams.dedup();
        (!words.is_empty()).then(|| BenchmarkQuestion {
            source: source.to_string(),
            question_id,
            turn,
            text: text.to_string(),
            counts: NgramCounts::new(&words),
            overlap_ngrams: grams.len(),
        })
    }
}

/// Reads question files (see the module doc); strict, since a question silently lost is a
/// contamination silently kept: a bad line is an error naming `file:line`.
pub fn read_questions(paths: &[PathBuf], ngram: usize) -> Result<Vec<BenchmarkQuestion>> {
    let mut questions = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read question file {}", path.display()))?;
        let source = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = || format!("{}:{}", path.display(), index + 1);
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON; question files are JSON Lines", at()))?;
            let id = value.get("question_id").cloned().unwrap_or_else(|| Value::from(index + 1));
            let turns: Vec<&str> = match (value.get("turns"), value.get("text")) {
                (Some(Value::Array(turns)), _) => turns.iter().map(Value::as_str).collect::<Option<_>>().with_context(
                    || format!("{}: every element of \"turns\" must be a string", at()),
                )?,
                (_, Some(Value::String(text))) => vec![text.as_str()],
                _ => bail!(
                    "{}: a question needs \"turns\" (a list of strings, MT-bench) or \"text\" (a string, Vicuna-80 or plain)",
                    at()
                ),
            };
            for (turn, text) in turns.into_iter().enumerate() {
                let question = BenchmarkQuestion::new(&source, id.clone(), turn + 1, text, ngram);
                questions.push(question.with_context(|| format!("{}: turn {} has no words to match", at(), turn + 1))?);
            }
        }
    }
    if questions.is_empty() {
        bail!("the question files hold no question; give FastChat question.jsonl files or JSONL of {{\"text\"}}");
    }
    Ok(questions)
}

/// The best match of one user turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index of the question in the index's list.
    pub question: usize,
    pub bleu: f64,
    pub overlap: f64,
}

/// The questions and their inverted indexes.
pub struct QuestionIndex {
    questions: Vec<BenchmarkQuestion>,
    options: DecontaminateOptions,
    /// Bigram hash to the questions containing it (each once).
    bigrams: HashMap<u64, Vec<u32>>,
    /// Overlap n-gram hash (of a question's length when shorter than `ngram`) to the questions.
    ngrams: HashMap<u64, Vec<u32>>,
    /// The n-gram lengths the overlap index holds: `ngram`, and the lengths of shorter questions.
    lengths: Vec<usize>,
    /// Score BLEU against every question: below 0.178 a question sharing no bigram can match.
    score_all: bool,
}

impl QuestionIndex {
    /// Indexes `questions`.
    pub fn new(questions: Vec<BenchmarkQuestion>, options: DecontaminateOptions) -> QuestionIndex {
        let mut bigrams: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut ngrams: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut lengths = vec![options.ngram];
        for (q, question) in questions.iter().enumerate() {
            let words = word_hashes(&question.text);
            for (map, n) in [(&mut bigrams, 2), (&mut ngrams, options.ngram)] {
                for h in ngram_hashes(&words, n) {
                    let list = map.entry(h).or_default();
                    // questions come in order, so a repeat within this one is the list's last
                    if list.last() != Some(&(q as u32)) {
                        list.push(q as u32);
                    }
                }
            }
            if words.len() < options.ngram && !lengths.contains(&words.len()) {
                lengths.push(words.len());
            }
        }
        let score_all = options.bleu <= max_without_shared_bigram();
        QuestionIndex { questions, options, bigrams, ngrams, lengths, score_all }
    }

    /// The indexed questions.
    pub fn questions(&self) -> &[BenchmarkQuestion] {
        &self.questions
    }

    /// The question `text` matches best (highest BLEU, then overlap, then first in the files),
    /// if any matches.
    pub fn best_match(&self, text: &str) -> Option<Match> {
        let words = word_hashes(text);
        if words.is_empty() {
            return None;
        }
        let n = self.questions.len();
        // Overlap: distinct turn n-grams of every indexed length, counted per question.
        let mut overlap_hits = vec![0u32; n];
        for &len in &self.lengths {
            if words.len() < len {
                continue;
            }
            let mut grams: Vec<u64> = words.windows(len).map(ngram_hash).collect();
            grams.sort_unstable();
            grams.dedup();
            for h in grams {
                for &q in self.ngrams.get(&h).map_or(&[][..], Vec::as_slice) {
                    overlap_hits[q as usize] += 1;
                }
            }
        }
        // BLEU candidates: turn positions whose bigram each question contains.
        let mut bigram_hits = vec![0u32; n];
        for w in words.windows(2) {
            for &q in self.bigrams.get(&ngram_hash(w)).map_or(&[][..], Vec::as_slice) {
                bigram_hits[q as usize] += 1;
            }
        }
        let mut counts: Option<NgramCounts> = None;
        let mut best: Option<Match> = None;
        for (q, question) in self.questions.iter().enumerate() {
            // sharing nothing, a question can neither overlap nor (unless `score_all`) reach the BLEU
            if !self.score_all && bigram_hits[q] == 0 && overlap_hits[q] == 0 {
                continue;
            }
            let overlap = f64::from(overlap_hits[q]) / question.overlap_ngrams as f64;
            let overlapping = overlap >= self.options.overlap;
            let bound = bleu_upper_bound(question.counts.len, words.len(), bigram_hits[q] as usize);
            if !overlapping && !self.score_all && bound < self.options.bleu {
                continue;
            }
            let counts = counts.get_or_insert_with(|| NgramCounts::new(&words));
            let bleu = sentence_bleu(&question.counts, counts);
            if !overlapping && bleu < self.options.bleu {
                continue;
            }
            let better = best.is_none_or(|b| (bleu, overlap) > (b.bleu, b.overlap));
            if better {
                best = Some(Match { question: q, bleu, overlap });
            }
        }
        best
    }

    /// The first user turn of `conversation` that matches a question (1-based) and its match.
    pub fn check(&self, conversation: &Conversation) -> Option<(usize, Match)> {
        let users = conversation.turns.iter().filter(|t| t.role == Role::User);
        users.enumerate().find_map(|(k, turn)| self.best_match(&turn.text).map(|m| (k + 1, m)))
    }
}

/// One removed conversation, as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// The conversation's id.
    pub id: String,
    /// Its position across all inputs (0-based).
    pub record: usize,
    /// The matching user turn (1-based, counting user turns only).
    pub turn: usize,
    /// The question file's name, the question's id and turn, and its text.
    pub source: String,
    pub question_id: Value,
    pub question_turn: usize,
    pub question: String,
    pub bleu: f64,
    pub overlap: f64,
}

/// The stage's report: the usual counts, and every removal in input order.
#[derive(Debug, Clone, Serialize)]
pub struct DecontaminationReport {
    #[serde(flatten)]
    pub report: Report,
    /// Questions (turns) checked against.
    pub questions: usize,
    pub removed: Vec<Removal>,
}

impl fmt::Display for DecontaminationReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.report)?;
        writeln!(f, "removed ({} conversations, against {} questions):", self.removed.len(), self.questions)?;
        for r in &self.removed {
            writeln!(
                f,
                "  {:?} turn {}: {} question {} turn {} (bleu {:.3}, overlap {:.3}): {:?}",
                r.id, r.turn, r.source, r.question_id, r.question_turn, r.bleu, r.overlap, r.question
            )?;
        }
        Ok(())
    }
}

/// Runs `plan` (reading conversations) over `inputs` into `output`, dropping every conversation
/// that matches a question of `index`.
pub fn run(plan: Plan, index: &QuestionIndex, inputs: &[PathBuf], output: &Path) -> Result<DecontaminationReport> {
    let found: Mutex<Vec<Removal>> = Mutex::new(Vec::new());
    let check = |record: usize, conversation: &Conversation| {
        let (turn, m) = index.check(conversation)?;
        let question = &index.questions[m.question];
        let removal = Removal {
            id: conversation.id.clone(),
            record,
            turn,
            source: question.source.clone(),
            question_id: question.question_id.clone(),
            question_turn: question.turn,
            question: question.text.clone(),
            bleu: m.bleu,
            overlap: m.overlap,
        };
        found.lock().unwrap_or_else(|e| e.into_inner()).push(removal);
        Some(Reason::Contaminated)
    };
    let plan = Plan { check: Some(&check), ..plan };
    let report = pipeline::run(&plan, inputs, output)?;
    let mut removed = found.into_inner().unwrap_or_else(|e| e.into_inner());
    removed.sort_by_key(|r| r.record);
    Ok(DecontaminationReport { report, questions: index.questions.len(), removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::SplitMix64;

    /// Texts over a small vocabulary, so that many pairs share words, bigrams and longer runs.
    fn text(rng: &mut SplitMix64, len: usize) -> String {
        const WORDS: &[&str] = &[
            "how",
            "can",
            "i",
            "improve",
            "my",
            "time",
            "write",
            "a",
            "poem",
            "about",
            "the",
            "sea",
            "explain",
            "why",
            "sky",
            "is",
            "blue",
            "in",
            "two",
            "sentences",
            "what",
            "are",
            "some",
            "ways",
            "to",
            "cook",
            "rice",
            "fast",
            "list",
            "five",
            "ideas",
            "for",
            "breakfast",
            "plan",
            "party",
            "budget",
            "smaller",
            "of",
            "and",
            "with",
        ];
        (0..len).map(|_| WORDS[rng.below(WORDS.len())]).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_index_finds_exactly_what_scoring_every_question_finds() {
        let mut rng = SplitMix64::new(7);
        let questions: Vec<_> = (0..60)
            .map(|i| {
                let len = 1 + rng.below(20);
                BenchmarkQuestion::new("q.jsonl", Value::from(i), 1, &text(&mut rng, len), 64).unwrap()
            })
            .collect();
        // Overlap only for a question copied whole, so that BLEU decides nearly every match.
        let options = DecontaminateOptions::new(0.2, 64, 1.0).unwrap();
        let indexed = QuestionIndex::new(questions.clone(), options);
        let brute = QuestionIndex { score_all: true, ..QuestionIndex::new(questions, options) };
        assert!(!indexed.score_all);
        let texts: Vec<String> = indexed.questions().iter().map(|q| q.text.clone()).collect();
        let mut matched = 0;
        for _ in 0..3000 {
            // Half random texts, half edited questions inside random words: scores all around the threshold.
            let len = 1 + rng.below(30);
            let mut turn = text(&mut rng, len);
            if rng.below(2) == 0 {
                let mut words: Vec<String> = texts[rng.below(texts.len())].split(' ').map(str::to_string).collect();
                for _ in 0..rng.below(words.len() + 1) {
                    let at = rng.below(words.len());
                    words[at] = text(&mut rng, 1);
                }
                let (before, after) = (rng.below(12), rng.below(12));
                turn = format!("{} {} {}", text(&mut rng, before), words.join(" "), text(&mut rng, after));
            }
            let (a, b) = (indexed.best_match(&turn), brute.best_match(&turn));
            assert_eq!(a, b, "{turn:?}");
            matched += usize::from(a.is_some());
        }
        assert!(matched > 300 && matched < 2700, "{matched} of 3000 matched: the test would not tell");
    }
}
