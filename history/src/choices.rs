//! `Choices`: a closed set of named values — a setting a user spells on the command line,
//! in a matrix file or in `config.json` (`--model leaderless`, `--reads ryw`).
//!
//! The crate that owns such a type implements `FromStr` (an error naming the accepted
//! spellings), `Display` and serde with the same spellings, and lists them here once, with
//! one line of help each; the runner builds its flag parser and `--help` from that list,
//! so no other crate keeps a copy of the type.

/// A type whose values are named: `CHOICES` lists every spelling `FromStr` accepts, in the
/// order `--help` shows them, with one line of help each (`""` for none).
pub trait Choices: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static {
    const CHOICES: &'static [(&'static str, &'static str)];

    /// `a, b or c`: the accepted spellings, for an error line.
    fn expected() -> String {
        expected(Self::CHOICES)
    }
}

/// `a, b or c` from a list of (spelling, help).
pub fn expected(choices: &[(&str, &str)]) -> String {
    let names: Vec<&str> = choices.iter().map(|&(name, _)| name).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn expected_lists_in_words() {
        assert_eq!(super::expected(&[("a", "")]), "a");
        assert_eq!(super::expected(&[("a", ""), ("b", "x")]), "a or b");
        assert_eq!(
            super::expected(&[("a", ""), ("b", ""), ("c", "")]),
            "a, b or c"
        );
    }
}
