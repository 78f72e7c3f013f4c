//! The `vicuna` command line: parses arguments with clap, turns them into the library's checked
//! option structs, calls the library and prints what it returns. No logic lives here.
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vicuna::data::clean::CleanOptions;
use vicuna::data::conversation::Style;
use vicuna::data::filter::{parse_lang, FilterOptions};
use vicuna::data::ops::{self, Amount};
use vicuna::data::pipeline::{self, open_all, Plan, Read};
use vicuna::data::report::Report;
use vicuna::data::stats;

/// The Vicuna recipe in one binary: clean ShareGPT dumps, fine-tune LLaMA models, evaluate them.
#[derive(Parser)]
#[command(name = "vicuna", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare training data: raw ShareGPT dumps to clean conversations (or run one stage).
    Prep(Prep),
    /// Show the libtorch runtime: version, CPU threads, CUDA devices.
    Env {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `vicuna prep RAW... -o OUT` runs clean, filter and dedup in one pass; each stage is also a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Prep {
    #[command(subcommand)]
    stage: Option<Stage>,
    /// Raw ShareGPT dumps (.json array or .jsonl).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output file; .json writes a JSON array, .jsonl JSON Lines.
    #[arg(short, long, required = true)]
    output: Option<PathBuf>,
    #[command(flatten)]
    clean: CleanArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Keep duplicates (by id and by first user and assistant turn) instead of dropping them.
    #[arg(long)]
    no_dedup: bool,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Subcommand)]
enum Stage {
    /// HTML to markdown, human-turn repair, service errors, blocked words, roles and structure.
    Clean {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        clean: CleanArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop conversations by language, repetition, broken lists or turn count.
    Filter {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop duplicates by id and by (first user turn, first assistant turn); the first one wins.
    Dedup {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print statistics: conversations, turns, characters, length histogram, languages.
    Stats {
        inputs: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Concatenate files into one, in the order given.
    Merge {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        /// Also drop duplicates across the inputs.
        #[arg(long)]
        dedup: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Write a seeded random subset, in input order.
    Sample {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        /// Number of conversations to keep.
        #[arg(long, conflicts_with = "fraction", required_unless_present = "fraction")]
        count: Option<usize>,
        /// Share of conversations to keep (0 to 1).
        #[arg(long)]
        fraction: Option<f64>,
        /// Seed of the choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Split into a train and a test file (seeded, each in input order).
    SplitTrainTest {
        inputs: Vec<PathBuf>,
        /// Train output file.
        #[arg(long)]
        train: PathBuf,
        /// Test output file.
        #[arg(long)]
        test: PathBuf,
        /// Share of conversations for the test file.
        #[arg(long, default_value_t = 0.01, conflicts_with = "test_count")]
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
    /// Convert ShareGPT, OpenAI messages or Alpaca records to ShareGPT or OpenAI records.
    Convert {
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Args, Clone)]
struct CleanArgs {
    /// Words that drop a conversation when any turn contains them (case-insensitive, comma-separated; empty for none).
    #[arg(long, value_delimiter = ',', default_value = "openai,chatgpt")]
    blocked_words: Vec<String>,
}

#[derive(Args, Clone)]
struct FilterArgs {
    /// Keep only conversations in these languages (ISO 639-1 like `en`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    keep_lang: Vec<String>,
    /// Drop conversations in these languages (ISO 639-1 like `ko`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip_lang: Vec<String>,
    /// Drop conversations with a run of 9 identical digits.
    #[arg(long)]
    reduce_rep: bool,
    /// Drop conversations whose numbered markdown list restarts at `1.`.
    #[arg(long)]
    drop_restarted_lists: bool,
    /// Drop conversations with fewer turns (user and assistant messages).
    #[arg(long)]
    min_turns: Option<usize>,
    /// Drop conversations with more turns (user and assistant messages).
    #[arg(long)]
    max_turns: Option<usize>,
}

#[derive(Args, Clone)]
struct OutputArgs {
    /// Record shape of the output.
    #[arg(long, value_enum, default_value_t = Style::Sharegpt)]
    style: Style,
    /// Stop at the first malformed record instead of counting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl CleanArgs {
    fn options(&self) -> CleanOptions {
        let blocked_words =
            self.blocked_words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
        CleanOptions { blocked_words }
    }
}

impl FilterArgs {
    fn options(&self) -> Result<FilterOptions> {
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
    fn plan<'a>(&self, command: &'a str, read: Read) -> Plan<'a> {
        Plan { style: self.style, strict: self.strict, ..Plan::new(command, read) }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Prep(prep) => run_prep(prep),
        Command::Env { json } => {
            let runtime = vicuna::model::device::runtime();
            if json {
                println!("{}", serde_json::to_string_pretty(&runtime)?);
            } else {
                println!("{runtime:#?}");
            }
            Ok(())
        }
    }
}

fn run_prep(prep: Prep) -> Result<()> {
    let Some(stage) = prep.stage else {
        let output = prep.output.context("missing --output")?;
        let plan = Plan {
            filter: prep.filter.options()?,
            dedup: !prep.no_dedup,
            ..prep.out.plan("prep", Read::Clean(prep.clean.options()))
        };
        return report(&prep.out, &[pipeline::run(&plan, &prep.inputs, &output)?]);
    };
    match stage {
        Stage::Clean { inputs, output, clean, out } => {
            let plan = out.plan("clean", Read::Clean(clean.options()));
            report(&out, &[pipeline::run(&plan, &inputs, &output)?])
        }
        Stage::Filter { inputs, output, filter, out } => {
            let plan = Plan { filter: filter.options()?, ..out.plan("filter", Read::Conversations) };
            report(&out, &[pipeline::run(&plan, &inputs, &output)?])
        }
        Stage::Dedup { inputs, output, out } => {
            let plan = Plan { dedup: true, ..out.plan("dedup", Read::Conversations) };
            report(&out, &[pipeline::run(&plan, &inputs, &output)?])
        }
        Stage::Merge { inputs, output, dedup, out } => {
            let plan = Plan { dedup, ..out.plan("merge", Read::Conversations) };
            report(&out, &[pipeline::run(&plan, &inputs, &output)?])
        }
        Stage::Convert { inputs, output, out } => {
            let plan = out.plan("convert", Read::AnyShape);
            report(&out, &[pipeline::run(&plan, &inputs, &output)?])
        }
        Stage::Sample { inputs, output, count, fraction, seed, out } => {
            let amount = count.map_or_else(|| Amount::Fraction(fraction.unwrap_or(1.0)), Amount::Count);
            let plan = out.plan("sample", Read::Conversations);
            report(&out, &[ops::sample(&inputs, &output, amount, seed, plan)?])
        }
        Stage::SplitTrainTest { inputs, train, test, test_ratio, test_count, seed, out } => {
            let amount = test_count.map_or(Amount::Fraction(test_ratio), Amount::Count);
            let (a, b) = ops::split_train_test(&inputs, &train, &test, amount, seed)?;
            report(&out, &[a, b])
        }
        Stage::Stats { inputs, json } => {
            let stats = stats::compute(&open_all(&inputs)?);
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{stats}");
            }
            Ok(())
        }
    }
}

/// Prints the run's reports (text or JSON) and writes them to `--report` when asked.
fn report(out: &OutputArgs, reports: &[Report]) -> Result<()> {
    let json = if reports.len() == 1 {
        serde_json::to_string_pretty(&reports[0])?
    } else {
        serde_json::to_string_pretty(reports)?
    };
    if out.json {
        println!("{json}");
    } else {
        reports.iter().for_each(|r| print!("{r}"));
    }
    if let Some(path) = &out.report {
        write_report(path, &json)?;
    }
    Ok(())
}

fn write_report(path: &Path, json: &str) -> Result<()> {
    vicuna::atomic::write_bytes(path, format!("{json}\n").as_bytes())
}
