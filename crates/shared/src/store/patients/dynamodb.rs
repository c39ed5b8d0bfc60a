//! The DynamoDB [`PatientStore`]: the newest reading's key from the device/time index (which
//! projects no patient field), then that one item's `patientName` and `patientId` by its key.

use crate::store::attr::{self, DEVICE_TIME_INDEX, classify, s, text};
use aws_sdk_dynamodb::Client;
use cgm_domain::ids::DeviceSn;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::StoreError;
use cgm_domain::store::patients::{PatientRef, PatientStore};

#[derive(Debug, Clone)]
pub struct DynamoPatientStore {
    client: Client,
    readings_table: String,
}

impl DynamoPatientStore {
    pub fn new(client: Client, readings_table: String) -> Self {
        Self { client, readings_table }
    }
}

impl PatientStore for DynamoPatientStore {
    async fn patient_of(&self, device_sn: &DeviceSn) -> Result<Option<PatientRef>, StoreError> {
        let newest = self
            .client
            .query()
            .table_name(&self.readings_table)
            .index_name(DEVICE_TIME_INDEX)
            .key_condition_expression("#dev = :dev")
            .expression_attribute_names("#dev", attr::DEVICE_SN)
            .expression_attribute_names("#tid", attr::TEST_ID)
            .projection_expression("#tid")
            .expression_attribute_values(":dev", s(device_sn.as_str()))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(classify)?;
        let Some(test_id) = newest.items.unwrap_or_default().first().and_then(|i| text(i, attr::TEST_ID)) else {
            return Ok(None);
        };
        let item = self
            .client
            .get_item()
            .table_name(&self.readings_table)
            .key(attr::TEST_ID, s(&test_id))
            .projection_expression("#name, #pid")
            .expression_attribute_names("#name", attr::PATIENT_NAME)
            .expression_attribute_names("#pid", attr::PATIENT_ID)
            .send()
            .await
            .map_err(classify)?
            .item;
        Ok(item.map(|i| PatientRef {
            name: text(&i, attr::PATIENT_NAME).filter(|v| !v.is_empty()).map(Sensitive::new),
            id: text(&i, attr::PATIENT_ID).filter(|v| !v.is_empty()).map(Sensitive::new),
        }))
    }
}
