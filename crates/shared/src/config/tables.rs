//! The DynamoDB tables' names (`*_TABLE`).

/// DynamoDB table names, each from the variable the template sets with `!Ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub readings: String,
    pub conflicts: String,
    pub quarantine: String,
    /// Partner API user tokens, by `open_id`.
    pub tokens: String,
    /// Which `open_id` owns a device, learned from the partner API's answers.
    pub device_owners: String,
    /// Nightscout follower tokens of the read side, stored hashed, by `tokenId`.
    pub follow_tokens: String,
    /// Daily rollups, by `deviceSn` and local `day`, written by the stream consumer.
    pub rollups: String,
    /// Sensor sessions and their alerts, by `deviceSn`, written by the stream consumer.
    pub sensors: String,
    /// The FHIR submitter's checkpoints, by `deviceSn` and `kind`.
    pub submissions: String,
}

impl Tables {
    /// The environment variable that names each table; the local stack matches these with
    /// the template's `!Ref`s.
    pub const VARS: [&'static str; 9] = [
        "READINGS_TABLE",
        "CONFLICTS_TABLE",
        "QUARANTINE_TABLE",
        "TOKENS_TABLE",
        "DEVICE_OWNERS_TABLE",
        "FOLLOW_TOKENS_TABLE",
        "ROLLUPS_TABLE",
        "SENSORS_TABLE",
        "SUBMISSIONS_TABLE",
    ];
}

/// Each table's name, its default the table's logical id (what the local stack creates).
pub(super) fn tables(non_empty: &impl Fn(&str) -> Option<String>) -> Tables {
    let table = |var: &'static str, default: &str| non_empty(var).unwrap_or_else(|| default.to_string());
    Tables {
        readings: table("READINGS_TABLE", "ReadingsTable"),
        conflicts: table("CONFLICTS_TABLE", "ConflictsTable"),
        quarantine: table("QUARANTINE_TABLE", "QuarantineTable"),
        tokens: table("TOKENS_TABLE", "PartnerTokensTable"),
        device_owners: table("DEVICE_OWNERS_TABLE", "DeviceOwnersTable"),
        follow_tokens: table("FOLLOW_TOKENS_TABLE", "FollowTokensTable"),
        rollups: table("ROLLUPS_TABLE", "RollupsTable"),
        sensors: table("SENSORS_TABLE", "SensorsTable"),
        submissions: table("SUBMISSIONS_TABLE", "SubmissionsTable"),
    }
}
