//! The EDN reader on arbitrary bytes: never a panic, and a rejection always names
//! `fuzz.edn:<line>:` and quotes at most `MAX_ERROR_CHARS` characters. An accepted
//! history is paired too (its errors must name the line as well).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.edn");
    let result =
        schism_history::read_edn_bytes(data, path).and_then(|h| h.operations().map(|_| ()));
    if let Err(e) = result {
        check_located(&e.to_string(), "fuzz.edn:");
    }
});

fn check_located(e: &str, prefix: &str) {
    let rest = e
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("no {prefix}line: {e}"));
    let (line, msg) = rest
        .split_once(": ")
        .unwrap_or_else(|| panic!("no line: {e}"));
    assert!(line.parse::<usize>().is_ok_and(|l| l >= 1), "no line: {e}");
    assert!(
        msg.chars().count() <= schism_history::MAX_ERROR_CHARS + 1,
        "long: {e}"
    );
}
