//! Code: fenced blocks (`<pre>`) and inline spans (`<code>`), read to their
//! end tag at once so the highlight spans inside never reach the writer.

use super::render::{Kind, Renderer};
use super::scan::{attr, decode_into, Scanner, Tok};

impl<'a> Renderer<'a> {
    /// Reads decoded text up to the end tag `end`, dropping the tags in between, into `tmp`.
    fn collect_until(&mut self, end: &str) {
        for t in self.sc.by_ref() {
            match t {
                Tok::Text(s) => {
                    decode_into(&mut self.tmp, s);
                }
                Tok::End { name } if name.eq_ignore_ascii_case(end) => return,
                _ => {}
            }
        }
    }

    /// `<code>` outside `<pre>`: backtick span long enough for the content.
    pub(super) fn inline_code(&mut self) {
        self.tmp.clear();
        self.collect_until("code");
        let code = std::mem::take(&mut self.tmp);
        let mut run = 0;
        let mut max = 0;
        for c in code.bytes() {
            if c == b'`' {
                run += 1;
                max = max.max(run);
            } else {
                run = 0;
            }
        }
        let pad = code.starts_with('`') || code.ends_with('`');
        for _ in 0..=max {
            self.out.push('`');
        }
        if pad {
            self.out.push(' ');
        }
        for (k, line) in code.split('\n').enumerate() {
            if k > 0 {
                self.newline();
            }
            self.out.push_str(line);
        }
        if pad {
            self.out.push(' ');
        }
        for _ in 0..=max {
            self.out.push('`');
        }
        self.tmp = code;
        self.line_start = false;
        self.block_start = false;
    }

    /// `<pre>`: one fenced block. The language comes from the header's label
    /// (`<span>lang</span>` before `<code>`) or the `language-X` class; the code
    /// text is kept exactly, highlight spans dropped, references decoded.
    pub(super) fn code_block(&mut self) {
        let mut lang: &'a str = "";
        let mut code_attrs: Option<&'a str> = None;
        let mut in_span = false;
        for t in self.sc.by_ref() {
            match t {
                Tok::Start { name, attrs } if name.eq_ignore_ascii_case("code") => {
                    code_attrs = Some(attrs);
                    break;
                }
                Tok::Start { name, .. } if name.eq_ignore_ascii_case("span") => in_span = true,
                Tok::End { name } if name.eq_ignore_ascii_case("span") => in_span = false,
                Tok::Text(s) if in_span && lang.is_empty() => lang = s.trim(),
                Tok::End { name } if name.eq_ignore_ascii_case("pre") => break,
                _ => {}
            }
        }
        if lang.is_empty() {
            if let Some(cls) = code_attrs.and_then(|a| attr(a, "class")) {
                if let Some(l) = cls.split_ascii_whitespace().find_map(|c| c.strip_prefix("language-")) {
                    lang = l;
                }
            }
        }
        let Some(_) = code_attrs else {
            // `<pre>` without `<code>`: nothing recoverable was inside.
            return;
        };
        self.tmp.clear();
        self.collect_until("code");
        let code = std::mem::take(&mut self.tmp);
        // skip the wrapper divs up to </pre>
        let save = self.sc.pos();
        let mut found = false;
        let mut sc2 = Scanner::new(self.sc.rest());
        for t in sc2.by_ref() {
            match t {
                Tok::End { name } if name.eq_ignore_ascii_case("pre") => {
                    found = true;
                    break;
                }
                Tok::End { name } if name.eq_ignore_ascii_case("div") => {}
                Tok::Text(s) if s.trim().is_empty() => {}
                _ => break,
            }
        }
        if found {
            let consumed = sc2.pos();
            self.sc.skip_to(save + consumed);
        }
        let outer = self.prefix.len();
        if self.items > 0 {
            self.prefix.push('\t');
        }
        self.open_block(Kind::Code);
        self.out.push_str("```");
        self.push_decoded(lang);
        let body = code.strip_suffix('\n').unwrap_or(&code);
        if self.prefix.is_empty() {
            if !body.is_empty() {
                self.out.push('\n');
                self.out.push_str(body);
            }
        } else {
            for line in body.split('\n').filter(|_| !body.is_empty()) {
                self.out.push('\n');
                if !line.is_empty() {
                    self.out.push_str(&self.prefix);
                }
                self.out.push_str(line);
            }
        }
        self.newline();
        self.out.push_str("```");
        self.prefix.truncate(outer);
        self.tmp = code;
        self.inline = false;
    }
}
