//! `prep clean`: one raw ShareGPT record in, one clean conversation (or a drop reason) out.
//! Assistant turns of ChatGPT page HTML become markdown (`html`); human turns stay plain text,
//! minus the pager glued to their start and, in the sanitizer era, the entity escaping; service
//! errors, blocked words and plugin conversations are dropped; roles are normalised and the turn
//! structure repaired as FastChat's `clean_sharegpt` does, with its leaks closed (it lets rate-limit
//! turns through, matches blocked words on raw HTML and parses user text as HTML).
use super::conversation::{owned_extra, Conversation, RawConversation, Role, Turn};
use super::html;
use super::report::Reason;
use std::borrow::Cow;

/// Settings of the clean stage.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Lower-case words; a conversation with any of them in any converted turn is dropped.
    pub blocked_words: Vec<String>,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions { blocked_words: vec!["openai".into(), "chatgpt".into()] }
    }
}

/// Cleans one record (the JSON text of one element of a dump); `index` names records without id.
pub fn clean_record(json: &str, index: usize, options: &CleanOptions) -> Result<Conversation, Reason> {
    let raw = RawConversation::parse(json, index)?;
    if is_plugin_conversation(&raw) {
        return Err(Reason::Plugins);
    }
    let mut roles = Vec::with_capacity(raw.turns.len());
    for t in &raw.turns {
        roles.push(Role::parse(&t.role).ok_or(Reason::UnknownRole)?);
    }
    // The sanitizer era stored human turns entity-escaped; its assistant HTML has bare `<div>`s.
    let sanitized = raw.turns.iter().zip(&roles).any(|(t, r)| *r == Role::Assistant && t.text.starts_with("<div>"));
    let numbering = html::LazyListNumbering::of_conversation(
        raw.turns.iter().zip(&roles).filter(|(_, r)| **r == Role::Assistant).map(|(t, _)| &*t.text),
    );

    let mut system = raw.system.map(Cow::into_owned);
    let mut turns: Vec<Turn> = Vec::with_capacity(raw.turns.len());
    for (i, (t, &role)) in raw.turns.iter().zip(&roles).enumerate() {
        let text = match role {
            Role::System if i == 0 && system.is_none() => {
                system = Some(t.text.to_string());
                continue;
            }
            Role::System => return Err(Reason::WrongFormat),
            Role::User => clean_human(&t.text, sanitized),
            Role::Assistant => {
                let text = if html::is_chatgpt_html(&t.text) {
                    html::to_markdown_with(&t.text, numbering)
                } else {
                    t.text.to_string()
                };
                if is_service_error(&text) {
                    return Err(Reason::ServiceError);
                }
                text
            }
        };
        turns.push(Turn { role, text });
    }
    repair_structure(&mut turns)?;
    if contains_blocked_word(&turns, &options.blocked_words) {
        return Err(Reason::BlockedWords);
    }
    Ok(Conversation { id: raw.id, system, turns, extra: owned_extra(raw.extra) })
}

/// Leading non-user turns and a trailing user turn are dropped, an empty turn ends the
/// conversation there, and what is left must alternate user, assistant.
pub fn repair_structure(turns: &mut Vec<Turn>) -> Result<(), Reason> {
    if let Some(empty) = turns.iter().position(|t| t.text.trim().is_empty()) {
        turns.truncate(empty);
    }
    let first_user = turns.iter().position(|t| t.role == Role::User).unwrap_or(turns.len());
    turns.drain(..first_user);
    if turns.last().is_some_and(|t| t.role == Role::User) {
        turns.pop();
    }
    for (i, t) in turns.iter().enumerate() {
        let expected = if i % 2 == 0 { Role::User } else { Role::Assistant };
        if t.role != expected {
            return Err(Reason::WrongFormat);
        }
    }
    if turns.len() < 2 {
        return Err(Reason::TooShort);
    }
    Ok(())
}

/// A human turn: entities decoded in the sanitizer era, the pager text removed. Never parsed as HTML.
pub fn clean_human(text: &str, sanitized: bool) -> String {
    let text = if sanitized { html::decode_entities(text) } else { Cow::Borrowed(text) };
    strip_pager(&text).to_string()
}

/// Removes the regenerate pager ("2 / 2") that the export glued to the start of a human turn.
/// It is `N / M` with 1 <= N <= M < 100 and no separator before the text; a real fraction is
/// followed by whitespace or ends the turn ("3 / 4 cup"), so it stays. When the text itself starts
/// with digits ("1 / 12019 was..."), the shortest count M >= N is taken as the pager. A turn that
/// is only `N / M` (and whitespace) is the pager over an empty message, which the page showed like
/// any other; it becomes that empty message.
pub fn strip_pager(text: &str) -> &str {
    let b = text.as_bytes();
    let n_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n_len == 0 || n_len > 2 || !text[n_len..].starts_with(" / ") {
        return text;
    }
    let n: u32 = text[..n_len].parse().unwrap_or(0);
    let m_start = n_len + 3;
    let digits = b[m_start..].iter().take_while(|c| c.is_ascii_digit()).count();
    for m_len in 1..=digits.min(2) {
        let m: u32 = text[m_start..m_start + m_len].parse().unwrap_or(0);
        let rest = &text[m_start + m_len..];
        let glued = rest.chars().next().is_some_and(|c| !c.is_whitespace());
        if n >= 1 && n <= m && (glued || (m_len == digits && rest.trim().is_empty())) {
            return rest;
        }
    }
    text
}

/// Messages the ChatGPT page showed instead of an answer. Whole-turn matches (case-insensitive),
/// except the content-policy notice, which prefixed an answer it flagged.
const SERVICE_ERRORS: &[&str] = &[
    "too many requests in 1 hour. try again later.",
    "too many requests, please slow down",
    "an error occurred. if this issue persists please contact us through our help center at help.openai.com.",
    "network error",
    "something went wrong, please try reloading the conversation.",
    "something went wrong. if this issue persists please contact us through our help center at help.openai.com.",
    "there was an error generating a response",
    "hmm...something seems to have gone wrong.",
    "error in body stream",
    "load failed",
    "conversation not found",
];
const POLICY_PREFIXES: &[&str] =
    &["!contents may violate our content policy", "!this content may violate our content policy"];

/// Whether an assistant turn is a service error rather than an answer.
pub fn is_service_error(text: &str) -> bool {
    let t = text.trim();
    if t.len() > 200 {
        return POLICY_PREFIXES.iter().any(|p| starts_with_ignore_case(t, p));
    }
    let lower = t.to_lowercase();
    SERVICE_ERRORS.contains(&lower.as_str()) || POLICY_PREFIXES.iter().any(|p| lower.starts_with(p))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Blocked words are matched on the converted text, case-insensitively, in every turn. ASCII
/// words (the usual case) are found in an ASCII-lowercased copy of the turn, one reused buffer
/// per call; other words fall back to full Unicode lowercasing.
pub fn contains_blocked_word(turns: &[Turn], words: &[String]) -> bool {
    if words.is_empty() {
        return false;
    }
    let mut lower = Vec::new();
    turns.iter().any(|t| {
        lower.clear();
        lower.extend(t.text.bytes().map(|b| b.to_ascii_lowercase()));
        words.iter().any(|w| {
            if w.is_ascii() {
                memchr::memmem::find(&lower, w.as_bytes()).is_some()
            } else {
                t.text.to_lowercase().contains(w.as_str())
            }
        })
    })
}

/// Plugin conversations (ChatGPT's plugin model calling tools) are not plain chats: the record's
/// `model` field names plugins, a turn comes from a tool, or the page header "Model: Plugins"
/// was copied into the first turn.
fn is_plugin_conversation(raw: &RawConversation) -> bool {
    let model_is_plugins =
        raw.extra.iter().any(|(k, v)| k == "model" && v.get().to_ascii_lowercase().contains("plugin"));
    let tool_turn = raw.turns.iter().any(|t| matches!(t.role.as_ref(), "plugin" | "tool" | "function"));
    let header = raw.turns.first().is_some_and(|t| t.text.trim_start().starts_with("Model: Plugins"));
    model_is_plugins || tool_turn || header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_is_removed_but_fractions_stay() {
        assert_eq!(strip_pager("2 / 2Write a poem"), "Write a poem");
        assert_eq!(strip_pager("1 / 1\"quoted\""), "\"quoted\"");
        assert_eq!(strip_pager("3 / 4 cup of flour"), "3 / 4 cup of flour");
        assert_eq!(strip_pager("1 / 2. Based on the report"), ". Based on the report");
        assert_eq!(strip_pager("3 / 4\ncup"), "3 / 4\ncup");
        assert_eq!(strip_pager("3 / 2Write"), "3 / 2Write");
        assert_eq!(strip_pager("1 / 12019 was a year"), "2019 was a year");
        assert_eq!(strip_pager("10 / 10ok"), "ok");
        assert_eq!(strip_pager("hello 1 / 1x"), "hello 1 / 1x");
        // a turn that is only the pager was an empty message; text after a separator stays a fraction
        assert_eq!(strip_pager("1 / 1"), "");
        assert_eq!(strip_pager("2 / 3\n"), "\n");
        assert_eq!(strip_pager("3 / 2"), "3 / 2");
        assert_eq!(strip_pager("12 / 3"), "12 / 3");
    }

    #[test]
    fn a_human_turn_that_is_only_the_pager_ends_the_conversation_like_an_empty_turn() {
        // The export glued "2 / 2" to an empty message: the conversation is cut there, as it is
        // at any empty turn, instead of training on "2 / 2" as what the user said.
        let record = r#"{"id": "p", "conversations": [{"from": "human", "value": "1 / 1Hi"},
            {"from": "gpt", "value": "Hello! How can I help?"}, {"from": "human", "value": "2 / 2"},
            {"from": "gpt", "value": "Anything else?"}]}"#;
        let c = clean_record(record, 0, &CleanOptions::default()).unwrap();
        let texts: Vec<&str> = c.turns.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["Hi", "Hello! How can I help?"]);
    }

    #[test]
    fn service_errors_are_recognised_and_answers_are_not() {
        assert!(is_service_error("Too many requests in 1 hour. Try again later."));
        assert!(is_service_error(" network error\n"));
        assert!(is_service_error("!Contents may violate our content policy"));
        assert!(!is_service_error("A network error happens when the cable is unplugged."));
        assert!(!is_service_error("Too many requests in 1 hour is a limit some APIs set; try again later."));
    }

    #[test]
    fn blocked_words_match_case_insensitively_in_any_turn() {
        let turns = |a: &str, b: &str| {
            vec![Turn { role: Role::User, text: a.into() }, Turn { role: Role::Assistant, text: b.into() }]
        };
        let words = CleanOptions::default().blocked_words;
        assert!(contains_blocked_word(&turns("hi", "I am made by OpenAI."), &words));
        assert!(contains_blocked_word(&turns("Is CHATGPT here?", "no"), &words));
        assert!(!contains_blocked_word(&turns("open AI", "chat gpt"), &words));
        assert!(contains_blocked_word(&turns("Ärger", "x"), &["ärger".to_string()]));
        assert!(!contains_blocked_word(&turns("OpenAI", "x"), &[]));
    }

    #[test]
    fn lazy_bullet_lists_go_on_counting_where_the_conversation_numbers_past_interruptions() {
        // "1. A:\n* a\n2. B:" and "1. A:\n* a\n1. B:" are the same HTML. A conversation whose
        // other lists carry `start` (numbering went on across an interruption) goes on counting.
        let lazy = "<div><p>Steps:</p><ol><li>A:\n* a</li><li>B:\n* b</li></ol></div>";
        let started = "<div><ol><li>x</li></ol><p>then</p><ol start=\"2\"><li>y</li></ol></div>";
        let record = |turns: &[&str]| {
            let turns: Vec<String> = turns
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let from = if i % 2 == 0 { "human" } else { "gpt" };
                    format!(r#"{{"from": "{from}", "value": {}}}"#, serde_json::to_string(v).unwrap())
                })
                .collect();
            format!(r#"{{"id": "n", "conversations": [{}]}}"#, turns.join(", "))
        };
        let options = CleanOptions::default();
        let c = clean_record(&record(&["q", lazy, "more", started]), 0, &options).unwrap();
        assert_eq!(c.turns[1].text, "Steps:\n\n1. A:\n* a\n2. B:\n* b");
        // no such evidence: a lazy bullet under item 1 mostly came from lists numbered "1." throughout
        let c = clean_record(&record(&["q", lazy]), 0, &options).unwrap();
        assert_eq!(c.turns[1].text, "Steps:\n\n1. A:\n* a\n1. B:\n* b");
        // a list that restarted at 1 after a code block outweighs one `start`
        let code = "<pre><div><code>x\n</code></div></pre>";
        let restarted = format!(
            "<div><ol><li>x</li></ol>{code}<ol><li>y</li></ol><ol><li>u</li></ol>{code}<ol><li>v</li></ol></div>"
        );
        let c = clean_record(&record(&["q", lazy, "more", started, "again", &restarted]), 0, &options).unwrap();
        assert_eq!(c.turns[1].text, "Steps:\n\n1. A:\n* a\n1. B:\n* b");
    }

    #[test]
    fn random_and_truncated_records_never_panic() {
        use crate::util::rng::SplitMix64;
        let html = r#"<div class="markdown prose w-full break-words dark:prose-invert light"><p>Use <code>x</code>:</p><pre><div class="bg-black"><div class="flex"><span>rust</span><button>Copy code</button></div><div><code class="!whitespace-pre hljs language-rust">fn main() {\n\tprintln!(&quot;&lt;hi&gt;&quot;);\n}</code></div></div></pre><ol start="2"><li>a<ul><li>b</li></ul></li></ol><table><tr><td>1</td></tr></table></div>"#;
        let record = format!(
            r#"{{"id": "x", "conversations": [{{"from": "human", "value": "1 / 2Hi &amp; bye"}}, {{"from": "gpt", "value": "{}"}}]}}"#,
            html.replace('"', "\\\"")
        );
        let options = CleanOptions::default();
        assert!(clean_record(&record, 0, &options).is_ok(), "the intact record cleans");
        for cut in 0..record.len() {
            if record.is_char_boundary(cut) {
                let _ = clean_record(&record[..cut], cut, &options);
            }
        }
        let alphabet: Vec<char> = "<>/\"=&;#![]{}:, \\ndivprecodeli0123456789\u{e9}\u{1F600}".chars().collect();
        let mut rng = SplitMix64::new(42);
        for i in 0..2000 {
            let len = rng.below(200);
            let soup: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            let value = serde_json::to_string(&format!("<div>{soup}")).unwrap();
            let json = format!(
                r#"{{"id": {i}, "conversations": [{{"from": "human", "value": {value}}}, {{"from": "gpt", "value": {value}}}]}}"#
            );
            let _ = clean_record(&json, i, &options);
            let _ = clean_record(&soup, i, &options);
        }
    }
}
