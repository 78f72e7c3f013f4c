//! Report tests on small hand-made judgment sets whose numbers are worked out by hand.
#![allow(clippy::type_complexity)] // the tests compare rows as tuples
use super::*;
use crate::eval::jsonl;
use crate::eval::judgment::{fill_categories, parse_judgment, Resolved};
use crate::eval::prompts::builtin_prompts;
use crate::eval::questions::Question;
use crate::eval::verdict::PairVerdict::{Tie, A, B};
use serde_json::Value;
use std::path::Path;

fn unparsed() -> Verdict {
    Verdict::Unparsed { text: "no idea".into(), reason: "no pair of scores".into() }
}

fn base(mode: Mode, qid: i64, category: &str, turn: u32, verdict: Verdict) -> Judgment {
    Judgment {
        question_id: QuestionId::Int(qid),
        category: Some(category.into()),
        model_a: None,
        model_b: None,
        model: None,
        judge: "gpt-4".into(),
        prompt_name: "p".into(),
        turn,
        mode,
        verdict,
        swapped_verdict: None,
        score_a: None,
        score_b: None,
        score: None,
        judgment_text: String::new(),
        swapped_judgment_text: None,
        tstamp: 0.0,
    }
}

fn pair(
    mode: Mode,
    qid: i64,
    category: &str,
    a: &str,
    b: &str,
    verdict: Verdict,
    swapped: Option<Verdict>,
) -> Judgment {
    Judgment {
        model_a: Some(a.into()),
        model_b: Some(b.into()),
        swapped_verdict: swapped,
        ..base(mode, qid, category, 1, verdict)
    }
}

fn single(qid: i64, category: &str, model: &str, turn: u32, verdict: Verdict) -> Judgment {
    Judgment { model: Some(model.into()), ..base(Mode::Single, qid, category, turn, verdict) }
}

fn wtl(wins: usize, ties: usize, losses: usize) -> (usize, usize, usize) {
    (wins, ties, losses)
}

fn counts(r: &WinTieLoss) -> (usize, usize, usize) {
    (r.wins, r.ties, r.losses)
}

/// Vicuna-80, baseline "chatgpt" shown as Assistant 1 (as in FastChat's review tables):
/// q1 generic (9, 8) chatgpt wins; q2 generic (7, 10) vicuna wins; q3 math (6, 6) tie;
/// q4 math unparsed; q5 coding (6, 5) and swapped (10, 6) = vicuna 10, chatgpt 6, so the orders
/// disagree (tie, inconsistent) and the scores are chatgpt (6+6)/2 = 6, vicuna (5+10)/2 = 7.5.
/// Totals: vicuna 8+10+6+7.5 = 31.5, chatgpt 9+7+6+6 = 28, relative 112.5%.
/// Second pair: alpaca vs chatgpt q1 (8, 4): 4 / 8 = 50%.
fn vicuna80_set() -> Vec<Judgment> {
    let v = Mode::Vicuna80;
    vec![
        pair(v, 1, "generic", "chatgpt", "vicuna", Verdict::Scores(9.0, 8.0), None),
        pair(v, 2, "generic", "chatgpt", "vicuna", Verdict::Scores(7.0, 10.0), None),
        pair(v, 3, "math", "chatgpt", "vicuna", Verdict::Scores(6.0, 6.0), None),
        pair(v, 4, "math", "chatgpt", "vicuna", unparsed(), None),
        pair(v, 5, "coding", "chatgpt", "vicuna", Verdict::Scores(6.0, 5.0), Some(Verdict::Scores(10.0, 6.0))),
        pair(v, 1, "generic", "chatgpt", "alpaca", Verdict::Scores(8.0, 4.0), None),
    ]
}

#[test]
fn vicuna80_totals_relative_scores_and_swap_consistency() {
    let options = ReportOptions { baseline: Some("chatgpt".into()), ..ReportOptions::default() };
    let report = build_report(&vicuna80_set(), &options).unwrap();
    assert_eq!(report.counts, Counts { read: 6, used: 6, unparsed: 1, inconsistent: 1, ..Counts::default() });
    let v = report.vicuna80.as_ref().unwrap();
    let rows: Vec<(&str, &str, usize, f64, f64, Option<f64>)> = v
        .pairs
        .iter()
        .map(|p| {
            (p.model.as_str(), p.opponent.as_str(), p.questions, p.model_total, p.opponent_total, p.relative_score)
        })
        .collect();
    assert_eq!(
        rows,
        vec![("alpaca", "chatgpt", 1, 4.0, 8.0, Some(50.0)), ("vicuna", "chatgpt", 4, 31.5, 28.0, Some(112.5))]
    );
    let vicuna = &v.pairs[1];
    assert_eq!(counts(&vicuna.record), wtl(1, 2, 1));
    assert_eq!(vicuna.record.adjusted_win_rate, Some(0.5));
    assert_eq!(vicuna.record.win_rate, Some(0.25));
    assert_eq!((vicuna.inconsistent, vicuna.unparsed), (1, 1));
    let by_category: Vec<(&str, &str, f64, f64, Option<f64>, usize)> = v
        .by_category
        .iter()
        .map(|c| {
            (
                c.category.as_str(),
                c.pair.model.as_str(),
                c.pair.model_total,
                c.pair.opponent_total,
                c.pair.relative_score,
                c.pair.unparsed,
            )
        })
        .collect();
    assert_eq!(
        by_category,
        vec![
            ("coding", "vicuna", 7.5, 6.0, Some(125.0), 0),
            ("generic", "alpaca", 4.0, 8.0, Some(50.0), 0),
            ("generic", "vicuna", 18.0, 16.0, Some(112.5), 0),
            ("math", "vicuna", 6.0, 6.0, Some(100.0), 1),
        ]
    );
    let means: Vec<(&str, &str, f64, usize)> =
        v.category_scores.iter().map(|s| (s.category.as_str(), s.model.as_str(), s.mean, s.count)).collect();
    assert_eq!(
        means,
        vec![
            ("coding", "chatgpt", 6.0, 1),
            ("coding", "vicuna", 7.5, 1),
            ("generic", "alpaca", 4.0, 1),
            ("generic", "chatgpt", 8.0, 3),
            ("generic", "vicuna", 9.0, 2),
            ("math", "chatgpt", 6.0, 1),
            ("math", "vicuna", 6.0, 1),
        ]
    );
    assert_eq!(report.unparsed.len(), 1);
    assert_eq!(report.unparsed[0].models, "chatgpt vs vicuna");
    assert!(report.pairwise.is_none() && report.single.is_none());
}

#[test]
fn vicuna80_without_a_baseline_orients_pairs_alphabetically() {
    let report = build_report(&vicuna80_set(), &ReportOptions::default()).unwrap();
    let v = report.vicuna80.unwrap();
    let rows: Vec<(&str, &str, f64, f64)> =
        v.pairs.iter().map(|p| (p.model.as_str(), p.opponent.as_str(), p.model_total, p.opponent_total)).collect();
    assert_eq!(rows, vec![("alpaca", "chatgpt", 4.0, 8.0), ("chatgpt", "vicuna", 28.0, 31.5)]);
    assert_eq!(counts(&v.pairs[1].record), wtl(1, 2, 1));
}

/// Pairwise with position swap (FastChat `pairwise-all`):
/// m1-m2: q1 A/B (m1 both times) win; q2 A/A inconsistent tie; q3 C/C tie; q4 shown as m2-m1,
/// A/B = m2 both times, a loss for m1. An earlier q1 record (m2 won) is replaced by the later one.
/// m1-m3: q1 A/B m1 wins; q2 unparsed. m2-m3: q1 B/A m3 wins.
fn pairwise_set() -> Vec<Judgment> {
    let p = Mode::Pairwise;
    let w = Verdict::Winner;
    vec![
        pair(p, 1, "writing", "m1", "m2", w(B), Some(w(A))),
        pair(p, 1, "writing", "m1", "m2", w(A), Some(w(B))),
        pair(p, 2, "writing", "m1", "m2", w(A), Some(w(A))),
        pair(p, 3, "math", "m1", "m2", w(Tie), Some(w(Tie))),
        pair(p, 4, "math", "m2", "m1", w(A), Some(w(B))),
        pair(p, 1, "writing", "m1", "m3", w(A), Some(w(B))),
        pair(p, 2, "writing", "m1", "m3", unparsed(), Some(w(B))),
        pair(p, 1, "writing", "m2", "m3", w(B), Some(w(A))),
    ]
}

#[test]
fn pairwise_win_tie_loss_and_adjusted_win_rate() {
    let report = build_report(&pairwise_set(), &ReportOptions::default()).unwrap();
    assert_eq!(
        report.counts,
        Counts { read: 8, used: 7, duplicates: 1, unparsed: 1, inconsistent: 1, ..Counts::default() }
    );
    let p = report.pairwise.as_ref().unwrap();
    let pairs: Vec<(&str, &str, (usize, usize, usize), Option<f64>, usize, usize)> = p
        .pairs
        .iter()
        .map(|r| {
            (
                r.model.as_str(),
                r.opponent.as_str(),
                counts(&r.record),
                r.record.adjusted_win_rate,
                r.inconsistent,
                r.unparsed,
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("m1", "m2", wtl(1, 2, 1), Some(0.5), 1, 0),
            ("m1", "m3", wtl(1, 0, 0), Some(1.0), 0, 1),
            ("m2", "m3", wtl(0, 0, 1), Some(0.0), 0, 0),
        ]
    );
    // FastChat show_result.py rows: m1 2/2/1 -> (2 + 1) / 5; m3 1/0/1 -> 0.5; m2 1/2/2 -> 0.4.
    let models: Vec<(&str, (usize, usize, usize), Option<f64>, Option<f64>)> = p
        .models
        .iter()
        .map(|r| (r.model.as_str(), counts(&r.record), r.record.adjusted_win_rate, r.record.win_rate))
        .collect();
    assert_eq!(
        models,
        vec![
            ("m1", wtl(2, 2, 1), Some(0.6), Some(0.4)),
            ("m3", wtl(1, 0, 1), Some(0.5), Some(0.5)),
            ("m2", wtl(1, 2, 2), Some(0.4), Some(0.2))
        ]
    );
    let math: Vec<(&str, (usize, usize, usize))> =
        p.by_category.iter().filter(|r| r.category == "math").map(|r| (r.model.as_str(), counts(&r.record))).collect();
    assert_eq!(math, vec![("m1", wtl(0, 1, 1)), ("m2", wtl(1, 1, 0))]);
}

#[test]
fn pairwise_baseline_is_inferred_and_left_out_of_the_model_table() {
    let pb = Mode::PairwiseBaseline;
    let w = Verdict::Winner;
    let set = vec![
        pair(pb, 1, "writing", "m1", "gpt-3.5-turbo", w(A), Some(w(B))),
        pair(pb, 2, "writing", "m1", "gpt-3.5-turbo", w(B), Some(w(A))),
        pair(pb, 1, "writing", "m2", "gpt-3.5-turbo", w(Tie), None),
        // Two-score pairwise verdicts read as winners within FastChat's 0.1 tie delta.
        pair(pb, 2, "writing", "m2", "gpt-3.5-turbo", Verdict::Scores(8.0, 6.0), Some(Verdict::Scores(6.0, 8.05))),
    ];
    let report = build_report(&set, &ReportOptions::default()).unwrap();
    assert_eq!(report.baseline.as_deref(), Some("gpt-3.5-turbo"));
    let p = report.pairwise.unwrap();
    let models: Vec<(&str, (usize, usize, usize), Option<f64>)> =
        p.models.iter().map(|r| (r.model.as_str(), counts(&r.record), r.record.adjusted_win_rate)).collect();
    assert_eq!(models, vec![("m2", wtl(1, 1, 0), Some(0.75)), ("m1", wtl(1, 0, 1), Some(0.5))]);
    assert!(p.pairs.iter().all(|r| r.opponent == "gpt-3.5-turbo"));
    // Only m2 with the baseline: m1 is filtered out.
    let only = ReportOptions { models: Some(vec!["m2".into()]), ..ReportOptions::default() };
    let report = build_report(&set, &only).unwrap();
    assert_eq!((report.counts.used, report.counts.other_model), (2, 2));
}

/// MT-bench single: m1 q81 writing 8 / 6, q111 math 4 / unparsed; m2 q81 9 / 9, q111 3 / 5.
/// m1: turn 1 (8+4)/2 = 6, turn 2 6, overall (8+6+4)/3 = 6; m2: 6, 7, 26/4 = 6.5.
fn single_set() -> Vec<Judgment> {
    let r = Verdict::Rating;
    vec![
        single(81, "writing", "m1", 1, r(8.0)),
        single(81, "writing", "m1", 2, r(6.0)),
        single(111, "math", "m1", 1, r(4.0)),
        single(111, "math", "m1", 2, unparsed()),
        single(81, "writing", "m2", 1, r(9.0)),
        single(81, "writing", "m2", 2, r(9.0)),
        single(111, "math", "m2", 1, r(3.0)),
        single(111, "math", "m2", 2, r(5.0)),
    ]
}

#[test]
fn mt_bench_single_turn_means() {
    let report = build_report(&single_set(), &ReportOptions::default()).unwrap();
    let s = report.single.as_ref().unwrap();
    let rows: Vec<(&str, Option<f64>, Option<f64>, Option<f64>, usize, usize)> =
        s.models.iter().map(|r| (r.model.as_str(), r.turn1, r.turn2, r.overall, r.judged, r.unparsed)).collect();
    assert_eq!(
        rows,
        vec![("m2", Some(6.0), Some(7.0), Some(6.5), 4, 0), ("m1", Some(6.0), Some(6.0), Some(6.0), 3, 1)]
    );
    let cats: Vec<(&str, &str, f64)> =
        s.category_scores.iter().map(|c| (c.category.as_str(), c.model.as_str(), c.mean)).collect();
    assert_eq!(cats, vec![("math", "m1", 4.0), ("math", "m2", 4.0), ("writing", "m1", 7.0), ("writing", "m2", 9.0)]);
    assert_eq!(report.counts.unparsed, 1);
}

#[test]
fn several_judges_need_a_choice() {
    let mut set = single_set();
    set[0].judge = "claude-v1".into();
    let err = build_report(&set, &ReportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("2 judges (claude-v1, gpt-4)") && err.contains("--judge"), "{err}");
    let report =
        build_report(&set, &ReportOptions { judge: Some("gpt-4".into()), ..ReportOptions::default() }).unwrap();
    assert_eq!((report.counts.used, report.counts.other_judge), (7, 1));
    assert_eq!(report.single.unwrap().models[1].turn1, Some(4.0));
}

#[test]
fn markdown_and_chart_show_the_numbers() {
    let mut set = vicuna80_set();
    set.extend(single_set());
    let options = ReportOptions { baseline: Some("chatgpt".into()), ..ReportOptions::default() };
    let report = build_report(&set, &options).unwrap();
    let md = report.to_markdown();
    for line in [
        "Judge: gpt-4 · baseline: chatgpt",
        "| vicuna | chatgpt | 4 | 31.5 | 28.0 | 112.5% | 1 | 2 | 1 | 0.500 | 1 | 1 |",
        "| coding | vicuna | chatgpt | 1 | 7.5 | 6.0 | 125.0% | 0 | 1 | 0 | 0.500 | 1 | 0 |",
        "| generic | 4.00 | 8.00 | 9.00 |",
        "| m2 | 6.00 | 7.00 | 6.50 | 4 | 0 |",
        "| math | – | 6.00 | 6.00 |",
        "| math | 4.00 | 4.00 |",
        "| 4 | vicuna80 | chatgpt vs vicuna | 1 | no pair of scores |",
        "| 111 | single | m1 | 2 | no pair of scores |",
    ] {
        assert!(md.lines().any(|l| l == line), "missing {line:?} in\n{md}");
    }
    // The chart shows MT-bench categories when single judgments are present.
    let chart = report.category_chart().unwrap();
    assert_eq!(chart.categories, vec!["math", "writing"]);
    assert_eq!(
        chart.series.iter().map(|s| s.values.clone()).collect::<Vec<_>>(),
        vec![vec![Some(4.0), Some(7.0)], vec![Some(4.0), Some(9.0)]]
    );
    let svg = report.chart_svg().unwrap();
    assert_eq!(svg.matches("<title>").count(), 4);
    // JSON for --json.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["vicuna80"]["pairs"][1]["relative_score"], 112.5);
    assert_eq!(json["vicuna80"]["by_category"][0]["category"], "coding");
    assert_eq!(json["vicuna80"]["by_category"][0]["model_total"], 7.5);
    assert_eq!(json["single"]["models"][0]["overall"], 6.5);
}

#[test]
fn pairwise_chart_uses_adjusted_win_rates() {
    let report = build_report(&pairwise_set(), &ReportOptions::default()).unwrap();
    let chart = report.category_chart().unwrap();
    assert_eq!(chart.y_max, 100.0);
    assert_eq!(chart.series[0].name, "m1");
    // m1 in math: 0 wins, 1 tie, 1 loss -> 25%; in writing: 2 wins, 1 tie -> 5/6.
    assert_eq!(chart.series[0].values[0], Some(25.0));
    assert_eq!(build_report(&[], &ReportOptions::default()).unwrap().category_chart(), None);
}

#[test]
fn constructors_parse_replies_and_fill_derived_scores() {
    let prompts = builtin_prompts();
    let q = Question { id: 5.into(), category: "coding".into(), turns: vec!["q".into()], reference: vec![] };
    let j = Judgment::pair(
        &q,
        Mode::Vicuna80,
        "chatgpt",
        "vicuna",
        "gpt-4",
        prompts.get("vicuna80-coding").unwrap(),
        1,
        "6 5\nBoth fine.".into(),
        Some("10 6\nAssistant 1 is better.".into()),
        1.5,
    );
    assert_eq!((j.score_a, j.score_b), (Some(6.0), Some(7.5)));
    assert_eq!(
        j.resolve_pair(),
        Some(Resolved { outcome: Outcome::Tie, inconsistent: true, scores: Some((6.0, 7.5)) })
    );
    let line = j.to_line().unwrap();
    let back = parse_judgment(serde_json::from_str(&line).unwrap()).unwrap();
    assert_eq!(back, j);
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["mode"], "vicuna80");
    assert_eq!(value["verdict"], serde_json::json!({"scores": [6.0, 5.0]}));
    assert_eq!(value["swapped_verdict"], serde_json::json!({"scores": [10.0, 6.0]}));
    assert!(value.get("model").is_none() && value.get("score").is_none());

    let s =
        Judgment::single(&q, "vicuna", "gpt-4", prompts.get("single-math-v1").unwrap(), 1, "Rating: [[7]]".into(), 0.0);
    assert_eq!((s.score, s.verdict.clone()), (Some(7.0), Verdict::Rating(7.0)));
    let bad = Judgment::single(&q, "vicuna", "gpt-4", prompts.get("single-v1").unwrap(), 1, "Good.".into(), 0.0);
    assert_eq!(bad.score, None);
    assert_eq!(bad.unparsed_reason(), Some("no [[rating]]"));

    let w = Judgment::pair(
        &q,
        Mode::Pairwise,
        "x",
        "y",
        "gpt-4",
        prompts.get("pair-v2").unwrap(),
        1,
        "[[B]]".into(),
        Some("[[A]]".into()),
        0.0,
    );
    assert_eq!(w.resolve_pair().map(|r| (r.outcome, r.inconsistent)), Some((Outcome::BWins, false)));
    assert_eq!((w.score_a, w.score_b), (None, None));
}

#[test]
fn invalid_records_are_rejected_with_their_line() {
    let good = pair(Mode::Pairwise, 1, "c", "a", "b", Verdict::Winner(A), None);
    let mut same_models = good.clone();
    same_models.model_b = Some("a".into());
    let mut rating_in_pairwise = good.clone();
    rating_in_pairwise.verdict = Verdict::Rating(3.0);
    let mut no_model = single(1, "c", "m", 1, Verdict::Rating(3.0));
    no_model.model = None;
    let mut turn_zero = good.clone();
    turn_zero.turn = 0;
    let lines: Vec<String> = [&good, &same_models, &rating_in_pairwise, &no_model, &turn_zero]
        .iter()
        .map(|j| serde_json::to_string(j).unwrap())
        .chain(["{\"question_id\": 1}".to_string()])
        .collect();
    let loaded = jsonl::parse_lenient(Path::new("j.jsonl"), lines.join("\n").as_bytes(), parse_judgment);
    assert_eq!(loaded.items.len(), 1);
    let errors: Vec<(usize, &str)> = loaded.skipped.iter().map(|s| (s.line, s.error.as_str())).collect();
    assert_eq!(errors.len(), 5);
    assert!(errors[0].1.contains("two different models"), "{errors:?}");
    assert!(errors[1].1.contains("cannot have verdict"), "{errors:?}");
    assert!(errors[2].1.contains("needs \"model\""), "{errors:?}");
    assert!(errors[3].1.contains("\"turn\" must be 1 or more"), "{errors:?}");
    assert!(errors[4].1.contains("not a judgment record"), "{errors:?}");
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3, 4, 5, 6]);
}

#[test]
fn categories_come_from_the_question_file_when_missing() {
    let mut set = vec![single(1, "x", "m", 1, Verdict::Rating(5.0)), single(2, "x", "m", 1, Verdict::Rating(7.0))];
    set[0].category = None;
    set[1].category = None;
    let questions = [Question { id: 1.into(), category: "stem".into(), turns: vec!["q".into()], reference: vec![] }];
    fill_categories(&mut set, &questions);
    assert_eq!(set[0].category.as_deref(), Some("stem"));
    assert_eq!(set[1].category, None);
    let report = build_report(&set, &ReportOptions::default()).unwrap();
    let cats: Vec<&str> = report.single.as_ref().unwrap().category_scores.iter().map(|c| c.category.as_str()).collect();
    assert_eq!(cats, vec!["stem", UNCATEGORIZED]);
}
