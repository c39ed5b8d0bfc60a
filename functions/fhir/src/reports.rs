//! `GET /fhir/DiagnosticReport?device=…&date=…`: the summary's `cgm-summary-pdf`, the
//! ambulatory glucose profile's page as a PDF (the one `agp.pdf` serves), with the summary
//! it reports on (as the `Observation` search computes it, `observations`) included.

use crate::error::{FhirError, bad, fhir_reply, read_error};
use crate::observations::Search;
use crate::urls::{full_url, search_url};
use crate::{DISABLED, FhirService, resources, search};
use cgm_agp::pdf as agp_pdf;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_edge::{Answer, Params};
use cgm_fhir_profiles::{self as profiles, LOINC, SUMMARY_CODE};
use lambda_http::http::StatusCode;

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    /// `DiagnosticReport?device=…&date=…`: the `cgm-summary-pdf` of the summary the same
    /// `Observation` search computes, its PDF the page `agp.pdf` serves (without the
    /// patient's name), the summary's panel and members included.
    pub(crate) async fn reports(&self, p: Params<'_>, base: &str) -> Result<Answer, FhirError> {
        p.only(&["device", "date", "code", "_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let device = p.query("device").ok_or_else(|| bad("device is required: search a sensor's reports by device"))?;
        let device_id = search::reference_id(device, "device", "Device")?;
        let wanted = match p.query("code") {
            None => true,
            Some(v) => search::codes(v, "code", LOINC)?.contains(&SUMMARY_CODE),
        };
        let self_url = search_url(base, "DiagnosticReport", &p.pairs_all(), None);
        let empty = || Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(&self_url, None, &[]))));
        if !wanted {
            return empty();
        }
        let fonts = self.fonts.as_ref().ok_or(FhirError::NotSupported(
            "DiagnosticReport: this server has no fonts to typeset the PDF in (AGP_FONT_DIR)",
        ))?;
        let Some((sn, subject)) = self.searched_device(device_id).await? else { return empty() };
        let search = Search { p, base, self_url: &self_url, sn: &sn, subject: &subject };
        let Some(summary) = self.summary_of(&search).await? else { return empty() };
        let range = self
            .zone
            .local_days(summary.figures.first, summary.figures.last)
            .ok_or_else(|| bad("date: no such days"))?;
        let (_, pdf) = agp_pdf::agp_pdf(&self.store, &self.rollups, &self.zone, &sn, range, None, fonts)
            .await
            .map_err(|e| match e {
                agp_pdf::AgpPdfError::Read(e) => read_error(e),
                agp_pdf::AgpPdfError::Pdf(e) => FhirError::Pdf(e),
            })?;
        let pdf = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(pdf)
        };
        let issued = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = profiles::summary_pdf_report(&summary.figures, &self.naming, &summary.id, &subject, &pdf, &issued);
        let report_url = format!("{base}/DiagnosticReport/{}", report["id"].as_str().unwrap_or_default());
        let mut entries = vec![resources::search_entry(&report_url, &report, resources::SearchMode::Match)];
        entries.extend(
            summary
                .observations
                .iter()
                .map(|o| resources::search_entry(&full_url(base, o), o, resources::SearchMode::Include)),
        );
        let body = resources::searchset(&self_url, None, &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(1).device_sn(sn.as_str()))
    }
}
