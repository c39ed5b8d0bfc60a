//! Creates DynamoDB Local tables from the template's definitions.

use crate::template::{KeyPart, TableDef, Template, TemplateError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("creating table {table} failed: {message}")]
    Create { table: String, message: String },
}

/// Creates every table of the template as `<prefix><LogicalId>` (an existing one is kept)
/// and returns the environment variables that name them, as the stack would set them.
pub async fn create_from_template(
    client: &Client,
    template: &Template,
    prefix: &str,
) -> Result<HashMap<String, String>, TablesError> {
    for def in template.tables()? {
        create(client, &def, &format!("{prefix}{}", def.logical_id)).await?;
    }
    Ok(template.table_variables().into_iter().map(|(var, id)| (var, format!("{prefix}{id}"))).collect())
}

async fn create(client: &Client, def: &TableDef, name: &str) -> Result<(), TablesError> {
    let err = |message: String| TablesError::Create { table: name.to_string(), message };
    let mut req = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for (attr, ty) in &def.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::from(ty.as_str()))
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
    }
    req = req.set_key_schema(Some(key_schema(&def.key_schema).map_err(err)?));
    for gsi in &def.global_indexes {
        let mut projection = Projection::builder().projection_type(ProjectionType::from(gsi.projection_type.as_str()));
        for a in &gsi.non_key_attributes {
            projection = projection.non_key_attributes(a);
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.name)
                .set_key_schema(Some(key_schema(&gsi.key_schema).map_err(err)?))
                .projection(projection.build())
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
    }
    if let Some(view) = &def.stream_view_type {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(err(format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))),
    }
    if let Some(attr) = &def.ttl_attribute {
        // DynamoDB Local records the setting but never deletes expired items: reads that
        // care filter on the attribute themselves.
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()
                    .map_err(|e| err(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| err(format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))))?;
    }
    Ok(())
}

fn key_schema(parts: &[KeyPart]) -> Result<Vec<KeySchemaElement>, String> {
    parts
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}
