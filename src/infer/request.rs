//! Chat Completions requests as `vicuna serve` reads them: every field it honours type-checked
//! (a wrong type is a 400 naming the field), the sampling settings range-checked, and the
//! messages turned into a system prompt and alternating turns. Pure functions of the body, so
//! the HTTP side stays thin and the fuzz test exercises this directly through the server.
use super::generate::Sampling;
use crate::data::conversation::{Role, Turn};
use serde_json::Value;

/// The fields of a Chat Completions request this server honours, type-checked (others are
/// ignored; `null` counts as absent).
pub struct ChatRequest {
    /// Role and content of each message.
    pub messages: Vec<(String, Value)>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// As sent: -1 and 0 are off.
    pub top_k: Option<i64>,
    /// `max_completion_tokens` or `max_tokens` (the name the request used, and the value).
    pub max_tokens: Option<(&'static str, u64)>,
    pub seed: Option<u64>,
    pub repetition_penalty: Option<f64>,
    pub stream: bool,
}

impl ChatRequest {
    /// Reads and type-checks a request body; the error names the field.
    pub fn parse(body: &[u8]) -> std::result::Result<ChatRequest, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
        let Value::Object(fields) = value else {
            return Err(format!(
                "the body must be a JSON object with a messages array, not {}",
                crate::util::json_kind(&value)
            ));
        };
        let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
        let number = |name: &'static str| match get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{name} must be a number, not {}", crate::util::json_kind(v))),
        };
        let integer = |name: &'static str| match get(name) {
            None => Ok(None),
            Some(v) => match (v.as_i64(), v.as_u64()) {
                (Some(i), _) => Ok(Some(i128::from(i))),
                (None, Some(u)) => Ok(Some(i128::from(u))),
                _ => Err(format!("{name} must be an integer, not {}", crate::util::json_kind(v))),
            },
        };
        let messages = match get("messages") {
            None => return Err("messages is required: a list of {\"role\", \"content\"} objects".into()),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let m = m
                        .as_object()
                        .ok_or_else(|| format!("messages[{i}] must be an object, not {}", crate::util::json_kind(m)))?;
                    let role = match m.get("role") {
                        Some(Value::String(r)) => r.clone(),
                        Some(v) => {
                            return Err(format!(
                                "messages[{i}].role must be a string, not {}",
                                crate::util::json_kind(v)
                            ))
                        }
                        None => return Err(format!("messages[{i}].role is required")),
                    };
                    let content =
                        m.get("content").cloned().ok_or_else(|| format!("messages[{i}].content is required"))?;
                    Ok((role, content))
                })
                .collect::<std::result::Result<Vec<_>, String>>()?,
            Some(v) => {
                return Err(format!(
                    "messages must be a list of {{\"role\", \"content\"}} objects, not {}",
                    crate::util::json_kind(v)
                ))
            }
        };
        let max_tokens = match (integer("max_completion_tokens")?, integer("max_tokens")?) {
            (Some(n), _) => Some(("max_completion_tokens", n)),
            (None, Some(n)) => Some(("max_tokens", n)),
            (None, None) => None,
        };
        let max_tokens = match max_tokens {
            Some((name, n)) if n < 1 => return Err(format!("{name} must be at least 1, got {n}")),
            Some((name, n)) => Some((name, u64::try_from(n).unwrap_or(u64::MAX))),
            None => None,
        };
        let top_k = match integer("top_k")? {
            Some(k) if k < -1 => return Err(format!("top_k must be at least 0 (0 or -1 is off), got {k}")),
            Some(k) => Some(i64::try_from(k).unwrap_or(i64::MAX)),
            None => None,
        };
        match integer("n")? {
            None | Some(1) => {}
            Some(n) => return Err(format!("n must be 1 (this server returns one choice per request), got {n}")),
        }
        let seed = integer("seed")?.map(|s| s as u64);
        let stream = match get("stream") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(format!("stream must be true or false, not {}", crate::util::json_kind(v))),
        };
        Ok(ChatRequest {
            messages,
            temperature: number("temperature")?,
            top_p: number("top_p")?,
            top_k,
            max_tokens,
            seed,
            repetition_penalty: number("repetition_penalty")?,
            stream,
        })
    }

    /// The sampling settings asked for, range-checked by `Sampling::check` (the error names the
    /// request's field); `max_new_tokens` is not yet clamped to the context.
    pub fn sampling(&self, default_max_tokens: usize) -> std::result::Result<Sampling, String> {
        let sampling = Sampling {
            temperature: self.temperature.unwrap_or(0.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k: self.top_k.map_or(0, |k| usize::try_from(k).unwrap_or(0)),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            max_new_tokens: self
                .max_tokens
                .map_or(default_max_tokens, |(_, n)| usize::try_from(n).unwrap_or(usize::MAX)),
            seed: self.seed.unwrap_or(0),
        };
        sampling.check().map_err(|e| {
            let field = match e.field {
                "max_new_tokens" => self.max_tokens.map_or("max_tokens", |(name, _)| name),
                other => other,
            };
            format!("{field} {}", e.reason)
        })?;
        Ok(sampling)
    }
}

/// The text of a message: a string, or the text parts of a list of content parts.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(""))
        }
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Turns OpenAI messages into a system prompt and alternating turns ending with a user turn.
pub fn conversation(messages: &[(String, Value)]) -> std::result::Result<(Option<String>, Vec<Turn>), String> {
    let mut system = None;
    let mut turns = Vec::new();
    for (i, (role, content)) in messages.iter().enumerate() {
        let text = content_text(content)
            .ok_or_else(|| format!("messages[{i}].content must be a string or a list of text parts"))?;
        let role = match role.as_str() {
            "system" | "developer" if turns.is_empty() => {
                system = Some(text);
                continue;
            }
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not supported here (system first, then user and assistant)"
                ))
            }
        };
        let expected = if turns.len() % 2 == 0 { Role::User } else { Role::Assistant };
        if role != expected {
            return Err(format!("messages[{i}]: turns must alternate user, assistant, starting with user"));
        }
        turns.push(Turn { role, text });
    }
    if turns.last().map(|t| t.role) != Some(Role::User) {
        return Err("messages must end with a user message".into());
    }
    Ok((system, turns))
}
