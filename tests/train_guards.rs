//! `vicuna train` on bad input and bad settings: token ids outside the model's vocabulary, a
//! tokenizer larger than the model, a diverging learning rate, a resume on replaced data or
//! changed settings, two runs on one output directory, checkpoints that no longer verify, and a
//! disk that fills up during a save. Each ends in a clear error (never a panic) before any harm:
//! no step trained on bad data, no NaN weights saved, no good checkpoint pruned or overwritten.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Arguments of a short run: 4 steps of 2 samples, a checkpoint after every step; `extra` flags
/// replace the value of a flag already given (clap refuses a flag given twice).
fn short(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let base = ["--max-steps", "4", "--micro-batch-size", "2", "--gradient-accumulation", "1"];
    let mut args = train_args(model, out, &base);
    args.extend(["--save-interval", "1", "--keep-checkpoints", "10"].map(String::from));
    for pair in extra.chunks(2) {
        set(&mut args, pair[0], pair[1]);
    }
    args
}

/// Sets `flag` to `value` in `args`: replaces its value when present, else appends both (a
/// negative value as `--flag=-1`, the form clap takes).
fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    if value.starts_with('-') {
        if let Some(at) = args.iter().position(|a| a == flag) {
            args.drain(at..at + 2);
        }
        args.push(format!("{flag}={value}"));
        return;
    }
    match args.iter().position(|a| a == flag) {
        Some(at) if flag != "--allow-change" => args[at + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vicuna(&args)
}

fn run_fails(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args)
}

/// The model's embedding rows (`vocab_size` in its config.json).
fn vocab_of(model: &Path) -> u64 {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    config["vocab_size"].as_u64().unwrap()
}

fn checkpoints(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Encoded samples (`prep encode` output) of the bundled example for the tiny model.
fn encoded(s: &Scratch, model: &Path) -> PathBuf {
    let out = s.path("encoded.jsonl");
    ok(&[
        "prep",
        "encode",
        train_data().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        model.to_str().unwrap(),
        "--template",
        "chatml",
    ]);
    out
}

#[test]
fn an_id_outside_the_vocabulary_is_refused_at_load_naming_file_and_record() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let vocab = vocab_of(&model);
    let samples = std::fs::read_to_string(encoded(&s, &model)).unwrap();
    for (field, bad) in [("input_ids", vocab), ("labels", vocab + 7), ("labels", u64::MAX / 4)] {
        let mut lines: Vec<serde_json::Value> = samples.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        // Record 5: replace its last id or label with one the embedding does not have.
        let last = lines[5][field].as_array().unwrap().len() - 1;
        lines[5][field][last] = serde_json::json!(bad);
        let data = s.write("bad.jsonl", &lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"));
        let out = s.path(&format!("out-{field}-{bad}"));
        let mut args = short(&model, &out, &[]);
        let at = args.iter().position(|a| a == "--data").unwrap();
        args[at + 1] = data.to_str().unwrap().to_string();
        let err = run_fails(&args);
        let what = if field == "input_ids" { "input id" } else { "label" };
        assert!(
            err.contains(&format!("{}: record 5 (", data.display()))
                && err.contains(&format!("holds {what} {bad}, outside the model's vocabulary of {vocab} tokens")),
            "{err}"
        );
        assert!(checkpoints(&out).is_empty(), "nothing may be trained or saved");
    }
}

#[test]
fn a_tokenizer_larger_than_the_model_is_refused_naming_both_sizes() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let vocab = vocab_of(&model);
    // The same weights with the real Llama-2 tokenizer (32,000 tokens) beside them.
    let mismatched = s.path("mismatched");
    std::fs::create_dir(&mismatched).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, mismatched.join(path.file_name().unwrap())).unwrap();
    }
    let llama2 = real_tokenizer("llama2");
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        if llama2.join(name).exists() {
            std::fs::copy(llama2.join(name), mismatched.join(name)).unwrap();
        }
    }
    // vicuna_v1.1 fits any tokenizer, so nothing but the sizes stands in the way.
    let err = run_fails(&short(&mismatched, &s.path("out"), &["--template", "vicuna_v1.1"]));
    assert!(
        err.contains(&format!("the tokenizer has 32000 tokens but the model's embedding only {vocab} rows")),
        "{err}"
    );
}

#[test]
fn a_learning_rate_that_cannot_train_is_refused_at_start() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    for lr in ["NaN", "inf", "0", "-1e-5"] {
        let out = s.path("out");
        let err = run_fails(&short(&model, &out, &["--learning-rate", lr]));
        assert!(err.contains("learning_rate = ") && err.contains("is not a positive finite number"), "{lr}: {err}");
        assert!(!out.join("checkpoints").exists());
    }
    for (flag, value, key) in [
        ("--adam-beta1", "1", "adam_beta1"),
        ("--adam-beta2", "-0.1", "adam_beta2"),
        ("--warmup-ratio", "2", "warmup_ratio"),
        ("--weight-decay", "NaN", "weight_decay"),
        ("--max-grad-norm", "-1", "max_grad_norm"),
        ("--eval-interval", "0", "eval_interval"),
        ("--save-interval-minutes", "0", "save_interval_minutes"),
        ("--save-interval", "0", "save_interval and keep_checkpoints must be at least 1"),
        ("--keep-checkpoints", "0", "save_interval and keep_checkpoints must be at least 1"),
        ("--gradient-accumulation", "9223372036854775807", "is too large to be a batch"),
    ] {
        let err = run_fails(&short(&model, &s.path("out"), &[flag, value]));
        assert!(err.contains(key), "{flag} {value}: {err}");
    }
}

#[test]
fn a_diverging_run_stops_with_the_step_and_keeps_the_good_checkpoints() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("out");
    let output = run(&short(&model, &out, &["--learning-rate", "1e30", "--keep-checkpoints", "1"]));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a diverged run must fail");
    assert_no_panic(&err);
    assert!(err.contains("training diverged at step "), "{err}");
    assert!(err.contains("no weights from this step on were saved"), "{err}");
    assert!(!out.join("final").exists(), "no model may be exported");
    // Every checkpoint left holds finite weights and still verifies, and the message names it.
    let left = checkpoints(&out);
    for name in &left {
        let weights = tensors(&out.join("checkpoints").join(name).join("shard-00000-of-00001.safetensors"));
        assert!(weights.values().all(|t| t.isfinite().all().int64_value(&[]) == 1), "{name} holds non-finite weights");
        assert!(err.contains(&format!("the last good checkpoint is {}", out.join("checkpoints").join(name).display())));
    }
    if left.is_empty() {
        assert!(err.contains("no checkpoint was saved before it"), "{err}");
    }
}

/// A finished short run (4 steps, a checkpoint after each); returns its output directory.
fn finished_run(s: &Scratch, model: &Path) -> PathBuf {
    let out = s.path("out");
    let args = short(model, &out, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    out
}

#[test]
fn resume_identifies_data_and_model_by_content_and_refuses_changed_settings() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let data = s.path("data.json");
    std::fs::copy(train_data(), &data).unwrap();
    let out = s.path("out");
    let with = |extra: &[&str], model: &Path| {
        let mut args = short(model, &out, extra);
        let at = args.iter().position(|a| a == "--data").unwrap();
        args[at + 1] = data.to_str().unwrap().to_string();
        args
    };
    let first = with(&[], &model);
    ok(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let step2 = out.join("checkpoints/step-00000002");
    let resume = |extra: &[&str], model: &Path| {
        let mut e = vec!["--resume", step2.to_str().unwrap()];
        e.extend_from_slice(extra);
        with(&e, model)
    };

    // Settings that change the result are refused by name; --allow-change accepts one.
    for (flag, value, key) in [
        ("--learning-rate", "0.5", "learning_rate"),
        ("--lr-schedule", "linear", "lr_schedule"),
        ("--weight-decay", "0.1", "weight_decay"),
        ("--adam-beta1", "0.8", "adam_beta1"),
        ("--max-grad-norm", "0.5", "max_grad_norm"),
        ("--max-steps", "6", "total_steps"),
    ] {
        let err = run_fails(&resume(&[flag, value], &model));
        assert!(err.contains(&format!("cannot resume: {key} was ")), "{flag}: {err}");
        assert!(err.contains(&format!("--allow-change {key}")), "{err}");
    }
    let err = run_fails(&resume(&["--allow-change", "learnin_rate"], &model));
    assert!(err.contains("--allow-change learnin_rate: not a setting"), "{err}");

    // The same model through another spelling of its path is the same model.
    let dotted = s.dir.path().join(".").join("model");
    let output = run(&resume(&[], &dotted));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The checkpoints after step 2 of the replaced history were set aside, not left to outrank
    // the resumed run's own (which retention would then have pruned) or deleted.
    let aside: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("checkpoints-set-aside-step-2-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("step-00000003").exists() && aside[0].join("step-00000004").exists());
    assert!(String::from_utf8_lossy(&output.stderr).contains("were moved to"));

    // The data file replaced under the same path: refused, naming the key.
    let text = std::fs::read_to_string(&data).unwrap();
    let records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    std::fs::write(&data, serde_json::to_string(&records[..records.len() - 3]).unwrap()).unwrap();
    let err = run_fails(&resume(&[], &model));
    assert!(err.contains("cannot resume: data was "), "{err}");
    std::fs::write(&data, &text).unwrap();

    // An allowed change resumes and is recorded in the metrics.
    let output = run(&resume(&["--learning-rate", "5e-4", "--allow-change", "learning_rate"], &model));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("learning_rate changed from 0.001 to 0.0005"), "{stderr}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let event = metrics.lines().find(|l| l.contains("\"event\":\"resume\"")).expect("a resume event line");
    assert!(event.contains("\"key\":\"learning_rate\"") && event.contains("\"now\":\"0.0005\""), "{event}");
    // Steps after the checkpoint resumed from are logged once: the file holds each step once.
    let steps: Vec<u64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].is_number().then(|| v["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4], "{metrics}");
}

#[test]
fn resume_auto_with_no_checkpoint_that_verifies_lists_why_instead_of_restarting() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = finished_run(&s, &model);
    for name in checkpoints(&out) {
        let weights = out.join("checkpoints").join(&name).join("shard-00000-of-00001.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        std::fs::write(&weights, bytes).unwrap();
    }
    let mut args = short(&model, &out, &[]);
    args.extend(["--resume".to_string(), "auto".to_string()]);
    let err = run_fails(&args);
    assert!(err.contains("--resume auto: no checkpoint in ") && err.contains("verifies"), "{err}");
    for name in checkpoints(&out) {
        assert!(
            err.contains(&format!("{name}/shard-00000-of-00001.safetensors: size or checksum differs")),
            "{name}: {err}"
        );
    }
    // Without --resume the directory is not silently trained over either.
    let err = run_fails(&short(&model, &out, &[]));
    assert!(err.contains("holds checkpoints, none of which verifies"), "{err}");
}

#[test]
fn a_second_run_on_the_same_output_directory_is_refused_with_the_holders_pid() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("out");
    let long =
        train_args(&model, &out, &["--max-steps", "100000", "--micro-batch-size", "1", "--gradient-accumulation", "1"]);
    let mut first = vicuna_command().args(&long).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("metrics.jsonl").exists() {
        assert!(Instant::now() < deadline && first.try_wait().unwrap().is_none(), "the first run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut second = short(&model, &out, &[]);
    second.extend(["--resume".to_string(), "auto".to_string()]);
    let err = run_fails(&second);
    assert!(err.contains(&format!("is in use by another vicuna process (pid {}", first.id())), "{err}");
    // SIGKILL leaves no stale lock: the kernel releases it with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let output = run(&second);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("in use by another"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_checkpoint_save_on_a_full_disk_fails_cleanly_and_leaves_no_temporary_directory() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    // The tiny model's checkpoint needs a few MB; the disk has less.
    let Some(disk) = SmallDisk::mount("size=1m") else { return };
    let out = disk.dir.path().join("out");
    let err = run_fails(&short(&model, &out, &[]));
    assert!(err.contains("cannot save checkpoint step-00000001 in "), "{err}");
    assert!(err.contains("it needs about ") && err.contains(" are free there"), "{err}");
    let left: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "the failed save left {left:?}");
}

#[test]
fn closed_choices_in_a_recipe_are_checked_when_it_is_read() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let recipe = s.write("recipe.toml", "template = \"vicuna\"\n");
    let mut args = short(&model, &s.path("out"), &[]);
    let at = args.iter().position(|a| a == "--template").unwrap();
    args.drain(at..at + 2);
    args.extend(["--config".to_string(), recipe.to_str().unwrap().to_string()]);
    let err = run_fails(&args);
    assert!(
        err.contains(
            "template \"vicuna\" is unknown (one of vicuna_v1.1, vicuna_v0, llama-2, llama-3, chatml, tokenizer)"
        ),
        "{err}"
    );
    if tch::Cuda::device_count() == 0 {
        let err = run_fails(&short(&model, &s.path("out"), &["--device", "cuda"]));
        assert!(err.contains("--device cuda: this machine has 0 CUDA device(s)"), "{err}");
    }
}

/// `--dtype auto` picks by hardware, so a run preempted on one machine may resume on another where
/// it picks the other format (or resume a checkpoint from before `auto` was the default): the
/// checkpoint holds fp32 masters and moments, so it goes on and says so. A format named on the
/// command line must still match the checkpoint's.
#[test]
fn dtype_auto_resumes_a_checkpoint_of_the_other_format() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("out");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let amx = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "amx_bf16"));
    let (other, picked) = if amx { ("fp32", "bf16") } else { ("bf16", "fp32") };
    ok(&short(&model, &out, &["--dtype", other]).iter().map(String::as_str).collect::<Vec<_>>());
    let step2 = out.join("checkpoints/step-00000002");
    let resume = |dtype: &str| short(&model, &out, &["--dtype", dtype, "--resume", step2.to_str().unwrap()]);
    let err = run_fails(&resume(picked));
    assert!(err.contains(&format!("cannot resume: dtype was {other} in the checkpoint and is {picked} now")), "{err}");
    let output = run(&resume("auto"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("warning: dtype changed from {other} to {picked} (--dtype auto)")), "{stderr}");
}
