//! Dates as a page shows them: to the second. (A target in its own words is made by the
//! runner from its typed `config.json` and reaches this crate as `RunSettings`.)

/// An RFC 3339 time cut to the second (`2026-12-01 15:19:23 UTC`); anything else as given.
pub fn to_the_second(date: &str) -> String {
    let b = date.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' {
        let utc = date.ends_with("+00:00") || date.ends_with('Z');
        format!(
            "{} {}{}",
            &date[..10],
            &date[11..19],
            if utc { " UTC" } else { "" }
        )
    } else {
        date.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_to_the_second() {
        assert_eq!(
            to_the_second("2026-12-01T15:19:23.935869576+00:00"),
            "2026-12-01 15:19:23 UTC"
        );
        assert_eq!(to_the_second("yesterday"), "yesterday");
    }
}
