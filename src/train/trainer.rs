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
//!
//! Mixed precision, one policy on CPU and GPU (`--dtype bf16`, or `auto` where the hardware does
//! bf16 fast, `model::device::decide`): the model's weights and activations are bf16 (or fp16),
//! so matmuls and attention (SDPA, which accumulates in fp32 inside its kernels) run in that
//! format. fp32 holds everything that sums or remembers: the master weights (the bf16 weights are
//! the masters rounded to nearest even after every step), the AdamW moments, the gradient of the
//! step (each micro-batch's bf16 gradients are added into an fp32 sum as soon as its backward is
//! done, so 64 micro-batches lose no more than one; `dist::sharded`), the gradient-norm and
//! clipping, the all-reduce of gradients between processes, the logits from which the loss is
//! taken and the loss itself, the RMSNorm statistics (`model::llama::RmsNorm`) and the rotary
//! angles. Within one micro-batch's backward, autograd sums a weight's gradient contributions in
//! the weight's format (tied embeddings, the LM head's chunks of 512 rows), as PyTorch does.
//! Checkpoints hold the fp32 masters and moments, so a bf16 run resumes bit-identically; the
//! export converts the masters to `--export-dtype` (default: the source checkpoint's format).
//!
//! Many processes (torchrun's variables, `dist::Env`) add only a rank, a world size, a main-process
//! flag and collectives to this loop: each rank trains every world-th sample of each step (every
//! rank runs the same number of micro-step slots, an empty one when it has no sample left), the
//! parameters and their fp32 training state are sharded by `dist::sharded`, the loss and the stop
//! signal are agreed across ranks (`dist::across`), and only rank 0 prints, logs, plots and exports.
use super::batch::{packed_batch, padded_batch, Batch};
use super::checkpoint::{self, ShardState, TrainState, STATE_VERSION};
use super::dist::across::{largest, shared_value, stop_requested, summed};
use super::dist::engine::{comm_bytes, Group};
use super::dist::sharded::Sharded;
use super::dist::{Env, ShardMode};
use super::metrics::{self, StepMetrics};
use super::optim::{AdamW, AdamWConfig};
use super::preempt;
use super::recipe::TrainConfig;
use super::resume::resume_point;
pub use super::resume::Resume;
use super::schedule::lr_at;
use super::step::{eval_loss_with, micro_step_with};
use crate::data::encode::Sample;
use crate::data::loader::{fingerprint, load_samples, trained_targets};
use crate::data::sampler::Sampler;
use crate::data::template::Template;
use crate::data::tokenizer::{SpecialOverrides, Tokenizer};
use crate::model::config::Config;
use crate::model::device::Dtype;
use crate::model::llama::Llama;
use crate::model::weights::{identity, open_model, save_streamed};
use crate::util::lock::Lock;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

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
    /// This process's rank (only rank 0 reports the outcome).
    #[serde(skip)]
    pub rank: usize,
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

/// Runs the recipe, as one process or as one rank of a job described by torchrun's variables
/// (`dist::Env`). `allow_change` names resume-key settings that may differ from the checkpoint's
/// (`--allow-change`); the accepted changes are written to the metrics.
pub fn train(cfg: &TrainConfig, resume: Resume, allow_change: &[String]) -> Result<Outcome> {
    let env = Env::from_process()?;
    preempt::install()?;
    let main = env.is_main();
    let _lock = match main {
        true => Some(Lock::acquire(
            &cfg.output_dir.join(".vicuna.lock"),
            &format!("output directory {}", cfg.output_dir.display()),
        )?),
        false => None,
    };
    let device = match cfg.device {
        Device::Cuda(_) if env.local_world_size > 1 => Device::Cuda(env.local_rank),
        d => d,
    };
    let kind = cfg.dtype.dtype.kind();
    let exported = cfg.output_dir.join("final");
    crate::util::atomic::ensure_distinct(
        &[cfg.model.as_path(), cfg.data.as_path()],
        &[("output_dir/final", &exported)],
    )?;
    let config = Config::load(&cfg.model.join("config.json"))?;
    let export_dtype = cfg.export_dtype.unwrap_or_else(|| source_dtype(&config));
    if main {
        eprintln!("{}; masters, moments, gradient sums and the loss in fp32", cfg.dtype);
        if cfg.dtype.dtype == Dtype::Fp16 {
            eprintln!("warning: fp16 trains without loss scaling here: gradients below 6e-8 vanish; prefer bf16");
        }
    }
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

    let group = match env.world_size {
        1 => None,
        _ => Some(Group::join(&env.rendezvous(device, cfg.dist_timeout)?)?),
    };
    let group = group.as_ref();
    // The temporary name of every save, the same on all ranks: rank 0's process id.
    let run = shared_value(group, std::process::id() as i64)? as u32;
    // The model's parameters are placeholders until the shard is filled from the memory-mapped
    // checkpoint: each rank reads its own slices, in fp32, and nothing more.
    let (model, weights) = open_model(&cfg.model, kind, device)?;
    let model = &model;
    let named: Vec<(String, Tensor)> =
        model.named_parameters().into_iter().map(|(n, t)| (n, t.shallow_clone())).collect();
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let state_device = if cfg.offload { Device::Cpu } else { device };
    let read = |p: usize, start: i64, len: i64| weights.read_flat(&names[p], start, len, Kind::Float, state_device);
    let mut shard = Sharded::new(named, &read, cfg.shard, cfg.offload, group)?;
    drop(weights);
    if main && env.world_size > 1 {
        eprintln!(
            "{} processes, shard mode {}: {:.1} MB of parameters and optimizer state per rank between steps",
            env.world_size,
            shard.mode.name(),
            shard.layout.resident_bytes(shard.mode, kind) as f64 / 1e6
        );
    }
    let adam = AdamWConfig {
        beta1: cfg.adam_beta1,
        beta2: cfg.adam_beta2,
        eps: cfg.adam_epsilon,
        weight_decay: cfg.weight_decay,
    };
    let mut optimizer = AdamW::new(&[shard.master.shallow_clone()], adam);

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
    let mut state = TrainState {
        version: STATE_VERSION,
        step: 0,
        samples_seen: 0,
        epoch: 0,
        epoch_step: 0,
        optimizer_steps: 0,
        seed: cfg.seed,
        world_size: env.world_size,
        resume_key,
        best_eval_loss: None,
        eval_loss: None,
        shard_mode: shard.mode.name().to_string(),
        params: Vec::new(),
        shards: Vec::new(),
        files: Vec::new(),
    };
    if let Some(g) = group {
        // Every rank must train the same model on the same data with the same settings.
        let key = serde_json::to_string(&state.resume_key)?;
        let digests = g.all_gather_values(&[crc32fast::hash(key.as_bytes()) as i64])?;
        if let Some(r) = digests.iter().position(|d| *d != digests[0]) {
            bail!(
                "rank {r} has another model, data or settings than rank 0 (the contents of --model and --data and the recipe must be the same on every rank; this is rank {rank})",
                rank = env.rank
            );
        }
    }
    let from = resume_point(&root, resume, group)?;
    let mut changes = Vec::new();
    let mut last_good = None;
    if let Some((dir, saved)) = from {
        // `auto` chose by this machine's hardware; the fp32 masters resume in either format.
        let by_hardware = cfg.dtype.auto && !allow_change.iter().any(|k| k == "dtype");
        let allowed: Vec<String> = allow_change.iter().cloned().chain(by_hardware.then(|| "dtype".into())).collect();
        changes = checkpoint::check_resume_key(&saved.resume_key, &state.resume_key, &allowed)?;
        if main {
            if let Some(aside) = checkpoint::set_aside_newer(&root, saved.step)? {
                eprintln!(
                    "warning: resuming at step {}: the newer checkpoints of the run this replaces were moved to {}",
                    saved.step,
                    aside.display()
                );
            }
        }
        checkpoint::restore(&dir, &saved, &shard_state(&shard, &optimizer))?;
        shard.publish()?;
        optimizer.steps = saved.optimizer_steps;
        if main {
            eprintln!(
                "resuming from {} (step {} of {total_steps}; saved by {} process(es), shard mode {})",
                dir.display(),
                saved.step,
                saved.world_size,
                saved.shard_mode
            );
            for c in &changes {
                let why = if by_hardware && c.key == "dtype" { "--dtype auto" } else { "--allow-change" };
                eprintln!("warning: {} changed from {} to {} ({why})", c.key, c.checkpoint, c.now);
            }
        }
        state = TrainState {
            resume_key: state.resume_key,
            world_size: env.world_size,
            shard_mode: state.shard_mode,
            ..saved
        };
        last_good = Some(dir);
    }

    let mut log = match main {
        true => {
            std::fs::create_dir_all(&cfg.output_dir)
                .with_context(|| format!("cannot create {}", cfg.output_dir.display()))?;
            Some(metrics::Log::open(&cfg.output_dir, state.step)?)
        }
        false => None,
    };
    if let (Some(log), false) = (log.as_mut(), changes.is_empty()) {
        log.event(&serde_json::json!({"event": "resume", "step": state.step, "allowed_changes": changes}))?;
    }
    if !eval.is_empty() && state.step == 0 {
        // The starting point, so that a run shows what fine-tuning changed.
        let before = evaluate(model, &eval, cfg, pad_id, device, &mut shard, group)?;
        if let Some(log) = log.as_mut() {
            eprintln!("eval loss before training: {before:.4}");
            log.event(&serde_json::json!({"event": "eval", "step": 0, "eval_loss": before}))?;
        }
    }
    let bar = match main {
        true => crate::util::progress::progress_bar(total_steps as u64, "train", "steps"),
        false => indicatif::ProgressBar::hidden(),
    };
    bar.set_position(state.step as u64);
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut last_loss = None;
    let mut epoch_order = (usize::MAX, Vec::new());
    let mut saved_at = None;
    let save = |state: &TrainState, shard: &Sharded, optimizer: &AdamW| -> Result<PathBuf> {
        let state = TrainState { optimizer_steps: optimizer.steps, ..state.clone() };
        checkpoint::save(&root, &state, &shard_state(shard, optimizer), cfg.keep_checkpoints, group, run)
    };
    let (rank, world) = (env.rank, env.world_size);
    let mut comm_mark = comm_bytes();

    // Ends the run on a stop signal: a durable checkpoint of `state` (unless `done` already is one).
    let stop = |signal: i32,
                state: &TrainState,
                shard: &Sharded,
                optimizer: &AdamW,
                done: Option<&PathBuf>,
                last_loss|
     -> Result<Outcome> {
        let dir = match done {
            Some(d) => d.clone(),
            None => save(state, shard, optimizer)?,
        };
        bar.finish_and_clear();
        if main {
            eprintln!(
                "signal {signal}: checkpoint {} durable {:.2} s after the signal; resume with --resume auto",
                dir.display(),
                preempt::seconds_since_signal()
            );
        }
        Ok(Outcome {
            steps_done: state.step,
            total_steps,
            last_loss,
            stopped_by: Some(signal),
            checkpoint: Some(dir),
            exported: None,
            rank,
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
        // This rank's share of the step (every world-th sample), in micro-batches; every rank runs
        // the same number of slots so that their collectives match.
        let mine: Vec<&Sample> = step_samples.iter().skip(rank).step_by(world).copied().collect();
        let slots = step_samples.len().div_ceil(world).div_ceil(cfg.micro_batch_size);
        let step_start = Instant::now();
        let mut loss_sum = 0.0;
        let mut tokens = 0;
        let mut interrupted = None;
        for slot in 0..slots {
            let chunk = mine.chunks(cfg.micro_batch_size).nth(slot);
            let batch = chunk.map(|micro| make_batch(micro, cfg, pad_id, device));
            tokens += batch.as_ref().map_or(0, |b| b.tokens);
            shard.reduce_now = shard.mode == ShardMode::Full || slot + 1 == slots;
            loss_sum += micro_step_with(
                model,
                batch.as_ref(),
                1.0 / trained.max(1) as f64,
                cfg.gradient_checkpointing,
                &mut shard,
            )?;
            // One slot's reductions complete before the next slot starts, so `full` never holds
            // more than one micro-step's gradients.
            shard.finish_reductions()?;
            crate::util::pause_for_tests("VICUNA_TEST_STEP_DELAY_MS");
            if let Some(signal) = stop_requested(group)? {
                interrupted = Some(signal);
                break;
            }
        }
        if let Some(signal) = interrupted {
            // The partial step is dropped; the checkpoint holds the state after the last full step.
            shard.discard_gradients()?;
            return stop(signal, &state, &shard, &optimizer, None, last_loss);
        }
        shard.finish_reductions()?;
        let [loss_sum, tokens] = summed(group, [loss_sum, tokens as f64])?;
        let tokens = tokens as usize;
        let grad_norm = shard.clip_grad_norm(cfg.max_grad_norm)?;
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
        optimizer.step(&[shard.master.shallow_clone()], &[shard.grad.shallow_clone()], lr);
        shard.publish()?;
        last_loss = Some(loss);
        state.step += 1;
        state.samples_seen += step_samples.len();
        (state.epoch, state.epoch_step) = (state.step / per_epoch, state.step % per_epoch);
        let seconds = step_start.elapsed().as_secs_f64();
        let eval_due = match cfg.eval_interval {
            Some(n) => state.step % n == 0 || state.step == total_steps,
            None => state.step == total_steps,
        };
        let eval_loss = match !eval.is_empty() && eval_due {
            true => Some(evaluate(model, &eval, cfg, pad_id, device, &mut shard, group)?),
            false => None,
        };
        if let Some(e) = eval_loss.filter(|e| !e.is_finite()) {
            bar.finish_and_clear();
            anyhow::bail!(diverged(state.step, &format!("the eval loss is {e}"), lr, last_good.as_deref()));
        }
        state.eval_loss = eval_loss;
        if let Some(e) = eval_loss {
            state.best_eval_loss = Some(state.best_eval_loss.map_or(e, |b: f64| b.min(e)));
        }
        let peak = largest(group, metrics::peak_memory_bytes())?;
        // Every byte sent since the last record (the previous step's save timer and stop flag
        // included), so each collective is counted in exactly one step.
        let step_comm = comm_bytes() - comm_mark;
        comm_mark = comm_bytes();
        if let Some(log) = log.as_mut() {
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
                peak_memory_bytes: peak,
                comm_bytes: step_comm,
                samples: step_samples.iter().map(|s| s.id.clone()).collect(),
            })?;
        }
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
        // Rank 0's clock decides the time-based saves, so that all ranks save together.
        let minutes_due = cfg.save_interval_minutes.is_some_and(|m| last_save.elapsed().as_secs_f64() >= m * 60.0);
        let minutes_due = shared_value(group, minutes_due as i64)? != 0;
        if state.step % cfg.save_interval == 0 || minutes_due || state.step == total_steps {
            saved_at = Some(save(&state, &shard, &optimizer)?);
            last_good = saved_at.clone();
            last_save = Instant::now();
            if let Some(log) = log.as_ref() {
                log.plot()?;
            }
        }
        if let Some(signal) = stop_requested(group)? {
            let done = saved_at.as_ref().filter(|d| d.ends_with(checkpoint::name_of(state.step)));
            return stop(signal, &state, &shard, &optimizer, done, last_loss);
        }
    }
    bar.finish_and_clear();
    if let Some(log) = log.as_ref() {
        log.plot()?;
    }
    export(&model.config, &shard, main, &exported, export_dtype.kind(), &cfg.model)?;
    if let Some(g) = group {
        g.barrier()?;
        eprintln!(
            "rank {rank}: peak memory {:.1} MB, parameters and optimizer state kept between steps {:.1} MB",
            metrics::peak_memory_bytes() as f64 / 1e6,
            shard.layout.resident_bytes(shard.mode, kind) as f64 / 1e6
        );
    }
    Ok(Outcome {
        steps_done: state.step,
        total_steps,
        last_loss,
        stopped_by: None,
        checkpoint: saved_at,
        exported: main.then_some(exported),
        rank,
    })
}

/// Largest file of an exported model (transformers' default shard size).
const EXPORT_SHARD_BYTES: usize = 5_000_000_000;

/// The export at the end of a run: rank 0 writes the model in Hugging Face layout (tokenizer
/// files from `tokenizer`) from the fp32 masters, converted to `kind`. When the masters are
/// sharded every rank gathers the units in the same order, one at a time, and rank 0 writes them
/// as they come, so no rank ever holds the whole model.
fn export(config: &Config, shard: &Sharded, main: bool, dir: &Path, kind: Kind, tokenizer: &Path) -> Result<()> {
    if !main {
        if shard.layout.owners > 1 {
            for u in 0..shard.units() {
                let _ = shard.master_unit(u)?;
            }
        }
        return Ok(());
    }
    let plan: Vec<(String, Vec<i64>)> =
        shard.layout.names.iter().cloned().zip(shard.layout.shapes.iter().cloned()).collect();
    let mut current: Option<(usize, Tensor)> = None;
    save_streamed(config, dir, kind, EXPORT_SHARD_BYTES, Some(tokenizer), &plan, &mut |i| {
        let u = shard.unit_of_param(i);
        if current.as_ref().map(|(c, _)| *c) != Some(u) {
            current = Some((u, shard.master_unit(u)?));
        }
        let (_, flat) = current.as_ref().expect("set above");
        Ok(shard.param_in(flat, i))
    })
}

/// The format the source checkpoint declares (`torch_dtype`), the default of the export; fp32
/// when it declares none (as `from_pretrained` loads it).
fn source_dtype(config: &Config) -> Dtype {
    config.torch_dtype.as_deref().and_then(Dtype::from_torch_dtype).unwrap_or(Dtype::Fp32)
}

/// This rank's shard as checkpoints save and restore it.
fn shard_state<'a>(shard: &'a Sharded, optimizer: &'a AdamW) -> ShardState<'a> {
    ShardState { layout: &shard.layout, master: &shard.master, m: &optimizer.m[0], v: &optimizer.v[0] }
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

fn make_batch(samples: &[&Sample], cfg: &TrainConfig, pad_id: u32, device: Device) -> Batch {
    if cfg.packing {
        packed_batch(samples, cfg.max_length, pad_id, device)
    } else {
        padded_batch(samples, pad_id, device)
    }
}

/// Mean loss per trained token over `samples` (no gradients): each rank evaluates every
/// world-th sample, one layer gathered at a time, and the sums are added over the ranks.
pub fn evaluate(
    model: &Llama,
    samples: &[Sample],
    cfg: &TrainConfig,
    pad_id: u32,
    device: Device,
    shard: &mut Sharded,
    group: Option<&Group>,
) -> Result<f64> {
    let (rank, world) = group.map_or((0, 1), |g| (g.rank, g.world_size));
    let (mut sum, mut count) = (0.0, 0);
    let mine: Vec<&Sample> = samples.iter().skip(rank).step_by(world).collect();
    let slots = samples.len().div_ceil(world).div_ceil(cfg.micro_batch_size);
    for slot in 0..slots {
        let batch = mine.chunks(cfg.micro_batch_size).nth(slot).map(|micro| make_batch(micro, cfg, pad_id, device));
        sum += eval_loss_with(model, batch.as_ref(), shard)?;
        count += batch.map_or(0, |b| b.trained);
    }
    let [sum, count] = summed(group, [sum, count as f64])?;
    Ok(sum / count.max(1.0))
}
