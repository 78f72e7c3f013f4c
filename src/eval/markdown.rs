//! The report as Markdown: the counts, then one section per mode present (Vicuna-80 total
//! scores as the Vicuna blog's Table 2, pairwise win/tie/loss as FastChat's `show_result.py`,
//! MT-bench turn means), each with its per-category table, then the judgments left unscored.
use super::report::{score_cells, PairTotal, Report};
use std::collections::BTreeSet;
use std::fmt::Write;

impl Report {
    /// The report as Markdown: counts, then one section per mode present, then the unparsed
    /// judgments.
    pub fn to_markdown(&self) -> String {
        let mut md = String::from("# Evaluation report\n\n");
        let c = &self.counts;
        let _ = writeln!(
            md,
            "Judge: {} · baseline: {}\n",
            self.judge.as_deref().unwrap_or("(none)"),
            self.baseline.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(
            md,
            "Judgments: {} read, {} used ({} other judge, {} other model, {} replaced by a later record); \
             {} unparsed (not scored); {} inconsistent under position swap (counted as ties).\n",
            c.read, c.used, c.other_judge, c.other_model, c.duplicates, c.unparsed, c.inconsistent
        );
        if let Some(v) = &self.vicuna80 {
            md.push_str("## Vicuna-80: total scores\n\n");
            md.push_str(&pair_total_table(v.pairs.iter().map(|p| (None, p))));
            md.push_str("\n### By category\n\n");
            md.push_str(&pair_total_table(v.by_category.iter().map(|p| (Some(p.category.as_str()), &p.pair))));
            md.push_str("\n### Mean score by category\n\n");
            md.push_str(&pivot(&score_cells(&v.category_scores), 2));
        }
        if let Some(p) = &self.pairwise {
            md.push_str("## Pairwise: win / tie / loss\n\n");
            md.push_str("| Model | Opponent | Win | Tie | Loss | Win rate | Loss rate | Adjusted win rate | Inconsistent | Unparsed |\n");
            md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in &p.pairs {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    cell(&r.model),
                    cell(&r.opponent),
                    r.record.wins,
                    r.record.ties,
                    r.record.losses,
                    rate(r.record.win_rate),
                    rate(r.record.loss_rate),
                    rate(r.record.adjusted_win_rate),
                    r.inconsistent,
                    r.unparsed
                );
            }
            md.push_str("\n### Per model\n\n| Model | Win | Tie | Loss | Win rate | Loss rate | Adjusted win rate |\n");
            md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
            for r in &p.models {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cell(&r.model),
                    r.record.wins,
                    r.record.ties,
                    r.record.losses,
                    rate(r.record.win_rate),
                    rate(r.record.loss_rate),
                    rate(r.record.adjusted_win_rate)
                );
            }
            md.push_str("\n### Adjusted win rate by category\n\n");
            let cells: Vec<(String, String, f64)> = p
                .by_category
                .iter()
                .filter_map(|r| Some((r.category.clone(), r.model.clone(), r.record.adjusted_win_rate?)))
                .collect();
            md.push_str(&pivot(&cells, 3));
        }
        if let Some(s) = &self.single {
            md.push_str(
                "## MT-bench: single-answer grading\n\n| Model | Turn 1 | Turn 2 | Average | Judged | Unparsed |\n",
            );
            md.push_str("|---|---:|---:|---:|---:|---:|\n");
            for r in &s.models {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    cell(&r.model),
                    number(r.turn1, 2),
                    number(r.turn2, 2),
                    number(r.overall, 2),
                    r.judged,
                    r.unparsed
                );
            }
            md.push_str("\n### Mean rating by category\n\n");
            md.push_str(&pivot(&score_cells(&s.category_scores), 2));
        }
        if !self.unparsed.is_empty() {
            md.push_str("## Unparsed judgments (not scored)\n\n| Question | Mode | Models | Turn | Reason |\n|---|---|---|---:|---|\n");
            for u in &self.unparsed {
                let mode =
                    serde_json::to_value(u.mode).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| {} | {mode} | {} | {} | {} |",
                    cell(&u.question_id.to_string()),
                    cell(&u.models),
                    u.turn,
                    cell(&u.reason)
                );
            }
        }
        md
    }
}

fn pair_total_table<'a>(rows: impl Iterator<Item = (Option<&'a str>, &'a PairTotal)>) -> String {
    let mut md = String::new();
    let mut header = false;
    for (category, p) in rows {
        if !header {
            let first = if category.is_some() { "| Category " } else { "" };
            let _ = writeln!(md, "{first}| Model | Opponent | Questions | Model total | Opponent total | Relative score | Win | Tie | Loss | Adjusted win rate | Inconsistent | Unparsed |");
            let _ = writeln!(
                md,
                "{}|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                if category.is_some() { "|---" } else { "" }
            );
            header = true;
        }
        let first = category.map(|c| format!("| {} ", cell(c))).unwrap_or_default();
        let _ = writeln!(
            md,
            "{first}| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.model),
            cell(&p.opponent),
            p.questions,
            p.model_total,
            p.opponent_total,
            p.relative_score.map_or("n/a".to_string(), |r| format!("{r:.1}%")),
            p.record.wins,
            p.record.ties,
            p.record.losses,
            rate(p.record.adjusted_win_rate),
            p.inconsistent,
            p.unparsed
        );
    }
    md
}

/// A category × model table of values.
fn pivot(cells: &[(String, String, f64)], decimals: usize) -> String {
    let categories: BTreeSet<&str> = cells.iter().map(|c| c.0.as_str()).collect();
    let models: BTreeSet<&str> = cells.iter().map(|c| c.1.as_str()).collect();
    let mut md = String::from("| Category |");
    for m in &models {
        let _ = write!(md, " {} |", cell(m));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(models.len()));
    md.push('\n');
    for cat in categories {
        let _ = write!(md, "| {} |", cell(cat));
        for m in &models {
            let value = cells.iter().find(|c| c.0 == cat && c.1 == *m).map(|c| c.2);
            let _ = write!(md, " {} |", number(value, decimals));
        }
        md.push('\n');
    }
    md
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.decimals$}"))
}

fn rate(value: Option<f64>) -> String {
    number(value, 3)
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
