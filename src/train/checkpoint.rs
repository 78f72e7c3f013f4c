//! Durable, verifiable checkpoints, written together by every rank of a job. A save writes a
//! directory under a temporary name: each rank that owns a shard of the training state writes its
//! `shard-RRRRR-of-NNNNN.safetensors` (the flat fp32 master weights and AdamW moments of its
//! slices) and fsyncs it; once every rank has reported its file durable, rank 0 writes `state.json`
//! last, fsyncs the directory and renames it to `step-NNNNNNNN`. A crash or a killed rank at any
//! moment leaves either the old set of checkpoints or the new one, never a half-written directory
//! under a real name. `state.json` is the manifest: a typed, versioned resume state, the parameter
//! layout, the global flat ranges each shard file covers, and the size and CRC32 of every file, so
//! a torn or corrupted checkpoint is recognised and skipped, and a run resumes on any world size
//! and shard mode (each rank reads only the ranges it owns, from memory maps). The last N
//! are kept, plus the one with the best eval loss. A save that fails (a full disk) removes its
//! temporary directory and says how much space it needed; weights holding NaN or infinities are
//! never saved, so retention can never prune a good checkpoint in favour of a diverged one.
use super::dist::engine::{Group, Op};
use super::dist::sharded::Layout;
use crate::model::weights::write_safetensors;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Version of the `state.json` layout.
/// Version 2: the resume key identifies the model and data by content and records every setting
/// that changes the result (learning rate, schedule, betas, total steps, ...).
/// Version 3: the state is saved as flat shards with their global ranges (any world size resumes).
pub const STATE_VERSION: u32 = 3;

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
    /// Shard mode of the run that saved it (`none`, `grad-op`, `full`).
    #[serde(default)]
    pub shard_mode: String,
    /// Every parameter's name and shape, in the order of the global flat vector.
    #[serde(default)]
    pub params: Vec<(String, Vec<i64>)>,
    /// The shard files and the global flat ranges each holds.
    #[serde(default)]
    pub shards: Vec<ShardEntry>,
    /// Files of the checkpoint with their sizes and CRC32s.
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

/// One shard file: pieces `[global start, length, offset in the file's flat tensors]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardEntry {
    pub file: String,
    pub ranges: Vec<[i64; 3]>,
}

/// This rank's part of the training state: its shard of fp32 masters and AdamW moments.
pub struct ShardState<'a> {
    pub layout: &'a Layout,
    pub master: &'a Tensor,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
}

/// The tensors of a shard file.
const SHARD_TENSORS: [&str; 3] = ["master", "exp_avg", "exp_avg_sq"];

fn shard_file(owner: usize, owners: usize) -> String {
    format!("shard-{owner:05}-of-{owners:05}.safetensors")
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

/// Saves `state` and every rank's shard under `root/step-N` (all ranks call it together; `run`
/// names the temporary directory, the same on every rank), then keeps the newest `keep`
/// checkpoints. Returns the directory once it is durable for all.
pub fn save(
    root: &Path,
    state: &TrainState,
    shard: &ShardState,
    keep: usize,
    group: Option<&Group>,
    run: u32,
) -> Result<PathBuf> {
    let rank = group.map_or(0, |g| g.rank);
    let layout = shard.layout;
    let final_dir = root.join(name_of(state.step));
    let tmp = root.join(format!(".{}.tmp-{run}", name_of(state.step)));
    let prepared = if rank == 0 {
        (|| -> Result<()> {
            std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)?;
            }
            std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))
        })()
    } else {
        Ok(())
    };
    agree(group, prepared, "prepare the checkpoint directory")?;
    let writer = layout.owners > 1 || rank == 0;
    let file = shard_file(layout.owner, layout.owners);
    let written = if writer {
        (|| -> Result<(u64, u32)> {
            if !all_finite(shard.master) {
                bail!(
                    "refusing to save checkpoint {}: the weights of {file} hold NaN or infinite values",
                    name_of(state.step)
                );
            }
            let tensors: Vec<(String, Tensor)> = SHARD_TENSORS
                .iter()
                .zip([shard.master, shard.m, shard.v])
                .map(|(n, t)| (n.to_string(), t.shallow_clone()))
                .collect();
            let done = write_safetensors(&tmp.join(&file), &tensors)?;
            crate::util::pause_for_tests("VICUNA_TEST_SAVE_DELAY_MS");
            Ok(done)
        })()
    } else {
        Ok((0, 0))
    };
    let failed = written.is_err();
    let (bytes, crc32) = written.as_ref().map_or((0, 0), |w| *w);
    // Every rank's file, durable, reported to all: [failed, bytes, crc32] per rank.
    let mine = [failed as i64, bytes as i64, crc32 as i64];
    let reports: Vec<i64> = match group {
        Some(g) => g.all_gather_values(&mine)?,
        None => mine.to_vec(),
    };
    if let Err(e) = written {
        if rank == 0 {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        return Err(no_space_hint(e, root, state.step, layout));
    }
    if let Some(r) = reports.chunks(3).position(|c| c[0] != 0) {
        if rank == 0 {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        bail!(
            "cannot save checkpoint {}: rank {r} could not write its shard (its error is above)",
            name_of(state.step)
        );
    }
    let finished = if rank == 0 {
        (|| -> Result<()> {
            let mut state = state.clone();
            state.params = layout.names.iter().cloned().zip(layout.shapes.iter().cloned()).collect();
            state.shards.clear();
            state.files.clear();
            let named: Vec<(String, Vec<i64>)> = state.params.clone();
            for owner in 0..layout.owners {
                let file = shard_file(owner, layout.owners);
                let ranges = Layout::new(&named, layout.owners, owner).owned();
                let report = &reports[3 * owner..3 * owner + 3];
                state.shards.push(ShardEntry { file: file.clone(), ranges });
                state.files.push(FileEntry { name: file, bytes: report[1] as u64, crc32: report[2] as u32 });
            }
            crate::util::atomic::write_bytes(
                &tmp.join("state.json"),
                serde_json::to_string_pretty(&state)?.as_bytes(),
            )?;
            sync_dir(&tmp)?;
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir)
                    .with_context(|| format!("cannot replace {}", final_dir.display()))?;
            }
            std::fs::rename(&tmp, &final_dir)
                .with_context(|| format!("cannot rename {} to {}", tmp.display(), final_dir.display()))?;
            sync_dir(root)?;
            prune(root, keep, &final_dir, run)
        })()
    } else {
        Ok(())
    };
    agree(group, finished, "finish the checkpoint")?;
    Ok(final_dir)
}

/// Makes every rank fail when one does: the local result is shared (all-reduce of a failure
/// flag); the rank that failed returns its own error, the others one naming the stage.
fn agree(group: Option<&Group>, local: Result<()>, what: &str) -> Result<()> {
    let Some(g) = group else { return local };
    let any_failed = g.all_reduce_values(&[local.is_err() as i64 as f64], Op::Max)?[0] != 0.0;
    local?;
    if any_failed {
        bail!("another rank could not {what} (its error is reported by that rank)");
    }
    Ok(())
}

/// Adds to a failed save how much space the shard needed and how much was free.
fn no_space_hint(e: anyhow::Error, root: &Path, step: usize, layout: &Layout) -> anyhow::Error {
    let needed = layout.shard_len as u64 * 4 * 3;
    let free = free_bytes(root).map_or_else(|| "unknown".to_string(), |b| format!("{} MB", b / 1_000_000));
    e.context(format!(
        "cannot save checkpoint {} in {}: it needs about {} MB and {free} are free there; free space (or set output_dir elsewhere) and resume with --resume auto",
        name_of(step),
        root.display(),
        needed.div_ceil(1_000_000)
    ))
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
fn prune(root: &Path, keep: usize, just_saved: &Path, run: u32) -> Result<()> {
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
        if name.starts_with(".step-") && !name.ends_with(&format!(".tmp-{run}")) {
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

/// Fills this rank's shard (`master`, `m`, `v` for the pieces `layout` owns) from checkpoint
/// `dir` saved as `state`, whatever world size and shard mode saved it: each piece is copied from
/// the memory-mapped shard files that cover it, and nothing else is read.
pub fn restore(dir: &Path, state: &TrainState, shard: &ShardState) -> Result<()> {
    let layout = shard.layout;
    let ours: Vec<(String, Vec<i64>)> = layout.names.iter().cloned().zip(layout.shapes.iter().cloned()).collect();
    if state.params != ours {
        let differ = ours.iter().zip(&state.params).find(|(a, b)| a != b).map_or_else(
            || format!("{} parameters, the model has {}", state.params.len(), ours.len()),
            |(a, b)| format!("{} has shape {:?} there, {:?} in the model", b.0, b.1, a.1),
        );
        bail!("{}: saved for another model ({differ})", dir.display());
    }
    let mut copied = 0i64;
    for entry in &state.shards {
        let path = dir.join(&entry.file);
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: a read-only map of a verified checkpoint file that no one writes while it is read.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&map)
            .with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
        for (name, target) in SHARD_TENSORS.iter().zip([shard.master, shard.m, shard.v]) {
            let view = st.tensor(name).with_context(|| format!("{}: tensor {name} is missing", path.display()))?;
            let data = view.data();
            for [start, len, local] in layout.owned() {
                for [s, l, off] in &entry.ranges {
                    let (a, b) = (start.max(*s), (start + len).min(s + l));
                    if b <= a {
                        continue;
                    }
                    let from = ((off + a - s) * 4) as usize;
                    let bytes = data
                        .get(from..from + ((b - a) * 4) as usize)
                        .with_context(|| format!("{}: tensor {name} is shorter than its ranges", path.display()))?;
                    let piece = Tensor::from_data_size(bytes, &[b - a], tch::Kind::Float);
                    tch::no_grad(|| target.narrow(0, local + a - start, b - a).copy_(&piece));
                    if *name == "master" {
                        copied += b - a;
                    }
                }
            }
        }
    }
    let owned: i64 = layout.owned().iter().map(|r| r[1]).sum();
    if copied != owned {
        bail!("{}: its shards cover {copied} of the {owned} values this rank needs", dir.display());
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
