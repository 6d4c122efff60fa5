//! Streaming JSON Lines reader.
//!
//! Guarantees: a malformed line is an error naming the file and its 1-based line number;
//! a malformed *last* line without a trailing newline (a runner killed mid-write) is
//! dropped with a warning instead; blank lines are skipped; indices must increase.

use crate::{History, Op};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Why a history could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
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
    let mut warnings = Vec::new();
    let mut buf = String::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let n = r.read_line(&mut buf).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })?;
        if n == 0 {
            break;
        }
        line += 1;
        let complete_line = buf.ends_with('\n');
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Op>(text) {
            Ok(op) => {
                if let Some(prev) = ops.last()
                    && op.index <= prev.index
                {
                    return Err(HistoryError::Malformed {
                        path: path.to_owned(),
                        line,
                        msg: format!(
                            "index {} does not increase (previous line had {}); histories must stay in recorded order",
                            op.index, prev.index
                        ),
                    });
                }
                ops.push(op);
            }
            Err(e) if !complete_line => {
                let _ = e;
                warnings.push(ReadWarning::TruncatedLastLine { line });
                break;
            }
            Err(e) => {
                return Err(HistoryError::Malformed {
                    path: path.to_owned(),
                    line,
                    msg: format!("not a valid history op: {e}"),
                });
            }
        }
    }
    Ok((History::new(ops), warnings))
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
