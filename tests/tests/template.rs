//! The SAM template's security and operations rules, read from infra/template.yaml (and
//! samconfig.toml) as shipped. Files only; no AWS, no DynamoDB.

use cgm_local::repo_root;
use cgm_shared::store::attr;
use serde_norway::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("valid YAML")
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"].as_mapping().expect("Resources").iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v)).collect()
}

/// Every mapping in `v` that has `key`, anywhere (through !If and lists too).
fn find_all<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            if m.contains_key(key) {
                out.push(v);
            }
            m.values().for_each(|x| find_all(x, key, out));
        }
        Value::Sequence(s) => s.iter().for_each(|x| find_all(x, key, out)),
        Value::Tagged(t) => find_all(&t.value, key, out),
        _ => {}
    }
}

fn text(v: &Value) -> String {
    serde_norway::to_string(v).unwrap_or_default()
}

#[test]
fn kms_decrypt_is_granted_only_through_the_services_that_use_the_key() {
    let t = template();
    let mut statements = Vec::new();
    find_all(&t["Resources"], "Action", &mut statements);
    let decrypts: Vec<&&Value> = statements.iter().filter(|s| text(&s["Action"]).contains("kms:Decrypt")).collect();
    assert!(decrypts.len() >= 3, "each function that reads encrypted data has its kms:Decrypt");
    for s in decrypts {
        let via = text(&s["Condition"]["StringEquals"]["kms:ViaService"]);
        for service in ["dynamodb.${AWS::Region}.${AWS::URLSuffix}", "ssm.${AWS::Region}.${AWS::URLSuffix}"] {
            assert!(
                via.contains(service),
                "kms:Decrypt without kms:ViaService {service} (partition-aware): {}",
                text(s)
            );
        }
    }
}

#[test]
fn the_read_side_reads_an_index_without_patient_fields_and_nothing_else_of_the_table() {
    let t = template();
    let readings = &t["Resources"]["ReadingsTable"]["Properties"];
    let index = readings["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|i| i["IndexName"].as_str() == Some(attr::DEVICE_TIME_INDEX))
        .expect("the index the read store queries is in the template");
    assert_eq!(index["Projection"]["ProjectionType"].as_str(), Some("INCLUDE"));
    let mut projected: Vec<&str> =
        index["Projection"]["NonKeyAttributes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    projected.sort();
    let mut want = attr::READS_PROJECTION.to_vec();
    want.sort();
    assert_eq!(projected, want, "the template projects what the read store fetches");
    for p in attr::PERSONAL {
        assert!(!projected.contains(&p), "{p} is projected");
    }
    // The read function may Query that index, not the table or any other index.
    let policies = text(&t["Resources"]["ReadFunction"]["Properties"]["Policies"]);
    assert!(policies.contains(&format!("${{ReadingsTable.Arn}}/index/{}", attr::DEVICE_TIME_INDEX)), "{policies}");
    assert!(
        !policies.contains("ReadingsTable.Arn\n") && !policies.contains("${ReadingsTable.Arn}/index/*"),
        "{policies}"
    );
}

#[test]
fn raw_bodies_expire_and_the_audit_trail_outlives_the_stack() {
    let t = template();
    for table in ["ConflictsTable", "QuarantineTable"] {
        let ttl = &t["Resources"][table]["Properties"]["TimeToLiveSpecification"];
        assert_eq!(
            (ttl["AttributeName"].as_str(), ttl["Enabled"].as_bool()),
            (Some(attr::EXPIRES_AT), Some(true)),
            "{table}"
        );
    }
    let groups: Vec<(String, &Value)> =
        resources(&t).into_iter().filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::LogGroup")).collect();
    assert!(groups.len() >= 4);
    for (id, g) in groups {
        assert_eq!(g["DeletionPolicy"].as_str(), Some("Retain"), "{id} is kept when the stack is deleted");
        assert_eq!(g["UpdateReplacePolicy"].as_str(), Some("Retain"), "{id} is kept when replaced");
        let name = text(&g["Properties"]["LogGroupName"]);
        assert!(name.contains("AWS::StackId"), "{id}'s name must not collide with a stack deployed again: {name}");
    }
}

#[test]
fn every_alarm_notifies_a_topic_and_the_stack_makes_one_when_none_is_given() {
    let t = template();
    let alarms: Vec<(String, &Value)> =
        resources(&t).into_iter().filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm")).collect();
    for (id, a) in &alarms {
        let actions = text(&a["Properties"]["AlarmActions"]);
        assert!(actions.contains("AlarmTopicArn") && actions.contains("AlarmTopic"), "{id}: {actions}");
    }
    assert_eq!(t["Resources"]["AlarmTopic"]["Condition"].as_str(), Some("CreateAlarmTopic"));
    for name in [
        "push-throttled",
        "push-4xx",
        "push-source-denied",
        "readings-throttled",
        "nightscout-401-burst",
        "partner-upstream-failures",
        "partner-duration",
        "read-duration",
        "stream-records-given-up",
        "stream-lag",
        "alerts-delayed",
        "events-function-errors",
    ] {
        assert!(alarms.iter().any(|(_, a)| text(&a["Properties"]["AlarmName"]).contains(name)), "no {name} alarm");
    }
    // The cloud team, paged at night, finds each alarm in the operations guide.
    let guide = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    for (id, a) in &alarms {
        let name = text(&a["Properties"]["AlarmName"]);
        let suffix = name.split("${AWS::StackName}").nth(1).unwrap_or_else(|| panic!("{id}: {name}"));
        let suffix = suffix.trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
        assert!(guide.contains(&format!("`<stack>{suffix}`")), "{id} ({suffix}) is not in docs/operations.md's alarms");
    }
}

#[test]
fn the_shipped_settings_deploy_anywhere_and_name_nothing_of_an_example() {
    let t = template();
    for p in [
        "PushReservedConcurrency",
        "PartnerReservedConcurrency",
        "ReadReservedConcurrency",
        "PartnerApiBaseUrl",
        "PartnerAppId",
        "AlarmTopicArn",
    ] {
        assert_eq!(
            t["Parameters"][p]["Default"].as_str(),
            Some(""),
            "{p} defaults to empty, so the stack deploys anywhere"
        );
    }
    let pattern = t["Parameters"]["PartnerApiBaseUrl"]["AllowedPattern"].as_str().unwrap();
    assert!(pattern.contains("https://") && !pattern.contains("https?"), "no http:// upstream: {pattern}");
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).expect("samconfig.toml");
    let active: Vec<&str> = samconfig.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    for placeholder in ["123456789012", "example-app-id", "PartnerAppSecretParameterName", "test-api."] {
        assert!(!active.iter().any(|l| l.contains(placeholder)), "samconfig.toml sets {placeholder}");
    }
}
