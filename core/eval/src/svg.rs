//! Charts as standalone SVG: demand and supply over time, and the cost-versus-risk frontier.
//! Plain text output, no plotting crate; axes, units, labels and a legend on every chart.
//!
//! Layout is computed, not fixed: the legend is measured (font size × each character's width by
//! class, see `text_width`) and the plot gives up the room it needs, so no legend text runs past
//! the right edge; point labels are placed by a greedy collision check (see
//! `place_labels`); the frontier chart's τ_U axis is zoomed on where the settings are (see
//! `tau_axis_max`).

use std::fmt::Write as _;

use super::SeriesPoint;
use super::compare::Frontier;

const WIDTH: f64 = 1000.0;
/// Least height; a long legend makes the chart taller.
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 70.0;
/// Between the plot's right edge and the legend.
const LEGEND_GAP: f64 = 14.0;
/// Between the legend and the SVG's right edge.
const MARGIN: f64 = 8.0;
const LEGEND_PAD: f64 = 8.0;
const LEGEND_ROW: f64 = 20.0;
const SWATCH: f64 = 24.0;
/// Base font size of the charts.
const FONT: f64 = 12.0;
/// Font size of point labels.
const LABEL_FONT: f64 = 10.0;
/// Longer legend entries and point labels are cut with an ellipsis.
const LEGEND_MAX_CHARS: usize = 36;
const LABEL_MAX_CHARS: usize = 32;
const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#393b79", "#637939", "#843c39",
];
/// The most points a line gets; longer series are averaged in buckets.
pub const MAX_POINTS: usize = 1500;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `text` cut to `max` characters, the last an ellipsis.
fn clip_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Estimated width of `text` drawn at `size` px: the sum of each character's advance, by class,
/// in em: narrow (`i`, `l`, `.`, space) 0.34, slim (`f`, `t`, `r`, brackets, `/`, `-`) 0.46,
/// digits and other lower case 0.64, `m`, `w`, `M` and `W` 1.0, other capitals 0.8, and 0.9
/// for anything else (`%`, `τ`, `×`, `▸`); bold 10 % wider. These are DejaVu Sans's widths, the usual face
/// behind `sans-serif`, rounded up: boxes that do not overlap by the estimate do not overlap
/// when drawn, and a legend sized by it is not clipped.
fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 0.34,
            'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '/' | '-' => 0.46,
            'm' | 'w' | 'M' | 'W' => 1.0,
            '0'..='9' | 'a'..='z' => 0.64,
            'A'..='Z' => 0.8,
            _ => 0.9,
        })
        .sum();
    em * size * if bold { 1.1 } else { 1.0 }
}

/// An axis-aligned box in SVG pixels (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounds {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Bounds {
    /// A square of half-side `r` around a point.
    fn around(x: f64, y: f64, r: f64) -> Self {
        Self {
            x0: x - r,
            y0: y - r,
            x1: x + r,
            y1: y + r,
        }
    }
    /// The box of a text line whose left edge is `x` and baseline `baseline`: from the ascender
    /// (0.8 em above the baseline) to the descender (0.25 em below).
    fn text(x: f64, baseline: f64, width: f64, size: f64) -> Self {
        Self {
            x0: x,
            y0: baseline - 0.8 * size,
            x1: x + width,
            y1: baseline + 0.25 * size,
        }
    }
    /// The box made larger by `by` on every side.
    fn grow(&self, by: f64) -> Self {
        Self {
            x0: self.x0 - by,
            y0: self.y0 - by,
            x1: self.x1 + by,
            y1: self.y1 + by,
        }
    }
    fn overlaps(&self, o: &Self) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    fn within(&self, o: &Self) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

/// Step of round axis ticks covering `[lo, hi]` with about `count` of them.
fn nice_step(lo: f64, hi: f64, count: usize) -> f64 {
    let span = (hi - lo).max(1e-9);
    let raw = span / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Round axis ticks covering `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let step = nice_step(lo, hi, count);
    let first = (lo / step).ceil() as i64;
    let mut ticks = Vec::new();
    let mut k = first;
    loop {
        let v = k as f64 * step;
        if v > hi + step * 1e-6 {
            break;
        }
        ticks.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1;
    }
    ticks
}

/// Tick labels with one number of decimals for the whole axis: the fewest that show every
/// tick exactly (1.00, 1.25, 1.50 rather than 1, 1.2, 1.5).
fn tick_labels(ticks: &[f64]) -> Vec<(f64, String)> {
    let decimals = (0..=4usize)
        .find(|&d| {
            let scale = 10f64.powi(d as i32);
            ticks.iter().all(|v| {
                ((v * scale).round() - v * scale).abs() < 1e-6 * (v * scale).abs().max(1.0)
            })
        })
        .unwrap_or(4);
    ticks
        .iter()
        .map(|v| (*v, format!("{v:.decimals$}")))
        .collect()
}

/// A number of per cent, with as many decimals as its size calls for.
fn fmt_percent(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Data ranges mapped onto the plot's box.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    plot: Bounds,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.plot.x0
            + (v - self.x0) / (self.x1 - self.x0).max(1e-12) * (self.plot.x1 - self.plot.x0)
    }
    fn y(&self, v: f64) -> f64 {
        self.plot.y1
            - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (self.plot.y1 - self.plot.y0)
    }
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swatch {
    Line,
    Dashed,
    /// A line with a dot: a frontier.
    LineDot,
    /// A policy's point.
    Diamond,
    /// A point beyond the τ_U axis.
    Arrow,
}

#[derive(Debug, Clone)]
struct Entry {
    label: String,
    color: String,
    swatch: Swatch,
}

impl Entry {
    fn new(label: impl Into<String>, color: &str, swatch: Swatch) -> Self {
        Self {
            label: clip_text(&label.into(), LEGEND_MAX_CHARS),
            color: color.to_owned(),
            swatch,
        }
    }
}

/// Where things go: the SVG's height, the plot's box and the legend's box. The legend is
/// measured and put at the right edge; the plot takes what is left.
#[derive(Debug, Clone, Copy)]
struct Layout {
    height: f64,
    plot: Bounds,
    legend: Bounds,
}

fn layout(entries: &[Entry]) -> Layout {
    let text = entries
        .iter()
        .map(|e| text_width(&e.label, FONT, false))
        .fold(0.0f64, f64::max);
    let width = 2.0 * LEGEND_PAD + SWATCH + 6.0 + text;
    let height = 2.0 * LEGEND_PAD + entries.len() as f64 * LEGEND_ROW;
    let svg_height = HEIGHT.max(TOP + height + BOTTOM);
    let x = WIDTH - MARGIN - width;
    Layout {
        height: svg_height,
        plot: Bounds {
            x0: LEFT,
            y0: TOP,
            x1: x - LEGEND_GAP,
            y1: svg_height - BOTTOM,
        },
        legend: Bounds {
            x0: x,
            y0: TOP,
            x1: x + width,
            y1: TOP + height,
        },
    }
}

fn header(out: &mut String, title: &str, subtitle: &str, height: f64) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="{FONT}">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>
<text x="{LEFT}" y="42" fill="#555">{}</text>
"##,
        escape(title),
        escape(subtitle)
    );
}

fn axes(
    out: &mut String,
    f: &Frame,
    xticks: &[(f64, String)],
    yticks: &[(f64, String)],
    xlabel: &str,
    ylabel: &str,
) {
    let Bounds {
        x0: l,
        y0: t,
        x1: r,
        y1: b,
    } = f.plot;
    for (y, label) in yticks {
        let py = f.y(*y);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l - 6.0,
            py + 4.0,
            escape(label)
        );
    }
    for (x, label) in xticks {
        let px = f.x(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{t}" x2="{px:.1}" y2="{b}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            b + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect class="plot" x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        r - l,
        b - t
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (l + r) / 2.0,
        b + 50.0,
        escape(xlabel)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (t + b) / 2.0,
        escape(ylabel)
    );
}

/// A diamond (a policy's point) centred on `(x, y)`.
fn diamond(out: &mut String, x: f64, y: f64, color: &str) {
    let _ = writeln!(
        out,
        r##"<rect class="policy" x="{:.1}" y="{:.1}" width="9" height="9" fill="{color}" stroke="#000" transform="rotate(45 {x:.1} {y:.1})"/>"##,
        x - 4.5,
        y - 4.5,
    );
}

/// A triangle pointing right whose tip is at `(x, y)`: a point beyond the τ_U axis.
fn arrow(out: &mut String, x: f64, y: f64, color: &str) {
    let _ = writeln!(
        out,
        r##"<path class="beyond" d="M{:.1},{:.1} L{x:.1},{y:.1} L{:.1},{:.1} Z" fill="{color}" stroke="#000" stroke-width="0.6"/>"##,
        x - 10.0,
        y - 6.0,
        x - 10.0,
        y + 6.0,
    );
}

fn legend(out: &mut String, at: Bounds, entries: &[Entry]) {
    let _ = writeln!(
        out,
        r##"<rect class="legend" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" stroke="#ccc"/>"##,
        at.x0,
        at.y0,
        at.x1 - at.x0,
        at.y1 - at.y0
    );
    let x = at.x0 + LEGEND_PAD;
    for (i, e) in entries.iter().enumerate() {
        let y = at.y0 + LEGEND_PAD + (i as f64 + 0.5) * LEGEND_ROW;
        let color = &e.color;
        let dash = if e.swatch == Swatch::Dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        match e.swatch {
            Swatch::Line | Swatch::Dashed | Swatch::LineDot => {
                let _ = write!(
                    out,
                    r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2.5"{dash}/>"#,
                    x + SWATCH,
                );
                if e.swatch == Swatch::LineDot {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#,
                        x + SWATCH / 2.0
                    );
                }
            }
            Swatch::Diamond => {
                let (cx, cy) = (x + SWATCH / 2.0, y);
                let _ = write!(
                    out,
                    r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{color}" stroke="#000" transform="rotate(45 {cx:.1} {cy:.1})"/>"##,
                    cx - 4.5,
                    cy - 4.5,
                );
            }
            Swatch::Arrow => {
                let tip = x + SWATCH / 2.0 + 5.0;
                let _ = write!(
                    out,
                    r##"<path d="M{:.1},{:.1} L{tip:.1},{y:.1} L{:.1},{:.1} Z" fill="{color}" stroke="#000" stroke-width="0.6"/>"##,
                    tip - 10.0,
                    y - 6.0,
                    tip - 10.0,
                    y + 6.0
                );
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + SWATCH + 6.0,
            y + 4.0,
            escape(&e.label)
        );
    }
}

fn polyline(
    out: &mut String,
    points: &[(f64, Option<f64>)],
    f: &Frame,
    color: &str,
    width: f64,
    dashed: bool,
) {
    let dash = if dashed {
        r#" stroke-dasharray="6,4""#
    } else {
        ""
    };
    let mut segment = String::new();
    let flush = |out: &mut String, segment: &mut String| {
        if !segment.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash} points="{}"/>"#,
                segment.trim_end()
            );
            segment.clear();
        }
    };
    for &(x, y) in points {
        match y {
            Some(y) => {
                let _ = write!(segment, "{:.1},{:.1} ", f.x(x), f.y(y));
            }
            None => flush(out, &mut segment),
        }
    }
    flush(out, &mut segment);
}

/// Demand (D, instances needed), ready supply, capacity asked for and, when present, the
/// forecast over time. Long series are averaged in buckets of equal length (said in the
/// subtitle); gaps in the trace break the demand line.
pub fn timeseries(title: &str, subtitle: &str, series: &[SeriesPoint]) -> String {
    let mut out = String::new();
    let bucket = series.len().div_ceil(MAX_POINTS).max(1);
    let subtitle = if bucket > 1 {
        format!("{subtitle} · each point is the mean of {bucket} steps")
    } else {
        subtitle.to_owned()
    };
    let has_forecast = series.iter().any(|p| p.forecast.is_some());
    let mut entries = vec![
        Entry::new("demand D(t)", "#444", Swatch::Line),
        Entry::new("supply S(t) (ready)", COLORS[0], Swatch::Line),
        Entry::new("asked for (incl. booting)", COLORS[4], Swatch::Dashed),
    ];
    if has_forecast {
        entries.push(Entry::new("forecast", COLORS[2], Swatch::Dashed));
    }
    let at = layout(&entries);
    header(&mut out, title, &subtitle, at.height);
    if series.is_empty() {
        out.push_str("</svg>\n");
        return out;
    }
    let t0 = series[0].at.timestamp() as f64;
    let mean =
        |vals: Vec<f64>| (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
    let mut demand = Vec::new();
    let mut ready = Vec::new();
    let mut desired = Vec::new();
    let mut forecast = Vec::new();
    for chunk in series.chunks(bucket) {
        let x = (chunk[0].at.timestamp() as f64 - t0) / 3600.0;
        demand.push((
            x,
            mean(
                chunk
                    .iter()
                    .filter_map(|p| p.needed)
                    .map(f64::from)
                    .collect(),
            ),
        ));
        ready.push((x, mean(chunk.iter().map(|p| f64::from(p.ready)).collect())));
        desired.push((
            x,
            mean(chunk.iter().map(|p| f64::from(p.desired)).collect()),
        ));
        forecast.push((x, mean(chunk.iter().filter_map(|p| p.forecast).collect())));
    }
    let x1 = demand.last().map_or(1.0, |p| p.0).max(1e-9);
    let ymax = demand
        .iter()
        .chain(&ready)
        .chain(&desired)
        .chain(&forecast)
        .filter_map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.05;
    let f = Frame {
        x0: 0.0,
        x1,
        y0: 0.0,
        y1: ymax,
        plot: at.plot,
    };
    let span_days = x1 / 24.0;
    let xticks: Vec<(f64, String)> =
        nice_ticks(0.0, if span_days >= 2.0 { span_days } else { x1 }, 8)
            .into_iter()
            .map(|v| {
                if span_days >= 2.0 {
                    let at = series[0].at + chrono::TimeDelta::seconds((v * 86400.0) as i64);
                    (v * 24.0, at.format("%Y-%m-%d").to_string())
                } else {
                    let at = series[0].at + chrono::TimeDelta::seconds((v * 3600.0) as i64);
                    (v, at.format("%m-%d %H:%M").to_string())
                }
            })
            .collect();
    let yticks = tick_labels(&nice_ticks(0.0, ymax, 6));
    axes(&mut out, &f, &xticks, &yticks, "time (UTC)", "instances");
    polyline(&mut out, &desired, &f, COLORS[4], 1.2, true);
    polyline(&mut out, &demand, &f, "#444", 1.5, false);
    polyline(&mut out, &ready, &f, COLORS[0], 1.8, false);
    if has_forecast {
        polyline(&mut out, &forecast, &f, COLORS[2], 1.5, true);
    }
    legend(&mut out, at.legend, &entries);
    out.push_str("</svg>\n");
    out
}

/// A policy's point on the frontier chart.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyPoint {
    /// Label.
    pub name: String,
    /// τ_U, %.
    pub tau_u: f64,
    /// Cost / cost of O1.
    pub cost_ratio_o1: f64,
}

/// The right end of the frontier chart's τ_U axis (its left end is 0).
///
/// Why a zoomed linear axis with the points beyond it marked at its edge, rather than a log or
/// a broken axis: τ_U is often exactly 0 (O1, O2, the safe end of a sweep on a smooth trace),
/// which a log axis cannot show, and a symmetric-log axis would stretch 0–1 % and crush 1–5 %,
/// the span where a setting is chosen against an SLO, so distances there would mislead. A
/// broken axis has two scales, and the slope of a frontier segment across the break means
/// nothing. Zooming keeps one linear scale where the settings are; a point beyond it is still
/// drawn, as ▸ at the right edge labelled with its τ_U and cost, so nothing is hidden.
///
/// The axis covers the 90th percentile of the τ_U values (nearest rank), then extends over
/// each larger value that follows the one before it without a gap (at most twice it plus one
/// percentage point), so a frontier that runs on evenly is not cut but a lone outlier (a target
/// of 0.95 short of capacity 90 % of the time, a static capacity at 40 %) is; then 8 % of room,
/// and at least 1 %.
fn tau_axis_max(taus: &[f64]) -> f64 {
    let mut v: Vec<f64> = taus
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .map(|t| t.max(0.0))
        .collect();
    v.sort_by(f64::total_cmp);
    let mut hi = if v.is_empty() {
        0.0
    } else {
        v[((v.len() - 1) as f64 * 0.9).round() as usize]
    };
    for &t in &v {
        if t > hi && t <= 2.0 * hi + 1.0 {
            hi = t;
        }
    }
    (hi * 1.08).max(1.0)
}

/// The segment `a`–`b` cut to the box `lo`–`hi` (data coordinates; Liang–Barsky), or `None`
/// when it misses the box. An end inside the box is returned as it was.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    lo: (f64, f64),
    hi: (f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - lo.0),
        (dx, hi.0 - a.0),
        (-dy, a.1 - lo.1),
        (dy, hi.1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| {
        if t <= 0.0 {
            a
        } else if t >= 1.0 {
            b
        } else {
            (a.0 + t * dx, a.1 + t * dy)
        }
    };
    Some((at(t0), at(t1)))
}

/// A line through `points` (in order; `None` breaks it) cut to the frame's ranges. Small boxes
/// every few pixels along it go to `obstacles`, so that labels keep off the line.
fn clipped_line(
    out: &mut String,
    points: &[(f64, Option<f64>)],
    f: &Frame,
    color: &str,
    obstacles: &mut Vec<Bounds>,
) {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    for pair in points.windows(2) {
        let ((xa, Some(ya)), (xb, Some(yb))) = (pair[0], pair[1]) else {
            runs.push(std::mem::take(&mut run));
            continue;
        };
        match clip_segment((xa, ya), (xb, yb), (f.x0, f.y0), (f.x1, f.y1)) {
            Some((s, e)) => {
                if run.last() != Some(&s) {
                    runs.push(std::mem::take(&mut run));
                    run.push(s);
                }
                run.push(e);
            }
            None => runs.push(std::mem::take(&mut run)),
        }
    }
    runs.push(run);
    for run in runs.iter().filter(|r| r.len() >= 2) {
        let px: Vec<(f64, f64)> = run.iter().map(|&(x, y)| (f.x(x), f.y(y))).collect();
        for w in px.windows(2) {
            let (dx, dy) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            let n = ((dx * dx + dy * dy).sqrt() / 4.0).ceil().max(1.0) as usize;
            obstacles.extend((0..=n).map(|k| {
                let t = k as f64 / n as f64;
                Bounds::around(w[0].0 + t * dx, w[0].1 + t * dy, 1.0)
            }));
        }
        let pts: Vec<String> = px.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
    }
}

/// A text to put next to a point.
#[derive(Debug, Clone)]
struct Label {
    text: String,
    /// The point, in pixels.
    x: f64,
    y: f64,
    size: f64,
    bold: bool,
    color: String,
    /// Worth a leader line: a policy's own point, a frontier's ends, a point beyond the axis.
    /// Other labels are dropped when there is no room right next to their point.
    keep: bool,
    /// How far from the point the text keeps (past its marker).
    clear: f64,
}

/// Where a label went.
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// Left end of the text.
    x: f64,
    baseline: f64,
    /// From the point to the text, when the text is not right next to it.
    leader: Option<(f64, f64, f64, f64)>,
}

/// The directions a label is tried in, in order of preference: upper right first (where the
/// charts have always put it), then the other corners and sides.
const DIRECTIONS: [(i8, i8); 8] = [
    (1, -1),
    (1, 1),
    (1, 0),
    (-1, -1),
    (-1, 1),
    (-1, 0),
    (0, -1),
    (0, 1),
];
/// How much further out a label that is kept may go, with a leader line (pixels).
const REACHES: [f64; 8] = [0.0, 10.0, 22.0, 36.0, 54.0, 80.0, 120.0, 170.0];

/// Greedy label placement, in the order given (so the most important first): each label tries
/// the eight positions around its point at its `clear` distance, then, if it is kept, the same
/// directions further out joined to its point by a leader line; the first position inside
/// `area` that overlaps no label placed before it and no marker (`obstacles`) wins. A label
/// with no such position is left out (a kept label only in a chart crowded past reading).
fn place_labels(labels: &[Label], obstacles: &[Bounds], area: Bounds) -> Vec<Option<Placed>> {
    let mut taken: Vec<Bounds> = obstacles.to_vec();
    let mut placed = Vec::with_capacity(labels.len());
    for l in labels {
        let w = text_width(&l.text, l.size, l.bold);
        let h = 1.05 * l.size;
        let reaches: &[f64] = if l.keep { &REACHES } else { &REACHES[..1] };
        let mut found = None;
        'search: for &reach in reaches {
            for (ux, uy) in DIRECTIONS {
                let c = l.clear + reach;
                let x0 = match ux {
                    1 => l.x + c,
                    -1 => l.x - c - w,
                    _ => l.x - w / 2.0,
                };
                // Diagonal: the text sits just above (below) the point's centre, clear of the
                // marker sideways; straight up or down it clears the marker vertically.
                let vertical = if ux == 0 { c } else { reach + 2.0 };
                let y0 = match uy {
                    -1 => l.y - vertical - h,
                    1 => l.y + vertical,
                    _ => l.y - h / 2.0,
                };
                let baseline = y0 + 0.8 * l.size;
                let b = Bounds::text(x0, baseline, w, l.size);
                // A pixel of air around each text, so that rounding in the SVG cannot make
                // two boxes that touch overlap.
                let padded = b.grow(1.0);
                if b.within(&area) && !taken.iter().any(|t| t.overlaps(&padded)) {
                    let leader = (reach > 0.0).then(|| {
                        let (ex, ey) = (l.x.clamp(b.x0, b.x1), l.y.clamp(b.y0, b.y1));
                        let d = ((ex - l.x).powi(2) + (ey - l.y).powi(2)).sqrt().max(1e-9);
                        let s = (l.clear - 2.0).max(0.0) / d;
                        (l.x + (ex - l.x) * s, l.y + (ey - l.y) * s, ex, ey)
                    });
                    taken.push(b);
                    found = Some(Placed {
                        x: x0,
                        baseline,
                        leader,
                    });
                    break 'search;
                }
            }
        }
        placed.push(found);
    }
    placed
}

/// Cost ratio to O1 against τ_U: each baseline's frontier (its settings joined in τ_U order,
/// labelled with the target) and each policy as a point. Lower-left is better.
///
/// The τ_U axis is zoomed on the settings (see `tau_axis_max`): a point beyond it is drawn as
/// ▸ at the right edge, at its cost (or the nearest edge of the cost axis), labelled with both
/// values. Labels are placed so that none overlaps another label, a marker or a line: a policy's
/// own label, the ends of each frontier and the points beyond the axis move out, with a leader
/// line, when there is no room next to their point (and are left out only in a chart crowded
/// past reading); the targets in between are drawn only where there is room.
pub fn frontier(
    title: &str,
    subtitle: &str,
    frontiers: &[Frontier],
    policies: &[PolicyPoint],
) -> String {
    let frontier_color = |i: usize| COLORS[i % COLORS.len()];
    let policy_color = |i: usize| COLORS[(frontiers.len() + i) % COLORS.len()];
    let finite = |tau: f64, cost: f64| tau.is_finite() && cost.is_finite();
    let all: Vec<(f64, f64)> = frontiers
        .iter()
        .flat_map(|f| f.points.iter().map(|p| (p.tau_u, p.cost_ratio_o1)))
        .chain(policies.iter().map(|p| (p.tau_u, p.cost_ratio_o1)))
        .filter(|&(t, c)| finite(t, c))
        .collect();
    let taus: Vec<f64> = all.iter().map(|p| p.0).collect();
    let xmax = tau_axis_max(&taus);
    let inside = |tau: f64| tau <= xmax;
    let beyond = taus.iter().filter(|t| !inside(**t)).count();
    let costs = all.iter().filter(|p| inside(p.0)).map(|p| p.1);
    let ymin = costs.clone().fold(1.0f64, f64::min) * 0.97;
    let ymax = costs.fold(1.0f64, f64::max) * 1.03;

    let mut entries: Vec<Entry> = frontiers
        .iter()
        .enumerate()
        .map(|(i, fr)| {
            Entry::new(
                format!("{} frontier (target)", fr.baseline),
                frontier_color(i),
                Swatch::LineDot,
            )
        })
        .collect();
    for (i, p) in policies.iter().enumerate() {
        if finite(p.tau_u, p.cost_ratio_o1) {
            entries.push(Entry::new(
                p.name.as_str(),
                policy_color(i),
                Swatch::Diamond,
            ));
        }
    }
    entries.push(Entry::new("O1 (cost ratio 1)", "#999", Swatch::Dashed));
    if beyond > 0 {
        entries.push(Entry::new(
            format!("τ_U beyond {} % (values given)", fmt_percent(xmax)),
            "#fff",
            Swatch::Arrow,
        ));
    }
    let at = layout(&entries);
    // The axis starts a little left of 0 so that the many points at τ_U = 0 (the oracles, the
    // safe end of a sweep) are drawn whole, inside the frame.
    let f = Frame {
        x0: -0.02 * xmax,
        x1: xmax,
        y0: ymin,
        y1: ymax,
        plot: at.plot,
    };

    let mut out = String::new();
    header(&mut out, title, subtitle, at.height);
    let xticks = tick_labels(&nice_ticks(0.0, xmax, 8));
    let yticks = tick_labels(&nice_ticks(ymin, ymax, 6));
    axes(
        &mut out,
        &f,
        &xticks,
        &yticks,
        "τ_U: share of time under-provisioned (%)",
        "cost / cost of O1",
    );
    // O1 reference line.
    let _ = writeln!(
        out,
        r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#999" stroke-dasharray="2,3"/>"##,
        f.plot.x0,
        f.plot.x1,
        y = f.y(1.0)
    );

    // Markers first, labels last (on top); every marker is an obstacle for the labels.
    let mut obstacles = vec![Bounds {
        x0: f.plot.x0,
        y0: f.y(1.0) - 0.5,
        x1: f.plot.x1,
        y1: f.y(1.0) + 0.5,
    }];
    // (rank, label): policies first, then the kept frontier labels, then the rest.
    let mut labels: Vec<(u8, Label)> = Vec::new();
    let edge_x = f.plot.x1 - 1.0;
    let edge_y = |cost: f64| f.y(cost.clamp(ymin, ymax));
    for (i, fr) in frontiers.iter().enumerate() {
        let color = frontier_color(i);
        let mut line: Vec<(f64, Option<f64>)> = fr
            .points
            .iter()
            .filter(|p| p.tau_u.is_finite())
            .map(|p| (p.tau_u, Some(p.cost_ratio_o1).filter(|y| y.is_finite())))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        clipped_line(&mut out, &line, &f, color, &mut obstacles);
        let shown: Vec<usize> = (0..fr.points.len())
            .filter(|&k| finite(fr.points[k].tau_u, fr.points[k].cost_ratio_o1))
            .collect();
        for &k in &shown {
            let p = &fr.points[k];
            let end = Some(&k) == shown.first() || Some(&k) == shown.last();
            let label = |text: String, x: f64, y: f64, keep: bool, clear: f64| Label {
                text,
                x,
                y,
                size: LABEL_FONT,
                bold: false,
                color: color.to_owned(),
                keep,
                clear,
            };
            if inside(p.tau_u) {
                let (px, py) = (f.x(p.tau_u), f.y(p.cost_ratio_o1));
                let _ = writeln!(
                    out,
                    r#"<circle class="pt" cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}"/>"#
                );
                obstacles.push(Bounds::around(px, py, 3.5));
                let rank = if end { 1 } else { 2 };
                labels.push((rank, label(format!("{:.2}", p.target), px, py, end, 5.0)));
            } else {
                let py = edge_y(p.cost_ratio_o1);
                arrow(&mut out, edge_x, py, color);
                obstacles.push(Bounds::around(edge_x - 5.0, py, 6.0));
                let text = format!(
                    "{:.2}: τ_U {} %, {:.2}×",
                    p.target,
                    fmt_percent(p.tau_u),
                    p.cost_ratio_o1
                );
                labels.push((1, label(text, edge_x - 5.0, py, true, 7.0)));
            }
        }
    }
    for (i, p) in policies.iter().enumerate() {
        if !finite(p.tau_u, p.cost_ratio_o1) {
            continue;
        }
        let color = policy_color(i);
        let name = clip_text(&p.name, LABEL_MAX_CHARS);
        let (x, y, text, clear) = if inside(p.tau_u) {
            let (px, py) = (f.x(p.tau_u), f.y(p.cost_ratio_o1));
            diamond(&mut out, px, py, color);
            obstacles.push(Bounds::around(px, py, 6.5));
            (px, py, name, 8.0)
        } else {
            let py = edge_y(p.cost_ratio_o1);
            arrow(&mut out, edge_x, py, color);
            obstacles.push(Bounds::around(edge_x - 5.0, py, 6.0));
            let text = format!(
                "{name}: τ_U {} %, {:.2}×",
                fmt_percent(p.tau_u),
                p.cost_ratio_o1
            );
            (edge_x - 5.0, py, text, 7.0)
        };
        labels.push((
            0,
            Label {
                text,
                x,
                y,
                size: FONT,
                bold: true,
                color: color.to_owned(),
                keep: true,
                clear,
            },
        ));
    }
    labels.sort_by_key(|(rank, _)| *rank);
    let labels: Vec<Label> = labels.into_iter().map(|(_, l)| l).collect();
    let area = Bounds {
        x0: f.plot.x0 + 2.0,
        y0: f.plot.y0 + 2.0,
        x1: f.plot.x1 - 2.0,
        y1: f.plot.y1 - 2.0,
    };
    let placed = place_labels(&labels, &obstacles, area);
    for (l, p) in labels.iter().zip(&placed) {
        if let Some(Placed {
            leader: Some((x1, y1, x2, y2)),
            ..
        }) = p
        {
            let _ = writeln!(
                out,
                r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-width="0.8"/>"#,
                l.color
            );
        }
    }
    for (l, p) in labels.iter().zip(&placed) {
        let Some(p) = p else { continue };
        let weight = if l.bold { r#" font-weight="bold""# } else { "" };
        let _ = writeln!(
            out,
            r#"<text class="label" x="{:.1}" y="{:.1}" font-size="{}"{weight} fill="{}">{}</text>"#,
            p.x,
            p.baseline,
            l.size,
            l.color,
            escape(&l.text)
        );
    }
    legend(&mut out, at.legend, &entries);
    let mut foot = "lower left is better: cheaper and less time short of capacity".to_owned();
    if beyond > 0 {
        let _ = write!(
            foot,
            " · the τ_U axis stops at {} %: ▸ marks the {beyond} point{} beyond it",
            fmt_percent(xmax),
            if beyond == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555" font-size="11">{}</text>"##,
        at.height - 4.0,
        escape(&foot)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests;
