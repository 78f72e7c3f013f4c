//! Preemption: SIGTERM at a random step makes `vicuna train` save and exit 0, and `--resume auto`
//! finishes with weights bit-identical to an uninterrupted run. SIGKILL while a checkpoint is
//! provably half written (a test hook pauses saves) leaves the previous checkpoints intact; resume
//! skips a corrupted newest checkpoint and the torn save, and still ends bit-identical.
//! A change of batch geometry is refused with the key named.
mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const STEPS: &str = "24";

fn args<'a>(model: &'a Path, out: &'a Path, extra: &[&str]) -> Vec<String> {
    let mut base = vec!["--max-steps", STEPS, "--micro-batch-size", "1", "--gradient-accumulation", "3"];
    base.extend_from_slice(extra);
    train_args(model, out, &base)
}

fn spawn(args: &[String]) -> Child {
    vicuna_command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A step in 3..=12 chosen from the clock (printed, so a failure can be replayed by reading it).
fn random_step() -> usize {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as usize;
    let step = 3 + nanos % 10;
    println!("interrupting after step {step}");
    step
}

/// Waits until `metrics.jsonl` in `out` has at least `lines` lines.
fn wait_for_steps(out: &Path, lines: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = std::fs::read_to_string(out.join("metrics.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
        if n >= lines {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {lines}");
        assert!(Instant::now() < deadline, "timed out waiting for step {lines}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn final_weights(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("final/model.safetensors")).unwrap()
}

fn uninterrupted(s: &Scratch, model: &Path) -> Vec<u8> {
    uninterrupted_in(s, model, "fp32")
}

fn uninterrupted_in(s: &Scratch, model: &Path, dtype: &str) -> Vec<u8> {
    let out = s.path("uninterrupted");
    ok(&args(model, &out, &["--save-interval", "1000", "--dtype", dtype])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    final_weights(&out)
}

#[test]
fn sigterm_at_a_random_step_then_resume_is_bit_identical() {
    sigterm_then_resume("fp32");
}

/// bf16 weights are the fp32 masters rounded, so a checkpoint of masters and moments resumes a
/// bf16 run exactly too.
#[test]
fn sigterm_then_resume_is_bit_identical_in_bf16() {
    sigterm_then_resume("bf16");
}

fn sigterm_then_resume(dtype: &str) {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let expected = uninterrupted_in(&s, &model, dtype);
    let out = s.path("interrupted");
    let a = args(&model, &out, &["--save-interval", "1000", "--dtype", dtype]);
    // Slow the run down enough to be interrupted: an SIGTERM lands in the middle of a step.
    let mut child = spawn(&a);
    wait_for_steps(&out, random_step(), &mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let result = child.wait_with_output().unwrap();
    assert!(result.status.success(), "exit 0 after SIGTERM: {}", String::from_utf8_lossy(&result.stderr));
    let outcome: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(outcome["stopped_by_signal"], libc::SIGTERM, "{outcome}");
    assert!(String::from_utf8_lossy(&result.stderr).contains("resume with --resume auto"));
    let mut resumed = a.clone();
    resumed.extend(["--resume".to_string(), "auto".to_string()]);
    let outcome: serde_json::Value =
        serde_json::from_str(&ok(&resumed.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    assert_eq!(outcome["steps_done"], 24);
    assert!(final_weights(&out) == expected, "resumed weights must be bit-identical to the uninterrupted run");
    // Every step was logged, none twice.
    let steps: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=24).collect::<Vec<_>>());
}

#[test]
fn sigkill_during_checkpointing_leaves_a_usable_checkpoint() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let expected = uninterrupted(&s, &model);
    let out = s.path("killed");
    let a = args(&model, &out, &["--save-interval", "1", "--keep-checkpoints", "3"]);
    // Saves pause after each file they write (a test hook), so the kill provably lands in the
    // middle of one: after the weights of step k are written, before its state.json and rename.
    let k = random_step();
    let mut child = vicuna_command()
        .args(&a)
        .env("VICUNA_TEST_SAVE_DELAY_MS", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let root = out.join("checkpoints");
    let half_done = format!(".step-{k:08}.tmp-{}", child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !root.join(&half_done).join("shard-00000-of-00001.safetensors").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before saving step {k}");
        assert!(Instant::now() < deadline, "timed out waiting for the save of step {k}");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(root.join(&half_done).exists() && !root.join(format!("step-{k:08}")).exists(), "killed mid-save");
    let previous = root.join(format!("step-{:08}", k - 1));
    // Also make the newest complete checkpoint corrupt: resume must skip it and the torn save.
    let weights = previous.join("shard-00000-of-00001.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let mut resumed = a.clone();
    resumed.extend(["--resume".to_string(), "auto".to_string()]);
    let run = vicuna(&resumed.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains(&format!("warning: skipping checkpoint {}", previous.display())), "{stderr}");
    let before = root.join(format!("step-{:08}", k - 2));
    assert!(stderr.contains(&format!("resuming from {}", before.display())), "{stderr}");
    assert!(!root.join(&half_done).exists(), "the torn save is cleaned up");
    assert!(final_weights(&out) == expected, "resumed weights must be bit-identical to the uninterrupted run");
}

#[test]
fn resume_with_another_batch_geometry_is_refused() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("run");
    ok(&train_args(&model, &out, &["--max-steps", "2", "--micro-batch-size", "2", "--gradient-accumulation", "2"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let changed = train_args(
        &model,
        &out,
        &["--max-steps", "4", "--micro-batch-size", "2", "--gradient-accumulation", "4", "--resume", "auto"],
    );
    // The error is the last line (after the line saying which dtype the run uses).
    let err = fails(&changed.iter().map(String::as_str).collect::<Vec<_>>());
    let err = err.trim().lines().last().unwrap_or_default();
    assert_eq!(err, "error: cannot resume: global_batch_size was 4 in the checkpoint and is 8 now; restore it, start a new output directory, or pass --allow-change global_batch_size to accept the change");
    let fresh = train_args(&model, &out, &["--max-steps", "4"]);
    let err = fails(&fresh.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        err.trim().lines().last().unwrap_or_default(),
        format!(
            "error: {} already holds checkpoints: pass --resume auto to continue, or choose another output_dir",
            out.join("checkpoints").display()
        )
    );
}

#[test]
fn retention_keeps_the_newest_checkpoints_and_the_best() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("run");
    // The learning rate is absurd on purpose: the eval loss gets worse, so the best is an early step.
    let data = train_data();
    ok(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--template",
        "chatml",
        "--output-dir",
        out.to_str().unwrap(),
        "--max-steps",
        "8",
        "--save-interval",
        "1",
        "--keep-checkpoints",
        "2",
        "--eval-data",
        data.to_str().unwrap(),
        "--eval-interval",
        "1",
        "--learning-rate",
        "2.0",
        "--lr-schedule",
        "constant",
        "--warmup-ratio",
        "0",
        "--max-grad-norm",
        "0",
    ]);
    let evals: Vec<(u64, f64)> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .map(|v| (v["step"].as_u64().unwrap(), v["eval_loss"].as_f64().unwrap()))
        .collect();
    let best = evals.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    assert!(best < 7, "the setup must make an early step the best: {evals:?}");
    let mut kept: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    let mut want: Vec<String> = [best, 7, 8].iter().map(|s| format!("step-{s:08}")).collect();
    want.sort();
    want.dedup();
    assert_eq!(kept, want, "eval losses {evals:?}");
}
