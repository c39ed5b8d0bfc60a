//! The standard CGM metrics of the international consensus on time in range (Battelino et
//! al., Diabetes Care 2019;42:1593–1603), from a list of valid glucose values.
//!
//! Each reading stands for the same length of time (the sensor's interval), so the share of
//! time in a band is the share of readings in it. The coefficient of variation uses the
//! *sample* standard deviation (n − 1), as common CGM analysis tools do (e.g. R's `iglu`).
//! Pure functions: no storage, no HTTP.

/// mg/dL per mmol/L: the molar mass of glucose, 180.16 g/mol, over 10.
pub const MG_DL_PER_MMOL: f64 = 18.016;

/// The consensus glucose bands, mmol/L.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Below 3.0 (time below range, level 2).
    VeryLow,
    /// 3.0 to below 3.9 (time below range, level 1).
    Low,
    /// 3.9 to 10.0, both included (time in range).
    InRange,
    /// Above 10.0 to 13.9 (time above range, level 1).
    High,
    /// Above 13.9 (time above range, level 2).
    VeryHigh,
}

pub fn band_of(mmol: f64) -> Band {
    if mmol < 3.0 {
        Band::VeryLow
    } else if mmol < 3.9 {
        Band::Low
    } else if mmol <= 10.0 {
        Band::InRange
    } else if mmol <= 13.9 {
        Band::High
    } else {
        Band::VeryHigh
    }
}

/// Glucose management indicator, %, from the mean in mg/dL (Bergenstal et al. 2018).
pub fn gmi_percent(mean_mg_dl: f64) -> f64 {
    3.31 + 0.02392 * mean_mg_dl
}

pub fn mg_dl(mmol: f64) -> f64 {
    mmol * MG_DL_PER_MMOL
}

/// How many readings a period holds at one reading every `incre_minute` minutes. Both ends
/// of the period are included, as in the routes' `from`/`to`.
pub fn expected_readings(from_ms: i64, to_ms: i64, incre_minute: u64) -> u64 {
    let span = (to_ms.saturating_sub(from_ms)).saturating_add(1).max(0) as u64;
    span / incre_minute.max(1).saturating_mul(60_000)
}

/// Percentages of readings in each band (each 0–100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeInBands {
    pub very_low: f64,
    pub low: f64,
    pub in_range: f64,
    pub high: f64,
    pub very_high: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub readings: usize,
    pub mean_mmol: f64,
    pub mean_mg_dl: f64,
    /// Sample standard deviation, mmol/L; `None` with fewer than two readings.
    pub sd_mmol: Option<f64>,
    /// SD / mean × 100; `None` with fewer than two readings.
    pub cv_percent: Option<f64>,
    pub gmi_percent: f64,
    pub bands: TimeInBands,
}

/// The metrics of `values` (mmol/L, valid readings only); `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    let mut counts = [0usize; 5];
    for v in values {
        counts[match band_of(*v) {
            Band::VeryLow => 0,
            Band::Low => 1,
            Band::InRange => 2,
            Band::High => 3,
            Band::VeryHigh => 4,
        }] += 1;
    }
    let pct = |c: usize| c as f64 * 100.0 / n;
    Some(Summary {
        readings: values.len(),
        mean_mmol: mean,
        mean_mg_dl: mg_dl(mean),
        sd_mmol: sd,
        cv_percent: sd.map(|sd| sd / mean * 100.0),
        gmi_percent: gmi_percent(mg_dl(mean)),
        bands: TimeInBands {
            very_low: pct(counts[0]),
            low: pct(counts[1]),
            in_range: pct(counts[2]),
            high: pct(counts[3]),
            very_high: pct(counts[4]),
        },
    })
}

/// Readings captured as a share of those expected, %, capped at 100 (a period can hold a
/// few more readings than its length allows when the sensor's clock runs fast).
pub fn capture_percent(captured: usize, expected: u64) -> f64 {
    if expected == 0 {
        return if captured == 0 { 0.0 } else { 100.0 };
    }
    (captured as f64 * 100.0 / expected as f64).min(100.0)
}

/// Rounds for display: metrics are reported to a tenth (percentages, mg/dL) or a hundredth
/// (mmol/L); more digits would claim a precision the sensor does not have.
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn band_edges_follow_the_consensus() {
        assert_eq!(band_of(2.9), Band::VeryLow);
        assert_eq!(band_of(3.0), Band::Low);
        assert_eq!(band_of(3.8), Band::Low);
        assert_eq!(band_of(3.9), Band::InRange);
        assert_eq!(band_of(10.0), Band::InRange);
        assert_eq!(band_of(10.1), Band::High);
        assert_eq!(band_of(13.9), Band::High);
        assert_eq!(band_of(14.0), Band::VeryHigh);
    }

    /// By hand, for 3.0, 5.0, 7.0, 9.0 mmol/L:
    ///   mean = 24.0 / 4 = 6.0 mmol/L = 6.0 × 18.016 = 108.096 mg/dL
    ///   GMI = 3.31 + 0.02392 × 108.096 = 3.31 + 2.585656 = 5.895656 %
    ///   deviations −3, −1, 1, 3; squares 9, 1, 1, 9; sum 20
    ///   sample variance = 20 / 3 = 6.6667; SD = 2.581989; CV = 2.581989 / 6 = 43.033 %
    ///   bands: 3.0 is in 3.0–<3.9 (1 of 4 = 25 %); 5, 7, 9 in range (75 %)
    #[test]
    fn four_readings_by_hand() {
        let s = summarize(&[3.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.readings, 4);
        assert!(close(s.mean_mmol, 6.0));
        assert!(close(s.mean_mg_dl, 108.096));
        assert!(close(s.gmi_percent, 5.895656), "{}", s.gmi_percent);
        assert!(close(s.sd_mmol.unwrap(), 2.581989));
        assert!(close(s.cv_percent.unwrap(), 43.033), "{:?}", s.cv_percent);
        assert_eq!(s.bands, TimeInBands { very_low: 0.0, low: 25.0, in_range: 75.0, high: 0.0, very_high: 0.0 });
    }

    /// By hand, for 2.9, 3.0, 3.8, 3.9, 10.0, 10.1, 13.9, 14.0, 22.0, 6.4 mmol/L:
    ///   sum = 90.0, mean = 9.0 mmol/L = 162.144 mg/dL; GMI = 3.31 + 0.02392 × 162.144 = 7.188484 %
    ///   deviations −6.1 −6.0 −5.2 −5.1 1.0 1.1 4.9 5.0 13.0 −2.6
    ///   squares 37.21 36.00 27.04 26.01 1.00 1.21 24.01 25.00 169.00 6.76, sum 353.24
    ///   sample variance = 353.24 / 9 = 39.248889; SD = 6.264893; CV = 69.6099 %
    ///   bands: <3.0 {2.9} 10 %; 3.0–<3.9 {3.0, 3.8} 20 %; 3.9–10.0 {3.9, 10.0, 6.4} 30 %;
    ///          >10.0–13.9 {10.1, 13.9} 20 %; >13.9 {14.0, 22.0} 20 %
    #[test]
    fn every_band_and_edge_by_hand() {
        let s = summarize(&[2.9, 3.0, 3.8, 3.9, 10.0, 10.1, 13.9, 14.0, 22.0, 6.4]).unwrap();
        assert!(close(s.mean_mmol, 9.0));
        assert!(close(s.mean_mg_dl, 162.144));
        assert!(close(s.gmi_percent, 7.188484));
        assert!(close(s.sd_mmol.unwrap(), 6.264893), "{:?}", s.sd_mmol);
        assert!(close(s.cv_percent.unwrap(), 69.6099), "{:?}", s.cv_percent);
        let b = s.bands;
        assert!(close(b.very_low, 10.0) && close(b.low, 20.0) && close(b.in_range, 30.0));
        assert!(close(b.high, 20.0) && close(b.very_high, 20.0));
    }

    #[test]
    fn one_reading_has_no_spread_and_none_has_no_summary() {
        let s = summarize(&[5.5]).unwrap();
        assert_eq!((s.sd_mmol, s.cv_percent), (None, None));
        assert!(close(s.bands.in_range, 100.0));
        assert_eq!(summarize(&[]), None);
    }

    /// A local day, 00:00:00.000 to 23:59:59.999, is 86,400,000 ms: 480 readings at 3 min,
    /// 1,440 at 1 min. 360 of 480 captured is 75 %.
    #[test]
    fn expected_readings_and_capture() {
        assert_eq!(expected_readings(0, 86_399_999, 3), 480);
        assert_eq!(expected_readings(0, 86_399_999, 1), 1_440);
        assert_eq!(expected_readings(0, 86_399_999, 0), 1_440, "a zero interval is read as one minute");
        assert_eq!(expected_readings(10, 5, 3), 0);
        assert!(close(capture_percent(360, 480), 75.0));
        assert!(close(capture_percent(500, 480), 100.0));
        assert_eq!(capture_percent(0, 0), 0.0);
    }

    #[test]
    fn rounding_for_display() {
        assert_eq!(round_to(43.0329, 1), 43.0);
        assert_eq!(round_to(5.895656, 2), 5.9);
        assert_eq!(round_to(7.188484, 1), 7.2);
    }
}
