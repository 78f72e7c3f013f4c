//! ChatGPT page HTML to markdown.
//!
//! The 2023 ShareGPT dumps stored each assistant turn as the HTML of the ChatGPT
//! web page: a `markdown prose` wrapper `<div>`, the markdown rendered to HTML
//! with no newlines between block elements, code blocks wrapped in a header with
//! an optional language label and a "Copy code" button, highlight.js spans in
//! the code, and literal `<tag>` text entity-escaped. Later the server's
//! sanitizer dropped most classes (bare `<div>`, `<span>lang</span>`).
//!
//! This module inverts that rendering, following Python-Markdown's output
//! (extensions `fenced_code`, `tables`, `sane_lists`) as the page markup of the
//! dumps shows it, and writes the markdown in the layout of the cleaned corpus
//! (FastChat's): `*`/`+`/`-` bullets by nesting depth, one tab per nesting
//! level, fences glued to the surrounding text by one newline, blank lines
//! between other blocks. It is a hand-written scanner ([`scan`]) feeding a
//! one-pass event-driven writer ([`render`]); it never panics, whatever the
//! input (truncated tags, stray `<`, unknown entities, deep nesting).
//!
//! What Python-Markdown loses cannot come back: tabs (expanded to 4 spaces,
//! also in code), whether a fence had a blank line before it, backslash
//! escapes, a fence indented inside a list item (rendered as inline code).

mod code;
mod render;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

/// Whether an assistant value is ChatGPT page HTML (a `<div ...>` wrapper:
/// `markdown prose ...`, `request-:r0:-0 markdown prose ...`, or the bare
/// `<div>` of the sanitizer era) rather than text that is already markdown.
/// Other apps posted plain markdown to the same API; those values must pass
/// through unchanged, so only a leading wrapper `<div>` counts.
pub fn is_chatgpt_html(value: &str) -> bool {
    let v = value.trim_start();
    let Some(rest) = v.strip_prefix("<div") else {
        return false;
    };
    if let Some(after) = rest.strip_prefix('>') {
        // Sanitizer era: a bare <div> directly followed by markup, or closed at the end.
        let after = after.trim_start();
        return after.starts_with('<') || v.trim_end().ends_with("</div>");
    }
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return false; // <divx ...>
    }
    let tag = match rest.find('>') {
        Some(e) => &rest[..e],
        None => rest,
    };
    tag.contains("markdown") || tag.contains("prose")
}

/// Converts one assistant turn of ChatGPT page HTML to markdown, so the
/// cleaned corpus holds the text the model wrote rather than the page markup.
/// Call it on values for which [`is_chatgpt_html`] holds; other input comes
/// back as its text content with markup dropped.
pub fn to_markdown(html: &str) -> String {
    to_markdown_with(html, LazyListNumbering::default())
}

/// [`to_markdown`] with the numbering of lists past lazily continued bullet
/// lines that the whole conversation suggests ([`LazyListNumbering::of_conversation`]).
pub fn to_markdown_with(html: &str, numbering: LazyListNumbering) -> String {
    render::Renderer::new(html, numbering).run()
}

/// How an ordered list goes on after an item that holds lazily continued bullet
/// lines (`<li>A:\n* x</li><li>B:`). Python-Markdown merged the lists that a
/// bullet line interrupted, so `1. A:\n* x\n2. B:` and `1. A:\n* x\n1. B:` give the
/// same HTML; which one the text had depends on the page that the conversation
/// was first saved from (whether it kept a list's `start`), not on the turn.
/// On the benchmark corpus, 1,360 such items 1 were followed by `1.` and 298 by
/// `2.` where the conversation shows nothing either way; these stay ambiguous.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LazyListNumbering {
    /// Restart at 1 after a lazy item 1 (whole lists of `1.` items); go on
    /// counting after a lazy item 2 or later (98% of those in the corpus).
    #[default]
    RestartAfterFirst,
    /// Always go on counting: the conversation's lists kept their numbers
    /// across interruptions.
    Continue,
}

impl LazyListNumbering {
    /// Reads the conversation's other lists: an `<ol start="N">` (a list that
    /// went on counting after an interruption) is evidence for [`Self::Continue`],
    /// an `<ol>` restarting at 1 right after a code block that followed a list
    /// is evidence against. More of the first: go on counting (on the benchmark
    /// corpus 36 such items 1 went on and 3 restarted). Pass every assistant
    /// turn's HTML; a scan for two byte strings, no parsing.
    pub fn of_conversation<'a>(assistant_html: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut went_on, mut restarted) = (0usize, 0usize);
        for html in assistant_html {
            let b = html.as_bytes();
            for i in memchr::memmem::find_iter(b, b"<ol start=\"") {
                went_on += !b[i + 11..].starts_with(b"1\"") as usize;
            }
            // the `</pre>` closing each such block; found once, however many blocks share it
            let mut close: Option<usize> = None;
            for i in memchr::memmem::find_iter(b, b"</ol><pre>") {
                let end = match close {
                    Some(c) if c >= i => c,
                    _ => match memchr::memmem::find(&b[i..], b"</pre>") {
                        Some(j) => i + j,
                        None => break,
                    },
                };
                close = Some(end);
                restarted += b[end + 6..].starts_with(b"<ol>") as usize;
            }
        }
        if went_on > restarted {
            LazyListNumbering::Continue
        } else {
            LazyListNumbering::RestartAfterFirst
        }
    }
}

/// Decodes HTML character references (named, incl. `&nbsp;` `&amp;` `&lt;`
/// `&gt;` `&quot;` `&#x27;` `&#39;` and the common named set; decimal; hex).
/// Human turns of the sanitizer era were stored entity-escaped; this restores
/// the text the user typed. Unknown or unterminated references stay literal.
/// Returns `Borrowed` when there is no `&`, so the common case costs nothing.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    scan::decode_entities(s)
}
