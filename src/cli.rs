//! The command line's arguments (clap derive): every subcommand and flag with its help, value
//! parsers that refuse out-of-range numbers naming the flag, and the conversions from flags to the
//! library's checked option structs. `prep`'s stages map onto pipeline plans here too. `main.rs`
//! dispatches; the work is in the library.
use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vicuna::data::clean::CleanOptions;
use vicuna::data::conversation::Style;
use vicuna::data::decontaminate::{self, DecontaminateOptions, QuestionIndex};
use vicuna::data::filter::{parse_lang, FilterOptions};
use vicuna::data::mix::{self, MixOptions, Weighted};
use vicuna::data::neardup::{self, NearOptions, Removed};
use vicuna::data::ops::{self, Amount};
use vicuna::data::pipeline::{self, open_all, Plan, Read, TokenStages};
use vicuna::data::sources::{self, Preference, Source, SourceOptions};
use vicuna::data::split::{LongPair, SplitOptions};
use vicuna::data::stats;
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
use vicuna::infer::engine::Engine;
use vicuna::infer::generate::Sampling;
use vicuna::model::config::Preset;
use vicuna::model::device::{parse_device, Dtype, DtypeChoice};
use vicuna::model::gguf_export::OutType;

/// A clap value parser for a finite number within `min` and `max`. Every float flag goes through
/// it, so NaN, infinities and out-of-range values are refused when the command line is parsed,
/// naming the flag and the range, before any work starts (`eval judge --timeout -1`, `NaN` or
/// `1e30` used to panic in `Duration::from_secs_f64`; a NaN temperature reached the sampler).
pub fn finite(
    min: Bound<f64>,
    max: Bound<f64>,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text: &str| match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && (min, max).contains(&value) => Ok(value),
        _ => {
            let mut range = "must be a finite number".to_string();
            match min {
                Included(v) => range.push_str(&format!(" at least {v}")),
                Excluded(v) => range.push_str(&format!(" greater than {v}")),
                Unbounded => {}
            }
            let and = if matches!(min, Unbounded) { "" } else { " and" };
            match max {
                Included(v) => range.push_str(&format!("{and} at most {v}")),
                Excluded(v) => range.push_str(&format!("{and} less than {v}")),
                Unbounded => {}
            }
            Err(range)
        }
    }
}

/// A clap value parser for a `usize` count in `range` (the message gives the range), so a count
/// of 0 (or one too large to mean anything) is refused naming the flag instead of being changed
/// silently, dividing by zero or exhausting memory.
pub fn count(range: impl RangeBounds<u64>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(range)
}

/// The longest `eval judge --timeout`, in seconds: a day. More is a typo, and past about 1e19 s a
/// `Duration` cannot hold it.
pub const MAX_TIMEOUT_S: f64 = 86_400.0;

/// Judge requests in flight at most (each is a thread).
pub const MAX_CONCURRENCY: u64 = 1024;

/// Retries per judge request at most; with the 30 s backoff cap, 100 is about an hour per request.
pub const MAX_RETRIES: i64 = 100;

/// The smallest `tokenizer train --vocab-size`: every byte plus the special tokens. The largest
/// (2^20) is far above any real model's and keeps the trainer's tables in memory.
pub const MIN_VOCAB: u64 = 256 + vicuna::data::tokenizer::bpe_train::SPECIAL_TOKENS.len() as u64;

/// `model init --max-shard-size`: a size with an optional unit, more than 0 bytes.
pub fn shard_size(text: &str) -> Result<usize, String> {
    match vicuna::model::weights::parse_size(text) {
        Ok(0) => Err("must be more than 0 bytes (e.g. 5GB, 500MB)".to_string()),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The Vicuna recipe in one binary: clean ShareGPT dumps, fine-tune LLaMA models, evaluate them.
#[derive(Parser)]
#[command(name = "vicuna", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Prepare training data: raw ShareGPT dumps to clean conversations (or run one stage).
    Prep(Prep),
    /// Tokenizer tools.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Create or inspect models in Hugging Face layout.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Generate text from a model (KV cache; greedy or sampled; several prompts as one batch).
    Generate(GenerateArgs),
    /// Chat with a model in the terminal, answers streamed token by token.
    Chat(ChatArgs),
    /// Fine-tune a model on conversations (recipe keys from --config, overridden by flags).
    Train(TrainArgs),
    /// Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, streaming).
    Serve(ServeArgs),
    /// Evaluate: answer question sets, judge answers with an LLM, report.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Show the libtorch runtime: version, CPU threads, CUDA devices.
    Env {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Write a randomly initialised model (HF layout: config.json, safetensors, tokenizer files).
    Init {
        /// Model size.
        #[arg(long, value_enum)]
        preset: Preset,
        /// Tokenizer (tokenizer.json or a directory): sets the vocabulary and is copied along.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: i64,
        /// Weight format on disk.
        #[arg(long, value_enum, default_value_t = Dtype::Fp32)]
        dtype: Dtype,
        /// Largest safetensors shard (e.g. 5GB, 500MB).
        #[arg(long, default_value = "5GB", value_parser = shard_size)]
        max_shard_size: usize,
    },
    /// Convert a llama.cpp GGUF file (llama architecture) into a Hugging Face directory with its
    /// tokenizer: weights dequantized exactly, Q/K rows back in HF order, config from the metadata.
    Import {
        /// The .gguf file.
        input: PathBuf,
        /// Output directory (must not exist, or be empty); written atomically.
        #[arg(short, long)]
        output: PathBuf,
        /// Weight format on disk.
        #[arg(long, value_enum, default_value_t = Dtype::Fp32)]
        dtype: Dtype,
        /// Largest safetensors shard (e.g. 5GB, 500MB).
        #[arg(long, default_value = "5GB", value_parser = shard_size)]
        max_shard_size: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a model as one GGUF file for llama.cpp (llama metadata, tokenizer, chat template).
    Export {
        /// Model directory (config.json, safetensors, tokenizer.json).
        dir: PathBuf,
        /// Output .gguf file.
        #[arg(short, long)]
        output: PathBuf,
        /// Type of the weight matrices (norms stay F32; q8_0 writes F16 where rows are not a multiple of 32).
        #[arg(long, value_enum, default_value_t = OutType::F16)]
        outtype: OutType,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a model's config, parameter count and tensors.
    Inspect {
        /// Model directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delta weights, as Vicuna was released: apply a delta to its base, or make one.
    #[command(subcommand)]
    Delta(DeltaCommand),
}

#[derive(Subcommand)]
pub enum DeltaCommand {
    /// Write base + delta (the delta's config and tokenizer), streaming tensor by tensor.
    Apply {
        /// The base model (e.g. LLaMA in Hugging Face layout).
        #[arg(long)]
        base: PathBuf,
        /// The delta weights (e.g. a Vicuna delta), made against that base.
        #[arg(long)]
        delta: PathBuf,
        /// Output directory for the target model (new, or empty).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        write: DeltaWrite,
    },
    /// Write target - base (the target's config and tokenizer), streaming tensor by tensor.
    Make {
        /// The base model the delta is taken against.
        #[arg(long)]
        base: PathBuf,
        /// The fine-tuned model.
        #[arg(long)]
        target: PathBuf,
        /// Output directory for the delta (new, or empty).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        write: DeltaWrite,
    },
}

/// How `model delta` computes and writes.
#[derive(Args)]
pub struct DeltaWrite {
    /// Compute and save in this dtype (FastChat uses fp16); default: the inputs' dtype.
    #[arg(long, value_enum)]
    pub dtype: Option<Dtype>,
    /// Largest safetensors shard of the output (e.g. 5GB, 500MB): the peak memory is about one.
    #[arg(long, default_value = "5GB", value_parser = shard_size)]
    pub max_shard_size: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl DeltaWrite {
    /// The library's options.
    pub fn options(&self) -> vicuna::model::delta::DeltaOptions {
        vicuna::model::delta::DeltaOptions { kind: self.dtype.map(Dtype::kind), max_shard_bytes: self.max_shard_size }
    }
}

#[derive(Args)]
pub struct SamplingArgs {
    /// New tokens at most (at least 1).
    #[arg(long, default_value_t = 256, value_parser = count(1..))]
    pub max_new_tokens: usize,
    /// Sampling temperature, 0 to 2 (`Sampling::check`'s range, as OpenAI's); 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = finite(Included(0.0), Included(2.0)))]
    pub temperature: f64,
    /// Nucleus sampling threshold, more than 0 and at most 1 (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = finite(Excluded(0.0), Included(1.0)))]
    pub top_p: f64,
    /// Sample among the k most likely tokens only (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Penalty on tokens already present, more than 0 (1 = off; 1.1 to 1.3 curbs loops).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = finite(Excluded(0.0), Unbounded))]
    pub repetition_penalty: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct ModelArgs {
    /// Model directory (config.json, safetensors, tokenizer files).
    #[arg(long)]
    pub model: PathBuf,
    /// Chat template; without one, the prompt is raw text.
    #[arg(long, value_enum)]
    pub template: Option<TemplateName>,
    /// System prompt (replaces the template's default).
    #[arg(long)]
    pub system: Option<String>,
    /// cpu, cuda or cuda:N (checked against the devices this machine has).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: tch::Device,
    /// Compute format: auto (bf16 on CUDA devices that support it and on CPUs with AMX, fp32
    /// otherwise), fp32, bf16 or fp16.
    #[arg(long, value_enum, default_value_t = DtypeChoice::Auto, env = "VICUNA_DTYPE")]
    pub dtype: DtypeChoice,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt; repeat the flag for a batch.
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object per prompt (prompt ids, generated ids, text) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Answer a question set (Vicuna-80 or MT-bench JSONL) in FastChat's answer format.
    Answer {
        #[command(flatten)]
        model: ModelArgs,
        /// Question file.
        #[arg(long)]
        questions: PathBuf,
        /// Answer file (JSONL); questions already answered there are skipped.
        #[arg(short, long)]
        output: PathBuf,
        /// model_id written into the answers (default: the model directory's name).
        #[arg(long)]
        model_id: Option<String>,
        /// Questions generated together (at least 1).
        #[arg(long, default_value_t = 16, value_parser = count(1..))]
        batch_size: usize,
        /// New tokens per answer at most (at least 1).
        #[arg(long, default_value_t = 1024, value_parser = count(1..))]
        max_new_tokens: usize,
        /// One temperature for all questions, 0 to 2 (default: MT-bench's per-category table).
        #[arg(long, allow_negative_numbers = true, value_parser = finite(Included(0.0), Included(2.0)))]
        temperature: Option<f64>,
        /// Sampler seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Import another model's answers (FastChat's llm_judge or older Vicuna-80 format).
    Import {
        /// Answer file to import.
        input: PathBuf,
        /// model_id to give them (default: as in the file, else the file name).
        #[arg(long)]
        model_id: Option<String>,
        /// Output answer file (JSONL, in our format), written whole.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Judge answers with an LLM through an OpenAI-compatible endpoint (appends; reruns skip what is done).
    Judge {
        /// Question file.
        #[arg(long)]
        questions: PathBuf,
        /// Answer files, one or more models each.
        #[arg(long, required = true, num_args = 1..)]
        answers: Vec<PathBuf>,
        /// How to judge: pairwise, single, pairwise-baseline or vicuna80 (two scores per pair, the Vicuna paper's review).
        #[arg(long, value_enum)]
        mode: vicuna::eval::judgment::Mode,
        /// Judge model name sent to the endpoint.
        #[arg(long)]
        judge_model: String,
        /// Judgment file (JSONL, appended).
        #[arg(short, long)]
        output: PathBuf,
        /// Endpoint base URL up to /v1.
        #[arg(long, default_value = "https://api.openai.com/v1")]
        api_base: String,
        /// Environment variable holding the API key (never printed); it must be set, unless the
        /// endpoint needs no key: then pass --api-key-env ''.
        #[arg(long, default_value = "OPENAI_API_KEY")]
        api_key_env: String,
        /// The baseline model (pairwise-baseline; optional for vicuna80).
        #[arg(long)]
        baseline: Option<String>,
        /// Judge prompts in FastChat's judge_prompts.jsonl format (added to the built-in ones).
        #[arg(long)]
        judge_prompts: Option<PathBuf>,
        /// Reference answers for math, reasoning and coding (an answer file).
        #[arg(long)]
        reference_answers: Option<PathBuf>,
        /// Requests in flight at most (1 to 1024).
        #[arg(long, default_value_t = 4, value_parser = count(1..=MAX_CONCURRENCY))]
        concurrency: usize,
        /// Seconds per request before it is retried (more than 0, at most a day).
        #[arg(long, default_value_t = 120.0, allow_negative_numbers = true, value_parser = finite(Excluded(0.0), Included(MAX_TIMEOUT_S)))]
        timeout: f64,
        /// Retries per request on 429, 5xx, timeouts and dropped connections (0 to 100).
        #[arg(long, default_value_t = 6, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=MAX_RETRIES))]
        max_retries: u32,
        /// Judge reply length at most, in tokens (at least 1).
        #[arg(long, default_value_t = 2048, value_parser = count(1..))]
        max_tokens: usize,
        /// Print the run summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report judgments: totals like the Vicuna paper's Table 2, win rates, MT-bench scores, per category.
    Report {
        /// Judgment file.
        judgments: PathBuf,
        /// Model the others are measured against.
        #[arg(long)]
        baseline: Option<String>,
        /// Only this judge's judgments.
        #[arg(long)]
        judge: Option<String>,
        /// Question file, for categories missing from the judgments.
        #[arg(long)]
        questions: Option<PathBuf>,
        /// Also write the per-category chart (SVG) here.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Print JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Model name reported to clients (default: the model directory's name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Name of an environment variable holding the bearer key clients must send.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Requests that may wait (at least 1); beyond it the server answers 503.
    #[arg(long, default_value_t = 64, value_parser = count(1..))]
    pub queue: usize,
    /// Requests generated together at most (at least 1).
    #[arg(long, default_value_t = 16, value_parser = count(1..))]
    pub max_batch: usize,
    /// max_tokens when a request gives none (at least 1).
    #[arg(long, default_value_t = 512, value_parser = count(1..))]
    pub default_max_tokens: usize,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Recipe (TOML); every key can also be given as a flag, which wins.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint: `auto` (the newest in output_dir that verifies) or a path.
    #[arg(long, value_name = "auto|PATH")]
    pub resume: Option<vicuna::train::trainer::Resume>,
    /// Accept a setting that differs from the checkpoint's when resuming (e.g. learning_rate);
    /// repeat for several. Each accepted change is written to metrics.jsonl.
    #[arg(long, value_name = "KEY")]
    pub allow_change: Vec<String>,
    #[command(flatten)]
    pub recipe: vicuna::train::recipe::Recipe,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Start this many worker processes on this node, as torchrun does (one per GPU; on CPU,
    /// processes that share the cores). Without it, a run reads torchrun's variables if set.
    #[arg(long, value_parser = count(1..=1024))]
    pub nproc_per_node: Option<usize>,
    /// Nodes in the job (with --nproc-per-node).
    #[arg(long, default_value_t = 1, value_parser = count(1..=4096), requires = "nproc_per_node")]
    pub nnodes: usize,
    /// This node's index, 0 to nnodes-1 (with --nproc-per-node).
    #[arg(long, default_value_t = 0, requires = "nproc_per_node")]
    pub node_rank: usize,
    /// Address of node 0, where rank 0 serves the rendezvous (with --nproc-per-node).
    #[arg(long, default_value = "127.0.0.1", requires = "nproc_per_node")]
    pub master_addr: String,
    /// Port of the rendezvous on node 0 (with --nproc-per-node).
    #[arg(long, default_value_t = 29500, requires = "nproc_per_node")]
    pub master_port: u16,
}

impl TrainArgs {
    /// The launcher's settings, when `--nproc-per-node` asks for it.
    pub fn launch(&self) -> Option<vicuna::train::launch::Launch> {
        Some(vicuna::train::launch::Launch {
            nproc_per_node: self.nproc_per_node?,
            nnodes: self.nnodes,
            node_rank: self.node_rank,
            master_addr: self.master_addr.clone(),
            master_port: self.master_port,
        })
    }
}

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a small byte-level BPE tokenizer on conversations (for tiny test and demo models).
    Train {
        /// Conversation files (any format `prep convert` reads).
        inputs: Vec<PathBuf>,
        /// Output directory (tokenizer.json, tokenizer_config.json).
        #[arg(short, long)]
        output: PathBuf,
        /// Vocabulary size, special tokens included (264, every byte and the special tokens, to 2^20).
        #[arg(long, default_value_t = 2048, value_parser = count(MIN_VOCAB..=1 << 20))]
        vocab_size: usize,
    },
}

/// `vicuna prep RAW... -o OUT` runs clean, filter and dedup (and split, with `--tokenizer`) in one
/// pass; each stage is also a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Prep {
    #[command(subcommand)]
    pub stage: Option<Stage>,
    /// Raw ShareGPT dumps (.json array or .jsonl).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file; .json writes a JSON array, .jsonl JSON Lines.
    #[arg(short, long, required = true)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub clean: CleanArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Keep duplicates (by id and by first user and assistant turn) instead of dropping them.
    #[arg(long)]
    pub no_dedup: bool,
    #[command(flatten)]
    pub near: NearArgs,
    /// With `--tokenizer`, conversations are also split to fit `--max-length` tokens.
    #[command(flatten)]
    pub split: SplitArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Subcommand)]
pub enum Stage {
    /// HTML to markdown, human-turn repair, service errors, blocked words, roles and structure.
    Clean {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        clean: CleanArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop conversations by language, repetition, broken lists or turn count.
    Filter {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop duplicates by id and by (first user turn, first assistant turn), and with `--near`
    /// near-duplicate user queries (MinHash LSH); the first one wins.
    Dedup {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        near: NearArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop conversations whose user turns resemble benchmark questions (n-gram overlap, sentence BLEU).
    Decontaminate {
        #[command(flatten)]
        files: Files,
        /// Question files: FastChat's Vicuna-80 or MT-bench question.jsonl, or JSONL of {"text"}.
        #[arg(long, required = true, num_args = 1..)]
        against: Vec<PathBuf>,
        /// Sentence BLEU (NLTK's, smoothing method 1) at or above which a turn matches a question (0 to 1).
        #[arg(long, default_value_t = 0.2, value_parser = finite(Excluded(0.0), Included(1.0)))]
        bleu: f64,
        /// Words per n-gram of the overlap test.
        #[arg(long, default_value_t = 8, value_parser = count(1..=64))]
        ngram: usize,
        /// Share of a question's n-grams found in a turn at or above which it matches (0 to 1).
        #[arg(long, default_value_t = 0.5, value_parser = finite(Excluded(0.0), Included(1.0)))]
        overlap: f64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print statistics: conversations, turns, characters, length histogram, languages (tokens with --tokenizer).
    Stats {
        /// Input files (.json array or .jsonl), read in order.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// With `--tokenizer`: token counts as rendered by `--template`.
        #[command(flatten)]
        tokens: TokenArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Concatenate files into one, in the order given.
    Merge {
        #[command(flatten)]
        files: Files,
        /// Also drop duplicates across the inputs.
        #[arg(long)]
        dedup: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Write a seeded random subset, in input order.
    Sample {
        #[command(flatten)]
        files: Files,
        /// Number of conversations to keep.
        #[arg(long, conflicts_with = "fraction", required_unless_present = "fraction")]
        count: Option<usize>,
        /// Share of conversations to keep (0 to 1).
        #[arg(long, allow_negative_numbers = true, value_parser = finite(Included(0.0), Included(1.0)))]
        fraction: Option<f64>,
        /// Seed of the choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Split into a train and a test file (seeded, each in input order).
    SplitTrainTest {
        /// Input files (.json array or .jsonl), read in order.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Train output file.
        #[arg(long)]
        train: PathBuf,
        /// Test output file.
        #[arg(long)]
        test: PathBuf,
        /// Share of conversations for the test file (0 to 1).
        #[arg(long, default_value_t = 0.01, conflicts_with = "test_count", allow_negative_numbers = true, value_parser = finite(Included(0.0), Included(1.0)))]
        test_ratio: f64,
        /// Exact number of conversations for the test file.
        #[arg(long)]
        test_count: Option<usize>,
        /// Seed of the split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Split long conversations at turn-pair boundaries so each segment fits `--max-length` tokens.
    Split {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        split: SplitArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Tokenize with a chat template: one {"id", "input_ids", "labels"} per sample (labels -100 where masked).
    Encode {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        tokens: SplitArgs,
        /// Split long conversations first instead of truncating them.
        #[arg(long)]
        split: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print conversations as the trainer sees them, trained tokens highlighted.
    Inspect {
        /// Input file (.json array or .jsonl).
        input: PathBuf,
        #[command(flatten)]
        tokens: TokenArgs,
        /// Which conversation (position in the file); several allowed.
        #[arg(long, default_values_t = [0])]
        index: Vec<usize>,
        /// Highlight with colour (auto: when stdout is a terminal).
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Convert ShareGPT, OpenAI messages or Alpaca records (or a dataset's format, --from) to ShareGPT or OpenAI records.
    Convert {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Mix conversation files by weight (above 1 repeats a source, below 1 samples it), shuffled, seeded.
    Mix {
        /// Sources as FILE=WEIGHT (a weight of 2 repeats the file twice, 0.5 takes half of it).
        #[arg(required = true)]
        sources: Vec<Weighted>,
        /// Output file; .json writes a JSON array, .jsonl JSON Lines.
        #[arg(short, long)]
        output: PathBuf,
        /// Seed of the sampling and the shuffle.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Scale the mix to exactly this many conversations, keeping the weighted proportions.
        #[arg(long, value_parser = count(1..))]
        total: Option<usize>,
        /// With `--tokenizer`: each source's share in tokens too.
        #[command(flatten)]
        tokens: TokenArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// `prep convert --from`: which dataset's format, and what to keep of preference records.
#[derive(Args, Clone)]
pub struct SourceArgs {
    /// Read records in this dataset's format (without it: ShareGPT, OpenAI messages or Alpaca, detected).
    #[arg(long, value_enum)]
    pub from: Option<Source>,
    /// Preference sources: keep the preferred answer only, or both with their markers as system prompts.
    #[arg(long, value_enum, default_value_t = Preference::KeepPreferred, requires = "from")]
    pub preference: Preference,
    /// System prompt of the preferred answer with `--preference both-conditioned`.
    #[arg(long, default_value = sources::POSITIVE_MARKER, requires = "from")]
    pub positive_marker: String,
    /// System prompt of the other answer with `--preference both-conditioned`.
    #[arg(long, default_value = sources::NEGATIVE_MARKER, requires = "from")]
    pub negative_marker: String,
}

impl SourceArgs {
    /// How records are read: detected without `--from`.
    pub fn read(&self) -> Read {
        match self.from {
            None => Read::AnyShape,
            Some(source) => Read::Source(SourceOptions {
                source,
                preference: self.preference,
                positive_marker: self.positive_marker.clone(),
                negative_marker: self.negative_marker.clone(),
            }),
        }
    }
}

/// Near-duplicate dedup (`--near`): MinHash LSH over word shingles of the user turns.
#[derive(Args, Clone)]
pub struct NearArgs {
    /// Also drop conversations whose user turns nearly copy an earlier one's (MinHash LSH over word shingles).
    #[arg(long)]
    pub near: bool,
    /// Jaccard similarity of the shingle sets at which conversations count as near-duplicates (0 to 1).
    #[arg(long, default_value_t = 0.5, requires = "near", value_parser = finite(Excluded(0.0), Included(1.0)))]
    pub near_threshold: f64,
    /// Words per shingle.
    #[arg(long, default_value_t = 2, requires = "near", value_parser = count(1..=64))]
    pub shingle: usize,
    /// MinHash permutations (hash functions) per signature.
    #[arg(long, default_value_t = 128, requires = "near", value_parser = count(1..=1024))]
    pub num_perm: usize,
    /// LSH bands (with --rows; default: datasketch's optimum for the threshold).
    #[arg(long, requires_all = ["near", "rows"], value_parser = count(1..))]
    pub bands: Option<usize>,
    /// Rows (signature values) per LSH band (with --bands).
    #[arg(long, requires_all = ["near", "bands"], value_parser = count(1..))]
    pub rows: Option<usize>,
    /// Seed of the MinHash functions (same seed, same result on every machine).
    #[arg(long, default_value_t = 1, requires = "near")]
    pub near_seed: u64,
    /// Also write the clusters as JSON Lines: {"kept": {"id", "record"}, "removed": [...]}.
    #[arg(long, requires = "near")]
    pub clusters: Option<PathBuf>,
}

impl NearArgs {
    /// Writes `--clusters` when asked.
    pub fn write_clusters(&self, removed: &Mutex<Vec<Removed>>) -> Result<()> {
        if let Some(path) = &self.clusters {
            neardup::write_clusters(path, &removed.lock().unwrap_or_else(|e| e.into_inner()))?;
        }
        Ok(())
    }

    /// The checked options, or `None` without `--near`.
    pub fn options(&self) -> Result<Option<NearOptions>> {
        let bands_rows = self.bands.zip(self.rows);
        self.near
            .then(|| NearOptions::new(self.near_threshold, self.shingle, self.num_perm, bands_rows, self.near_seed))
            .transpose()
    }
}

/// The input files and the output file of a `prep` stage.
#[derive(Args, Clone)]
pub struct Files {
    /// Input files (.json array or .jsonl), read in order.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file; .json writes a JSON array, .jsonl JSON Lines.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Args, Clone)]
pub struct SplitArgs {
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// What to do with a single turn pair longer than `--max-length` when splitting.
    #[arg(long, value_enum, default_value_t = LongPair::Truncate)]
    pub long_pair: LongPair,
}

impl SplitArgs {
    pub fn options(&self) -> SplitOptions {
        SplitOptions { max_len: self.tokens.max_length, long_pair: self.long_pair }
    }
}

#[derive(Args, Clone)]
pub struct TokenArgs {
    /// Tokenizer: a tokenizer.json, or a model directory with tokenizer.json (and tokenizer_config.json).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Chat template.
    #[arg(long, value_enum, default_value_t = TemplateName::VicunaV11)]
    pub template: TemplateName,
    /// Maximum tokens per sample (the training context; at least 1).
    #[arg(long, default_value_t = 2048, value_parser = count(1..))]
    pub max_length: usize,
    /// Override the BOS token (its text in the vocabulary).
    #[arg(long)]
    pub bos_token: Option<String>,
    /// Override the EOS token (its text in the vocabulary).
    #[arg(long)]
    pub eos_token: Option<String>,
    /// Override the padding token (its text in the vocabulary).
    #[arg(long)]
    pub pad_token: Option<String>,
}

/// When to colour terminal output.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Args, Clone)]
pub struct CleanArgs {
    /// Words that drop a conversation when any turn contains them (case-insensitive, comma-separated; empty for none).
    #[arg(long, value_delimiter = ',', default_value = "openai,chatgpt")]
    pub blocked_words: Vec<String>,
}

#[derive(Args, Clone)]
pub struct FilterArgs {
    /// Keep only conversations in these languages (ISO 639-1 like `en`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub keep_lang: Vec<String>,
    /// Drop conversations in these languages (ISO 639-1 like `ko`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip_lang: Vec<String>,
    /// Drop conversations with a run of 9 identical digits.
    #[arg(long)]
    pub reduce_rep: bool,
    /// Drop conversations whose numbered markdown list restarts at `1.`.
    #[arg(long)]
    pub drop_restarted_lists: bool,
    /// Drop conversations with fewer turns (user and assistant messages).
    #[arg(long)]
    pub min_turns: Option<usize>,
    /// Drop conversations with more turns (user and assistant messages).
    #[arg(long)]
    pub max_turns: Option<usize>,
}

#[derive(Args, Clone)]
pub struct OutputArgs {
    /// Record shape of the output.
    #[arg(long, value_enum, default_value_t = Style::Sharegpt)]
    pub style: Style,
    /// Stop at the first malformed record instead of counting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl SamplingArgs {
    /// The settings, range-checked (`Sampling::check`); the error names the flag.
    pub fn sampling(&self) -> Result<Sampling> {
        let sampling = Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            max_new_tokens: self.max_new_tokens,
            seed: self.seed,
        };
        sampling.check().map_err(|e| anyhow::anyhow!("--{} {}", e.field.replace('_', "-"), e.reason))?;
        Ok(sampling)
    }
}

impl ModelArgs {
    /// Loads the model directory with its tokenizer and template.
    pub fn engine(&self) -> Result<Engine> {
        let dtype = self.dtype.resolve(self.device);
        eprintln!("{dtype}");
        Engine::load(&self.model, self.template, self.device, dtype.dtype.kind())
    }
}

impl TokenArgs {
    /// Loads the tokenizer and binds the template; `None` without `--tokenizer`.
    pub fn load(&self) -> Result<Option<(Tokenizer, Template)>> {
        let Some(path) = &self.tokenizer else { return Ok(None) };
        let overrides =
            SpecialOverrides { bos: self.bos_token.clone(), eos: self.eos_token.clone(), pad: self.pad_token.clone() };
        let tokenizer = Tokenizer::load(path, &overrides)?;
        let template = Template::new(self.template, &tokenizer)?;
        Ok(Some((tokenizer, template)))
    }

    /// Like `load`, for commands that cannot run without a tokenizer.
    pub fn require(&self, command: &str) -> Result<(Tokenizer, Template)> {
        self.load()?
            .with_context(|| format!("prep {command} needs --tokenizer (a tokenizer.json or a model directory)"))
    }
}

impl CleanArgs {
    pub fn options(&self) -> CleanOptions {
        let blocked_words =
            self.blocked_words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
        CleanOptions { blocked_words }
    }
}

impl FilterArgs {
    pub fn options(&self) -> Result<FilterOptions> {
        let langs = |codes: &[String]| codes.iter().map(|c| parse_lang(c)).collect::<Result<Vec<_>>>();
        Ok(FilterOptions {
            keep_lang: langs(&self.keep_lang)?,
            skip_lang: langs(&self.skip_lang)?,
            reduce_rep: self.reduce_rep,
            wrong_list_format: self.drop_restarted_lists,
            min_turns: self.min_turns,
            max_turns: self.max_turns,
        })
    }
}

impl OutputArgs {
    pub fn plan<'a>(&self, command: &'a str, read: Read) -> Plan<'a> {
        Plan { style: self.style, strict: self.strict, ..Plan::new(command, read) }
    }
}

/// The files a prep command reads and the ones it writes (with their flags), so that an output
/// that would replace an input, or another output, is refused before anything is written.
fn prep_files(prep: &Prep) -> (Vec<PathBuf>, Vec<(&'static str, &Path)>) {
    fn with_report<'a>(
        mut outputs: Vec<(&'static str, &'a Path)>,
        out: &'a OutputArgs,
    ) -> Vec<(&'static str, &'a Path)> {
        outputs.extend(out.report.as_deref().map(|r| ("--report", r)));
        outputs
    }
    /// The data files and, when given, the tokenizer (a file, or a directory's tokenizer.json).
    fn reads(inputs: &[PathBuf], tokens: Option<&TokenArgs>) -> Vec<PathBuf> {
        let tokenizer = tokens.and_then(|t| t.tokenizer.as_ref());
        let tokenizer = tokenizer.map(|t| if t.is_dir() { t.join("tokenizer.json") } else { t.clone() });
        inputs.iter().cloned().chain(tokenizer).collect()
    }
    let Some(stage) = &prep.stage else {
        let clusters = prep.near.clusters.as_deref().map(|c| ("--clusters", c));
        let outputs = prep.output.iter().map(|o| ("--output", o.as_path())).chain(clusters).collect();
        return (reads(&prep.inputs, Some(&prep.split.tokens)), with_report(outputs, &prep.out));
    };
    match stage {
        Stage::Dedup { files, near, out } => {
            let clusters = near.clusters.as_deref().map(|c| ("--clusters", c));
            (
                reads(&files.inputs, None),
                with_report([("--output", files.output.as_path())].into_iter().chain(clusters).collect(), out),
            )
        }
        Stage::Split { files, split, out } => {
            (reads(&files.inputs, Some(&split.tokens)), with_report(vec![("--output", &files.output)], out))
        }
        Stage::Encode { files, tokens, out, .. } => {
            (reads(&files.inputs, Some(&tokens.tokens)), with_report(vec![("--output", &files.output)], out))
        }
        Stage::Clean { files, out, .. }
        | Stage::Filter { files, out, .. }
        | Stage::Merge { files, out, .. }
        | Stage::Sample { files, out, .. }
        | Stage::Convert { files, out, .. } => {
            (reads(&files.inputs, None), with_report(vec![("--output", &files.output)], out))
        }
        Stage::SplitTrainTest { inputs, train, test, out, .. } => {
            (reads(inputs, None), with_report(vec![("--train", train), ("--test", test)], out))
        }
        Stage::Mix { sources, output, tokens, out, .. } => {
            let inputs: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
            (reads(&inputs, Some(tokens)), with_report(vec![("--output", output)], out))
        }
        Stage::Stats { inputs, .. } => (reads(inputs, None), Vec::new()),
        Stage::Decontaminate { files, against, out, .. } => {
            (files.inputs.iter().chain(against).cloned().collect(), with_report(vec![("--output", &files.output)], out))
        }
        Stage::Inspect { input, .. } => (vec![input.clone()], Vec::new()),
    }
}

/// Runs a `prep` command: its stages as pipeline plans. Returns what goes to stdout (the reports,
/// as text or JSON; statistics; inspected samples); `--report` is written here.
pub fn run_prep(prep: Prep) -> Result<String> {
    let (inputs, outputs) = prep_files(&prep);
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    vicuna::util::atomic::ensure_distinct(&inputs, &outputs)?;
    let Some(stage) = prep.stage else {
        let output = prep.output.context("missing --output")?;
        if prep.near.near && prep.no_dedup {
            bail!("--near drops near-duplicates, --no-dedup keeps duplicates: choose one");
        }
        let near_removed = Mutex::new(Vec::new());
        let loaded = prep.split.tokens.load()?;
        let split = prep.split.options();
        let plan = Plan {
            filter: prep.filter.options()?,
            dedup: !prep.no_dedup,
            near: prep.near.options()?,
            near_removed: prep.near.clusters.as_ref().map(|_| &near_removed),
            tokens: loaded.as_ref().map(|(tokenizer, template)| TokenStages {
                tokenizer,
                template,
                split: Some(split),
                encode: None,
            }),
            ..prep.out.plan("prep", Read::Clean(prep.clean.options()))
        };
        let report = pipeline::run(&plan, &prep.inputs, &output)?;
        prep.near.write_clusters(&near_removed)?;
        return render(&prep.out, &[report]);
    };
    match stage {
        Stage::Clean { files, clean, out } => {
            let plan = out.plan("clean", Read::Clean(clean.options()));
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Filter { files, filter, out } => {
            let plan = Plan { filter: filter.options()?, ..out.plan("filter", Read::Conversations) };
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Dedup { files, near, out } => {
            let near_removed = Mutex::new(Vec::new());
            let plan = Plan {
                dedup: true,
                near: near.options()?,
                near_removed: near.clusters.as_ref().map(|_| &near_removed),
                ..out.plan("dedup", Read::Conversations)
            };
            let report = pipeline::run(&plan, &files.inputs, &files.output)?;
            near.write_clusters(&near_removed)?;
            render(&out, &[report])
        }
        Stage::Merge { files, dedup, out } => {
            let plan = Plan { dedup, ..out.plan("merge", Read::Conversations) };
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Split { files, split, out } => {
            let (tokenizer, template) = split.tokens.require("split")?;
            let split = split.options();
            let stages = TokenStages { tokenizer: &tokenizer, template: &template, split: Some(split), encode: None };
            let plan = Plan { tokens: Some(stages), ..out.plan("split", Read::Conversations) };
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Encode { files, tokens, split, out } => {
            let (tokenizer, template) = tokens.tokens.require("encode")?;
            let stages = TokenStages {
                tokenizer: &tokenizer,
                template: &template,
                split: split.then(|| tokens.options()),
                encode: Some(tokens.tokens.max_length),
            };
            let plan = Plan { tokens: Some(stages), ..out.plan("encode", Read::Conversations) };
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Inspect { input, tokens, index, color } => {
            let (tokenizer, template) = tokens.require("inspect")?;
            let color = match color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::IsTerminal::is_terminal(&std::io::stdout()),
            };
            vicuna::data::inspect::show_records(&input, &index, &template, &tokenizer, tokens.max_length, color)
        }
        Stage::Convert { files, source, out } => {
            let plan = out.plan("convert", source.read());
            render(&out, &[pipeline::run(&plan, &files.inputs, &files.output)?])
        }
        Stage::Sample { files, count, fraction, seed, out } => {
            let amount = count.map_or_else(|| Amount::Fraction(fraction.unwrap_or(1.0)), Amount::Count);
            let plan = out.plan("sample", Read::Conversations);
            render(&out, &[ops::sample(&files.inputs, &files.output, amount, seed, plan)?])
        }
        Stage::SplitTrainTest { inputs, train, test, test_ratio, test_count, seed, out } => {
            let amount = test_count.map_or(Amount::Fraction(test_ratio), Amount::Count);
            let (a, b) = ops::split_train_test(&inputs, &train, &test, amount, seed)?;
            render(&out, &[a, b])
        }
        Stage::Mix { sources, output, seed, total, tokens, out } => {
            let loaded = tokens.load()?;
            let options = MixOptions {
                seed,
                total,
                style: out.style,
                strict: out.strict,
                tokens: loaded.as_ref().map(|(tokenizer, template)| (tokenizer, template)),
            };
            render(&out, &[mix::mix(&sources, &output, &options)?])
        }
        Stage::Decontaminate { files, against, bleu, ngram, overlap, out } => {
            let options = DecontaminateOptions::new(bleu, ngram, overlap)?;
            let index = QuestionIndex::new(decontaminate::read_questions(&against, ngram)?, options);
            let plan = out.plan("decontaminate", Read::Conversations);
            render(&out, &[decontaminate::run(plan, &index, &files.inputs, &files.output)?])
        }
        Stage::Stats { inputs, tokens, json } => {
            let loaded = tokens.load()?;
            let stats =
                stats::compute(&open_all(&inputs)?, loaded.as_ref().map(|(tokenizer, template)| (tokenizer, template)));
            Ok(if json { format!("{}\n", serde_json::to_string_pretty(&stats)?) } else { stats.to_string() })
        }
    }
}

/// The run's reports as text or JSON (`--json`), also written as JSON to `--report` when asked.
fn render<R: serde::Serialize + std::fmt::Display>(out: &OutputArgs, reports: &[R]) -> Result<String> {
    let json = if reports.len() == 1 {
        serde_json::to_string_pretty(&reports[0])?
    } else {
        serde_json::to_string_pretty(reports)?
    };
    if let Some(path) = &out.report {
        vicuna::util::atomic::write_bytes(path, format!("{json}\n").as_bytes())?;
    }
    Ok(if out.json { format!("{json}\n") } else { reports.iter().map(|r| r.to_string()).collect() })
}
