//! The charts' layout: legends inside the SVG, labels that do not overlap, a τ_U axis that
//! an outlier does not squeeze.

use super::*;
use crate::compare::FrontierPoint;

/// The value of attribute `name` in the tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        .parse()
        .unwrap()
}

/// Every element that starts with `open` (up to the end of its line, where the charts end
/// each element).
fn elements<'a>(svg: &'a str, open: &str) -> Vec<&'a str> {
    svg.match_indices(open)
        .map(|(i, _)| {
            let rest = &svg[i..];
            &rest[..rest.find('\n').unwrap_or(rest.len())]
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The drawn point labels: text and the box the chart's own width estimate gives them.
fn label_boxes(svg: &str) -> Vec<(String, Bounds)> {
    elements(svg, r#"<text class="label""#)
        .into_iter()
        .map(|tag| {
            let open_end = tag.find('>').unwrap();
            let text = unescape(&tag[open_end + 1..tag.find("</text>").unwrap()]);
            let size = num(tag, "font-size");
            let bold = attr(tag, "font-weight") == Some("bold");
            let b = Bounds::text(
                num(tag, "x"),
                num(tag, "y"),
                text_width(&text, size, bold),
                size,
            );
            (text, b)
        })
        .collect()
}

fn plot_box(svg: &str) -> Bounds {
    let tag = elements(svg, r#"<rect class="plot""#)[0];
    let (x, y) = (num(tag, "x"), num(tag, "y"));
    Bounds {
        x0: x,
        y0: y,
        x1: x + num(tag, "width"),
        y1: y + num(tag, "height"),
    }
}

fn sweep(baseline: &str, points: &[(f64, f64)]) -> Frontier {
    crate::compare::frontier_of(baseline, points)
}

fn policy(name: &str, tau_u: f64, cost_ratio_o1: f64) -> PolicyPoint {
    PolicyPoint {
        name: name.to_owned(),
        tau_u,
        cost_ratio_o1,
    }
}

/// `hoist evaluate` on the shared wikipedia trace (docs/results.json): both frontiers and
/// most policies on top of each other at τ_U ≈ 0, one HPA setting at 97.5 % and
/// static-mean at 37.5 %.
fn wikipedia() -> (Vec<Frontier>, Vec<PolicyPoint>) {
    let frontiers = vec![
        sweep(
            "hpa",
            &[
                (0.0, 1.99),
                (0.0, 1.812),
                (0.0, 1.66),
                (0.0, 1.535),
                (0.0, 1.422),
                (0.002, 1.328),
                (0.009, 1.244),
                (0.09, 1.172),
                (0.515, 1.113),
                (97.503, 0.696),
            ],
        ),
        sweep(
            "target-tracking",
            &[
                (0.0, 1.982),
                (0.0, 1.804),
                (0.0, 1.655),
                (0.0, 1.529),
                (0.0, 1.421),
                (0.003, 1.327),
                (0.006, 1.245),
                (0.013, 1.173),
                (0.105, 1.109),
                (1.29, 1.051),
            ],
        ),
    ];
    let policies = vec![
        policy("o1", 0.0, 1.0),
        policy("o2", 0.0, 1.001),
        policy("static-mean", 37.453, 1.027),
        policy("quickstart", 0.0, 1.639),
        policy("horizontal-scaling/api", 0.0, 1.54),
        policy("load-based-scaling/consumers", 0.002, 1.328),
        policy("predictive-scaling", 0.044, 1.066),
    ];
    (frontiers, policies)
}

/// Ten settings spread over 0.1–2 % and a policy among them.
fn spread() -> (Vec<Frontier>, Vec<PolicyPoint>) {
    let pts: Vec<(f64, f64)> = (0..10)
        .map(|i| (0.1 + 0.21 * i as f64, 2.0 - 0.1 * i as f64))
        .collect();
    (vec![sweep("hpa", &pts)], vec![policy("mine", 1.0, 1.2)])
}

#[test]
fn the_legend_box_and_its_text_are_inside_the_svg() {
    let (frontiers, mut policies) = wikipedia();
    policies.push(policy(
        "a-policy-file-with-a-very-long-name-that-goes-on/and-a-group",
        0.5,
        1.3,
    ));
    let svg = frontier("t", "s", &frontiers, &policies);
    let width = num(elements(&svg, "<svg")[0], "width");
    let height = num(elements(&svg, "<svg")[0], "height");
    let tag = elements(&svg, r#"<rect class="legend""#)[0];
    let (x, y) = (num(tag, "x"), num(tag, "y"));
    let (w, h) = (num(tag, "width"), num(tag, "height"));
    assert!(x + w <= width, "legend {x} + {w} past the width {width}");
    assert!(y + h <= height, "legend {y} + {h} past the height {height}");
    // Every entry's text ends inside the box.
    let entries = svg[svg.find(r#"<rect class="legend""#).unwrap()..]
        .lines()
        .skip(1);
    let mut n = 0;
    for line in entries.filter(|l| l.contains("<text x=")) {
        let tag = &line[line.find("<text").unwrap()..];
        if tag.contains("font-size=\"11\"") {
            continue; // the footer
        }
        let text = unescape(&tag[tag.find('>').unwrap() + 1..tag.find("</text>").unwrap()]);
        let end = num(tag, "x") + text_width(&text, FONT, false);
        assert!(
            end <= x + w,
            "legend text `{text}` ends at {end}, past {}",
            x + w
        );
        n += 1;
    }
    assert_eq!(n, 2 + policies.len() + 2, "{svg}");
    // The plot does not run under the legend.
    assert!(plot_box(&svg).x1 < x);
    // A legend longer than the plot is tall makes the chart taller, not clipped.
    let many: Vec<PolicyPoint> = (0..40)
        .map(|i| policy(&format!("policy-{i}"), 0.1 * i as f64, 1.1))
        .collect();
    let svg = frontier("t", "s", &frontiers, &many);
    let height = num(elements(&svg, "<svg")[0], "height");
    let tag = elements(&svg, r#"<rect class="legend""#)[0];
    assert!(num(tag, "y") + num(tag, "height") <= height);
}

#[test]
fn the_timeseries_legend_is_inside_the_svg() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
        .unwrap()
        .to_utc();
    let series: Vec<SeriesPoint> = (0..200)
        .map(|i| SeriesPoint {
            at: start + chrono::TimeDelta::minutes(i),
            demand: Some(10.0),
            needed: Some(10),
            ready: 11,
            desired: 12,
            forecast: Some(10.5),
            cost: 0.0,
        })
        .collect();
    let svg = timeseries("t", "s", &series);
    let width = num(elements(&svg, "<svg")[0], "width");
    let tag = elements(&svg, r#"<rect class="legend""#)[0];
    let right = num(tag, "x") + num(tag, "width");
    assert!(right <= width, "legend ends at {right}, past {width}");
    let longest = text_width("asked for (incl. booting)", FONT, false);
    assert!(num(tag, "x") + LEGEND_PAD + SWATCH + 6.0 + longest <= right + 1e-9);
    assert!(svg.contains(">forecast</text>"));
    assert!(plot_box(&svg).x1 < num(tag, "x"));
}

#[test]
fn no_two_drawn_labels_overlap() {
    let (frontiers, policies) = wikipedia();
    let nasa = (
        vec![
            sweep(
                "hpa",
                &[
                    (0.964, 2.734),
                    (1.423, 2.478),
                    (2.183, 2.26),
                    (3.16, 2.07),
                    (4.495, 1.897),
                    (6.164, 1.74),
                    (8.192, 1.604),
                    (10.77, 1.498),
                    (14.462, 1.374),
                    (92.748, 0.208),
                ],
            ),
            sweep(
                "target-tracking",
                &[
                    (4.113, 2.445),
                    (5.095, 2.226),
                    (6.327, 2.08),
                    (7.915, 1.861),
                    (10.227, 1.696),
                    (12.842, 1.582),
                    (15.37, 1.473),
                    (18.68, 1.366),
                    (22.725, 1.251),
                    (25.916, 1.194),
                ],
            ),
        ],
        vec![
            policy("o1", 0.0, 1.0),
            policy("o2", 0.0, 1.249),
            policy("static-mean", 27.225, 1.251),
            policy("quickstart", 1.359, 2.357),
            policy("horizontal-scaling/api", 0.21, 3.113),
            policy("load-based-scaling/consumers", 6.1, 2.918),
            policy("predictive-scaling", 6.504, 1.64),
        ],
    );
    for (frontiers, policies) in [(frontiers, policies), nasa, spread()] {
        let svg = frontier("t", "s", &frontiers, &policies);
        let boxes = label_boxes(&svg);
        assert!(boxes.len() >= policies.len(), "{svg}");
        for (i, (a, ba)) in boxes.iter().enumerate() {
            for (b, bb) in &boxes[i + 1..] {
                assert!(
                    !ba.overlaps(bb),
                    "`{a}` {ba:?} overlaps `{b}` {bb:?}\n{svg}"
                );
            }
        }
        // Every label is inside the plot.
        let plot = plot_box(&svg);
        for (text, b) in &boxes {
            assert!(b.within(&plot), "`{text}` {b:?} outside the plot {plot:?}");
        }
        // Each policy's own label is drawn, and both ends of each frontier.
        let texts: Vec<&str> = boxes.iter().map(|(t, _)| t.as_str()).collect();
        for p in &policies {
            assert!(
                texts.iter().any(|t| t.starts_with(p.name.as_str())),
                "no label for {} in {texts:?}",
                p.name
            );
        }
        for end in ["0.50", "0.95"] {
            let n = texts.iter().filter(|t| t.starts_with(end)).count();
            assert_eq!(n, frontiers.len(), "{end} in {texts:?}");
        }
    }
}

#[test]
fn labels_that_would_collide_move_or_go() {
    let label = |keep: bool| Label {
        text: "0.50".to_owned(),
        x: 100.0,
        y: 100.0,
        size: 10.0,
        bold: false,
        color: "#000".to_owned(),
        keep,
        clear: 5.0,
    };
    let area = Bounds {
        x0: 0.0,
        y0: 0.0,
        x1: 200.0,
        y1: 200.0,
    };
    let boxes = |labels: &[Label], placed: &[Option<Placed>]| -> Vec<Bounds> {
        labels
            .iter()
            .zip(placed)
            .filter_map(|(l, p)| {
                p.map(|p| {
                    Bounds::text(p.x, p.baseline, text_width(&l.text, l.size, l.bold), l.size)
                })
            })
            .collect()
    };
    // Labels that are not kept only go right next to their point: at most eight places, and
    // the ninth on the same point is dropped.
    let loose: Vec<Label> = (0..9).map(|_| label(false)).collect();
    let placed = place_labels(&loose, &[], area);
    assert!(placed.iter().flatten().count() <= 8);
    assert!(placed[8].is_none());
    assert!(placed.iter().flatten().all(|p| p.leader.is_none()));
    // Kept labels move further out, with a leader line, and all find room.
    let kept: Vec<Label> = (0..12).map(|_| label(true)).collect();
    let placed = place_labels(&kept, &[], area);
    assert!(placed.iter().all(Option::is_some), "{placed:?}");
    assert!(placed.iter().flatten().any(|p| p.leader.is_some()));
    // None overlaps another, nor the marker in the way.
    let marker = Bounds::around(100.0, 100.0, 4.0);
    for set in [
        (&loose, place_labels(&loose, &[marker], area)),
        (&kept, placed),
    ] {
        let b = boxes(set.0, &set.1);
        for (i, x) in b.iter().enumerate() {
            assert!(!x.overlaps(&marker));
            assert!(x.within(&area));
            for y in &b[i + 1..] {
                assert!(!x.overlaps(y), "{x:?} overlaps {y:?}");
            }
        }
    }
}

#[test]
fn an_outlier_does_not_squeeze_the_others() {
    let (frontiers, policies) = spread();
    let x_of = |svg: &str, tau_px: usize| -> f64 {
        let circles = elements(svg, r#"<circle class="pt""#);
        num(circles[tau_px], "cx")
    };
    let alone = frontier("t", "s", &frontiers, &policies);
    let plot = plot_box(&alone);
    let last = x_of(&alone, 9);
    // Without an outlier the range ends near the largest τ_U (2.0 %).
    assert!(
        last > plot.x0 + 0.8 * (plot.x1 - plot.x0),
        "{last} in {plot:?}"
    );
    assert!(!alone.contains(r#"class="beyond""#));
    // One setting at 90 %: the other points keep their places.
    let mut with = frontiers.clone();
    with[0].points.push(FrontierPoint {
        target: 0.99,
        tau_u: 90.0,
        cost_ratio_o1: 0.5,
    });
    let svg = frontier("t", "s", &with, &policies);
    let plot = plot_box(&svg);
    let moved = x_of(&svg, 9);
    assert!(
        moved > plot.x0 + 0.8 * (plot.x1 - plot.x0),
        "τ_U 2 % drawn at {moved} in {plot:?}"
    );
    // It is drawn at the right edge, labelled with its values, and the footer says so.
    let arrows = elements(&svg, r#"<path class="beyond""#);
    assert_eq!(arrows.len(), 1, "{svg}");
    assert!(svg.contains("0.99: τ_U 90 %, 0.50×"), "{svg}");
    assert!(svg.contains("▸ marks the 1 point beyond it"), "{svg}");
    // The cost axis is not stretched down to the outlier's 0.5 either: its lowest tick is
    // above 0.9.
    let lowest = elements(&svg, "<line x1=")
        .into_iter()
        .filter(|l| l.contains(r#"text-anchor="end""#))
        .map(|l| {
            let t = &l[l.find("<text").unwrap()..];
            t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]
                .parse::<f64>()
                .unwrap()
        })
        .fold(f64::INFINITY, f64::min);
    assert!(lowest > 0.9, "lowest cost tick {lowest}");
    // Policies beyond the axis are marked too.
    let far = [policy("far-policy", 60.0, 1.1)];
    let svg = frontier("t", "s", &frontiers, &[&policies[..], &far[..]].concat());
    assert!(svg.contains("far-policy: τ_U 60 %, 1.10×"), "{svg}");
}

#[test]
fn the_tau_axis_covers_an_even_spread_and_cuts_a_gap() {
    // Evenly spread to 30 %: nothing cut.
    let even: Vec<f64> = (0..=30).map(f64::from).collect();
    assert!(tau_axis_max(&even) >= 30.0);
    // The shared wikipedia trace: everything sensible within 1.3 %, two outliers.
    let (frontiers, policies) = wikipedia();
    let taus: Vec<f64> = frontiers
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.tau_u))
        .chain(policies.iter().map(|p| p.tau_u))
        .collect();
    let end = tau_axis_max(&taus);
    assert!((1.29..=3.0).contains(&end), "{end}");
    // All at zero, or nothing: a 1 % axis.
    assert_eq!(tau_axis_max(&[0.0, 0.0]), 1.0);
    assert_eq!(tau_axis_max(&[]), 1.0);
    assert_eq!(tau_axis_max(&[f64::NAN, f64::INFINITY]), 1.0);
}

#[test]
fn segments_are_clipped_to_the_box() {
    let lo = (0.0, 0.0);
    let hi = (10.0, 10.0);
    let inside = ((1.0, 1.0), (2.0, 3.0));
    assert_eq!(clip_segment(inside.0, inside.1, lo, hi), Some(inside));
    let (s, e) = clip_segment((5.0, 5.0), (15.0, 0.0), lo, hi).unwrap();
    assert_eq!(s, (5.0, 5.0));
    assert!(
        (e.0 - 10.0).abs() < 1e-9 && (e.1 - 2.5).abs() < 1e-9,
        "{e:?}"
    );
    assert_eq!(clip_segment((11.0, 1.0), (20.0, 5.0), lo, hi), None);
}

#[test]
fn tick_labels_share_their_decimals() {
    let labels =
        |ticks: &[f64]| -> Vec<String> { tick_labels(ticks).into_iter().map(|t| t.1).collect() };
    assert_eq!(
        labels(&[1.0, 1.25, 1.5, 1.75, 2.0]),
        ["1.00", "1.25", "1.50", "1.75", "2.00"]
    );
    assert_eq!(
        labels(&nice_ticks(0.0, 60.0, 6)),
        ["0", "10", "20", "30", "40", "50", "60"]
    );
    // Steps of 0.1 add up to 0.30000000000000004 and the like: still one decimal.
    assert_eq!(
        labels(&nice_ticks(0.0, 0.5, 5)),
        ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5"]
    );
}
