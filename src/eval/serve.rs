//! `vicuna serve`: an OpenAI-compatible Chat Completions server (`GET /v1/models`,
//! `POST /v1/chat/completions` with and without `stream: true`), so existing clients can chat with
//! a fine-tuned model and `vicuna eval judge` can use it as a judge. Requests wait in a bounded
//! queue (HTTP 503 with `Retry-After` when it is full); one worker thread owns the model and runs
//! queued requests that share sampling settings as one batch. An optional bearer key guards it.
use crate::data::conversation::{Role, Turn};
use crate::model::generate::Sampling;
use crate::model::inference::Engine;
use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_stream::StreamExt;

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    /// Name reported by `/v1/models` and in responses.
    pub model_name: String,
    /// Required `Authorization: Bearer` key, if any.
    pub api_key: Option<String>,
    /// Requests waiting at most; more get 503.
    pub queue: usize,
    /// Requests run together at most.
    pub max_batch: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
}

/// What the worker sends back for one request.
enum Reply {
    Delta(String),
    Done { text: String, prompt_tokens: usize, completion_tokens: usize, finish: &'static str },
    Failed(String),
}

struct Job {
    system: Option<String>,
    turns: Vec<Turn>,
    sampling: Sampling,
    reply: UnboundedSender<Reply>,
}

/// The bounded queue between HTTP handlers and the model worker.
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    fn push(&self, job: Job) -> std::result::Result<(), Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= self.capacity {
            return Err(job);
        }
        jobs.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// Blocks for a job, then takes the waiting jobs with the same sampling settings, up to `max`.
    fn take_batch(&self, max: usize) -> Vec<Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        while jobs.is_empty() {
            jobs = self.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
        }
        let first = jobs.pop_front().expect("not empty");
        let mut batch = vec![first];
        let mut i = 0;
        while i < jobs.len() && batch.len() < max {
            if jobs[i].sampling == batch[0].sampling {
                batch.push(jobs.remove(i).expect("index checked"));
            } else {
                i += 1;
            }
        }
        batch
    }
}

struct Shared {
    queue: Arc<Queue>,
    options: ServeOptions,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(engine: Engine, options: ServeOptions) -> Result<()> {
    let queue =
        Arc::new(Queue { jobs: Mutex::new(VecDeque::new()), ready: Condvar::new(), capacity: options.queue.max(1) });
    let worker_queue = queue.clone();
    let max_batch = options.max_batch.max(1);
    std::thread::Builder::new()
        .name("model".into())
        .spawn(move || worker(engine, worker_queue, max_batch))
        .context("cannot start the model worker")?;
    let shared = Arc::new(Shared { queue, options: options.clone() });
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/health", get(|| async { "ok" }))
        .with_state(shared);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
        eprintln!("serving {} on http://{}", options.model_name, listener.local_addr()?);
        axum::serve(listener, app).with_graceful_shutdown(shutdown()).await.context("server failed")
    })
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// The model worker: batches of queued jobs, tokens streamed back as text deltas.
fn worker(engine: Engine, queue: Arc<Queue>, max_batch: usize) {
    loop {
        let jobs = queue.take_batch(max_batch);
        let prompts: Result<Vec<Vec<u32>>> =
            jobs.iter().map(|j| engine.prompt_ids(j.system.as_deref(), &j.turns)).collect();
        let prompts = match prompts {
            Ok(p) => p,
            Err(e) => {
                jobs.iter().for_each(|j| drop(j.reply.send(Reply::Failed(format!("{e:#}")))));
                continue;
            }
        };
        let mut ids: Vec<Vec<u32>> = vec![Vec::new(); jobs.len()];
        let mut shown = vec![0usize; jobs.len()];
        let sampling = jobs[0].sampling.clone();
        let result = engine.generate(&prompts, &sampling, &mut |row, id| {
            ids[row].push(id);
            if let Ok(text) = engine.tokenizer.decode(&ids[row], true) {
                if text.len() > shown[row] && text.is_char_boundary(shown[row]) {
                    let _ = jobs[row].reply.send(Reply::Delta(text[shown[row]..].to_string()));
                    shown[row] = text.len();
                }
            }
            true
        });
        match result {
            Ok(outputs) => {
                for ((job, out), prompt) in jobs.iter().zip(outputs).zip(&prompts) {
                    let finish = if out.ids.len() >= sampling.max_new_tokens { "length" } else { "stop" };
                    let done = Reply::Done {
                        text: out.text,
                        prompt_tokens: prompt.len(),
                        completion_tokens: out.ids.len(),
                        finish,
                    };
                    let _ = job.reply.send(done);
                }
            }
            Err(e) => jobs.iter().for_each(|j| drop(j.reply.send(Reply::Failed(format!("{e:#}"))))),
        }
    }
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"message": message.into(), "type": kind}}))).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    match &shared.options.api_key {
        None => true,
        Some(key) => {
            headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v == format!("Bearer {key}"))
        }
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "missing or wrong bearer key");
    }
    Json(json!({"object": "list", "data": [{"id": shared.options.model_name, "object": "model", "created": 0, "owned_by": "vicuna"}]})).into_response()
}

/// The fields of a Chat Completions request this server honours (others are ignored).
#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    seed: Option<u64>,
    repetition_penalty: Option<f64>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Value,
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
fn conversation(messages: &[Message]) -> std::result::Result<(Option<String>, Vec<Turn>), String> {
    let mut system = None;
    let mut turns = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let text = content_text(&m.content)
            .ok_or_else(|| format!("messages[{i}].content must be a string or a list of text parts"))?;
        let role = match m.role.as_str() {
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
        return Err("the last message must come from the user".into());
    }
    Ok((system, turns))
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "missing or wrong bearer key");
    }
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", format!("invalid request body: {e}")),
    };
    let (system, turns) = match conversation(&request.messages) {
        Ok(c) => c,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", message),
    };
    let sampling = Sampling {
        temperature: request.temperature.unwrap_or(0.0),
        top_p: request.top_p.unwrap_or(1.0),
        top_k: request.top_k.unwrap_or(0),
        repetition_penalty: request.repetition_penalty.unwrap_or(1.0),
        max_new_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(shared.options.default_max_tokens)
            .max(1),
        seed: request.seed.unwrap_or(0),
    };
    let (tx, mut rx) = unbounded_channel();
    if shared.queue.push(Job { system, turns, sampling, reply: tx }).is_err() {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is busy: its request queue is full; retry later",
        );
        response.headers_mut().insert("retry-after", "1".parse().expect("valid header"));
        return response;
    }
    let id = format!(
        "chatcmpl-{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let model = shared.options.model_name.clone();
    if !request.stream {
        loop {
            match rx.recv().await {
                Some(Reply::Delta(_)) => continue,
                Some(Reply::Done { text, prompt_tokens, completion_tokens, finish }) => {
                    return Json(json!({
                        "id": id, "object": "chat.completion", "created": created, "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
                    }))
                    .into_response();
                }
                Some(Reply::Failed(message)) => {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
                }
                None => return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the model worker stopped"),
            }
        }
    }
    let chunk = move |delta: Value, finish: Option<&str>| {
        Event::default().data(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string())
    };
    let first = chunk(json!({"role": "assistant"}), None);
    let stream = async_stream(rx, chunk);
    Sse::new(tokio_stream::once(Ok::<_, Infallible>(first)).chain(stream)).into_response()
}

/// The SSE events after the first: content deltas, the final chunk with its finish reason, `[DONE]`.
fn async_stream(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Reply>,
    chunk: impl Fn(Value, Option<&str>) -> Event + Send + 'static,
) -> impl tokio_stream::Stream<Item = std::result::Result<Event, Infallible>> {
    let (tx, events) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let (event, last) = match reply {
                Reply::Delta(text) => (chunk(json!({"content": text}), None), false),
                Reply::Done { finish, .. } => (chunk(json!({}), Some(finish)), true),
                Reply::Failed(message) => (
                    Event::default().data(json!({"error": {"message": message, "type": "server_error"}}).to_string()),
                    true,
                ),
            };
            if tx.send(Ok(event)).is_err() {
                return;
            }
            if last {
                let _ = tx.send(Ok(Event::default().data("[DONE]")));
                return;
            }
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(events)
}
