//! The node's append-only log file: `<data_dir>/log.bin`, one checksummed record per entry.
//!
//! Record layout (little-endian): `len: u32` (payload bytes, 33) · `crc32: u32` (IEEE, of
//! the payload) · payload `lsn: u64, epoch: u64, key: u64, tag: u8, operand: i64`.
//! Guarantees: under `Durability::Fsync`, `append` hands a whole batch to the kernel in one
//! write(2) and fdatasyncs it before returning, so the shell can reply after it; under
//! `Durability::Buffered` it only adds the records to an in-memory buffer that `flush`
//! (called by the shell every `flush_ms`) writes out, so a SIGKILL loses the unflushed
//! tail — acknowledged entries included, which is the point of the knob. `truncate` cuts
//! a conflicting suffix (records are fixed-size, so LSN n ends at byte 41·n).
//! `<data_dir>/meta.json` holds the epoch and vote (written to a temporary file, synced
//! and renamed, whatever the durability: votes are rare and must not be forgotten);
//! `open` reads back every intact record, and at the first torn, corrupt or out-of-order
//! record it truncates the file there (a kill mid-write leaves at most one torn record),
//! so later appends follow a valid prefix.

use super::Durability;
use super::leader_follower::{Effect, Entry, Meta};
use crate::error::TargetError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const PAYLOAD_BYTES: usize = 33;
const RECORD_BYTES: usize = 8 + PAYLOAD_BYTES;

/// The open log of one node.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    path: PathBuf,
    durability: Durability,
    buf: Vec<u8>,
    /// Records not yet written to the file (buffered durability).
    pending: Vec<u8>,
    /// Records in the file.
    file_records: u64,
}

/// What `LogFile::open` found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub entries: Vec<Entry>,
    /// Bytes cut from the end of the file, and why (`None`: the file was intact).
    pub truncated: Option<(u64, String)>,
}

impl LogFile {
    /// Opens (creating if needed) `<dir>/log.bin`, creating `dir` too.
    pub fn open(dir: &Path, durability: Durability) -> Result<(LogFile, Recovered), TargetError> {
        std::fs::create_dir_all(dir).map_err(|source| TargetError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("log.bin");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|source| TargetError::DataDir {
                path: path.clone(),
                source,
            })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| TargetError::Io {
                path: path.clone(),
                source,
            })?;
        let (entries, valid_len, why) = decode_all(&bytes);
        let truncated = match why {
            Some(why) => {
                file.set_len(valid_len as u64)
                    .map_err(|source| TargetError::Io {
                        path: path.clone(),
                        source,
                    })?;
                Some(((bytes.len() - valid_len) as u64, why))
            }
            None => None,
        };
        let log = LogFile {
            file,
            path,
            durability,
            buf: Vec::with_capacity(64 * RECORD_BYTES),
            pending: Vec::with_capacity(64 * RECORD_BYTES),
            file_records: entries.len() as u64,
        };
        Ok((log, Recovered { entries, truncated }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsync: writes `entries` with one write(2), then fdatasyncs. Buffered: keeps them in
    /// memory until the next `flush`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), TargetError> {
        if self.durability == Durability::Buffered {
            for e in entries {
                encode(e, &mut self.pending);
            }
            return Ok(());
        }
        self.buf.clear();
        for e in entries {
            encode(e, &mut self.buf);
        }
        self.file
            .write_all(&self.buf)
            .map_err(|source| TargetError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.file_records += entries.len() as u64;
        self.file.sync_data().map_err(|source| TargetError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Writes the buffered records to the file (no sync): what a SIGKILL can no longer lose.
    pub fn flush(&mut self) -> Result<(), TargetError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.pending)
            .map_err(|source| TargetError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.file_records += (self.pending.len() / RECORD_BYTES) as u64;
        self.pending.clear();
        Ok(())
    }

    /// Keeps LSNs `1..=keep` and drops the rest, buffered or written.
    pub fn truncate(&mut self, keep: u64) -> Result<(), TargetError> {
        if keep >= self.file_records {
            let bytes = ((keep - self.file_records) as usize) * RECORD_BYTES;
            self.pending.truncate(bytes);
            return Ok(());
        }
        self.pending.clear();
        let io = |source| TargetError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.set_len(keep * RECORD_BYTES as u64).map_err(io)?;
        self.file_records = keep;
        if self.durability == Durability::Fsync {
            self.file.sync_data().map_err(|source| TargetError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Reads `<dir>/meta.json` (None when absent).
pub fn read_meta(dir: &Path) -> Result<Option<Meta>, TargetError> {
    let path = dir.join("meta.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TargetError::Config {
                path,
                msg: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TargetError::Io { path, source }),
    }
}

/// Writes `<dir>/meta.json` atomically and durably (temporary file, fsync, rename).
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), TargetError> {
    let path = dir.join("meta.json");
    let tmp = dir.join("meta.json.tmp");
    let io = |source| TargetError::Io {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec(meta).map_err(|e| TargetError::Invalid(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_data().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Appends the record of `e` to `out`.
pub fn encode(e: &Entry, out: &mut Vec<u8>) {
    let mut payload = [0u8; PAYLOAD_BYTES];
    payload[0..8].copy_from_slice(&e.lsn.to_le_bytes());
    payload[8..16].copy_from_slice(&e.epoch.to_le_bytes());
    payload[16..24].copy_from_slice(&e.key.to_le_bytes());
    payload[24] = e.effect.tag();
    payload[25..33].copy_from_slice(&e.effect.operand().to_le_bytes());
    out.extend_from_slice(&(PAYLOAD_BYTES as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes records until the end or the first bad one: (entries, bytes of valid prefix,
/// why decoding stopped early).
pub fn decode_all(bytes: &[u8]) -> (Vec<Entry>, usize, Option<String>) {
    let mut entries = Vec::with_capacity(bytes.len() / RECORD_BYTES);
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < RECORD_BYTES {
            return (
                entries,
                at,
                Some(format!("torn record at byte {at} ({} bytes)", rest.len())),
            );
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        let payload = &rest[8..RECORD_BYTES];
        if len != PAYLOAD_BYTES || crc32(payload) != crc {
            return (entries, at, Some(format!("corrupt record at byte {at}")));
        }
        let u = |r: std::ops::Range<usize>| {
            u64::from_le_bytes(payload[r].try_into().unwrap_or_default())
        };
        let operand = i64::from_le_bytes(payload[25..33].try_into().unwrap_or_default());
        let Some(effect) = Effect::from_tag(payload[24], operand) else {
            return (
                entries,
                at,
                Some(format!("unknown effect tag at byte {at}")),
            );
        };
        let e = Entry {
            lsn: u(0..8),
            epoch: u(8..16),
            key: u(16..24),
            effect,
        };
        let expected = entries.len() as u64 + 1;
        if e.lsn != expected {
            return (
                entries,
                at,
                Some(format!(
                    "record at byte {at} has LSN {}, expected {expected}",
                    e.lsn
                )),
            );
        }
        entries.push(e);
        at += RECORD_BYTES;
    }
    (entries, at, None)
}

/// CRC-32 (IEEE 802.3), table-driven.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(lsn: u64) -> Entry {
        Entry {
            lsn,
            epoch: 1,
            key: 9,
            effect: Effect::Append(-(lsn as i64)),
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, rec) = LogFile::open(dir.path(), Durability::Fsync).unwrap();
            assert!(rec.entries.is_empty());
            log.append(&[e(1), e(2)]).unwrap();
            log.append(&[e(3)]).unwrap();
        }
        // Simulate a kill in the middle of writing record 4.
        let path = dir.path().join("log.bin");
        let mut torn = Vec::new();
        encode(&e(4), &mut torn);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..20]).unwrap();
        drop(f);
        let (mut log, rec) = LogFile::open(dir.path(), Durability::Buffered).unwrap();
        assert_eq!(rec.entries, vec![e(1), e(2), e(3)]);
        assert_eq!(rec.truncated.as_ref().unwrap().0, 20);
        log.append(&[e(4)]).unwrap();
        log.flush().unwrap();
        drop(log);
        let (_, rec) = LogFile::open(dir.path(), Durability::Buffered).unwrap();
        assert_eq!(rec.entries.len(), 4);
        assert_eq!(rec.truncated, None);
    }

    #[test]
    fn buffered_loses_the_unflushed_tail_and_truncate_cuts_either() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = LogFile::open(dir.path(), Durability::Buffered).unwrap();
            log.append(&[e(1), e(2)]).unwrap();
            log.flush().unwrap();
            log.append(&[e(3), e(4)]).unwrap();
            // A "kill": the buffer is never flushed.
        }
        let (mut log, rec) = LogFile::open(dir.path(), Durability::Buffered).unwrap();
        assert_eq!(rec.entries, vec![e(1), e(2)]);
        log.append(&[e(3), e(4)]).unwrap();
        log.truncate(3).unwrap(); // within the buffer
        log.flush().unwrap();
        log.truncate(1).unwrap(); // within the file
        log.append(&[e(2)]).unwrap();
        log.flush().unwrap();
        drop(log);
        let (_, rec) = LogFile::open(dir.path(), Durability::Fsync).unwrap();
        assert_eq!(rec.entries, vec![e(1), e(2)]);
        let meta = Meta {
            epoch: 3,
            voted_for: Some("n2".into()),
        };
        write_meta(dir.path(), &meta).unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), Some(meta));
    }

    #[test]
    fn corrupt_record_stops_recovery() {
        let mut bytes = Vec::new();
        for i in 1..=3 {
            encode(&e(i), &mut bytes);
        }
        bytes[RECORD_BYTES + 12] ^= 0xff;
        let (entries, valid, why) = decode_all(&bytes);
        assert_eq!(entries.len(), 1);
        assert_eq!(valid, RECORD_BYTES);
        assert!(why.unwrap().contains("corrupt"));
    }

    #[test]
    fn unwritable_data_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = LogFile::open(&file.join("n1"), Durability::Buffered)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plain-file/n1") && err.contains("--data-dir"),
            "{err}"
        );
    }
}
