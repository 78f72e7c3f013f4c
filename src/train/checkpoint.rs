//! Durable, verifiable checkpoints. A save writes a directory under a temporary name, fsyncs every
//! file and the directory, then renames it to `step-NNNNNNNN`: a crash at any moment leaves either
//! the old set of checkpoints or the new one, never a half-written directory under a real name.
//! `state.json` (written last) is the manifest: a typed, versioned resume state plus the size and
//! CRC32 of every file, so a torn or corrupted checkpoint is recognised and skipped. The last N
//! are kept, plus the one with the best eval loss. A save that fails (a full disk) removes its
//! temporary directory and says how much space it needed; weights holding NaN or infinities are
//! never saved, so retention can never prune a good checkpoint in favour of a diverged one.
use crate::model::weights::{read_safetensors, write_safetensors};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Version of the `state.json` layout.
/// Version 2: the resume key identifies the model and data by content and records every setting
/// that changes the result (learning rate, schedule, betas, total steps, world size, ...).
pub const STATE_VERSION: u32 = 2;

/// Everything needed to continue a run exactly where it stopped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    pub version: u32,
    /// Optimizer steps completed.
    pub step: usize,
    /// Samples trained on so far.
    pub samples_seen: usize,
    /// Epoch and step within it of the next step (the sampler needs nothing else).
    pub epoch: usize,
    pub epoch_step: usize,
    /// AdamW's step count (bias corrections).
    pub optimizer_steps: i64,
    pub seed: u64,
    pub world_size: usize,
    /// Settings that must not change across a resume (model, data, batch geometry, ...).
    pub resume_key: BTreeMap<String, String>,
    pub best_eval_loss: Option<f64>,
    /// Eval loss measured at this step, if it was measured (retention keeps the best checkpoint).
    #[serde(default)]
    pub eval_loss: Option<f64>,
    /// Files of the checkpoint with their sizes and CRC32s.
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

/// One file of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// Directory name of the checkpoint after `step` steps.
pub fn name_of(step: usize) -> String {
    format!("step-{step:08}")
}

/// Saves parameters (`model.safetensors`), AdamW moments (`optimizer.safetensors`) and `state`
/// under `root/step-N`, then keeps the newest `keep` checkpoints. Returns the directory.
pub fn save(
    root: &Path,
    state: &TrainState,
    params: &[(String, Tensor)],
    moments: &[(String, Tensor)],
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    if let Some((name, _)) = params.iter().find(|(_, t)| !all_finite(t)) {
        bail!("refusing to save checkpoint {} : tensor {name} holds NaN or infinite values", name_of(state.step));
    }
    let final_dir = root.join(name_of(state.step));
    let tmp = root.join(format!(".{}.tmp-{}", name_of(state.step), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let written = (|| -> Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut state = state.clone();
        state.files.clear();
        for (name, tensors) in [("model.safetensors", params), ("optimizer.safetensors", moments)] {
            let (bytes, crc32) = write_safetensors(&tmp.join(name), tensors)?;
            state.files.push(FileEntry { name: name.to_string(), bytes, crc32 });
            pause_for_tests();
        }
        crate::util::atomic::write_bytes(&tmp.join("state.json"), serde_json::to_string_pretty(&state)?.as_bytes())?;
        sync_dir(&tmp)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        let needed: u64 =
            params.iter().chain(moments).map(|(_, t)| t.numel() as u64 * t.kind().elt_size_in_bytes() as u64).sum();
        let free = free_bytes(root).map_or_else(|| "unknown".to_string(), |b| format!("{} MB", b / 1_000_000));
        return Err(e.context(format!(
            "cannot save checkpoint {} in {}: it needs about {} MB and {free} are free there; free space (or set output_dir elsewhere) and resume with --resume auto",
            name_of(state.step),
            root.display(),
            needed.div_ceil(1_000_000)
        )));
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).with_context(|| format!("cannot replace {}", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), final_dir.display()))?;
    sync_dir(root)?;
    prune(root, keep, &final_dir)?;
    Ok(final_dir)
}

/// Test hook: with `VICUNA_TEST_SAVE_DELAY_MS` set, a save pauses after each file it writes, so
/// a test can kill the process while a save is provably half done (tests/train_preempt.rs).
fn pause_for_tests() {
    if let Some(ms) = std::env::var("VICUNA_TEST_SAVE_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Whether every element of `t` is finite (integer tensors always are).
fn all_finite(t: &Tensor) -> bool {
    !t.is_floating_point() || tch::no_grad(|| t.isfinite().all().int64_value(&[]) != 0)
}

/// Space available to this user on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))
}

/// Removes all but the newest `keep` checkpoints and the one with the lowest eval loss (and
/// leftovers of interrupted saves); never `just_saved`, the checkpoint this save wrote.
fn prune(root: &Path, keep: usize, just_saved: &Path) -> Result<()> {
    let mut steps = list(root)?;
    steps.sort();
    let eval_loss = |dir: &Path| -> Option<f64> {
        let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
        serde_json::from_str::<TrainState>(&text).ok()?.eval_loss
    };
    let best = steps
        .iter()
        .filter_map(|(_, d)| eval_loss(d).map(|l| (l, d.clone())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d)| d);
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, dir) in steps.into_iter().take(excess) {
        if Some(&dir) != best.as_ref() && dir != just_saved {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(".step-") && !name.ends_with(&format!(".tmp-{}", std::process::id())) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    Ok(())
}

/// Moves the checkpoints under `root` newer than `step` into a sibling directory
/// `checkpoints-set-aside-step-N-T` (T: the time, in nanoseconds since 1970) and returns it. A run
/// resumed from an older step replaces their history: left in place they would outrank its own
/// checkpoints in retention and in `--resume auto`. Nothing is deleted.
pub fn set_aside_newer(root: &Path, step: usize) -> Result<Option<PathBuf>> {
    let newer: Vec<PathBuf> = list(root)?.into_iter().filter(|(s, _)| *s > step).map(|(_, d)| d).collect();
    if newer.is_empty() {
        return Ok(None);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("checkpoints-set-aside-step-{step}-{nanos}");
    let aside = root.parent().unwrap_or(Path::new(".")).join(name);
    std::fs::create_dir_all(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
    for dir in newer {
        let to = aside.join(dir.file_name().unwrap_or_default());
        std::fs::rename(&dir, &to).with_context(|| format!("cannot move {} to {}", dir.display(), to.display()))?;
    }
    sync_dir(root)?;
    Ok(Some(aside))
}

/// Checkpoint directories under `root` with their steps.
fn list(root: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
        let path = entry?.path();
        if let Some(step) =
            path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("step-")).and_then(|s| s.parse().ok())
        {
            out.push((step, path));
        }
    }
    Ok(out)
}

/// Reads `dir/state.json` and checks every listed file's size and CRC32.
pub fn verify(dir: &Path) -> Result<TrainState> {
    let manifest = dir.join("state.json");
    let text =
        std::fs::read_to_string(&manifest).with_context(|| format!("{}: no readable state.json", dir.display()))?;
    let state: TrainState = serde_json::from_str(&text)
        .with_context(|| format!("{}: state.json is not a valid train state", dir.display()))?;
    if state.version != STATE_VERSION {
        bail!("{}: state version {} (this vicuna reads {STATE_VERSION})", dir.display(), state.version);
    }
    for f in &state.files {
        let path = dir.join(&f.name);
        let (bytes, crc32) =
            crate::model::weights::file_crc32(&path).with_context(|| format!("{}: missing", path.display()))?;
        if bytes != f.bytes || crc32 != f.crc32 {
            bail!("{}: size or checksum differs from state.json (torn or corrupted)", path.display());
        }
    }
    Ok(state)
}

/// The checkpoints under `root`, newest first: the newest that verifies, and why each newer one
/// did not (a torn save, a corrupted file, another state version).
pub struct Scan {
    pub latest: Option<(PathBuf, TrainState)>,
    pub rejected: Vec<(PathBuf, String)>,
}

/// Looks for the newest checkpoint under `root` that verifies.
pub fn scan(root: &Path) -> Result<Scan> {
    let mut steps = list(root)?;
    steps.sort_by(|a, b| b.0.cmp(&a.0));
    let mut rejected = Vec::new();
    for (_, dir) in steps {
        match verify(&dir) {
            Ok(state) => return Ok(Scan { latest: Some((dir, state)), rejected }),
            Err(e) => rejected.push((dir, format!("{e:#}"))),
        }
    }
    Ok(Scan { latest: None, rejected })
}

/// Copies the saved parameters and moments of `dir` into `params` and `moments` (by name).
pub fn restore(dir: &Path, params: &[(String, Tensor)], moments: &[(String, Tensor)]) -> Result<()> {
    for (file, targets) in [("model.safetensors", params), ("optimizer.safetensors", moments)] {
        let saved: BTreeMap<String, Tensor> = read_safetensors(&dir.join(file))?.into_iter().collect();
        if saved.len() != targets.len() {
            bail!("{}: {} tensors, the model needs {}", dir.join(file).display(), saved.len(), targets.len());
        }
        for (name, t) in targets {
            let s =
                saved.get(name).with_context(|| format!("{}: tensor {name} is missing", dir.join(file).display()))?;
            if s.size() != t.size() {
                bail!(
                    "{}: tensor {name} has shape {:?}, the model has {:?}",
                    dir.join(file).display(),
                    s.size(),
                    t.size()
                );
            }
            tch::no_grad(|| t.shallow_clone().copy_(s));
        }
    }
    Ok(())
}

/// A setting that differs between a checkpoint and the resumed run, accepted by `--allow-change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    pub checkpoint: String,
    pub now: String,
}

/// Compares the settings of a checkpoint with the current run's. A difference is refused, naming
/// the key and both values, unless its key is in `allowed`; the accepted changes are returned so
/// that the run can record them. Allowing a key that is not a setting is refused (a typo would
/// otherwise silently allow nothing).
pub fn check_resume_key(
    saved: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
    allowed: &[String],
) -> Result<Vec<Change>> {
    if let Some(unknown) = allowed.iter().find(|k| !current.contains_key(k.as_str())) {
        let keys: Vec<&str> = current.keys().map(String::as_str).collect();
        bail!("--allow-change {unknown}: not a setting a checkpoint records (one of {})", keys.join(", "));
    }
    let mut changes = Vec::new();
    for (key, value) in current {
        match saved.get(key) {
            Some(v) if v == value => {}
            Some(v) if allowed.contains(key) => {
                changes.push(Change { key: key.clone(), checkpoint: v.clone(), now: value.clone() })
            }
            Some(v) => bail!("cannot resume: {key} was {v} in the checkpoint and is {value} now; restore it, start a new output directory, or pass --allow-change {key} to accept the change"),
            None => bail!("cannot resume: the checkpoint does not record {key}"),
        }
    }
    Ok(changes)
}
