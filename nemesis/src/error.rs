//! The errors of the nemesis: each renders as one line that names what to fix.
//!
//! A missing system tool names the Debian package that provides it; a refused fault says
//! why the target cannot take it; leftovers of a killed run name `schism cleanup`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("`{tool}` not found: install the `{package}` package (apt-get install {package})")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },

    #[error("`{cmd}` failed: {msg}")]
    Command { cmd: String, msg: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Target(#[from] schism_targets::TargetError),

    #[error("cannot apply the fault: {0}")]
    Resolve(String),

    #[error("{0}")]
    Unsupported(String),

    /// A fault plan file that cannot be run: `path: what is wrong`.
    #[error("{path}: {msg}")]
    Plan { path: String, msg: String },

    #[error("leftovers of a killed run: {0}; run `schism cleanup`")]
    Leftovers(String),
}

impl NemesisError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> NemesisError {
        NemesisError::Io {
            path: path.into(),
            source,
        }
    }
}
