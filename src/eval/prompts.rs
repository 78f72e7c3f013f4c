//! Judge prompts: loading, the built-in copies, choosing one per question, and rendering the
//! system and user messages for a judgment.
//!
//! Two reference formats are read into one [`JudgePrompt`] type:
//! - FastChat llm_judge's `data/judge_prompts.jsonl` (`{"name", "type", "system_prompt",
//!   "prompt_template", "description", "category", "output_format"}`); the eight MT-bench prompts
//!   it ships are built in, byte for byte (`judge_prompts.jsonl` beside this file, a verbatim
//!   copy of FastChat's, Apache-2.0).
//! - The original Vicuna-80 review prompts (`fastchat/eval/table/prompt.jsonl`: `{"prompt_id",
//!   "system_prompt", "prompt_template", "defaults": {"prompt"}, "description", "category"}`),
//!   built in from `vicuna80_prompts.jsonl` (verbatim copy) as `vicuna80-general`,
//!   `vicuna80-coding` and `vicuna80-math`, chosen per category as `reviewer.jsonl` does.
//!
//! [`render`] fills the template exactly as `run_judge_pair` / `run_judge_single` (llm_judge
//! `common.py`) and `gen_prompt` (`eval_gpt_review.py`) call Python's `str.format`: one pass, so
//! braces inside questions or answers are never taken for placeholders.
use super::jsonl::{self, kind};
use super::questions::{Answer, Question};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// FastChat's `judge_prompts.jsonl`, verbatim.
const MT_BENCH_PROMPTS: &str = include_str!("judge_prompts.jsonl");
/// FastChat's `fastchat/eval/table/prompt.jsonl` (Vicuna-80 reviewer prompts), verbatim.
const VICUNA80_PROMPTS: &str = include_str!("vicuna80_prompts.jsonl");

/// Whether a prompt compares two answers or grades one: decides which answers `render` needs
/// and which judgment record the judge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeType {
    /// Two answers side by side (`"pairwise"`).
    Pairwise,
    /// One answer graded alone (`"single"`).
    Single,
}

/// What the judge is asked to write, which decides how [`super::verdict::parse`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    /// `"[[A]]"`: `[[A]]`, `[[B]]` or `[[C]]` (tie) after an explanation.
    #[serde(rename = "[[A]]")]
    Winner,
    /// `"[[rating]]"`: one score, e.g. `Rating: [[5]]`.
    #[serde(rename = "[[rating]]")]
    Rating,
    /// `"[[rating_a,rating_b]]"`: two scores in one bracket, e.g. `[[8,6]]`.
    #[serde(rename = "[[rating_a,rating_b]]")]
    TwoRatings,
    /// `"vicuna80-scores"` (this tool's name; the original files have no `output_format`): two
    /// scores on the first line, e.g. `8 9`, then an explanation.
    #[serde(rename = "vicuna80-scores")]
    Vicuna80Scores,
}

/// One judge prompt: everything needed to render the messages and to parse the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgePrompt {
    /// Unique name (`pair-v2`, `single-math-v1-multi-turn`, `vicuna80-general`); judgments record
    /// it so a report can tell prompts apart.
    pub name: String,
    /// Pairwise or single grading (`"type"` in the file).
    #[serde(rename = "type")]
    pub kind: JudgeType,
    /// The system message.
    pub system_prompt: String,
    /// The user message, with `{placeholders}` filled by [`render`].
    pub prompt_template: String,
    /// Free text from the file.
    #[serde(default)]
    pub description: String,
    /// `general`, `math`, `coding`, ... as written in the file. Informational: FastChat picks
    /// prompts by name (see [`mt_bench_prompt_name`]), and its own file labels
    /// `pair-math-v1-multi-turn` as `general`.
    #[serde(default)]
    pub category: String,
    /// What the judge must write.
    pub output_format: OutputFormat,
    /// Extra named values for the template (the Vicuna-80 prompts' `defaults`, i.e. `{prompt}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, String>,
}

impl JudgePrompt {
    /// Whether the template needs a reference answer (`{ref_answer_1}`), so callers can load
    /// reference answers only for the prompts that use them.
    pub fn needs_reference(&self) -> bool {
        self.prompt_template.contains("{ref_answer_1}")
    }

    /// Whether the template shows two turns (`{question_2}`): a multi-turn prompt.
    pub fn is_multi_turn(&self) -> bool {
        self.prompt_template.contains("{question_2}")
    }
}

/// A set of prompts by name, what `--judge-prompts FILE` loads and the built-ins provide.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptSet {
    prompts: BTreeMap<String, JudgePrompt>,
}

impl PromptSet {
    /// The prompt called `name`, or an error listing the names there are.
    pub fn get(&self, name: &str) -> Result<&JudgePrompt> {
        self.prompts.get(name).with_context(|| {
            format!(
                "no judge prompt named {name:?}; known: {}",
                self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Adds or replaces a prompt (to override a built-in with an edited copy).
    pub fn insert(&mut self, prompt: JudgePrompt) {
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    /// Adds every prompt of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: PromptSet) {
        self.prompts.extend(other.prompts);
    }

    /// The prompts in name order.
    pub fn iter(&self) -> impl Iterator<Item = &JudgePrompt> {
        self.prompts.values()
    }

    /// How many prompts there are.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// Parses a `judge_prompts.jsonl` text. Strict: a bad line or a repeated name is an error naming
/// the line (FastChat's dict would silently keep the last of two same-named prompts).
pub fn parse_judge_prompts(origin: &Path, text: &str) -> Result<PromptSet> {
    let loaded = jsonl::parse_lenient(origin, text.as_bytes(), |value| {
        let prompt: JudgePrompt = serde_json::from_value(value).context(
            "not a judge prompt (needs name, type: pairwise|single, system_prompt, prompt_template, \
             output_format: [[A]]|[[rating]]|[[rating_a,rating_b]]|vicuna80-scores)",
        )?;
        check_template(&prompt.prompt_template).with_context(|| format!("prompt {:?}", prompt.name))?;
        Ok(prompt)
    });
    let mut set = PromptSet::default();
    let mut lines = BTreeMap::new();
    for (line, prompt) in &loaded.items {
        if let Some(first) = lines.insert(prompt.name.clone(), *line) {
            bail!(
                "{}:{line}: prompt name {:?} already used on line {first}; rename one",
                origin.display(),
                prompt.name
            );
        }
        set.insert(prompt.clone());
    }
    loaded.into_strict()?;
    Ok(set)
}

/// Loads a `judge_prompts.jsonl` file (FastChat's format).
pub fn load_judge_prompts(path: &Path) -> Result<PromptSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read judge prompts {}; check the path", path.display()))?;
    parse_judge_prompts(path, &text)
}

/// The eight MT-bench prompts FastChat ships (pair-v2, pair-v2-multi-turn, pair-math-v1,
/// pair-math-v1-multi-turn, single-v1, single-v1-multi-turn, single-math-v1,
/// single-math-v1-multi-turn), exact copies, so results compare with published MT-bench numbers.
pub fn builtin_judge_prompts() -> PromptSet {
    // The embedded file is fixed at build time and checked by the tests below.
    parse_judge_prompts(Path::new("builtin judge_prompts.jsonl"), MT_BENCH_PROMPTS)
        .expect("the built-in judge_prompts.jsonl parses (checked by tests)")
}

/// Parses the original Vicuna-80 `prompt.jsonl` format into prompts named by
/// [`vicuna80_prompt_name`] from each record's `category` (`general`, `coding`, `math`).
pub fn parse_vicuna80_prompts(origin: &Path, text: &str) -> Result<PromptSet> {
    let loaded = jsonl::parse_lenient(origin, text.as_bytes(), |value| {
        let Value::Object(object) = value else { bail!("a prompt must be a JSON object, found {}", kind(&value)) };
        let field = |key: &str| jsonl::string_field(&object, key);
        let category = field("category")?;
        let defaults = match object.get("defaults") {
            None => BTreeMap::new(),
            Some(value) => serde_json::from_value(value.clone()).context("\"defaults\" must map names to strings")?,
        };
        let prompt = JudgePrompt {
            name: vicuna80_prompt_name(&category).to_string(),
            kind: JudgeType::Pairwise,
            system_prompt: field("system_prompt")?,
            prompt_template: field("prompt_template")?,
            description: field("description").unwrap_or_default(),
            category,
            output_format: OutputFormat::Vicuna80Scores,
            defaults,
        };
        check_template(&prompt.prompt_template).with_context(|| format!("prompt {:?}", prompt.name))?;
        Ok(prompt)
    });
    let mut set = PromptSet::default();
    for (line, prompt) in &loaded.items {
        if set.prompts.contains_key(&prompt.name) {
            bail!(
                "{}:{line}: a second prompt for category {:?}; keep one per category",
                origin.display(),
                prompt.category
            );
        }
        set.insert(prompt.clone());
    }
    loaded.into_strict()?;
    Ok(set)
}

/// The three original Vicuna-80 review prompts (general, coding, math), exact copies of FastChat's
/// `prompt.jsonl`, so Vicuna-80 totals are comparable with the Vicuna blog's Table 2.
pub fn builtin_vicuna80_prompts() -> PromptSet {
    parse_vicuna80_prompts(Path::new("builtin vicuna80_prompts.jsonl"), VICUNA80_PROMPTS)
        .expect("the built-in vicuna80_prompts.jsonl parses (checked by tests)")
}

/// All built-in prompts: MT-bench's eight and Vicuna-80's three.
pub fn builtin_prompts() -> PromptSet {
    let mut set = builtin_judge_prompts();
    set.extend(builtin_vicuna80_prompts());
    set
}

/// Categories judged against a reference answer (`NEED_REF_CATS` in llm_judge/common.py).
pub const NEED_REF_CATS: [&str; 4] = ["math", "reasoning", "coding", "arena-hard-200"];

/// Whether MT-bench judges a category with the reference-guided (math) prompts.
pub fn needs_reference(category: &str) -> bool {
    NEED_REF_CATS.contains(&category)
}

/// The MT-bench prompt FastChat's `gen_judgment.py` uses for a question: pair-* or single-*,
/// -math- for [`NEED_REF_CATS`], -multi-turn when judging the second turn.
pub fn mt_bench_prompt_name(kind: JudgeType, category: &str, multi_turn: bool) -> &'static str {
    match (kind, needs_reference(category), multi_turn) {
        (JudgeType::Pairwise, false, false) => "pair-v2",
        (JudgeType::Pairwise, false, true) => "pair-v2-multi-turn",
        (JudgeType::Pairwise, true, false) => "pair-math-v1",
        (JudgeType::Pairwise, true, true) => "pair-math-v1-multi-turn",
        (JudgeType::Single, false, false) => "single-v1",
        (JudgeType::Single, false, true) => "single-v1-multi-turn",
        (JudgeType::Single, true, false) => "single-math-v1",
        (JudgeType::Single, true, true) => "single-math-v1-multi-turn",
    }
}

/// The Vicuna-80 review prompt for a category, as `eval_gpt_review.py`'s `gen_prompt` picks the
/// reviewer: `coding` and `math` have their own, every other category uses the general one.
pub fn vicuna80_prompt_name(category: &str) -> &'static str {
    match category {
        "coding" => "vicuna80-coding",
        "math" => "vicuna80-math",
        _ => "vicuna80-general",
    }
}

/// The two messages sent to the judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Messages {
    /// The system message (the prompt's `system_prompt`).
    pub system: String,
    /// The user message (the filled template).
    pub user: String,
}

impl Messages {
    /// Both messages as one user message, for judges without a system role: FastChat's
    /// `run_judge_pair` does this for Anthropic judges (`"[Instruction]\n" + system + "\n\n" +
    /// user`), except when the system prompt is the generic "You are a helpful assistant.".
    pub fn folded_into_user(&self) -> String {
        if self.system == "You are a helpful assistant." {
            self.user.clone()
        } else {
            format!("[Instruction]\n{}\n\n{}", self.system, self.user)
        }
    }
}

/// Renders the judge's messages for one judgment, with the keys FastChat passes to `format`:
/// - pairwise: `question`, `answer_a`, `answer_b`; multi-turn: `question_1`, `question_2`,
///   `answer_a_1`, `answer_b_1`, `answer_a_2`, `answer_b_2` (`run_judge_pair`);
/// - single: `question`, `answer`; multi-turn: `question_1`, `question_2`, `answer_1`,
///   `answer_2` (`run_judge_single`);
/// - Vicuna-80 (`vicuna80-scores` prompts): `question`, `answer_1` (= answer A), `answer_2`
///   (= answer B) and the prompt's `defaults` (`gen_prompt`);
/// - with a reference: `ref_answer_1` (and `ref_answer_2` when multi-turn).
///
/// Answers are read from the first choice, as FastChat does. `reference` is the reference
/// answer's turns (a reference answer file's `turns()` or the question's `reference`). Fails,
/// saying what is missing, when the template needs a value not given (a reference, a second
/// turn, answer B) or a turn is missing.
pub fn render(
    prompt: &JudgePrompt,
    question: &Question,
    answer_a: &Answer,
    answer_b: Option<&Answer>,
    reference: Option<&[String]>,
    multi_turn: bool,
) -> Result<Messages> {
    let id = &question.id;
    let turn = |turns: &[String], i: usize, what: &str| -> Result<String> {
        turns
            .get(i)
            .cloned()
            .with_context(|| format!("question {id}: {what} has no turn {} (prompt {} needs it)", i + 1, prompt.name))
    };
    let mut values: BTreeMap<&str, String> = prompt.defaults.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    if let Some(reference) = reference {
        values.insert("ref_answer_1", turn(reference, 0, "the reference answer")?);
        if multi_turn {
            values.insert("ref_answer_2", turn(reference, 1, "the reference answer")?);
        }
    }
    let a = answer_a.turns();
    match (prompt.kind, prompt.output_format) {
        (JudgeType::Pairwise, format) => {
            let b = answer_b
                .with_context(|| format!("question {id}: prompt {} compares two answers; give answer B", prompt.name))?
                .turns();
            if format == OutputFormat::Vicuna80Scores {
                values.insert("question", turn(&question.turns, 0, "the question")?);
                values.insert("answer_1", turn(a, 0, "answer A")?);
                values.insert("answer_2", turn(b, 0, "answer B")?);
            } else if multi_turn {
                values.insert("question_1", turn(&question.turns, 0, "the question")?);
                values.insert("question_2", turn(&question.turns, 1, "the question")?);
                values.insert("answer_a_1", turn(a, 0, "answer A")?);
                values.insert("answer_b_1", turn(b, 0, "answer B")?);
                values.insert("answer_a_2", turn(a, 1, "answer A")?);
                values.insert("answer_b_2", turn(b, 1, "answer B")?);
            } else {
                values.insert("question", turn(&question.turns, 0, "the question")?);
                values.insert("answer_a", turn(a, 0, "answer A")?);
                values.insert("answer_b", turn(b, 0, "answer B")?);
            }
        }
        (JudgeType::Single, _) => {
            if multi_turn {
                values.insert("question_1", turn(&question.turns, 0, "the question")?);
                values.insert("question_2", turn(&question.turns, 1, "the question")?);
                values.insert("answer_1", turn(a, 0, "the answer")?);
                values.insert("answer_2", turn(a, 1, "the answer")?);
            } else {
                values.insert("question", turn(&question.turns, 0, "the question")?);
                values.insert("answer", turn(a, 0, "the answer")?);
            }
        }
    }
    let user = format_template(&prompt.prompt_template, &values).with_context(|| {
        let hint = if prompt.needs_reference() && reference.is_none() {
            "; this prompt is reference-guided: give the reference answer (MT-bench: reference_answer/gpt-4.jsonl)"
        } else if prompt.is_multi_turn() != multi_turn {
            "; the prompt's turn count does not match the multi_turn flag"
        } else {
            ""
        };
        format!("question {id}: cannot fill prompt {}{hint}", prompt.name)
    })?;
    Ok(Messages { system: prompt.system_prompt.clone(), user })
}

/// Python's `str.format` for named fields: `{name}` is replaced by its value in one pass, `{{` and
/// `}}` are literal braces; an unknown name or a lone brace is an error (Python raises
/// `KeyError` / `ValueError`). Values are inserted verbatim, never re-scanned.
pub fn format_template(template: &str, values: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + values.values().map(String::len).sum::<usize>());
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}').context("a '{' in the template is never closed (write '{{' for a brace)")?;
            let name = &after[..end];
            let value = values.get(name).with_context(|| {
                format!("the template uses {{{name}}}, which is not given (given: {})", keys(values))
            })?;
            out.push_str(value);
            rest = &after[end + 1..];
        } else {
            bail!("a lone '}}' in the template (write '}}}}' for a brace)");
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn keys(values: &BTreeMap<&str, String>) -> String {
    values.keys().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(", ")
}

/// Checks a template's braces and placeholder names at load time, so a broken prompt file fails
/// before any judge call is paid for.
fn check_template(template: &str) -> Result<()> {
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}').context("a '{' in the template is never closed (write '{{' for a brace)")?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("placeholder {{{name}}} is not a plain name");
            }
            rest = &after[end + 1..];
        } else {
            bail!("a lone '}}' in the template (write '}}}}' for a brace)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::questions::QuestionId;

    fn question(turns: &[&str], category: &str) -> Question {
        Question {
            id: QuestionId::Int(81),
            category: category.into(),
            turns: turns.iter().map(|t| t.to_string()).collect(),
            reference: vec![],
        }
    }

    fn answer(turns: &[&str]) -> Answer {
        Answer::new(81.into(), "id".into(), "m".into(), turns.iter().map(|t| t.to_string()).collect(), 0.0)
    }

    #[test]
    fn builtins_are_fastchats_eight_mt_bench_and_three_vicuna80_prompts() {
        let set = builtin_prompts();
        let names: Vec<&str> = set.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "pair-math-v1",
                "pair-math-v1-multi-turn",
                "pair-v2",
                "pair-v2-multi-turn",
                "single-math-v1",
                "single-math-v1-multi-turn",
                "single-v1",
                "single-v1-multi-turn",
                "vicuna80-coding",
                "vicuna80-general",
                "vicuna80-math",
            ]
        );
        for p in set.iter() {
            let pairwise = p.name.starts_with("pair") || p.name.starts_with("vicuna80");
            assert_eq!(p.kind == JudgeType::Pairwise, pairwise, "{}", p.name);
            assert_eq!(p.is_multi_turn(), p.name.ends_with("multi-turn"), "{}", p.name);
            assert_eq!(p.needs_reference(), p.name.contains("math-v1"), "{}", p.name);
        }
        let general = set.get("vicuna80-general").unwrap();
        assert_eq!(
            general.system_prompt,
            "You are a helpful and precise assistant for checking the quality of the answer."
        );
        assert!(general.defaults["prompt"].starts_with(
            "We would like to request your feedback on the performance of two AI assistants in response to the user \
             question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of their \
             responses."
        ));
        assert!(set.get("vicuna80-math").unwrap().defaults["prompt"].contains("output a Python tuple"));
        assert_eq!(set.get("single-v1").unwrap().output_format, OutputFormat::Rating);
        assert_eq!(set.get("pair-v2").unwrap().output_format, OutputFormat::Winner);
        let err = set.get("pair-v9").unwrap_err().to_string();
        assert!(err.contains("no judge prompt named \"pair-v9\"") && err.contains("pair-v2"), "{err}");
    }

    #[test]
    fn prompt_choice_follows_gen_judgment_and_gen_prompt() {
        use JudgeType::*;
        assert_eq!(mt_bench_prompt_name(Pairwise, "writing", false), "pair-v2");
        assert_eq!(mt_bench_prompt_name(Pairwise, "math", true), "pair-math-v1-multi-turn");
        assert_eq!(mt_bench_prompt_name(Single, "reasoning", false), "single-math-v1");
        assert_eq!(mt_bench_prompt_name(Single, "coding", true), "single-math-v1-multi-turn");
        assert_eq!(mt_bench_prompt_name(Single, "stem", true), "single-v1-multi-turn");
        assert_eq!(mt_bench_prompt_name(Single, "arena-hard-200", false), "single-math-v1");
        assert_eq!(vicuna80_prompt_name("coding"), "vicuna80-coding");
        assert_eq!(vicuna80_prompt_name("math"), "vicuna80-math");
        assert_eq!(vicuna80_prompt_name("fermi"), "vicuna80-general");
    }

    #[test]
    fn renders_pairwise_single_turn_like_run_judge_pair() {
        let set = builtin_prompts();
        let m = render(
            set.get("pair-v2").unwrap(),
            &question(&["Q {answer_b}"], "writing"),
            &answer(&["A"]),
            Some(&answer(&["B {x}"])),
            None,
            false,
        )
        .unwrap();
        assert!(m.system.starts_with("Please act as an impartial judge"));
        assert_eq!(
            m.user,
            "[User Question]\nQ {answer_b}\n\n[The Start of Assistant A's Answer]\nA\n[The End of Assistant A's Answer]\n\n\
             [The Start of Assistant B's Answer]\nB {x}\n[The End of Assistant B's Answer]"
        );
    }

    #[test]
    fn renders_multi_turn_reference_guided_single() {
        let set = builtin_prompts();
        let reference = vec!["R1".to_string(), "R2".to_string()];
        let m = render(
            set.get("single-math-v1-multi-turn").unwrap(),
            &question(&["Q1", "Q2"], "math"),
            &answer(&["A1", "A2"]),
            None,
            Some(&reference),
            true,
        )
        .unwrap();
        assert_eq!(
            m.user,
            "<|The Start of Reference Answer|>\n\n### User:\nQ1\n\n### Reference answer:\nR1\n\n### User:\nQ2\n\n\
             ### Reference answer:\nR2\n\n<|The End of Reference Answer|>\n\n\n<|The Start of Assistant A's Conversation \
             with User|>\n\n### User:\nQ1\n\n### Assistant A:\nA1\n\n### User:\nQ2\n\n### Assistant A:\nA2\n\n<|The End of \
             Assistant A's Conversation with User|>"
        );
        let single = render(
            set.get("single-math-v1").unwrap(),
            &question(&["Q1", "Q2"], "math"),
            &answer(&["A1", "A2"]),
            None,
            Some(&reference),
            false,
        )
        .unwrap();
        assert!(single.user.ends_with(
            "[Question]\nQ1\n\n[The Start of Reference Answer]\nR1\n[The End of Reference Answer]\n\n\
             [The Start of Assistant's Answer]\nA1\n[The End of Assistant's Answer]"
        ));
        assert!(single.system == "You are a helpful assistant." && single.folded_into_user() == single.user);
    }

    #[test]
    fn renders_pairwise_multi_turn_with_all_six_keys() {
        let set = builtin_prompts();
        let m = render(
            set.get("pair-v2-multi-turn").unwrap(),
            &question(&["Q1", "Q2"], "writing"),
            &answer(&["a1", "a2"]),
            Some(&answer(&["b1", "b2"])),
            None,
            true,
        )
        .unwrap();
        let order: Vec<usize> =
            ["Q1", "a1", "Q2", "a2", "b1", "b2"].iter().map(|s| m.user.find(&format!("\n{s}\n")).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", m.user);
        assert!(m.folded_into_user().starts_with("[Instruction]\nPlease act as an impartial judge"));
    }

    #[test]
    fn renders_the_original_vicuna80_review_prompt() {
        let set = builtin_prompts();
        let m = render(
            set.get("vicuna80-general").unwrap(),
            &question(&["How?"], "generic"),
            &answer(&["one"]),
            Some(&answer(&["two"])),
            None,
            false,
        )
        .unwrap();
        assert_eq!(m.system, "You are a helpful and precise assistant for checking the quality of the answer.");
        let prompt = &set.get("vicuna80-general").unwrap().defaults["prompt"];
        assert_eq!(
            m.user,
            format!(
                "[Question]\nHow?\n\n[The Start of Assistant 1's Answer]\none\n\n[The End of Assistant 1's Answer]\n\n\
                 [The Start of Assistant 2's Answer]\ntwo\n\n[The End of Assistant 2's Answer]\n\n[System]\n{prompt}\n\n"
            )
        );
    }

    #[test]
    fn render_errors_say_what_is_missing() {
        let set = builtin_prompts();
        let q = question(&["Q1"], "math");
        let cases = [
            (
                render(set.get("pair-math-v1").unwrap(), &q, &answer(&["a"]), Some(&answer(&["b"])), None, false),
                "reference-guided",
            ),
            (render(set.get("pair-v2").unwrap(), &q, &answer(&["a"]), None, None, false), "give answer B"),
            (
                render(set.get("single-v1-multi-turn").unwrap(), &q, &answer(&["a", "b"]), None, None, true),
                "the question has no turn 2",
            ),
            (
                render(
                    set.get("single-v1-multi-turn").unwrap(),
                    &question(&["1", "2"], "x"),
                    &answer(&["a"]),
                    None,
                    None,
                    true,
                ),
                "the answer has no turn 2",
            ),
            (
                render(
                    set.get("single-v1").unwrap(),
                    &question(&["1", "2"], "x"),
                    &answer(&["a", "b"]),
                    None,
                    None,
                    true,
                ),
                "does not match the multi_turn flag",
            ),
        ];
        for (result, expected) in cases {
            let message = format!("{:#}", result.unwrap_err());
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn format_is_single_pass_with_python_brace_rules() {
        let values: BTreeMap<&str, String> = [("a", "{b}".to_string()), ("b", "x".to_string())].into_iter().collect();
        assert_eq!(format_template("{a}-{b} {{lit}} }}", &values).unwrap(), "{b}-x {lit} }");
        for bad in ["{c}", "{a", "a}", "{a}}"] {
            assert!(format_template(bad, &values).is_err(), "{bad}");
        }
    }

    #[test]
    fn loads_user_prompt_files_and_rejects_broken_ones() {
        let good = r#"{"name": "mine", "type": "single", "system_prompt": "s", "prompt_template": "{question} {answer} {{x}}", "output_format": "[[rating]]"}"#;
        let set = parse_judge_prompts(Path::new("p.jsonl"), good).unwrap();
        assert_eq!(set.get("mine").unwrap().kind, JudgeType::Single);
        let dup = format!("{good}\n{good}");
        let cases = [
            (dup.as_str(), "p.jsonl:2: prompt name \"mine\" already used on line 1"),
            (
                r#"{"name": "x", "type": "both", "system_prompt": "s", "prompt_template": "t", "output_format": "[[A]]"}"#,
                "p.jsonl:1: not a judge prompt",
            ),
            (
                r#"{"name": "x", "type": "single", "system_prompt": "s", "prompt_template": "{question", "output_format": "[[A]]"}"#,
                "p.jsonl:1: prompt \"x\": a '{' in the template is never closed",
            ),
        ];
        for (text, expected) in cases {
            let message = format!("{:#}", parse_judge_prompts(Path::new("p.jsonl"), text).unwrap_err());
            assert!(message.starts_with(expected), "{message}");
        }
        // A serialised prompt reads back the same (the format `--judge-prompts` files use).
        let prompt = builtin_prompts().get("vicuna80-math").unwrap().clone();
        let line = serde_json::to_string(&prompt).unwrap();
        assert_eq!(parse_judge_prompts(Path::new("p"), &line).unwrap().get("vicuna80-math").unwrap(), &prompt);
    }
}
