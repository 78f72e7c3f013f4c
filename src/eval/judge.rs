//! `vicuna eval judge`: LLM-judge reviews of answers through any OpenAI-compatible endpoint, in
//! the Vicuna-80 style (two scores) or MT-bench's (pairwise `[[A]]`/`[[B]]`/`[[C]]`, against a
//! baseline, or single ratings; reference-guided for math, reasoning and coding). Every pairwise
//! game is also played with the answers swapped, against position bias. Judgments are appended
//! to the output one line at a time as they complete: a rerun skips what is on disk, so no
//! judgment is paid for twice and an interrupted run loses nothing.
//!
//! The output file belongs to one run at a time (an exclusive [`Lock`] beside it, held for the
//! whole run: a second run on it stops at once naming the holder's pid instead of paying for
//! every judgment again). A last line torn by a crash is set aside in `NAME.torn` before anything
//! is appended ([`set_aside_torn_tail`]), and each judgment is written with its newline in one
//! write. Failed judgments are reported once per distinct error, with their count, and nothing
//! printed or written carries the API key ([`Client::redact`]).
use super::client::{Client, Message};
use super::jsonl::set_aside_torn_tail;
use super::judgment::{read_judgments, Judgment, Mode};
use super::prompts::{builtin_prompts, load_judge_prompts};
use super::prompts::{
    mt_bench_prompt_name, needs_reference, render, vicuna80_prompt_name, JudgePrompt, JudgeType, PromptSet,
};
use super::questions::{index_answers, read_answers, read_questions, Answer, Question, QuestionId};
use crate::util::lock::Lock;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

/// A judge run as the command line gives it: the files to read and write, and the settings.
pub struct JudgeRun {
    /// Question file (Vicuna-80 or MT-bench).
    pub questions: PathBuf,
    /// Answer files, one or more models each.
    pub answers: Vec<PathBuf>,
    /// Reference answers for math, reasoning and coding (an answer file).
    pub reference_answers: Option<PathBuf>,
    /// More judge prompts in FastChat's judge_prompts.jsonl format.
    pub judge_prompts: Option<PathBuf>,
    /// Judgment file (JSONL, appended).
    pub output: PathBuf,
    pub mode: Mode,
    pub judge_model: String,
    pub concurrency: usize,
    pub baseline: Option<String>,
    pub max_tokens: usize,
}

/// Reads the files of `run` (refusing an output that is one of them, warning about skipped lines
/// on stderr), then judges through `client`.
pub fn judge_files(client: &Client, run: JudgeRun) -> Result<JudgeSummary> {
    let mut inputs: Vec<&Path> = vec![&run.questions];
    inputs.extend(run.answers.iter().map(PathBuf::as_path));
    inputs.extend(run.judge_prompts.iter().chain(&run.reference_answers).map(PathBuf::as_path));
    crate::util::atomic::ensure_distinct(&inputs, &[("--output", &run.output)])?;
    let questions = read_questions(&run.questions)?;
    let mut by_model: BTreeMap<String, BTreeMap<QuestionId, Answer>> = BTreeMap::new();
    for path in &run.answers {
        let loaded = read_answers(path)?;
        for message in loaded.skipped_messages() {
            eprintln!("warning: {message}");
        }
        for a in loaded.records() {
            by_model.entry(a.model_id.clone()).or_default().insert(a.question_id.clone(), a);
        }
    }
    let references = match &run.reference_answers {
        Some(path) => Some(index_answers(read_answers(path)?.records()).0),
        None => None,
    };
    let mut prompts = builtin_prompts();
    if let Some(path) = &run.judge_prompts {
        prompts.extend(load_judge_prompts(path)?);
    }
    let options = JudgeOptions {
        mode: run.mode,
        judge_model: run.judge_model,
        concurrency: run.concurrency,
        baseline: run.baseline,
        prompts,
        max_tokens: run.max_tokens,
    };
    judge(client, &questions, &by_model, references.as_ref(), &options, &run.output)
}

/// Settings of a judge run.
pub struct JudgeOptions {
    pub mode: Mode,
    pub judge_model: String,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The baseline model of `pairwise-baseline` (and of `vicuna80` when given).
    pub baseline: Option<String>,
    pub prompts: PromptSet,
    pub max_tokens: usize,
}

/// What a run did (`--json` prints it as is).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JudgeSummary {
    /// Judgments wanted in all.
    pub planned: usize,
    /// Already on disk, skipped.
    pub skipped: usize,
    /// Written in this run.
    pub written: usize,
    /// Written but with a verdict the parser could not read (kept, with their text).
    pub unparsed: usize,
    /// Given up after the client's retries (not written; a rerun tries them again); each
    /// distinct error was printed once with its count.
    pub failed: usize,
    /// Requests sent, retries not counted.
    pub requests: usize,
}

impl std::fmt::Display for JudgeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "judgments: {} planned, {} already done, {} written ({} unparsed), {} failed; {} requests",
            self.planned, self.skipped, self.written, self.unparsed, self.failed, self.requests
        )
    }
}

/// One judgment to make.
struct Task {
    question: Arc<Question>,
    /// `model_a` (or the single model) and its answer; `model_b` and its answer for pairs.
    a: (String, Arc<Answer>),
    b: Option<(String, Arc<Answer>)>,
    prompt: JudgePrompt,
    turn: u32,
    reference: Option<Vec<String>>,
}

impl Task {
    /// The judgment in words, for messages: `question 3 (alpha vs beta, turn 2)`.
    fn label(&self) -> String {
        let models = match &self.b {
            Some((b, _)) => format!("{} vs {b}", self.a.0),
            None => self.a.0.clone(),
        };
        let turn = if self.turn == 2 { ", turn 2" } else { "" };
        format!("question {} ({models}{turn})", self.question.id)
    }

    fn key(&self, mode: Mode, judge: &str) -> String {
        key(
            mode,
            judge,
            &self.question.id,
            &self.a.0,
            self.b.as_ref().map(|b| b.0.as_str()),
            self.turn,
            &self.prompt.name,
        )
    }
}

fn key(mode: Mode, judge: &str, question: &QuestionId, a: &str, b: Option<&str>, turn: u32, prompt: &str) -> String {
    format!("{mode:?}|{judge}|{question}|{a}|{}|{turn}|{prompt}", b.unwrap_or(""))
}

/// Judges `answers` (per model, per question) on `questions`, appending to `out`, which it holds
/// locked for the whole run.
pub fn judge(
    client: &Client,
    questions: &[Question],
    answers: &BTreeMap<String, BTreeMap<QuestionId, Answer>>,
    references: Option<&BTreeMap<QuestionId, Answer>>,
    options: &JudgeOptions,
    out: &Path,
) -> Result<JudgeSummary> {
    let tasks = plan(questions, answers, references, options)?;
    let _lock = Lock::acquire(&Lock::path_beside(out), &format!("judgment file {}", out.display()))?;
    if let Some(torn) = set_aside_torn_tail(out)? {
        eprintln!(
            "warning: {}: the last line had no newline (a run was interrupted while writing it); moved its {} bytes to {}; that judgment will be asked again",
            out.display(),
            torn.bytes,
            torn.torn_path.display()
        );
    }
    let done: BTreeSet<String> = if out.exists() {
        read_judgments(out)?
            .records()
            .iter()
            .map(|j| {
                key(
                    j.mode,
                    &j.judge,
                    &j.question_id,
                    j.model_a.as_deref().or(j.model.as_deref()).unwrap_or(""),
                    j.model_b.as_deref(),
                    j.turn,
                    &j.prompt_name,
                )
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut summary = JudgeSummary { planned: tasks.len(), ..JudgeSummary::default() };
    let todo: VecDeque<Task> =
        tasks.into_iter().filter(|t| !done.contains(&t.key(options.mode, &options.judge_model))).collect();
    summary.skipped = summary.planned - todo.len();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot open {}", out.display()))?;
    let bar = crate::util::progress::progress_bar(todo.len() as u64, "judge", "judgments");
    let workers = options.concurrency.clamp(1, todo.len().max(1));
    let queue = Arc::new(Mutex::new(todo));
    let (tx, rx) = mpsc::channel::<(String, Result<Judgment>, usize)>();
    // Each distinct error (redacted) with the judgments it failed, in order of first occurrence.
    let mut failures: Vec<(String, Vec<String>)> = Vec::new();
    let appended = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let (queue, tx) = (queue.clone(), tx.clone());
            scope.spawn(move || loop {
                let task = match queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                    Some(t) => t,
                    None => return,
                };
                let (result, requests) = run(client, &task, options);
                if tx.send((task.label(), result, requests)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (label, result, requests) in rx {
            summary.requests += requests;
            match result {
                Ok(judgment) => {
                    // The line and its newline in one write: a crash leaves a whole line or a
                    // fragment without newline, which the next run sets aside.
                    let line = judgment.to_line()? + "\n";
                    file.write_all(line.as_bytes())
                        .and_then(|()| file.flush())
                        .with_context(|| format!("cannot append to {}", out.display()))?;
                    summary.written += 1;
                    summary.unparsed += usize::from(judgment.unparsed_reason().is_some());
                }
                Err(e) => {
                    summary.failed += 1;
                    let message = client.redact(&format!("{e:#}"));
                    match failures.iter_mut().find(|(m, _)| *m == message) {
                        Some((_, which)) => which.push(label),
                        None => failures.push((message, vec![label])),
                    }
                }
            }
            bar.inc(1);
        }
        Ok(())
    });
    file.sync_all().ok();
    bar.finish_and_clear();
    for (message, which) in &failures {
        eprintln!("warning: {}", failure_line(message, which));
    }
    appended?;
    Ok(summary)
}

/// One line for all the judgments that failed with the same error: how many, the error, and the
/// first few of them (a repeated error is printed once, not once per judgment).
fn failure_line(message: &str, which: &[String]) -> String {
    const SHOWN: usize = 3;
    let n = which.len();
    let mut examples = which.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if n > SHOWN {
        examples.push_str(&format!(" and {} more", n - SHOWN));
    }
    let judgments = if n == 1 { "judgment" } else { "judgments" };
    format!("{n} {judgments} failed with: {message} ({examples})")
}

/// Plays one task: the game, and for pairs the swapped game; returns the record and the number
/// of requests made.
fn run(client: &Client, task: &Task, options: &JudgeOptions) -> (Result<Judgment>, usize) {
    let mut requests = 0;
    let multi = task.turn == 2;
    let mut ask = |first: &Answer, second: Option<&Answer>| -> Result<String> {
        let m = render(&task.prompt, &task.question, first, second, task.reference.as_deref(), multi)?;
        requests += 1;
        let messages =
            [Message { role: "system".into(), content: m.system }, Message { role: "user".into(), content: m.user }];
        Ok(client.chat(&options.judge_model, &messages, 0.0, options.max_tokens)?.text)
    };
    let now =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let result = (|| -> Result<Judgment> {
        let q = &task.question;
        match &task.b {
            None => {
                let text = ask(&task.a.1, None)?;
                Ok(Judgment::single(q, &task.a.0, &options.judge_model, &task.prompt, task.turn, text, now()))
            }
            Some((b_name, b)) => {
                let text = ask(&task.a.1, Some(b))?;
                let swapped = ask(b, Some(&task.a.1))?;
                Ok(Judgment::pair(
                    q,
                    options.mode,
                    &task.a.0,
                    b_name,
                    &options.judge_model,
                    &task.prompt,
                    task.turn,
                    text,
                    Some(swapped),
                    now(),
                ))
            }
        }
    })();
    (result, requests)
}

/// Every judgment the mode asks for, in a stable order.
fn plan(
    questions: &[Question],
    answers: &BTreeMap<String, BTreeMap<QuestionId, Answer>>,
    references: Option<&BTreeMap<QuestionId, Answer>>,
    options: &JudgeOptions,
) -> Result<Vec<Task>> {
    let models: Vec<&String> = answers.keys().collect();
    let pairs: Vec<(&String, &String)> = match (options.mode, &options.baseline) {
        (Mode::Single, _) => Vec::new(),
        (Mode::PairwiseBaseline, None) => bail!("--mode pairwise-baseline needs --baseline MODEL"),
        (_, Some(base)) => {
            if !answers.contains_key(base) {
                bail!(
                    "--baseline {base}: no answers for it (models: {})",
                    models.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            models
                .iter()
                .filter(|m| **m != base)
                .map(|m| (*m, answers.keys().find(|k| *k == base).expect("checked")))
                .collect()
        }
        (_, None) => {
            models.iter().enumerate().flat_map(|(i, a)| models[i + 1..].iter().map(move |b| (*a, *b))).collect()
        }
    };
    if options.mode != Mode::Single && pairs.is_empty() {
        bail!("pairwise judging needs answers of at least two models");
    }
    let mut tasks = Vec::new();
    for q in questions {
        let question = Arc::new(q.clone());
        let reference: Option<Vec<String>> = if !q.reference.is_empty() {
            Some(q.reference.clone())
        } else {
            references.and_then(|r| r.get(&q.id)).map(|a| a.turns().to_vec())
        };
        let turns: Vec<u32> = if options.mode == Mode::Vicuna80 || !q.is_multi_turn() { vec![1] } else { vec![1, 2] };
        for turn in turns {
            let with_ref = needs_reference(&q.category) && reference.is_some();
            let prompt_name = |kind: JudgeType| -> String {
                if options.mode == Mode::Vicuna80 {
                    vicuna80_prompt_name(&q.category).to_string()
                } else {
                    let name = mt_bench_prompt_name(kind, if with_ref { &q.category } else { "general" }, turn == 2);
                    name.to_string()
                }
            };
            let reference = if with_ref { reference.clone() } else { None };
            if options.mode == Mode::Single {
                let prompt = options.prompts.get(&prompt_name(JudgeType::Single))?.clone();
                for model in &models {
                    if let Some(a) = answers[*model].get(&q.id) {
                        tasks.push(Task {
                            question: question.clone(),
                            a: ((*model).clone(), Arc::new(a.clone())),
                            b: None,
                            prompt: prompt.clone(),
                            turn,
                            reference: reference.clone(),
                        });
                    }
                }
            } else {
                let prompt = options.prompts.get(&prompt_name(JudgeType::Pairwise))?.clone();
                for (ma, mb) in &pairs {
                    if let (Some(a), Some(b)) = (answers[*ma].get(&q.id), answers[*mb].get(&q.id)) {
                        tasks.push(Task {
                            question: question.clone(),
                            a: ((*ma).clone(), Arc::new(a.clone())),
                            b: Some(((*mb).clone(), Arc::new(b.clone()))),
                            prompt: prompt.clone(),
                            turn,
                            reference: reference.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_is_one_line_with_its_count_and_first_judgments() {
        let which: Vec<String> = (1..=5).map(|q| format!("question {q} (a vs b)")).collect();
        assert_eq!(
            failure_line("HTTP 401: bad key", &which),
            "5 judgments failed with: HTTP 401: bad key (question 1 (a vs b), question 2 (a vs b), question 3 (a vs b) and 2 more)"
        );
        assert_eq!(failure_line("timeout", &which[..1]), "1 judgment failed with: timeout (question 1 (a vs b))");
    }
}
