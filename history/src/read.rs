//! Streaming JSON Lines reader.
//!
//! Guarantees: a malformed line (bad JSON, not an op, invalid UTF-8, longer than
//! `MAX_LINE_BYTES`) is one error naming the file and its 1-based line number and quoting
//! at most `MAX_ERROR_CHARS` characters; a malformed *last* line without a trailing
//! newline (a runner killed mid-write) is dropped with a warning instead; blank lines and
//! a leading byte-order mark are skipped; indices must increase. Memory stays within one
//! line's bound beyond the ops read, whatever the input (`/dev/zero` included).

use crate::{History, Op, clip};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// Longest accepted history line, in bytes (16 MiB): one op per line, and the longest
/// real ops (a read of a long append list) are far below it.
pub const MAX_LINE_BYTES: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a history could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading failed part-way, while reading `line`.
    #[error("{path}:{line}: cannot read: {source}")]
    ReadFailed {
        path: PathBuf,
        line: usize,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Malformed {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("op index {index}: {msg}")]
    Inconsistent { index: u64, msg: String },
}

impl HistoryError {
    /// A malformed-input error; `msg` is clipped to `MAX_ERROR_CHARS`.
    pub(crate) fn malformed(path: &Path, line: usize, msg: impl AsRef<str>) -> Self {
        HistoryError::Malformed {
            path: path.to_owned(),
            line,
            msg: clip(msg.as_ref()),
        }
    }
}

/// Something the reader tolerated but the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadWarning {
    /// The last line was cut off (no newline, does not parse) and was dropped.
    TruncatedLastLine { line: usize },
}

impl std::fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadWarning::TruncatedLastLine { line } => write!(
                f,
                "line {line} is cut off (the run was killed while writing it) and was skipped"
            ),
        }
    }
}

/// Reads a JSON Lines history; `path` is only used in messages.
pub fn read_jsonl<R: BufRead>(
    mut r: R,
    path: &Path,
) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    let mut ops: Vec<Op> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut warnings = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        // One byte past the limit tells a line of exactly the limit from a longer one.
        let n = r
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| HistoryError::ReadFailed {
                path: path.to_owned(),
                line: line + 1,
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let complete_line = buf.last() == Some(&b'\n');
        if !complete_line && buf.len() > MAX_LINE_BYTES {
            return Err(HistoryError::malformed(
                path,
                line,
                format!(
                    "line is longer than {} MiB (a history line holds one op): not a schism history",
                    MAX_LINE_BYTES >> 20
                ),
            ));
        }
        let bytes = match buf.strip_prefix(BOM) {
            Some(rest) if line == 1 => rest,
            _ => &buf[..],
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.trim(),
            Err(_) if !complete_line => {
                warnings.push(ReadWarning::TruncatedLastLine { line });
                break;
            }
            Err(e) => {
                return Err(HistoryError::malformed(
                    path,
                    line,
                    format!(
                        "not valid UTF-8 (byte {} of the line): not a schism history",
                        e.valid_up_to() + 1
                    ),
                ));
            }
        };
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Op>(text) {
            Ok(op) => {
                if let Some(prev) = ops.last()
                    && op.index <= prev.index
                {
                    return Err(HistoryError::malformed(
                        path,
                        line,
                        format!(
                            "index {} does not increase (previous line had {}); histories must stay in recorded order",
                            op.index, prev.index
                        ),
                    ));
                }
                ops.push(op);
                lines.push(line);
            }
            Err(_) if !complete_line => {
                warnings.push(ReadWarning::TruncatedLastLine { line });
                break;
            }
            Err(e) => {
                return Err(HistoryError::malformed(
                    path,
                    line,
                    format!("not a valid history op: {}", without_position(&e)),
                ));
            }
        }
    }
    Ok((History::from_file(ops, path, lines), warnings))
}

/// serde_json's message without its " at line 1 column N" (every line is line 1 to it):
/// the column is kept, the line is ours.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let msg = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    format!("{} (column {})", clip(msg), e.column())
}

/// Reads `history.jsonl` (or any JSON Lines history) from disk.
pub fn read_history_file(path: &Path) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    let f = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_jsonl(std::io::BufReader::with_capacity(1 << 16, f), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = concat!(
        r#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"append","key":7,"value":42}"#,
        "\n",
        r#"{"index":1,"time_ns":2,"process":3,"type":"ok","f":"append","key":7,"value":42}"#,
        "\n"
    );

    #[test]
    fn reads_good_lines() {
        let (h, w) = read_jsonl(GOOD.as_bytes(), Path::new("h.jsonl")).unwrap();
        assert_eq!(h.len(), 2);
        assert!(w.is_empty());
    }

    #[test]
    fn truncated_last_line_is_a_warning() {
        let text = format!("{GOOD}{{\"index\":2,\"time_ns\":3,\"proc");
        let (h, w) = read_jsonl(text.as_bytes(), Path::new("h.jsonl")).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(w, vec![ReadWarning::TruncatedLastLine { line: 3 }]);
    }

    #[test]
    fn malformed_middle_line_names_file_and_line() {
        let text = format!("{GOOD}{{\"index\":2,oops}}\n{GOOD}");
        let e = read_jsonl(text.as_bytes(), Path::new("h.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.jsonl:3: not a valid history op"), "{e}");
    }

    #[test]
    fn unknown_type_is_malformed() {
        let text =
            r#"{"index":0,"time_ns":1,"process":3,"type":"done","f":"read"}"#.to_owned() + "\n";
        let e = read_jsonl(text.as_bytes(), Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x:1:"), "{e}");
    }

    #[test]
    fn decreasing_index_is_malformed() {
        let text = format!("{GOOD}{GOOD}");
        let e = read_jsonl(text.as_bytes(), Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x:3: index 0 does not increase"), "{e}");
    }
}
