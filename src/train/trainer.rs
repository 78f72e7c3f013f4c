//! `vicuna train`: supervised fine-tuning on multi-turn chats, one loop read top to bottom in a
//! fixed order (nanoGPT's `train.py`): set the learning rate, evaluate, run the micro-steps of the
//! optimizer step, clip, step, zero, log, save, stop. A stop signal (SIGTERM, SIGUSR1) is checked
//! after every micro-step: the run saves the state as of the last completed step and exits 0;
//! resuming redoes the interrupted step, so the result is the same as an uninterrupted run.
//!
//! A run holds an exclusive lock on its output directory, checks every token id of its data
//! against the model's vocabulary before step 1, identifies its model and data by content in the
//! checkpoints (so a resume on replaced data or changed settings is refused by key), and stops
//! with an error at the first non-finite loss or gradient norm, before the bad update is applied
//! or saved.
use super::batch::{packed_batch, padded_batch, Batch};
use super::checkpoint::{self, TrainState, STATE_VERSION};
use super::metrics::{self, StepMetrics};
use super::optim::{clip_grad_norm, AdamW, AdamWConfig};
use super::preempt;
use super::recipe::TrainConfig;
use super::schedule::lr_at;
use super::step::micro_step;
use crate::data::encode::Sample;
use crate::data::loader::{fingerprint, load_samples, trained_targets};
use crate::data::sampler::Sampler;
use crate::data::template::Template;
use crate::data::tokenizer::{SpecialOverrides, Tokenizer};
use crate::model::config::Config;
use crate::model::llama::Llama;
use crate::model::weights::{identity, load_model, save_model, Loaded};
use crate::util::lock::Lock;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Where to start (`--resume`: absent, `auto`, or a checkpoint directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// From the model's weights (an existing checkpoint in the output directory is an error).
    No,
    /// From the newest checkpoint in the output directory that verifies, if any.
    Auto,
    /// From this checkpoint directory.
    From(PathBuf),
}

impl std::str::FromStr for Resume {
    type Err = std::convert::Infallible;

    /// `auto` is the newest checkpoint that verifies; anything else is a checkpoint directory.
    fn from_str(s: &str) -> std::result::Result<Resume, Self::Err> {
        Ok(if s == "auto" { Resume::Auto } else { Resume::From(PathBuf::from(s)) })
    }
}

/// How a run ended (`--json` prints it as is, in these field names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub steps_done: usize,
    pub total_steps: usize,
    pub last_loss: Option<f64>,
    /// The signal that stopped the run early, if one did.
    #[serde(rename = "stopped_by_signal")]
    pub stopped_by: Option<i32>,
    pub checkpoint: Option<PathBuf>,
    /// The exported model (HF layout), when the run finished.
    pub exported: Option<PathBuf>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        match self.stopped_by {
            Some(signal) => write!(
                f,
                "stopped by signal {signal} after step {}/{}; checkpoint {}",
                self.steps_done,
                self.total_steps,
                path(&self.checkpoint)
            ),
            None => write!(
                f,
                "trained {} steps, last loss {:.4}; model exported to {}",
                self.steps_done,
                self.last_loss.unwrap_or(f64::NAN),
                path(&self.exported)
            ),
        }
    }
}

/// Runs the recipe. `allow_change` names resume-key settings that may differ from the
/// checkpoint's (`--allow-change`); the accepted changes are written to the metrics.
pub fn train(cfg: &TrainConfig, resume: Resume, allow_change: &[String]) -> Result<Outcome> {
    preempt::install()?;
    let _lock =
        Lock::acquire(&cfg.output_dir.join(".vicuna.lock"), &format!("output directory {}", cfg.output_dir.display()))?;
    let device = cfg.device;
    let kind = cfg.dtype.kind();
    let exported = cfg.output_dir.join("final");
    crate::util::atomic::ensure_distinct(
        &[cfg.model.as_path(), cfg.data.as_path()],
        &[("output_dir/final", &exported)],
    )?;
    let config = Config::load(&cfg.model.join("config.json"))?;
    let tokenizer = Tokenizer::load(&cfg.model, &SpecialOverrides::default())?;
    config.check_tokenizer(tokenizer.vocab_size(), &cfg.model)?;
    let template = Template::new(cfg.template, &tokenizer)?;
    let (samples, load_report) = load_samples(&cfg.data, &tokenizer, &template, cfg.max_length, config.vocab_size)?;
    anyhow::ensure!(!samples.is_empty(), "{}: no trainable sample ({})", cfg.data.display(), load_report.to_json());
    let eval = match &cfg.eval_data {
        Some(path) => load_samples(path, &tokenizer, &template, cfg.max_length, config.vocab_size)?.0,
        None => Vec::new(),
    };
    let pad_id = tokenizer.pad.as_ref().map(|p| p.id).unwrap_or(0);

    let loaded: Loaded = load_model(&cfg.model, kind, device)?;
    let model: &Llama = &loaded;
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let params: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t.shallow_clone()).collect();
    for p in &params {
        let _ = p.shallow_clone().set_requires_grad(true);
    }
    // fp32 masters: the parameters themselves in fp32, copies for bf16/fp16 models.
    let mixed = kind != Kind::Float;
    let masters: Vec<Tensor> = if mixed {
        params.iter().map(|p| p.detach().to_kind(Kind::Float)).collect()
    } else {
        params.iter().map(Tensor::shallow_clone).collect()
    };
    let adam = AdamWConfig {
        beta1: cfg.adam_beta1,
        beta2: cfg.adam_beta2,
        eps: cfg.adam_epsilon,
        weight_decay: cfg.weight_decay,
    };
    let mut optimizer = AdamW::new(&masters, adam);

    let sampler = Sampler::new(
        samples.iter().map(|s| s.input_ids.len()).collect(),
        cfg.global_batch(),
        cfg.seed,
        cfg.group_by_length,
    );
    let per_epoch = sampler.steps_per_epoch();
    let total_steps = match cfg.max_steps {
        Some(steps) => steps,
        None => cfg.epochs.checked_mul(per_epoch).with_context(|| {
            format!("epochs {} x {per_epoch} steps per epoch is too many steps; give max_steps", cfg.epochs)
        })?,
    };
    let root = cfg.output_dir.join("checkpoints");
    let mut resume_key = cfg.resume_key();
    resume_key.insert("model".into(), identity(&cfg.model)?);
    resume_key.insert("data".into(), fingerprint(&samples));
    resume_key.insert("total_steps".into(), total_steps.to_string());
    resume_key.insert("world_size".into(), "1".into());
    let mut state = TrainState {
        version: STATE_VERSION,
        step: 0,
        samples_seen: 0,
        epoch: 0,
        epoch_step: 0,
        optimizer_steps: 0,
        seed: cfg.seed,
        world_size: 1,
        resume_key,
        best_eval_loss: None,
        eval_loss: None,
        files: Vec::new(),
    };
    let named = |ts: &[Tensor], prefix: &str| -> Vec<(String, Tensor)> {
        names.iter().zip(ts).map(|(n, t)| (format!("{prefix}{n}"), t.shallow_clone())).collect()
    };
    // AdamW moments under the names checkpoints store them with.
    let moments_of =
        |o: &AdamW| -> Vec<(String, Tensor)> { named(&o.m, "m.").into_iter().chain(named(&o.v, "v.")).collect() };
    let scan = checkpoint::scan(&root)?;
    let from = match resume {
        Resume::No => {
            if scan.latest.is_some() {
                anyhow::bail!(
                    "{} already holds checkpoints: pass --resume auto to continue, or choose another output_dir",
                    root.display()
                );
            }
            if !scan.rejected.is_empty() {
                anyhow::bail!(
                    "{} holds checkpoints, none of which verifies ({}); remove them to start over, or choose another output_dir",
                    root.display(),
                    scan.rejected.iter().map(|(d, e)| format!("{}: {e}", d.display())).collect::<Vec<_>>().join("; ")
                );
            }
            None
        }
        Resume::Auto => {
            if scan.latest.is_none() && !scan.rejected.is_empty() {
                let why: Vec<String> = scan.rejected.iter().map(|(d, e)| format!("  {}: {e}", d.display())).collect();
                anyhow::bail!(
                    "--resume auto: no checkpoint in {} verifies, so there is nothing to resume from:\n{}\nremove them to start over, or resume from a copy with --resume PATH",
                    root.display(),
                    why.join("\n")
                );
            }
            for (dir, why) in &scan.rejected {
                eprintln!("warning: skipping checkpoint {}: {why}", dir.display());
            }
            scan.latest
        }
        Resume::From(dir) => Some((dir.clone(), checkpoint::verify(&dir)?)),
    };
    let mut changes = Vec::new();
    let mut last_good = None;
    if let Some((dir, saved)) = from {
        changes = checkpoint::check_resume_key(&saved.resume_key, &state.resume_key, allow_change)?;
        if let Some(aside) = checkpoint::set_aside_newer(&root, saved.step)? {
            eprintln!(
                "warning: resuming at step {}: the newer checkpoints of the run this replaces were moved to {}",
                saved.step,
                aside.display()
            );
        }
        let moments = moments_of(&optimizer);
        checkpoint::restore(&dir, &named(&masters, ""), &moments)?;
        if mixed {
            copy_masters(&params, &masters);
        }
        optimizer.steps = saved.optimizer_steps;
        eprintln!("resuming from {} (step {} of {total_steps})", dir.display(), saved.step);
        for c in &changes {
            eprintln!("warning: {} changed from {} to {} (--allow-change)", c.key, c.checkpoint, c.now);
        }
        state = TrainState { resume_key: state.resume_key, ..saved };
        last_good = Some(dir);
    }

    std::fs::create_dir_all(&cfg.output_dir).with_context(|| format!("cannot create {}", cfg.output_dir.display()))?;
    let mut log = metrics::Log::open(&cfg.output_dir, state.step)?;
    if !changes.is_empty() {
        log.event(&serde_json::json!({"event": "resume", "step": state.step, "allowed_changes": changes}))?;
    }
    let bar = crate::util::progress::progress_bar(total_steps as u64, "train", "steps");
    bar.set_position(state.step as u64);
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut last_loss = None;
    let mut epoch_order = (usize::MAX, Vec::new());
    let mut saved_at = None;
    let save = |state: &TrainState, optimizer: &AdamW| -> Result<PathBuf> {
        let moments = moments_of(optimizer);
        let state = TrainState { optimizer_steps: optimizer.steps, ..state.clone() };
        checkpoint::save(&root, &state, &named(&masters, ""), &moments, cfg.keep_checkpoints)
    };

    // Ends the run on a stop signal: a durable checkpoint of `state` (unless `done` already is one).
    let stop =
        |signal: i32, state: &TrainState, optimizer: &AdamW, done: Option<&PathBuf>, last_loss| -> Result<Outcome> {
            let dir = match done {
                Some(d) => d.clone(),
                None => save(state, optimizer)?,
            };
            bar.finish_and_clear();
            eprintln!(
                "signal {signal}: checkpoint {} durable {:.2} s after the signal; resume with --resume auto",
                dir.display(),
                preempt::seconds_since_signal()
            );
            Ok(Outcome {
                steps_done: state.step,
                total_steps,
                last_loss,
                stopped_by: Some(signal),
                checkpoint: Some(dir),
                exported: None,
            })
        };
    while state.step < total_steps {
        let (epoch, position) = (state.step / per_epoch, state.step % per_epoch);
        if epoch_order.0 != epoch {
            epoch_order = (epoch, sampler.epoch(epoch));
        }
        let lr = lr_at(cfg.lr_schedule, cfg.learning_rate, state.step, total_steps, cfg.warmup_ratio);
        let step_samples: Vec<&Sample> = epoch_order.1[position].iter().map(|&i| &samples[i]).collect();
        let trained: usize = step_samples.iter().map(|s| trained_targets(s)).sum();
        let step_start = Instant::now();
        let mut loss_sum = 0.0;
        let mut tokens = 0;
        let mut interrupted = None;
        for micro in step_samples.chunks(cfg.micro_batch_size) {
            let batch = make_batch(micro, cfg, pad_id, device);
            tokens += batch.tokens;
            loss_sum += micro_step(model, &batch, 1.0 / trained.max(1) as f64, cfg.gradient_checkpointing);
            if let Some(signal) = preempt::requested() {
                interrupted = Some(signal);
                break;
            }
        }
        if let Some(signal) = interrupted {
            // The partial step is dropped; the checkpoint holds the state after the last full step.
            return stop(signal, &state, &optimizer, None, last_loss);
        }
        let grads: Vec<Tensor> =
            params.iter().map(|p| if mixed { p.grad().to_kind(Kind::Float) } else { p.grad() }).collect();
        let grad_norm = clip_grad_norm(&grads, cfg.max_grad_norm);
        let loss = loss_sum / trained.max(1) as f64;
        if !loss.is_finite() || !grad_norm.is_finite() {
            bar.finish_and_clear();
            anyhow::bail!(diverged(
                state.step + 1,
                &format!("the loss is {loss} and the gradient norm {grad_norm}"),
                lr,
                last_good.as_deref()
            ));
        }
        optimizer.step(&masters, &grads, lr);
        for p in &params {
            p.shallow_clone().zero_grad();
        }
        if mixed {
            copy_masters(&params, &masters);
        }
        last_loss = Some(loss);
        state.step += 1;
        state.samples_seen += step_samples.len();
        (state.epoch, state.epoch_step) = (state.step / per_epoch, state.step % per_epoch);
        let seconds = step_start.elapsed().as_secs_f64();
        let eval_loss = match cfg.eval_interval {
            Some(n) if !eval.is_empty() && (state.step % n == 0 || state.step == total_steps) => {
                Some(evaluate(model, &eval, cfg, pad_id, device))
            }
            None if !eval.is_empty() && state.step == total_steps => Some(evaluate(model, &eval, cfg, pad_id, device)),
            _ => None,
        };
        if let Some(e) = eval_loss.filter(|e| !e.is_finite()) {
            bar.finish_and_clear();
            anyhow::bail!(diverged(state.step, &format!("the eval loss is {e}"), lr, last_good.as_deref()));
        }
        state.eval_loss = eval_loss;
        if let Some(e) = eval_loss {
            state.best_eval_loss = Some(state.best_eval_loss.map_or(e, |b: f64| b.min(e)));
        }
        log.write(&StepMetrics {
            step: state.step,
            epoch: state.step as f64 / per_epoch as f64,
            loss,
            eval_loss,
            lr,
            grad_norm,
            trained_tokens: trained,
            tokens,
            tokens_per_second: tokens as f64 / seconds,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            peak_memory_bytes: metrics::peak_memory_bytes(),
            samples: step_samples.iter().map(|s| s.id.clone()).collect(),
        })?;
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
        let minutes_due = cfg.save_interval_minutes.is_some_and(|m| last_save.elapsed().as_secs_f64() >= m * 60.0);
        if state.step % cfg.save_interval == 0 || minutes_due || state.step == total_steps {
            saved_at = Some(save(&state, &optimizer)?);
            last_good = saved_at.clone();
            last_save = Instant::now();
            log.plot()?;
        }
        if let Some(signal) = preempt::requested() {
            let done = saved_at.as_ref().filter(|d| d.ends_with(checkpoint::name_of(state.step)));
            return stop(signal, &state, &optimizer, done, last_loss);
        }
    }
    bar.finish_and_clear();
    log.plot()?;
    save_model(model, &exported, kind, 5_000_000_000, Some(&cfg.model))?;
    Ok(Outcome {
        steps_done: state.step,
        total_steps,
        last_loss,
        stopped_by: None,
        checkpoint: saved_at,
        exported: Some(exported),
    })
}

/// The message of a run stopped by a non-finite loss: the step, what was seen, and where to go on from.
fn diverged(step: usize, what: &str, lr: f64, last_good: Option<&std::path::Path>) -> String {
    let from = match last_good {
        Some(dir) => format!(
            "the last good checkpoint is {}; resume from it with a lower learning rate (--resume {} --learning-rate X --allow-change learning_rate)",
            dir.display(),
            dir.display()
        ),
        None => "no checkpoint was saved before it; start again with a lower learning rate".to_string(),
    };
    format!("training diverged at step {step}: {what} (learning rate {lr:e}); no weights from this step on were saved; {from}")
}

/// Writes the fp32 masters into the (bf16/fp16) model weights after an update or a restore.
fn copy_masters(params: &[Tensor], masters: &[Tensor]) {
    tch::no_grad(|| {
        for (p, m) in params.iter().zip(masters) {
            let _ = p.shallow_clone().copy_(m);
        }
    });
}

fn make_batch(samples: &[&Sample], cfg: &TrainConfig, pad_id: u32, device: Device) -> Batch {
    if cfg.packing {
        packed_batch(samples, cfg.max_length, pad_id, device)
    } else {
        padded_batch(samples, pad_id, device)
    }
}

/// Mean loss per trained token over `samples` (no gradients).
pub fn evaluate(model: &Llama, samples: &[Sample], cfg: &TrainConfig, pad_id: u32, device: Device) -> f64 {
    let _guard = tch::no_grad_guard();
    let (mut sum, mut count) = (0.0, 0);
    let refs: Vec<&Sample> = samples.iter().collect();
    for micro in refs.chunks(cfg.micro_batch_size) {
        let batch = make_batch(micro, cfg, pad_id, device);
        let hidden = model.hidden(&batch.ids, &batch.positions, &batch.mask, None);
        sum += super::step::head_loss(model, &hidden, &batch.targets, None);
        count += batch.trained;
    }
    sum / count.max(1) as f64
}
