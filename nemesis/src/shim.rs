//! Clock skew for C servers: the project's own `LD_PRELOAD` shim (`shim/schism_clock.c`).
//!
//! `build` compiles the shim with the system C compiler (`cc`) into a directory the run
//! owns; `ClockFile` is the 24-byte file the shim maps (`offset_ns`, `anchor_ns`, `rate`)
//! and `set` rewrites it in place, so a running server sees the new skew on its next
//! clock read; `env` gives the variables that load the shim into a server. Go binaries
//! (etcd) read the clock through the vDSO and cannot be skewed this way: see
//! `capabilities`. Guarantees: the clock file is registered in the ledger before it is
//! created; a server started with the shim but without a readable file runs on real time.

use crate::error::NemesisError;
use crate::ledger::Ledger;
use crate::sys;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The shim's C source.
pub const SOURCE: &str = include_str!("../shim/schism_clock.c");
/// The environment variable naming the clock file.
pub const CLOCK_FILE_VAR: &str = "SCHISM_CLOCK_FILE";

/// Compiles the shim into `dir/libschism_clock.so` and returns its path.
pub fn build(dir: &Path) -> Result<PathBuf, NemesisError> {
    std::fs::create_dir_all(dir).map_err(|e| NemesisError::io(dir, e))?;
    let src = dir.join("schism_clock.c");
    std::fs::write(&src, SOURCE).map_err(|e| NemesisError::io(&src, e))?;
    let lib = dir.join("libschism_clock.so");
    let (src_s, lib_s) = (src.display().to_string(), lib.display().to_string());
    sys::run(
        "cc",
        &["-O2", "-shared", "-fPIC", "-Wall", "-o", &lib_s, &src_s],
        None,
    )?;
    Ok(lib)
}

/// The environment that loads the shim with its clock file.
pub fn env(lib: &Path, clock_file: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        (CLOCK_FILE_VAR.into(), clock_file.display().to_string()),
    ]
}

/// The file one server's shim reads its skew from.
#[derive(Debug)]
pub struct ClockFile {
    path: PathBuf,
    file: std::fs::File,
}

fn real_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl ClockFile {
    /// Creates the file at real time (offset 0, rate 1), registered in the ledger first.
    pub fn create(ledger: &Ledger, path: &Path) -> Result<ClockFile, NemesisError> {
        ledger.update(|r| r.files.push(path.to_owned()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| NemesisError::io(path, e))?;
        let f = ClockFile {
            path: path.to_owned(),
            file,
        };
        f.set(0, 1.0)?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// From now on the server's wall clock is real time + `offset_ms`, running at `rate`.
    pub fn set(&self, offset_ms: i64, rate: f64) -> Result<(), NemesisError> {
        let mut buf = [0u8; 24];
        buf[0..8].copy_from_slice(&offset_ms.saturating_mul(1_000_000).to_ne_bytes());
        buf[8..16].copy_from_slice(&real_now_ns().to_ne_bytes());
        buf[16..24].copy_from_slice(&rate.to_ne_bytes());
        self.file
            .write_all_at(&buf, 0)
            .map_err(|e| NemesisError::io(&self.path, e))
    }
}
