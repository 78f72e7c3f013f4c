//! Values agreed across the ranks of a job: rank 0's choice, sums, maxima, the stop signal. With no
//! group (one process) each is the local value, so the training loop reads the same either way.
use super::engine::{Group, Op};
use crate::train::preempt;
use anyhow::Result;

/// Rank 0's `value`, on every rank.
pub fn shared_value(group: Option<&Group>, value: i64) -> Result<i64> {
    match group {
        Some(g) => Ok(g.broadcast_values(&[value], 0)?[0]),
        None => Ok(value),
    }
}

/// Sums of `values` over all ranks.
pub fn summed<const N: usize>(group: Option<&Group>, values: [f64; N]) -> Result<[f64; N]> {
    let Some(g) = group else { return Ok(values) };
    let sums = g.all_reduce_values(&values, Op::Sum)?;
    Ok(std::array::from_fn(|i| sums[i]))
}

/// The largest of `value` over all ranks.
pub fn largest(group: Option<&Group>, value: u64) -> Result<u64> {
    match group {
        Some(g) => Ok(g.all_reduce_values(&[value as f64], Op::Max)?[0] as u64),
        None => Ok(value),
    }
}

/// The stop signal any rank received (SIGTERM to one rank stops them all at the same point).
pub fn stop_requested(group: Option<&Group>) -> Result<Option<i32>> {
    let local = preempt::requested().unwrap_or(0);
    let signal = match group {
        Some(g) => g.all_reduce_values(&[local as f64], Op::Max)?[0] as i32,
        None => local,
    };
    Ok((signal != 0).then_some(signal))
}
