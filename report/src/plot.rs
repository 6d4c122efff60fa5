//! SVG charts: plotters (SVG backend) draws the frame, axes, ticks and fault shading;
//! the data layers are appended as compact SVG paths so that a chart's size is bounded
//! by its pixels, not by the number of points.
//!
//! Dense scatter layers are decimated per 2-pixel column: a column with few distinct
//! pixels keeps them all (lossless at this resolution); a crowded one keeps its minimum,
//! maximum and evenly spaced quantiles. Every label that comes from data is escaped.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use std::fmt::Write as _;

use crate::html::{Esc, hex};

/// Pixels kept per crowded 2-pixel column and series.
const MAX_PER_COLUMN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A round dot (ok ops).
    Dot,
    /// A square (failed ops).
    Square,
    /// A larger, lighter dot (indeterminate ops).
    Ring,
    /// A big dot (one point per run).
    Big,
}

#[derive(Debug)]
pub(crate) enum Layer {
    Points {
        color: (u8, u8, u8),
        mark: Mark,
        points: Vec<(f64, f64)>,
    },
    Line {
        color: (u8, u8, u8),
        points: Vec<(f64, f64)>,
        /// Draw as steps (a CDF or a histogram outline).
        dashed: bool,
    },
}

/// A shaded x-interval (fault window) or an instant (a vertical line), with its label.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub x0: f64,
    pub x1: f64,
    pub label: String,
    pub instant: bool,
}

#[derive(Debug)]
pub(crate) struct Chart {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub x_desc: String,
    pub y_desc: String,
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub log_x: bool,
    pub log_y: bool,
    pub bands: Vec<Band>,
}

impl Chart {
    pub(crate) fn new(id: &str, x_desc: &str, y_desc: &str) -> Chart {
        Chart {
            id: id.to_owned(),
            width: 1100,
            height: 320,
            x_desc: x_desc.to_owned(),
            y_desc: y_desc.to_owned(),
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            log_x: false,
            log_y: false,
            bands: Vec::new(),
        }
    }

    /// Sets the ranges from the layers' data (with a little headroom), keeping log axes
    /// strictly positive.
    pub(crate) fn fit(&mut self, layers: &[Layer], x_min: Option<f64>, y_min: Option<f64>) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for l in layers {
            let pts = match l {
                Layer::Points { points, .. } | Layer::Line { points, .. } => points,
            };
            for &(x, y) in pts {
                if x.is_finite() && y.is_finite() {
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
        for b in &self.bands {
            x0 = x0.min(b.x0);
            x1 = x1.max(b.x1);
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        if y0 > y1 {
            (y0, y1) = (0.0, 1.0);
        }
        if let Some(m) = x_min {
            x0 = m.min(x0);
        }
        if let Some(m) = y_min {
            y0 = m.min(y0);
        }
        if self.log_x {
            x0 = x0.max(1e-3) / 1.3;
            x1 = (x1 * 1.3).max(x0 * 3.0);
        } else {
            if x1 - x0 < 1e-9 {
                x1 = x0 + 1.0;
            }
            x1 += (x1 - x0) * 0.01;
        }
        if self.log_y {
            y0 = y0.max(1e-3) * 0.8;
            y1 = y1.max(y0 * 10.0) * 1.3;
        } else {
            if y1 - y0 < 1e-9 {
                y1 = y0 + 1.0;
            }
            y1 += (y1 - y0) * 0.05;
        }
        self.x = (x0, x1);
        self.y = (y0, y1);
    }

    pub(crate) fn render(&self, layers: &[Layer]) -> String {
        let x = self.x.0..self.x.1;
        let y = self.y.0..self.y.1;
        let res = match (self.log_x, self.log_y) {
            (false, false) => self.draw(x, y, layers),
            (false, true) => self.draw(x, y.log_scale(), layers),
            (true, false) => self.draw(x.log_scale(), y, layers),
            (true, true) => self.draw(x.log_scale(), y.log_scale(), layers),
        };
        match res {
            Ok(svg) => format!("<div class=\"plot\" id=\"{}\">{svg}</div>", Esc(&self.id)),
            Err(e) => format!(
                "<p class=\"note\">plot {} could not be drawn: {}</p>",
                Esc(&self.id),
                Esc(&e)
            ),
        }
    }

    fn draw<X, Y>(&self, x: X, y: Y, layers: &[Layer]) -> Result<String, String>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut svg = String::new();
        let mut overlay = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (self.width, self.height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .margin_top(22)
                .margin_right(16)
                .margin_left(8)
                .margin_bottom(6)
                .x_label_area_size(38)
                .y_label_area_size(62)
                .build_cartesian_2d(x, y)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(self.x_desc.as_str())
                .y_desc(self.y_desc.as_str())
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .light_line_style(RGBColor(238, 240, 244))
                .bold_line_style(RGBColor(222, 226, 232))
                .x_labels(12)
                .y_labels(8)
                .draw()
                .map_err(|e| e.to_string())?;
            let area = chart.plotting_area();
            let (y_lo, y_hi) = (self.y.0, self.y.1);
            let map = |px: f64, py: f64| area.map_coordinate(&(px, py));
            let (top, bottom) = (map(self.x.0, y_hi).1, map(self.x.0, y_lo).1);
            // Fault windows and instants, with their labels staggered to stay readable.
            for (i, b) in self.bands.iter().enumerate() {
                let x0 = map(b.x0.max(self.x.0), y_lo).0;
                let x1 = map(b.x1.min(self.x.1), y_lo).0;
                let label_y = top + 11 + (i % 3) as i32 * 11;
                if b.instant || x1 - x0 < 2 {
                    let _ = write!(
                        overlay,
                        "<line x1=\"{x0}\" y1=\"{top}\" x2=\"{x0}\" y2=\"{bottom}\" stroke=\"#9c27b0\" stroke-dasharray=\"3 3\"><title>{}</title></line>",
                        Esc(&b.label)
                    );
                } else {
                    let _ = write!(
                        overlay,
                        "<rect x=\"{x0}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"#e53935\" fill-opacity=\"0.10\" stroke=\"#e53935\" stroke-opacity=\"0.35\"><title>{}</title></rect>",
                        x1 - x0,
                        bottom - top,
                        Esc(&b.label)
                    );
                }
                let _ = write!(
                    overlay,
                    "<text x=\"{}\" y=\"{label_y}\" font-size=\"10\" font-family=\"sans-serif\" fill=\"#8e1c1c\">{}</text>",
                    x0 + 2,
                    Esc(&crate::data::truncate(&b.label, 40))
                );
            }
            for l in layers {
                match l {
                    Layer::Points {
                        color,
                        mark,
                        points,
                    } => {
                        let px: Vec<(i32, i32)> = points
                            .iter()
                            .filter(|p| {
                                p.0 >= self.x.0 && p.0 <= self.x.1 && p.1 >= y_lo && p.1 <= y_hi
                            })
                            .map(|&(a, b)| map(a, b))
                            .collect();
                        let kept = decimate(px);
                        let (width, cap, opacity) = match mark {
                            Mark::Dot => (3, "round", 0.75),
                            Mark::Square => (4, "square", 0.85),
                            Mark::Ring => (6, "round", 0.45),
                            Mark::Big => (11, "round", 0.8),
                        };
                        let _ = write!(
                            overlay,
                            "<path fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" stroke-linecap=\"{cap}\" stroke-opacity=\"{opacity}\" d=\"",
                            hex(*color)
                        );
                        for (x, y) in kept {
                            let _ = write!(overlay, "M{x} {y}h0");
                        }
                        overlay.push_str("\"/>");
                    }
                    Layer::Line {
                        color,
                        points,
                        dashed,
                    } => {
                        let _ = write!(
                            overlay,
                            "<path fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} d=\"",
                            hex(*color),
                            if *dashed {
                                " stroke-dasharray=\"6 3\""
                            } else {
                                ""
                            }
                        );
                        let mut first = true;
                        for &(a, b) in points {
                            if !(a.is_finite() && b.is_finite()) {
                                continue;
                            }
                            let (x, y) = map(a.clamp(self.x.0, self.x.1), b.clamp(y_lo, y_hi));
                            let _ = write!(overlay, "{}{x} {y}", if first { "M" } else { "L" });
                            first = false;
                        }
                        overlay.push_str("\"/>");
                    }
                }
            }
            root.present().map_err(|e| e.to_string())?;
        }
        // Put the data layers inside the SVG, on top of the frame.
        if let Some(end) = svg.rfind("</svg>") {
            svg.insert_str(end, &overlay);
        }
        // Make the SVG scale with the page (plotters may already give a viewBox: an
        // attribute twice is a parse error in HTML, so add only what is missing).
        if let Some(pos) = svg.find("<svg ") {
            let open_tag_end = svg[pos..].find('>').map_or(svg.len(), |e| pos + e);
            let mut attrs = String::from("role=\"img\" ");
            if !svg[pos..open_tag_end].contains("viewBox=") {
                attrs.push_str(&format!("viewBox=\"0 0 {} {}\" ", self.width, self.height));
            }
            svg.insert_str(pos + 5, &attrs);
        }
        Ok(svg)
    }
}

/// Keeps every distinct pixel of sparse columns and min/max/quantiles of crowded ones.
fn decimate(mut px: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    px.sort_unstable_by_key(|&(x, y)| (x / 2, y));
    let mut out = Vec::new();
    let mut i = 0;
    while i < px.len() {
        let col = px[i].0 / 2;
        let mut j = i;
        while j < px.len() && px[j].0 / 2 == col {
            j += 1;
        }
        let group = &px[i..j];
        let mut distinct: Vec<(i32, i32)> = group.to_vec();
        distinct.dedup_by_key(|p| p.1);
        if distinct.len() <= MAX_PER_COLUMN {
            out.extend(distinct.iter().map(|&(_, y)| (col * 2, y)));
        } else {
            let n = group.len();
            let mut last = i32::MIN;
            for k in 0..MAX_PER_COLUMN {
                let rank = if k == MAX_PER_COLUMN - 1 {
                    n - 1
                } else {
                    k * (n - 1) / (MAX_PER_COLUMN - 1)
                };
                let y = group[rank].1;
                if y != last {
                    out.push((col * 2, y));
                    last = y;
                }
            }
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_bounds_columns() {
        let px: Vec<(i32, i32)> = (0..100_000).map(|i| (i % 100, i % 300)).collect();
        let kept = decimate(px);
        assert!(kept.len() <= 50 * MAX_PER_COLUMN, "{}", kept.len());
        // Sparse columns are kept exactly (deduplicated).
        let kept = decimate(vec![(4, 10), (5, 10), (4, 20)]);
        assert_eq!(kept, vec![(4, 10), (4, 20)]);
    }

    #[test]
    fn chart_renders_text_without_fonts() {
        let mut c = Chart::new("t", "time (s)", "latency (ms)");
        c.log_y = true;
        c.bands.push(Band {
            x0: 1.0,
            x1: 2.0,
            label: "<script>x</script>".into(),
            instant: false,
        });
        let layers = vec![Layer::Points {
            color: (1, 2, 3),
            mark: Mark::Dot,
            points: vec![(0.5, 1.0), (2.5, 30.0)],
        }];
        c.fit(&layers, Some(0.0), None);
        let svg = c.render(&layers);
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("latency (ms)"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
    }
}
