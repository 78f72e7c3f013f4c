//! `vicuna serve`: an OpenAI-compatible Chat Completions server (`GET /v1/models`,
//! `POST /v1/chat/completions` with and without `stream: true`), so existing clients can chat with
//! a fine-tuned model and `vicuna eval judge` can use it as a judge. Requests wait in a bounded
//! queue (HTTP 503 with `Retry-After` when it is full); one worker thread owns the model and runs
//! queued requests that share sampling settings as one batch. An optional bearer key guards it.
//!
//! Nothing a client sends may crash it. Every request is checked where it arrives: the body's
//! types, each sampling setting's range (`Sampling::check`, named in the 400), `n` (1 only), and
//! the prompt, rendered and tokenized there, against the model's context (a prompt that leaves no
//! room for an answer is a 400; `max_tokens` is clamped to the room left). The worker runs each
//! batch under `catch_unwind`: a panic answers that batch's requests with 500, is counted in the
//! log, and the next batch runs. A request whose client went away (its reply channel closed) stops
//! at its next token. `/health` answers 503 once the worker thread is gone, and requests then
//! fail at once.
//!
//! Test-only fault injection, read once at start-up and unset in production (no request can turn
//! it on): `VICUNA_TEST_PANIC_ON_PROMPT=TEXT` makes a batch holding a request whose last message
//! is exactly TEXT panic inside the batch guard; `VICUNA_TEST_KILL_WORKER_ON_PROMPT=TEXT` makes
//! the worker thread itself panic on such a request, outside the guard (`tests/serve_faults.rs`).
use super::request::{conversation, ChatRequest};
use crate::data::conversation::Turn;
use crate::infer::engine::{Engine, Prompter};
use crate::infer::generate::{room_left, Sampling};
use crate::infer::stream::TextStream;
use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context as TaskContext, Poll};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
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
    /// `max_tokens` when a request gives none (clamped to the room its prompt leaves).
    pub default_max_tokens: usize,
}

/// What the worker sends back for one request.
enum Reply {
    Delta(String),
    Done { text: String, prompt_tokens: usize, completion_tokens: usize, finish: &'static str },
    Failed(String),
}

/// A checked request waiting for the model: its prompt ids fit the context, and
/// `sampling.max_new_tokens` is clamped to the room they leave.
struct Job {
    prompt: Vec<u32>,
    sampling: Sampling,
    /// Whether the client reads text deltas (otherwise only the final answer is sent).
    stream: bool,
    reply: UnboundedSender<Reply>,
    /// Test-only fault to inject (see the module doc); `None` in production.
    fault: Option<Fault>,
}

/// A test-only fault (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    PanicInBatch,
    KillWorker,
}

/// The test-only fault triggers, from the environment at start-up.
#[derive(Debug, Default)]
struct Faults {
    panic_in_batch: Option<String>,
    kill_worker: Option<String>,
}

impl Faults {
    fn from_env() -> Faults {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Faults {
            panic_in_batch: var("VICUNA_TEST_PANIC_ON_PROMPT"),
            kill_worker: var("VICUNA_TEST_KILL_WORKER_ON_PROMPT"),
        }
    }

    /// The fault a conversation triggers: its last message equals a trigger.
    fn triggered(&self, turns: &[Turn]) -> Option<Fault> {
        let last = turns.last().map(|t| t.text.as_str());
        if last.is_some() && last == self.panic_in_batch.as_deref() {
            Some(Fault::PanicInBatch)
        } else if last.is_some() && last == self.kill_worker.as_deref() {
            Some(Fault::KillWorker)
        } else {
            None
        }
    }
}

/// Why the queue did not take a job.
enum Refused {
    Full,
    /// The worker is gone: nothing will ever run the job.
    Stopped,
}

/// The jobs waiting, and whether the worker has stopped (then nothing more is taken).
struct Waiting {
    jobs: VecDeque<Job>,
    stopped: bool,
}

/// The bounded queue between HTTP handlers and the model worker.
struct Queue {
    waiting: Mutex<Waiting>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    fn push(&self, job: Job) -> std::result::Result<(), Refused> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.stopped {
            return Err(Refused::Stopped);
        }
        if waiting.jobs.len() >= self.capacity {
            return Err(Refused::Full);
        }
        waiting.jobs.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// Blocks for a job, then takes the waiting jobs with the same sampling settings (their
    /// `max_tokens` may differ: each row stops at its own), up to `max`.
    fn take_batch(&self, max: usize) -> Vec<Job> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while waiting.jobs.is_empty() {
            waiting = self.ready.wait(waiting).unwrap_or_else(|e| e.into_inner());
        }
        let first = waiting.jobs.pop_front().expect("not empty");
        let mut batch = vec![first];
        let mut i = 0;
        while i < waiting.jobs.len() && batch.len() < max {
            if same_settings(&waiting.jobs[i].sampling, &batch[0].sampling) {
                batch.push(waiting.jobs.remove(i).expect("index checked"));
            } else {
                i += 1;
            }
        }
        batch
    }

    /// Called when the worker ends: refuses new jobs and drops the waiting ones, whose handlers
    /// then see their reply channel close and answer at once instead of waiting forever.
    fn stop(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.stopped = true;
        waiting.jobs.clear();
    }
}

/// Whether two requests can share a batch: every setting equal but the number of new tokens.
fn same_settings(a: &Sampling, b: &Sampling) -> bool {
    Sampling { max_new_tokens: 0, ..a.clone() } == Sampling { max_new_tokens: 0, ..b.clone() }
}

struct Shared {
    queue: Arc<Queue>,
    options: ServeOptions,
    /// Renders and tokenizes prompts in the handlers (the model stays on its worker).
    prompter: Prompter,
    /// The model's context in tokens.
    context: usize,
    /// The model worker, to tell whether it is still running.
    worker: std::thread::JoinHandle<()>,
    faults: Faults,
}

impl Shared {
    fn worker_gone(&self) -> bool {
        self.worker.is_finished()
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(engine: Engine, options: ServeOptions) -> Result<()> {
    if options.default_max_tokens == 0 {
        bail!("--default-max-tokens must be at least 1");
    }
    let queue = Arc::new(Queue {
        waiting: Mutex::new(Waiting { jobs: VecDeque::new(), stopped: false }),
        ready: Condvar::new(),
        capacity: options.queue.max(1),
    });
    let (prompter, context) = (engine.prompter(), engine.context());
    let worker_queue = queue.clone();
    let max_batch = options.max_batch.max(1);
    let worker = std::thread::Builder::new()
        .name("model".into())
        .spawn(move || worker(engine, worker_queue, max_batch))
        .context("cannot start the model worker")?;
    let faults = Faults::from_env();
    let shared = Arc::new(Shared { queue, options: options.clone(), prompter, context, worker, faults });
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/health", get(health))
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

/// Stops the queue when the worker thread ends, however it ends.
struct StopOnExit(Arc<Queue>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        eprintln!("model worker: stopped; /health now reports it and requests get 503: restart the server");
        self.0.stop();
    }
}

/// The model worker: batches of queued jobs, each under `catch_unwind` so that a panic in one
/// batch (a libtorch error, an allocation that fails) answers that batch with errors and the
/// worker goes on with the next.
fn worker(engine: Engine, queue: Arc<Queue>, max_batch: usize) {
    let _stop = StopOnExit(queue.clone());
    let mut panics = 0usize;
    loop {
        let mut jobs = queue.take_batch(max_batch);
        let queued = jobs.len();
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.len() < queued {
            eprintln!("request(s) cancelled: {} client(s) disconnected while queued", queued - jobs.len());
        }
        if jobs.is_empty() {
            continue;
        }
        if jobs.iter().any(|j| j.fault == Some(Fault::KillWorker)) {
            panic!("VICUNA_TEST_KILL_WORKER_ON_PROMPT: the model worker stops here (test only)");
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run_batch(&engine, &jobs))) {
            panics += 1;
            let what = panic_message(payload.as_ref());
            eprintln!(
                "model worker: a batch of {} request(s) panicked ({what}); they were answered with an error; \
                 {panics} so far; still serving",
                jobs.len()
            );
            for job in &jobs {
                let message = format!("generating this answer failed on the server ({what}); retry or report it");
                let _ = job.reply.send(Reply::Failed(message));
            }
        }
    }
}

/// The first line of a panic's message (libtorch's carry a C++ backtrace after it).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let first = text.lines().next().unwrap_or_default();
    first.chars().take(300).collect()
}

/// Generates one batch and answers each of its requests.
fn run_batch(engine: &Engine, jobs: &[Job]) {
    if jobs.iter().any(|j| j.fault == Some(Fault::PanicInBatch)) {
        panic!("VICUNA_TEST_PANIC_ON_PROMPT: a panic inside one batch (test only)");
    }
    let prompts: Vec<Vec<u32>> = jobs.iter().map(|j| j.prompt.clone()).collect();
    let mut sampling = jobs[0].sampling.clone();
    sampling.max_new_tokens = jobs.iter().map(|j| j.sampling.max_new_tokens).max().unwrap_or(1);
    let mut texts = vec![TextStream::default(); jobs.len()];
    let mut made = vec![0usize; jobs.len()];
    let mut left = vec![false; jobs.len()];
    let result = engine.generate(&prompts, &sampling, &mut |row, id| {
        let job = &jobs[row];
        made[row] += 1;
        let mut gone = job.reply.is_closed();
        if job.stream && !gone {
            if let Ok(Some(piece)) = texts[row].push(&engine.tokenizer, id) {
                gone = job.reply.send(Reply::Delta(piece)).is_err();
            }
        }
        if gone {
            left[row] = true;
            eprintln!("request cancelled: the client disconnected after {} tokens", made[row]);
            return false;
        }
        made[row] < job.sampling.max_new_tokens
    });
    match result {
        Ok(outputs) => {
            for (row, (job, out)) in jobs.iter().zip(outputs).enumerate() {
                if left[row] {
                    continue;
                }
                if job.stream {
                    if let Ok(Some(piece)) = texts[row].finish(&engine.tokenizer) {
                        let _ = job.reply.send(Reply::Delta(piece));
                    }
                }
                let finish = if out.ids.len() >= job.sampling.max_new_tokens { "length" } else { "stop" };
                let done = Reply::Done {
                    text: out.text,
                    prompt_tokens: job.prompt.len(),
                    completion_tokens: out.ids.len(),
                    finish,
                };
                let _ = job.reply.send(done);
            }
        }
        Err(e) => jobs.iter().for_each(|j| drop(j.reply.send(Reply::Failed(format!("{e:#}"))))),
    }
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"message": message.into(), "type": kind}}))).into_response()
}

/// A 400 for a request the server cannot take as sent.
fn invalid(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// The 503 once the model worker is gone (the server must be restarted).
fn worker_gone() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the model worker stopped; the server must be restarted")
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    match &shared.options.api_key {
        None => true,
        Some(key) => {
            headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v == format!("Bearer {key}"))
        }
    }
}

/// 200 `ok` while the model worker runs, 503 once it is gone (so that a supervisor restarts us).
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if shared.worker_gone() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "error": "the model worker stopped"})),
        )
            .into_response();
    }
    "ok".into_response()
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "missing or wrong bearer key");
    }
    Json(json!({"object": "list", "data": [{"id": shared.options.model_name, "object": "model", "created": 0, "owned_by": "vicuna"}]})).into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "missing or wrong bearer key");
    }
    if shared.worker_gone() {
        return worker_gone();
    }
    let request = match ChatRequest::parse(&body) {
        Ok(r) => r,
        Err(message) => return invalid(message),
    };
    let mut sampling = match request.sampling(shared.options.default_max_tokens) {
        Ok(s) => s,
        Err(message) => return invalid(message),
    };
    let (system, turns) = match conversation(&request.messages) {
        Ok(c) => c,
        Err(message) => return invalid(message),
    };
    let fault = shared.faults.triggered(&turns);
    // Rendering and tokenizing a long prompt takes a while: off the async threads.
    let prompter = shared.prompter.clone();
    let prompt = match tokio::task::spawn_blocking(move || prompter.prompt_ids(system.as_deref(), &turns)).await {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return invalid(format!("messages cannot be rendered with the model's chat template: {e:#}")),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "rendering the prompt failed"),
    };
    let room = room_left(shared.context, prompt.len());
    if room == 0 {
        let message = format!(
            "messages are {} tokens, which leaves no room for an answer in the model's context of {} tokens: \
             shorten them",
            prompt.len(),
            shared.context
        );
        let body =
            json!({"error": {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    sampling.max_new_tokens = sampling.max_new_tokens.min(room);
    let (tx, mut rx) = unbounded_channel();
    let job = Job { prompt, sampling, stream: request.stream, reply: tx, fault };
    match shared.queue.push(job) {
        Ok(()) => {}
        Err(Refused::Stopped) => return worker_gone(),
        Err(Refused::Full) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the server is busy: its request queue is full; retry later",
            );
            response.headers_mut().insert("retry-after", "1".parse().expect("valid header"));
            return response;
        }
    }
    let id = format!(
        "chatcmpl-{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let model = shared.options.model_name.clone();
    if !request.stream {
        // Dropping `rx` (when the client goes away and axum drops this future) stops the row.
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
    let events = Events { replies: rx, chunk, state: EventsState::Open };
    Sse::new(tokio_stream::once(Ok::<_, Infallible>(first)).chain(events)).into_response()
}

/// Where an `Events` stream stands.
enum EventsState {
    Open,
    /// The last chunk went out; `[DONE]` is next.
    Finishing,
    Closed,
}

/// The SSE events after the first: content deltas, the final chunk with its finish reason (or an
/// error event), then `[DONE]`. The stream owns the worker's reply channel, so when the client
/// disconnects and axum drops the stream, the worker sees the channel closed at its next token.
struct Events<F> {
    replies: UnboundedReceiver<Reply>,
    chunk: F,
    state: EventsState,
}

impl<F: Fn(Value, Option<&str>) -> Event + Unpin> tokio_stream::Stream for Events<F> {
    type Item = std::result::Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let failed = |message: &str| {
            Event::default().data(json!({"error": {"message": message, "type": "server_error"}}).to_string())
        };
        let event = match self.state {
            EventsState::Closed => return Poll::Ready(None),
            EventsState::Finishing => {
                self.state = EventsState::Closed;
                Event::default().data("[DONE]")
            }
            EventsState::Open => match self.replies.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Reply::Delta(text))) => (self.chunk)(json!({"content": text}), None),
                Poll::Ready(Some(Reply::Done { finish, .. })) => {
                    self.state = EventsState::Finishing;
                    (self.chunk)(json!({}), Some(finish))
                }
                Poll::Ready(Some(Reply::Failed(message))) => {
                    self.state = EventsState::Finishing;
                    failed(&message)
                }
                Poll::Ready(None) => {
                    self.state = EventsState::Finishing;
                    failed("the model worker stopped")
                }
            },
        };
        if !matches!(self.state, EventsState::Open) {
            self.replies.close();
        }
        Poll::Ready(Some(Ok(event)))
    }
}
