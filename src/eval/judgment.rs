//! Judgment records: [`Judgment`] is the record the judge appends to a JSONL file, one per judged
//! game (a question, a turn, one model or a pair of models, one judge). It carries what FastChat's
//! `play_a_match_pair` / `play_a_match_single` write (llm_judge/common.py), in one shape for all
//! modes, plus the original Vicuna-80 review (`eval_gpt_review.py`). The judge writes these and the
//! report reads them; neither owns the other.
use super::jsonl::{self, Loaded};
use super::prompts::JudgePrompt;
use super::questions::{Question, QuestionId};
use super::verdict::{self, PairVerdict, Verdict};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// How a judgment was made; decides which report section it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// MT-bench pairwise comparison between any two models (`pairwise-all` in FastChat).
    Pairwise,
    /// MT-bench single-answer grading (a 1-10 rating of one model's answer).
    Single,
    /// MT-bench pairwise comparison against a baseline, which is `model_b` by convention (FastChat
    /// `make_match` puts the baseline second).
    PairwiseBaseline,
    /// The original Vicuna-80 review: two scores per pair (`"vicuna80"`).
    Vicuna80,
}

/// One judged game as written to the judgment JSONL file; the network half writes these and the
/// report reads them. Absent optional fields are omitted from the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// The question judged, as its file spelled the id.
    pub question_id: QuestionId,
    /// The question's category, copied in so reports need not reread the question file (absent
    /// in hand-made records; [`fill_categories`] adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Pairwise modes: the model whose answer was shown first (as "Assistant A" / "Assistant 1")
    /// in the unswapped game.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_a: Option<String>,
    /// Pairwise modes: the model shown second in the unswapped game (the baseline in
    /// `pairwise-baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_b: Option<String>,
    /// Single mode: the model graded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The judge model (`gpt-4`); a report covers one judge.
    pub judge: String,
    /// The prompt's name (`pair-v2`, `single-math-v1-multi-turn`, `vicuna80-general`).
    pub prompt_name: String,
    /// 1 for a first-turn judgment, 2 for a multi-turn judgment of the second answer (FastChat's
    /// `turn`).
    pub turn: u32,
    /// How the judgment was made.
    pub mode: Mode,
    /// The verdict of the unswapped game, in its positions (A / Assistant 1 = `model_a`).
    pub verdict: Verdict,
    /// Pairwise modes, when the game was also played with the answers swapped: that game's
    /// verdict **as parsed**, in its own positions (there A / Assistant 1 = `model_b`). The report
    /// maps it back. FastChat's `g2_winner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped_verdict: Option<Verdict>,
    /// Derived, for tools that read the file directly (jq, pandas): `model_a`'s score, averaged
    /// over both games when swapped; absent if the verdicts carry no scores or any is unparsed.
    /// The report recomputes it from the verdicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_a: Option<f64>,
    /// Derived: `model_b`'s score, as `score_a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_b: Option<f64>,
    /// Derived, single mode: the rating (FastChat's `score`, which is -1 where this is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The judge's whole reply for the unswapped game (FastChat's `judgment` / `g1_judgment`).
    pub judgment_text: String,
    /// The judge's whole reply for the swapped game (`g2_judgment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped_judgment_text: Option<String>,
    /// Unix time of the judgment, in seconds.
    pub tstamp: f64,
}

/// A pairwise outcome in model order (`model_a` against `model_b`), after undoing the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `model_a` won.
    AWins,
    /// `model_b` won.
    BWins,
    /// Neither, or the two orders disagreed.
    Tie,
}

/// A scored pairwise judgment in model order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Resolved {
    /// Who won, a disagreement between the two orders counting as a tie.
    pub outcome: Outcome,
    /// Whether the swapped game disagreed with the unswapped one.
    pub inconsistent: bool,
    /// The two models' scores when the verdicts carry scores (mean of both orders when swapped).
    pub scores: Option<(f64, f64)>,
}

impl Judgment {
    /// A single-answer judgment: parses `judgment_text` in the prompt's format and fills the
    /// derived `score`. `turn` is 1, or 2 for a multi-turn prompt.
    pub fn single(
        question: &Question,
        model: &str,
        judge: &str,
        prompt: &JudgePrompt,
        turn: u32,
        judgment_text: String,
        tstamp: f64,
    ) -> Judgment {
        let verdict = verdict::parse(prompt.output_format, &judgment_text);
        let score = match verdict {
            Verdict::Rating(r) => Some(r),
            _ => None,
        };
        Judgment {
            question_id: question.id.clone(),
            category: Some(question.category.clone()),
            model_a: None,
            model_b: None,
            model: Some(model.to_string()),
            judge: judge.to_string(),
            prompt_name: prompt.name.clone(),
            turn,
            mode: Mode::Single,
            verdict,
            swapped_verdict: None,
            score_a: None,
            score_b: None,
            score,
            judgment_text,
            swapped_judgment_text: None,
            tstamp,
        }
    }

    /// A pairwise or Vicuna-80 judgment of `model_a` (shown first) against `model_b`, with the
    /// swapped game's reply (`model_b` shown first) when it was played. Parses both replies in the
    /// prompt's format and fills the derived scores.
    #[allow(clippy::too_many_arguments)]
    pub fn pair(
        question: &Question,
        mode: Mode,
        model_a: &str,
        model_b: &str,
        judge: &str,
        prompt: &JudgePrompt,
        turn: u32,
        judgment_text: String,
        swapped_judgment_text: Option<String>,
        tstamp: f64,
    ) -> Judgment {
        let verdict = verdict::parse(prompt.output_format, &judgment_text);
        let swapped_verdict = swapped_judgment_text.as_deref().map(|t| verdict::parse(prompt.output_format, t));
        let mut judgment = Judgment {
            question_id: question.id.clone(),
            category: Some(question.category.clone()),
            model_a: Some(model_a.to_string()),
            model_b: Some(model_b.to_string()),
            model: None,
            judge: judge.to_string(),
            prompt_name: prompt.name.clone(),
            turn,
            mode,
            verdict,
            swapped_verdict,
            score_a: None,
            score_b: None,
            score: None,
            judgment_text,
            swapped_judgment_text,
            tstamp,
        };
        if let Some((a, b)) = judgment.resolve_pair().and_then(|r| r.scores) {
            judgment.score_a = Some(a);
            judgment.score_b = Some(b);
        }
        judgment
    }

    /// Checks that the fields fit the mode (the models it needs, verdict kinds, turn), so a
    /// malformed record is rejected with its line number rather than skewing a report.
    pub fn validate(&self) -> Result<()> {
        let id = &self.question_id;
        if self.turn == 0 {
            bail!("judgment of {id}: \"turn\" must be 1 or more");
        }
        if self.judge.is_empty() {
            bail!("judgment of {id}: \"judge\" is empty");
        }
        let kind_ok = |v: &Verdict| match self.mode {
            Mode::Single => matches!(v, Verdict::Rating(_) | Verdict::Unparsed { .. }),
            Mode::Vicuna80 => matches!(v, Verdict::Scores(..) | Verdict::Unparsed { .. }),
            Mode::Pairwise | Mode::PairwiseBaseline => !matches!(v, Verdict::Rating(_)),
        };
        if !kind_ok(&self.verdict) || !self.swapped_verdict.as_ref().is_none_or(kind_ok) {
            bail!("judgment of {id}: a {:?} judgment cannot have verdict {:?}", self.mode, self.verdict);
        }
        match self.mode {
            Mode::Single => {
                if self.model.as_deref().is_none_or(str::is_empty) {
                    bail!("judgment of {id}: single mode needs \"model\"");
                }
                if self.swapped_verdict.is_some() {
                    bail!("judgment of {id}: single mode has no swapped game");
                }
            }
            _ => match (self.model_a.as_deref(), self.model_b.as_deref()) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() && a != b => {}
                _ => bail!(
                    "judgment of {id}: {:?} mode needs two different models in \"model_a\" and \"model_b\"",
                    self.mode
                ),
            },
        }
        Ok(())
    }

    /// The record as one JSON line without the newline, for appending to a judgment file.
    pub fn to_line(&self) -> Result<String> {
        serde_json::to_string(self).with_context(|| format!("cannot serialise the judgment of {}", self.question_id))
    }

    /// The pairwise result in model order: `None` for single judgments and whenever a verdict is
    /// unparsed. With a swapped game, agreeing verdicts give that outcome and disagreeing ones a
    /// tie marked inconsistent; scores are the mean of both orders.
    pub fn resolve_pair(&self) -> Option<Resolved> {
        if self.mode == Mode::Single {
            return None;
        }
        let first = model_order(&self.verdict, false)?;
        let Some(swapped) = &self.swapped_verdict else {
            return Some(Resolved { outcome: first.0, inconsistent: false, scores: first.1 });
        };
        let second = model_order(swapped, true)?;
        let inconsistent = first.0 != second.0;
        let scores = match (first.1, second.1) {
            (Some((a1, b1)), Some((a2, b2))) => Some(((a1 + a2) / 2.0, (b1 + b2) / 2.0)),
            _ => None,
        };
        Some(Resolved { outcome: if inconsistent { Outcome::Tie } else { first.0 }, inconsistent, scores })
    }

    /// The reason this judgment is not scored, if a verdict is unparsed.
    pub fn unparsed_reason(&self) -> Option<&str> {
        [Some(&self.verdict), self.swapped_verdict.as_ref()].into_iter().flatten().find_map(|v| match v {
            Verdict::Unparsed { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
    }
}

/// One game's verdict as (outcome, scores) in model order; `swapped` games showed `model_b` first.
fn model_order(verdict: &Verdict, swapped: bool) -> Option<(Outcome, Option<(f64, f64)>)> {
    let (shown, scores) = match *verdict {
        Verdict::Winner(v) => (v, None),
        Verdict::Scores(x, y) => (PairVerdict::from_scores(x, y), Some(if swapped { (y, x) } else { (x, y) })),
        _ => return None,
    };
    let outcome = match if swapped { shown.flipped() } else { shown } {
        PairVerdict::A => Outcome::AWins,
        PairVerdict::B => Outcome::BWins,
        PairVerdict::Tie => Outcome::Tie,
    };
    Some((outcome, scores))
}

/// Parses and validates one judgment record.
pub fn parse_judgment(value: Value) -> Result<Judgment> {
    let judgment: Judgment = serde_json::from_value(value).context("not a judgment record")?;
    judgment.validate()?;
    Ok(judgment)
}

/// Reads a judgment file. Lenient: bad lines are skipped and returned with their numbers (a judge
/// run killed mid-write leaves a torn last line).
pub fn read_judgments(path: &Path) -> Result<Loaded<Judgment>> {
    jsonl::read_lenient(path, parse_judgment)
}

/// Sets each judgment's missing `category` from the questions (by id).
pub fn fill_categories(judgments: &mut [Judgment], questions: &[Question]) {
    let categories: BTreeMap<&QuestionId, &str> = questions.iter().map(|q| (&q.id, q.category.as_str())).collect();
    for judgment in judgments.iter_mut().filter(|j| j.category.is_none()) {
        judgment.category = categories.get(&judgment.question_id).map(|c| c.to_string());
    }
}
