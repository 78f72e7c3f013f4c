//! Many processes through c10d (Gloo on CPU): 2 and 3 processes train exactly like one in every
//! shard mode, with and without gradient checkpointing; SIGTERM to one rank makes all save one
//! checkpoint and exit 0, and the run resumes on another world size and shard mode to the
//! uninterrupted result; SIGKILL of a rank mid-save leaves the previous checkpoint to resume
//! from; two nodes (network namespaces joined by a veth pair) train like one, and cutting their
//! link makes every rank fail with a timeout error instead of hanging.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port for a rendezvous (tests run in parallel, each job needs its own).
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

/// Train arguments shared by every run here: 4 samples per step in micro-batches of 1, so 3
/// processes get 2, 1 and 1 samples (one rank idles through a slot).
fn dist_args(model: &Path, out: &Path, steps: &str, extra: &[&str]) -> Vec<String> {
    let mut base = vec!["--max-steps", steps, "--micro-batch-size", "1", "--gradient-accumulation", "4"];
    base.extend_from_slice(extra);
    train_args(model, out, &base)
}

/// `vicuna train --nproc-per-node N` with `args`, run to the end.
fn launched(args: &[String], nproc: usize, extra_env: &[(&str, &str)]) -> Output {
    finish(spawn_launcher(args, nproc, extra_env))
}

/// The one-process run every multi-process run is compared with, in `s/name`.
fn one_process(s: &Scratch, model: &Path, name: &str, steps: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = s.path(name);
    let args = dist_args(model, &out, steps, extra);
    succeeded(&vicuna_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), ONE_THREAD), "one process");
    out
}

fn succeeded(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// (step, loss) of every line of `metrics.jsonl` in `out`.
fn losses(out: &Path) -> Vec<(u64, f64)> {
    metric(out, "loss")
}

/// (step, value) of `key` in every line of `metrics.jsonl` in `out` that has it.
fn metric(out: &Path, key: &str) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v.get(key)?.as_f64()?)))
        .collect()
}

fn weights(out: &Path) -> BTreeMap<String, tch::Tensor> {
    tensors(&out.join("final/model.safetensors"))
}

fn assert_same_run(reference: &Path, other: &Path, what: &str, weight_tol: f64, loss_tol: f64) {
    let (a, b) = (losses(reference), losses(other));
    assert_eq!(a.iter().map(|l| l.0).collect::<Vec<_>>(), b.iter().map(|l| l.0).collect::<Vec<_>>(), "{what}: steps");
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        assert!((x - y).abs() <= loss_tol, "{what}: loss at step {step} is {y}, one process {x}");
    }
    let (a, b) = (metric(reference, "eval_loss"), metric(other, "eval_loss"));
    assert_eq!(a.len(), b.len(), "{what}: eval losses {a:?} {b:?}");
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        assert!((x - y).abs() <= loss_tol, "{what}: eval loss at step {step} is {y}, one process {x}");
    }
    let diff = max_diff(&weights(reference), &weights(other));
    assert!(diff <= weight_tol, "{what}: final weights differ by {diff:e}");
}

/// bf16 across processes: each rank sums its micro-batches' bf16 gradients in fp32 before the
/// one reduction of the step (`none`, `grad-op`) or reduces each (`full`); 2 processes agree
/// with 1 within the bf16 tolerances of `train_bf16.rs` (losses 1e-3 relative, updates 10%).
#[test]
fn two_processes_train_bf16_like_one_in_every_shard_mode() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let bf16 = ["--dtype", "bf16", "--lr-schedule", "constant"];
    let one = one_process(&s, &model, "one", "3", &bf16);
    let start = tensors(&model.join("model.safetensors"));
    for shard in ["none", "grad-op", "full"] {
        let what = format!("2 processes in bf16, --shard {shard}");
        let out = s.path(shard);
        let mut extra = vec!["--shard", shard];
        extra.extend(bf16);
        succeeded(&launched(&dist_args(&model, &out, "3", &extra), 2, &[]), &what);
        for ((step, x), (_, y)) in losses(&one).iter().zip(losses(&out)) {
            assert!((x - y).abs() <= 1e-3 * x, "{what}: loss at step {step} is {y}, one process {x}");
        }
        let disagreement = update_disagreement(&start, &weights(&out), &weights(&one));
        assert!(disagreement <= 0.1, "{what}: the updates disagree by {:.1}%", 100.0 * disagreement);
    }
}

#[test]
fn two_and_three_processes_train_like_one_in_every_shard_mode() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let data = train_data();
    let eval = ["--eval-data", data.to_str().unwrap(), "--eval-interval", "2"];
    let one = one_process(&s, &model, "one", "3", &eval);
    let start = tensors(&model.join("model.safetensors"));
    assert!(max_diff(&weights(&one), &start) > 1e-3, "the weights moved");
    let evals: Vec<u64> = metric(&one, "eval_loss").iter().map(|e| e.0).collect();
    assert_eq!(evals, [0, 2, 3], "evaluated before training and at steps 2 and 3");
    for shard in ["none", "grad-op", "full"] {
        for checkpointing in ["true", "false"] {
            for nproc in [2, 3] {
                let what = format!("{nproc} processes, --shard {shard}, checkpointing {checkpointing}");
                let out = s.path(&format!("{shard}-{checkpointing}-{nproc}"));
                let mut extra = vec!["--shard", shard, "--gradient-checkpointing", checkpointing];
                extra.extend(eval);
                let run = launched(&dist_args(&model, &out, "3", &extra), nproc, &[]);
                succeeded(&run, &what);
                assert_same_run(&one, &out, &what, 1e-5, 1e-6);
                let stdout = String::from_utf8_lossy(&run.stdout);
                assert_eq!(stdout.lines().count(), 1, "{what}: only rank 0 reports the outcome: {stdout}");
            }
        }
    }
}

#[test]
fn torchrun_launches_it_as_it_launches_python() {
    let torchrun = repo().join(".venv/bin/torchrun");
    assert!(torchrun.exists(), "{} is missing: make test installs torch", torchrun.display());
    let s = Scratch::new();
    let model = tiny_model(&s);
    let one = one_process(&s, &model, "one", "3", &[]);
    let out = s.path("torchrun");
    let run = Command::new(&torchrun)
        .env("VICUNA_DTYPE", "fp32")
        .args(["--no-python", "--nproc-per-node", "2", "--master-port", &free_port()])
        .arg(env!("CARGO_BIN_EXE_vicuna"))
        .args(dist_args(&model, &out, "3", &["--shard", "full"]))
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    succeeded(&run, "torchrun --no-python --nproc-per-node 2 vicuna train");
    assert_same_run(&one, &out, "under torchrun", 1e-5, 1e-6);
}

#[test]
fn ranks_that_see_different_data_are_refused() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let port = free_port();
    let data = s.write(
        "other.json",
        &std::fs::read_to_string(train_data()).unwrap().replacen("\"value\":\"", "\"value\":\"x", 1),
    );
    let start = |rank: &str, data: &Path| {
        let out = s.path("out");
        let mut args = dist_args(&model, &out, "2", &[]);
        let at = args.iter().position(|a| a == "--data").unwrap();
        args[at + 1] = data.to_str().unwrap().to_string();
        vicuna_command()
            .args(&args)
            .envs([("WORLD_SIZE", "2"), ("RANK", rank), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", port.as_str())])
            .env("OMP_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("0", &train_data()), start("1", &data));
    for (rank, child) in [(0, a), (1, b)] {
        let run = finish(child);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "rank {rank} must refuse");
        assert_no_panic(&err);
        assert!(err.contains("rank 1 has another model, data or settings than rank 0"), "rank {rank}: {err}");
    }
}

/// The pid of each worker of a launcher, by rank (read from their environment).
fn workers(launcher: &Child, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", launcher.id())).unwrap_or_default();
        let mut by_rank = vec![0; n];
        for pid in children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            for var in env.split(|b| *b == 0) {
                if let Some(rank) = var.strip_prefix(b"RANK=") {
                    if let Some(r) = std::str::from_utf8(rank).ok().and_then(|r| r.parse::<usize>().ok()) {
                        by_rank[r] = pid;
                    }
                }
            }
        }
        if by_rank.iter().all(|p| *p != 0) {
            return by_rank;
        }
        assert!(Instant::now() < deadline, "the launcher did not start {n} workers");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_launcher(args: &[String], nproc: usize, env: &[(&str, &str)]) -> Child {
    let mut cmd = vicuna_command();
    cmd.args(args)
        .args(["--nproc-per-node", &nproc.to_string(), "--master-port", &free_port()])
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn wait_for_step(out: &Path, step: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while losses_or_empty(out).len() < step {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {step}");
        assert!(Instant::now() < deadline, "timed out waiting for step {step}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn losses_or_empty(out: &Path) -> Vec<(u64, f64)> {
    if out.join("metrics.jsonl").exists() {
        losses(out)
    } else {
        Vec::new()
    }
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started (through the launcher).
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

#[test]
fn sigterm_to_one_rank_saves_one_checkpoint_and_resumes_on_another_world_size_and_shard_mode() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let steps = "8";
    let reference = one_process(&s, &model, "reference", steps, &[]);

    let out = s.path("interrupted");
    let slow = [("VICUNA_TEST_STEP_DELAY_MS", "150")];
    // 2 processes (grad-op), SIGTERM to rank 1 after step 2: all stop, save once, exit 0.
    let first = dist_args(&model, &out, steps, &["--shard", "grad-op", "--save-interval", "1000"]);
    let mut child = spawn_launcher(&first, 2, &slow);
    let pids = workers(&child, 2);
    wait_for_step(&out, 2, &mut child);
    signal(pids[1], libc::SIGTERM);
    let run = finish(child);
    succeeded(&run, "the interrupted 2-process run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("durable") && stderr.contains("after the signal"), "{stderr}");
    let saved: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(saved.len(), 1, "one checkpoint, saved by both ranks together: {saved:?}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoints").join(&saved[0]).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["world_size"], 2);
    assert_eq!(state["shards"].as_array().unwrap().len(), 2, "each rank wrote its shard");
    let first_stop = state["step"].as_u64().unwrap();
    assert!((2..8).contains(&first_stop), "stopped at step {first_stop}");

    // Resume on 3 processes with full sharding; SIGTERM to the launcher this time (it forwards it).
    let mut second = dist_args(&model, &out, steps, &["--shard", "full", "--save-interval", "1000"]);
    second.extend(["--resume".into(), "auto".into()]);
    let mut child = spawn_launcher(&second, 3, &slow);
    workers(&child, 3);
    wait_for_step(&out, first_stop as usize + 2, &mut child);
    signal(child.id(), libc::SIGTERM);
    let run = finish(child);
    succeeded(&run, "the resumed 3-process run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("vicuna train: signal 15: forwarded to 3 worker(s)"), "{stderr}");
    assert!(losses(&out).len() < 8, "stopped before the end");

    // Then 3 to 2 processes, no sharding, to the end.
    let mut third = dist_args(&model, &out, steps, &["--shard", "none", "--save-interval", "1000"]);
    third.extend(["--resume".into(), "auto".into()]);
    let run = launched(&third, 2, &[]);
    succeeded(&run, "the final 2-process run");
    assert_same_run(&reference, &out, "interrupted twice, resumed on other world sizes and shard modes", 1e-5, 1e-5);
}

#[test]
fn sigkill_of_a_rank_mid_save_resumes_from_the_previous_checkpoint() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let steps = "6";
    let reference = one_process(&s, &model, "reference", steps, &[]);
    let out = s.path("killed");
    let a = dist_args(&model, &out, steps, &["--shard", "grad-op", "--save-interval", "1", "--keep-checkpoints", "10"]);
    // Saves pause after each shard file: rank 1's file of step 3 exists, the manifest does not.
    let mut child = spawn_launcher(&a, 2, &[("VICUNA_TEST_SAVE_DELAY_MS", "300")]);
    let pids = workers(&child, 2);
    let root = out.join("checkpoints");
    let deadline = Instant::now() + Duration::from_secs(120);
    let half_done = loop {
        let found = std::fs::read_dir(&root).ok().and_then(|entries| {
            entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.to_string_lossy().contains(".step-00000003.tmp")
                    && p.join("shard-00001-of-00002.safetensors").exists()
            })
        });
        if let Some(dir) = found {
            break dir;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before saving step 3");
        assert!(Instant::now() < deadline, "timed out waiting for the save of step 3");
        std::thread::sleep(Duration::from_millis(2));
    };
    signal(pids[1], libc::SIGKILL);
    let run = finish(child);
    assert!(!run.status.success(), "a killed worker fails the job");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("vicuna train: worker 1 exited with code 137"), "{stderr}");
    assert!(!root.join("step-00000003").exists(), "the torn save never got its real name ({})", half_done.display());
    let mut resumed = a.clone();
    resumed.extend(["--resume".into(), "auto".into()]);
    let run = launched(&resumed, 2, &[]);
    succeeded(&run, "the resumed run");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("step-00000002 (step 2 of 6"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_run(&reference, &out, "killed mid-save and resumed", 1e-5, 1e-5);
}

#[test]
fn the_nccl_path_is_compiled_in() {
    // The set-up installs the CUDA headers, so the shim's ProcessGroupNCCL code must be built and
    // linked (it runs where a GPU exists; here only its compilation is checked).
    assert!(vicuna::train::dist::engine::has_nccl(), "the c10d shim was built without NCCL");
}

#[test]
fn cuda_without_a_gpu_fails_before_any_work() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("out");
    let args = dist_args(&model, &out, "2", &["--device", "cuda"]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--device cuda: this machine has 0 CUDA device(s)"), "{err}");
    let run = launched(&args, 2, &[]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert_no_panic(&err);
    assert!(err.contains("[rank 0] error: --device cuda: this machine has 0 CUDA device(s)"), "{err}");
    assert!(err.contains("vicuna train: worker "), "{err}");
    assert!(!out.join("checkpoints").exists(), "nothing was trained");
}

/// Two network namespaces joined by a veth pair (10.77.X.1 and .2), removed on drop.
struct TwoNodes {
    names: [String; 2],
    addrs: [String; 2],
    link: String,
}

impl TwoNodes {
    fn create() -> Option<TwoNodes> {
        let id = std::process::id() % 200 + 20;
        let names = [format!("vicuna-a{id}"), format!("vicuna-b{id}")];
        let link = format!("vva{id}");
        let peer = format!("vvb{id}");
        let addrs = [format!("10.77.{id}.1"), format!("10.77.{id}.2")];
        let ip = |args: &[&str]| Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false);
        let nodes = TwoNodes { names: names.clone(), addrs: addrs.clone(), link: link.clone() };
        let ok = ip(&["netns", "add", &names[0]])
            && ip(&["netns", "add", &names[1]])
            && ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer])
            && ip(&["link", "set", &link, "netns", &names[0]])
            && ip(&["link", "set", &peer, "netns", &names[1]])
            && ip(&["-n", &names[0], "addr", "add", &format!("{}/24", addrs[0]), "dev", &link])
            && ip(&["-n", &names[1], "addr", "add", &format!("{}/24", addrs[1]), "dev", &peer])
            && ip(&["-n", &names[0], "link", "set", &link, "up"])
            && ip(&["-n", &names[1], "link", "set", &peer, "up"])
            && ip(&["-n", &names[0], "link", "set", "lo", "up"])
            && ip(&["-n", &names[1], "link", "set", "lo", "up"]);
        if !ok {
            println!("skipped: cannot create network namespaces here (needs root and iproute2)");
            return None;
        }
        Some(nodes)
    }

    /// `vicuna train` as node `k` of 2 (one process each), rendezvous at node 0's address.
    fn spawn(&self, k: usize, args: &[String], port: &str, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[k], env!("CARGO_BIN_EXE_vicuna")])
            .args(args)
            .args(["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", &k.to_string()])
            .args(["--master-addr", &self.addrs[0], "--master-port", port])
            .env("OMP_NUM_THREADS", "1")
            .env("VICUNA_DTYPE", "fp32")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let ok = Command::new("ip").args(["-n", &self.names[0], "link", "set", &self.link, state]).status().unwrap();
        assert!(ok.success());
    }
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn two_nodes_train_like_one_and_a_cut_link_fails_every_rank_with_a_timeout() {
    let Some(nodes) = TwoNodes::create() else { return };
    let s = Scratch::new();
    let model = tiny_model(&s);
    let reference = one_process(&s, &model, "reference", "3", &[]);
    let out = s.path("two-nodes");
    let args = dist_args(&model, &out, "3", &["--shard", "grad-op"]);
    let port = free_port();
    let node0 = nodes.spawn(0, &args, &port, &[]);
    let node1 = nodes.spawn(1, &args, &port, &[]);
    let (a, b) = (finish(node0), finish(node1));
    succeeded(&a, "node 0");
    succeeded(&b, "node 1");
    assert_same_run(&reference, &out, "two nodes", 1e-5, 1e-6);

    // Cut the link mid-run: both nodes fail within the timeout, naming the collective.
    let out = s.path("cut");
    let args = dist_args(&model, &out, "40", &["--save-interval", "1", "--dist-timeout", "5"]);
    let slow = [("VICUNA_TEST_STEP_DELAY_MS", "100")];
    let mut node0 = nodes.spawn(0, &args, &port, &slow);
    let node1 = nodes.spawn(1, &args, &port, &slow);
    wait_for_step(&out, 2, &mut node0);
    nodes.set_link(false);
    let cut_at = Instant::now();
    let (a, b) = (finish(node0), finish(node1));
    let took = cut_at.elapsed();
    nodes.set_link(true);
    for (k, run) in [(0, &a), (1, &b)] {
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "node {k} must fail when its peer is unreachable");
        assert_no_panic(&err);
        let peer = 1 - k;
        // The collective is whichever was running (a step's all-reduce, a save's all-gather).
        let expected = format!("rank {k} of 2: ");
        let named =
            err.contains(&format!("failed or timed out after 5 s: Operation timed out!; its peer, rank {peer} died"));
        assert!(err.contains(&expected) && named, "node {k}: {err}");
        println!(
            "node {k} after the cut ({took:?}):\n{}",
            err.lines().filter(|l| l.contains("error")).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(took < Duration::from_secs(40), "the ranks gave up after {took:?}");
    // With the link back, --resume auto continues from the last checkpoint to the end.
    let mut resumed = args.clone();
    resumed.extend(["--resume".into(), "auto".into()]);
    let port = free_port();
    let (node0, node1) = (nodes.spawn(0, &resumed, &port, &[]), nodes.spawn(1, &resumed, &port, &[]));
    succeeded(&finish(node0), "node 0 resumed");
    succeeded(&finish(node1), "node 1 resumed");
    assert_eq!(losses(&out).last().map(|l| l.0), Some(40));
}
