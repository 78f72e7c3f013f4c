//! The SkyPilot task files in `scripts/sky/` and the README's multi-GPU commands against the tools
//! that will run them.
//!
//! - SkyPilot's own parser (PyPI `skypilot==0.14.1`, which `scripts/setup.sh` installs into
//!   `.venv/skypilot`) loads every `scripts/sky/*.yaml` as `sky jobs launch --env ...` does
//!   (`dag_utils.load_chain_dag_from_yaml`, which builds each task with `sky.Task.from_yaml_config`),
//!   then checks the workdir and file mounts as its client does before a launch. Fields are
//!   validated as SkyPilot's API server validates them, which is stricter than its client: the
//!   client passes unknown `job_recovery` keys through. The accelerator name is only checked for
//!   form (its catalog is fetched from the network). So that these checks cannot pass vacuously,
//!   each file is also loaded with one misspelt key at a time (top level, `resources`,
//!   `job_recovery`, the bucket mount), each of which must be refused naming the key, and without
//!   the required bucket variables, which must be refused too.
//! - What the files promise: managed spot with a relaunch on the exit code the run section gives
//!   when vicuna stopped for a signal, a bucket mounted (mode MOUNT) where `--output-dir` points,
//!   `--resume auto`, one worker per GPU, and on several nodes the rendezvous wired through
//!   SkyPilot's node variables.
//! - Every `vicuna train` flag in the run sections and in the README's code blocks is one that
//!   `vicuna train --help` lists, and every value given to a flag with a closed set of values is
//!   one of them.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of the environment `scripts/setup.sh` made for SkyPilot.
fn sky_python() -> PathBuf {
    let python = match std::env::var_os("VICUNA_SKYPILOT_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("VICUNA_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv"))
            .join("skypilot/bin/python"),
    };
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (make test does it) to install SkyPilot",
        python.display()
    );
    python
}

/// `scripts/sky/*.yaml`, sorted.
fn task_files() -> Vec<PathBuf> {
    let dir = repo().join("scripts/sky");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no task files in {}", dir.display());
    files
}

/// Loads each case (`{"path", "envs": [[key, value], ...]}`) with SkyPilot and returns, per
/// case, `{"ok": true, "tasks": [...]}` or `{"ok": false, "type", "error"}`. Runs in the
/// repository root (the task files' workdir is `.`) with a HOME of its own (SkyPilot writes
/// `~/.sky`) and none of the caller's SkyPilot settings.
const LOADER: &str = r#"
import json, sys
import sky
import sky.server.plugins
from sky.utils import dag_utils
# As the API server validates once its plugins are loaded (here: none), so that unknown keys the
# client lets through for the server (job_recovery's) are refused here and not at launch.
sky.server.plugins._plugins_loaded = True
cases, out_path = json.load(open(sys.argv[1])), sys.argv[2]
results = []
for case in cases:
    try:
        dag = dag_utils.load_chain_dag_from_yaml(case["path"], env_overrides=[tuple(e) for e in case["envs"]])
        tasks = []
        for task in dag.tasks:
            # What the client checks before it uploads anything (sky.client.sdk.validate).
            task.expand_and_validate_workdir()
            task.expand_and_validate_file_mounts()
            (res,) = task.resources
            tasks.append({
                "name": task.name,
                "num_nodes": task.num_nodes,
                "workdir": task.workdir,
                "setup": task.setup,
                "run": task.run,
                "accelerators": res.accelerators,
                "use_spot": res.use_spot,
                "job_recovery": res.job_recovery,
                "file_mounts": task.file_mounts,
                "storage_mounts": {k: s.to_yaml_config() for k, s in task.storage_mounts.items()},
            })
        results.append({"ok": True, "tasks": tasks})
    except Exception as e:
        results.append({"ok": False, "type": type(e).__name__, "error": str(e)})
json.dump({"version": sky.__version__, "results": results}, open(out_path, "w"), default=str)
"#;

/// Runs [`LOADER`] on `cases` and returns its results, in order.
fn load(cases: &[(PathBuf, Vec<(&str, &str)>)]) -> Vec<Value> {
    let s = Scratch::new();
    let home = s.path("home");
    std::fs::create_dir(&home).expect("home");
    let input: Vec<Value> = cases.iter().map(|(path, envs)| serde_json::json!({"path": path, "envs": envs})).collect();
    let input_path = s.write("cases.json", &serde_json::to_string(&input).unwrap());
    let output_path = s.path("results.json");
    let mut cmd = Command::new(sky_python());
    cmd.arg("-c").arg(LOADER).arg(&input_path).arg(&output_path).current_dir(repo());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SKYPILOT_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .env("HOME", &home)
        .env("IS_SKYPILOT_SERVER", "1")
        .env("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
        .output()
        .expect("run SkyPilot's Python");
    assert!(
        out.status.success(),
        "SkyPilot's loader failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&output_path).expect("results")).unwrap();
    assert_eq!(report["version"], "0.14.1", "scripts/setup.sh pins skypilot 0.14.1");
    let results = report["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), cases.len());
    results
}

/// The values the task files require at launch (`--env`).
const ENVS: [(&str, &str); 2] =
    [("CHECKPOINT_BUCKET", "vicuna-test-checkpoints"), ("INPUTS", "gs://vicuna-test/inputs")];

/// A misspelling of one key: the text to replace, its replacement, and the misspelt key that the
/// error must name.
const MISSPELT: [(&str, &str, &str); 4] = [
    ("\nfile_mounts:", "\nfile_mount:", "file_mount"),
    ("\n  use_spot:", "\n  use_spott:", "use_spott"),
    ("max_restarts_on_errors:", "max_restart_on_errors:", "max_restart_on_errors"),
    ("\n    mode: MOUNT", "\n    mod: MOUNT", "mod"),
];

#[test]
fn task_files_pass_skypilots_parser_and_misspelt_keys_do_not() {
    let s = Scratch::new();
    let mut cases = Vec::new();
    let mut expect = Vec::new();
    for file in task_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        cases.push((file.clone(), ENVS.to_vec()));
        expect.push((format!("{}", file.display()), None));
        cases.push((file.clone(), Vec::new()));
        expect.push((format!("{} without --env", file.display()), Some(("ValueError", "CHECKPOINT_BUCKET"))));
        for (i, (from, to, key)) in MISSPELT.iter().enumerate() {
            assert!(text.contains(from), "{}: has no {from:?} to misspell", file.display());
            let name = format!("{}-misspelt-{i}.yaml", file.file_stem().unwrap().to_string_lossy());
            let bad = s.write(&name, &text.replacen(from, to, 1));
            cases.push((bad, ENVS.to_vec()));
            expect.push((format!("{} with {key:?}", file.display()), Some(("InvalidSkyPilotConfigError", *key))));
        }
    }
    let results = load(&cases);
    let mut wrong = Vec::new();
    for ((what, expected), got) in expect.iter().zip(&results) {
        match expected {
            None if got["ok"] != true => wrong.push(format!("{what}: refused: {}: {}", got["type"], got["error"])),
            Some((kind, needle)) => {
                let error = got["error"].as_str().unwrap_or("");
                if got["ok"] == true {
                    wrong.push(format!("{what}: accepted, but must be refused"));
                } else if got["type"] != *kind || !error.contains(&format!("'{needle}'")) {
                    wrong
                        .push(format!("{what}: refused as {} ({error}); expected {kind} naming {needle}", got["type"]));
                }
            }
            None => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The task each of `files` holds, as SkyPilot parses it with [`ENVS`].
fn parsed(files: &[PathBuf]) -> Vec<Value> {
    let cases: Vec<(PathBuf, Vec<(&str, &str)>)> = files.iter().map(|f| (f.clone(), ENVS.to_vec())).collect();
    load(&cases)
        .into_iter()
        .zip(files)
        .map(|(r, f)| {
            assert_eq!(r["ok"], true, "{}: {}", f.display(), r["error"]);
            let tasks = r["tasks"].as_array().unwrap();
            assert_eq!(tasks.len(), 1, "{}: one task per file", f.display());
            tasks[0].clone()
        })
        .collect()
}

#[test]
fn task_files_run_vicuna_on_a_bucket_with_resume_and_relaunch() {
    let files = task_files();
    for (file, task) in files.iter().zip(parsed(&files)) {
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("# "), "{rel}: starts with a comment saying what it is for");
        let head: String = text.lines().take_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains(&format!("sky jobs launch -n {} {rel}", task["name"].as_str().unwrap())),
            "{rel}: the opening comment shows how to launch it:\n{head}"
        );
        assert_eq!(Path::new(task["workdir"].as_str().unwrap()), repo(), "{rel}: the workdir is the checkout");
        assert!(task["setup"].as_str().unwrap().contains("make build"), "{rel}: setup builds vicuna");
        assert_eq!(task["use_spot"], true, "{rel}: spot instances");
        let codes = task["job_recovery"]["recover_on_exit_codes"].as_array().cloned().unwrap_or_default();
        assert!(!codes.is_empty(), "{rel}: job_recovery.recover_on_exit_codes");

        let run = task["run"].as_str().unwrap();
        let commands = train_commands(run);
        assert_eq!(commands.len(), 1, "{rel}: one `vicuna train` in run");
        let flags = &commands[0];
        let value = |flag: &str| flags.iter().find(|(f, _)| f == flag).and_then(|(_, v)| v.clone());
        assert_eq!(value("--resume").as_deref(), Some("auto"), "{rel}: --resume auto");
        assert_eq!(value("--nproc-per-node").as_deref(), Some("$SKYPILOT_NUM_GPUS_PER_NODE"), "{rel}");
        // A relaunch must happen when vicuna stopped for a signal (it exits 0 then): the run
        // section exits with a recovery code when the exported model is missing.
        assert!(
            codes.iter().any(|c| run.contains(&format!("exit {c}"))),
            "{rel}: run exits with one of recover_on_exit_codes {codes:?}"
        );

        // --output-dir is on the bucket mount, in MOUNT mode (written files are uploaded when
        // closed or fsynced), under the name given at launch.
        let out_var = value("--output-dir").expect("--output-dir");
        let out = match out_var.strip_prefix('$') {
            Some(var) => shell_assignment(run, var).unwrap_or_else(|| panic!("{rel}: {out_var} is set in run")),
            None => out_var.clone(),
        };
        let mounts = task["storage_mounts"].as_object().unwrap();
        let (mount, storage) = mounts
            .iter()
            .find(|(m, _)| Path::new(&out).starts_with(m))
            .unwrap_or_else(|| panic!("{rel}: --output-dir {out} is on no bucket mount ({mounts:?})"));
        assert_eq!(storage["mode"], "MOUNT", "{rel}: {mount} is mounted in MOUNT mode");
        assert_eq!(storage["name"], ENVS[0].1, "{rel}: {mount} is the bucket named at launch");
        assert_eq!(storage["store"], "GCS", "{rel}: the default store");

        let nodes = task["num_nodes"].as_i64().unwrap();
        if nodes > 1 {
            assert_eq!(value("--nnodes").as_deref(), Some("$SKYPILOT_NUM_NODES"), "{rel}");
            assert_eq!(value("--node-rank").as_deref(), Some("$SKYPILOT_NODE_RANK"), "{rel}");
            let addr = value("--master-addr").unwrap_or_default();
            assert!(addr.contains("$SKYPILOT_NODE_IPS") && addr.contains("head -n1"), "{rel}: --master-addr {addr}");
        } else {
            for flag in ["--nnodes", "--node-rank", "--master-addr"] {
                assert_eq!(value(flag), None, "{rel}: one node needs no {flag}");
            }
        }
    }
}

/// `NAME=value` assigned in `script` (the first one), unquoted.
fn shell_assignment(script: &str, name: &str) -> Option<String> {
    script.lines().find_map(|l| l.trim().strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_string()))
}

/// The `vicuna train` commands of a shell text (continuation lines joined; comments dropped),
/// each as its `--flag` words with the word that follows when it is a value
/// (`--flag=value` too).
fn train_commands(text: &str) -> Vec<Vec<(String, Option<String>)>> {
    let joined = text.replace("\\\n", " ");
    let mut commands = Vec::new();
    for line in joined.lines() {
        let words = shell_words(line);
        let Some(at) = words.windows(2).position(|w| w[0].ends_with("vicuna") && w[1] == "train") else {
            continue;
        };
        let rest = &words[at + 2..];
        let end =
            rest.iter().position(|w| ["|", "&&", "||", ";", ">", "2>&1"].contains(&w.as_str())).unwrap_or(rest.len());
        let rest = &rest[..end];
        let mut flags = Vec::new();
        for (i, w) in rest.iter().enumerate() {
            if let Some(flag) = w.strip_prefix("--") {
                match flag.split_once('=') {
                    Some((f, v)) => flags.push((format!("--{f}"), Some(v.to_string()))),
                    None => {
                        let value = rest.get(i + 1).filter(|v| !v.starts_with('-')).cloned();
                        flags.push((w.clone(), value));
                    }
                }
            }
        }
        commands.push(flags);
    }
    commands
}

/// Splits a shell line into words: quotes are removed, except that `$(...)` (with what it
/// quotes) stays one word as written; an unquoted `#` at the start of a word ends the line.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        if depth > 0 {
            word.push(c);
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '$') if chars.peek() == Some(&'(') => {
                word.push(c);
                word.push(chars.next().unwrap());
                depth = 1;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '$') if chars.peek() == Some(&'(') => {
                word.push(c);
                word.push(chars.next().unwrap());
                depth = 1;
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The flags `vicuna train --help` lists, each with its closed set of values (empty when any
/// value goes).
fn train_help() -> BTreeMap<String, Vec<String>> {
    let help = ok(&["train", "--help"]);
    let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_list = false;
    for line in help.lines() {
        let trimmed = line.trim();
        // A flag's line: `      --name <VALUE>` or `  -h, --help`.
        if line.starts_with("  ") && !line.starts_with("          ") && trimmed.starts_with('-') {
            let name = trimmed.split([' ', ',']).find(|w| w.starts_with("--")).map(str::to_string);
            if let Some(name) = name {
                flags.entry(name.clone()).or_default();
                current = Some(name);
                in_list = false;
                continue;
            }
        }
        let Some(flag) = &current else { continue };
        if let Some(list) = trimmed.strip_prefix("[possible values: ").and_then(|l| l.strip_suffix(']')) {
            flags.get_mut(flag).unwrap().extend(list.split(", ").map(str::to_string));
        } else if trimmed == "Possible values:" {
            in_list = true;
        } else if in_list {
            match trimmed.strip_prefix("- ") {
                Some(item) => flags.get_mut(flag).unwrap().push(item.split(':').next().unwrap().trim().to_string()),
                None if trimmed.is_empty() => {}
                None => in_list = false,
            }
        }
    }
    flags
}

/// What is wrong with `commands` against `help`: unknown flags, values outside a closed set
/// (values that are shell expansions are not checked).
fn flag_problems(commands: &[Vec<(String, Option<String>)>], help: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (flag, value) in commands.iter().flatten() {
        match help.get(flag) {
            None => problems.push(format!("{flag} is not a `vicuna train` flag")),
            Some(values) if !values.is_empty() => match value {
                Some(v) if v.contains('$') => {}
                Some(v) if values.contains(v) => {}
                v => problems.push(format!("{flag} {v:?}: not one of {values:?}")),
            },
            Some(_) => {}
        }
    }
    problems
}

#[test]
fn train_flags_in_task_files_and_readme_exist() {
    let help = train_help();
    // The parser sees what the help says (so the checks below are not vacuous).
    for flag in ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--resume", "--output-dir"] {
        assert!(help.contains_key(flag), "vicuna train --help lists {flag}: {help:?}");
    }
    assert_eq!(help["--shard"], ["none", "grad-op", "full"]);
    assert_eq!(help["--dtype"], ["auto", "fp32", "bf16", "fp16"]);
    let bad = train_commands("vicuna train --no-such-flag 1 --shard fully --dtype=bf17 --nnodes \"$N\"");
    assert_eq!(flag_problems(&bad, &help).len(), 3, "{:?}", flag_problems(&bad, &help));

    let mut problems = Vec::new();
    let mut checked = 0;
    for file in task_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let run = &text[text.find("\nrun:").unwrap_or_else(|| panic!("{}: no run section", file.display()))..];
        let commands = train_commands(run);
        assert!(!commands.is_empty(), "{}: no `vicuna train` in run", file.display());
        checked += commands.len();
        problems.extend(flag_problems(&commands, &help).into_iter().map(|p| format!("{}: {p}", file.display())));
    }
    // README: the commands in its shell code blocks.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut in_block = false;
    let mut block = String::new();
    let mut readme_commands = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            if in_block {
                let commands = train_commands(&block);
                readme_commands += commands.len();
                problems.extend(flag_problems(&commands, &help).into_iter().map(|p| format!("README.md: {p}")));
                block.clear();
            }
            in_block = !in_block;
        } else if in_block {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(readme_commands >= 5, "README.md shows `vicuna train` commands ({readme_commands} found)");
    assert!(checked >= task_files().len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
