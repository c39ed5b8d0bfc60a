use super::{BENCH_KEY, body};
use crate::stats::{ms, summarize};
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use cgm_domain::push::parse_push;
use cgm_domain::store::push::Arrival;
use cgm_edge::HttpService;
use cgm_shared::store::push::dynamodb::reading_item;
use cgm_tests::{Stack, push_request};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Figure 1: the push handler with a `lambda_http` request vs a bare conditional PutItem
/// of the same kind of item, interleaved, same process, client and table.
pub async fn overhead(n: usize) -> anyhow::Result<String> {
    let stack = Stack::new().await;
    let cfg = stack.config(&[("PUSH_KEY", BENCH_KEY)]);
    let svc = cgm_push::from_config(&cfg).await?;
    let client = svc.store().client().clone();
    let table = stack.table("READINGS_TABLE").to_string();
    let (mut handler, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let zone = cfg.source_timezone;
    for i in 0..(n + 200) {
        let a = body(&format!("h-{i}"), i as u64);
        let req = push_request(&a, &format!("key={BENCH_KEY}"), "203.0.113.10");
        let t = Instant::now();
        let resp = svc.handle(req).await;
        let dh = t.elapsed();
        anyhow::ensure!(resp.status() == 200, "handler answered {}", resp.status());

        let b = body(&format!("b-{i}"), i as u64);
        let t = Instant::now();
        // What the handler cannot avoid doing either: parse, map, one conditional write.
        let reading = parse_push(b.as_bytes(), &zone).map_err(|e| anyhow::anyhow!("{e}"))?;
        let item = reading_item(&reading, &Arrival { received_at_ms: 0, request_id: String::new() });
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(testId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await?;
        let db = t.elapsed();
        if i >= 200 {
            handler.push(dh);
            bare.push(db);
        }
    }
    let (h, b) = (summarize(&handler), summarize(&bare));
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    let mut o = String::new();
    writeln!(o, "### 1. Handler overhead (N = {n} each, interleaved, after 200 warm-up pairs)\n")?;
    writeln!(o, "| | median | p99 |\n|---|---|---|")?;
    writeln!(o, "| push handler (lambda_http request → reply) | {} | {} |", ms(h.median), ms(h.p99))?;
    writeln!(o, "| parse + item + bare conditional PutItem | {} | {} |", ms(b.median), ms(b.p99))?;
    writeln!(
        o,
        "| **ratio** (target ≤ 1.10 / ≤ 1.25) | **{:.3}** | **{:.3}** |\n",
        ratio(h.median, b.median),
        ratio(h.p99, b.p99)
    )?;
    Ok(o)
}
