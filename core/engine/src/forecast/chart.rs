//! SVG line charts for forecast and capacity reports: time on the x axis, one or more lines and
//! shaded bands, horizontal reference lines, axis ticks and a legend. Returns the SVG text.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// A line of the chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub colour: String,
    /// Points; `None` values break the line.
    pub points: Vec<(DateTime<Utc>, Option<f64>)>,
    /// Dashed stroke.
    pub dashed: bool,
}

/// A shaded band between a lower and an upper curve (a prediction interval).
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend label.
    pub label: String,
    /// CSS colour (drawn with transparency).
    pub colour: String,
    /// `(time, lower, upper)`.
    pub points: Vec<(DateTime<Utc>, f64, f64)>,
}

/// A horizontal reference line (a maximum, a quota).
#[derive(Debug, Clone)]
pub struct Threshold {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub colour: String,
    /// The y value.
    pub value: f64,
}

/// A time-series chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the y axis (with its unit).
    pub y_label: String,
    /// Lines, drawn in order over the bands.
    pub lines: Vec<Line>,
    /// Bands, drawn first.
    pub bands: Vec<Band>,
    /// Horizontal reference lines.
    pub thresholds: Vec<Threshold>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;

impl Chart {
    /// Renders the chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let times = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)));
        let (mut t0, mut t1) = (i64::MAX, i64::MIN);
        for t in times {
            t0 = t0.min(t.timestamp());
            t1 = t1.max(t.timestamp());
        }
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1))
            .chain(
                self.bands
                    .iter()
                    .flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2])),
            )
            .chain(self.thresholds.iter().map(|t| t.value))
            .filter(|v| v.is_finite());
        let (mut y0, mut y1) = (0.0f64, f64::MIN);
        for y in ys {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if t0 > t1 {
            (t0, t1) = (0, 1);
        }
        if t1 == t0 {
            t1 = t0 + 1;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        y1 += (y1 - y0) * 0.05;
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x = |t: DateTime<Utc>| LEFT + (t.timestamp() - t0) as f64 / (t1 - t0) as f64 * plot_w;
        let y = |v: f64| TOP + plot_h - (v - y0) / (y1 - y0) * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        // Axes and ticks.
        for i in 0..=5 {
            let v = y0 + (y1 - y0) * f64::from(i) / 5.0;
            let py = y(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                format_number(v)
            );
        }
        let span = t1 - t0;
        for i in 0..=6 {
            let t = t0 + span * i / 6;
            let Some(time) = DateTime::from_timestamp(t, 0) else {
                continue;
            };
            let px = x(time);
            let label = if span > 3 * 86_400 {
                time.format("%Y-%m-%d").to_string()
            } else {
                time.format("%m-%d %H:%M").to_string()
            };
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Bands.
        for band in &self.bands {
            if band.points.is_empty() {
                continue;
            }
            let mut path = String::new();
            for (i, (t, _, upper)) in band.points.iter().enumerate() {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if i == 0 { "M" } else { "L" },
                    x(*t),
                    y(*upper)
                );
            }
            for (t, lower, _) in band.points.iter().rev() {
                let _ = write!(path, "L{:.1},{:.1} ", x(*t), y(*lower));
            }
            let _ = writeln!(
                svg,
                r#"<path d="{path}Z" fill="{}" fill-opacity="0.25" stroke="none"/>"#,
                escape(&band.colour)
            );
        }
        for threshold in &self.thresholds {
            let py = y(threshold.value);
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{}" stroke-dasharray="2 4" stroke-width="1.5"/>"#,
                WIDTH - RIGHT,
                escape(&threshold.colour)
            );
        }
        // Lines, broken at gaps.
        for line in &self.lines {
            let mut path = String::new();
            let mut pen_down = false;
            for (t, v) in &line.points {
                match v.filter(|v| v.is_finite()) {
                    Some(v) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x(*t),
                            y(v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            let dash = if line.dashed {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<path d="{path}" fill="none" stroke="{}" stroke-width="1.3"{dash}/>"#,
                escape(&line.colour)
            );
        }
        // Legend.
        let entries = self
            .lines
            .iter()
            .map(|l| (&l.label, &l.colour, 1.0))
            .chain(self.bands.iter().map(|b| (&b.label, &b.colour, 0.25)))
            .chain(self.thresholds.iter().map(|t| (&t.label, &t.colour, 1.0)));
        let mut lx = LEFT;
        let ly = HEIGHT - 20.0;
        for (label, colour, opacity) in entries {
            let _ = writeln!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="10" fill="{}" fill-opacity="{opacity}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 9.0,
                escape(colour),
                lx + 18.0,
                escape(label)
            );
            lx += 30.0 + 7.0 * label.chars().count() as f64;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn format_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
