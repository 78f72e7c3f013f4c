//! Training recipes: a TOML file whose every key is also a command-line flag (`--learning-rate 2e-5`
//! overrides `learning_rate = 1e-5`). One struct is both the file's schema and the flags; it is
//! resolved once, defaults filled in and values checked, into the `TrainConfig` the loop reads.
//! Defaults are FastChat's `train_mem.py` recipe for Vicuna.
use super::schedule::Schedule;
use crate::data::template::TemplateName;
use crate::model::device::{parse_device, Dtype, DtypeChoice, ResolvedDtype};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Recipe keys as written in TOML or on the command line; all optional until resolved.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Model directory (Hugging Face layout) to fine-tune.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data: conversations (ShareGPT JSON/JSONL) or `prep encode` samples.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Chat template for conversations (default vicuna_v1.1).
    #[arg(long, value_enum)]
    pub template: Option<TemplateName>,
    /// Context length: samples are truncated to it (default 2048).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Samples per forward pass (default 2).
    #[arg(long)]
    pub micro_batch_size: Option<usize>,
    /// Micro-batches per optimizer step (or give global_batch_size).
    #[arg(long)]
    pub gradient_accumulation: Option<usize>,
    /// Samples per optimizer step (default 128, FastChat's).
    #[arg(long)]
    pub global_batch_size: Option<usize>,
    /// Peak learning rate (default 2e-5).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Share of steps with linear warmup (default 0.03).
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Decay after warmup: cosine (default), linear, constant.
    #[arg(long, value_enum)]
    pub lr_schedule: Option<Schedule>,
    /// AdamW decoupled weight decay (default 0).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// AdamW beta1 (default 0.9).
    #[arg(long)]
    pub adam_beta1: Option<f64>,
    /// AdamW beta2 (default 0.999).
    #[arg(long)]
    pub adam_beta2: Option<f64>,
    /// AdamW epsilon (default 1e-8).
    #[arg(long)]
    pub adam_epsilon: Option<f64>,
    /// Gradient clipping by total norm (default 1.0; 0 disables).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Passes over the data (default 3).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (overrides epochs).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed of the data order and of new weights (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluation data (same formats as data).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Evaluate every N steps (default: only at the end, when eval_data is given).
    #[arg(long)]
    pub eval_interval: Option<usize>,
    /// Save a checkpoint every N steps (default 500).
    #[arg(long)]
    pub save_interval: Option<usize>,
    /// Also save when this many minutes passed since the last save.
    #[arg(long)]
    pub save_interval_minutes: Option<f64>,
    /// Checkpoints to keep (default 3).
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Output directory: checkpoints, metrics, loss plot, final model.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N (default cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Format of the model's weights and activations: auto (default: bf16 on CUDA devices that
    /// support it and on CPUs with AMX, fp32 otherwise), fp32, bf16 or fp16. Masters, AdamW
    /// moments, gradient accumulation and the loss stay fp32 (see `train::trainer`).
    #[arg(long, value_enum, env = "VICUNA_DTYPE")]
    pub dtype: Option<DtypeChoice>,
    /// Format of the exported model (default: the source checkpoint's `torch_dtype`).
    #[arg(long, value_enum)]
    pub export_dtype: Option<Dtype>,
    /// Recompute each layer in backward instead of storing activations (default true).
    #[arg(long)]
    pub gradient_checkpointing: Option<bool>,
    /// Pack several samples per row (attention stays within each sample; default false).
    #[arg(long)]
    pub packing: Option<bool>,
    /// Group samples of similar length into the same steps (default true).
    #[arg(long)]
    pub group_by_length: Option<bool>,
    /// With several processes: none (DDP), grad-op (ZeRO-2) or full (ZeRO-3); default none.
    #[arg(long, value_enum)]
    pub shard: Option<crate::train::dist::ShardMode>,
    /// Keep the fp32 master weights, gradients and AdamW moments in host memory while the model
    /// runs on the GPU (FSDP's CPU offload, the 13B recipe); default false.
    #[arg(long)]
    pub offload: Option<bool>,
    /// Seconds a rank waits for its peers (rendezvous and every collective) before it gives up
    /// with an error naming the collective; default 600.
    #[arg(long)]
    pub dist_timeout: Option<f64>,
}

/// A checked recipe with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub model: PathBuf,
    pub data: PathBuf,
    pub template: TemplateName,
    pub max_length: usize,
    pub micro_batch_size: usize,
    pub gradient_accumulation: usize,
    pub learning_rate: f64,
    pub warmup_ratio: f64,
    pub lr_schedule: Schedule,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub max_grad_norm: f64,
    pub epochs: usize,
    pub max_steps: Option<usize>,
    pub seed: u64,
    pub eval_data: Option<PathBuf>,
    pub eval_interval: Option<usize>,
    pub save_interval: usize,
    pub save_interval_minutes: Option<f64>,
    pub keep_checkpoints: usize,
    pub output_dir: PathBuf,
    pub device: tch::Device,
    /// The format the model runs in, and why (`auto` decides by the hardware).
    pub dtype: ResolvedDtype,
    /// The exported model's format; `None`: the source checkpoint's.
    pub export_dtype: Option<Dtype>,
    pub gradient_checkpointing: bool,
    pub packing: bool,
    pub group_by_length: bool,
    pub shard: crate::train::dist::ShardMode,
    pub offload: bool,
    pub dist_timeout: std::time::Duration,
}

impl Recipe {
    /// Reads a TOML recipe; unknown keys are refused with their name.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid recipe", path.display()))
    }

    /// This recipe with every key set in `over` replaced.
    pub fn overridden_by(self, over: Recipe) -> Recipe {
        macro_rules! pick {
            ($($f:ident),*) => { Recipe { $($f: over.$f.or(self.$f)),* } };
        }
        pick!(
            model,
            data,
            template,
            max_length,
            micro_batch_size,
            gradient_accumulation,
            global_batch_size,
            learning_rate,
            warmup_ratio,
            lr_schedule,
            weight_decay,
            adam_beta1,
            adam_beta2,
            adam_epsilon,
            max_grad_norm,
            epochs,
            max_steps,
            seed,
            eval_data,
            eval_interval,
            save_interval,
            save_interval_minutes,
            keep_checkpoints,
            output_dir,
            device,
            dtype,
            export_dtype,
            gradient_checkpointing,
            packing,
            group_by_length,
            shard,
            offload,
            dist_timeout
        )
    }

    /// Fills in defaults and checks the values.
    pub fn resolve(self) -> Result<TrainConfig> {
        let micro = self.micro_batch_size.unwrap_or(2);
        if micro == 0 {
            bail!("micro_batch_size must be at least 1");
        }
        let accumulation = match (self.gradient_accumulation, self.global_batch_size) {
            (Some(_), Some(_)) => bail!("give gradient_accumulation or global_batch_size, not both"),
            (Some(a), None) => a,
            (None, Some(g)) if g % micro != 0 => {
                bail!("global_batch_size {g} is not a multiple of micro_batch_size {micro}")
            }
            (None, Some(g)) => g / micro,
            (None, None) => 128usize.div_ceil(micro),
        };
        if accumulation == 0 {
            bail!("gradient_accumulation must be at least 1");
        }
        let template = self.template.unwrap_or(TemplateName::VicunaV11);
        let device = parse_device(self.device.as_deref().unwrap_or("cpu"))?;
        let config = TrainConfig {
            model: self.model.context("model is required (a Hugging Face model directory)")?,
            data: self.data.context("data is required (conversations or prep encode samples)")?,
            template,
            max_length: self.max_length.unwrap_or(2048),
            micro_batch_size: micro,
            gradient_accumulation: accumulation,
            learning_rate: self.learning_rate.unwrap_or(2e-5),
            warmup_ratio: self.warmup_ratio.unwrap_or(0.03),
            lr_schedule: self.lr_schedule.unwrap_or(Schedule::Cosine),
            weight_decay: self.weight_decay.unwrap_or(0.0),
            adam_beta1: self.adam_beta1.unwrap_or(0.9),
            adam_beta2: self.adam_beta2.unwrap_or(0.999),
            adam_epsilon: self.adam_epsilon.unwrap_or(1e-8),
            max_grad_norm: self.max_grad_norm.unwrap_or(1.0),
            epochs: self.epochs.unwrap_or(3),
            max_steps: self.max_steps,
            seed: self.seed.unwrap_or(42),
            eval_data: self.eval_data,
            eval_interval: self.eval_interval,
            save_interval: self.save_interval.unwrap_or(500),
            save_interval_minutes: self.save_interval_minutes,
            keep_checkpoints: self.keep_checkpoints.unwrap_or(3),
            output_dir: self.output_dir.context("output_dir is required")?,
            device,
            dtype: self.dtype.unwrap_or(DtypeChoice::Auto).resolve(device),
            export_dtype: self.export_dtype,
            gradient_checkpointing: self.gradient_checkpointing.unwrap_or(true),
            packing: self.packing.unwrap_or(false),
            group_by_length: self.group_by_length.unwrap_or(true),
            shard: self.shard.unwrap_or_default(),
            offload: self.offload.unwrap_or(false),
            dist_timeout: match self.dist_timeout.unwrap_or(600.0) {
                t if t.is_finite() && t > 0.0 && t <= 86_400.0 => std::time::Duration::from_secs_f64(t),
                t => bail!("dist_timeout = {t} is out of range: it must be a number of seconds in (0, 86400]"),
            },
        };
        config.check()?;
        Ok(config)
    }
}

/// Fails unless `value` is finite and inside `range`, naming the recipe key and the range.
fn check_range(key: &str, value: f64, range: impl std::ops::RangeBounds<f64> + std::fmt::Debug) -> Result<()> {
    if !value.is_finite() || !range.contains(&value) {
        bail!("{key} = {value} is out of range: it must be a finite number in {range:?}");
    }
    Ok(())
}

impl TrainConfig {
    /// Refuses values that cannot train: a learning rate that is not a positive finite number
    /// (it would only produce NaN weights), betas outside [0, 1), and the like. Keys as in the
    /// recipe, so the message matches what the user wrote.
    fn check(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!(
                "learning_rate = {} is not a positive finite number (FastChat's Vicuna recipe uses 2e-5)",
                self.learning_rate
            );
        }
        check_range("warmup_ratio", self.warmup_ratio, 0.0..=1.0)?;
        check_range("weight_decay", self.weight_decay, 0.0..)?;
        check_range("adam_beta1", self.adam_beta1, 0.0..1.0)?;
        check_range("adam_beta2", self.adam_beta2, 0.0..1.0)?;
        check_range("max_grad_norm", self.max_grad_norm, 0.0..)?;
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            bail!("adam_epsilon = {} is not a positive finite number (default 1e-8)", self.adam_epsilon);
        }
        if let Some(m) = self.save_interval_minutes {
            if !(m.is_finite() && m > 0.0) {
                bail!("save_interval_minutes = {m} is not a positive finite number");
            }
        }
        if self.max_length < 2 {
            bail!("max_length = {} is too short: a sample needs at least 2 tokens to train on", self.max_length);
        }
        if self.save_interval == 0 || self.keep_checkpoints == 0 {
            bail!("save_interval and keep_checkpoints must be at least 1");
        }
        // Samples per step must be countable: the sampler cuts epochs into megabatches of them.
        if self.micro_batch_size.checked_mul(self.gradient_accumulation).and_then(|g| g.checked_mul(1 << 16)).is_none()
        {
            bail!(
                "micro_batch_size {} x gradient_accumulation {} is too large to be a batch",
                self.micro_batch_size,
                self.gradient_accumulation
            );
        }
        if self.eval_interval == Some(0) {
            bail!("eval_interval must be at least 1 (leave it out to evaluate at the end only)");
        }
        if self.max_steps == Some(0) || (self.max_steps.is_none() && self.epochs == 0) {
            bail!("nothing to train: max_steps and epochs must be at least 1");
        }
        Ok(())
    }

    /// Samples per optimizer step (one process for now; data parallelism multiplies it).
    pub fn global_batch(&self) -> usize {
        self.micro_batch_size * self.gradient_accumulation
    }

    /// Recipe settings a resumed run must share with the checkpoint: everything that decides which
    /// samples each step sees and how the weights move. The trainer adds what only it can measure
    /// (the model's and the data's identity by content, the total steps, the world size). The
    /// micro-batch size and gradient checkpointing may change: a step trains on the same samples
    /// with the same loss whatever the split.
    pub fn resume_key(&self) -> BTreeMap<String, String> {
        let mut key = BTreeMap::new();
        let mut put = |k: &str, v: String| key.insert(k.to_string(), v);
        put("template", self.template.cli_name());
        put("max_length", self.max_length.to_string());
        put("global_batch_size", self.global_batch().to_string());
        put("seed", self.seed.to_string());
        put("packing", self.packing.to_string());
        put("group_by_length", self.group_by_length.to_string());
        put("learning_rate", self.learning_rate.to_string());
        put("lr_schedule", format!("{:?}", self.lr_schedule).to_lowercase());
        put("warmup_ratio", self.warmup_ratio.to_string());
        put("weight_decay", self.weight_decay.to_string());
        put("adam_beta1", self.adam_beta1.to_string());
        put("adam_beta2", self.adam_beta2.to_string());
        put("adam_epsilon", self.adam_epsilon.to_string());
        put("max_grad_norm", self.max_grad_norm.to_string());
        put("dtype", self.dtype.dtype.name().to_string());
        key
    }
}
