//! A stand-alone reference node: `schism-ref-node node --config FILE`.
//!
//! The same entry point as `schism node`, without the runner; the integration tests spawn
//! it because they cannot depend on the runner's binary. Exit status 0 on a clean stop,
//! 2 on bad arguments, 1 on any node error (printed as one line on stderr).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match args.as_slice() {
        [cmd, flag, path] if cmd == "node" && flag == "--config" => PathBuf::from(path),
        _ => {
            eprintln!("usage: schism-ref-node node --config FILE");
            return ExitCode::from(2);
        }
    };
    let result = schism_targets::NodeConfig::from_file(&config).and_then(schism_targets::run_node);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("schism node: {e}");
            ExitCode::FAILURE
        }
    }
}
