//! The numbers computed from judgment records (`judgment.rs`).
//!
//! [`build_report`] computes:
//! - Vicuna-80 total scores per model pair, as Table 2 of the Vicuna blog (the sum over questions
//!   of each model's score), the relative score (the model's total as a percentage of its
//!   opponent's), and win/tie/loss read from the scores, overall and per category;
//! - pairwise win/tie/loss per model pair and per model with FastChat's adjusted win rate
//!   `(wins + 0.5 ties) / games` (`show_result.py`), overall and per category;
//! - MT-bench single-answer means for turn 1, turn 2 and overall per model (`show_result.py`:
//!   the overall mean is over all judged turns), and per category.
//!
//! Position-swap consistency follows `load_pairwise_model_judgments` / `show_result.py`: when a
//! game was also judged with the answers swapped and the two verdicts disagree, it counts as a tie
//! and as inconsistent. A judgment with any unparsed verdict is left out of every number and
//! counted (FastChat drops `error` winners and `-1` scores the same way).
//!
//! The [`Report`] is serialised as is for `--json`; its Markdown form is in `markdown.rs` and the
//! per-category SVG bar chart in `chart.rs`.
use super::chart::{self, BarChart, Series};
use super::judgment::{Judgment, Mode, Outcome};
use super::questions::QuestionId;
use super::verdict::Verdict;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// `vicuna eval report`: reads a judgment file (warning about skipped lines), fills missing
/// categories from the question file when given, builds the report and, with `chart`, writes the
/// per-category chart there. Returns the report and a warning per skipped line.
pub fn report_file(
    judgments: &std::path::Path,
    questions: Option<&std::path::Path>,
    options: &ReportOptions,
    chart: Option<&std::path::Path>,
) -> Result<(Report, Vec<String>)> {
    if let Some(chart) = chart {
        let inputs: Vec<&std::path::Path> = std::iter::once(judgments).chain(questions).collect();
        crate::util::atomic::ensure_distinct(&inputs, &[("--chart", chart)])?;
    }
    let loaded = super::judgment::read_judgments(judgments)?;
    let warnings = loaded.skipped_messages();
    let mut records = loaded.records();
    if let Some(path) = questions {
        super::judgment::fill_categories(&mut records, &super::questions::read_questions(path)?);
    }
    let report = build_report(&records, options)?;
    if let Some(path) = chart {
        let Some(svg) = report.chart_svg() else { bail!("no per-category scores to chart") };
        crate::util::atomic::write_bytes(path, svg.as_bytes())?;
    }
    Ok((report, warnings))
}

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Only this judge's judgments; required when the file holds several judges.
    pub judge: Option<String>,
    /// The model others are measured against: the opponent in every pair that includes it, left
    /// out of the per-model pairwise table (FastChat `--baseline-model`). Inferred from
    /// `pairwise-baseline` records when they all share `model_b`.
    pub baseline: Option<String>,
    /// Only these models (and the baseline).
    pub models: Option<Vec<String>>,
}

/// Wins, ties and losses from one side, with FastChat's rates (`None` when there are no games).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WinTieLoss {
    /// Games won.
    pub wins: usize,
    /// Games tied, including swap-inconsistent ones.
    pub ties: usize,
    /// Games lost.
    pub losses: usize,
    /// wins / games.
    pub win_rate: Option<f64>,
    /// losses / games.
    pub loss_rate: Option<f64>,
    /// (wins + 0.5 ties) / games: each tie counts half a win.
    pub adjusted_win_rate: Option<f64>,
}

impl WinTieLoss {
    fn add(&mut self, outcome: Outcome, side_a: bool) {
        match (outcome, side_a) {
            (Outcome::Tie, _) => self.ties += 1,
            (Outcome::AWins, true) | (Outcome::BWins, false) => self.wins += 1,
            _ => self.losses += 1,
        }
        let games = (self.wins + self.ties + self.losses) as f64;
        self.win_rate = Some(self.wins as f64 / games);
        self.loss_rate = Some(self.losses as f64 / games);
        self.adjusted_win_rate = Some((self.wins as f64 + 0.5 * self.ties as f64) / games);
    }
}

/// One model pair over a set of Vicuna-80 judgments: the Table 2 row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairTotal {
    /// The model measured (the non-baseline side, else the alphabetically first).
    pub model: String,
    /// The model it is measured against.
    pub opponent: String,
    /// Scored judgments summed.
    pub questions: usize,
    /// Sum of the model's scores.
    pub model_total: f64,
    /// Sum of the opponent's scores over the same judgments.
    pub opponent_total: f64,
    /// model_total as a percentage of opponent_total (`None` if that is 0).
    pub relative_score: Option<f64>,
    /// Outcomes from the model's side, read from the scores (ties within 0.1).
    pub record: WinTieLoss,
    /// Games whose swapped verdict disagreed (counted as ties).
    pub inconsistent: usize,
    /// Judgments left out because a verdict was unparsed.
    pub unparsed: usize,
}

/// A [`PairTotal`] restricted to one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryPairTotal {
    /// The category.
    pub category: String,
    /// The pair's totals in that category.
    #[serde(flatten)]
    pub pair: PairTotal,
}

/// A model's mean score in one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryScore {
    /// The category.
    pub category: String,
    /// The model.
    pub model: String,
    /// Mean of its scores there.
    pub mean: f64,
    /// How many scores.
    pub count: usize,
}

/// The Vicuna-80 section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Vicuna80Summary {
    /// One Table 2 row per model pair.
    pub pairs: Vec<PairTotal>,
    /// The same per category.
    pub by_category: Vec<CategoryPairTotal>,
    /// Each model's mean score per category (over all its pairs), for the chart.
    pub category_scores: Vec<CategoryScore>,
}

/// Win/tie/loss of one model against one opponent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairRecord {
    /// The model (the non-baseline side, else the alphabetically first).
    pub model: String,
    /// Its opponent.
    pub opponent: String,
    /// Outcomes from the model's side.
    pub record: WinTieLoss,
    /// Games whose swapped verdict disagreed (counted as ties).
    pub inconsistent: usize,
    /// Judgments left out because a verdict was unparsed.
    pub unparsed: usize,
}

/// Win/tie/loss of one model against all its opponents (a row of FastChat's `show_result.py`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    /// The model.
    pub model: String,
    /// Its outcomes over all games.
    pub record: WinTieLoss,
}

/// A [`ModelRecord`] restricted to one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryRecord {
    /// The category.
    pub category: String,
    /// The model.
    pub model: String,
    /// Its outcomes in that category.
    pub record: WinTieLoss,
}

/// The MT-bench pairwise section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairwiseSummary {
    /// One row per model pair.
    pub pairs: Vec<PairRecord>,
    /// One row per model except the baseline, best adjusted win rate first.
    pub models: Vec<ModelRecord>,
    /// Per-model rows per category (baseline left out).
    pub by_category: Vec<CategoryRecord>,
}

/// One model's MT-bench single-answer means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MtBenchRow {
    /// The model.
    pub model: String,
    /// Mean first-turn rating.
    pub turn1: Option<f64>,
    /// Mean second-turn rating.
    pub turn2: Option<f64>,
    /// Mean over all rated turns (FastChat's "Average").
    pub overall: Option<f64>,
    /// Ratings averaged.
    pub judged: usize,
    /// Judgments left out because the rating was unparsed.
    pub unparsed: usize,
}

/// The MT-bench single-answer section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SingleSummary {
    /// One row per model, best overall first.
    pub models: Vec<MtBenchRow>,
    /// Each model's mean rating per category (both turns).
    pub category_scores: Vec<CategoryScore>,
}

/// How the judgments were used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Judgments given to the report.
    pub read: usize,
    /// Left out: another judge.
    pub other_judge: usize,
    /// Left out: a model not asked for.
    pub other_model: usize,
    /// Left out: an earlier record of the same game (the last one is kept).
    pub duplicates: usize,
    /// Judgments used (after the three above).
    pub used: usize,
    /// Used judgments with an unparsed verdict (not scored).
    pub unparsed: usize,
    /// Pairwise games whose two orders disagreed (counted as ties).
    pub inconsistent: usize,
}

/// A judgment that could not be scored, listed so it can be inspected or re-judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnparsedItem {
    /// The question.
    pub question_id: QuestionId,
    /// The mode.
    pub mode: Mode,
    /// The model, or `a vs b`.
    pub models: String,
    /// The turn.
    pub turn: u32,
    /// Why the verdict could not be read.
    pub reason: String,
}

/// Everything `vicuna eval report` shows; serialised as is for `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The judge the judgments come from.
    pub judge: Option<String>,
    /// The baseline model, if any.
    pub baseline: Option<String>,
    /// How the judgments were used.
    pub counts: Counts,
    /// Vicuna-80 totals, when there are Vicuna-80 judgments.
    pub vicuna80: Option<Vicuna80Summary>,
    /// Pairwise results, when there are pairwise judgments.
    pub pairwise: Option<PairwiseSummary>,
    /// Single-answer results, when there are single judgments.
    pub single: Option<SingleSummary>,
    /// The judgments not scored.
    pub unparsed: Vec<UnparsedItem>,
}

/// The category used when a judgment has none.
pub const UNCATEGORIZED: &str = "uncategorized";

/// Computes the report. Fails when judgments from several judges are mixed and no judge is chosen
/// (their scores are not comparable and would count each game twice).
pub fn build_report(judgments: &[Judgment], options: &ReportOptions) -> Result<Report> {
    let mut counts = Counts { read: judgments.len(), ..Counts::default() };
    let judges: BTreeSet<&str> = judgments.iter().map(|j| j.judge.as_str()).collect();
    let judge = match &options.judge {
        Some(judge) => Some(judge.clone()),
        None if judges.len() > 1 => bail!(
            "judgments from {} judges ({}); choose one (--judge NAME)",
            judges.len(),
            judges.into_iter().collect::<Vec<_>>().join(", ")
        ),
        None => judges.into_iter().next().map(str::to_string),
    };
    let baseline = options.baseline.clone().or_else(|| infer_baseline(judgments));
    let wanted = |model: &Option<String>| match (&options.models, model) {
        (None, _) => true,
        (Some(list), Some(m)) => list.contains(m) || baseline.as_ref() == Some(m),
        (Some(_), None) => true,
    };
    let mut latest: BTreeMap<GameKey, &Judgment> = BTreeMap::new();
    for j in judgments {
        if judge.as_deref().is_some_and(|name| name != j.judge) {
            counts.other_judge += 1;
        } else if !(wanted(&j.model) && wanted(&j.model_a) && wanted(&j.model_b)) {
            counts.other_model += 1;
        } else if latest.insert(GameKey::of(j), j).is_some() {
            counts.duplicates += 1;
        }
    }
    let mut used: Vec<&Judgment> = latest.into_values().collect();
    used.sort_by(|a, b| (&a.question_id, a.turn).cmp(&(&b.question_id, b.turn)));
    counts.used = used.len();
    let mut unparsed = Vec::new();
    for j in &used {
        if let Some(reason) = j.unparsed_reason() {
            counts.unparsed += 1;
            let models = match (&j.model, &j.model_a, &j.model_b) {
                (Some(m), _, _) => m.clone(),
                (None, Some(a), Some(b)) => format!("{a} vs {b}"),
                _ => String::new(),
            };
            unparsed.push(UnparsedItem {
                question_id: j.question_id.clone(),
                mode: j.mode,
                models,
                turn: j.turn,
                reason: reason.to_string(),
            });
        } else if j.resolve_pair().is_some_and(|r| r.inconsistent) {
            counts.inconsistent += 1;
        }
    }
    let of_mode =
        |modes: &[Mode]| -> Vec<&Judgment> { used.iter().copied().filter(|j| modes.contains(&j.mode)).collect() };
    let vicuna = of_mode(&[Mode::Vicuna80]);
    let pairwise = of_mode(&[Mode::Pairwise, Mode::PairwiseBaseline]);
    let single = of_mode(&[Mode::Single]);
    Ok(Report {
        judge,
        vicuna80: (!vicuna.is_empty()).then(|| vicuna80_summary(&vicuna, baseline.as_deref())),
        pairwise: (!pairwise.is_empty()).then(|| pairwise_summary(&pairwise, baseline.as_deref())),
        single: (!single.is_empty()).then(|| single_summary(&single)),
        baseline,
        counts,
        unparsed,
    })
}

/// The shared `model_b` of all `pairwise-baseline` records, if there are any and they agree.
fn infer_baseline(judgments: &[Judgment]) -> Option<String> {
    let names: BTreeSet<&str> =
        judgments.iter().filter(|j| j.mode == Mode::PairwiseBaseline).filter_map(|j| j.model_b.as_deref()).collect();
    (names.len() == 1).then(|| names.into_iter().next().map(str::to_string)).flatten()
}

/// What makes two records the same game: mode family, question, turn, and the model or the
/// unordered pair (a later record of the same game replaces the earlier one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GameKey {
    family: u8,
    question_id: QuestionId,
    turn: u32,
    models: (String, String),
}

impl GameKey {
    fn of(j: &Judgment) -> GameKey {
        let family = match j.mode {
            Mode::Single => 0,
            Mode::Pairwise | Mode::PairwiseBaseline => 1,
            Mode::Vicuna80 => 2,
        };
        let a = j.model.clone().or_else(|| j.model_a.clone()).unwrap_or_default();
        let b = j.model_b.clone().unwrap_or_default();
        let models = if a <= b { (a, b) } else { (b, a) };
        GameKey { family, question_id: j.question_id.clone(), turn: j.turn, models }
    }
}

/// The pair in report orientation: (model, opponent, whether the model is `model_a`).
fn orient<'a>(j: &'a Judgment, baseline: Option<&str>) -> (&'a str, &'a str, bool) {
    let a = j.model_a.as_deref().unwrap_or("");
    let b = j.model_b.as_deref().unwrap_or("");
    let a_is_model = match baseline {
        Some(base) if a == base => false,
        Some(base) if b == base => true,
        _ => a <= b,
    };
    if a_is_model {
        (a, b, true)
    } else {
        (b, a, false)
    }
}

fn category(j: &Judgment) -> String {
    j.category.clone().unwrap_or_else(|| UNCATEGORIZED.to_string())
}

fn add_to_total(total: &mut PairTotal, j: &Judgment, model_is_a: bool) {
    let Some(resolved) = j.resolve_pair() else {
        total.unparsed += usize::from(j.unparsed_reason().is_some());
        return;
    };
    if let Some((a, b)) = resolved.scores {
        let (mine, theirs) = if model_is_a { (a, b) } else { (b, a) };
        total.model_total += mine;
        total.opponent_total += theirs;
        total.questions += 1;
        total.relative_score = (total.opponent_total != 0.0).then(|| 100.0 * total.model_total / total.opponent_total);
    }
    total.record.add(resolved.outcome, model_is_a);
    total.inconsistent += usize::from(resolved.inconsistent);
}

fn vicuna80_summary(judgments: &[&Judgment], baseline: Option<&str>) -> Vicuna80Summary {
    let mut pairs: BTreeMap<(String, String), PairTotal> = BTreeMap::new();
    let mut by_category: BTreeMap<(String, String, String), PairTotal> = BTreeMap::new();
    let mut scores: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
    for j in judgments {
        let (model, opponent, model_is_a) = orient(j, baseline);
        let fresh = || PairTotal { model: model.to_string(), opponent: opponent.to_string(), ..PairTotal::default() };
        let key = (model.to_string(), opponent.to_string());
        add_to_total(pairs.entry(key.clone()).or_insert_with(fresh), j, model_is_a);
        let cat = category(j);
        add_to_total(by_category.entry((cat.clone(), key.0, key.1)).or_insert_with(fresh), j, model_is_a);
        if let Some((a, b)) = j.resolve_pair().and_then(|r| r.scores) {
            for (name, score) in [(j.model_a.as_deref(), a), (j.model_b.as_deref(), b)] {
                let entry = scores.entry((cat.clone(), name.unwrap_or("").to_string())).or_insert((0.0, 0));
                entry.0 += score;
                entry.1 += 1;
            }
        }
    }
    Vicuna80Summary {
        pairs: pairs.into_values().collect(),
        by_category: by_category
            .into_iter()
            .map(|((category, _, _), pair)| CategoryPairTotal { category, pair })
            .collect(),
        category_scores: means(scores),
    }
}

fn means(sums: BTreeMap<(String, String), (f64, usize)>) -> Vec<CategoryScore> {
    sums.into_iter()
        .map(|((category, model), (sum, count))| CategoryScore { category, model, mean: sum / count as f64, count })
        .collect()
}

fn pairwise_summary(judgments: &[&Judgment], baseline: Option<&str>) -> PairwiseSummary {
    let mut pairs: BTreeMap<(String, String), PairRecord> = BTreeMap::new();
    let mut models: BTreeMap<String, WinTieLoss> = BTreeMap::new();
    let mut by_category: BTreeMap<(String, String), WinTieLoss> = BTreeMap::new();
    for j in judgments {
        let (model, opponent, model_is_a) = orient(j, baseline);
        let row = pairs.entry((model.to_string(), opponent.to_string())).or_insert_with(|| PairRecord {
            model: model.to_string(),
            opponent: opponent.to_string(),
            ..PairRecord::default()
        });
        let Some(resolved) = j.resolve_pair() else {
            row.unparsed += 1;
            continue;
        };
        row.record.add(resolved.outcome, model_is_a);
        row.inconsistent += usize::from(resolved.inconsistent);
        for (name, side_a) in [(j.model_a.as_deref(), true), (j.model_b.as_deref(), false)] {
            let name = name.unwrap_or("").to_string();
            if baseline == Some(name.as_str()) {
                continue;
            }
            models.entry(name.clone()).or_default().add(resolved.outcome, side_a);
            by_category.entry((category(j), name)).or_default().add(resolved.outcome, side_a);
        }
    }
    let mut model_rows: Vec<ModelRecord> =
        models.into_iter().map(|(model, record)| ModelRecord { model, record }).collect();
    model_rows.sort_by(|x, y| {
        let key = |r: &ModelRecord| r.record.adjusted_win_rate.unwrap_or(f64::NEG_INFINITY);
        key(y).total_cmp(&key(x)).then_with(|| x.model.cmp(&y.model))
    });
    PairwiseSummary {
        pairs: pairs.into_values().collect(),
        models: model_rows,
        by_category: by_category
            .into_iter()
            .map(|((category, model), record)| CategoryRecord { category, model, record })
            .collect(),
    }
}

fn single_summary(judgments: &[&Judgment]) -> SingleSummary {
    #[derive(Default)]
    struct Sums {
        turn1: (f64, usize),
        turn2: (f64, usize),
        all: (f64, usize),
        unparsed: usize,
    }
    let mut per_model: BTreeMap<String, Sums> = BTreeMap::new();
    let mut per_category: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
    for j in judgments {
        let model = j.model.clone().unwrap_or_default();
        let sums = per_model.entry(model.clone()).or_default();
        let Verdict::Rating(score) = j.verdict else {
            sums.unparsed += 1;
            continue;
        };
        let bucket = if j.turn == 1 { &mut sums.turn1 } else { &mut sums.turn2 };
        for (sum, n) in [bucket, &mut sums.all] {
            *sum += score;
            *n += 1;
        }
        let entry = per_category.entry((category(j), model)).or_insert((0.0, 0));
        entry.0 += score;
        entry.1 += 1;
    }
    let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
    let mut models: Vec<MtBenchRow> = per_model
        .into_iter()
        .map(|(model, s)| MtBenchRow {
            model,
            turn1: mean(s.turn1),
            turn2: mean(s.turn2),
            overall: mean(s.all),
            judged: s.all.1,
            unparsed: s.unparsed,
        })
        .collect();
    models.sort_by(|x, y| {
        let key = |r: &MtBenchRow| r.overall.unwrap_or(f64::NEG_INFINITY);
        key(y).total_cmp(&key(x)).then_with(|| x.model.cmp(&y.model))
    });
    SingleSummary { models, category_scores: means(per_category) }
}

impl Report {
    /// The per-category chart: MT-bench mean ratings if there are single judgments, else
    /// Vicuna-80 mean scores, else pairwise adjusted win rates in percent; `None` when empty.
    pub fn category_chart(&self) -> Option<BarChart> {
        let (title, y_label, y_max, cells): (&str, &str, f64, Vec<(String, String, f64)>) =
            if let Some(single) = &self.single {
                ("MT-bench score by category", "mean rating (1-10)", 10.0, score_cells(&single.category_scores))
            } else if let Some(vicuna) = &self.vicuna80 {
                ("Vicuna-80 score by category", "mean score (0-10)", 10.0, score_cells(&vicuna.category_scores))
            } else if let Some(pairwise) = &self.pairwise {
                let cells = pairwise
                    .by_category
                    .iter()
                    .filter_map(|r| Some((r.category.clone(), r.model.clone(), 100.0 * r.record.adjusted_win_rate?)))
                    .collect();
                ("Adjusted win rate by category", "adjusted win rate (%)", 100.0, cells)
            } else {
                return None;
            };
        if cells.is_empty() {
            return None;
        }
        let categories: Vec<String> = cells.iter().map(|c| c.0.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let models: Vec<String> = cells.iter().map(|c| c.1.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let series = models
            .into_iter()
            .map(|model| Series {
                values: categories
                    .iter()
                    .map(|cat| cells.iter().find(|c| &c.0 == cat && c.1 == model).map(|c| c.2))
                    .collect(),
                name: model,
            })
            .collect();
        Some(BarChart { title: title.into(), y_label: y_label.into(), y_max, categories, series })
    }

    /// The per-category chart as an SVG document (see [`Report::category_chart`]).
    pub fn chart_svg(&self) -> Option<String> {
        self.category_chart().map(|c| chart::render_svg(&c))
    }
}

/// (category, model, mean) cells of a category table, for the chart and the Markdown pivot.
pub(crate) fn score_cells(scores: &[CategoryScore]) -> Vec<(String, String, f64)> {
    scores.iter().map(|s| (s.category.clone(), s.model.clone(), s.mean)).collect()
}

#[cfg(test)]
mod tests;
