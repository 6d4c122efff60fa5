//! JSON Lines writer: one op per line, each written whole.
//!
//! Guarantee: after `flush` returns, every appended op is a complete line in the
//! operating system's hands, so a runner killed later loses nothing before that point.
//! The caller decides when to flush (the runner flushes whenever its queue drains).

use crate::Op;
use std::io::Write;

#[derive(Debug)]
pub struct HistoryWriter<W: Write> {
    out: std::io::BufWriter<W>,
    line: Vec<u8>,
    written: u64,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(w: W) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(1 << 16, w),
            line: Vec::with_capacity(256),
            written: 0,
        }
    }

    /// Appends one op as one line. The line is serialized first, so a serialization
    /// error never leaves half a line behind.
    pub fn append(&mut self, op: &Op) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, op)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Ops appended so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{F, OpType, Process, Value, read_jsonl};

    #[test]
    fn written_history_reads_back_identically() {
        let mut w = HistoryWriter::new(Vec::new());
        let ops: Vec<Op> = (0..10)
            .map(|i| {
                Op::new(
                    i,
                    i * 7,
                    Process::client(i % 3),
                    OpType::Invoke,
                    F::Append,
                    Some(i % 2),
                    Value::Int(i as i64),
                )
            })
            .collect();
        for op in &ops {
            w.append(op).unwrap();
        }
        w.flush().unwrap();
        let bytes = w.into_inner().unwrap();
        let (h, warn) = read_jsonl(bytes.as_slice(), std::path::Path::new("mem")).unwrap();
        assert!(warn.is_empty());
        assert_eq!(h.ops, ops);
    }
}
