//! Training metrics: one JSON line per optimizer step in `metrics.jsonl` (step, epoch, loss, lr,
//! grad norm, tokens/s, trained tokens, elapsed, peak memory), for scripts and dashboards, and a
//! loss curve `loss.svg` redrawn at every checkpoint and at the end, for people.
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one optimizer step reports.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub trained_tokens: usize,
    pub tokens: usize,
    pub tokens_per_second: f64,
    pub elapsed_seconds: f64,
    /// Peak resident memory of the largest rank (of this process when alone).
    pub peak_memory_bytes: u64,
    /// Bytes this rank handed to collectives during the step (payloads: an all-reduce of B bytes
    /// counts B; the wire carries about 2 (N-1)/N B with a ring), 0 for one process.
    pub comm_bytes: u64,
    /// Ids of the samples the step trained on, in micro-batch order.
    pub samples: Vec<String>,
}

/// The metrics file (appended, so a resumed run continues it) and the points of the loss plot.
pub struct Log {
    file: File,
    dir: PathBuf,
    points: Vec<(usize, f64, Option<f64>)>,
}

impl Log {
    /// Opens `dir/metrics.jsonl` for appending; earlier lines (a resumed run) join the plot. Lines
    /// of steps after `resume_step` (written by a run that was stopped before it saved them, events
    /// included) and torn lines are removed first, so a resumed run's file holds each step once.
    pub fn open(dir: &Path, resume_step: usize) -> Result<Log> {
        let path = dir.join("metrics.jsonl");
        let mut points = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut kept = String::with_capacity(text.len());
            for line in text.lines() {
                // A line torn by a kill, or one from after the step resumed from, goes.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if v["step"].as_u64().is_some_and(|s| s as usize > resume_step) {
                    continue;
                }
                kept.push_str(line);
                kept.push('\n');
                if let (Some(s), Some(l)) = (v["step"].as_u64(), v["loss"].as_f64()) {
                    points.retain(|p: &(usize, f64, Option<f64>)| p.0 < s as usize);
                    points.push((s as usize, l, v["eval_loss"].as_f64()));
                }
            }
            if kept.len() != text.len() {
                crate::util::atomic::write_bytes(&path, kept.as_bytes())?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Log { file, dir: dir.to_path_buf(), points })
    }

    /// Appends a line that is not a step (`{"event": ...}`), such as the settings a resume changed.
    pub fn event(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").context("cannot write metrics.jsonl")?;
        self.file.flush().context("cannot write metrics.jsonl")
    }

    /// Appends one step.
    pub fn write(&mut self, m: &StepMetrics) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(m)?).context("cannot write metrics.jsonl")?;
        self.file.flush()?;
        self.points.retain(|p| p.0 < m.step);
        self.points.push((m.step, m.loss, m.eval_loss));
        Ok(())
    }

    /// Writes `loss.svg`: training loss per step, and eval loss where measured.
    pub fn plot(&self) -> Result<()> {
        crate::util::atomic::write_bytes(&self.dir.join("loss.svg"), svg(&self.points).as_bytes())
    }
}

fn svg(points: &[(usize, f64, Option<f64>)]) -> String {
    let (w, h, pad) = (640.0, 360.0, 48.0);
    let max_step = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let values = points.iter().flat_map(|p| std::iter::once(p.1).chain(p.2)).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, lo.max(1.0)) };
    let x = |s: usize| pad + (w - 2.0 * pad) * s as f64 / max_step;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let line = |pts: Vec<(usize, f64)>| {
        pts.iter().map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v))).collect::<Vec<_>>().join(" ")
    };
    let train = line(points.iter().map(|p| (p.0, p.1)).collect());
    let eval = line(points.iter().filter_map(|p| p.2.map(|e| (p.0, e))).collect());
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
            "<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n",
            "<text x=\"{pad}\" y=\"20\">loss (train: blue, eval: orange)</text>\n",
            "<text x=\"4\" y=\"{ty}\">{hi:.3}</text><text x=\"4\" y=\"{b}\">{lo:.3}</text>\n",
            "<text x=\"{r}\" y=\"{sy}\" text-anchor=\"end\">step {max_step}</text>\n",
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{train}\"/>\n",
            "<polyline fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" points=\"{eval}\"/>\n</svg>\n"
        ),
        w = w, h = h, pad = pad, b = h - pad, r = w - pad, ty = pad + 4.0, sy = h - pad + 16.0,
        hi = hi, lo = lo, max_step = max_step, train = train, eval = eval
    )
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_memory_bytes() -> u64 {
    crate::util::peak_rss_bytes()
}
