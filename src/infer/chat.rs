//! `vicuna chat`: a conversation in the terminal. Each turn renders the whole conversation so far
//! with the template (exactly as training saw it), generates the answer streamed piece by piece,
//! and keeps it for the next turn.
use super::engine::Engine;
use super::generate::Sampling;
use super::stream::TextStream;
use crate::data::conversation::{Role, Turn};
use anyhow::Result;
use std::io::{BufRead, Write};

/// A conversation with one engine: the system prompt and the turns so far.
pub struct Chat<'a> {
    engine: &'a Engine,
    system: Option<String>,
    turns: Vec<Turn>,
}

impl<'a> Chat<'a> {
    /// A new conversation; `system` replaces the template's default system prompt.
    pub fn new(engine: &'a Engine, system: Option<String>) -> Chat<'a> {
        Chat { engine, system, turns: Vec::new() }
    }

    /// The turns so far (user, assistant, ...).
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// The prompt ids for the next answer if the user says `user` now: the whole conversation so
    /// far, then `user`, rendered up to where the answer starts.
    pub fn prompt_ids(&self, user: &str) -> Result<Vec<u32>> {
        let mut turns = self.turns.clone();
        turns.push(Turn { role: Role::User, text: user.to_string() });
        self.engine.prompt_ids(self.system.as_deref(), &turns)
    }

    /// Answers `user`: the answer's text goes to `on_text` piece by piece as it is generated, and
    /// both turns join the conversation. Returns the answer.
    pub fn say(&mut self, user: &str, sampling: &Sampling, on_text: &mut dyn FnMut(&str)) -> Result<String> {
        let prompt = self.prompt_ids(user)?;
        let tokenizer = self.engine.tokenizer.clone();
        let mut stream = TextStream::default();
        let outputs = self.engine.generate(&[prompt], sampling, &mut |_, id| {
            if let Ok(Some(piece)) = stream.push(&tokenizer, id) {
                on_text(&piece);
            }
            true
        })?;
        if let Some(piece) = stream.finish(&tokenizer)? {
            on_text(&piece);
        }
        let answer = outputs.into_iter().next().map(|o| o.text).unwrap_or_default();
        self.turns.push(Turn { role: Role::User, text: user.to_string() });
        self.turns.push(Turn { role: Role::Assistant, text: answer.clone() });
        Ok(answer)
    }
}

/// The terminal loop: `USER: ` prompts on `output`, lines from `input`, answers streamed; an empty
/// line or the end of input ends it. A turn that fails (say, a conversation past the model's
/// context) is reported on stderr and dropped, and the conversation goes on.
pub fn repl(
    engine: &Engine,
    sampling: &Sampling,
    system: Option<String>,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<()> {
    let mut chat = Chat::new(engine, system);
    loop {
        write!(output, "USER: ")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        write!(output, "ASSISTANT: ")?;
        output.flush()?;
        let said = chat.say(line.trim_end(), sampling, &mut |piece| {
            let _ = write!(output, "{piece}");
            let _ = output.flush();
        });
        writeln!(output)?;
        // A turn that cannot be answered (the conversation outgrew the context) is reported and
        // left out; the conversation so far is kept and the user can go on.
        if let Err(e) = said {
            eprintln!("error: {e:#}");
        }
    }
}
