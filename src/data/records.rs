//! Reading record files without copying them: a dump (a JSON array or JSON Lines) is memory-mapped
//! and split into the byte ranges of its records, so a 1 GB file costs its page cache plus 16 bytes
//! per record, and records can be parsed in parallel straight from the map (borrowed strings).
//! Malformed JSON is reported with the file, the record index and the byte offset.
use anyhow::{bail, Context, Result};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The two container formats a record file can have; chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// One JSON array of records (`.json`), as ShareGPT and FastChat write them.
    Array,
    /// One record per line (`.jsonl`), the streaming-friendly form.
    Lines,
}

impl Container {
    /// Picks the format from the extension, so reading and writing agree on one rule.
    pub fn from_path(path: &Path) -> Result<Container> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("json") => Ok(Container::Array),
            Some("jsonl") | Some("ndjson") => Ok(Container::Lines),
            _ => bail!("{}: unknown format; use a .json (JSON array) or .jsonl (JSON Lines) file name", path.display()),
        }
    }
}

/// A record file mapped into memory, with the byte range of each record.
pub struct RecordFile {
    path: PathBuf,
    // None for an empty file (an empty map is an error on some systems).
    map: Option<memmap2::Mmap>,
    records: Vec<Range<usize>>,
}

impl RecordFile {
    /// Maps `path` and finds its records; fails on malformed JSON with file, record index and byte offset.
    pub fn open(path: &Path) -> Result<RecordFile> {
        let container = Container::from_path(path)?;
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only; like every tool that maps its input, we rely on the file
            // not being truncated by another process while we read it.
            Some(unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let text = std::str::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid UTF-8 at byte offset {}; the file must be UTF-8 JSON",
                path.display(),
                e.valid_up_to()
            )
        })?;
        let records = match container {
            Container::Array => array_records(text).map_err(|e| e.describe(path))?,
            Container::Lines => line_records(text).map_err(|e| e.describe(path))?,
        };
        Ok(RecordFile { path: path.to_path_buf(), map, records })
    }

    /// The file this came from, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The JSON text of record `i` (valid JSON: it was checked when the file was opened).
    pub fn record(&self, i: usize) -> &str {
        let bytes = &self.map.as_deref().unwrap_or(&[])[self.records[i].clone()];
        // SAFETY: the whole file was checked to be UTF-8 in `open`, the map is read-only, and every
        // range starts and ends at a JSON token boundary (an ASCII byte), so it is a char boundary.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Byte offset of record `i` in the file, for messages about a bad record.
    pub fn offset(&self, i: usize) -> usize {
        self.records[i].start
    }
}

/// A JSON syntax error found while splitting, before the file name is known.
struct SplitError {
    record: usize,
    offset: usize,
    message: String,
}

impl SplitError {
    fn describe(self, path: &Path) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: malformed JSON in record {} at byte offset {}: {}",
            path.display(),
            self.record,
            self.offset,
            self.message
        )
    }
}

/// Splits a JSON array into record ranges; serde_json validates the syntax as it goes.
fn array_records(text: &str) -> Result<Vec<Range<usize>>, SplitError> {
    struct Collect<'a> {
        base: usize,
        out: &'a mut Vec<Range<usize>>,
    }
    impl<'de, 'a> Visitor<'de> for Collect<'a> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                let start = raw.get().as_ptr() as usize - self.base;
                self.out.push(start..start + raw.get().len());
            }
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de.deserialize_seq(Collect { base: text.as_ptr() as usize, out: &mut out }).and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(out),
        Err(e) => {
            let offset = byte_offset(text, e.line(), e.column());
            let message = strip_position(&e.to_string());
            Err(SplitError { record: out.len(), offset, message })
        }
    }
}

/// Splits JSON Lines into record ranges, checking each line's syntax (blank lines are skipped).
fn line_records(text: &str) -> Result<Vec<Range<usize>>, SplitError> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i);
        let line = &text[start..end];
        let trimmed = line.trim_end_matches('\r');
        if !trimmed.trim().is_empty() {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
                let offset = start + byte_offset(trimmed, 1, e.column());
                return Err(SplitError { record: out.len(), offset, message: strip_position(&e.to_string()) });
            }
            out.push(start..start + trimmed.len());
        }
        start = end + 1;
    }
    Ok(out)
}

/// Converts serde_json's 1-based line and column into a byte offset.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', text.as_bytes()).nth(line - 2).map_or(text.len(), |i| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// serde_json appends " at line L column C"; we report a byte offset instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
