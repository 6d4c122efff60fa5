//! Streaming JSON Lines reader, parsing line-parallel on the available cores.
//!
//! Guarantees: a malformed line (bad JSON, not an op, invalid UTF-8, longer than
//! `MAX_LINE_BYTES`) is one error naming the file and its 1-based line number and quoting
//! at most `MAX_ERROR_CHARS` characters; a malformed *last* line without a trailing
//! newline (a runner killed mid-write) is dropped with a warning instead; blank lines and
//! a leading byte-order mark are skipped; indices must increase. Lines are cut in order by
//! one thread (a file read on several cores: a thread of its own, one batch ahead of the
//! parse) and parsed in batches of about `BATCH_BYTES` by up to
//! `available_parallelism` threads. Each line is first offered to `fast`, a hand-written
//! scanner for exactly the shape our writer emits (fields in order, integers, plain ASCII
//! strings: every line of a schism run's client ops), which builds the `Op` from the bytes;
//! any line it does not take exactly is deserialised by serde_json (typed, straight from
//! the line, no intermediate JSON tree) as it always was, so what is accepted and every
//! message are serde's. Each thread's range of lines becomes an op vector, its indices
//! checked as it is parsed; the parts are merged whole in line order (the first index of a
//! part checked against the op before it), so ops, their lines and the *first* error in
//! line order are exactly what a one-line-at-a-time reader gives. Memory stays within
//! three batches plus one line's bound beyond the ops read, whatever the input
//! (`/dev/zero` included).

use crate::{History, Op, clip};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

mod fast;

/// Longest accepted history line, in bytes (16 MiB): one op per line, and the longest
/// real ops (a read of a long append list) are far below it.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Bytes of lines cut before a parallel parse (per batch, all threads together): large
/// enough that thread start-up is noise, small enough to stay out of the memory peak.
pub const BATCH_BYTES: usize = 4 << 20;

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

/// What one line holds.
#[derive(Debug)]
pub enum ParsedLine {
    /// Blank (or only a byte-order mark on line 1).
    Blank,
    Op(Op),
    /// An incomplete last line that does not parse: the writer was cut off.
    Truncated,
}

/// Parses one line (`bytes` without its newline; `complete` when a newline ended it).
/// `line` is 1-based and only used in messages, as is `path`. The line-length bound is
/// the caller's (it must not have read more than `MAX_LINE_BYTES` + 1 bytes).
pub fn parse_line(
    bytes: &[u8],
    line: usize,
    complete: bool,
    path: &Path,
) -> Result<ParsedLine, HistoryError> {
    if let Some(op) = fast::parse_op(bytes) {
        return Ok(ParsedLine::Op(op));
    }
    parse_line_serde(bytes, line, complete, path)
}

/// `parse_line` without the fast path: serde_json on every line (what it did before).
pub(crate) fn parse_line_serde(
    bytes: &[u8],
    line: usize,
    complete: bool,
    path: &Path,
) -> Result<ParsedLine, HistoryError> {
    match line_text(bytes, line, complete, path)? {
        LineText::Blank => Ok(ParsedLine::Blank),
        LineText::Truncated => Ok(ParsedLine::Truncated),
        LineText::Text(text) => parse_op_text(text, line, complete, path),
    }
}

/// A line's text, before it is parsed.
pub(crate) enum LineText<'a> {
    Blank,
    Truncated,
    /// Trimmed, not empty.
    Text(&'a str),
}

/// The text of one line: a leading byte-order mark (line 1) and surrounding white space
/// dropped; invalid UTF-8 is an error unless the line is an incomplete last one.
pub(crate) fn line_text<'a>(
    bytes: &'a [u8],
    line: usize,
    complete: bool,
    path: &Path,
) -> Result<LineText<'a>, HistoryError> {
    let bytes = match bytes.strip_prefix(BOM) {
        Some(rest) if line == 1 => rest,
        _ => bytes,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(_) if !complete => return Ok(LineText::Truncated),
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
    Ok(if text.is_empty() {
        LineText::Blank
    } else {
        LineText::Text(text)
    })
}

/// One op from a line's non-blank text (see `parse_line`).
pub(crate) fn parse_op_text(
    text: &str,
    line: usize,
    complete: bool,
    path: &Path,
) -> Result<ParsedLine, HistoryError> {
    match serde_json::from_str::<Op>(text) {
        Ok(op) => Ok(ParsedLine::Op(op)),
        Err(_) if !complete => Ok(ParsedLine::Truncated),
        Err(e) => Err(HistoryError::malformed(
            path,
            line,
            format!("not a valid history op: {}", without_position(&e)),
        )),
    }
}

/// The error for a line whose index does not follow the previous one's.
pub(crate) fn not_increasing(path: &Path, line: usize, index: u64, prev: u64) -> HistoryError {
    HistoryError::malformed(
        path,
        line,
        format!(
            "index {index} does not increase (previous line had {prev}); histories must stay in recorded order"
        ),
    )
}

fn too_long(path: &Path, line: usize) -> HistoryError {
    HistoryError::malformed(
        path,
        line,
        format!(
            "line is longer than {} MiB (a history line holds one op): not a schism history",
            MAX_LINE_BYTES >> 20
        ),
    )
}

/// Lines cut from the input, waiting for a parse: their bytes back to back, and per line
/// its end offset in `data`, its 1-based number and whether a newline ended it.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) data: Vec<u8>,
    pub(crate) lines: Vec<(usize, usize, bool)>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.lines.clear();
    }

    pub(crate) fn line_bytes(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.lines[i - 1].0 };
        let end = self.lines[i].0;
        let b = &self.data[start..end];
        b.strip_suffix(b"\n").unwrap_or(b)
    }
}

/// The ops read so far, in order, and where the merge stands.
struct Sink<'p> {
    path: &'p Path,
    ops: Vec<Op>,
    /// The line of each op.
    lines: crate::Lines,
    warnings: Vec<ReadWarning>,
    /// A truncated last line was seen: nothing may follow.
    done: bool,
}

/// A range of a batch's lines, parsed by one thread: its ops in line order (indices
/// increasing within the part), their lines, and what ended the part early.
struct Part {
    ops: Vec<Op>,
    lines: crate::Lines,
    /// The line of the first op (its index is checked against the ops before the part).
    first_line: usize,
    /// A truncated last line (its number), or the first error in the part's lines.
    end: Option<Result<usize, HistoryError>>,
}

/// Parses lines `range` of `batch`, stopping at the first error or truncated last line:
/// lines after it can never be used.
fn parse_part(batch: &Batch, range: std::ops::Range<usize>, path: &Path) -> Part {
    let mut part = Part {
        ops: Vec::with_capacity(range.len()),
        lines: crate::Lines::default(),
        first_line: 0,
        end: None,
    };
    for i in range {
        let (_, line, complete) = batch.lines[i];
        match parse_line(batch.line_bytes(i), line, complete, path) {
            Ok(ParsedLine::Blank) => {}
            Ok(ParsedLine::Op(op)) => {
                match part.ops.last() {
                    Some(prev) if op.index() <= prev.index() => {
                        part.end = Some(Err(not_increasing(path, line, op.index(), prev.index())));
                        break;
                    }
                    Some(_) => {}
                    None => part.first_line = line,
                }
                part.lines.push(&op, line);
                part.ops.push(op);
            }
            Ok(ParsedLine::Truncated) => {
                part.end = Some(Ok(line));
                break;
            }
            Err(e) => {
                part.end = Some(Err(e));
                break;
            }
        }
    }
    part
}

impl Sink<'_> {
    /// Appends one part, checking its first index against the ops before it.
    fn merge(&mut self, mut part: Part) -> Result<(), HistoryError> {
        if let (Some(first), Some(prev)) = (part.ops.first(), self.ops.last())
            && first.index() <= prev.index()
        {
            return Err(not_increasing(
                self.path,
                part.first_line,
                first.index(),
                prev.index(),
            ));
        }
        self.lines.append(part.lines);
        self.ops.append(&mut part.ops);
        match part.end {
            None => Ok(()),
            Some(Ok(line)) => {
                self.warnings.push(ReadWarning::TruncatedLastLine { line });
                self.done = true;
                Ok(())
            }
            Some(Err(e)) => Err(e),
        }
    }

    /// Parses a batch (in parallel when it is worth it) and merges it in line order.
    fn flush(&mut self, batch: &Batch, threads: usize) -> Result<(), HistoryError> {
        let n = batch.lines.len();
        if n == 0 {
            return Ok(());
        }
        let path = self.path;
        let parts = parse_parts(n, threads, |range| parse_part(batch, range, path));
        for part in parts {
            self.merge(part)?;
            if self.done {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// How many threads a reader parses on: the available cores (1 if unknown).
pub(crate) fn reader_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads a JSON Lines history; `path` is only used in messages. Parses on up to
/// `available_parallelism` threads.
pub fn read_jsonl<R: BufRead>(
    r: R,
    path: &Path,
) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    read_jsonl_threads(r, path, reader_threads())
}

/// `read_jsonl` on at most `threads` parser threads (1: all in the caller's thread).
pub fn read_jsonl_threads<R: BufRead>(
    r: R,
    path: &Path,
    threads: usize,
) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    read_jsonl_sized(r, path, threads, None, |r, p, f| for_each_batch(r, p, f))
}

/// `read_jsonl_threads` knowing the input's size in bytes: after the first batch the op
/// vector is reserved for the whole input at that batch's bytes per line, so it is not
/// doubled (and briefly held twice) while reading — the reader's memory peak. `batches`
/// is `for_each_batch` or `for_each_batch_piped`.
fn read_jsonl_sized<R>(
    r: R,
    path: &Path,
    threads: usize,
    input_bytes: Option<u64>,
    batches: impl FnOnce(R, &Path, &mut Flush<'_>) -> Result<(), HistoryError>,
) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    let mut sink = Sink {
        path,
        ops: Vec::new(),
        lines: crate::Lines::default(),
        warnings: Vec::new(),
        done: false,
    };
    batches(r, path, &mut |batch| {
        if let Some(total) = input_bytes
            && sink.ops.is_empty()
            && batch.data.len() >= BATCH_BYTES
        {
            let per_line = (batch.data.len() / batch.lines.len()).max(1) as u64;
            let expect = total / per_line + total / per_line / 32;
            sink.ops.reserve(expect.min(u64::from(u32::MAX)) as usize);
        }
        sink.flush(batch, threads)?;
        Ok(sink.done)
    })?;
    Ok((
        History::from_located(sink.ops, path, sink.lines),
        sink.warnings,
    ))
}

/// What parses and merges one batch, saying whether to stop.
type Flush<'a> = dyn FnMut(&Batch) -> Result<bool, HistoryError> + 'a;

/// Cuts `r` into lines, in batches of about `BATCH_BYTES`, and hands each batch to
/// `flush`, which parses and merges it and says whether to stop (a truncated last line).
/// An error met while cutting lines (I/O, a line over `MAX_LINE_BYTES`) is returned only
/// after the lines before it were flushed: an earlier malformed line must win, as in a
/// one-line-at-a-time reader.
pub(crate) fn for_each_batch<R: BufRead>(
    r: R,
    path: &Path,
    mut flush: impl FnMut(&Batch) -> Result<bool, HistoryError>,
) -> Result<(), HistoryError> {
    let mut stopped: Result<bool, HistoryError> = Ok(false);
    let pending = cut_batches(r, path, |batch| match flush(&batch) {
        Ok(false) => Some(batch),
        other => {
            stopped = other;
            None
        }
    });
    finish(stopped, pending)
}

/// `for_each_batch` with the lines cut on a thread of their own, one batch ahead of
/// `flush` (which parses on the caller's thread and its helpers): cutting no longer
/// waits for parsing, nor parsing for cutting. The same batches, in the same order, and
/// the same outcome; at most three batches are held at once.
pub(crate) fn for_each_batch_piped<R: BufRead + Send>(
    r: R,
    path: &Path,
    mut flush: impl FnMut(&Batch) -> Result<bool, HistoryError>,
) -> Result<(), HistoryError> {
    std::thread::scope(|s| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(1);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
        let cutter = s.spawn(move || {
            cut_batches(r, path, |batch| {
                // The reader stopped (done or failed): stop cutting.
                full_tx.send(batch).ok()?;
                Some(empty_rx.try_recv().unwrap_or_default())
            })
        });
        let mut stopped: Result<bool, HistoryError> = Ok(false);
        for mut batch in full_rx.iter() {
            match flush(&batch) {
                Ok(false) => {
                    batch.clear();
                    let _ = empty_tx.send(batch);
                }
                other => {
                    stopped = other;
                    break;
                }
            }
        }
        drop(full_rx);
        let pending = cutter.join().expect("line cutter thread");
        finish(stopped, pending)
    })
}

/// The outcome of a read: `flush`'s error first, else the cutting error unless the
/// reader had stopped before it (a truncated last line).
fn finish(
    stopped: Result<bool, HistoryError>,
    pending: Option<HistoryError>,
) -> Result<(), HistoryError> {
    match (stopped?, pending) {
        (false, Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Cuts `r` into lines, in batches of about `BATCH_BYTES`, handing each batch in order to
/// `emit` — the last one (possibly empty) too, after an error — which gives back a batch
/// to fill next, or `None` to stop. Returns the error that ended the cutting, if any.
fn cut_batches<R: BufRead>(
    mut r: R,
    path: &Path,
    mut emit: impl FnMut(Batch) -> Option<Batch>,
) -> Option<HistoryError> {
    let mut batch = Batch::default();
    let mut line = 0usize;
    let mut pending: Option<HistoryError> = None;
    loop {
        let start = batch.data.len();
        // One byte past the limit tells a line of exactly the limit from a longer one.
        let read = r
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut batch.data);
        let n = match read {
            Ok(n) => n,
            Err(source) => {
                pending = Some(HistoryError::ReadFailed {
                    path: path.to_owned(),
                    line: line + 1,
                    source,
                });
                break;
            }
        };
        if n == 0 {
            break;
        }
        line += 1;
        let complete = batch.data.last() == Some(&b'\n');
        if !complete && batch.data.len() - start > MAX_LINE_BYTES {
            batch.data.truncate(start);
            pending = Some(too_long(path, line));
            break;
        }
        batch.lines.push((batch.data.len(), line, complete));
        if batch.data.len() >= BATCH_BYTES {
            match emit(std::mem::take(&mut batch)) {
                Some(mut next) => {
                    next.clear();
                    batch = next;
                }
                None => return None,
            }
        }
    }
    emit(batch)?;
    pending
}

/// `parse` run over `0..n` cut into consecutive ranges, on up to `threads` threads (one
/// when the batch is small), results in range order.
pub(crate) fn parse_parts<P: Send>(
    n: usize,
    threads: usize,
    parse: impl Fn(std::ops::Range<usize>) -> P + Sync,
) -> Vec<P> {
    let parts = threads.clamp(1, n.div_ceil(64).max(1));
    if parts == 1 {
        return vec![parse(0..n)];
    }
    let per = n.div_ceil(parts);
    let parse = &parse;
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..parts)
            .map(|p| {
                let range = (p * per).min(n)..((p + 1) * per).min(n);
                s.spawn(move || parse(range))
            })
            .collect();
        let mut all = vec![parse(0..per.min(n))];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("parser thread")),
        );
        all
    })
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

/// What `stream_history_file` read: ops handed on, and warnings (a truncated last line).
#[derive(Debug, Default)]
pub struct Streamed {
    /// Ops handed to the callback (every op the file holds unless the callback stopped).
    pub ops: u64,
    pub warnings: Vec<ReadWarning>,
    /// The callback asked to stop before the end of the file.
    pub stopped: bool,
}

/// Reads a JSON Lines history file op by op without holding it: each op, in order, is
/// handed to `each` with its 1-based line, then dropped; `each` returns `false` to stop
/// reading. The ops, their lines, the warnings and the *first* error in line order are
/// exactly `read_history_file`'s (the same batches, parts and merge checks), so a caller
/// that goes through every op sees what the whole-history reader would have held. Memory
/// stays within the reader's three batches, whatever the file's size.
pub fn stream_history_file(
    path: &Path,
    mut each: impl FnMut(&Op, usize) -> bool,
) -> Result<Streamed, HistoryError> {
    let f = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let threads = reader_threads();
    let r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut out = Streamed::default();
    // The last op handed on: its index (the next part's first index is checked against it).
    let mut last: Option<u64> = None;
    let mut flush = |batch: &Batch| -> Result<bool, HistoryError> {
        if batch.lines.is_empty() {
            return Ok(false);
        }
        let parts = parse_parts(batch.lines.len(), threads, |range| {
            parse_part(batch, range, path)
        });
        for part in parts {
            if let (Some(first), Some(prev)) = (part.ops.first(), last)
                && first.index() <= prev
            {
                return Err(not_increasing(path, part.first_line, first.index(), prev));
            }
            let mut ops = part.ops.iter();
            'runs: for run in &part.lines.runs {
                for k in 0..run.len {
                    let Some(op) = ops.next() else { break 'runs };
                    let line = if run.line == u32::MAX {
                        u32::MAX
                    } else {
                        run.line + k
                    };
                    last = Some(op.index());
                    out.ops += 1;
                    if !each(op, line as usize) {
                        out.stopped = true;
                        return Ok(true);
                    }
                }
            }
            match part.end {
                None => {}
                Some(Ok(line)) => {
                    out.warnings.push(ReadWarning::TruncatedLastLine { line });
                    return Ok(true);
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(false)
    };
    if threads > 1 {
        for_each_batch_piped(r, path, &mut flush)?;
    } else {
        for_each_batch(r, path, &mut flush)?;
    }
    Ok(out)
}

/// Reads `history.jsonl` (or any JSON Lines history) from disk.
pub fn read_history_file(path: &Path) -> Result<(History, Vec<ReadWarning>), HistoryError> {
    let f = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    let threads = reader_threads();
    let r = std::io::BufReader::with_capacity(1 << 16, f);
    if threads > 1 {
        read_jsonl_sized(r, path, threads, size, |r, p, f| {
            for_each_batch_piped(r, p, f)
        })
    } else {
        read_jsonl_sized(r, path, threads, size, |r, p, f| for_each_batch(r, p, f))
    }
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

    /// The reader before its parts were merged whole: one line at a time, serde's
    /// parser, each op's index and line recorded as it comes.
    fn one_at_a_time(text: &[u8], path: &Path) -> Result<ReadOutcome, String> {
        let mut ops: Vec<Op> = Vec::new();
        let mut lines = Vec::new();
        let mut warnings = Vec::new();
        let mut parts = text.split_inclusive(|&b| b == b'\n').enumerate();
        for (i, raw) in parts.by_ref() {
            let (line, complete) = (i + 1, raw.ends_with(b"\n"));
            let bytes = raw.strip_suffix(b"\n").unwrap_or(raw);
            match parse_line_serde(bytes, line, complete, path).map_err(|e| e.to_string())? {
                ParsedLine::Blank => {}
                ParsedLine::Truncated => {
                    warnings.push(ReadWarning::TruncatedLastLine { line });
                    break;
                }
                ParsedLine::Op(op) => {
                    if let Some(prev) = ops.last()
                        && op.index() <= prev.index()
                    {
                        return Err(
                            not_increasing(path, line, op.index(), prev.index()).to_string()
                        );
                    }
                    lines.push((op.index(), line));
                    ops.push(op);
                }
            }
        }
        Ok((ops, lines, warnings))
    }

    type ReadOutcome = (Vec<Op>, Vec<(u64, usize)>, Vec<ReadWarning>);

    fn read_outcome(text: &[u8], path: &Path, threads: usize) -> Result<ReadOutcome, String> {
        let (h, w) = read_jsonl_threads(text, path, threads).map_err(|e| e.to_string())?;
        let lines = h
            .ops
            .iter()
            .map(|op| (op.index(), h.locate(op.index()).expect("located").1))
            .collect();
        Ok((h.ops, lines, w))
    }

    proptest::proptest! {
        /// Parts parsed on several threads and merged whole give what one line at a time
        /// gave: the same ops and lines, warnings, or first error (index order checked
        /// across part boundaries included).
        #[test]
        fn parts_merge_as_one_line_at_a_time(
            kinds in proptest::collection::vec(0u8..40, 100..700),
            cut in 0usize..30,
            clean in proptest::bool::ANY,
        ) {
            let mut text = Vec::new();
            let mut index = 0u64;
            for k in kinds {
                // Clean texts have no malformed line and no index out of order.
                let k = if clean && (k == 2 || k == 3) { 6 } else { k };
                let line = match k {
                    0 => String::new(),
                    1 => "   ".to_owned(),
                    2 => r#"{"index":oops}"#.to_owned(),
                    3 => format!(r#"{{"index":{},"time_ns":0,"process":1,"type":"ok","f":"read","value":null}}"#, index.saturating_sub(1)),
                    4 => format!(r#"{{ "index":{index},"time_ns":0,"process":1,"type":"ok","f":"read","value":null}}"#),
                    _ => format!(r#"{{"index":{index},"time_ns":{k},"process":{k},"type":"invoke","f":"read","key":1,"value":[{k}]}}"#),
                };
                index += 1 + u64::from(k == 5) * 3;
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
            text.truncate(text.len() - cut.min(text.len()));
            let path = Path::new("h.jsonl");
            let want = one_at_a_time(&text, path);
            for threads in [1, 2, 4] {
                proptest::prop_assert_eq!(&read_outcome(&text, path, threads), &want);
            }
        }
    }

    /// An index out of order on any line, part boundaries included, is the same error
    /// on any number of threads; so is a blank line before it.
    #[test]
    fn index_order_is_checked_across_parts() {
        let path = Path::new("h.jsonl");
        for blank in [false, true] {
            for bad in 0..300usize {
                let mut text = String::new();
                for i in 0..300usize {
                    if blank && i + 1 == bad {
                        text.push('\n');
                        continue;
                    }
                    let index = if i == bad { i.saturating_sub(2) } else { i };
                    text.push_str(&format!(
                        "{{\"index\":{index},\"time_ns\":0,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":null}}\n"
                    ));
                }
                let want = one_at_a_time(text.as_bytes(), path);
                assert_eq!(want.is_err(), bad > 0 && !(blank && bad == 1), "{bad}");
                for threads in [1, 2, 4] {
                    assert_eq!(read_outcome(text.as_bytes(), path, threads), want, "{bad}");
                }
            }
        }
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
