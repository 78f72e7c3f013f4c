//! A model directory ready for inference: weights, tokenizer and chat template loaded together
//! (a tokenizer whose ids the model cannot embed is refused at load), prompts rendered exactly as
//! in training, generation stopped where the template ends an answer, and generated ids turned
//! into text incrementally for streaming (`stream`). Shared by `vicuna generate`, `vicuna chat`,
//! `vicuna serve` and evaluation.
use super::generate::{generate, Sampling, Stops};
use crate::data::conversation::Turn;
use crate::data::template::{Template, TemplateName};
use crate::data::tokenizer::{SpecialOverrides, Tokenizer};
use crate::model::weights::{load_model, Loaded};
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind};

/// The name a model directory goes by when none is given (`serve`'s model name, `eval answer`'s
/// model id): the directory's own name, resolved so that `.` or a trailing slash still name it.
pub fn model_name(dir: &Path) -> String {
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    resolved.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

/// Model, tokenizer and (optional) template of one directory.
pub struct Engine {
    pub model: Loaded,
    /// Shared with `Prompter`s (the model itself is not `Sync`; the text side is).
    pub tokenizer: Arc<Tokenizer>,
    pub template: Option<Arc<Template>>,
}

/// The text side of an engine, without the model: renders and tokenizes prompts. Cheap to clone
/// and shareable across threads, so that a server can check prompts where requests arrive while
/// one thread owns the model.
#[derive(Clone)]
pub struct Prompter {
    pub tokenizer: Arc<Tokenizer>,
    pub template: Option<Arc<Template>>,
}

impl Prompter {
    /// Token ids of a prompt: the conversation rendered by the template up to where the answer
    /// starts, or, without a template, the last turn's text after BOS.
    pub fn prompt_ids(&self, system: Option<&str>, turns: &[Turn]) -> Result<Vec<u32>> {
        let text = match &self.template {
            Some(t) => t.prompt(system, turns)?,
            None => {
                let bos = self.tokenizer.bos.as_ref().map(|b| b.text.as_str()).unwrap_or("");
                format!("{bos}{}", turns.last().map(|t| t.text.as_str()).unwrap_or(""))
            }
        };
        Ok(self.tokenizer.encode(&text)?.ids)
    }
}

/// One generated answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Output {
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
}

impl Engine {
    /// Loads `dir` (config.json, safetensors, tokenizer files) as `kind` on `device`. A tokenizer
    /// with more tokens than the model's embedding has rows is an error here, naming both sizes:
    /// otherwise its upper ids would crash the embedding at the first prompt that uses them.
    pub fn load(dir: &Path, template: Option<TemplateName>, device: Device, kind: Kind) -> Result<Engine> {
        let tokenizer = Tokenizer::load(dir, &SpecialOverrides::default())?;
        let template = template.map(|t| Template::new(t, &tokenizer)).transpose()?;
        crate::model::config::Config::load(&dir.join("config.json"))?.check_tokenizer(tokenizer.vocab_size(), dir)?;
        let mut model = load_model(dir, kind, device)?;
        model.model.prepare_for_inference();
        Ok(Engine { model, tokenizer: Arc::new(tokenizer), template: template.map(Arc::new) })
    }

    /// The tokenizer and template, to render prompts away from the model's thread.
    pub fn prompter(&self) -> Prompter {
        Prompter { tokenizer: self.tokenizer.clone(), template: self.template.clone() }
    }

    /// Token ids of a prompt (see `Prompter::prompt_ids`).
    pub fn prompt_ids(&self, system: Option<&str>, turns: &[Turn]) -> Result<Vec<u32>> {
        self.prompter().prompt_ids(system, turns)
    }

    /// The model's context in tokens (`max_position_embeddings`): a prompt and its answer
    /// together never exceed it.
    pub fn context(&self) -> usize {
        self.model.config.max_position_embeddings
    }

    /// What ends an answer: the model's and tokenizer's EOS ids and the template's stop strings.
    pub fn stops(&self) -> Stops {
        let mut eos_ids = self.model.config.eos_token_ids.clone();
        eos_ids.extend(self.tokenizer.eos.as_ref().map(|e| e.id));
        if let Some(t) = &self.template {
            eos_ids.extend(t.stop_strings().iter().filter_map(|s| self.tokenizer.id(s)));
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let strings = self
            .template
            .as_ref()
            .map(|t| t.stop_strings().into_iter().filter(|s| self.tokenizer.id(s).is_none()).collect())
            .unwrap_or_default();
        Stops { eos_ids, strings }
    }

    /// `vicuna generate`: answers each of `questions` as the first user turn of its own
    /// conversation (after `system`), all in one batch.
    pub fn answer_each(&self, system: Option<&str>, questions: &[String], sampling: &Sampling) -> Result<Vec<Output>> {
        let prompts = questions
            .iter()
            .map(|q| self.prompt_ids(system, &[Turn { role: crate::data::conversation::Role::User, text: q.clone() }]))
            .collect::<Result<Vec<_>>>()?;
        self.generate(&prompts, sampling, &mut |_, _| true)
    }

    /// Generates answers for a batch of prompts; `on_token(row, id)` streams new tokens and
    /// returns whether that row goes on (see `generate::generate`).
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        sampling: &Sampling,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Result<Vec<Output>> {
        let decode = |ids: &[u32]| self.tokenizer.decode(ids, true);
        let ids = generate(&self.model, prompts, sampling, &self.stops(), &decode, on_token)?;
        prompts
            .iter()
            .zip(ids)
            .map(|(p, ids)| {
                Ok(Output { prompt_ids: p.clone(), text: self.tokenizer.decode(&ids, true)?.trim().to_string(), ids })
            })
            .collect()
    }
}
