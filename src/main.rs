//! The `vicuna` command line: parses arguments (clap structs in `cli.rs`), dispatches each command
//! to the library, prints what it returns and maps errors to the exit code. No logic lives here.
mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command, DeltaCommand, EvalCommand, ModelCommand, TokenizerCommand};
use std::process::ExitCode;
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
use vicuna::eval::{answer, client, judge, questions, report};
use vicuna::infer::engine::model_name;
use vicuna::util::secret::key_from_env;

/// jemalloc serves every allocation of the process, libtorch's included: with unprefixed symbols
/// it replaces glibc's malloc for the shared libraries too. glibc's heap kept freed activation
/// buffers resident between layers (measured on the 8x512 model, 2 x 2048 tokens: peak 2.1 GB
/// with gradient checkpointing, 3.4 GB without) and sending large blocks to mmap instead cost a
/// quarter of the speed in page faults; jemalloc reuses its size classes (1.5 GB and 2.8 GB, and
/// 10% faster). Freed pages are kept for reuse rather than returned to the kernel on a timer,
/// whose purging measurably slowed training; `MALLOC_CONF` in the environment still overrides.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options (read once at start-up; see `ALLOCATOR`).
#[export_name = "malloc_conf"]
static MALLOC_CONF: &[u8; 36] = b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`| head`).
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `value` as one line of JSON, or as its text form.
fn print(json: bool, value: &(impl serde::Serialize + std::fmt::Display)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{value}");
    }
    Ok(())
}

fn warn_all(messages: &[String]) {
    messages.iter().for_each(|m| eprintln!("warning: {m}"));
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Prep(prep) => print!("{}", cli::run_prep(prep)?),
        Command::Tokenizer(TokenizerCommand::Train { inputs, output, vocab_size }) => {
            let texts = vicuna::data::convert::texts(&inputs)?;
            vicuna::data::tokenizer::bpe_train::train(&texts, vocab_size, &output)?;
            println!("trained a {vocab_size}-token BPE tokenizer on {} texts into {}", texts.len(), output.display());
        }
        Command::Model(ModelCommand::Init { preset, tokenizer, output, seed, dtype, max_shard_size }) => {
            let tok = Tokenizer::load(&tokenizer, &SpecialOverrides::default())?;
            let config =
                preset.config(tok.vocab_size(), tok.bos.as_ref().map(|b| b.id), tok.eos.iter().map(|e| e.id).collect());
            let params = config.parameter_count();
            vicuna::model::weights::init_model(config, seed, dtype.kind(), max_shard_size, &tokenizer, &output)?;
            println!("wrote a {params}-parameter {preset:?} model to {}", output.display());
        }
        Command::Model(ModelCommand::Import { input, output, dtype, max_shard_size, json }) => {
            print(json, &vicuna::model::gguf::import::import(&input, &output, dtype.kind(), max_shard_size)?)?;
        }
        Command::Model(ModelCommand::Export { dir, output, outtype, json }) => {
            let exported = vicuna::model::gguf_export::export(&dir, &output, outtype)?;
            if json {
                println!("{}", serde_json::to_string(&exported)?);
            } else {
                println!("wrote {}: {exported}", output.display());
            }
        }
        Command::Model(ModelCommand::Inspect { dir, json }) => {
            let inspection = vicuna::model::weights::inspect(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                print!("{inspection}");
            }
        }
        Command::Model(ModelCommand::Delta(delta)) => {
            let (summary, json) = match delta {
                DeltaCommand::Apply { base, delta, output, write } => {
                    (vicuna::model::delta::apply(&base, &delta, &output, &write.options())?, write.json)
                }
                DeltaCommand::Make { base, target, output, write } => {
                    (vicuna::model::delta::make(&base, &target, &output, &write.options())?, write.json)
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{summary}");
            }
        }
        Command::Generate(args) => {
            let sampling = args.sampling.sampling()?;
            let engine = args.model.engine()?;
            for output in engine.answer_each(args.model.system.as_deref(), &args.prompt, &sampling)? {
                if args.json {
                    println!("{}", serde_json::to_string(&output)?);
                } else {
                    println!("{}", output.text);
                }
            }
        }
        Command::Chat(args) => {
            let sampling = args.sampling.sampling()?;
            let engine = args.model.engine()?;
            eprintln!("chatting with {} (empty line or Ctrl-D to quit)", args.model.model.display());
            let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout());
            vicuna::infer::chat::repl(&engine, &sampling, args.model.system.clone(), &mut input, &mut output)?;
        }
        Command::Train(args) if args.launch().is_some() => {
            let launch = args.launch().expect("checked by the guard");
            let exe = std::env::current_exe().context("cannot find this executable to start the workers")?;
            let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            std::process::exit(vicuna::train::launch::run(&launch, &exe, &vicuna::train::launch::worker_args(&argv))?);
        }
        Command::Train(args) => {
            let recipe = match &args.config {
                Some(path) => vicuna::train::recipe::Recipe::load(path)?,
                None => Default::default(),
            };
            let config = recipe.overridden_by(args.recipe).resolve()?;
            let resume = args.resume.unwrap_or(vicuna::train::trainer::Resume::No);
            let outcome = vicuna::train::trainer::train(&config, resume, &args.allow_change)?;
            if outcome.rank == 0 {
                print(args.json, &outcome)?;
            }
        }
        Command::Serve(args) => {
            let api_key = args.api_key_env.as_deref().map(key_from_env).transpose()?.flatten();
            let engine = args.model.engine()?;
            let options = vicuna::infer::serve::ServeOptions {
                host: args.host,
                port: args.port,
                model_name: args.model_name.unwrap_or_else(|| model_name(&args.model.model)),
                api_key,
                queue: args.queue,
                max_batch: args.max_batch,
                default_max_tokens: args.default_max_tokens,
            };
            vicuna::infer::serve::serve(engine, options)?;
        }
        Command::Eval(command) => run_eval(command)?,
        Command::Env { json } => {
            let runtime = vicuna::model::device::runtime();
            if json {
                println!("{}", serde_json::to_string_pretty(&runtime)?);
            } else {
                println!("{runtime:#?}");
            }
        }
    }
    Ok(())
}

fn run_eval(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Answer { model, questions, output, model_id, batch_size, max_new_tokens, temperature, seed } => {
            let model_id = model_id.unwrap_or_else(|| model_name(&model.model));
            let options =
                answer::AnswerOptions { model_id: model_id.clone(), batch_size, max_new_tokens, temperature, seed };
            let (n, total) = answer::answer_file(|| model.engine(), &questions, &options, &output)?;
            println!("{model_id}: answered {n} questions ({total} in the set) into {}", output.display());
        }
        EvalCommand::Import { input, model_id, output } => {
            let (n, warnings) = questions::import_file(&input, model_id.as_deref(), &output)?;
            warn_all(&warnings);
            println!("imported {n} answers into {}", output.display());
        }
        EvalCommand::Judge {
            questions,
            answers,
            mode,
            judge_model,
            output,
            api_base,
            api_key_env,
            baseline,
            judge_prompts,
            reference_answers,
            concurrency,
            timeout,
            max_retries,
            max_tokens,
            json,
        } => {
            // Checked first: a run without its key would fail every request after reading everything.
            let api_key = key_from_env(&api_key_env)?;
            let timeout = std::time::Duration::from_secs_f64(timeout);
            let client = client::Client::new(client::ClientOptions::new(api_base, api_key, timeout, max_retries));
            let run = judge::JudgeRun {
                questions,
                answers,
                reference_answers,
                judge_prompts,
                output,
                mode,
                judge_model,
                concurrency,
                baseline,
                max_tokens,
            };
            let summary = judge::judge_files(&client, run)?;
            print(json, &summary)?;
            anyhow::ensure!(
                summary.failed == 0,
                "{} judgments failed (see the warnings); rerun the same command to retry them",
                summary.failed
            );
        }
        EvalCommand::Report { judgments, baseline, judge, questions, chart, json } => {
            let options = report::ReportOptions { judge, baseline, models: None };
            let (r, warnings) = report::report_file(&judgments, questions.as_deref(), &options, chart.as_deref())?;
            warn_all(&warnings);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.to_markdown());
            }
        }
    }
    Ok(())
}
