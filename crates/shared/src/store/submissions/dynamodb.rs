//! The submissions table, both its layouts, key `deviceSn` and `kind`:
//!
//! - [`DynamoSubmissionRequests`]: one-time submissions, `deviceSn` = `request#<id>`,
//!   `kind` = `request` (asked for by the FHIR function, sent by the submitter);
//! - [`DynamoCheckpointStore`]: the FHIR submitter's checkpoints, `deviceSn` = the device,
//!   `kind` = `readings` or `summary`. Its [`CheckpointStore::open`] scan reads the request
//!   items too; a `kind` that is no checkpoint [`Kind`] makes them no checkpoint, so they
//!   are skipped.

use crate::store::attr::{Item, classify, is_condition_failure, n, n_u, num, s, scan_all, text};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::StoreError;
use cgm_domain::store::submissions::checkpoints::{Checkpoint, CheckpointStore, Kind, Saved, version_limit};
use cgm_domain::store::submissions::{RequestProfiles, RequestStatus, SubmissionRequest, SubmissionRequests};
use cgm_domain::time::Timestamp;

mod ra {
    pub const KEY: &str = "deviceSn";
    pub const KIND: &str = "kind";
    pub const DEVICE: &str = "device";
    pub const FIRST: &str = "first";
    pub const LAST: &str = "last";
    pub const PROFILES: &str = "profiles";
    pub const STATUS: &str = "status";
    pub const ATTEMPTS: &str = "attempts";
    pub const ACCEPTED: &str = "accepted";
    pub const DECLINED: &str = "declined";
    pub const REASON: &str = "reason";
    /// ms since the epoch.
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// Epoch seconds: the table's TTL attribute.
    pub const EXPIRES_AT: &str = "expiresAt";
    pub const VERSION: &str = "version";
}

const KIND: &str = "request";
const KEEP_S: i64 = 90 * 86_400;

fn key(id: &str) -> String {
    format!("request#{id}")
}

#[derive(Debug, Clone)]
pub struct DynamoSubmissionRequests {
    client: Client,
    table: String,
}

impl DynamoSubmissionRequests {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn request_of(item: &Item) -> Option<SubmissionRequest> {
    let id = text(item, ra::KEY)?.strip_prefix("request#")?.to_string();
    let profiles = text(item, ra::PROFILES).unwrap_or_default();
    Some(SubmissionRequest {
        id,
        device_sn: DeviceSn::from(text(item, ra::DEVICE)?.as_str()),
        first: text(item, ra::FIRST)?.parse().ok()?,
        last: text(item, ra::LAST)?.parse().ok()?,
        profiles: RequestProfiles::of(profiles.split(',').filter(|p| !p.is_empty())).ok()?,
        status: RequestStatus::parse(&text(item, ra::STATUS)?)?,
        attempts: num(item, ra::ATTEMPTS).unwrap_or(0),
        accepted: num(item, ra::ACCEPTED).unwrap_or(0),
        declined: num(item, ra::DECLINED).unwrap_or(0),
        reason: text(item, ra::REASON),
        created_at: Timestamp::from_ms(num(item, ra::CREATED_AT).unwrap_or(0)),
        updated_at: Timestamp::from_ms(num(item, ra::UPDATED_AT).unwrap_or(0)),
        version: num(item, ra::VERSION).unwrap_or(0),
    })
}

fn item_of(r: &SubmissionRequest) -> Item {
    let mut item = Item::from([
        (ra::KEY.to_string(), s(&key(&r.id))),
        (ra::KIND.to_string(), s(KIND)),
        (ra::DEVICE.to_string(), s(r.device_sn.as_str())),
        (ra::FIRST.to_string(), s(&r.first.format("%Y-%m-%d").to_string())),
        (ra::LAST.to_string(), s(&r.last.format("%Y-%m-%d").to_string())),
        (ra::PROFILES.to_string(), s(&r.profiles.names().join(","))),
        (ra::STATUS.to_string(), s(r.status.as_str())),
        (ra::ATTEMPTS.to_string(), n_u(u64::from(r.attempts))),
        (ra::ACCEPTED.to_string(), n_u(r.accepted)),
        (ra::DECLINED.to_string(), n_u(r.declined)),
        (ra::CREATED_AT.to_string(), n(r.created_at.ms())),
        (ra::UPDATED_AT.to_string(), n(r.updated_at.ms())),
        (ra::EXPIRES_AT.to_string(), n(r.created_at.ms() / 1000 + KEEP_S)),
        (ra::VERSION.to_string(), n_u(r.version + 1)),
    ]);
    if let Some(reason) = &r.reason {
        item.insert(ra::REASON.to_string(), s(reason));
    }
    item
}

impl DynamoSubmissionRequests {
    /// Puts `r` if `condition` holds (`false`: it did not).
    async fn write(
        &self,
        r: &SubmissionRequest,
        condition: &str,
        name: (&str, &str),
        value: Option<aws_sdk_dynamodb::types::AttributeValue>,
    ) -> Result<bool, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(r)))
            .condition_expression(condition)
            .expression_attribute_names(name.0, name.1);
        let req = match value {
            Some(v) => req.expression_attribute_values(":v", v),
            None => req,
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

impl SubmissionRequests for DynamoSubmissionRequests {
    async fn create(&self, r: &SubmissionRequest) -> Result<bool, StoreError> {
        self.write(r, "attribute_not_exists(#k)", ("#k", ra::KEY), None).await
    }

    async fn get(&self, id: &str) -> Result<Option<SubmissionRequest>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ra::KEY, s(&key(id)))
            .key(ra::KIND, s(KIND))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().and_then(request_of))
    }

    async fn put(&self, r: &SubmissionRequest) -> Result<bool, StoreError> {
        self.write(r, "#v = :v", ("#v", ra::VERSION), Some(n_u(r.version))).await
    }

    async fn queued(&self) -> Result<Vec<SubmissionRequest>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#kind = :kind AND #st = :queued")
            .expression_attribute_names("#kind", ra::KIND)
            .expression_attribute_names("#st", ra::STATUS)
            .expression_attribute_values(":kind", s(KIND))
            .expression_attribute_values(":queued", s(RequestStatus::Queued.as_str()))
            .consistent_read(true);
        let mut out: Vec<SubmissionRequest> = scan_all(scan).await?.iter().filter_map(request_of).collect();
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }
}

// The FHIR submitter's checkpoints.

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
        updated_at: Timestamp::from_ms(num(item, sa::UPDATED_AT).unwrap_or(0)),
        days: item
            .get(sa::DAYS)
            .and_then(|v| v.as_m().ok())
            .map(|m| m.iter().filter_map(|(d, n)| Some((d.parse().ok()?, n.as_n().ok()?.parse().ok()?))).collect())
            .unwrap_or_default(),
        done: item.get(sa::DONE).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        completed_at: Timestamp::from_ms(num(item, sa::COMPLETED_AT).unwrap_or(0)),
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
