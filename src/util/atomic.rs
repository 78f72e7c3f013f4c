//! Atomic file output: every file a command writes appears whole or not at all. Data goes to a
//! temporary file beside the target, is flushed and fsynced, then renamed over the target, so an
//! interrupted or failed run never leaves half-written output (DESIGN.md, "Conventions"). Before
//! anything is written, [`ensure_distinct`] refuses an output that is one of the inputs or another
//! output, so no command ever replaces the data it reads. A whole output directory (a model) is
//! written the same way by [`write_dir`]: filled under a temporary name, then renamed.
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Which file a path names: its inode when it exists (hard links, symlinks and `./a` vs an
/// absolute path all agree), else its absolute path with the parent folder resolved.
#[derive(Debug, PartialEq, Eq)]
enum FileId {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_id(path: &Path) -> FileId {
    if let Ok(meta) = fs::metadata(path) {
        return FileId::Inode(meta.dev(), meta.ino());
    }
    let parent = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    FileId::Path(dir.join(path.file_name().unwrap_or_default()))
}

/// Whether two paths name the same file (by inode when it exists), so that one input listed twice
/// under two spellings is caught.
pub fn same_file(a: &Path, b: &Path) -> bool {
    file_id(a) == file_id(b)
}

/// Fails, before anything is written, when an output is the same file as an input or as another
/// output. `outputs` pairs each path with the flag that names it in messages (`--output`).
pub fn ensure_distinct(inputs: &[&Path], outputs: &[(&str, &Path)]) -> Result<()> {
    let input_ids: Vec<FileId> = inputs.iter().map(|p| file_id(p)).collect();
    let output_ids: Vec<FileId> = outputs.iter().map(|(_, p)| file_id(p)).collect();
    for (k, ((flag, path), id)) in outputs.iter().zip(&output_ids).enumerate() {
        if let Some(input) = inputs.iter().zip(&input_ids).find(|(_, i)| *i == id).map(|(p, _)| p) {
            bail!(
                "{flag} {} is the input {}: vicuna never overwrites its input; write to another file",
                path.display(),
                input.display()
            );
        }
        if let Some((other, _)) = outputs[..k].iter().zip(&output_ids).find(|(_, o)| *o == id).map(|(o, _)| o) {
            bail!("{flag} {} is the same file as {other}: give each output its own file", path.display());
        }
    }
    Ok(())
}

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

/// Writes the directory `path` through `fill`, which fills the (new, empty) temporary directory
/// it is given: the directory appears under its name, complete, only if `fill` succeeds; on error
/// the temporary directory is removed. An existing `path` must be an empty directory (it is
/// replaced): a directory with files in it is refused rather than deleted, since it may hold
/// anything, inputs included.
pub fn write_dir<T>(path: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    if let Ok(mut entries) = fs::read_dir(path) {
        if entries.next().is_some() {
            bail!("{} exists and is not empty: remove it or choose another output directory", path.display());
        }
    } else if path.exists() {
        bail!("{} exists and is not a directory: choose another output directory", path.display());
    }
    let tmp = temp_path(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    // A leftover of a killed run with this process id holds nothing worth keeping.
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).with_context(|| format!("cannot create directory {}", tmp.display()))?;
    let result = (|| {
        let value = fill(&tmp)?;
        sync_dir_of(&tmp);
        if path.exists() {
            fs::remove_dir(path).with_context(|| format!("cannot replace the empty directory {}", path.display()))?;
        }
        fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        sync_parent(path);
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Makes the entries of directory `dir` durable; best effort, like [`sync_parent`].
fn sync_dir_of(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes a whole byte string atomically (small outputs: reports, JSON summaries).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, |out| out.write_all(bytes).with_context(|| format!("cannot write {}", path.display())))
}

/// The temporary name: hidden, beside the target (same file system, so rename is atomic), and
/// unique per process so two runs never write into each other's file.
pub fn temp_path(path: &Path) -> PathBuf {
    beside(path, ".", &format!(".tmp-{}", std::process::id()))
}

/// A file next to `path` named `{prefix}{its name}{suffix}` (temporary files, locks, `.torn`
/// leftovers): same folder, so a rename onto `path` stays on one file system.
pub fn beside(path: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{prefix}{name}{suffix}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_an_input_or_another_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.json");
        fs::write(&raw, "[]").unwrap();
        let dotted = dir.path().join(".").join("raw.json");
        let err = ensure_distinct(&[&raw], &[("--output", &dotted)]).unwrap_err().to_string();
        assert!(err.starts_with("--output ") && err.contains("is the input"), "{err}");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&raw, &link).unwrap();
        assert!(ensure_distinct(&[&raw], &[("--report", &link)]).is_err());
        let (a, b) = (dir.path().join("x.json"), dir.path().join("sub/../x.json"));
        fs::create_dir(dir.path().join("sub")).unwrap();
        let err = ensure_distinct(&[&raw], &[("--train", &a), ("--test", &b)]).unwrap_err().to_string();
        assert!(err.contains("--test") && err.contains("same file as --train"), "{err}");
        ensure_distinct(&[&raw], &[("--train", &a), ("--test", &dir.path().join("y.json"))]).unwrap();
    }
}
