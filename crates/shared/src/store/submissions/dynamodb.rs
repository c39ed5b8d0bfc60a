//! The DynamoDB [`SubmissionRequests`]: items of the submissions table keyed
//! `deviceSn` = `request#<id>`, `kind` = `request`.

use crate::store::attr::{Item, classify, is_condition_failure, n, n_u, num, s, scan_all, text};
use aws_sdk_dynamodb::Client;
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::StoreError;
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
        created_at: Timestamp(num(item, ra::CREATED_AT).unwrap_or(0)),
        updated_at: Timestamp(num(item, ra::UPDATED_AT).unwrap_or(0)),
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
