//! Writing records: a JSON array (one record per line inside it, so both `json.load` and line
//! tools work) or JSON Lines, chosen by the output's extension, always through `atomic`.
use super::records::Container;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A record file being written: records go to a temporary file that `finish` renames into place.
pub struct RecordWriter {
    path: PathBuf,
    tmp: PathBuf,
    // None once finished.
    out: Option<BufWriter<File>>,
    container: Container,
    count: usize,
}

impl RecordWriter {
    /// Starts writing `path`; nothing appears under that name until `finish`.
    pub fn create(path: &Path) -> Result<RecordWriter> {
        let container = Container::from_path(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let tmp = crate::util::atomic::temp_path(path);
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(RecordWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            container,
            count: 0,
        })
    }

    /// Appends one record (its JSON, on one line).
    pub fn push(&mut self, json: &[u8]) -> Result<()> {
        let sep: &[u8] = match (self.container, self.count) {
            (Container::Array, 0) => b"[\n",
            (Container::Array, _) => b",\n",
            (Container::Lines, _) => b"",
        };
        self.count += 1;
        let lines = self.container == Container::Lines;
        let out = self.out.as_mut().expect("push after finish");
        (|| -> std::io::Result<()> {
            out.write_all(sep)?;
            out.write_all(json)?;
            if lines {
                out.write_all(b"\n")?;
            }
            Ok(())
        })()
        .with_context(|| format!("cannot write {}", self.tmp.display()))
    }

    /// Closes the container, syncs the data and renames the file into place.
    pub fn finish(mut self) -> Result<usize> {
        let tail: &[u8] = match (self.container, self.count) {
            (Container::Array, 0) => b"[]\n",
            (Container::Array, _) => b"\n]\n",
            (Container::Lines, _) => b"",
        };
        let tmp = self.tmp.clone();
        let mut out = self.out.take().expect("finish called once");
        out.write_all(tail).with_context(|| format!("cannot write {}", tmp.display()))?;
        let file =
            out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("cannot sync {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), self.path.display()))?;
        crate::util::atomic::sync_parent(&self.path);
        Ok(self.count)
    }
}

impl Drop for RecordWriter {
    /// A writer dropped without `finish` (an error part way) removes its temporary file.
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
