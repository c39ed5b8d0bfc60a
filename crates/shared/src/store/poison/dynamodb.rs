//! The DynamoDB implementation of [`PoisonStore`]: items of the quarantine table with
//! `source` = `stream`, written with one conditional `PutItem` and the table's TTL.

use crate::store::attr::{self, Item, classify, is_condition_failure, n, num, s, scan_all, text};
use crate::store::push::dynamodb::DEFAULT_RAW_BODY_RETENTION_DAYS;
use aws_sdk_dynamodb::Client;
use cgm_domain::ids::{DeviceSn, TestId};
use cgm_domain::store::StoreError;
use cgm_domain::store::poison::{KEY_PREFIX, PoisonStore, Poisoned, SEQUENCE_NUMBER, SOURCE, STREAM};
use cgm_domain::store::push::Recorded;
use cgm_domain::time::Timestamp;

#[derive(Debug, Clone)]
pub struct DynamoPoisonStore {
    client: Client,
    /// The quarantine table.
    table: String,
    /// How long a record is kept before the table's TTL removes it, as the push route's
    /// bodies are (`RAW_BODY_RETENTION_DAYS`).
    retention_s: i64,
}

impl DynamoPoisonStore {
    pub fn new(client: Client, quarantine_table: String) -> Self {
        DynamoPoisonStore { client, table: quarantine_table, retention_s: 0 }.retaining(DEFAULT_RAW_BODY_RETENTION_DAYS)
    }

    /// Records kept `days` days.
    pub fn retaining(mut self, days: u64) -> Self {
        self.retention_s = i64::try_from(days).unwrap_or(i64::MAX).saturating_mul(86_400);
        self
    }
}

/// The item a record is kept as.
pub fn poison_item(p: &Poisoned, retention_s: i64) -> Item {
    let mut item = Item::with_capacity(8);
    item.insert(attr::BODY_SHA256.into(), s(&p.key));
    item.insert(SOURCE.into(), s(STREAM));
    item.insert(attr::REASON.into(), s(&p.reason));
    item.insert(attr::TEST_ID.into(), s(p.test_id.as_str()));
    item.insert(attr::DEVICE_SN.into(), s(p.device_sn.as_str()));
    item.insert(SEQUENCE_NUMBER.into(), s(&p.sequence_number));
    item.insert(attr::RECEIVED_AT.into(), n(p.at.ms()));
    item.insert(attr::EXPIRES_AT.into(), n(p.at.ms().div_euclid(1000).saturating_add(retention_s)));
    item
}

/// The record a quarantine item holds, or `None` for a push body (or an item that lacks
/// what a record needs).
pub fn poisoned_of(item: &Item) -> Option<Poisoned> {
    let key = text(item, attr::BODY_SHA256).filter(|k| k.starts_with(KEY_PREFIX))?;
    if text(item, SOURCE).as_deref() != Some(STREAM) {
        return None;
    }
    Some(Poisoned {
        key,
        test_id: TestId::new(text(item, attr::TEST_ID)?),
        device_sn: DeviceSn::new(text(item, attr::DEVICE_SN).unwrap_or_default()),
        sequence_number: text(item, SEQUENCE_NUMBER).unwrap_or_default(),
        reason: text(item, attr::REASON).unwrap_or_default(),
        at: Timestamp::from_ms(num(item, attr::RECEIVED_AT).unwrap_or_default()),
    })
}

impl PoisonStore for DynamoPoisonStore {
    async fn put_poison(&self, p: &Poisoned) -> Result<Recorded, StoreError> {
        attr::put_new(&self.client, &self.table, attr::BODY_SHA256, poison_item(p, self.retention_s)).await
    }

    /// One filtered scan: the quarantine is expected to be small.
    async fn poisoned(&self) -> Result<Vec<Poisoned>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("#s = :s")
            .expression_attribute_names("#s", SOURCE)
            .expression_attribute_values(":s", s(STREAM));
        let mut all: Vec<Poisoned> = scan_all(scan).await?.iter().filter_map(poisoned_of).collect();
        all.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        Ok(all)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        // Only ever a stream record: a mistaken key must not remove a push body.
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::BODY_SHA256, s(key))
            .condition_expression("#s = :s")
            .expression_attribute_names("#s", SOURCE)
            .expression_attribute_values(":s", s(STREAM))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_reads_back_as_its_record_and_a_push_body_as_none() {
        let p = Poisoned::new(
            "t1".into(),
            "SN".into(),
            "4200",
            &["the day has no instants"],
            Timestamp::from_ms(1_700_000_000_000),
        );
        let item = poison_item(&p, 86_400);
        assert_eq!(poisoned_of(&item), Some(p));
        assert_eq!(num::<i64>(&item, attr::EXPIRES_AT), Some(1_700_000_000 + 86_400));
        let mut body = item.clone();
        body.insert(attr::BODY_SHA256.into(), s(&"ab".repeat(32)));
        body.remove(SOURCE);
        assert_eq!(poisoned_of(&body), None);
    }
}
