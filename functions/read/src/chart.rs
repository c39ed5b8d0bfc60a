//! A day of glucose as an SVG chart a clinician can open in a browser: local time 0–24 h
//! across, mmol/L 0–22 up, the 3.9–10.0 target band shaded, the device's own low/high alert
//! thresholds dashed, invalid (warm-up) readings as hollow markers, and the line broken
//! wherever readings are missing (a gap longer than two sensor intervals), so lost data is
//! never drawn over.
//!
//! Plain SVG 1.1 text, no script, no external references; every element that carries
//! meaning has a class (`target-band`, `glucose-run`, `invalid-reading`, `threshold-low`,
//! `threshold-high`, `x-label`, `y-label`, `axis-title`) so tests and stylesheets can find it.
//! Pure functions: no storage, no HTTP.

use cgm_agp::svg::xml_escape;
use cgm_domain::gaps::{DEFAULT_INCRE_MINUTE, usable_interval};
use std::fmt::Write as _;

pub const WIDTH: f64 = 1200.0;
pub const HEIGHT: f64 = 700.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 1160.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 620.0;
pub const Y_MAX_MMOL: f64 = 22.0;
pub const TARGET_LOW: f64 = 3.9;
pub const TARGET_HIGH: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    pub at_ms: i64,
    pub mmol: f64,
    pub valid: bool,
    pub incre_minute: Option<u64>,
}

pub struct ChartInput<'a> {
    pub device_sn: &'a str,
    /// The local day, as shown in the title (`YYYY-MM-DD`).
    pub day: &'a str,
    /// The zone the day is in (`+08:00`, `Asia/Shanghai`).
    pub zone: &'a str,
    pub day_start_ms: i64,
    pub day_end_ms: i64,
    pub points: &'a [ChartPoint],
    /// The device's alert thresholds, mmol/L, when it sent them as numbers.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The grid's hours and the instant (ms) each is that day: on a 23- or 25-hour day they
    /// are not `h/24` of the width. An hour the clocks skip is left out.
    pub hour_marks: &'a [(u32, i64)],
}

/// The hours the grid marks.
pub const GRID_HOURS: [u32; 9] = [0, 3, 6, 9, 12, 15, 18, 21, 24];

/// The valid readings in time order, split wherever the next one comes more than two
/// intervals (the earlier reading's `increMinute`, default 3) after the one before.
pub fn runs(points: &[ChartPoint]) -> Vec<Vec<ChartPoint>> {
    let mut valid: Vec<ChartPoint> = points.iter().filter(|p| p.valid).copied().collect();
    valid.sort_by_key(|p| p.at_ms);
    let mut out: Vec<Vec<ChartPoint>> = Vec::new();
    for p in valid {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|prev| p.at_ms.saturating_sub(prev.at_ms) <= max_step_ms(prev)) => {
                run.push(p)
            }
            _ => out.push(vec![p]),
        }
    }
    out
}

fn max_step_ms(p: &ChartPoint) -> i64 {
    let incre = usable_interval(p.incre_minute).unwrap_or(DEFAULT_INCRE_MINUTE);
    2 * incre as i64 * 60_000
}

pub fn x_of(at_ms: i64, start_ms: i64, end_ms: i64) -> f64 {
    let span = (end_ms as f64 - start_ms as f64).max(1.0);
    LEFT + ((at_ms as f64 - start_ms as f64) / span).clamp(0.0, 1.0) * (RIGHT - LEFT)
}

/// Values above the axis are drawn at its top (the tooltip keeps the real value).
pub fn y_of(mmol: f64) -> f64 {
    BOTTOM - (mmol.clamp(0.0, Y_MAX_MMOL) / Y_MAX_MMOL) * (BOTTOM - TOP)
}

pub fn render(c: &ChartInput<'_>) -> String {
    let mut s = String::with_capacity(16 * 1024 + c.points.len() * 64);
    let x = |t: i64| x_of(t, c.day_start_ms, c.day_end_ms);
    let day_hours = (c.day_end_ms - c.day_start_ms) as f64 / 3_600_000.0;
    let device = xml_escape(c.device_sn);
    let zone = xml_escape(c.zone);
    let day = xml_escape(c.day);

    let _ = write!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">
<title>Glucose, iCan {device}, {day} ({zone})</title>
<rect class="background" x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>
<text class="chart-title" x="{LEFT}" y="32" font-size="18" font-weight="bold">iCan {device}: glucose on {day}</text>
"##
    );
    let band_top = y_of(TARGET_HIGH);
    let band_height = y_of(TARGET_LOW) - band_top;
    let _ = writeln!(
        s,
        r##"<rect class="target-band" x="{LEFT}" y="{band_top:.1}" width="{w:.1}" height="{band_height:.1}" fill="#d9f2d9"><title>Target range 3.9–10.0 mmol/L</title></rect>"##,
        w = RIGHT - LEFT
    );

    // Grid and axis labels.
    for v in (0..=Y_MAX_MMOL as u32).step_by(2) {
        let y = y_of(f64::from(v));
        let _ = writeln!(
            s,
            r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#e4e4e4" stroke-width="1"/><text class="y-label" x="{lx}" y="{ty:.1}" text-anchor="end">{v}</text>"##,
            lx = LEFT - 8.0,
            ty = y + 4.0
        );
    }
    for &(h, at_ms) in c.hour_marks {
        let xh = x(at_ms);
        let _ = writeln!(
            s,
            r##"<line class="grid" x1="{xh:.1}" y1="{TOP}" x2="{xh:.1}" y2="{BOTTOM}" stroke="#e4e4e4" stroke-width="1"/><text class="x-label" x="{xh:.1}" y="{ly}" text-anchor="middle">{h:02}:00</text>"##,
            ly = BOTTOM + 20.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect class="plot-frame" x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#888888" stroke-width="1"/>"##,
        w = RIGHT - LEFT,
        h = BOTTOM - TOP
    );
    let _ = writeln!(
        s,
        r##"<text class="axis-title" x="24" y="{my:.1}" text-anchor="middle" transform="rotate(-90 24 {my:.1})">mmol/L</text>"##,
        my = (TOP + BOTTOM) / 2.0
    );
    let hours_note =
        if (day_hours - 24.0).abs() > 0.01 { format!(", a {day_hours:.0}-hour day") } else { String::new() };
    let _ = writeln!(
        s,
        r##"<text class="axis-title" x="{mx:.1}" y="{ty}" text-anchor="middle">Local time ({zone}{hours_note})</text>"##,
        mx = (LEFT + RIGHT) / 2.0,
        ty = BOTTOM + 45.0
    );

    // Valid readings: one polyline per continuous run.
    let runs = runs(c.points);
    for run in &runs {
        let pts: Vec<String> = run.iter().map(|p| format!("{:.1},{:.1}", x(p.at_ms), y_of(p.mmol))).collect();
        let _ = writeln!(
            s,
            r##"<polyline class="glucose-run" points="{}" fill="none" stroke="#1f5fbf" stroke-width="2" stroke-linejoin="round"/>"##,
            pts.join(" ")
        );
        // A run of one reading draws no line: a dot shows it.
        if let [p] = run.as_slice() {
            let _ = writeln!(
                s,
                r##"<circle class="glucose-point" cx="{:.1}" cy="{:.1}" r="2.5" fill="#1f5fbf"/>"##,
                x(p.at_ms),
                y_of(p.mmol)
            );
        }
    }

    // Invalid readings: hollow markers, never joined to the line.
    let invalid: Vec<&ChartPoint> = c.points.iter().filter(|p| !p.valid).collect();
    for p in &invalid {
        let _ = writeln!(
            s,
            r##"<circle class="invalid-reading" cx="{:.1}" cy="{:.1}" r="4" fill="#ffffff" stroke="#e07b00" stroke-width="1.5"><title>invalid (warm-up) {} mmol/L</title></circle>"##,
            x(p.at_ms),
            y_of(p.mmol),
            p.mmol
        );
    }

    // The device's own alert thresholds, over the line so their labels stay readable.
    for (class, label, v, colour) in [
        ("threshold-low", "device low alert", c.low, "#c0392b"),
        ("threshold-high", "device high alert", c.high, "#d68910"),
    ] {
        let Some(v) = v.filter(|v| v.is_finite()) else { continue };
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<g class="{class}"><line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="8 5"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="{colour}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{label} {v}</text></g>"##,
            tx = RIGHT - 4.0,
            ty = y - 5.0
        );
    }

    let valid = c.points.len() - invalid.len();
    let breaks = runs.len().saturating_sub(1);
    let note = if c.points.is_empty() {
        "No readings on this day".to_string()
    } else {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{}, {} invalid (warm-up), {} in the line",
            plural(valid, "valid reading", "valid readings"),
            invalid.len(),
            plural(breaks, "gap", "gaps")
        )
    };
    let _ = writeln!(s, r##"<text class="chart-note" x="{LEFT}" y="56" fill="#555555">{note}</text>"##);
    legend(&mut s);
    s.push_str("</svg>\n");
    s
}

fn legend(s: &mut String) {
    let x0 = RIGHT - 520.0;
    let _ = writeln!(
        s,
        r##"<g class="legend" font-size="12"><rect x="{x0}" y="18" width="14" height="10" fill="#d9f2d9"/><text x="{a}" y="27">target 3.9–10.0</text><line x1="{b}" y1="23" x2="{b2}" y2="23" stroke="#1f5fbf" stroke-width="2"/><text x="{c}" y="27">glucose</text><circle cx="{d}" cy="23" r="4" fill="#ffffff" stroke="#e07b00" stroke-width="1.5"/><text x="{e}" y="27">invalid (warm-up)</text><line x1="{f}" y1="23" x2="{f2}" y2="23" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="8 5"/><text x="{g}" y="27">device alerts</text></g>"##,
        a = x0 + 20.0,
        b = x0 + 125.0,
        b2 = x0 + 150.0,
        c = x0 + 156.0,
        d = x0 + 225.0,
        e = x0 + 235.0,
        f = x0 + 360.0,
        f2 = x0 + 390.0,
        g = x0 + 396.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn p(minute: i64, mmol: f64, valid: bool) -> ChartPoint {
        ChartPoint { at_ms: minute * MIN, mmol, valid, incre_minute: Some(3) }
    }

    #[test]
    fn the_line_breaks_at_gaps_longer_than_two_intervals() {
        // 0, 3, 6 | 15 (9 min later) | 18, 24 (6 min: still joined); an invalid one between.
        let points = [p(0, 5.0, true), p(3, 5.1, true), p(6, 5.2, true), p(9, 9.9, false), p(15, 5.3, true)];
        let more = [p(18, 5.4, true), p(24, 5.5, true)];
        let all: Vec<ChartPoint> = points.iter().chain(more.iter()).copied().collect();
        let r = runs(&all);
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn geometry_maps_the_axes() {
        assert_eq!(y_of(0.0), BOTTOM);
        assert_eq!(y_of(22.0), TOP);
        assert_eq!(y_of(30.0), TOP, "off-scale values sit at the top");
        assert_eq!(x_of(0, 0, 24 * 60 * MIN), LEFT);
        assert_eq!(x_of(12 * 60 * MIN, 0, 24 * 60 * MIN), (LEFT + RIGHT) / 2.0);
    }

    #[test]
    fn the_svg_is_well_formed_and_labelled() {
        let points = [p(0, 5.0, true), p(3, 5.1, true), p(30, 6.0, true), p(33, 6.5, false)];
        let svg = render(&ChartInput {
            device_sn: "SN<1>&",
            day: "2021-11-02",
            zone: "+08:00",
            day_start_ms: 0,
            day_end_ms: 24 * 60 * MIN,
            points: &points,
            low: Some(3.9),
            high: None,
            hour_marks: &GRID_HOURS.map(|h| (h, i64::from(h) * 60 * MIN)),
        });
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let class = |c: &str| doc.descendants().filter(|n| n.attribute("class") == Some(c)).count();
        assert_eq!(class("target-band"), 1);
        assert_eq!(class("glucose-run"), 2);
        assert_eq!(class("glucose-point"), 1, "the lone reading at minute 30 is a dot");
        assert_eq!(class("invalid-reading"), 1);
        assert_eq!((class("threshold-low"), class("threshold-high")), (1, 0));
        let title = doc.descendants().find(|n| n.attribute("class") == Some("chart-title")).unwrap();
        assert!(title.text().unwrap().contains("SN<1>&"), "the device id is escaped, not dropped");
    }

    #[test]
    fn on_a_23_hour_day_the_hour_grid_is_where_the_hours_are() {
        use cgm_domain::time::SourceZone;
        let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let span = berlin.local_day(day).unwrap();
        let marks: Vec<(u32, i64)> =
            GRID_HOURS.iter().filter_map(|&h| Some((h, berlin.local_instant(day, h * 60)?.ms()))).collect();
        let svg = render(&ChartInput {
            device_sn: "SN",
            day: "2024-03-31",
            zone: "Europe/Berlin",
            day_start_ms: span.start().ms(),
            day_end_ms: span.end().ms(),
            points: &[],
            low: None,
            high: None,
            hour_marks: &marks,
        });
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let label_x = |t: &str| {
            doc.descendants()
                .find(|n| n.attribute("class") == Some("x-label") && n.text() == Some(t))
                .and_then(|n| n.attribute("x")?.parse::<f64>().ok())
                .unwrap()
        };
        // 12:00 is 11 of the day's 23 hours in, not half way; 24:00 is the right edge.
        assert!((label_x("12:00") - (LEFT + 11.0 / 23.0 * (RIGHT - LEFT))).abs() < 0.1);
        assert!((label_x("24:00") - RIGHT).abs() < 0.1);
        assert!(svg.contains("a 23-hour day"));
    }
}
