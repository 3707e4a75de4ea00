//! The rightsizing frontier as standalone SVG: slack against shortfall, CPU and memory side by
//! side. Each swept recommender is a line through its settings (labelled with the value); the
//! other rows (the recommenders as configured, the oracle) are points. Lower left is better.

use std::fmt::Write as _;

use super::score::{RightsizeScore, SweepPoint};

const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 560.0;
const PANEL_WIDTH: f64 = 400.0;
const LEFT: f64 = 80.0;
const GAP: f64 = 90.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 70.0;
/// The lowest slack drawn (a fraction): settings below it are left off the chart.
pub const FLOOR: f64 = -0.5;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-6 {
        ticks.push(v);
        v += step;
    }
    ticks
}

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A swept recommender's line on the chart.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its points, in setting order.
    pub points: &'a [SweepPoint],
}

struct Frame {
    left: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.left + v / self.x1.max(1e-12) * PANEL_WIDTH
    }
    fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }
}

/// (shortfall %, slack %) of a score on one resource.
fn point(s: &RightsizeScore, memory: bool) -> Option<(f64, f64)> {
    let r = if memory { s.memory.as_ref()? } else { &s.cpu };
    // Far-too-small sizes have a slack of −1000 % and more: they stay off the chart.
    (r.slack >= FLOOR).then_some((r.shortfall * 100.0, r.slack * 100.0))
}

/// The chart: `lines` are the swept recommenders, `rows` the single points.
pub fn frontier(
    title: &str,
    subtitle: &str,
    lines: &[Line<'_>],
    rows: &[RightsizeScore],
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>
<text x="{LEFT}" y="42" fill="#555">{}</text>
"##,
        escape(title),
        escape(subtitle)
    );
    let has_memory = rows.iter().any(|r| r.memory.is_some());
    let resources: &[(bool, &str)] = if has_memory {
        &[(false, "CPU"), (true, "memory")]
    } else {
        &[(false, "CPU")]
    };
    for (k, &(memory, label)) in resources.iter().enumerate() {
        let left = LEFT + k as f64 * (PANEL_WIDTH + GAP);
        let all: Vec<(f64, f64)> = lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| point(&p.score, memory)))
            .chain(rows.iter().filter_map(|r| point(r, memory)))
            .collect();
        let xmax = all.iter().map(|p| p.0).fold(1.0f64, f64::max) * 1.08;
        let ymin = all.iter().map(|p| p.1).fold(0.0f64, f64::min);
        let ymax = all.iter().map(|p| p.1).fold(10.0f64, f64::max) * 1.05;
        let f = Frame {
            left,
            x1: xmax,
            y0: ymin,
            y1: ymax,
        };
        let (t, b, r) = (TOP, HEIGHT - BOTTOM, left + PANEL_WIDTH);
        for y in nice_ticks(ymin, ymax, 6) {
            let py = f.y(y);
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left - 6.0,
                py + 4.0,
                fmt_tick(y)
            );
        }
        for x in nice_ticks(0.0, xmax, 6) {
            let px = f.x(x);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{t}" x2="{px:.1}" y2="{b}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                b + 18.0,
                fmt_tick(x)
            );
        }
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{t}" width="{PANEL_WIDTH}" height="{}" fill="none" stroke="#333"/><text x="{:.1}" y="{:.1}" font-weight="bold" text-anchor="middle">{label}</text>"##,
            b - t,
            left + PANEL_WIDTH / 2.0,
            t - 8.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">shortfall: share of steps short (%)</text>"#,
            left + PANEL_WIDTH / 2.0,
            HEIGHT - 28.0
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">slack: mean unused share of the size (%)</text>"#,
            left - 50.0,
            (t + b) / 2.0
        );
        for (i, line) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64, f64)> = line
                .points
                .iter()
                .filter_map(|p| point(&p.score, memory).map(|(x, y)| (x, y, p.value)))
                .collect();
            let path: Vec<String> = pts
                .iter()
                .map(|(x, y, _)| format!("{:.1},{:.1}", f.x(*x), f.y(*y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y, v) in pts {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{v}</text>"#,
                    f.x(x),
                    f.y(y),
                    f.x(x) + 5.0,
                    f.y(y) - 5.0
                );
            }
        }
        for (i, row) in rows.iter().enumerate() {
            let Some((x, y)) = point(row, memory) else {
                continue;
            };
            let color = COLORS[(lines.len() + i) % COLORS.len()];
            let (px, py) = (f.x(x), f.y(y));
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{color}" stroke="#000" transform="rotate(45 {px:.1} {py:.1})"/><text x="{:.1}" y="{:.1}" font-weight="bold" fill="{color}">{}</text>"##,
                px - 4.5,
                py - 4.5,
                px + 8.0,
                py + 14.0,
                escape(&row.name)
            );
        }
    }
    // Legend, under the title.
    let mut x = LEFT;
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let label = format!("{} sweep", line.name);
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="56" x2="{}" y2="56" stroke="{color}" stroke-width="2.5"/><text x="{}" y="60">{}</text>"#,
            x + 20.0,
            x + 25.0,
            escape(&label)
        );
        x += 40.0 + 7.0 * label.len() as f64;
    }
    for (i, row) in rows.iter().enumerate() {
        let color = COLORS[(lines.len() + i) % COLORS.len()];
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="51" width="9" height="9" fill="{color}" stroke="#000"/><text x="{}" y="60">{}</text>"##,
            x + 14.0,
            escape(&row.name)
        );
        x += 30.0 + 7.0 * row.name.len() as f64;
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555" font-size="11">lower left is better: less paid for and unused, fewer steps short · settings with a slack below −50 % are off the chart</text>"##,
        HEIGHT - 6.0
    );
    out.push_str("</svg>\n");
    out
}
