//! Chat templates: a conversation rendered to the exact text a model sees, with the byte ranges
//! it must learn (each assistant turn and the end-of-turn marker after it). The built-in formats
//! follow FastChat's `conversation.py` (`vicuna_v1.1`, `vicuna_v0` = its `zero_shot`, `llama-2`,
//! `llama-3`, `chatml`); `tokenizer` renders the tokenizer's own Jinja `chat_template` with
//! minijinja, as `transformers`' `apply_chat_template` does. BOS and EOS are the tokenizer's
//! (for Llama-2 that is FastChat's literal `<s>` and `</s>`), so one template fits any tokenizer.
use super::conversation::{Role, Turn};
use crate::data::tokenizer::Tokenizer;
use anyhow::{anyhow, bail, Context, Result};
use std::ops::Range;

/// FastChat's Vicuna v1.1 system prompt, the default of `vicuna_v1.1`.
pub const VICUNA_SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
/// The Vicuna v0 (FastChat `zero_shot`) system prompt.
pub const VICUNA_V0_SYSTEM: &str = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";

/// The chat formats `--template` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TemplateName {
    /// `{system} USER: {q} ASSISTANT: {a}</s>USER: ...` (FastChat's default, Vicuna v1.1 to v1.5).
    #[value(name = "vicuna_v1.1")]
    VicunaV11,
    /// `{system}\n### Human: {q}\n### Assistant: {a}\n### ...` (Vicuna v0).
    #[value(name = "vicuna_v0")]
    VicunaV0,
    /// `[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{q} [/INST] {a} </s><s>[INST] ...` (Llama-2-chat).
    #[value(name = "llama-2")]
    Llama2,
    /// `<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>` (Llama-3-Instruct).
    #[value(name = "llama-3")]
    Llama3,
    /// `<|im_start|>{role}\n{text}<|im_end|>\n` (ChatML).
    Chatml,
    /// The tokenizer's own Jinja `chat_template` from `tokenizer_config.json`.
    Tokenizer,
}

impl TemplateName {
    /// Role and end-of-turn markers the template writes that must be single special tokens.
    fn markers(self) -> &'static [&'static str] {
        match self {
            TemplateName::Llama3 => &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            TemplateName::Chatml => &["<|im_start|>", "<|im_end|>"],
            _ => &[],
        }
    }

    /// The name as `--template` spells it.
    pub fn cli_name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

/// Recipes name templates as the command line does (`template = "vicuna_v1.1"`).
impl<'de> serde::Deserialize<'de> for TemplateName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TemplateName, D::Error> {
        let name = String::deserialize(d)?;
        <TemplateName as clap::ValueEnum>::from_str(&name, false).map_err(|_| {
            let known: Vec<String> =
                <TemplateName as clap::ValueEnum>::value_variants().iter().map(|t| t.cli_name()).collect();
            serde::de::Error::custom(format!("template {name:?} is unknown (one of {})", known.join(", ")))
        })
    }
}

impl serde::Serialize for TemplateName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.cli_name())
    }
}

/// A conversation as text, with the byte ranges of `text` that are trained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// One range per assistant turn: its text and the end-of-turn marker after it.
    pub trained: Vec<Range<usize>>,
    /// Where each turn's rendering (role header included) starts in `text`; the BOS and system
    /// prompt come before the first. Splitting counts the tokens of each turn pair with it.
    pub turn_starts: Vec<usize>,
}

/// A template bound to a tokenizer's special tokens.
pub struct Template {
    name: TemplateName,
    bos: String,
    eos: String,
    jinja: Option<minijinja::Environment<'static>>,
}

impl Template {
    /// Binds `name` to `tokenizer` (its BOS and EOS, or its Jinja template for `tokenizer`).
    pub fn new(name: TemplateName, tokenizer: &Tokenizer) -> Result<Template> {
        let bos = tokenizer.bos.as_ref().map(|s| s.text.clone()).unwrap_or_default();
        let eos = tokenizer.eos.as_ref().map(|s| s.text.clone()).unwrap_or_else(|| "</s>".to_string());
        let jinja = match name {
            TemplateName::Tokenizer => {
                let source = tokenizer.chat_template.clone().with_context(|| {
                    format!("--template tokenizer: {} has no chat_template in tokenizer_config.json; choose a built-in template", tokenizer.path.display())
                })?;
                Some(jinja_env(source)?)
            }
            _ => None,
        };
        let markers = name.markers();
        let missing: Vec<&str> = markers.iter().copied().filter(|m| !tokenizer.is_special(m)).collect();
        if !missing.is_empty() {
            bail!(
                "--template {} needs the special tokens {} in the tokenizer, and {} lacks {}: its markers would be plain text that tokens can straddle; choose a template made for this tokenizer (vicuna_v1.1 fits any)",
                name.cli_name(),
                markers.join(" "),
                tokenizer.path.display(),
                missing.join(" ")
            );
        }
        Ok(Template { name, bos, eos, jinja })
    }

    /// Which template this is.
    pub fn name(&self) -> TemplateName {
        self.name
    }

    /// The system prompt used when a conversation has none.
    pub fn default_system(&self) -> Option<&'static str> {
        match self.name {
            TemplateName::VicunaV11 => Some(VICUNA_SYSTEM),
            TemplateName::VicunaV0 => Some(VICUNA_V0_SYSTEM),
            _ => None,
        }
    }

    /// Renders a whole conversation for training. `turns` alternate user, assistant.
    pub fn render(&self, system: Option<&str>, turns: &[Turn]) -> Result<Rendered> {
        self.render_inner(system, turns, false)
    }

    /// Renders a prompt for generation: `turns` end with a user turn, and the text ends where
    /// the assistant's answer begins.
    pub fn prompt(&self, system: Option<&str>, turns: &[Turn]) -> Result<String> {
        Ok(self.render_inner(system, turns, true)?.text)
    }

    /// Strings that end an assistant turn in generated text.
    pub fn stop_strings(&self) -> Vec<String> {
        match self.name {
            TemplateName::VicunaV11 | TemplateName::Llama2 | TemplateName::Tokenizer => vec![self.eos.clone()],
            TemplateName::VicunaV0 => vec!["###".to_string()],
            TemplateName::Llama3 => vec!["<|eot_id|>".to_string()],
            TemplateName::Chatml => vec!["<|im_end|>".to_string()],
        }
    }

    fn render_inner(&self, system: Option<&str>, turns: &[Turn], generation: bool) -> Result<Rendered> {
        if let Some(env) = &self.jinja {
            return render_jinja(env, &self.bos, &self.eos, system, turns, generation);
        }
        let system = system.or(self.default_system()).unwrap_or("");
        let mut out = Builder::new(&self.bos);
        match self.name {
            TemplateName::VicunaV11 => {
                out.push(system);
                out.push(" ");
                for t in turns {
                    out.turn();
                    match t.role {
                        Role::User => out.push_all(&["USER: ", &t.text, " "]),
                        _ => out.answer("ASSISTANT:", &[" ", &t.text, &self.eos], ""),
                    }
                }
                out.generation(generation, "ASSISTANT:");
            }
            TemplateName::VicunaV0 => {
                // FastChat's ADD_COLON_SINGLE: every message is `{role}: {text}\n### `.
                out.push_all(&[system, "\n### "]);
                for t in turns {
                    out.turn();
                    match t.role {
                        Role::User => out.push_all(&["Human: ", &t.text, "\n### "]),
                        _ => out.answer("Assistant:", &[" ", &t.text, "\n###"], " "),
                    }
                }
                out.generation(generation, "Assistant:");
            }
            TemplateName::Llama2 => {
                if system.is_empty() {
                    out.push("[INST] ");
                } else {
                    out.push_all(&["[INST] <<SYS>>\n", system, "\n<</SYS>>\n\n"]);
                }
                for (i, t) in turns.iter().enumerate() {
                    out.turn();
                    match t.role {
                        Role::User if i == 0 => out.push_all(&[&t.text, " "]),
                        Role::User => out.push_all(&["[INST] ", &t.text, " "]),
                        _ => out.answer("[/INST]", &[" ", &t.text, " ", &self.eos], &self.bos),
                    }
                }
                out.generation(generation, "[/INST]");
            }
            TemplateName::Llama3 => {
                if !system.is_empty() {
                    out.push_all(&["<|start_header_id|>system<|end_header_id|>\n\n", system, "<|eot_id|>"]);
                }
                for t in turns {
                    out.turn();
                    match t.role {
                        Role::User => {
                            out.push_all(&["<|start_header_id|>user<|end_header_id|>\n\n", t.text.trim(), "<|eot_id|>"])
                        }
                        _ => out.answer(
                            "<|start_header_id|>assistant<|end_header_id|>\n\n",
                            &[t.text.trim(), "<|eot_id|>"],
                            "",
                        ),
                    }
                }
                out.generation(generation, "<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
            TemplateName::Chatml => {
                if !system.is_empty() {
                    out.push_all(&["<|im_start|>system\n", system, "<|im_end|>\n"]);
                }
                for t in turns {
                    out.turn();
                    match t.role {
                        Role::User => out.push_all(&["<|im_start|>user\n", &t.text, "<|im_end|>\n"]),
                        _ => out.answer("<|im_start|>assistant\n", &[&t.text, "<|im_end|>"], "\n"),
                    }
                }
                out.generation(generation, "<|im_start|>assistant\n");
            }
            TemplateName::Tokenizer => unreachable!("handled above"),
        }
        Ok(out.done())
    }
}

/// Accumulates rendered text and trained ranges.
struct Builder {
    out: Rendered,
}

impl Builder {
    fn new(bos: &str) -> Builder {
        Builder { out: Rendered { text: bos.to_string(), ..Rendered::default() } }
    }

    /// Marks the start of the next turn.
    fn turn(&mut self) {
        self.out.turn_starts.push(self.out.text.len());
    }

    fn push(&mut self, s: &str) {
        self.out.text.push_str(s);
    }

    fn push_all(&mut self, parts: &[&str]) {
        parts.iter().for_each(|p| self.push(p));
    }

    /// An assistant turn: the header (exactly where a generation prompt ends), then the trained
    /// parts (everything the model generates: a separating space, the answer, the end-of-turn
    /// marker), then an untrained tail.
    fn answer(&mut self, header: &str, trained: &[&str], tail: &str) {
        self.push(header);
        let start = self.out.text.len();
        self.push_all(trained);
        self.out.trained.push(start..self.out.text.len());
        self.push(tail);
    }

    fn generation(&mut self, generation: bool, header: &str) {
        if generation {
            self.push(header);
        }
    }

    fn done(self) -> Rendered {
        self.out
    }
}

fn jinja_env(source: String) -> Result<minijinja::Environment<'static>> {
    // As `transformers` renders chat templates: trim_blocks and lstrip_blocks on, Python string
    // methods (`.strip()`, `.startswith()`) available.
    let mut env = minijinja::Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned("chat", source).map_err(|e| anyhow!("chat_template does not parse: {e}"))?;
    Ok(env)
}

/// Renders with the Jinja template. Trained ranges come from rendering prefixes: an assistant
/// turn starts where the prompt before it (with the generation prompt) ends, and ends where the
/// conversation up to it ends (trailing whitespace excluded). A template whose prefix renders are
/// not prefixes of the full render cannot be masked safely and is refused.
fn render_jinja(
    env: &minijinja::Environment,
    bos: &str,
    eos: &str,
    system: Option<&str>,
    turns: &[Turn],
    generation: bool,
) -> Result<Rendered> {
    let messages: Vec<serde_json::Value> = system
        .map(|s| serde_json::json!({"role": "system", "content": s}))
        .into_iter()
        .chain(turns.iter().map(|t| serde_json::json!({"role": t.role.openai(), "content": t.text})))
        .collect();
    let offset = usize::from(system.is_some());
    let template = env.get_template("chat").map_err(|e| anyhow!("{e}"))?;
    let render = |n: usize, add_generation_prompt: bool| -> Result<String> {
        let ctx = minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(&messages[..n])),
            bos_token => bos,
            eos_token => eos,
            add_generation_prompt => add_generation_prompt,
        };
        template.render(ctx).map_err(|e| anyhow!("chat_template failed: {e:#}"))
    };
    let text = render(messages.len(), generation)?;
    let unstable = || {
        anyhow!("chat_template is not prefix-stable (a rendered prefix is not a prefix of the whole), so turns cannot be located; choose a built-in template")
    };
    let mut out = Rendered { text, ..Rendered::default() };
    if generation {
        return Ok(out);
    }
    for (i, t) in turns.iter().enumerate() {
        let start = render(offset + i, false)?;
        if !out.text.starts_with(&start) {
            return Err(unstable());
        }
        out.turn_starts.push(start.len());
        if t.role != Role::Assistant {
            continue;
        }
        let before = render(offset + i, true)?;
        let through = render(offset + i + 1, false)?;
        if !out.text.starts_with(&before) || !out.text.starts_with(&through) || through.len() < before.len() {
            return Err(unstable());
        }
        let end = before.len() + through[before.len()..].trim_end().len();
        out.trained.push(before.len()..end);
    }
    Ok(out)
}
