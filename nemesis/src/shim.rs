//! Clock skew for C servers: the project's own `LD_PRELOAD` shim (`shim/schism_clock.c`).
//!
//! `build` compiles the shim with the system C compiler (`cc`) into a directory the run
//! owns; `ClockFile` is the 24-byte file the shim maps (`offset_ns`, `anchor_ns`, `rate`)
//! and `set` rewrites it in place, so a running server sees the new skew on its next
//! clock read; `env` gives the variables that load the shim into a server. Go binaries
//! (etcd) read the clock through the vDSO and cannot be skewed this way: see
//! `capabilities`. On a host over SSH, `build_on` uploads the source and compiles it
//! there (the host's own compiler, libc and architecture: a `.so` built here could need a
//! newer glibc than the host has, or be of another architecture), and
//! `ClockFile::create_on` keeps the file in that host's run folder, rewritten in place
//! over SSH (`dd conv=notrunc`: never truncated, so a server mapping it never reads past
//! its end). Guarantees: a local clock file is registered in the ledger before it is
//! created (a remote one lives in the host's run folder, which cleanup removes); a server
//! started with the shim but without a readable file runs on real time.

use crate::error::NemesisError;
use crate::ledger::Ledger;
use crate::sys;
use schism_targets::remote::{Exec, quote};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shim's C source.
pub const SOURCE: &str = include_str!("../shim/schism_clock.c");
/// The environment variable naming the clock file.
pub const CLOCK_FILE_VAR: &str = "SCHISM_CLOCK_FILE";

/// How the shim is compiled, here and on hosts (`cc FLAGS -o lib src`).
const CC_FLAGS: [&str; 4] = ["-O2", "-shared", "-fPIC", "-Wall"];

/// Compiles the shim into `dir/libschism_clock.so` and returns its path.
pub fn build(dir: &Path) -> Result<PathBuf, NemesisError> {
    std::fs::create_dir_all(dir).map_err(|e| NemesisError::io(dir, e))?;
    let src = dir.join("schism_clock.c");
    std::fs::write(&src, SOURCE).map_err(|e| NemesisError::io(&src, e))?;
    let lib = dir.join("libschism_clock.so");
    let (src_s, lib_s) = (src.display().to_string(), lib.display().to_string());
    let mut args = CC_FLAGS.to_vec();
    args.extend(["-o", &lib_s, &src_s]);
    sys::run("cc", &args, None)?;
    Ok(lib)
}

/// Compiles the shim on `exec`'s host into `dir/libschism_clock.so` there (the source
/// uploaded first) and returns its path; a host without a C compiler is one line naming
/// the host and the package.
pub fn build_on(exec: &dyn Exec, dir: &str) -> Result<PathBuf, NemesisError> {
    let d = dir.trim_end_matches('/');
    let (src, lib) = (
        format!("{d}/schism_clock.c"),
        format!("{d}/libschism_clock.so"),
    );
    let script = format!(
        "command -v cc >/dev/null 2>&1 || {{ echo 'no C compiler (cc) on this host: install the Debian package gcc (apt-get install gcc)' >&2; exit 1; }}\n\
         mkdir -p {qd} && cat > {qs} && cc {flags} -o {ql} {qs}",
        flags = CC_FLAGS.join(" "),
        qd = quote(d),
        qs = quote(&src),
        ql = quote(&lib),
    );
    exec.run(&script, Some(SOURCE.as_bytes()))
        .map_err(|e| NemesisError::Command {
            cmd: format!("building the clock shim on {}", exec.name()),
            msg: e.to_string(),
        })?;
    Ok(PathBuf::from(lib))
}

/// The environment that loads the shim with its clock file.
pub fn env(lib: &Path, clock_file: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        (CLOCK_FILE_VAR.into(), clock_file.display().to_string()),
    ]
}

/// The file one server's shim reads its skew from, here or on a host over SSH.
#[derive(Debug)]
pub struct ClockFile {
    path: PathBuf,
    at: At,
}

/// Where a clock file is.
#[derive(Debug)]
enum At {
    Here(std::fs::File),
    Host(Arc<dyn Exec>),
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
            at: At::Here(file),
        };
        f.set(0, 1.0)?;
        Ok(f)
    }

    /// Creates the file at real time on `exec`'s host (its folder must exist: the one
    /// `build_on` made).
    pub fn create_on(exec: Arc<dyn Exec>, path: &str) -> Result<ClockFile, NemesisError> {
        let f = ClockFile {
            path: PathBuf::from(path),
            at: At::Host(exec),
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
        match &self.at {
            At::Here(file) => file
                .write_all_at(&buf, 0)
                .map_err(|e| NemesisError::io(&self.path, e)),
            // The anchor is this machine's time: a host's clock that differs by e moves
            // the skewed time by e * (rate - 1), nothing at rate 1.
            At::Host(exec) => exec
                .run(
                    &format!(
                        "dd of={} bs=24 count=1 iflag=fullblock conv=notrunc status=none",
                        quote(&self.path.display().to_string())
                    ),
                    Some(&buf),
                )
                .map(|_| ())
                .map_err(|e| NemesisError::Command {
                    cmd: format!("setting the clock file on {}", exec.name()),
                    msg: e.to_string(),
                }),
        }
    }
}
