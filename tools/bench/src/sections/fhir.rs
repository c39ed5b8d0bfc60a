use crate::stats::{ms, summarize};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Figure 11: the FHIR read API on the local stack with one 15-day sensor (7,200 readings,
/// its session naming a patient): a search page of 1,000 readings, the page after it, a
/// poll of the last hour, a 14-day summary computed from the rollups, and the sensor.
pub async fn fhir(runs: usize) -> anyhow::Result<String> {
    const SN: &str = "BENCH-FHIR-15D";
    const READINGS: usize = super::SENSOR_READINGS;
    let super::LiveSensor { mut child, base, http, last_at } =
        super::live_sensor("fhir", SN, json!({"patientId": "BENCH-MPI-1"})).await?;
    // The session (which names the patient) and the rollups come from the stream consumer.
    let zone = cgm_domain::time::SourceZone::default();
    let today =
        zone.local_date(cgm_domain::time::Timestamp::from_ms(last_at)).ok_or_else(|| anyhow::anyhow!("a day"))?;
    let (first, last) = (today - chrono::Duration::days(14), today - chrono::Duration::days(1));
    let summary = format!("/fhir/Observation?device={SN}&code=107931-8&date=ge{first}&date=le{last}");
    let waited = Instant::now();
    loop {
        let r = http.get(format!("{base}{summary}")).send().await?;
        let b: Value = if r.status() == 200 { r.json().await? } else { Value::Null };
        let days = b["entry"]
            .as_array()
            .and_then(|e| e.iter().map(|e| &e["resource"]).find(|o| o["code"]["coding"][0]["code"] == "104636-6"));
        if days.is_some_and(|o| o["valueQuantity"]["value"] == 14) {
            break;
        }
        anyhow::ensure!(waited.elapsed() < Duration::from_secs(300), "the stream consumer did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_page = format!("{base}/fhir/Observation?device={SN}&_count=1000");
    let r: Value = http.get(&first_page).send().await?.json().await?;
    let second_page = r["link"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
        .and_then(|l| l["url"].as_str())
        .ok_or_else(|| anyhow::anyhow!("the first page has no next link"))?
        .to_string();
    let hour_ago = chrono::DateTime::from_timestamp_millis(last_at - 3_600_000)
        .ok_or_else(|| anyhow::anyhow!("an instant"))?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cases = [
        ("`Observation?device=…&_count=1000` (the first page)", first_page),
        ("the page after it (its `next` link)", second_page),
        (
            "`Observation?device=…&date=gt<1 h ago>` (a poll)",
            format!("{base}/fhir/Observation?device={SN}&date=gt{hour_ago}"),
        ),
        ("`Observation?code=107931-8` over 14 whole days (summary and members)", format!("{base}{summary}")),
        (
            "`DiagnosticReport?…` over the same 14 days (the summary's PDF report and the summary)",
            format!("{base}/fhir/DiagnosticReport?device={SN}&date=ge{first}&date=le{last}"),
        ),
        ("`Device/{id}`", format!("{base}/fhir/Device/{SN}")),
    ];
    let mut rows = Vec::new();
    for (name, url) in &cases {
        let mut lat = Vec::new();
        let (mut entries, mut bytes) = (0, 0);
        for i in 0..=runs {
            let t = Instant::now();
            let r = http.get(url).send().await?;
            anyhow::ensure!(r.status() == 200, "{name}: {}", r.status());
            let body = r.bytes().await?;
            if i > 0 {
                lat.push(t.elapsed());
            }
            bytes = body.len();
            let v: Value = serde_json::from_slice(&body)?;
            entries = v["entry"].as_array().map_or(1, Vec::len);
        }
        let s = summarize(&lat);
        rows.push(format!(
            "| {name} | {entries} | {:.0} KB | {} | {} |",
            bytes as f64 / 1024.0,
            ms(s.median),
            ms(s.p99)
        ));
    }
    let submissions = submit_runs(SN, 3).await?;
    let _ = child.kill().await;
    let mut o = String::new();
    writeln!(o, "### 11. FHIR read API: one 15-day sensor, release `cgm-dev`\n")?;
    writeln!(
        o,
        "{READINGS} readings pushed through the push route (its session naming a patient, its days rolled up), then \
         each request {runs} times after one warm-up, one at a time over HTTP/1.1 keep-alive; latency to the whole body.\n"
    )?;
    writeln!(o, "| request | entries | body | p50 | p99 |")?;
    writeln!(o, "|---|---|---|---|---|")?;
    for r in rows {
        writeln!(o, "{r}")?;
    }
    writeln!(o)?;
    writeln!(o, "### 12. FHIR submission: the same sensor to a stand-in EHR, end to end\n")?;
    writeln!(
        o,
        "The submitter (release, in the bench's process) from its cold start: SMART discovery, a token for an ES384 \
         client assertion, then every valid reading in bundles of 500 with `ifNoneExist`, and the one whole 14-day \
         summary with its PDF, to the stand-in EHR (`cgm-ehr`, in-process, conditional create) on loopback; checkpoints in \
         DynamoDB Local. Each run starts with no checkpoint and an empty EHR.\n"
    )?;
    writeln!(o, "| run | readings accepted | bundles | wall time | readings/s |")?;
    writeln!(o, "|---|---|---|---|---|")?;
    for r in submissions {
        writeln!(o, "{r}")?;
    }
    writeln!(o)?;
    Ok(o)
}

/// `runs` submissions of device `sn` (already pushed and rolled up in cgm-dev's tables) to a
/// fresh stand-in EHR each, from the submitter's cold start: one row each.
async fn submit_runs(sn: &str, runs: usize) -> anyhow::Result<Vec<String>> {
    use cgm_domain::store::submissions::checkpoints::{CheckpointStore, Kind};
    let mut rows = Vec::new();
    // Between runs the checkpoints are deleted with one client, made once.
    let local = cgm_shared::Config::from_lookup(|k| (k == "DYNAMODB_ENDPOINT").then(cgm_tests::endpoint))?;
    let client = cgm_shared::aws::dynamodb(
        &cgm_shared::aws::sdk_config(&local).await,
        Some(&cgm_tests::endpoint()),
        cgm_shared::aws::CallLimits::READ,
    );
    for run in 1..=runs {
        let ehr = cgm_tests::fake_ehr::FakeEhr::start(cgm_tests::fake_ehr::TestKey::es384()).await;
        let base = ehr.base();
        let env: std::collections::HashMap<&str, String> = [
            ("DYNAMODB_ENDPOINT", cgm_tests::endpoint()),
            ("FHIR_EHR_BASE_URL", base),
            ("FHIR_CLIENT_ID", cgm_tests::fake_ehr::CLIENT_ID.to_string()),
            ("FHIR_CLIENT_KEY_ID", cgm_tests::fake_ehr::KEY_ID.to_string()),
            ("FHIR_CLIENT_SIGNING_ALG", "ES384".to_string()),
            ("FHIR_CLIENT_PRIVATE_KEY", ehr.private_pem().to_string()),
            ("FHIR_PATIENT_IDENTIFIER_SYSTEM", "urn:bench:mpi".to_string()),
            ("AGP_FONT_DIR", cgm_local::font_dir().display().to_string()),
        ]
        .into_iter()
        .collect();
        let cfg = cgm_shared::Config::from_lookup(|k| env.get(k).cloned())?;
        let t = Instant::now();
        let submitter = cgm_fhir_submit::from_config(&cfg).await?;
        let sn_id = cgm_domain::ids::DeviceSn::from(sn);
        let until = Instant::now() + Duration::from_secs(600);
        let report = submitter.run_device(&sn_id, cgm_domain::time::Timestamp::now(), until).await?;
        let took = t.elapsed();
        anyhow::ensure!(report.unfinished == 0, "run {run} left work: {report:?}");
        let readings = submitter.checkpoints().get(&sn_id, Kind::Readings).await?.accepted;
        rows.push(format!(
            "| {run} | {readings} | {} | {} | {:.0} |",
            report.bundles,
            ms(took),
            readings as f64 / took.as_secs_f64()
        ));
        // The next run starts from nothing.
        for kind in [Kind::Readings, Kind::Summary] {
            let c = submitter.checkpoints().get(&sn_id, kind).await?;
            anyhow::ensure!(kind == Kind::Summary || c.accepted > 0, "run {run} moved no readings checkpoint");
            client
                .delete_item()
                .table_name(&cfg.tables.submissions)
                .key("deviceSn", aws_sdk_dynamodb::types::AttributeValue::S(sn.to_string()))
                .key("kind", aws_sdk_dynamodb::types::AttributeValue::S(kind.as_str().to_string()))
                .send()
                .await?;
        }
    }
    Ok(rows)
}
