//! Learning-rate schedules as the Hugging Face Trainer computes them (`get_scheduler`), so a
//! FastChat recipe trains with the same rates: linear warmup over `ceil(warmup_ratio * steps)`
//! steps (the first step has rate 0), then cosine or linear decay to 0, or constant.
use serde::{Deserialize, Serialize};

/// The decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

/// The learning rate of optimizer step `step` (0-based) out of `total`.
pub fn lr_at(schedule: Schedule, peak: f64, step: usize, total: usize, warmup_ratio: f64) -> f64 {
    let warmup = (warmup_ratio * total as f64).ceil() as usize;
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    match schedule {
        Schedule::Constant => peak,
        Schedule::Linear => peak * (1.0 - progress).max(0.0),
        Schedule::Cosine => peak * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_hugging_face_schedules() {
        // 100 steps, warmup 0.03 -> 3 warmup steps: 0, 1/3, 2/3 of the peak, then decay.
        let lr = |s, step| lr_at(s, 2e-5, step, 100, 0.03);
        assert_eq!(lr(Schedule::Cosine, 0), 0.0);
        assert!((lr(Schedule::Cosine, 1) - 2e-5 / 3.0).abs() < 1e-18);
        assert_eq!(lr(Schedule::Cosine, 3), 2e-5);
        assert!(
            (lr(Schedule::Cosine, 3 + 97 / 2) - 2e-5 * 0.5 * (1.0 + (std::f64::consts::PI * 48.0 / 97.0).cos())).abs()
                < 1e-18
        );
        assert!((lr(Schedule::Linear, 50) - 2e-5 * (1.0 - 47.0 / 97.0)).abs() < 1e-18);
        assert_eq!(lr(Schedule::Constant, 99), 2e-5);
        assert_eq!(lr_at(Schedule::Cosine, 1.0, 5, 10, 0.0), 0.5 * (1.0 + (std::f64::consts::PI * 0.5).cos()));
    }
}
