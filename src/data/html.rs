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
    render::Renderer::new(html).run()
}

/// Decodes HTML character references (named, incl. `&nbsp;` `&amp;` `&lt;`
/// `&gt;` `&quot;` `&#x27;` `&#39;` and the common named set; decimal; hex).
/// Human turns of the sanitizer era were stored entity-escaped; this restores
/// the text the user typed. Unknown or unterminated references stay literal.
/// Returns `Borrowed` when there is no `&`, so the common case costs nothing.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    scan::decode_entities(s)
}
