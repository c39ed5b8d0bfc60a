//! `GET /fhir/Observation?device=…&date=…&code=…&_count=…`: a device's readings as a
//! `searchset` Bundle, paged by its `next` link (`_cursor`), or (`code=107931-8`) a
//! `cgm-summary` over whole local days, which the `DiagnosticReport` search
//! (`reports`) reports on too.

use crate::error::{FhirError, bad, fhir_reply, read_error};
use crate::urls::{full_url, search_url};
use crate::{DISABLED, FhirService, resources, search};
use cgm_domain::cursor::{self, QueryHash};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::reads::{Position, ReadStore, ReadingQuery, paging};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::Timestamp;
use cgm_edge::{Answer, Params};
use cgm_fhir_profiles::summary::{SummaryError, summary_figures};
use cgm_fhir_profiles::{self as profiles, GlucoseUnit, LOINC, SUMMARY_CODE};
use chrono::NaiveDate;
use lambda_http::http::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every route answers inside API Gateway's 30 s and the function's timeout.
/// A search page stops filling after this long and answers with what it has and a `next`.
const PAGE_TIME_BUDGET: Duration = Duration::from_secs(20);
/// A page's entries stay well under Lambda's 6 MB reply limit.
const PAGE_BUDGET_BYTES: usize = 4_500_000;
pub const SEARCH_DEFAULT_COUNT: usize = 100;
pub const SEARCH_MAX_COUNT: usize = 1_000;
/// A summary's default period (the consensus reports on 14 days) and its longest.
const SUMMARY_DEFAULT_DAYS: i64 = 14;
const SUMMARY_MAX_DAYS: i64 = 90;

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    pub(crate) async fn observations(&self, p: Params<'_>, base: &str, started: Instant) -> Result<Answer, FhirError> {
        p.only(&["device", "date", "code", "include-warm-up", "_count", "_cursor", "_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let device =
            p.query("device").ok_or_else(|| bad("device is required: search a sensor's observations by device"))?;
        let device_id = search::reference_id(device, "device", "Device")?;
        let count = p.limit("_count", SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT)?;
        let include_warm_up = p.flag("include-warm-up")?;
        let wanted = match p.query("code") {
            None => Wanted::Readings(self.unit),
            Some(v) => {
                let codes = search::codes(v, "code", LOINC)?;
                let units: Vec<GlucoseUnit> = codes.iter().filter_map(|c| GlucoseUnit::of_reading_code(c)).collect();
                let summary = codes.contains(&SUMMARY_CODE);
                if summary && !units.is_empty() {
                    return Err(bad("code: ask for summaries (107931-8) or readings, not both in one search"));
                }
                if units.len() > 1 && units.iter().any(|u| *u != units[0]) {
                    return Err(bad("code: ask for one unit's readings, 105272-9 (mmol/L) or 99504-3 (mg/dL)"));
                }
                match units.first() {
                    _ if summary => Wanted::Summary,
                    Some(u) => Wanted::Readings(*u),
                    // Codes this server never produces match nothing: an empty searchset.
                    None => Wanted::Nothing,
                }
            }
        };
        let self_url = search_url(base, "Observation", &p.pairs_all(), None);
        let empty = || Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(&self_url, None, &[]))));
        // An unknown code matches nothing.
        if wanted == Wanted::Nothing {
            return empty();
        }
        let Some((sn, subject)) = self.searched_device(device_id).await? else { return empty() };
        let search = Search { p, base, self_url: &self_url, sn: &sn, subject: &subject };
        match wanted {
            Wanted::Readings(unit) => self.readings(&search, unit, include_warm_up, count, started).await,
            Wanted::Summary => {
                if include_warm_up || p.query("_cursor").is_some() {
                    return Err(bad("include-warm-up and _cursor are for readings; a summary search has one page"));
                }
                self.summary(&search).await
            }
            Wanted::Nothing => empty(),
        }
    }

    async fn readings(
        &self,
        s: &Search<'_>,
        unit: GlucoseUnit,
        include_warm_up: bool,
        count: usize,
        started: Instant,
    ) -> Result<Answer, FhirError> {
        let (p, base, sn) = (s.p, s.base, s.sn);
        let range = search::date_range(&p.all("date"), &self.zone)?;
        let qh = QueryHash::of(&[
            "fhir-observations",
            sn.as_str(),
            &range.start().ms().to_string(),
            &range.end().ms().to_string(),
            unit.reading_code(),
            if include_warm_up { "all" } else { "valid" },
        ]);
        let start = match p.cursor_param::<Position>("_cursor", qh)? {
            Some(c) if !range.contains(c.measured_at) => return Err(bad("_cursor: cursor is malformed")),
            start => start,
        };
        let device_ref = profiles::device_reference(sn);
        let q = ReadingQuery { device_sn: sn, range, valid_only: !include_warm_up, newest_first: false };
        let (zone, naming, subject) = (self.zone, &self.naming, s.subject);
        let page =
            paging::fill_page(&self.store, &q, start, count, PAGE_BUDGET_BYTES, started + PAGE_TIME_BUDGET, |r| {
                let entry = profiles::reading_observation(r, unit, naming, &zone, subject, &device_ref)
                    .map(|o| resources::search_entry(&full_url(base, &o), &o, resources::SearchMode::Match));
                let size = entry.as_ref().map_or(0, String::len);
                (entry, size)
            })
            .await?;
        let skipped = page.items.iter().filter(|e| e.is_none()).count();
        if skipped > 0 {
            tracing::warn!(skipped, "readings whose instant cannot be written were left out");
        }
        let entries: Vec<String> = page.items.into_iter().flatten().collect();
        let next = page.next.map(|pos| {
            let token = cursor::encode(&pos, qh);
            search_url(base, "Observation", &p.pairs_all(), Some(&token))
        });
        let body = resources::searchset(s.self_url, next.as_deref(), &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(entries.len()).device_sn(sn.as_str()))
    }

    /// A `cgm-summary` over whole local days, computed on demand from the daily rollups
    /// (and the readings of days without one): the panel as the match, its six members as
    /// included entries. No valid readings (or one, which has no CV) match nothing.
    async fn summary(&self, s: &Search<'_>) -> Result<Answer, FhirError> {
        let Some(summary) = self.summary_of(s).await? else {
            return Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(s.self_url, None, &[]))));
        };
        let entries: Vec<String> = summary
            .observations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mode = if i == 0 { resources::SearchMode::Match } else { resources::SearchMode::Include };
                resources::search_entry(&full_url(s.base, o), o, mode)
            })
            .collect();
        let body = resources::searchset(s.self_url, None, &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(1).device_sn(s.sn.as_str()))
    }

    /// The summary a search's `date` values ask for; `None` without two valid readings.
    pub(crate) async fn summary_of(&self, s: &Search<'_>) -> Result<Option<Summary>, FhirError> {
        let (first, last) = self.summary_days(&s.p.all("date"))?;
        let figures =
            summary_figures(&self.store, &self.rollups, &self.zone, s.sn, first, last).await.map_err(|e| match e {
                SummaryError::NoSuchDays => bad(format!("date: {e}")),
                SummaryError::Read(e) => read_error(e),
            })?;
        Ok(figures.map(|figures| {
            let id = profiles::summary_id(s.sn, &figures, self.unit);
            let device_ref = profiles::device_reference(s.sn);
            let observations =
                profiles::summary_observations(&figures, self.unit, &self.naming, &id, s.subject, &device_ref);
            Summary { figures, id, observations }
        }))
    }

    /// The local days a summary covers: from `date` values that fall on whole days
    /// (`ge<day>&le<day>`, a month, `eq<day>`), or the last 14 full days before today; at
    /// most 90.
    fn summary_days(&self, dates: &[&str]) -> Result<(NaiveDate, NaiveDate), FhirError> {
        let zone = &self.zone;
        let (first, last) = if dates.is_empty() {
            let today = zone.local_date(Timestamp::now()).ok_or_else(|| bad("the current time has no local day"))?;
            (today - chrono::Duration::days(SUMMARY_DEFAULT_DAYS), today - chrono::Duration::days(1))
        } else {
            let range = search::date_range(dates, zone)?;
            let whole = "date: a summary covers whole local days; give ge<YYYY-MM-DD> and le<YYYY-MM-DD>";
            let (Some(first), Some(last)) = (zone.local_date(range.start()), zone.local_date(range.end())) else {
                return Err(bad(whole));
            };
            if zone.local_days(first, last) != Some(range) {
                return Err(bad(whole));
            }
            (first, last)
        };
        if (last - first).num_days() + 1 > SUMMARY_MAX_DAYS {
            return Err(bad(format!("date: a summary covers at most {SUMMARY_MAX_DAYS} days")));
        }
        Ok((first, last))
    }
}

/// What an Observation search asks for, from its `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Readings(GlucoseUnit),
    Summary,
    Nothing,
}

/// A summary computed for a search: its figures, its panel's id, the panel and members.
pub(crate) struct Summary {
    pub(crate) figures: profiles::SummaryFigures,
    pub(crate) id: String,
    pub(crate) observations: Vec<Value>,
}

/// One search, once its device and patient are known.
pub(crate) struct Search<'a> {
    pub(crate) p: Params<'a>,
    pub(crate) base: &'a str,
    pub(crate) self_url: &'a str,
    pub(crate) sn: &'a DeviceSn,
    pub(crate) subject: &'a Value,
}
