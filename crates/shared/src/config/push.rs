//! The push route's settings: who may push (`PUSH_KEY` / `PUSH_KEY_PARAM`, read in
//! [`super::Config::from_lookup`]; `ALLOWED_SOURCE_CIDRS`), how `testTime` is read
//! (`SOURCE_TIMEZONE`) and how long storage may take (`PUSH_DEADLINE_MS`).

use super::ConfigError;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::time::SourceZone;
use ipnet::IpNet;

pub const DEFAULT_PUSH_DEADLINE_MS: u64 = 3_000;

/// `ALLOWED_SOURCE_CIDRS`: empty means any source.
pub(super) fn allowed_source_cidrs(non_empty: &impl Fn(&str) -> Option<String>) -> Result<Vec<IpNet>, ConfigError> {
    match non_empty("ALLOWED_SOURCE_CIDRS") {
        None => Ok(Vec::new()),
        Some(list) => parse_cidrs(&list),
    }
}

/// `SOURCE_TIMEZONE`: the zone of Sinocare's zone-less `testTime`.
pub(super) fn source_timezone(non_empty: &impl Fn(&str) -> Option<String>) -> Result<SourceZone, ConfigError> {
    match non_empty("SOURCE_TIMEZONE") {
        None => Ok(SourceZone::default()),
        Some(z) => z.parse().map_err(|e: cgm_domain::time::BadZone| ConfigError::Invalid {
            var: "SOURCE_TIMEZONE",
            reason: e.to_string(),
        }),
    }
}

/// `PUSH_DEADLINE_MS`, well inside Sinocare's 5 s.
pub(super) fn push_deadline_ms(non_empty: &impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    match non_empty("PUSH_DEADLINE_MS") {
        None => Ok(DEFAULT_PUSH_DEADLINE_MS),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if (100..=4_500).contains(&ms) => Ok(ms),
            _ => Err(ConfigError::Invalid {
                var: "PUSH_DEADLINE_MS",
                reason: "expected milliseconds between 100 and 4500 (Sinocare waits 5 s)".into(),
            }),
        },
    }
}

fn parse_cidrs(list: &str) -> Result<Vec<IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            // A bare address means just that host.
            s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError::Invalid {
                    var: "ALLOWED_SOURCE_CIDRS",
                    reason: format!("entry {} is not a CIDR like 203.0.113.0/24", i + 1),
                }
            })
        })
        .collect()
}

/// Splits a resolved `PUSH_KEY` value into its keys (comma-separated, so two can be live
/// while Sinocare moves from the old to the new one).
pub fn split_keys(value: &str) -> Vec<Sensitive<String>> {
    value.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| Sensitive::new(k.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_on_commas() {
        let keys = split_keys(" old-key ,new-key,, ");
        let keys: Vec<&str> = keys.iter().map(|k| k.expose().as_str()).collect();
        assert_eq!(keys, ["old-key", "new-key"]);
    }
}
