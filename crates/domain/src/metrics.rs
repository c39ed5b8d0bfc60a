//! The standard CGM metrics of the international consensus on time in range (Battelino et
//! al., Diabetes Care 2019;42:1593–1603), from valid glucose values counted per distinct value
//! ([`GlucoseCounts`]), so a list of readings and a set of daily rollups give the same numbers.
//!
//! Each reading stands for the same length of time (the sensor's interval), so the share of
//! time in a band is the share of readings in it. The coefficient of variation uses the
//! *sample* standard deviation (n − 1), as common CGM analysis tools do (e.g. R's `iglu`).
//! Pure functions: no storage, no HTTP.

use std::collections::BTreeMap;

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

/// Glucose values as the metrics count them: thousandths of a mmol/L, the stated fixed-point
/// scale of every count (a reading's value has one decimal almost always; up to three are
/// exact, more are rounded to three). Both the readings path and the daily rollups go
/// through [`GlucoseCounts`], so they give the same numbers to the last digit.
pub const MILLI_PER_MMOL: f64 = 1000.0;

/// A glucose value in thousandths of a mmol/L (0 for anything not a positive finite value).
pub fn to_milli(mmol: f64) -> u32 {
    if mmol.is_finite() && mmol > 0.0 { (mmol * MILLI_PER_MMOL).round().min(f64::from(u32::MAX)) as u32 } else { 0 }
}

/// Valid readings counted per distinct value (thousandths of a mmol/L): a sparse map that
/// keeps everything a mean, a standard deviation, times in ranges and percentiles need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlucoseCounts(BTreeMap<u32, u64>);

impl GlucoseCounts {
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        let mut c = GlucoseCounts::default();
        for v in values {
            c.add(v);
        }
        c
    }

    pub fn add(&mut self, mmol: f64) {
        self.add_milli(to_milli(mmol), 1);
    }

    pub fn add_milli(&mut self, milli: u32, count: u64) {
        if count > 0 {
            let c = self.0.entry(milli).or_default();
            *c = c.saturating_add(count);
        }
    }

    pub fn merge(&mut self, other: &GlucoseCounts) {
        for (&v, &c) in &other.0 {
            self.add_milli(v, c);
        }
    }

    /// How many readings are counted.
    pub fn len(&self) -> u64 {
        self.0.values().fold(0, |a, c| a.saturating_add(*c))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (value in thousandths of a mmol/L, count), ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().map(|(v, c)| (*v, *c))
    }

    /// The `p`th percentile, mmol/L, by the project's one definition (`crate::stats`).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let counts: Vec<(f64, u64)> = self.iter().map(|(v, c)| (f64::from(v) / MILLI_PER_MMOL, c)).collect();
        crate::stats::percentile_of_counts(&counts, p)
    }
}

/// The metrics of `values` (mmol/L, valid readings only); `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    summarize_counts(&GlucoseCounts::from_values(values.iter().copied()))
}

/// The metrics of counted values: exact sums in integers, one division for the mean and
/// one square root for the (sample, n − 1) standard deviation. `None` when nothing is
/// counted.
pub fn summarize_counts(counts: &GlucoseCounts) -> Option<Summary> {
    let n = counts.len();
    if n == 0 {
        return None;
    }
    let (mut sum, mut sum_sq) = (0u128, 0u128);
    let mut bands = [0u64; 5];
    for (v, c) in counts.iter() {
        let (v128, c128) = (u128::from(v), u128::from(c));
        sum = sum.saturating_add(v128 * c128);
        sum_sq = sum_sq.saturating_add(v128 * v128 * c128);
        let band = match v {
            0..3_000 => 0,
            3_000..3_900 => 1,
            3_900..=10_000 => 2,
            10_001..=13_900 => 3,
            _ => 4,
        };
        bands[band] = bands[band].saturating_add(c);
    }
    let n128 = u128::from(n);
    let mean = sum as f64 / n as f64 / MILLI_PER_MMOL;
    // n·Σv² − (Σv)² is n² times the population variance: never negative in exact integers.
    let sd = (n > 1).then(|| {
        let spread = n128.saturating_mul(sum_sq).saturating_sub(sum.saturating_mul(sum));
        (spread as f64 / (n128 * (n128 - 1)) as f64).sqrt() / MILLI_PER_MMOL
    });
    let pct = |c: u64| c as f64 * 100.0 / n as f64;
    Some(Summary {
        readings: usize::try_from(n).unwrap_or(usize::MAX),
        mean_mmol: mean,
        mean_mg_dl: mg_dl(mean),
        sd_mmol: sd,
        cv_percent: sd.map(|sd| sd / mean * 100.0),
        gmi_percent: gmi_percent(mg_dl(mean)),
        bands: TimeInBands {
            very_low: pct(bands[0]),
            low: pct(bands[1]),
            in_range: pct(bands[2]),
            high: pct(bands[3]),
            very_high: pct(bands[4]),
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
