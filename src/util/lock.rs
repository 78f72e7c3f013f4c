//! Exclusive locks on an output location (a training directory, a judgment file), so two runs
//! never write into each other: the second one stops at once with the holder's pid instead of
//! deleting the first one's checkpoint in progress or paying for every judgment twice.
//!
//! The lock is `flock(2)` on a small file holding the holder's pid. The kernel releases it when
//! the holder's process ends, however it ends (SIGKILL, OOM, power loss of the process), so a
//! stale lock never needs cleaning by hand; the file itself is removed on a clean release. A lock
//! is taken only on a file whose inode is still the one at its path, so a run that opened the
//! file just before the previous holder removed it cannot believe it holds a lock nobody sees.
//! Written here rather than taken from a crate: the few lines over `libc::flock` (already a
//! dependency) are all that is needed, and the pid message and the inode check are ours.
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock file `path` for `what` (words for the message, such as "output directory
    /// out/run"), or fails at once naming the pid of the process that holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<Lock> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        for _ in 0..16 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("cannot open the lock file {}", path.display()))?;
            // SAFETY: flock on a file descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let pid = if holder.is_empty() { "unknown".to_string() } else { holder.to_string() };
                bail!(
                    "{what} is in use by another vicuna process (pid {pid}, lock {}); wait for it to finish or stop it, or choose another path",
                    path.display()
                );
            }
            // The previous holder may have removed the file between our open and our flock.
            let same = std::fs::metadata(path)
                .ok()
                .zip(file.metadata().ok())
                .is_some_and(|(at_path, ours)| at_path.ino() == ours.ino() && at_path.dev() == ours.dev());
            if !same {
                continue;
            }
            file.set_len(0).and_then(|()| file.rewind()).with_context(|| format!("cannot write {}", path.display()))?;
            write!(file, "{}", std::process::id()).with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(Lock { file, path: path.to_path_buf() });
        }
        bail!("cannot lock {}: it keeps being replaced by other processes", path.display())
    }

    /// The lock file for an output file: hidden, beside it (`dir/.NAME.lock`).
    pub fn path_beside(file: &Path) -> PathBuf {
        super::atomic::beside(file, ".", ".lock")
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove while still holding the lock; closing the file then releases it.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = Lock::acquire(&path, "output directory x").unwrap();
        // flock locks belong to the open file description: a second open in the same process
        // conflicts just as another process would.
        let err = Lock::acquire(&path, "output directory x").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("output directory x is in use"), "{err}");
        drop(first);
        assert!(!path.exists());
        let _again = Lock::acquire(&path, "output directory x").unwrap();
        assert!(path.exists(), "held again after the release");
    }

    #[test]
    fn beside_is_hidden_next_to_the_file() {
        assert_eq!(Lock::path_beside(Path::new("a/b.jsonl")), PathBuf::from("a/.b.jsonl.lock"));
    }
}
