//! Stream records as readings: the new image of each `INSERT`/`MODIFY` record, read with the
//! same attribute rules as the read side. A record that is no reading (a `REMOVE`, an item
//! without a usable value or time) is counted and passed over, never failed: retrying it
//! could not make it one.

use aws_lambda_events::event::dynamodb::Event;
use cgm_shared::session::SensorReading;
use cgm_shared::store::attr::Item;
use cgm_shared::store::sensors::dynamodb::sensor_reading_of;

/// A batch's readings with the sequence number of the record each came from.
#[derive(Debug, Default)]
pub struct Batch {
    pub readings: Vec<(String, SensorReading)>,
    pub skipped: usize,
}

pub fn readings(event: &Event) -> Batch {
    let mut batch = Batch::default();
    for rec in &event.records {
        let image: Item = rec.change.new_image.clone().into();
        match (rec.change.sequence_number.clone(), sensor_reading_of(&image)) {
            (Some(seq), Some(r)) => batch.readings.push((seq, r)),
            _ => batch.skipped += 1,
        }
    }
    batch
}
