//! `vicuna eval answer`: a model's answers to a question set (Vicuna-80 or MT-bench), written in
//! FastChat's answer format so its tools read them. Unlike FastChat's `gen_model_answer`, which
//! answers one question at a time, questions are answered in batches (several times the
//! throughput on a CPU), grouped by their sampling temperature (MT-bench's per-category table);
//! a second turn is asked with the first answer in context. The output file is rewritten
//! (atomically) after every batch and questions already answered in it are skipped, so an
//! interrupted run loses at most one batch and continues where it stopped.
use super::questions::{
    default_temperature, read_answers, read_questions, reorganize, write_answers, Answer, Question,
};
use crate::data::conversation::{Role, Turn};
use crate::infer::engine::Engine;
use crate::infer::generate::{room_left, Sampling};
use crate::util::lock::Lock;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Settings of an answer run.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// The `model_id` written into answers.
    pub model_id: String,
    /// Questions generated together.
    pub batch_size: usize,
    pub max_new_tokens: usize,
    /// One temperature for every category instead of MT-bench's table.
    pub temperature: Option<f64>,
    pub seed: u64,
}

/// `vicuna eval answer`: checks the files, takes the answer file's exclusive lock and reads the
/// questions, and only then loads the model (`load`), so a refused run costs no model load; then
/// answers into `out`. Returns how many were answered now and how many the set holds.
pub fn answer_file(
    load: impl FnOnce() -> Result<Engine>,
    questions: &Path,
    options: &AnswerOptions,
    out: &Path,
) -> Result<(usize, usize)> {
    crate::util::atomic::ensure_distinct(&[questions], &[("--output", out)])?;
    let _lock = Lock::acquire(&Lock::path_beside(out), &format!("answer file {}", out.display()))?;
    let questions = read_questions(questions)?;
    let engine = load()?;
    Ok((answer(&engine, &questions, options, out)?, questions.len()))
}

/// Answers `questions` into `out` (JSON Lines); returns how many were answered now.
pub fn answer(engine: &Engine, questions: &[Question], options: &AnswerOptions, out: &Path) -> Result<usize> {
    let done: Vec<Answer> = match out.exists() {
        false => Vec::new(),
        true => {
            let loaded = read_answers(out)?;
            // The file is rewritten whole: a line it cannot read would be lost with it.
            if let Some(first) = loaded.skipped_messages().first() {
                bail!("{first}; {} is rewritten as answers are added, so fix or remove that line first", out.display());
            }
            loaded.records()
        }
    };
    // One model per answer file (FastChat's layout, and the judge's model name): answers of
    // another model would be replaced question by question.
    if let Some(other) = done.iter().find(|a| a.model_id != options.model_id) {
        bail!(
            "{} holds answers of model {:?}, not {:?}: give each model its own answer file",
            out.display(),
            other.model_id,
            options.model_id
        );
    }
    let answered: BTreeSet<String> = done.iter().map(|a| a.question_id.to_string()).collect();
    let todo: Vec<&Question> = questions.iter().filter(|q| !answered.contains(&q.id.to_string())).collect();
    // Group by temperature so each batch shares its sampling settings.
    let mut groups: BTreeMap<u64, Vec<&Question>> = BTreeMap::new();
    for q in &todo {
        let t = options.temperature.unwrap_or_else(|| default_temperature(&q.category));
        groups.entry(t.to_bits()).or_default().push(q);
    }
    let bar = crate::util::progress::progress_bar(todo.len() as u64, "answer", "questions");
    let mut new = Vec::with_capacity(todo.len());
    for (bits, group) in groups {
        let sampling = Sampling {
            temperature: f64::from_bits(bits),
            max_new_tokens: options.max_new_tokens,
            seed: options.seed,
            ..Sampling::default()
        };
        for batch in group.chunks(options.batch_size.max(1)) {
            new.extend(answer_batch(engine, batch, &sampling, &options.model_id)?);
            let sorted = reorganize(done.iter().chain(&new).cloned().collect());
            crate::util::atomic::write_file(out, |w| write_answers(w, &sorted))?;
            bar.inc(batch.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok(new.len())
}

/// All turns of a batch of questions: turn k of every question that has it, as one batch, each
/// conversation carrying its earlier answers.
/// The answer FastChat's `gen_model_answer` writes for a turn it could not generate.
const ERROR_ANSWER: &str = "ERROR";

fn answer_batch(engine: &Engine, batch: &[&Question], sampling: &Sampling, model_id: &str) -> Result<Vec<Answer>> {
    let mut conversations: Vec<Vec<Turn>> = vec![Vec::new(); batch.len()];
    let mut answers: Vec<Vec<String>> = vec![Vec::new(); batch.len()];
    let turns = batch.iter().map(|q| q.turns.len()).max().unwrap_or(0);
    for k in 0..turns {
        let mut rows = Vec::new();
        let mut prompts = Vec::new();
        for r in (0..batch.len()).filter(|&r| k < batch[r].turns.len()) {
            conversations[r].push(Turn { role: Role::User, text: batch[r].turns[k].clone() });
            let prompt = engine.prompt_ids(None, &conversations[r])?;
            // A turn whose prompt leaves no room in the context (a long question, or a long
            // first answer before the second turn) gets FastChat's "ERROR" answer, with a
            // warning, instead of failing the batch and every rerun of it.
            if room_left(engine.context(), prompt.len()) == 0 {
                eprintln!(
                    "warning: question {} turn {}: the prompt is {} tokens, no room in the model's context of {}; answered ERROR",
                    batch[r].id,
                    k + 1,
                    prompt.len(),
                    engine.context()
                );
                conversations[r].push(Turn { role: Role::Assistant, text: ERROR_ANSWER.to_string() });
                answers[r].push(ERROR_ANSWER.to_string());
                continue;
            }
            rows.push(r);
            prompts.push(prompt);
        }
        if prompts.is_empty() {
            continue;
        }
        let outputs = engine.generate(&prompts, sampling, &mut |_, _| true)?;
        for (&r, output) in rows.iter().zip(outputs) {
            conversations[r].push(Turn { role: Role::Assistant, text: output.text.clone() });
            answers[r].push(output.text);
        }
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Ok(batch
        .iter()
        .zip(answers)
        .map(|(q, turns)| {
            let answer_id = answer_id(model_id, &q.id.to_string(), &turns);
            Answer::new(q.id.clone(), answer_id, model_id.to_string(), turns, now)
        })
        .collect())
}

/// A stable id for an answer (FastChat uses random short UUIDs; a hash keeps reruns comparable):
/// 64-bit FNV-1a over the model id, the question id and each answer turn, every part followed by
/// a zero byte, as 16 hex digits. The algorithm is fixed here, unlike `std`'s `DefaultHasher`,
/// whose output may change between Rust releases.
fn answer_id(model_id: &str, question_id: &str, turns: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [model_id, question_id].into_iter().chain(turns.iter().map(String::as_str)) {
        for &byte in part.as_bytes().iter().chain(&[0u8]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    /// Golden value computed independently (Python, FNV-1a 64 over b"m\0q1\0Hello\0World\0").
    #[test]
    fn answer_ids_are_fnv1a_of_model_question_and_turns() {
        let turns = vec!["Hello".to_string(), "World".to_string()];
        assert_eq!(super::answer_id("m", "q1", &turns), "e8da99d7a431764e");
    }
}
