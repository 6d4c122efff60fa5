//! What every reader fuzz target asserts of a rejection: it names `<file>:<line>:` with a
//! line from 1, and quotes at most `MAX_ERROR_CHARS` characters of input.

pub fn check_located(e: &str, prefix: &str) {
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
