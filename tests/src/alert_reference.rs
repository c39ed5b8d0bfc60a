//! A simple in-order reference model of the glucose alerts, written apart from the
//! production code (`cgm_domain::alerts`) to check it: take all of a device's readings,
//! keep the ones that may raise an alert, sort them by measured time and walk them once.
//! No windows, no ids, no reconciliation: what a person would compute on paper.

/// One reading as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefReading {
    pub at_ms: i64,
    pub serial: u64,
    pub mmol: f64,
    pub received_ms: i64,
    pub valid: bool,
}

/// The settings the model needs (the production defaults unless a test says otherwise).
#[derive(Debug, Clone, Copy)]
pub struct RefSettings {
    pub hold_minutes: i64,
    pub max_age_minutes: i64,
    pub clock_ahead_minutes: i64,
}

/// One episode: its kind as the events name it, the reading that opened it and the one that
/// resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefEpisode {
    pub kind: &'static str,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
}

const KINDS: [&str; 5] = ["urgent_low", "low", "high", "very_high", "fast_fall"];

/// The episodes in-order arrival gives, by kind then opening.
pub fn episodes(readings: &[RefReading], s: RefSettings) -> Vec<RefEpisode> {
    let min = 60_000;
    let mut rs: Vec<RefReading> = readings
        .iter()
        .copied()
        .filter(|r| {
            r.valid
                && r.received_ms - r.at_ms <= s.max_age_minutes * min
                && r.at_ms - r.received_ms <= s.clock_ahead_minutes * min
        })
        .collect();
    rs.sort_by_key(|a| (a.at_ms, a.serial));
    rs.dedup_by(|a, b| (a.at_ms, a.serial) == (b.at_ms, b.serial));
    let mut out = Vec::new();
    for kind in KINDS {
        let hold = if kind == "urgent_low" { 0 } else { s.hold_minutes * min };
        let mut pending: Option<i64> = None;
        let mut open: Option<i64> = None;
        for (i, r) in rs.iter().enumerate() {
            let holds = match kind {
                "urgent_low" => r.mmol < 3.0,
                "low" => r.mmol < 3.9,
                "high" => r.mmol > 10.0,
                "very_high" => r.mmol > 13.9,
                _ => {
                    // mg/dL per minute (18.016 mg/dL per mmol/L) from the previous reading,
                    // within 15 minutes; a fall of 2 or more is fast.
                    i > 0 && {
                        let p = rs[i - 1];
                        let dt = r.at_ms - p.at_ms;
                        dt > 0 && dt <= 15 * min && (r.mmol - p.mmol) * 18.016 / (dt as f64 / 60_000.0) <= -2.0
                    }
                }
            };
            if !holds {
                pending = None;
                if let Some(o) = open.take() {
                    out.push(RefEpisode { kind, opened_at: o, resolved_at: Some(r.at_ms) });
                }
                continue;
            }
            if open.is_none() {
                let since = *pending.get_or_insert(r.at_ms);
                if r.at_ms - since >= hold {
                    open = Some(r.at_ms);
                    pending = None;
                }
            }
        }
        if let Some(o) = open {
            out.push(RefEpisode { kind, opened_at: o, resolved_at: None });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(i: i64, mmol: f64) -> RefReading {
        RefReading { at_ms: i * 180_000, serial: i as u64, mmol, received_ms: i * 180_000 + 10_000, valid: true }
    }

    #[test]
    fn the_model_counts_as_the_consensus_does() {
        let s = RefSettings { hold_minutes: 15, max_age_minutes: 10, clock_ahead_minutes: 5 };
        // 2.8 once, then 3.5 for 15 minutes, then 5.0; the same readings in any order.
        let mut rs: Vec<RefReading> =
            [5.0, 2.8, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 5.0].iter().enumerate().map(|(i, v)| r(i as i64, *v)).collect();
        rs.reverse();
        let e = episodes(&rs, s);
        assert_eq!(
            e,
            vec![
                RefEpisode { kind: "low", opened_at: 6 * 180_000, resolved_at: Some(8 * 180_000) },
                RefEpisode { kind: "urgent_low", opened_at: 180_000, resolved_at: Some(2 * 180_000) },
            ]
        );
    }
}
