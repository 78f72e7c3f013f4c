//! JSON Lines reading shared by the evaluation files (questions, answers, judge prompts,
//! judgments), in the layout FastChat's llm_judge reads with `json.loads(line)` per line.
//!
//! FastChat stops at the first bad line with a Python traceback. Here each line is parsed on its
//! own: a reader either keeps going and returns the lines it skipped with their numbers
//! ([`read_lenient`], for files that generators append to and a crash can leave with a torn last
//! line) or refuses the file naming `path:line` ([`Loaded::into_strict`], for files that define
//! the benchmark). Blank lines are ignored, as FastChat's `if line:` does.
//!
//! Files that runs append to (judgments) are readied for more lines by [`set_aside_torn_tail`]:
//! a last line cut short by a crash is moved to `NAME.torn` so the next record starts on a fresh
//! line instead of being glued onto the fragment and lost.
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A line that was not used, kept with its 1-based number so the caller can report it instead of
/// losing a record without a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Why the line was skipped, in words.
    pub error: String,
}

/// The records read from one JSONL file and the lines that had to be skipped, so that every line
/// is accounted for: `items.len() + skipped.len()` is the number of non-blank lines.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The file the records came from (for messages).
    pub path: PathBuf,
    /// The records, in file order, each with its 1-based line number.
    pub items: Vec<(usize, T)>,
    /// The lines that could not be parsed, in file order.
    pub skipped: Vec<SkippedLine>,
}

impl<T> Loaded<T> {
    /// The records without their line numbers, for callers that do not report positions.
    pub fn records(self) -> Vec<T> {
        self.items.into_iter().map(|(_, item)| item).collect()
    }

    /// All records, or an error naming the first bad line (`path:line: why`) and how many lines
    /// were bad, for files where a dropped record would change the result (question files).
    pub fn into_strict(self) -> Result<Vec<T>> {
        if let Some(first) = self.skipped.first() {
            bail!(
                "{}:{}: {} ({} bad line(s) in all; fix or remove them)",
                self.path.display(),
                first.line,
                first.error,
                self.skipped.len()
            );
        }
        Ok(self.records())
    }

    /// One line per skipped record (`path:line: why`), for warnings on standard error.
    pub fn skipped_messages(&self) -> Vec<String> {
        self.skipped.iter().map(|s| format!("{}:{}: {}", self.path.display(), s.line, s.error)).collect()
    }
}

/// Reads `path` and parses each non-blank line with `parse`; lines that are not JSON, not UTF-8 or
/// rejected by `parse` are skipped and listed. Fails only when the file cannot be read.
pub fn read_lenient<T>(path: &Path, parse: impl FnMut(Value) -> Result<T>) -> Result<Loaded<T>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}; check the path (a JSON Lines file is expected)", path.display()))?;
    Ok(parse_lenient(path, &bytes, parse))
}

/// [`read_lenient`] on bytes already in memory; `path` is used only in messages.
pub fn parse_lenient<T>(path: &Path, bytes: &[u8], mut parse: impl FnMut(Value) -> Result<T>) -> Loaded<T> {
    let mut loaded = Loaded { path: path.to_path_buf(), items: Vec::new(), skipped: Vec::new() };
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if index == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                loaded.skipped.push(SkippedLine { line, error: format!("not UTF-8 ({e})") });
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => {
                loaded.skipped.push(SkippedLine { line, error: format!("not valid JSON ({e})") });
                continue;
            }
        };
        match parse(value) {
            Ok(item) => loaded.items.push((line, item)),
            Err(e) => loaded.skipped.push(SkippedLine { line, error: format!("{e:#}") }),
        }
    }
    loaded
}

/// What [`set_aside_torn_tail`] moved out of a file, for the message that tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Length of the fragment, in bytes.
    pub bytes: u64,
    /// Where it went: `NAME.torn` beside the file.
    pub torn_path: PathBuf,
}

/// The file a torn last line of `path` is moved to: `NAME.torn` beside it.
pub fn torn_path(path: &Path) -> PathBuf {
    crate::util::atomic::beside(path, "", ".torn")
}

/// Readies an append-only JSON Lines file for more lines after a crash. Only a line that ends in
/// a newline was written completely, so whatever follows the last newline (a write cut short) is
/// appended to [`torn_path`] with a newline of its own and cut off the file; the next record then
/// starts on a fresh line instead of being glued onto the fragment, which would lose both. The
/// rule is deliberately simple: a last line without its newline is set aside even when it happens
/// to be whole JSON, and its record is made again. The fragment is durable in `.torn` before the
/// file is shortened, so a crash in between duplicates it rather than losing it. A missing or
/// empty file, or one that ends in a newline, is left alone (`None`). The caller must hold the
/// file's lock, since another writer could be appending meanwhile.
pub fn set_aside_torn_tail(path: &Path) -> Result<Option<TornTail>> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let read_err = || format!("cannot read {}", path.display());
    let len = file.metadata().with_context(read_err)?.len();
    // Where the last line starts: after the last newline, found reading backwards in blocks.
    let mut block = vec![0u8; 64 * 1024];
    let mut end = len;
    let cut = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.read_exact_at(chunk, start).with_context(read_err)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(None);
        }
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if cut == len {
        return Ok(None);
    }
    let mut fragment = vec![0u8; (len - cut) as usize];
    file.read_exact_at(&mut fragment, cut).with_context(read_err)?;
    fragment.push(b'\n');
    let torn_path = torn_path(path);
    let mut torn = OpenOptions::new().create(true).append(true).open(&torn_path).with_context(|| {
        format!("cannot open {} to keep the torn last line of {}", torn_path.display(), path.display())
    })?;
    torn.write_all(&fragment)
        .and_then(|()| torn.sync_all())
        .with_context(|| format!("cannot write {}", torn_path.display()))?;
    file.set_len(cut)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot cut the torn last line off {}", path.display()))?;
    Ok(Some(TornTail { bytes: len - cut, torn_path }))
}

/// The string field `key` of a JSON object, or an error saying which field is missing or mistyped.
pub(crate) fn string_field(object: &serde_json::Map<String, Value>, key: &str) -> Result<String> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => bail!("field \"{key}\" must be a string, found {}", kind(other)),
        None => bail!("missing field \"{key}\""),
    }
}

/// A list of strings (a `turns` or `reference` array); a bare string is taken as a one-element
/// list because hand-written files often do that.
pub(crate) fn string_list(value: &Value, key: &str) -> Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => bail!("\"{key}\"[{i}] must be a string, found {}", kind(other)),
            })
            .collect(),
        other => bail!("field \"{key}\" must be a list of strings, found {}", kind(other)),
    }
}

pub(crate) use crate::util::json_kind as kind;

#[cfg(test)]
mod tests {
    use super::*;

    fn number(value: Value) -> Result<i64> {
        value.get("n").and_then(Value::as_i64).context("no integer \"n\"")
    }

    #[test]
    fn skips_bad_lines_with_their_numbers_and_ignores_blank_ones() {
        let text = b"\xEF\xBB\xBF{\"n\": 1}\r\n\n{\"n\": \n{\"m\": 2}\n\xFF\n{\"n\": 3}";
        let loaded = parse_lenient(Path::new("x.jsonl"), text, number);
        assert_eq!(loaded.items, vec![(1, 1), (6, 3)]);
        let lines: Vec<usize> = loaded.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(loaded.skipped[1].error.contains("no integer"));
        assert!(loaded.skipped[2].error.contains("UTF-8"));
        let message = loaded.into_strict().unwrap_err().to_string();
        assert!(message.starts_with("x.jsonl:3: not valid JSON"), "{message}");
        assert!(message.contains("3 bad line(s)"), "{message}");
    }

    #[test]
    fn a_torn_last_line_goes_to_dot_torn_and_whole_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        assert_eq!(set_aside_torn_tail(&path).unwrap(), None, "no file");
        for whole in ["", "{\"n\": 1}\n", "{\"n\": 1}\r\n{\"n\": 2}\n"] {
            std::fs::write(&path, whole).unwrap();
            assert_eq!(set_aside_torn_tail(&path).unwrap(), None);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        }
        let torn = dir.path().join("j.jsonl.torn");
        assert!(!torn.exists());

        std::fs::write(&path, "{\"n\": 1}\n{\"n\": 2}\n{\"n\"").unwrap();
        let tail = set_aside_torn_tail(&path).unwrap().unwrap();
        assert_eq!(tail, TornTail { bytes: 4, torn_path: torn.clone() });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\": 1}\n{\"n\": 2}\n");
        assert_eq!(std::fs::read_to_string(&torn).unwrap(), "{\"n\"\n");

        // No newline at all, over several read blocks: the whole file is one torn line.
        let long = "x".repeat(200_000);
        std::fs::write(&path, &long).unwrap();
        assert_eq!(set_aside_torn_tail(&path).unwrap().unwrap().bytes, 200_000);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(std::fs::read_to_string(&torn).unwrap(), format!("{{\"n\"\n{long}\n"), "fragments accumulate");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_lenient(Path::new("/nonexistent/q.jsonl"), number).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/q.jsonl"));
    }
}
