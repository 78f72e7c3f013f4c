//! Streaming text: the pieces of a growing answer, for `vicuna chat` and `vicuna serve`.
use crate::data::tokenizer::Tokenizer;
use anyhow::Result;

/// The text of a growing answer, piece by piece, for streaming: each new token costs two
/// decodes of a short window instead of a decode of the whole answer (the prefix and read
/// offsets of `transformers`' `TextStreamer` and TGI's `decode_token`). A piece is held back
/// while its text ends in an incomplete character (U+FFFD, a token holding part of a multi-byte
/// character); `finish` releases what is left. The pieces joined equal the decoded ids as
/// generated (the final answer text is that, trimmed and cut before a stop string).
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    /// Start of the window decoded for context (earlier tokens are settled).
    prefix: usize,
    /// End of the text already released.
    read: usize,
}

impl TextStream {
    /// Adds `id` and returns the new text, if a complete piece is ready.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        self.release(tokenizer, false)
    }

    /// The text not yet released (at the end of the answer), if any.
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<Option<String>> {
        self.release(tokenizer, true)
    }

    fn release(&mut self, tokenizer: &Tokenizer, last: bool) -> Result<Option<String>> {
        if self.read == self.ids.len() {
            return Ok(None);
        }
        let before = tokenizer.decode(&self.ids[self.prefix..self.read], true)?;
        let now = tokenizer.decode(&self.ids[self.prefix..], true)?;
        let complete = last || !now.ends_with('\u{fffd}');
        if now.len() > before.len() && now.is_char_boundary(before.len()) && complete {
            let piece = now[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            return Ok(Some(piece));
        }
        Ok(None)
    }
}
