//! Whole-file operations on clean conversations that need the record count before they start:
//! `prep sample` (a seeded subset) and `prep split-train-test` (one pass, two outputs).
use super::pipeline::{open_all, run_into, Plan, Read};
use super::report::{Reason, Report};
use super::select::choose;
use super::writer::RecordWriter;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// How many records to take: an exact count or a fraction of the input.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    Count(usize),
    Fraction(f64),
}

impl Amount {
    /// The number of records this means out of `total` (a fraction rounds to the nearest record).
    pub fn of(self, total: usize) -> Result<usize> {
        match self {
            Amount::Count(n) => Ok(n.min(total)),
            Amount::Fraction(f) if (0.0..=1.0).contains(&f) => Ok((f * total as f64).round() as usize),
            Amount::Fraction(f) => bail!("fraction {f} is outside 0..=1"),
        }
    }
}

/// Writes a seeded random subset of `inputs` to `output`, in input order.
pub fn sample(inputs: &[PathBuf], output: &Path, amount: Amount, seed: u64, plan: Plan) -> Result<Report> {
    let files = open_all(inputs)?;
    let total = files.iter().map(|f| f.len()).sum();
    let chosen = choose(total, amount.of(total)?, seed);
    let select = |i: usize| chosen[i];
    let plan = Plan { select: Some(&select), ..plan };
    let mut writer = RecordWriter::create(output)?;
    let report = run_into(&plan, &files, &mut |_, bytes| writer.push(bytes))?;
    writer.finish()?;
    Ok(report)
}

/// Splits `inputs` into a train and a test file, each in input order; `test` is the seeded share.
/// Records dropped as malformed appear in the report; each output's size is in `records_out` of
/// the two returned reports (train first).
pub fn split_train_test(
    inputs: &[PathBuf],
    train: &Path,
    test: &Path,
    test_amount: Amount,
    seed: u64,
) -> Result<(Report, Report)> {
    let files = open_all(inputs)?;
    let total = files.iter().map(|f| f.len()).sum();
    let in_test = choose(total, test_amount.of(total)?, seed);
    let mut train_out = RecordWriter::create(train)?;
    let mut test_out = RecordWriter::create(test)?;
    let plan = Plan::new("split-train-test", Read::Conversations);
    let report =
        run_into(&plan, &files, &mut |i, bytes| if in_test[i] { test_out.push(bytes) } else { train_out.push(bytes) })?;
    let test_count = test_out.finish()?;
    let train_count = train_out.finish()?;
    let side = |name: &str, out: usize, other: usize| {
        let mut r = report.clone();
        r.command = format!("split-train-test ({name})");
        r.records_out = out;
        *r.dropped.entry(Reason::NotSelected).or_default() += other;
        r
    };
    Ok((side("train", train_count, test_count), side("test", test_count, train_count)))
}
