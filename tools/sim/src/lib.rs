//! `cgm-sim`: behaves like Sinocare's IoT cloud against a push URL, local (`make dev`) or
//! deployed, to show that nothing pushed is lost.
//!
//! [`generate`] makes the readings of N sensors over their wear periods, as bodies in the
//! push spec's shape (docs/sinocare-integration.md); [`send::send_all`] delivers them the way
//! Sinocare does: concurrently, re-sending whatever got no `code` 0 within 5 s with
//! exponential backoff and jitter, re-sending some already-acknowledged readings as
//! duplicates, and replaying a backlog in a burst. The [`send::Report`] says what was sent,
//! acknowledged, re-sent and how fast the answers came.
//!
//! It is a load and correctness tool for this project, not a model of Sinocare's internals:
//! their retry strategy is unpublished, so the one here is a plausible, bounded one. The
//! patient fields it sends are obviously fake.

pub mod rng;
pub mod send;
pub mod stats;

use chrono::{Duration as ChronoDuration, NaiveDateTime, Timelike};
use rng::{Rng, mix};
use serde::Serialize;

/// Minutes between two readings of a sensor (`increMinute`).
pub const INCRE_MINUTE: i64 = 3;
/// The sensor's days of wear (`cgmDay`).
pub const CGM_DAY: u64 = 15;
/// Readings of a full wear period: 15 days every 3 minutes.
pub const FULL_WEAR_READINGS: usize = (CGM_DAY as usize) * 24 * 60 / INCRE_MINUTE as usize;
/// Readings at the start of a sensor's life that are warm-up (`status` "1", `cgmStatus` "1"),
/// at most; a short simulated period uses a quarter of its readings.
pub const WARMUP_READINGS: usize = 20;
/// Glucose bounds the sensor reports, mmol/L (iCan's measuring range).
pub const MIN_MMOL: f64 = 2.2;
pub const MAX_MMOL: f64 = 22.2;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sensors: usize,
    pub readings_per_sensor: usize,
    /// Share of readings (0–1) re-sent once after they were acknowledged.
    pub duplicate_rate: f64,
    /// Readings held back while their sensor was out of reach, delivered together after the
    /// live stream.
    pub backlog: usize,
    pub seed: u64,
    /// China Standard Time wall clock at which the first sensor starts; the others start
    /// within the following day.
    pub start: NaiveDateTime,
    /// A stretch of every sensor's wear in which its glucose dips below 3.0 mmol/L (urgent
    /// low): it falls over the first quarter hour, stays near 2.4 and comes back over the
    /// last quarter hour.
    pub low: Option<Stretch>,
    /// A stretch of every sensor's wear whose readings are never sent (out of reach, and
    /// never re-sent): a gap in `serialNo` and, if it reaches the end, a silent sensor.
    pub silent: Option<Stretch>,
}

/// Minutes of a sensor's wear, counted from its first reading: `from` for `minutes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub from: f64,
    pub minutes: f64,
}

impl Stretch {
    /// `FROM+MINUTES`, both in minutes (`60+45`: from the first hour, for 45 minutes).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected FROM+MINUTES, minutes after the sensor's first reading (60+45)");
        let (from, minutes) = s.split_once('+').ok_or_else(bad)?;
        let from: f64 = from.trim().parse().map_err(|_| bad())?;
        let minutes: f64 = minutes.trim().parse().map_err(|_| bad())?;
        if !(from.is_finite() && minutes.is_finite() && from >= 0.0 && minutes > 0.0) {
            return Err(bad());
        }
        Ok(Stretch { from, minutes })
    }

    fn holds(&self, minute: f64) -> bool {
        minute >= self.from && minute < self.from + self.minutes
    }

    /// How deep into the stretch `minute` is, 0 outside to 1 a quarter hour inside.
    fn depth(&self, minute: f64) -> f64 {
        if !self.holds(minute) {
            return 0.0;
        }
        ((minute - self.from) / LOW_RAMP_MIN).min((self.from + self.minutes - minute) / LOW_RAMP_MIN).clamp(0.0, 1.0)
    }
}

/// Minutes a simulated low takes to fall to its depth and to come back.
const LOW_RAMP_MIN: f64 = 15.0;
/// Where a simulated low settles, mmol/L: below the urgent-low threshold of 3.0.
const LOW_MMOL: f64 = 2.4;

/// Why a plan cannot be simulated; the text says which setting is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// One reading as the simulator sends it, with what a test checks against the table.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReading {
    pub sensor: usize,
    pub test_id: String,
    pub device_sn: String,
    pub serial_no: u64,
    /// `yyyy-MM-dd HH:mm:ss`, China Standard Time, as sent.
    pub test_time: String,
    pub at: NaiveDateTime,
    /// mmol/L with one decimal, as sent (`"5.6"`).
    pub test_result: String,
    pub status: &'static str,
    pub cgm_status: &'static str,
    /// The JSON body.
    pub body: String,
    /// Re-sent once after its first acknowledgement.
    pub duplicate: bool,
    /// Held back and sent in the backlog burst.
    pub backlog: bool,
}

/// Every reading in the order the simulator sends them: the live stream by time, then the
/// backlog burst.
#[derive(Debug, Clone)]
pub struct Workload {
    pub readings: Vec<SimReading>,
    /// How many of `readings`, from the start, are the live stream.
    pub live: usize,
    /// Identifies this run's ids (`testId`, `deviceSn`), so runs do not collide.
    pub run_id: u64,
}

impl Workload {
    pub fn duplicates(&self) -> usize {
        self.readings.iter().filter(|r| r.duplicate).count()
    }
}

/// The body Sinocare sends, with the seed spec's field set (section 1.2.1).
#[derive(Serialize)]
struct Body<'a> {
    data: Data<'a>,
    #[serde(rename = "reservedCode")]
    reserved_code: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    test_id: &'a str,
    device_sn: &'a str,
    test_result: &'a str,
    serial_no: u64,
    test_time: &'a str,
    id_card: &'a str,
    visit_id: &'a str,
    patient_name: &'a str,
    customer_name: &'a str,
    patient_id: &'a str,
    in_serial_id: &'a str,
    status: &'a str,
    cgm_day: u64,
    incre_minute: i64,
    low: Option<f64>,
    high: Option<f64>,
    cgm_status: &'a str,
}

/// Obviously fake patient data, one set per sensor.
struct Patient {
    id_card: String,
    visit_id: String,
    patient_name: String,
    patient_id: String,
    in_serial_id: String,
}

impl Patient {
    fn fake(sensor: usize) -> Self {
        Patient {
            id_card: format!("000000SIM{sensor:05}"),
            visit_id: format!("SIM-VISIT-{sensor:05}"),
            patient_name: format!("Sim Patient {sensor:05}"),
            patient_id: format!("SIM-PATIENT-{sensor:05}"),
            in_serial_id: format!("SIM-INSERIAL-{sensor:05}"),
        }
    }
}

/// A wearer's glucose over time: a fasting baseline, a dawn rise, three meals a day whose
/// times and sizes vary, and smooth sensor noise.
struct Curve {
    baseline: f64,
    amplitude: f64,
    /// (minutes since the sensor's start, peak rise in mmol/L)
    meals: Vec<(f64, f64)>,
    noise: f64,
}

/// Minutes from a meal to its glucose peak.
const MEAL_PEAK_MIN: f64 = 50.0;

impl Curve {
    fn new(rng: &mut Rng, start: NaiveDateTime, minutes: f64) -> Self {
        let amplitude = rng.range(0.6, 1.6);
        let start_of_day = start.num_seconds_from_midnight() as f64 / 60.0;
        let mut meals = Vec::new();
        let days = (minutes / 1440.0).ceil() as i64 + 1;
        for day in -1..days {
            for meal_at in [7.5 * 60.0, 12.25 * 60.0, 18.75 * 60.0] {
                let at = day as f64 * 1440.0 + meal_at + rng.range(-40.0, 40.0) - start_of_day;
                meals.push((at, rng.range(1.5, 5.0) * amplitude));
            }
        }
        Curve { baseline: rng.range(5.0, 7.0), amplitude, meals, noise: 0.0 }
    }

    /// Glucose `minute` minutes after the start, at wall-clock minute-of-day `clock`.
    fn at(&mut self, rng: &mut Rng, minute: f64, clock: f64, warmup: bool) -> f64 {
        // Dawn phenomenon: a rise between about 04:00 and 08:00.
        let dawn = 0.6 * self.amplitude * (-((clock - 360.0) / 80.0).powi(2)).exp();
        let meals: f64 = self
            .meals
            .iter()
            .filter(|(at, _)| minute >= *at && minute - *at < 300.0)
            .map(|(at, size)| {
                let x = (minute - at) / MEAL_PEAK_MIN;
                size * x * (1.0 - x).exp()
            })
            .sum();
        // AR(1) noise: readings drift smoothly, as a sensor's do.
        self.noise = 0.8 * self.noise + 0.15 * rng.normal();
        let mut v = self.baseline + dawn + meals + self.noise + 0.08 * rng.normal();
        if warmup {
            v += 0.6 * rng.normal();
        }
        v.clamp(MIN_MMOL, MAX_MMOL)
    }
}

/// Every reading of the plan, in send order. Deterministic for a given plan.
pub fn generate(plan: &Plan) -> Result<Workload, PlanError> {
    let total = plan.sensors.saturating_mul(plan.readings_per_sensor);
    if !(1..=99_999).contains(&plan.sensors) {
        return Err(PlanError("sensors must be from 1 to 99999".into()));
    }
    if !(1..=999_999).contains(&plan.readings_per_sensor) {
        return Err(PlanError("readings per sensor must be from 1 to 999999".into()));
    }
    if total > 10_000_000 {
        return Err(PlanError("at most 10,000,000 readings in one run".into()));
    }
    if !(0.0..=1.0).contains(&plan.duplicate_rate) {
        return Err(PlanError("duplicate rate must be from 0 to 1".into()));
    }
    if plan.backlog > total {
        return Err(PlanError(format!("backlog ({}) is more than all readings ({total})", plan.backlog)));
    }

    let run_id = mix(plan.seed ^ mix(plan.start.and_utc().timestamp() as u64)) % 1_000_000;
    let mut rng = Rng::new(plan.seed);
    let rps = plan.readings_per_sensor;
    let warmup = WARMUP_READINGS.min(rps / 4);
    let mut readings = Vec::with_capacity(total);
    for sensor in 0..plan.sensors {
        let device_sn = format!("SIM{run_id:06}{sensor:05}");
        let patient = Patient::fake(sensor);
        // Sensors are put on at different times of day, to the second.
        let offset_s = if sensor == 0 { 0 } else { rng.below(24 * 3600) as i64 };
        let start = plan.start + ChronoDuration::seconds(offset_s);
        let mut curve = Curve::new(&mut rng, start, (rps as i64 * INCRE_MINUTE) as f64);
        for k in 0..rps {
            let serial_no = k as u64 + 1;
            let at = start + ChronoDuration::minutes(k as i64 * INCRE_MINUTE);
            let in_warmup = k < warmup;
            let clock = at.num_seconds_from_midnight() as f64 / 60.0;
            let minute = (k as i64 * INCRE_MINUTE) as f64;
            let mut mmol = curve.at(&mut rng, minute, clock, in_warmup);
            if let Some(low) = &plan.low {
                let d = low.depth(minute);
                mmol = (mmol * (1.0 - d) + LOW_MMOL * d).clamp(MIN_MMOL, MAX_MMOL);
            }
            let (status, cgm_status) = match (in_warmup, k + 1 == rps) {
                (_, true) => (if in_warmup { "1" } else { "0" }, "4"),
                (true, false) => ("1", "1"),
                (false, false) => ("0", "2"),
            };
            let test_id = format!("{run_id:06}{sensor:05}{serial_no:06}");
            let test_time = at.format("%Y-%m-%d %H:%M:%S").to_string();
            let test_result = format!("{mmol:.1}");
            let body = serde_json::to_string(&Body {
                data: Data {
                    test_id: &test_id,
                    device_sn: &device_sn,
                    test_result: &test_result,
                    serial_no,
                    test_time: &test_time,
                    id_card: &patient.id_card,
                    visit_id: &patient.visit_id,
                    patient_name: &patient.patient_name,
                    customer_name: "Simulated Hospital",
                    patient_id: &patient.patient_id,
                    in_serial_id: &patient.in_serial_id,
                    status,
                    cgm_day: CGM_DAY,
                    incre_minute: INCRE_MINUTE,
                    low: None,
                    high: None,
                    cgm_status,
                },
                reserved_code: "01",
            })
            .map_err(|e| PlanError(format!("encoding a body: {e}")))?;
            readings.push(SimReading {
                sensor,
                test_id,
                device_sn: device_sn.clone(),
                serial_no,
                test_time,
                at,
                test_result,
                status,
                cgm_status,
                body,
                duplicate: false,
                backlog: false,
            });
        }
    }

    // Exactly round(rate × total) duplicates, spread by a partial shuffle.
    let dups = ((plan.duplicate_rate * total as f64).round() as usize).min(total);
    let mut idx: Vec<usize> = (0..total).collect();
    for i in 0..dups {
        let j = i + rng.below((total - i) as u64) as usize;
        idx.swap(i, j);
        readings[idx[i]].duplicate = true;
    }

    // The backlog: one contiguous stretch per sensor (it was out of reach), as evenly as the
    // sensors allow, sensors taken in a shuffled order.
    if plan.backlog > 0 {
        let per_sensor = plan.backlog.div_ceil(plan.sensors).min(rps);
        let mut order: Vec<usize> = (0..plan.sensors).collect();
        for i in 0..order.len() {
            let j = i + rng.below((order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        let mut left = plan.backlog;
        for sensor in order {
            if left == 0 {
                break;
            }
            let len = per_sensor.min(left);
            let from = rng.below((rps - len + 1) as u64) as usize;
            for r in &mut readings[sensor * rps + from..sensor * rps + from + len] {
                r.backlog = true;
            }
            left -= len;
        }
    }

    if let Some(silent) = &plan.silent {
        readings.retain(|r| !silent.holds(((r.serial_no - 1) as i64 * INCRE_MINUTE) as f64));
    }
    let (mut live, mut backlog): (Vec<_>, Vec<_>) = readings.into_iter().partition(|r| !r.backlog);
    live.sort_by_key(|r| (r.at, r.sensor));
    backlog.sort_by_key(|r| (r.at, r.sensor));
    let live_len = live.len();
    live.extend(backlog);
    Ok(Workload { readings: live, live: live_len, run_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn plan(sensors: usize, rps: usize) -> Plan {
        Plan {
            sensors,
            readings_per_sensor: rps,
            duplicate_rate: 0.1,
            backlog: 0,
            seed: 42,
            start: NaiveDateTime::parse_from_str("2026-03-01 08:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
            low: None,
            silent: None,
        }
    }

    #[test]
    fn a_low_dips_below_urgent_low_and_comes_back_and_a_silent_stretch_sends_nothing() {
        let mut p = plan(2, 100);
        p.duplicate_rate = 0.0;
        p.low = Some(Stretch::parse("90+60").unwrap());
        p.silent = Some(Stretch::parse("210+30").unwrap());
        let w = generate(&p).unwrap();
        for sensor in 0..2 {
            let of =
                |m: i64| w.readings.iter().find(|r| r.sensor == sensor && r.serial_no as i64 == m / INCRE_MINUTE + 1);
            let mmol = |m: i64| of(m).unwrap().test_result.parse::<f64>().unwrap();
            for m in (105..135).step_by(3) {
                assert!(mmol(m) < 3.0, "sensor {sensor} at minute {m}: {}", mmol(m));
            }
            assert!(mmol(87) >= 3.9 && mmol(150) >= 3.9, "in range before and after the low");
            assert!((210..240).step_by(3).all(|m| of(m).is_none()), "nothing sent while silent");
            assert!(of(207).is_some() && of(240).is_some());
        }
        assert_eq!(w.readings.len(), 2 * (100 - 10));
        assert_eq!(generate(&plan(2, 100)).unwrap().readings.len(), 200, "no stretch by default");
    }

    #[test]
    fn stretches_are_parsed_or_refused_with_the_expected_form() {
        assert_eq!(Stretch::parse("60+45"), Ok(Stretch { from: 60.0, minutes: 45.0 }));
        for bad in ["60", "60+0", "-1+5", "a+5", "60+NaN", ""] {
            let e = Stretch::parse(bad).unwrap_err();
            assert!(e.contains("FROM+MINUTES"), "{bad}: {e}");
        }
    }

    #[test]
    fn readings_follow_the_spec_shape_and_a_wear_period() {
        let w = generate(&plan(3, 100)).unwrap();
        assert_eq!(w.readings.len(), 300);
        let ids: HashSet<&str> = w.readings.iter().map(|r| r.test_id.as_str()).collect();
        assert_eq!(ids.len(), 300, "testIds are unique");

        let mut s0: Vec<&SimReading> = w.readings.iter().filter(|r| r.sensor == 0).collect();
        s0.sort_by_key(|r| r.serial_no);
        assert_eq!(s0[0].serial_no, 1);
        assert_eq!(s0[0].test_time, "2026-03-01 08:00:00");
        assert_eq!(s0[1].test_time, "2026-03-01 08:03:00", "one reading every increMinute");
        assert_eq!((s0[0].status, s0[0].cgm_status), ("1", "1"), "warm-up first");
        assert_eq!((s0[20].status, s0[20].cgm_status), ("0", "2"));
        assert_eq!((s0[99].status, s0[99].cgm_status), ("0", "4"), "finished at the end");

        let body: serde_json::Value = serde_json::from_str(&s0[30].body).unwrap();
        assert_eq!(body["reservedCode"], "01");
        let data = body["data"].as_object().unwrap();
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "cgmDay",
                "cgmStatus",
                "customerName",
                "deviceSn",
                "high",
                "idCard",
                "inSerialId",
                "increMinute",
                "low",
                "patientId",
                "patientName",
                "serialNo",
                "status",
                "testId",
                "testResult",
                "testTime",
                "visitId"
            ],
            "the seed's field set"
        );
        assert_eq!(data["testResult"], s0[30].test_result.as_str());
        assert_eq!(data["serialNo"], 31);
        assert_eq!(data["increMinute"], 3);
        assert!(data["patientName"].as_str().unwrap().starts_with("Sim Patient"));
    }

    #[test]
    fn glucose_is_plausible_with_one_decimal() {
        let w = generate(&plan(5, FULL_WEAR_READINGS / 5)).unwrap();
        let values: Vec<f64> = w.readings.iter().map(|r| r.test_result.parse().unwrap()).collect();
        for r in &w.readings {
            let (_, frac) = r.test_result.split_once('.').expect("one decimal");
            assert_eq!(frac.len(), 1, "{}", r.test_result);
        }
        assert!(values.iter().all(|v| (MIN_MMOL..=MAX_MMOL).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((5.0..10.0).contains(&mean), "mean {mean}");
        let max = values.iter().cloned().fold(0.0, f64::max);
        assert!(max > 8.0, "meals show: max {max}");
    }

    #[test]
    fn duplicates_and_backlog_are_exact_and_deterministic() {
        let mut p = plan(4, 50);
        p.backlog = 30;
        let a = generate(&p).unwrap();
        assert_eq!(a.duplicates(), 20);
        assert_eq!(a.readings.iter().filter(|r| r.backlog).count(), 30);
        assert_eq!(a.live, 170);
        assert!(a.readings[a.live..].iter().all(|r| r.backlog), "the backlog comes last");
        assert!(a.readings[..a.live].windows(2).all(|w| w[0].at <= w[1].at), "live stream in time order");
        let b = generate(&p).unwrap();
        assert_eq!(a.readings, b.readings, "same plan, same readings");
        p.seed = 43;
        assert_ne!(generate(&p).unwrap().readings[0].test_id, a.readings[0].test_id, "another run, other ids");
    }

    #[test]
    fn bad_plans_are_refused() {
        let mut p = plan(1, 1);
        assert!(generate(&p).is_ok());
        p.duplicate_rate = 1.5;
        assert!(generate(&p).is_err());
        let mut p = plan(1, 10);
        p.backlog = 11;
        assert!(generate(&p).is_err());
        assert!(generate(&plan(0, 10)).is_err());
    }
}
