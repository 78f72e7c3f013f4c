//! Benchmark questions and model answers in FastChat's file formats.
//!
//! Questions: the original Vicuna-80 file (`fastchat/eval/table/question.jsonl`:
//! `{"question_id", "text", "category"}`) and the llm_judge files (`data/mt_bench/question.jsonl`,
//! `data/vicuna_bench/question.jsonl`: `{"question_id", "category", "turns": [..],
//! "reference": [..]?}`) read into one [`Question`] type. Answers: llm_judge's
//! `model_answer/*.jsonl` (`{"question_id", "answer_id", "model_id", "choices": [{"index",
//! "turns"}], "tstamp"}`, written by `gen_model_answer.py`), and the older Vicuna-80 answer tables
//! (`{"question_id", "text", "answer_id", "model_id", "metadata"}`) imported as one-turn answers.
//! The per-category sampling temperatures are `temperature_config` from `llm_judge/common.py`.
use super::jsonl::{self, kind, string_field, string_list, Loaded};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// A question id as the file spelled it: MT-bench and Vicuna-80 use integers, Arena-Hard and other
/// benchmarks use strings. Kept as written so answers and judgments refer back to the same value
/// (an integer written back as `"81"` would no longer match FastChat's files).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuestionId {
    /// An integer id (`"question_id": 81`); sorts numerically, before string ids.
    Int(i64),
    /// A string id (`"question_id": "dfe95dfd..."`).
    Str(String),
}

impl QuestionId {
    /// Reads an id from JSON, accepting only integers and non-empty strings (a float or a null id
    /// would silently fail to match answers later).
    pub fn from_json(value: &Value) -> Result<QuestionId> {
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(QuestionId::Int(i)),
                None => bail!("\"question_id\" {n} is not an integer"),
            },
            Value::String(s) if !s.is_empty() => Ok(QuestionId::Str(s.clone())),
            Value::String(_) => bail!("\"question_id\" is an empty string"),
            other => bail!("\"question_id\" must be an integer or a string, found {}", kind(other)),
        }
    }
}

impl fmt::Display for QuestionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuestionId::Int(i) => write!(f, "{i}"),
            QuestionId::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for QuestionId {
    fn from(i: i64) -> Self {
        QuestionId::Int(i)
    }
}

impl From<&str> for QuestionId {
    fn from(s: &str) -> Self {
        QuestionId::Str(s.to_string())
    }
}

/// One benchmark question, whichever file format it came from, so generation, judging and
/// reporting handle Vicuna-80 and MT-bench alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The id as written in the file.
    pub id: QuestionId,
    /// The category (`writing`, `math`, `generic`, `fermi`, ...): picks the sampling temperature,
    /// the judge prompt and the report's per-category rows.
    pub category: String,
    /// The user turns in order: one for Vicuna-80, two for MT-bench.
    pub turns: Vec<String>,
    /// Reference answers per turn, when the file has them (MT-bench math, reasoning, coding);
    /// empty otherwise.
    pub reference: Vec<String>,
}

impl Question {
    /// Whether the question has a second turn to judge (MT-bench's multi-turn judgments need it;
    /// FastChat skips questions without exactly two turns there).
    pub fn is_multi_turn(&self) -> bool {
        self.turns.len() >= 2
    }

    /// The question in llm_judge's format (`turns`, and `reference` when present), the format the
    /// rest of the pipeline writes.
    pub fn to_json(&self) -> Value {
        let mut value = json!({"question_id": self.id, "category": self.category, "turns": self.turns});
        if !self.reference.is_empty() {
            value["reference"] = json!(self.reference);
        }
        value
    }
}

/// Parses one question record in either format (`text` or `turns`).
pub fn parse_question(value: Value) -> Result<Question> {
    let Value::Object(object) = value else { bail!("a question must be a JSON object, found {}", kind(&value)) };
    let id = QuestionId::from_json(object.get("question_id").context("missing field \"question_id\"")?)?;
    let category = string_field(&object, "category")
        .with_context(|| format!("question {id}: every question needs a \"category\" (e.g. \"generic\")"))?;
    let turns = match (object.get("turns"), object.get("text")) {
        (Some(turns), None) => string_list(turns, "turns")?,
        (None, Some(Value::String(text))) => vec![text.clone()],
        (None, Some(other)) => bail!("question {id}: \"text\" must be a string, found {}", kind(other)),
        (Some(_), Some(_)) => bail!("question {id} has both \"turns\" and \"text\"; keep one"),
        (None, None) => bail!("question {id} has neither \"turns\" (MT-bench) nor \"text\" (Vicuna-80)"),
    };
    if turns.is_empty() {
        bail!("question {id} has an empty \"turns\" list");
    }
    let reference = match object.get("reference") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => string_list(value, "reference").with_context(|| format!("question {id}"))?,
    };
    Ok(Question { id, category, turns, reference })
}

/// Reads a question file. Strict: a bad line or a repeated id is an error naming the line,
/// because a benchmark that silently loses a question is no longer the benchmark.
pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let loaded = jsonl::read_lenient(path, parse_question)?;
    check_unique_ids(&loaded)?;
    loaded.into_strict()
}

fn check_unique_ids(loaded: &Loaded<Question>) -> Result<()> {
    let mut seen: BTreeMap<&QuestionId, usize> = BTreeMap::new();
    for (line, question) in &loaded.items {
        if let Some(first) = seen.insert(&question.id, *line) {
            bail!(
                "{}:{line}: question id {} already used on line {first}; ids must be unique",
                loaded.path.display(),
                question.id
            );
        }
    }
    Ok(())
}

/// One sampled completion of all turns of a question (FastChat writes `num_choices` of them; the
/// judge reads the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position of this choice (0 for the first).
    pub index: usize,
    /// The model's reply to each user turn, in order.
    pub turns: Vec<String>,
}

/// A model's answer to one question, field for field FastChat's `model_answer/*.jsonl` record, so
/// answer files move between this tool and FastChat unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The question answered.
    pub question_id: QuestionId,
    /// A unique id for this answer (FastChat uses a shortuuid).
    pub answer_id: String,
    /// The model's name (FastChat's judge uses the answer file's stem as the model name instead).
    pub model_id: String,
    /// The sampled completions; at least one.
    pub choices: Vec<Choice>,
    /// Unix time the answer was written, in seconds.
    pub tstamp: f64,
}

impl Answer {
    /// A one-choice answer, what `vicuna eval` generation writes for each question.
    pub fn new(question_id: QuestionId, answer_id: String, model_id: String, turns: Vec<String>, tstamp: f64) -> Self {
        Answer { question_id, answer_id, model_id, choices: vec![Choice { index: 0, turns }], tstamp }
    }

    /// The turns of the first choice, the ones FastChat's judge reads (`choices[0]["turns"]`).
    pub fn turns(&self) -> &[String] {
        self.choices.first().map(|c| c.turns.as_slice()).unwrap_or(&[])
    }

    /// The record as one JSON line without the newline, for appending to an answer file.
    pub fn to_line(&self) -> Result<String> {
        serde_json::to_string(self).with_context(|| format!("cannot serialise the answer to {}", self.question_id))
    }
}

/// Parses one answer record: llm_judge's format when it has `choices`, otherwise the older
/// Vicuna-80 format (`text` becomes the single turn; `metadata` is dropped).
pub fn parse_answer(value: Value) -> Result<Answer> {
    let Value::Object(object) = value else { bail!("an answer must be a JSON object, found {}", kind(&value)) };
    let question_id = QuestionId::from_json(object.get("question_id").context("missing field \"question_id\"")?)?;
    let optional_string = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => bail!("answer to {question_id}: \"{key}\" must be a string, found {}", kind(other)),
    };
    let answer_id = optional_string("answer_id")?;
    let model_id = optional_string("model_id")?;
    let tstamp = match object.get("tstamp") {
        None | Some(Value::Null) => 0.0,
        Some(value) => {
            value.as_f64().with_context(|| format!("answer to {question_id}: \"tstamp\" is not a number"))?
        }
    };
    let choices = match (object.get("choices"), object.get("text")) {
        (Some(Value::Array(items)), _) => parse_choices(items).with_context(|| format!("answer to {question_id}"))?,
        (Some(other), _) => bail!("answer to {question_id}: \"choices\" must be a list, found {}", kind(other)),
        (None, Some(Value::String(text))) => vec![Choice { index: 0, turns: vec![text.clone()] }],
        (None, Some(other)) => bail!("answer to {question_id}: \"text\" must be a string, found {}", kind(other)),
        (None, None) => bail!("answer to {question_id} has neither \"choices\" (llm_judge) nor \"text\" (Vicuna-80)"),
    };
    Ok(Answer { question_id, answer_id, model_id, choices, tstamp })
}

fn parse_choices(items: &[Value]) -> Result<Vec<Choice>> {
    if items.is_empty() {
        bail!("\"choices\" is empty");
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let object = item.as_object().with_context(|| format!("choice {i} is not an object"))?;
            let turns =
                string_list(object.get("turns").with_context(|| format!("choice {i} has no \"turns\""))?, "turns")?;
            if turns.is_empty() {
                bail!("choice {i} has no turns");
            }
            let index = match object.get("index") {
                None => i,
                Some(v) => {
                    v.as_u64().and_then(|n| usize::try_from(n).ok()).context("choice \"index\" is not a count")?
                }
            };
            Ok(Choice { index, turns })
        })
        .collect()
}

/// Reads an answer file in either format. Lenient: unusable lines are skipped and returned with
/// their line numbers (a generator killed mid-write leaves a torn last line; the rest is good).
pub fn read_answers(path: &Path) -> Result<Loaded<Answer>> {
    jsonl::read_lenient(path, parse_answer)
}

/// Imports another model's answers (either format) under one model name: `model_id` when given,
/// otherwise each record's own `model_id`, or the file stem when the record has none (FastChat's
/// judge names models by answer file stem).
pub fn import_answers(path: &Path, model_id: Option<&str>) -> Result<Loaded<Answer>> {
    let stem = model_name_from_path(path);
    let mut loaded = read_answers(path)?;
    for (_, answer) in &mut loaded.items {
        match model_id {
            Some(name) => answer.model_id = name.to_string(),
            None if answer.model_id.is_empty() => answer.model_id = stem.clone(),
            None => {}
        }
    }
    Ok(loaded)
}

/// The model name FastChat derives from an answer file: its name without `.jsonl`.
pub fn model_name_from_path(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(".jsonl").map(str::to_string).unwrap_or(name)
}

/// `vicuna eval import`: reads another model's answer file and writes it in our answer format to
/// `output` (never over the input). Returns the number of answers and a warning per skipped line.
pub fn import_file(input: &Path, model_id: Option<&str>, output: &Path) -> Result<(usize, Vec<String>)> {
    crate::util::atomic::ensure_distinct(&[input], &[("--output", output)])?;
    let loaded = import_answers(input, model_id)?;
    let warnings = loaded.skipped_messages();
    let answers = reorganize(loaded.records());
    crate::util::atomic::write_file(output, |w| write_answers(w, &answers))?;
    Ok((answers.len(), warnings))
}

/// Writes answers as JSON Lines (one record per line, FastChat's layout).
pub fn write_answers(out: &mut impl Write, answers: &[Answer]) -> Result<()> {
    for answer in answers {
        writeln!(out, "{}", answer.to_line()?).context("cannot write an answer line")?;
    }
    Ok(())
}

/// Answers keyed by question id, the last one winning as in FastChat's `load_model_answers`
/// (a re-run appends newer answers), with the number of earlier answers replaced.
pub fn index_answers(answers: Vec<Answer>) -> (BTreeMap<QuestionId, Answer>, usize) {
    let mut index = BTreeMap::new();
    let mut replaced = 0;
    for answer in answers {
        if index.insert(answer.question_id.clone(), answer).is_some() {
            replaced += 1;
        }
    }
    (index, replaced)
}

/// The answers sorted by question id with duplicates removed (last kept), as FastChat's
/// `reorg_answer_file` leaves an answer file after generation.
pub fn reorganize(answers: Vec<Answer>) -> Vec<Answer> {
    index_answers(answers).0.into_values().collect()
}

/// The questions that `answers` cannot be judged on: no answer, or fewer answer turns than the
/// question has (FastChat's `check_data` asserts on the first; the judge would crash on the
/// second). Returned in question order so the caller can list them and say which to regenerate.
pub fn missing_answers<'q>(questions: &'q [Question], answers: &BTreeMap<QuestionId, Answer>) -> Vec<&'q QuestionId> {
    questions
        .iter()
        .filter(|q| answers.get(&q.id).is_none_or(|a| a.turns().len() < q.turns.len()))
        .map(|q| &q.id)
        .collect()
}

/// MT-bench's per-category sampling temperatures (`temperature_config` in llm_judge/common.py):
/// creative categories sample, exact ones decode greedily.
pub const TEMPERATURE_CONFIG: [(&str, f64); 9] = [
    ("writing", 0.7),
    ("roleplay", 0.7),
    ("extraction", 0.0),
    ("math", 0.0),
    ("coding", 0.0),
    ("reasoning", 0.0),
    ("stem", 0.1),
    ("humanities", 0.1),
    ("arena-hard-200", 0.0),
];

/// The temperature FastChat's `gen_model_answer.py` uses for a category: the table's value, 0.7
/// for any other category (so every Vicuna-80 category but math and coding gets 0.7; those two
/// get 0.0 through the table).
pub fn default_temperature(category: &str) -> f64 {
    TEMPERATURE_CONFIG.iter().find(|(name, _)| *name == category).map_or(0.7, |&(_, t)| t)
}

/// Whether a temperature means greedy decoding: `gen_model_answer.py` sets `do_sample=False`
/// below 1e-4.
pub fn is_greedy(temperature: f64) -> bool {
    temperature < 1e-4
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn questions(text: &str) -> Result<Vec<Question>> {
        let loaded = jsonl::parse_lenient(Path::new("q.jsonl"), text.as_bytes(), parse_question);
        check_unique_ids(&loaded)?;
        loaded.into_strict()
    }

    #[test]
    fn reads_vicuna80_and_mt_bench_questions_into_one_type() {
        let text = concat!(
            r#"{"question_id": 1, "text": "How can I improve my time management skills?", "category": "generic"}"#,
            "\n",
            r#"{"question_id": 101, "category": "reasoning", "turns": ["Q1", "Q2"], "reference": ["R1", "R2"]}"#,
            "\n",
            r#"{"question_id": "dfe95dfd", "category": "arena-hard-200", "turns": ["Q"]}"#,
            "\n"
        );
        let qs = questions(text).unwrap();
        assert_eq!(qs.len(), 3);
        assert_eq!(qs[0].id, QuestionId::Int(1));
        assert_eq!(qs[0].turns, vec!["How can I improve my time management skills?"]);
        assert!(qs[0].reference.is_empty() && !qs[0].is_multi_turn());
        assert_eq!(qs[1].reference, vec!["R1", "R2"]);
        assert!(qs[1].is_multi_turn());
        assert_eq!(qs[2].id, QuestionId::Str("dfe95dfd".into()));
        // Ids are written back as they were read.
        assert_eq!(qs[0].to_json()["question_id"], json!(1));
        assert_eq!(qs[2].to_json()["question_id"], json!("dfe95dfd"));
        assert_eq!(qs[1].to_json()["reference"], json!(["R1", "R2"]));
        assert!(qs[0].to_json().get("reference").is_none());
    }

    #[test]
    fn question_errors_name_the_line_and_the_fix() {
        let cases = [
            (r#"{"question_id": 1, "text": "x"}"#, "q.jsonl:1: question 1: every question needs a \"category\""),
            (r#"{"question_id": 1.5, "text": "x", "category": "c"}"#, "q.jsonl:1: \"question_id\" 1.5 is not an integer"),
            (r#"{"question_id": 2, "category": "c"}"#, "q.jsonl:1: question 2 has neither"),
            (r#"{"question_id": 2, "category": "c", "turns": []}"#, "q.jsonl:1: question 2 has an empty"),
            (r#"{"question_id": 2, "category": "c", "turns": [3]}"#, "q.jsonl:1: \"turns\"[0] must be a string"),
            ("{\"question_id\": 1, \"text\": \"a\", \"category\": \"c\"}\n\n{\"question_id\": 1, \"text\": \"b\", \"category\": \"c\"}", "q.jsonl:3: question id 1 already used on line 1"),
        ];
        for (text, expected) in cases {
            let message = format!("{:#}", questions(text).unwrap_err());
            assert!(message.starts_with(expected), "{text}\n=> {message}");
        }
    }

    #[test]
    fn reads_llm_judge_answers_and_imports_the_old_vicuna80_format() {
        let text = concat!(
            r#"{"question_id": 81, "answer_id": "Xy", "model_id": "vicuna-7b", "choices": [{"index": 0, "turns": ["T1", "T2"]}], "tstamp": 1687221286.5}"#,
            "\n",
            r#"{"answer_id": "cV4z", "model_id": "vicuna-13b:20230322-clean-lang", "question_id": 1, "text": "Improving your time management", "metadata": {}}"#,
            "\n",
            r#"{"question_id": 82, "choices": []}"#,
            "\n",
            r#"{"question_id": 83, "answer_id": "a", "model_id": "m", "choices": [{"index": 0, "turns": ["t"]}], "tstamp": 1"#,
            "\n"
        );
        let loaded = jsonl::parse_lenient(Path::new("a.jsonl"), text.as_bytes(), parse_answer);
        assert_eq!(loaded.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), vec![3, 4]);
        assert!(loaded.skipped[0].error.contains("\"choices\" is empty"), "{:?}", loaded.skipped);
        let answers = loaded.records();
        assert_eq!(answers[0].turns(), ["T1", "T2"]);
        assert_eq!(answers[0].tstamp, 1687221286.5);
        assert_eq!(answers[1].turns(), ["Improving your time management"]);
        assert_eq!(answers[1].model_id, "vicuna-13b:20230322-clean-lang");
        assert_eq!(answers[1].tstamp, 0.0);
        // Serialised back in llm_judge's format, round-tripping exactly.
        let line = answers[1].to_line().unwrap();
        assert_eq!(
            line,
            r#"{"question_id":1,"answer_id":"cV4z","model_id":"vicuna-13b:20230322-clean-lang","choices":[{"index":0,"turns":["Improving your time management"]}],"tstamp":0.0}"#
        );
        assert_eq!(parse_answer(serde_json::from_str(&line).unwrap()).unwrap(), answers[1]);
        let mut out = Vec::new();
        write_answers(&mut out, &answers).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }

    #[test]
    fn import_names_the_model_by_override_record_or_file_stem() {
        let dir = std::env::temp_dir().join(format!("evalq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path: PathBuf = dir.join("alpaca-13b.jsonl");
        std::fs::write(
            &path,
            "{\"question_id\": 1, \"text\": \"a\"}\n{\"question_id\": 2, \"text\": \"b\", \"model_id\": \"x\"}\n",
        )
        .unwrap();
        let names = |m: Option<&str>| -> Vec<String> {
            import_answers(&path, m).unwrap().records().into_iter().map(|a| a.model_id).collect()
        };
        assert_eq!(names(None), vec!["alpaca-13b", "x"]);
        assert_eq!(names(Some("alpaca")), vec!["alpaca", "alpaca"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn index_keeps_the_last_answer_and_reports_missing_ones() {
        let answer = |id: i64, turns: &[&str]| {
            Answer::new(id.into(), String::new(), "m".into(), turns.iter().map(|t| t.to_string()).collect(), 0.0)
        };
        let (index, replaced) = index_answers(vec![answer(2, &["old"]), answer(1, &["a"]), answer(2, &["new"])]);
        assert_eq!(replaced, 1);
        assert_eq!(index[&QuestionId::Int(2)].turns(), ["new"]);
        let sorted = reorganize(vec![answer(3, &["c"]), answer(1, &["a"]), answer(3, &["d"])]);
        assert_eq!(sorted.iter().map(|a| a.turns()[0].as_str()).collect::<Vec<_>>(), vec!["a", "d"]);
        let question = |id: i64, turns: usize| Question {
            id: id.into(),
            category: "c".into(),
            turns: vec!["q".into(); turns],
            reference: vec![],
        };
        let qs = [question(1, 1), question(2, 2), question(4, 1)];
        let missing = missing_answers(&qs, &index);
        assert_eq!(missing, vec![&QuestionId::Int(2), &QuestionId::Int(4)]);
    }

    #[test]
    fn temperatures_follow_fastchat_temperature_config() {
        let expected = [
            ("writing", 0.7),
            ("roleplay", 0.7),
            ("extraction", 0.0),
            ("math", 0.0),
            ("coding", 0.0),
            ("reasoning", 0.0),
            ("stem", 0.1),
            ("humanities", 0.1),
            ("arena-hard-200", 0.0),
            ("generic", 0.7),
            ("fermi", 0.7),
            ("", 0.7),
        ];
        for (category, t) in expected {
            assert_eq!(default_temperature(category), t, "{category}");
        }
        assert!(is_greedy(0.0) && !is_greedy(0.1));
    }

    #[test]
    fn ids_order_numerically_and_print_as_written() {
        let mut ids = vec![QuestionId::from("b"), QuestionId::Int(10), QuestionId::Int(9)];
        ids.sort();
        assert_eq!(ids.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["9", "10", "b"]);
        assert_eq!(serde_json::to_string(&ids).unwrap(), r#"[9,10,"b"]"#);
    }
}
