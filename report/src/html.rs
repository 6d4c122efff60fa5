//! HTML building blocks: escaping, the page shell with its inline stylesheet, and number
//! formatting. Every string that comes from data goes through `escape` (or `Esc`), which
//! makes it inert text in both element content and quoted attribute values.

use std::fmt::{self, Write as _};

/// Escapes `&`, `<`, `>`, `"` and `'` so the text is inert in element content and in
/// single- or double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    out
}

pub(crate) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Display adapter that escapes: `format!("<td>{}</td>", Esc(&s))`.
pub(crate) struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        push_escaped(&mut s, self.0);
        f.write_str(&s)
    }
}

const CSS: &str = r#"
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#ffffff;--soft:#f5f6f9;
--valid:#1a7f37;--invalid:#c62828;--unknown:#b26a00}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:24px 32px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.muted{color:var(--muted)}
.verdict{display:inline-block;font-weight:700;padding:4px 12px;border-radius:4px;color:#fff;letter-spacing:.04em}
.verdict.valid{background:var(--valid)}.verdict.invalid{background:var(--invalid)}.verdict.unknown{background:var(--unknown)}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;background:var(--soft);border:1px solid var(--line);margin:2px 4px 2px 0;font-size:12px}
.valid-t{color:var(--valid);font-weight:600}.invalid-t{color:var(--invalid);font-weight:600}.unknown-t{color:var(--unknown);font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.witness td{background:#fff3cd;font-weight:600}
td.mono{max-width:520px;overflow-wrap:anywhere}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12px}
details{margin:6px 0}summary{cursor:pointer}
.anomaly{border-left:4px solid var(--invalid);padding:4px 12px;margin:10px 0;background:#fdf6f6}
.plot{margin:8px 0 4px}.plot svg{max-width:100%;height:auto;border:1px solid var(--line);background:#fff}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px;vertical-align:middle}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
a{color:#1f5fbf}
.note{font-size:12px;color:var(--muted)}
"#;

/// A complete page: doctype, charset, title, inline stylesheet, body.
pub(crate) fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    let _ = write!(out, "<title>{}</title><style>{CSS}</style>", Esc(title));
    // Pages are static: no script at all, and a policy that forbids loading anything.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
    );
    out.push_str("</head><body>\n");
    out.push_str(body);
    out.push_str("\n</body></html>\n");
    out
}

pub(crate) fn validity_badge(v: schism_checker::Validity) -> String {
    format!(
        "<span class=\"verdict {}\" id=\"verdict\">{}</span>",
        v.as_str(),
        v.as_str().to_uppercase()
    )
}

/// A number with sensible precision for tables.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

pub(crate) fn opt_num(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "–".into())
}

pub(crate) fn pct(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{:.1}%", x * 100.0),
        _ => "–".into(),
    }
}

/// A fixed palette (colour-blind friendly-ish), indexed cyclically.
pub(crate) const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

pub(crate) fn hex(c: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub(crate) fn legend(items: &[(String, String)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (color, label) in items {
        let _ = write!(
            s,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            Esc(label)
        );
    }
    s.push_str("</div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(format!("{}", Esc("a<b")), "a&lt;b");
    }
}
