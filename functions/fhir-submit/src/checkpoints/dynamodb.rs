//! The DynamoDB [`CheckpointStore`]: the submissions table, key `deviceSn` and `kind`.
//!
//! The same table holds the one-time submissions, in their own layout
//! (`cgm_shared::store::submissions::dynamodb`: `deviceSn` = `request#<id>`, `kind` =
//! `request`). [`CheckpointStore::open`]'s scan reads those items too; a `kind` that is no
//! [`Kind`] makes them no checkpoint, so they are skipped.

use super::{Checkpoint, CheckpointStore, Kind, Saved, version_limit};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::StoreError;
use cgm_domain::time::Timestamp;
use cgm_shared::store::attr::{Item, classify, is_condition_failure, n, n_u, num, s, scan_all, text};

pub mod submission_attr {
    pub const DEVICE_SN: &str = "deviceSn";
    pub const KIND: &str = "kind";
    pub const THROUGH: &str = "through";
    pub const ACCEPTED: &str = "accepted";
    pub const DECLINED: &str = "declined";
    /// ms since the epoch.
    pub const UPDATED_AT: &str = "updatedAt";
    /// A map of local day (`YYYY-MM-DD`) to its reading count when last covered.
    pub const DAYS: &str = "days";
    /// Present (true) once the device's session ended and all of it was sent.
    pub const DONE: &str = "done";
    /// ms since the epoch: when a run last sent every reading up to the newest.
    pub const COMPLETED_AT: &str = "completedAt";
    pub const VERSION: &str = "version";
}
use submission_attr as sa;

#[derive(Debug, Clone)]
pub struct DynamoCheckpointStore {
    client: Client,
    table: String,
}

impl DynamoCheckpointStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn checkpoint_of(item: &Item) -> Option<Checkpoint> {
    Some(Checkpoint {
        device_sn: DeviceSn::from(text(item, sa::DEVICE_SN)?.as_str()),
        kind: Kind::parse(&text(item, sa::KIND)?)?,
        through: text(item, sa::THROUGH),
        accepted: num(item, sa::ACCEPTED).unwrap_or(0),
        declined: num(item, sa::DECLINED).unwrap_or(0),
        updated_at: Timestamp(num(item, sa::UPDATED_AT).unwrap_or(0)),
        days: item
            .get(sa::DAYS)
            .and_then(|v| v.as_m().ok())
            .map(|m| m.iter().filter_map(|(d, n)| Some((d.parse().ok()?, n.as_n().ok()?.parse().ok()?))).collect())
            .unwrap_or_default(),
        done: item.get(sa::DONE).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        completed_at: Timestamp(num(item, sa::COMPLETED_AT).unwrap_or(0)),
        version: num(item, sa::VERSION).unwrap_or(0),
    })
}

impl CheckpointStore for DynamoCheckpointStore {
    async fn get(&self, device_sn: &DeviceSn, kind: Kind) -> Result<Checkpoint, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(sa::DEVICE_SN, s(device_sn.as_str()))
            .key(sa::KIND, s(kind.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().and_then(checkpoint_of).unwrap_or_else(|| Checkpoint::new(device_sn.clone(), kind)))
    }

    async fn put(&self, c: &Checkpoint) -> Result<Saved, StoreError> {
        let Some(next) = c.version.checked_add(1) else { return Err(version_limit()) };
        let mut item = Item::from([
            (sa::DEVICE_SN.to_string(), s(c.device_sn.as_str())),
            (sa::KIND.to_string(), s(c.kind.as_str())),
            (sa::ACCEPTED.to_string(), n_u(c.accepted)),
            (sa::DECLINED.to_string(), n_u(c.declined)),
            (sa::UPDATED_AT.to_string(), n(c.updated_at.ms())),
            (sa::VERSION.to_string(), n_u(next)),
        ]);
        if let Some(t) = &c.through {
            item.insert(sa::THROUGH.to_string(), s(t));
        }
        if !c.days.is_empty() {
            let days = c.days.iter().map(|(d, n)| (d.format("%Y-%m-%d").to_string(), n_u(*n))).collect();
            item.insert(sa::DAYS.to_string(), AttributeValue::M(days));
        }
        if c.done {
            item.insert(sa::DONE.to_string(), AttributeValue::Bool(true));
        }
        if c.completed_at.ms() > 0 {
            item.insert(sa::COMPLETED_AT.to_string(), n(c.completed_at.ms()));
        }
        let req = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let req = if c.version == 0 {
            req.condition_expression("attribute_not_exists(#k)").expression_attribute_names("#k", sa::DEVICE_SN)
        } else {
            req.condition_expression("#v = :v")
                .expression_attribute_names("#v", sa::VERSION)
                .expression_attribute_values(":v", n_u(c.version))
        };
        match req.send().await {
            Ok(_) => Ok(Saved::Stored),
            Err(e) if is_condition_failure(&e) => Ok(Saved::Conflict),
            Err(e) => Err(classify(e)),
        }
    }

    async fn open(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_not_exists(#d)")
            .expression_attribute_names("#d", sa::DONE);
        Ok(scan_all(scan).await?.iter().filter_map(checkpoint_of).collect())
    }
}
