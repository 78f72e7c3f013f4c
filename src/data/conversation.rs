//! The conversation: the unit every data stage reads and writes. A record in any accepted shape
//! (ShareGPT `conversations: [{from, value}]` or OpenAI `messages: [{role, content}]`) is parsed
//! into one owned type with normalised roles; fields the tool does not interpret (`model`, `lang`,
//! ...) are kept verbatim and written back. Output is ShareGPT (`human`/`gpt`) or OpenAI style.
use super::report::Reason;
use serde::de::{MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Who speaks a turn. Every source spelling maps to one of these three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions for the assistant; only as the conversation's first turn.
    System,
    /// The person asking (`human`, `user`).
    User,
    /// The model answering (`gpt`, `assistant`, `chatgpt`, `bard`, `bing`, `model`).
    Assistant,
}

impl Role {
    /// Normalises a source role name; `None` for names no chat format uses (the record is skipped).
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "human" | "user" => Some(Role::User),
            "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" => Some(Role::Assistant),
            "system" => Some(Role::System),
            _ => None,
        }
    }

    /// The ShareGPT spelling FastChat's trainer expects.
    pub fn sharegpt(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "human",
            Role::Assistant => "gpt",
        }
    }

    /// The OpenAI Chat Completions spelling.
    pub fn openai(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// A conversation with its id, optional system prompt and the record's other fields.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    /// The system prompt: the record's `system` field or a leading system turn.
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    /// Fields the tool does not interpret, in input order, as their original JSON.
    pub extra: Vec<(String, Box<RawValue>)>,
}

/// The record shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Style {
    /// `{"id", "conversations": [{"from": "human"|"gpt", "value"}], "system"?}` (FastChat's training format).
    #[default]
    Sharegpt,
    /// `{"id", "messages": [{"role", "content"}]}` with the system prompt as the first message.
    Openai,
}

/// A record's fields as borrowed JSON, in file order; the first parse of every record. A key that
/// appears twice keeps its first position and its last value, as Python's `json.load` (and so
/// FastChat) reads it.
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// Parses a record's top level; `Err(NotAnObject)` for arrays, strings and other non-records.
    pub fn parse(json: &'a str) -> Result<Fields<'a>, Reason> {
        let mut de = serde_json::Deserializer::from_str(json);
        Fields::deserialize(&mut de).map_err(|_| Reason::NotAnObject)
    }

    /// The raw JSON of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut out: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                // Records have a handful of keys, so a scan finds a repeated one fastest; a record
                // with thousands of keys switches to an index so it cannot cost quadratic time.
                let mut index: Option<std::collections::HashMap<Cow<'de, str>, usize>> = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    if index.is_none() && out.len() >= 32 {
                        index = Some(out.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
                    }
                    let found = match &index {
                        Some(index) => index.get(&key).copied(),
                        None => out.iter().position(|(k, _)| *k == key),
                    };
                    match found {
                        Some(i) => out[i].1 = value,
                        None => {
                            if let Some(index) = &mut index {
                                index.insert(key.clone(), out.len());
                            }
                            out.push((key, value));
                        }
                    }
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A turn as the source wrote it, before roles are normalised or text is cleaned.
pub struct RawTurn<'a> {
    /// The source's role name (`human`, `gpt`, `user`, `bard`, ...).
    pub role: Cow<'a, str>,
    pub text: Cow<'a, str>,
}

/// A record's conversation before cleaning: id, system prompt, raw turns and the other fields.
pub struct RawConversation<'a> {
    pub id: String,
    pub system: Option<Cow<'a, str>>,
    pub turns: Vec<RawTurn<'a>>,
    pub extra: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Fields the parser interprets; everything else is carried through as `extra`.
const KNOWN: &[&str] = &["id", "conversations", "messages", "system"];

impl<'a> RawConversation<'a> {
    /// Reads a record in ShareGPT or OpenAI shape. `index` names records that carry no id.
    pub fn parse(json: &'a str, index: usize) -> Result<RawConversation<'a>, Reason> {
        let fields = Fields::parse(json)?;
        let id = match fields.get("id") {
            None => index.to_string(),
            Some(raw) => match serde_json::from_str::<IdValue>(raw.get()) {
                Ok(IdValue::Text(s)) => s.into_owned(),
                Ok(IdValue::Number(n)) => n.to_string(),
                Err(_) => return Err(Reason::BadId),
            },
        };
        let system = match fields.get("system") {
            None => None,
            Some(raw) => match serde_json::from_str::<Option<Cow<'a, str>>>(raw.get()) {
                Ok(s) => s,
                Err(_) => return Err(Reason::BadTurn),
            },
        };
        let list =
            fields.get("conversations").or_else(|| fields.get("messages")).ok_or(Reason::MissingConversations)?;
        let items: Vec<&'a RawValue> = serde_json::from_str(list.get()).map_err(|_| Reason::MissingConversations)?;
        let mut turns = Vec::with_capacity(items.len());
        for item in items {
            let t = Fields::parse(item.get()).map_err(|_| Reason::BadTurn)?;
            let field = |name: &str| -> Result<Option<Cow<'a, str>>, Reason> {
                t.get(name).map_or(Ok(None), |raw| {
                    serde_json::from_str::<Text<'a>>(raw.get()).map(|t| t.0).map_err(|_| Reason::BadTurn)
                })
            };
            let role = field("from")?.or(field("role")?).ok_or(Reason::BadTurn)?;
            let text = field("value")?.or(field("content")?).ok_or(Reason::BadTurn)?;
            turns.push(RawTurn { role, text });
        }
        let extra = fields.0.into_iter().filter(|(k, _)| !KNOWN.contains(&k.as_ref())).collect();
        Ok(RawConversation { id, system, turns, extra })
    }
}

/// A string field (or null), borrowed from the file unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Option<Cow<'a, str>>);

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Number(serde_json::Number),
}

impl Conversation {
    /// Parses a record that is already clean (the input of filter, dedup, stats, ...): roles are
    /// normalised and a leading system turn becomes the system prompt; text is taken as it is.
    pub fn parse(json: &str, index: usize) -> Result<Conversation, Reason> {
        let raw = RawConversation::parse(json, index)?;
        let mut system = raw.system.map(Cow::into_owned);
        let mut turns = Vec::with_capacity(raw.turns.len());
        for (i, t) in raw.turns.into_iter().enumerate() {
            let role = Role::parse(&t.role).ok_or(Reason::UnknownRole)?;
            if role == Role::System {
                if i > 0 || system.is_some() {
                    return Err(Reason::WrongFormat);
                }
                system = Some(t.text.into_owned());
                continue;
            }
            turns.push(Turn { role, text: t.text.into_owned() });
        }
        Ok(Conversation { id: raw.id, system, turns, extra: owned_extra(raw.extra) })
    }

    /// Text of the first turn with `role`, the usual key for duplicates and previews.
    pub fn first(&self, role: Role) -> Option<&str> {
        self.turns.iter().find(|t| t.role == role).map(|t| t.text.as_str())
    }

    /// Appends this conversation as one line of JSON in the given style.
    pub fn write_json(&self, style: Style, out: &mut Vec<u8>) {
        out.push(b'{');
        write_key_str(out, "id", &self.id);
        match style {
            Style::Sharegpt => {
                out.extend_from_slice(b",\"conversations\":[");
                for (i, t) in self.turns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    write_key_str(out, "from", t.role.sharegpt());
                    out.push(b',');
                    write_key_str(out, "value", &t.text);
                    out.push(b'}');
                }
                out.push(b']');
                if let Some(system) = &self.system {
                    out.push(b',');
                    write_key_str(out, "system", system);
                }
            }
            Style::Openai => {
                out.extend_from_slice(b",\"messages\":[");
                let system = self.system.as_deref().map(|s| (Role::System, s));
                let all = system.into_iter().chain(self.turns.iter().map(|t| (t.role, t.text.as_str())));
                for (i, (role, text)) in all.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    write_key_str(out, "role", role.openai());
                    out.push(b',');
                    write_key_str(out, "content", text);
                    out.push(b'}');
                }
                out.push(b']');
            }
        }
        for (k, v) in &self.extra {
            out.push(b',');
            write_str(out, k);
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
    }
}

/// Copies borrowed extra fields into owned ones (they outlive the input map).
pub fn owned_extra(extra: Vec<(Cow<'_, str>, &RawValue)>) -> Vec<(String, Box<RawValue>)> {
    extra.into_iter().map(|(k, v)| (k.into_owned(), v.to_owned())).collect()
}

fn write_key_str(out: &mut Vec<u8>, key: &str, value: &str) {
    write_str(out, key);
    out.push(b':');
    write_str(out, value);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is the reference; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::Fields;

    /// Python's `json.loads`: a repeated key keeps its first position and its last value, also
    /// past the size where the field list switches to an index.
    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        for n in [3, 40, 2000] {
            let mut parts: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
            parts.push("\"k1\": \"last\"".to_string());
            let json = format!("{{{}}}", parts.join(", "));
            let fields = Fields::parse(&json).map_err(|_| "not an object").unwrap();
            assert_eq!(fields.0.len(), n, "no key appears twice");
            assert_eq!(fields.0[1].0, "k1", "the first position is kept");
            assert_eq!(fields.get("k1").unwrap().get(), "\"last\"", "the last value wins");
            assert_eq!(fields.get(&format!("k{}", n - 1)).unwrap().get(), (n - 1).to_string());
        }
    }
}
