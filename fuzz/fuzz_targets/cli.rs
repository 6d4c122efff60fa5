//! The command line parser on arbitrary argument lists (NUL-separated words): parsing
//! succeeds or returns clap's error, never a panic.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args = std::iter::once("schism").chain(text.split('\0'));
    if let Err(e) = schism_runner::cli::Cli::try_parse_from(args) {
        assert!(!e.to_string().is_empty());
    }
});
