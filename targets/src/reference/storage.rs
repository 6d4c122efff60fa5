//! The one durable log of a reference node, for every model: an append-only file of
//! records, each model with its own record format (`Codec`), and the per-model `Store`
//! that turns a machine's `Output::Persist` records into writes and rebuilds its disk image
//! (`Machine::Durable`) at start.
//!
//! Guarantees of `Log`: under `Durability::Fsync`, `append` hands a whole batch to the
//! kernel in one write(2) and fdatasyncs it before returning, so the shell can reply after
//! it; under `Durability::Buffered` a codec that holds records (`HOLDS_WHEN_BUFFERED`)
//! only adds them to an in-memory buffer that `flush` (called by the shell every
//! `flush_ms`) writes out, so a SIGKILL loses the unflushed tail — acknowledged records
//! included, which is the point of the knob — and one that does not writes them at once
//! without fdatasync. `open` reads back every intact record, and at the first torn,
//! corrupt or out-of-order record it truncates the file there (a kill mid-write leaves at
//! most one torn record), so later appends follow a valid prefix.
//!
//! Formats (unchanged from before the one log):
//! - leader-follower, `<data_dir>/log.bin`: one checksummed record per entry, little-endian
//!   `len: u32` (payload bytes, 33) · `crc32: u32` (IEEE, of the payload) · payload
//!   `lsn: u64, epoch: u64, key: u64, tag: u8, operand: i64`; `truncate` cuts a
//!   conflicting suffix (records are fixed-size, so LSN n ends at byte 41·n);
//!   `<data_dir>/meta.json` holds the epoch and vote (written to a temporary file, synced
//!   and renamed, whatever the durability: votes are rare and must not be forgotten);
//! - multi-leader and leaderless, `<data_dir>/state.jsonl`: one `[key, state]` line per
//!   persisted key state, later lines replacing earlier ones.

use super::Durability;
use super::context::Logger;
use super::leader_follower::{Effect, Entry, LeaderFollower, LogDisk, LogOp, Meta};
use super::versioned::KeyState;
use crate::error::TargetError;
use schism_history::Key;
use schism_replication::Machine;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

const PAYLOAD_BYTES: usize = 33;
const RECORD_BYTES: usize = 8 + PAYLOAD_BYTES;

/// A record format of the log.
pub trait Codec {
    type Record;
    /// The file name inside the data directory.
    const FILE: &'static str;
    /// Under `Durability::Buffered`, keep records in memory until `flush` (else write them
    /// at once, without fdatasync).
    const HOLDS_WHEN_BUFFERED: bool;
    fn encode(record: &Self::Record, out: &mut Vec<u8>) -> Result<(), TargetError>;
    /// Decodes records until the end or the first bad one: (records, bytes of valid
    /// prefix, why decoding stopped early).
    fn decode_all(bytes: &[u8]) -> (Vec<Self::Record>, usize, Option<String>);
}

/// The open log of one node.
#[derive(Debug)]
pub struct Log<C: Codec> {
    file: File,
    path: PathBuf,
    durability: Durability,
    buf: Vec<u8>,
    /// Encoded records not yet written to the file (buffered durability).
    pending: Vec<u8>,
    /// Bytes in the file.
    file_bytes: u64,
    codec: PhantomData<C>,
}

/// What `Log::open` found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered<R = Entry> {
    pub entries: Vec<R>,
    /// Bytes cut from the end of the file, and why (`None`: the file was intact).
    pub truncated: Option<(u64, String)>,
}

/// The leader-follower log file.
pub type LogFile = Log<EntryCodec>;

impl<C: Codec> Log<C> {
    /// Opens (creating if needed) `<dir>/<C::FILE>`, creating `dir` too.
    pub fn open(
        dir: &Path,
        durability: Durability,
    ) -> Result<(Log<C>, Recovered<C::Record>), TargetError> {
        std::fs::create_dir_all(dir).map_err(|source| TargetError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(C::FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|source| TargetError::DataDir {
                path: path.clone(),
                source,
            })?;
        let io = |source| TargetError::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (entries, valid_len, why) = C::decode_all(&bytes);
        let truncated = match why {
            Some(why) => {
                file.set_len(valid_len as u64).map_err(io)?;
                Some(((bytes.len() - valid_len) as u64, why))
            }
            None => None,
        };
        let log = Log {
            file,
            path,
            durability,
            buf: Vec::with_capacity(64 * RECORD_BYTES),
            pending: Vec::with_capacity(64 * RECORD_BYTES),
            file_bytes: valid_len as u64,
            codec: PhantomData,
        };
        Ok((log, Recovered { entries, truncated }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> TargetError {
        TargetError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Fsync: writes `records` with one write(2), then fdatasyncs. Buffered: keeps them in
    /// memory until the next `flush` (or writes them at once, by the codec).
    pub fn append(&mut self, records: &[C::Record]) -> Result<(), TargetError> {
        let buffered = self.durability == Durability::Buffered;
        if buffered && C::HOLDS_WHEN_BUFFERED {
            for r in records {
                C::encode(r, &mut self.pending)?;
            }
            return Ok(());
        }
        self.buf.clear();
        for r in records {
            C::encode(r, &mut self.buf)?;
        }
        self.file.write_all(&self.buf).map_err(|e| self.io(e))?;
        self.file_bytes += self.buf.len() as u64;
        if buffered {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.io(e))
    }

    /// Writes the buffered records to the file (no sync): what a SIGKILL can no longer lose.
    pub fn flush(&mut self) -> Result<(), TargetError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending).map_err(|e| self.io(e))?;
        self.file_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Keeps the first `keep_bytes` of the log, buffered or written.
    fn truncate_bytes(&mut self, keep_bytes: u64) -> Result<(), TargetError> {
        if keep_bytes >= self.file_bytes {
            self.pending
                .truncate((keep_bytes - self.file_bytes) as usize);
            return Ok(());
        }
        self.pending.clear();
        self.file.set_len(keep_bytes).map_err(|e| self.io(e))?;
        self.file_bytes = keep_bytes;
        if self.durability == Durability::Fsync {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

impl Log<EntryCodec> {
    /// Keeps LSNs `1..=keep` and drops the rest, buffered or written.
    pub fn truncate(&mut self, keep: u64) -> Result<(), TargetError> {
        self.truncate_bytes(keep * RECORD_BYTES as u64)
    }
}

/// How a model's machine meets the disk: opening rebuilds its `Durable` image (logging
/// what was found), `write` carries out a batch of `Persist` records in order, `flush`
/// writes out what buffered durability holds.
pub trait Store<M: Machine>: Sized + Send + 'static {
    fn open(
        dir: &Path,
        durability: Durability,
        logger: &Logger,
    ) -> Result<(Self, M::Durable), TargetError>;
    fn write(&mut self, records: &[M::Persist]) -> Result<(), TargetError>;
    fn flush(&mut self) -> Result<(), TargetError>;
}

/// The leader-follower store: the entry log plus `meta.json`.
#[derive(Debug)]
pub struct EntryStore {
    log: LogFile,
    dir: PathBuf,
    /// Entries of consecutive appends, written with one write(2).
    batch: Vec<Entry>,
}

impl Store<LeaderFollower> for EntryStore {
    fn open(
        dir: &Path,
        durability: Durability,
        logger: &Logger,
    ) -> Result<(Self, LogDisk), TargetError> {
        let (log, recovered) = LogFile::open(dir, durability)?;
        if let Some((bytes, why)) = &recovered.truncated {
            logger.line(format_args!("log: cut {bytes} bytes from the end ({why})"));
        }
        logger.line(format_args!(
            "log: recovered {} entries from {}",
            recovered.entries.len(),
            log.path().display()
        ));
        let meta = read_meta(dir)?;
        if let Some(m) = &meta {
            logger.line(format_args!(
                "meta: epoch {}, voted for {:?}",
                m.epoch, m.voted_for
            ));
        }
        let store = EntryStore {
            log,
            dir: dir.to_owned(),
            batch: Vec::new(),
        };
        let disk = LogDisk {
            entries: recovered.entries,
            meta,
        };
        Ok((store, disk))
    }

    /// Persisting earlier than asked is always safe, so consecutive appends go out in one
    /// write; a truncation or a vote first writes what came before it.
    fn write(&mut self, records: &[LogOp]) -> Result<(), TargetError> {
        for r in records {
            match r {
                LogOp::Append(entries) => self.batch.extend_from_slice(entries),
                LogOp::Truncate { keep } => {
                    self.write_batch()?;
                    self.log.truncate(*keep)?;
                }
                LogOp::Meta(meta) => {
                    self.write_batch()?;
                    write_meta(&self.dir, meta)?;
                }
            }
        }
        self.write_batch()
    }

    fn flush(&mut self) -> Result<(), TargetError> {
        self.log.flush()
    }
}

impl EntryStore {
    fn write_batch(&mut self) -> Result<(), TargetError> {
        if !self.batch.is_empty() {
            self.log.append(&self.batch)?;
            self.batch.clear();
        }
        Ok(())
    }
}

/// The multi-leader and leaderless store: the key-state log.
pub type StateLog = Log<StateCodec>;

impl<M> Store<M> for StateLog
where
    M: Machine<Persist = Vec<(Key, KeyState)>, Durable = BTreeMap<Key, KeyState>>,
{
    fn open(
        dir: &Path,
        durability: Durability,
        logger: &Logger,
    ) -> Result<(Self, BTreeMap<Key, KeyState>), TargetError> {
        let (log, recovered) = StateLog::open(dir, durability)?;
        if let Some((cut, _)) = recovered.truncated {
            logger.line(format_args!("state log: cut {cut} bytes of a torn tail"));
        }
        let states: BTreeMap<Key, KeyState> = recovered.entries.into_iter().collect();
        logger.line(format_args!("state log: recovered {} keys", states.len()));
        Ok((log, states))
    }

    fn write(&mut self, records: &[Vec<(Key, KeyState)>]) -> Result<(), TargetError> {
        let items: Vec<(Key, KeyState)> = records.iter().flatten().cloned().collect();
        if items.is_empty() {
            return Ok(());
        }
        self.append(&items)
    }

    fn flush(&mut self) -> Result<(), TargetError> {
        Log::flush(self)
    }
}

/// Key states as JSON lines; a torn or unreadable line ends the valid prefix.
#[derive(Debug)]
pub struct StateCodec;

impl Codec for StateCodec {
    type Record = (Key, KeyState);
    const FILE: &'static str = "state.jsonl";
    const HOLDS_WHEN_BUFFERED: bool = false;

    fn encode(record: &(Key, KeyState), out: &mut Vec<u8>) -> Result<(), TargetError> {
        serde_json::to_writer(&mut *out, record)
            .map_err(|e| TargetError::Invalid(e.to_string()))?;
        out.push(b'\n');
        Ok(())
    }

    fn decode_all(bytes: &[u8]) -> (Vec<(Key, KeyState)>, usize, Option<String>) {
        let mut records = Vec::new();
        let mut valid = 0usize;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice::<(Key, KeyState)>(line) {
                Ok(r) => {
                    records.push(r);
                    valid += line.len();
                }
                Err(_) => break,
            }
        }
        let why = (valid < bytes.len()).then(|| "torn or unreadable line".to_owned());
        (records, valid, why)
    }
}

/// Leader-follower entries as fixed-size checksummed records.
#[derive(Debug)]
pub struct EntryCodec;

impl Codec for EntryCodec {
    type Record = Entry;
    const FILE: &'static str = "log.bin";
    const HOLDS_WHEN_BUFFERED: bool = true;

    fn encode(record: &Entry, out: &mut Vec<u8>) -> Result<(), TargetError> {
        encode(record, out);
        Ok(())
    }

    fn decode_all(bytes: &[u8]) -> (Vec<Entry>, usize, Option<String>) {
        decode_all(bytes)
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

    /// A transaction's group of entries (all but the last continuing it) survives a
    /// restart as written, so a restarted node applies it whole.
    #[test]
    fn transaction_groups_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let group = [
            Entry {
                effect: Effect::AppendMore(7),
                ..e(1)
            },
            Entry {
                effect: Effect::WriteMore(-8),
                key: 3,
                ..e(2)
            },
            Entry {
                effect: Effect::Append(9),
                ..e(3)
            },
        ];
        {
            let (mut log, _) = LogFile::open(dir.path(), Durability::Fsync).unwrap();
            log.append(&group).unwrap();
        }
        let (_, rec) = LogFile::open(dir.path(), Durability::Fsync).unwrap();
        assert_eq!(rec.entries, group);
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

    /// What `schism sim` simulates of buffered durability (`Machine::persist_buffered`
    /// and the flush) keeps exactly what this log keeps through a kill, for random
    /// sequences of appends, truncations (within the buffer and below it), votes and
    /// flushes.
    #[test]
    fn buffered_log_and_its_simulation_keep_the_same_records() {
        let logger = Logger {
            id: "n1".into(),
            start: std::time::Instant::now(),
        };
        for seed in 1..=30u64 {
            let dir = tempfile::tempdir().unwrap();
            let (mut store, _) = <EntryStore as Store<LeaderFollower>>::open(
                dir.path(),
                Durability::Buffered,
                &logger,
            )
            .unwrap();
            let (mut disk, mut buffer) = (LogDisk::default(), Vec::new());
            let mut last_lsn = 0u64;
            let mut x = seed;
            let mut draw = |n: u64| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 33) % n
            };
            for step in 0..80u64 {
                let op = match draw(10) {
                    0..=4 => {
                        let n = 1 + draw(3);
                        let op = LogOp::Append((last_lsn + 1..=last_lsn + n).map(e).collect());
                        last_lsn += n;
                        op
                    }
                    5 | 6 => {
                        last_lsn = draw(last_lsn + 1);
                        LogOp::Truncate { keep: last_lsn }
                    }
                    7 => LogOp::Meta(Meta {
                        epoch: step,
                        voted_for: Some("n2".into()),
                    }),
                    _ => {
                        Store::<LeaderFollower>::flush(&mut store).unwrap();
                        for r in buffer.drain(..) {
                            LeaderFollower::persist(&mut disk, &r);
                        }
                        continue;
                    }
                };
                store.write(std::slice::from_ref(&op)).unwrap();
                LeaderFollower::persist_buffered(&mut disk, &mut buffer, &op);
            }
            drop(store); // the kill: the buffer is never flushed
            let (_, recovered) = <EntryStore as Store<LeaderFollower>>::open(
                dir.path(),
                Durability::Buffered,
                &logger,
            )
            .unwrap();
            assert_eq!(recovered, disk, "seed {seed}");
        }
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

    #[test]
    fn state_log_keeps_whole_lines_and_cuts_a_torn_tail() {
        use super::super::multi_leader::MultiLeader;
        use super::super::versioned::{Datum, Version};
        let dir = tempfile::tempdir().unwrap();
        let logger = Logger {
            id: "n1".into(),
            start: std::time::Instant::now(),
        };
        let open = |dir: &Path| {
            <StateLog as Store<MultiLeader>>::open(dir, Durability::Buffered, &logger).unwrap()
        };
        let (mut log, rec) = open(dir.path());
        assert!(rec.is_empty());
        let s = |v| {
            KeyState(vec![Version {
                ts: 1,
                origin: "n1".into(),
                datum: Datum::Int(v),
                clock: Default::default(),
            }])
        };
        log.append(&[(1, s(1)), (2, s(2))]).unwrap();
        log.append(&[(1, s(3))]).unwrap();
        drop(log);
        let path = dir.path().join("state.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"[3,[{\"ts\":").unwrap();
        drop(f);
        let (_, found) = StateLog::open(dir.path(), Durability::Buffered).unwrap();
        assert_eq!(found.truncated.map(|t| t.0), Some(10));
        let (_, rec) = open(dir.path());
        assert_eq!(
            rec.into_iter().collect::<Vec<_>>(),
            vec![(1, s(3)), (2, s(2))]
        );
    }
}
