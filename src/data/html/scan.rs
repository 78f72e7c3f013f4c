//! Tokenizer for the ChatGPT page HTML, and HTML character reference decoding.
//!
//! The scanner is forgiving on purpose: the dumps hold truncated turns, and text
//! that merely looks like markup. A `<` that does not open a well-formed tag is
//! text; a tag that never reaches its `>` makes the rest of the input text.

use std::borrow::Cow;

/// One piece of the input, borrowed from it. Text is raw: its character
/// references are decoded by whoever writes it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<'a> {
    /// Character data between tags (entities still encoded).
    Text(&'a str),
    /// `<name attrs>` or `<name attrs />`; `attrs` is everything after the name.
    Start { name: &'a str, attrs: &'a str },
    /// `</name>`.
    End { name: &'a str },
}

/// Pull tokenizer over one HTML string.
pub struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Starts at the beginning of `s`.
    pub fn new(s: &'a str) -> Self {
        Scanner { s, pos: 0 }
    }

    /// The rest of the input that has not been tokenized yet.
    pub fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// Moves on to the byte offset `pos` (a char boundary the caller found).
    pub fn skip_to(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Text from `from` up to the next `<`, emitted as one token.
    fn text_from(&mut self, from: usize) -> Tok<'a> {
        let b = self.s.as_bytes();
        let end = match memchr::memchr(b'<', &b[from..]) {
            Some(i) => from + i,
            None => b.len(),
        };
        let t = &self.s[self.pos..end];
        self.pos = end;
        Tok::Text(t)
    }
}

/// Length of the ASCII tag name at the start of `b` (letters and digits).
fn name_len(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_alphanumeric()).count()
}

/// Position of the `>` that closes a tag starting at `b[0]`, skipping quoted
/// attribute values; None when the input ends first.
fn tag_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut quote = 0u8;
    while i < b.len() {
        let c = b[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        loop {
            if let Some(t) = self.step() {
                return Some(t);
            }
            if self.pos >= self.s.len() {
                return None;
            }
        }
    }
}

impl<'a> Scanner<'a> {
    /// One tokenizer step: a token, or None after skipping a comment (or at the end).
    fn step(&mut self) -> Option<Tok<'a>> {
        let b = self.s.as_bytes();
        let p = self.pos;
        if p >= b.len() {
            return None;
        }
        if b[p] != b'<' {
            return Some(self.text_from(p));
        }
        let after = &b[p + 1..];
        match after.first() {
            Some(c) if c.is_ascii_alphabetic() => {
                let n = name_len(after);
                match tag_end(&after[n..]) {
                    Some(e) => {
                        let name = &self.s[p + 1..p + 1 + n];
                        let mut attrs = &self.s[p + 1 + n..p + 1 + n + e];
                        if let Some(a) = attrs.strip_suffix('/') {
                            attrs = a;
                        }
                        self.pos = p + 1 + n + e + 1;
                        Some(Tok::Start { name, attrs })
                    }
                    None => {
                        // Truncated tag: the rest is text.
                        let t = &self.s[p..];
                        self.pos = b.len();
                        Some(Tok::Text(t))
                    }
                }
            }
            Some(b'/') if after.get(1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                let n = name_len(&after[1..]);
                match memchr::memchr(b'>', &after[1 + n..]) {
                    Some(e) => {
                        let name = &self.s[p + 2..p + 2 + n];
                        self.pos = p + 2 + n + e + 1;
                        Some(Tok::End { name })
                    }
                    None => {
                        let t = &self.s[p..];
                        self.pos = b.len();
                        Some(Tok::Text(t))
                    }
                }
            }
            Some(b'!') => {
                // Comment or doctype: dropped.
                let end = if after.starts_with(b"!--") {
                    memchr::memmem::find(&after[3..], b"-->").map(|i| p + 1 + 3 + i + 3)
                } else {
                    memchr::memchr(b'>', after).map(|i| p + 1 + i + 1)
                };
                self.pos = end.unwrap_or(b.len());
                None
            }
            _ => Some(self.text_from(p + 1)),
        }
    }
}

/// The value of attribute `key` in a tag's attribute text, if present.
/// Handles double, single and unquoted values.
pub fn attr<'a>(attrs: &'a str, key: &str) -> Option<&'a str> {
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let k = &attrs[ks..i];
        let mut v = "";
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = memchr::memchr(q, &b[vs..]).map_or(b.len(), |e| vs + e);
                v = &attrs[vs..ve];
                i = (ve + 1).min(b.len());
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                v = &attrs[vs..i];
            }
        }
        if k.eq_ignore_ascii_case(key) {
            return Some(v);
        }
        if ks == i {
            i += 1; // a lone '=' or similar: step over it
        }
    }
    None
}

/// Named character references that Python-Markdown, the ChatGPT page or the
/// sanitizer may have written, sorted by name for binary search.
static NAMED: &[(&str, &str)] = &[
    ("AElig", "\u{c6}"),
    ("Alpha", "\u{391}"),
    ("Beta", "\u{392}"),
    ("Delta", "\u{394}"),
    ("Gamma", "\u{393}"),
    ("Lambda", "\u{39b}"),
    ("Omega", "\u{3a9}"),
    ("Phi", "\u{3a6}"),
    ("Pi", "\u{3a0}"),
    ("Psi", "\u{3a8}"),
    ("Sigma", "\u{3a3}"),
    ("Theta", "\u{398}"),
    ("aacute", "\u{e1}"),
    ("acirc", "\u{e2}"),
    ("acute", "\u{b4}"),
    ("aelig", "\u{e6}"),
    ("agrave", "\u{e0}"),
    ("alpha", "\u{3b1}"),
    ("amp", "&"),
    ("and", "\u{2227}"),
    ("ang", "\u{2220}"),
    ("apos", "'"),
    ("aring", "\u{e5}"),
    ("asymp", "\u{2248}"),
    ("atilde", "\u{e3}"),
    ("auml", "\u{e4}"),
    ("bdquo", "\u{201e}"),
    ("beta", "\u{3b2}"),
    ("brvbar", "\u{a6}"),
    ("bull", "\u{2022}"),
    ("cap", "\u{2229}"),
    ("ccedil", "\u{e7}"),
    ("cent", "\u{a2}"),
    ("chi", "\u{3c7}"),
    ("circ", "\u{2c6}"),
    ("copy", "\u{a9}"),
    ("cup", "\u{222a}"),
    ("curren", "\u{a4}"),
    ("dArr", "\u{21d3}"),
    ("dagger", "\u{2020}"),
    ("darr", "\u{2193}"),
    ("deg", "\u{b0}"),
    ("delta", "\u{3b4}"),
    ("divide", "\u{f7}"),
    ("eacute", "\u{e9}"),
    ("ecirc", "\u{ea}"),
    ("egrave", "\u{e8}"),
    ("empty", "\u{2205}"),
    ("emsp", "\u{2003}"),
    ("ensp", "\u{2002}"),
    ("epsilon", "\u{3b5}"),
    ("equiv", "\u{2261}"),
    ("eta", "\u{3b7}"),
    ("eth", "\u{f0}"),
    ("euml", "\u{eb}"),
    ("euro", "\u{20ac}"),
    ("exist", "\u{2203}"),
    ("forall", "\u{2200}"),
    ("frac12", "\u{bd}"),
    ("frac14", "\u{bc}"),
    ("frac34", "\u{be}"),
    ("gamma", "\u{3b3}"),
    ("ge", "\u{2265}"),
    ("gt", ">"),
    ("hArr", "\u{21d4}"),
    ("harr", "\u{2194}"),
    ("hearts", "\u{2665}"),
    ("hellip", "\u{2026}"),
    ("iacute", "\u{ed}"),
    ("icirc", "\u{ee}"),
    ("iexcl", "\u{a1}"),
    ("igrave", "\u{ec}"),
    ("infin", "\u{221e}"),
    ("int", "\u{222b}"),
    ("iota", "\u{3b9}"),
    ("iquest", "\u{bf}"),
    ("isin", "\u{2208}"),
    ("iuml", "\u{ef}"),
    ("kappa", "\u{3ba}"),
    ("lArr", "\u{21d0}"),
    ("lambda", "\u{3bb}"),
    ("laquo", "\u{ab}"),
    ("larr", "\u{2190}"),
    ("lceil", "\u{2308}"),
    ("ldquo", "\u{201c}"),
    ("le", "\u{2264}"),
    ("lfloor", "\u{230a}"),
    ("lowast", "\u{2217}"),
    ("lsaquo", "\u{2039}"),
    ("lsquo", "\u{2018}"),
    ("lt", "<"),
    ("macr", "\u{af}"),
    ("mdash", "\u{2014}"),
    ("micro", "\u{b5}"),
    ("middot", "\u{b7}"),
    ("minus", "\u{2212}"),
    ("mu", "\u{3bc}"),
    ("nabla", "\u{2207}"),
    ("nbsp", "\u{a0}"),
    ("ndash", "\u{2013}"),
    ("ne", "\u{2260}"),
    ("not", "\u{ac}"),
    ("notin", "\u{2209}"),
    ("ntilde", "\u{f1}"),
    ("nu", "\u{3bd}"),
    ("oacute", "\u{f3}"),
    ("ocirc", "\u{f4}"),
    ("oelig", "\u{153}"),
    ("ograve", "\u{f2}"),
    ("omega", "\u{3c9}"),
    ("omicron", "\u{3bf}"),
    ("oplus", "\u{2295}"),
    ("or", "\u{2228}"),
    ("ordf", "\u{aa}"),
    ("ordm", "\u{ba}"),
    ("oslash", "\u{f8}"),
    ("otilde", "\u{f5}"),
    ("otimes", "\u{2297}"),
    ("ouml", "\u{f6}"),
    ("para", "\u{b6}"),
    ("part", "\u{2202}"),
    ("permil", "\u{2030}"),
    ("perp", "\u{22a5}"),
    ("phi", "\u{3c6}"),
    ("pi", "\u{3c0}"),
    ("plusmn", "\u{b1}"),
    ("pound", "\u{a3}"),
    ("prime", "\u{2032}"),
    ("prod", "\u{220f}"),
    ("prop", "\u{221d}"),
    ("psi", "\u{3c8}"),
    ("quot", "\""),
    ("rArr", "\u{21d2}"),
    ("radic", "\u{221a}"),
    ("raquo", "\u{bb}"),
    ("rarr", "\u{2192}"),
    ("rceil", "\u{2309}"),
    ("rdquo", "\u{201d}"),
    ("reg", "\u{ae}"),
    ("rfloor", "\u{230b}"),
    ("rho", "\u{3c1}"),
    ("rsaquo", "\u{203a}"),
    ("rsquo", "\u{2019}"),
    ("sbquo", "\u{201a}"),
    ("sdot", "\u{22c5}"),
    ("sect", "\u{a7}"),
    ("shy", "\u{ad}"),
    ("sigma", "\u{3c3}"),
    ("sim", "\u{223c}"),
    ("spades", "\u{2660}"),
    ("sub", "\u{2282}"),
    ("sube", "\u{2286}"),
    ("sum", "\u{2211}"),
    ("sup", "\u{2283}"),
    ("sup1", "\u{b9}"),
    ("sup2", "\u{b2}"),
    ("sup3", "\u{b3}"),
    ("supe", "\u{2287}"),
    ("szlig", "\u{df}"),
    ("tau", "\u{3c4}"),
    ("there4", "\u{2234}"),
    ("theta", "\u{3b8}"),
    ("thinsp", "\u{2009}"),
    ("thorn", "\u{fe}"),
    ("tilde", "\u{2dc}"),
    ("times", "\u{d7}"),
    ("trade", "\u{2122}"),
    ("uArr", "\u{21d1}"),
    ("uacute", "\u{fa}"),
    ("uarr", "\u{2191}"),
    ("ucirc", "\u{fb}"),
    ("ugrave", "\u{f9}"),
    ("uml", "\u{a8}"),
    ("upsilon", "\u{3c5}"),
    ("uuml", "\u{fc}"),
    ("xi", "\u{3be}"),
    ("yacute", "\u{fd}"),
    ("yen", "\u{a5}"),
    ("yuml", "\u{ff}"),
    ("zeta", "\u{3b6}"),
    ("zwj", "\u{200d}"),
    ("zwnj", "\u{200c}"),
];

/// Decodes the character reference at the start of `s` (which begins with `&`).
/// Returns the decoded text and how many bytes it used, or None when `s` does
/// not start with a complete, known reference (then the `&` is literal).
fn entity_at(s: &str) -> Option<(Cow<'static, str>, usize)> {
    let b = s.as_bytes();
    // References are short: the longest name above is 7 bytes, numbers at most
    // "#x10FFFF"; look no further than that for the ';'.
    let lim = b.len().min(12);
    let semi = b[..lim].iter().position(|&c| c == b';')?;
    let body = &s[1..semi];
    let used = semi + 1;
    if let Some(num) = body.strip_prefix('#') {
        let v = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(hex, 16).ok()?
        } else {
            if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            num.parse::<u32>().ok()?
        };
        let c = match v {
            0 => '\u{fffd}',
            _ => char::from_u32(v).unwrap_or('\u{fffd}'),
        };
        let mut buf = [0u8; 4];
        return Some((Cow::Owned(c.encode_utf8(&mut buf).to_owned()), used));
    }
    let i = NAMED.binary_search_by(|(n, _)| n.cmp(&body)).ok()?;
    Some((Cow::Borrowed(NAMED[i].1), used))
}

/// The references an HTML writer puts in text: Python-Markdown and the browser's serializer
/// escape `&` `<` `>` (and `"`, U+00A0), the sanitizer also `'`. Sorted for binary search.
static MARKUP: &[(&str, &str)] =
    &[("#39", "'"), ("#x27", "'"), ("amp", "&"), ("gt", ">"), ("lt", "<"), ("nbsp", "\u{a0}"), ("quot", "\"")];

/// Decodes the reference at the start of `s` (which begins with `&`) when it is one an HTML
/// writer produces ([`MARKUP`]), with the bytes it used. Any other reference in the text of a
/// page (`&times;`, `&#x03B4;`) was typed by the model as it stands and must stay literal.
pub fn markup_entity_at(s: &str) -> Option<(&'static str, usize)> {
    let b = s.as_bytes();
    let semi = b[..b.len().min(7)].iter().position(|&c| c == b';')?;
    let i = MARKUP.binary_search_by(|(n, _)| n.cmp(&&s[1..semi])).ok()?;
    Some((MARKUP[i].1, semi + 1))
}

/// See [`super::decode_entities`].
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if memchr::memchr(b'&', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    decode_into(&mut out, s);
    Cow::Owned(out)
}

/// Appends `s` to `out` with its character references decoded.
pub fn decode_into(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut done = 0;
    while let Some(j) = memchr::memchr(b'&', &b[done..]) {
        let i = done + j;
        out.push_str(&s[done..i]);
        match entity_at(&s[i..]) {
            Some((d, n)) => {
                out.push_str(&d);
                done = i + n;
            }
            None => {
                out.push('&');
                done = i + 1;
            }
        }
    }
    out.push_str(&s[done..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_table_is_sorted() {
        for w in NAMED.windows(2).chain(MARKUP.windows(2)) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn tokens() {
        let toks: Vec<_> = Scanner::new("<p class=\"a>b\">x &lt; y</p>< 3<!-- c -->z</").collect();
        assert_eq!(
            toks,
            vec![
                Tok::Start { name: "p", attrs: " class=\"a>b\"" },
                Tok::Text("x &lt; y"),
                Tok::End { name: "p" },
                Tok::Text("< 3"),
                Tok::Text("z"),
                Tok::Text("</"),
            ]
        );
        assert_eq!(attr(" class=\"a b\" start=3", "start"), Some("3"));
        assert_eq!(attr(" class=\"a b\" start=3", "class"), Some("a b"));
        assert_eq!(attr(" x", "class"), None);
    }
}
