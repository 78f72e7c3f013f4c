//! Atomic file output: every file a command writes appears whole or not at all. Data goes to a
//! temporary file beside the target, is flushed and fsynced, then renamed over the target, so an
//! interrupted or failed run never leaves half-written output (DESIGN.md, "Conventions").
use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` through `fill`; the file appears under its name only if `fill` succeeds and the
/// data is durable. On error the temporary file is removed and `path` is left as it was.
pub fn write_file<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> Result<T>) -> Result<T> {
    write_via_path(path, |tmp| {
        let file = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let value = fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(value)
    })
}

/// Like `write_file`, for writers that take a path (libraries that create the file
/// themselves): `fill` writes the temporary file it is given, which is then fsynced and renamed.
pub fn write_via_path<T>(path: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let tmp = temp_path(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let result = (|| {
        let value = fill(&tmp)?;
        File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        sync_parent(path);
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a whole byte string atomically (small outputs: reports, JSON summaries).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, |out| out.write_all(bytes).with_context(|| format!("cannot write {}", path.display())))
}

/// The temporary name: hidden, beside the target (same file system, so rename is atomic), and
/// unique per process so two runs never write into each other's file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Makes the rename itself durable; best effort, since not every file system supports it.
pub fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
