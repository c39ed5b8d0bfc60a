//! The ambulatory glucose profile as one SVG page (A4 portrait proportions), in the order of
//! the consensus report: the glucose statistics beside their targets, the time in ranges as
//! a stacked bar, the modal day (median, 25–75 % and 5–95 % bands, the target range
//! marked), one small panel per local day, and the data-sufficiency notice when the data
//! fall short (never hidden).
//!
//! Plain SVG 1.1, no script, no external reference; each part has a class (`statistics`,
//! `time-in-ranges`, `tir-segment`, `profile`, `band-5-95`, `band-25-75`, `median`,
//! `target-band`, `daily`, `day-panel`, `day-curve`, `data-notice`) so tests and stylesheets
//! find it. Local times are placed at their instants ([`SourceZone::local_instant`]), so a
//! 23- or 25-hour day is drawn as long as it is. Pure: numbers in, text out.

use crate::svg::xml_escape;
use cgm_domain::agp::{DayProfile, PROFILE_BIN_MINUTES, ProfileBin};
use cgm_domain::time::SourceZone;
use std::fmt::Write as _;

/// A4 portrait at 96 px per inch: 210 × 297 mm.
pub const WIDTH: f64 = 794.0;
pub const HEIGHT: f64 = 1123.0;
const MARGIN: f64 = 40.0;
const Y_MAX: f64 = 22.0;
const TARGET: (f64, f64) = (3.9, 10.0);

/// One line of the statistics panel: what, its value, and the target beside it.
pub struct Stat {
    pub label: String,
    pub value: String,
    pub target: String,
}

/// One range of the stacked bar, lowest last drawn at the bottom.
pub struct Range {
    pub class: &'static str,
    pub label: &'static str,
    pub percent: Option<f64>,
    pub target: &'static str,
    pub colour: &'static str,
}

pub struct Page<'a> {
    pub device_sn: &'a str,
    /// The period as people read it (`2024-05-01 – 2024-05-14 (14 days)`).
    pub period: &'a str,
    pub zone: &'a SourceZone,
    pub stats: &'a [Stat],
    pub targets_for: &'a str,
    pub ranges: &'a [Range],
    pub profile: &'a [ProfileBin],
    pub daily: &'a [DayProfile],
    pub notice: Option<&'a str>,
    pub smoothing: &'a str,
    /// The patient line of the PDF's header (`AGP_PATIENT_FIELDS=true`); the SVG route
    /// never sets it.
    pub patient: Option<&'a str>,
}

fn text(s: &mut String, class: &str, x: f64, y: f64, size: f64, extra: &str, body: &str) {
    let _ = writeln!(
        s,
        r##"<text class="{class}" x="{x:.1}" y="{y:.1}" font-size="{size}"{extra}>{}</text>"##,
        xml_escape(body)
    );
}

/// The page.
pub fn render(p: &Page<'_>) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="210mm" height="297mm" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, 'Noto Sans CJK SC', sans-serif" font-size="11">
<title>Ambulatory glucose profile, iCan {dev}, {period}</title>
<rect class="background" x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##,
        dev = xml_escape(p.device_sn),
        period = xml_escape(p.period),
    );
    text(&mut s, "page-title", MARGIN, 44.0, 20.0, r#" font-weight="bold""#, "Ambulatory glucose profile");
    text(
        &mut s,
        "page-subtitle",
        MARGIN,
        64.0,
        12.0,
        "",
        &format!("iCan {} · {} · local time {}", p.device_sn, p.period, p.zone.label()),
    );
    let mut y = 84.0;
    if let Some(who) = p.patient {
        text(&mut s, "patient", MARGIN, 80.0, 12.0, r#" font-weight="bold""#, who);
        y += 12.0;
    }
    if let Some(n) = p.notice {
        let _ = writeln!(
            s,
            r##"<g class="data-notice"><rect x="{MARGIN}" y="{y}" width="{w}" height="30" fill="#fff3cd" stroke="#d68910"/>"##,
            w = WIDTH - 2.0 * MARGIN
        );
        text(&mut s, "notice-text", MARGIN + 10.0, y + 19.0, 11.0, r#" font-weight="bold""#, n);
        s.push_str("</g>\n");
        y += 40.0;
    }
    y = statistics(&mut s, p, y);
    y = time_in_ranges(&mut s, p, y);
    y = profile(&mut s, p, y + 10.0);
    daily(&mut s, p, y + 10.0);
    s.push_str("</svg>\n");
    s
}

fn heading(s: &mut String, y: f64, t: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{MARGIN}" y="{y}" width="{w}" height="20" fill="#34495e"/>"##,
        w = WIDTH - 2.0 * MARGIN
    );
    text(s, "section-title", MARGIN + 8.0, y + 14.0, 12.0, r##" fill="#ffffff" font-weight="bold""##, t);
}

fn statistics(s: &mut String, p: &Page<'_>, y0: f64) -> f64 {
    s.push_str("<g class=\"statistics\">\n");
    heading(s, y0, "Glucose statistics and targets");
    let mut y = y0 + 38.0;
    for st in p.stats {
        text(s, "stat-label", MARGIN + 8.0, y, 11.0, "", &st.label);
        text(s, "stat-value", MARGIN + 330.0, y, 11.0, r#" font-weight="bold""#, &st.value);
        text(s, "stat-target", MARGIN + 480.0, y, 11.0, r##" fill="#555555""##, &st.target);
        y += 17.0;
    }
    text(
        s,
        "targets-for",
        MARGIN + 8.0,
        y + 2.0,
        10.0,
        r##" fill="#555555""##,
        &format!("Targets for {}.", p.targets_for),
    );
    s.push_str("</g>\n");
    y + 14.0
}

fn time_in_ranges(s: &mut String, p: &Page<'_>, y0: f64) -> f64 {
    s.push_str("<g class=\"time-in-ranges\">\n");
    heading(s, y0, "Time in ranges");
    let (bx, by, bw, bh) = (MARGIN + 20.0, y0 + 32.0, 46.0, 150.0);
    let _ = writeln!(s, r##"<rect x="{bx}" y="{by}" width="{bw}" height="{bh}" fill="#eeeeee"/>"##);
    // Drawn from the top (very high) down; each share its height; labels beside.
    let mut top = by;
    let mut ly = by + 12.0;
    for r in p.ranges.iter() {
        let share = r.percent.unwrap_or(0.0).clamp(0.0, 100.0);
        let h = bh * share / 100.0;
        let _ = writeln!(
            s,
            r##"<rect class="tir-segment {cls}" x="{bx}" y="{top:.1}" width="{bw}" height="{h:.1}" fill="{c}"><title>{label}: {pct}</title></rect>"##,
            cls = r.class,
            c = r.colour,
            label = xml_escape(r.label),
            pct = r.percent.map_or("no data".to_string(), |v| format!("{v:.1} %")),
        );
        top += h;
        let value = r.percent.map_or("–".to_string(), |v| format!("{v:.1} %"));
        text(s, "tir-label", bx + bw + 20.0, ly, 11.0, "", r.label);
        text(s, "tir-value", bx + bw + 230.0, ly, 11.0, r#" font-weight="bold""#, &value);
        text(s, "tir-target", bx + bw + 310.0, ly, 11.0, r##" fill="#555555""##, &format!("target {}", r.target));
        ly += 30.0;
    }
    s.push_str("</g>\n");
    by + bh + 12.0
}

/// x of a local wall-clock minute of the modal day (00:00 to 24:00).
fn profile_x(minute: f64, left: f64, width: f64) -> f64 {
    left + minute / 1440.0 * width
}

fn profile(s: &mut String, p: &Page<'_>, y0: f64) -> f64 {
    s.push_str("<g class=\"profile\">\n");
    heading(s, y0, "Ambulatory glucose profile: all days as one (median, 25–75 %, 5–95 %)");
    let (left, top, width, height) = (MARGIN + 40.0, y0 + 34.0, WIDTH - 2.0 * MARGIN - 60.0, 250.0);
    let yv = |v: f64| top + height - v.clamp(0.0, Y_MAX) / Y_MAX * height;
    let (t0, t1) = (yv(TARGET.1), yv(TARGET.0));
    let _ = writeln!(
        s,
        r##"<rect class="target-band" x="{left}" y="{t0:.1}" width="{width}" height="{h:.1}" fill="#d9f2d9"><title>Target range 3.9–10.0 mmol/L</title></rect>"##,
        h = t1 - t0
    );
    for v in [0.0, 3.9, 10.0, 13.9, 22.0] {
        let y = yv(v);
        let _ = writeln!(
            s,
            r##"<line class="grid" x1="{left}" y1="{y:.1}" x2="{r}" y2="{y:.1}" stroke="#dddddd"/>"##,
            r = left + width
        );
        text(s, "y-label", left - 6.0, y + 4.0, 10.0, r#" text-anchor="end""#, &format!("{v}"));
    }
    for h in (0..=24).step_by(3) {
        let x = profile_x(f64::from(h) * 60.0, left, width);
        let _ = writeln!(
            s,
            r##"<line class="grid" x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{b}" stroke="#eeeeee"/>"##,
            b = top + height
        );
        text(s, "x-label", x, top + height + 14.0, 10.0, r#" text-anchor="middle""#, &format!("{h:02}:00"));
    }
    text(s, "axis-title", left - 34.0, top - 6.0, 10.0, "", "mmol/L");
    // Each run of bins with readings: the bands as polygons (upper edge, then lower edge
    // back), the median as a line. A bin without readings breaks them.
    let half = f64::from(PROFILE_BIN_MINUTES) / 2.0;
    let mut runs: Vec<Vec<(f64, [f64; 5])>> = Vec::new();
    let mut prev_present = false;
    for b in p.profile {
        match b.smoothed {
            Some(v) => {
                let x = profile_x(f64::from(b.start_minute) + half, left, width);
                if !prev_present {
                    runs.push(Vec::new());
                }
                if let Some(r) = runs.last_mut() {
                    r.push((x, v));
                }
                prev_present = true;
            }
            None => prev_present = false,
        }
    }
    for run in &runs {
        for (class, lo, hi, fill) in [("band-5-95", 0, 4, "#b7cde8"), ("band-25-75", 1, 3, "#5b8fd0")] {
            let mut pts: Vec<String> = run.iter().map(|(x, v)| format!("{x:.1},{:.2}", yv(v[hi]))).collect();
            pts.extend(run.iter().rev().map(|(x, v)| format!("{x:.1},{:.2}", yv(v[lo]))));
            let _ =
                writeln!(s, r##"<polygon class="{class}" points="{}" fill="{fill}" stroke="none"/>"##, pts.join(" "));
        }
        let pts: Vec<String> = run.iter().map(|(x, v)| format!("{x:.1},{:.2}", yv(v[2]))).collect();
        let _ = writeln!(
            s,
            r##"<polyline class="median" points="{}" fill="none" stroke="#0b2e59" stroke-width="2"/>"##,
            pts.join(" ")
        );
    }
    let _ = writeln!(
        s,
        r##"<rect class="plot-frame" x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#888888"/>"##
    );
    text(
        s,
        "smoothing",
        left,
        top + height + 30.0,
        9.0,
        r##" fill="#555555""##,
        &format!("Smoothing: {}.", p.smoothing),
    );
    s.push_str("</g>\n");
    top + height + 36.0
}

fn daily(s: &mut String, p: &Page<'_>, y0: f64) {
    s.push_str("<g class=\"daily\">\n");
    heading(s, y0, "Daily glucose profiles (midnight to midnight, local time)");
    let cols = 7usize;
    let gap = 6.0;
    let pw = (WIDTH - 2.0 * MARGIN - gap * (cols as f64 - 1.0)) / cols as f64;
    let ph = 70.0;
    let yv = |top: f64, v: f64| top + ph - v.clamp(0.0, Y_MAX) / Y_MAX * ph;
    // Up to 14 days fit the page at this size; a longer period shows its last 14 days as
    // panels (its profile and statistics cover all of it).
    let shown: &[DayProfile] = if p.daily.len() > 14 { &p.daily[p.daily.len() - 14..] } else { p.daily };
    for (i, d) in shown.iter().enumerate() {
        let (col, row) = (i % cols, i / cols);
        let left = MARGIN + col as f64 * (pw + gap);
        let top = y0 + 40.0 + row as f64 * (ph + 30.0);
        let label = if (d.hours - 24.0).abs() > 0.01 {
            format!("{} ({:.0} h)", d.day.format("%a %d %b"), d.hours)
        } else {
            d.day.format("%a %d %b").to_string()
        };
        let _ = writeln!(s, r##"<g class="day-panel" data-date="{}">"##, d.day.format("%Y-%m-%d"));
        text(s, "day-label", left, top - 4.0, 9.0, "", &label);
        let (t0, t1) = (yv(top, TARGET.1), yv(top, TARGET.0));
        let _ = writeln!(
            s,
            r##"<rect class="target-band" x="{left:.1}" y="{t0:.1}" width="{pw:.1}" height="{h:.1}" fill="#d9f2d9"/>"##,
            h = t1 - t0
        );
        // The day's own length: its start and end are the instants of its midnights.
        let (start, end) = match p.zone.local_day(d.day) {
            Some(span) => (span.start().ms(), span.end().ms()),
            None => continue,
        };
        let x = |minute: u32| {
            let at = p.zone.local_instant(d.day, minute).map_or(start, |t| t.ms());
            left + (at - start) as f64 / (end - start).max(1) as f64 * pw
        };
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut last: Option<u32> = None;
        // More than two of the day's usual steps apart (two 5-minute bins at least) is a
        // gap: the line breaks. The usual step is the sensor's interval (5, 15 minutes, …).
        let mut steps: Vec<u32> = d.points.windows(2).map(|w| w[1].0.saturating_sub(w[0].0)).collect();
        steps.sort_unstable();
        let gap = steps.get(steps.len() / 2).map_or(10, |&st| (2 * st).max(10));
        for &(m, v) in &d.points {
            if last.is_none_or(|l| m.saturating_sub(l) > gap) {
                runs.push(Vec::new());
            }
            if let Some(r) = runs.last_mut() {
                r.push(format!("{:.1},{:.1}", x(m + 2), yv(top, v)));
            }
            last = Some(m);
        }
        for r in runs {
            let _ = writeln!(
                s,
                r##"<polyline class="day-curve" points="{}" fill="none" stroke="#1f5fbf" stroke-width="1"/>"##,
                r.join(" ")
            );
        }
        let _ = writeln!(
            s,
            r##"<rect class="plot-frame" x="{left:.1}" y="{top:.1}" width="{pw:.1}" height="{ph}" fill="none" stroke="#aaaaaa"/></g>"##
        );
    }
    s.push_str("</g>\n");
}
