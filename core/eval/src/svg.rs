//! Charts as standalone SVG: demand and supply over time, and the cost-versus-risk frontier.
//! Plain text output, no plotting crate; axes, units, labels and a legend on every chart.

use std::fmt::Write as _;

use super::SeriesPoint;
use super::compare::Frontier;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];
/// The most points a line gets; longer series are averaged in buckets.
pub const MAX_POINTS: usize = 1500;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round axis ticks covering `[lo, hi]`.
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
    if v.abs() >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v - self.x0) / (self.x1 - self.x0).max(1e-12) * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }
}

fn header(out: &mut String, title: &str, subtitle: &str) {
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
}

fn axes(
    out: &mut String,
    f: &Frame,
    xticks: &[(f64, String)],
    yticks: &[f64],
    xlabel: &str,
    ylabel: &str,
) {
    let (l, r, t, b) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    for &y in yticks {
        let py = f.y(y);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l - 6.0,
            py + 4.0,
            fmt_tick(y)
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
        r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        r - l,
        b - t
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (l + r) / 2.0,
        HEIGHT - 20.0,
        escape(xlabel)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (t + b) / 2.0,
        escape(ylabel)
    );
}

fn legend(out: &mut String, entries: &[(String, String, bool)]) {
    let x = WIDTH - RIGHT + 16.0;
    for (i, (label, color, dashed)) in entries.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let dash = if *dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(label)
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
    header(&mut out, title, &subtitle);
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
    let mut has_forecast = false;
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
        let fc = mean(chunk.iter().filter_map(|p| p.forecast).collect());
        has_forecast |= fc.is_some();
        forecast.push((x, fc));
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
    let yticks = nice_ticks(0.0, ymax, 6);
    axes(&mut out, &f, &xticks, &yticks, "time (UTC)", "instances");
    polyline(&mut out, &desired, &f, COLORS[4], 1.2, true);
    polyline(&mut out, &demand, &f, "#444", 1.5, false);
    polyline(&mut out, &ready, &f, COLORS[0], 1.8, false);
    let mut entries = vec![
        ("demand D(t)".to_owned(), "#444".to_owned(), false),
        (
            "supply S(t) (ready)".to_owned(),
            COLORS[0].to_owned(),
            false,
        ),
        (
            "asked for (incl. booting)".to_owned(),
            COLORS[4].to_owned(),
            true,
        ),
    ];
    if has_forecast {
        polyline(&mut out, &forecast, &f, COLORS[2], 1.5, true);
        entries.push(("forecast".to_owned(), COLORS[2].to_owned(), true));
    }
    legend(&mut out, &entries);
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

/// Cost ratio to O1 against τ_U: each baseline's frontier (its settings joined in target order,
/// labelled with the target) and each policy as a point. Lower-left is better.
pub fn frontier(
    title: &str,
    subtitle: &str,
    frontiers: &[Frontier],
    policies: &[PolicyPoint],
) -> String {
    let mut out = String::new();
    header(&mut out, title, subtitle);
    let xs = frontiers
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.tau_u))
        .chain(policies.iter().map(|p| p.tau_u));
    let ys = frontiers
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.cost_ratio_o1))
        .chain(policies.iter().map(|p| p.cost_ratio_o1))
        .filter(|y| y.is_finite());
    let xmax = xs.fold(1.0f64, f64::max) * 1.08;
    let ys: Vec<f64> = ys.collect();
    let ymin = ys.iter().copied().fold(1.0f64, f64::min).min(1.0) * 0.97;
    let ymax = ys.iter().copied().fold(1.0f64, f64::max) * 1.03;
    let f = Frame {
        x0: 0.0,
        x1: xmax,
        y0: ymin,
        y1: ymax,
    };
    let xticks: Vec<(f64, String)> = nice_ticks(0.0, xmax, 8)
        .into_iter()
        .map(|v| (v, fmt_tick(v)))
        .collect();
    let yticks = nice_ticks(ymin, ymax, 6);
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
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#999" stroke-dasharray="2,3"/>"##,
        WIDTH - RIGHT,
        y = f.y(1.0)
    );
    let mut entries = Vec::new();
    for (i, fr) in frontiers.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, Option<f64>)> = fr
            .points
            .iter()
            .map(|p| (p.tau_u, Some(p.cost_ratio_o1).filter(|y| y.is_finite())))
            .collect();
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        polyline(&mut out, &sorted, &f, color, 2.0, false);
        for p in &fr.points {
            if !p.cost_ratio_o1.is_finite() {
                continue;
            }
            let (px, py) = (f.x(p.tau_u), f.y(p.cost_ratio_o1));
            let _ = writeln!(
                out,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{:.2}</text>"#,
                px + 5.0,
                py - 5.0,
                p.target
            );
        }
        entries.push((
            format!("{} frontier (target)", fr.baseline),
            color.to_owned(),
            false,
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        if !p.cost_ratio_o1.is_finite() {
            continue;
        }
        let color = COLORS[(frontiers.len() + i) % COLORS.len()];
        let (px, py) = (f.x(p.tau_u), f.y(p.cost_ratio_o1));
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{color}" stroke="#000" transform="rotate(45 {px:.1} {py:.1})"/><text x="{:.1}" y="{:.1}" font-weight="bold" fill="{color}">{}</text>"##,
            px - 4.5,
            py - 4.5,
            px + 8.0,
            py + 14.0,
            escape(&p.name)
        );
        entries.push((p.name.clone(), color.to_owned(), true));
    }
    entries.push(("O1 (cost ratio 1)".to_owned(), "#999".to_owned(), true));
    legend(&mut out, &entries);
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555" font-size="11">lower left is better: cheaper and less time short of capacity</text>"##,
        HEIGHT - 4.0
    );
    out.push_str("</svg>\n");
    out
}
