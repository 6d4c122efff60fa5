//! The JSON Lines reader on arbitrary bytes: never a panic, and a rejection always names
//! `fuzz.jsonl:<line>:` and quotes at most `MAX_ERROR_CHARS` characters. An accepted
//! history is paired too (its errors must name the line as well).
#![no_main]

mod located;

use libfuzzer_sys::fuzz_target;
use located::check_located;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.jsonl");
    let result =
        schism_history::read_jsonl(data, path).and_then(|(h, _)| h.operations().map(|_| ()));
    if let Err(e) = result {
        check_located(&e.to_string(), "fuzz.jsonl:");
    }
});
