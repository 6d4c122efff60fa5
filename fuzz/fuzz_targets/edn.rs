//! The EDN reader on arbitrary bytes: never a panic, and a rejection always names
//! `fuzz.edn:<line>:` and quotes at most `MAX_ERROR_CHARS` characters. An accepted
//! history is paired too (its errors must name the line as well).
#![no_main]

mod located;

use libfuzzer_sys::fuzz_target;
use located::check_located;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.edn");
    let result =
        schism_history::read_edn_bytes(data, path).and_then(|h| h.operations().map(|_| ()));
    if let Err(e) = result {
        check_located(&e.to_string(), "fuzz.edn:");
    }
});
