//! `prep filter`: the optional quality filters of FastChat's `optional_clean.py` and
//! `filter_wrong_format.py`, applied to clean conversations: language (detected on the whole
//! conversation with `whatlang`), repeated digits, broken numbered lists, and turn counts.
use super::conversation::Conversation;
use super::report::Reason;
use anyhow::{bail, Result};
use whatlang::Lang;

/// Settings of the filter stage; the default keeps everything.
#[derive(Debug, Clone, Default)]
pub struct FilterOptions {
    /// Keep only conversations detected in one of these languages.
    pub keep_lang: Vec<Lang>,
    /// Drop conversations detected in one of these languages.
    pub skip_lang: Vec<Lang>,
    /// Drop conversations with a run of 9 identical digits (FastChat's `--reduce-rep`).
    pub reduce_rep: bool,
    /// Drop conversations whose markdown numbered list restarts at `1.`.
    pub wrong_list_format: bool,
    /// Minimum number of user and assistant turns (messages, not pairs).
    pub min_turns: Option<usize>,
    /// Maximum number of user and assistant turns.
    pub max_turns: Option<usize>,
}

impl FilterOptions {
    /// Whether any filter is on (the pipeline skips the stage otherwise).
    pub fn is_active(&self) -> bool {
        !self.keep_lang.is_empty()
            || !self.skip_lang.is_empty()
            || self.reduce_rep
            || self.wrong_list_format
            || self.min_turns.is_some()
            || self.max_turns.is_some()
    }
}

/// Why `conversation` should be dropped, or `None` to keep it.
pub fn check(conversation: &Conversation, options: &FilterOptions) -> Option<Reason> {
    let n = conversation.turns.len();
    if options.min_turns.is_some_and(|min| n < min) {
        return Some(Reason::TooFewTurns);
    }
    if options.max_turns.is_some_and(|max| n > max) {
        return Some(Reason::TooManyTurns);
    }
    if options.reduce_rep && conversation.turns.iter().any(|t| has_digit_run(&t.text, 9)) {
        return Some(Reason::Repetition);
    }
    if options.wrong_list_format && conversation.turns.iter().any(|t| has_restarted_list(&t.text)) {
        return Some(Reason::WrongListFormat);
    }
    if !options.keep_lang.is_empty() || !options.skip_lang.is_empty() {
        let lang = detect_language(conversation);
        let kept = options.keep_lang.is_empty() || lang.is_some_and(|l| options.keep_lang.contains(&l));
        let skipped = lang.is_some_and(|l| options.skip_lang.contains(&l));
        if !kept || skipped {
            return Some(Reason::Language);
        }
    }
    None
}

/// The language of the whole conversation (all turns joined), `None` when undecidable.
pub fn detect_language(conversation: &Conversation) -> Option<Lang> {
    let text: String = conversation.turns.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join("\n");
    whatlang::detect_lang(&text)
}

/// Parses a language as ISO 639-1 (`en`), ISO 639-3 (`eng`) or English name (`English`).
pub fn parse_lang(code: &str) -> Result<Lang> {
    let lower = code.trim().to_lowercase();
    if let Some(lang) = Lang::from_code(lower.as_str()) {
        return Ok(lang);
    }
    if let Some(lang) = Lang::all().iter().find(|l| l.eng_name().to_lowercase() == lower) {
        return Ok(*lang);
    }
    if let Some((_, three)) = ISO_639_1.iter().find(|(two, _)| *two == lower) {
        if let Some(lang) = Lang::from_code(*three) {
            return Ok(lang);
        }
    }
    bail!("unknown language {code:?}: use an ISO 639-1 code (en, ko, zh, ...), an ISO 639-3 code (eng) or an English name")
}

/// ISO 639-1 codes of the languages whatlang detects, mapped to its ISO 639-3 codes.
const ISO_639_1: &[(&str, &str)] = &[
    ("af", "afr"),
    ("ak", "aka"),
    ("am", "amh"),
    ("ar", "ara"),
    ("az", "aze"),
    ("be", "bel"),
    ("bg", "bul"),
    ("bn", "ben"),
    ("ca", "cat"),
    ("cs", "ces"),
    ("cy", "cym"),
    ("da", "dan"),
    ("de", "deu"),
    ("el", "ell"),
    ("en", "eng"),
    ("eo", "epo"),
    ("es", "spa"),
    ("et", "est"),
    ("fa", "pes"),
    ("fi", "fin"),
    ("fr", "fra"),
    ("gu", "guj"),
    ("he", "heb"),
    ("hi", "hin"),
    ("hr", "hrv"),
    ("hu", "hun"),
    ("hy", "hye"),
    ("id", "ind"),
    ("it", "ita"),
    ("ja", "jpn"),
    ("jv", "jav"),
    ("ka", "kat"),
    ("km", "khm"),
    ("kn", "kan"),
    ("ko", "kor"),
    ("la", "lat"),
    ("lt", "lit"),
    ("lv", "lav"),
    ("mk", "mkd"),
    ("ml", "mal"),
    ("mr", "mar"),
    ("my", "mya"),
    ("ne", "nep"),
    ("nl", "nld"),
    ("nb", "nob"),
    ("no", "nob"),
    ("or", "ori"),
    ("pa", "pan"),
    ("pl", "pol"),
    ("pt", "por"),
    ("ro", "ron"),
    ("ru", "rus"),
    ("si", "sin"),
    ("sk", "slk"),
    ("sl", "slv"),
    ("sn", "sna"),
    ("sr", "srp"),
    ("sv", "swe"),
    ("ta", "tam"),
    ("te", "tel"),
    ("th", "tha"),
    ("tk", "tuk"),
    ("tl", "tgl"),
    ("tr", "tur"),
    ("uk", "ukr"),
    ("ur", "urd"),
    ("uz", "uzb"),
    ("vi", "vie"),
    ("yi", "yid"),
    ("zh", "cmn"),
    ("zu", "zul"),
];

/// Whether `text` has `len` identical ASCII digits in a row (FastChat: `(\d)\1{8}`).
pub fn has_digit_run(text: &str, len: usize) -> bool {
    let mut run = 0;
    let mut prev = 0u8;
    for &c in text.as_bytes() {
        if c.is_ascii_digit() && c == prev {
            run += 1;
        } else {
            run = usize::from(c.is_ascii_digit());
        }
        prev = c;
        if run >= len {
            return true;
        }
    }
    false
}

/// Whether a numbered list restarts: a line `1. ` followed by another `1. ` line with no `2`
/// between them (FastChat: `\n1\. [^2]*\n1\. `), the sign of a list whose numbering was lost.
pub fn has_restarted_list(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("\n1. ") {
        let after = &rest[i + 4..];
        if let Some(j) = after.find("\n1. ") {
            if !after[..j].contains('2') {
                return true;
            }
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_and_restarted_lists() {
        assert!(has_digit_run("call 5555555559999999999", 9));
        assert!(!has_digit_run("12345678901234567890", 9));
        assert!(!has_digit_run("88888888", 9));
        assert!(has_restarted_list("Steps:\n1. a\n1. b"));
        assert!(!has_restarted_list("Steps:\n1. a\n2. b\n\nMore:\n1. c"));
    }

    #[test]
    fn languages_parse_in_every_spelling() {
        assert_eq!(parse_lang("en").unwrap(), Lang::Eng);
        assert_eq!(parse_lang("kor").unwrap(), Lang::Kor);
        assert_eq!(parse_lang("Korean").unwrap(), Lang::Kor);
        assert_eq!(
            parse_lang("xx").unwrap_err().to_string(),
            "unknown language \"xx\": use an ISO 639-1 code (en, ko, zh, ...), an ISO 639-3 code (eng) or an English name"
        );
    }
}
