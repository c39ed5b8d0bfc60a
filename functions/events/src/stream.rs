//! Stream records as readings: the new image of each `INSERT`/`MODIFY` record, read with the
//! same attribute rules as the read side. A record that is no reading (a `REMOVE`, such as a
//! TTL deletion, or an item without a usable value or time) is counted and passed over,
//! never failed: retrying it could not make it one.

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use cgm_domain::session::SensorReading;
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
        // A deletion's record carries no new image; a stray one would still be no reading.
        if rec.event_name == "REMOVE" {
            batch.skipped += 1;
            continue;
        }
        let image: Item = rec.change.new_image.clone().into();
        match (rec.change.sequence_number.clone(), sensor_reading_of(&image)) {
            (Some(seq), Some(r)) => batch.readings.push((seq, r)),
            _ => batch.skipped += 1,
        }
    }
    batch
}

/// The stream event Lambda would deliver were each `(sequence number, item)` modified now:
/// how a stored reading is handed to the consumer again (`cgm-replay poison`).
pub fn event_of_items(items: &[(String, Item)]) -> Event {
    let mut event = Event::default();
    for (seq, item) in items {
        let mut change = StreamRecord::default();
        change.sequence_number = Some(seq.clone());
        change.new_image = item.clone().into();
        let mut rec = EventRecord::default();
        rec.event_name = "MODIFY".into();
        rec.change = change;
        event.records.push(rec);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_shared::store::attr::{self, n, s};

    fn item(test_id: &str) -> Item {
        Item::from([
            (attr::TEST_ID.to_string(), s(test_id)),
            (attr::DEVICE_SN.to_string(), s("SN")),
            (attr::MEASURED_AT.to_string(), n(1_700_000_000_000)),
            (attr::GLUCOSE_MMOL.to_string(), aws_sdk_dynamodb::types::AttributeValue::N("5.5".into())),
            (attr::STATUS.to_string(), s("0")),
        ])
    }

    #[test]
    fn a_remove_is_passed_over_even_with_an_image_and_a_reading_is_taken() {
        let mut event = event_of_items(&[("1".into(), item("t1")), ("2".into(), item("t2"))]);
        event.records[1].event_name = "REMOVE".into();
        let mut no_image = event_of_items(&[("3".into(), Item::new())]);
        event.records.append(&mut no_image.records);
        let batch = readings(&event);
        assert_eq!(batch.skipped, 2);
        let taken: Vec<(&str, &str)> =
            batch.readings.iter().map(|(seq, r)| (seq.as_str(), r.reading.test_id.as_str())).collect();
        assert_eq!(taken, [("1", "t1")]);
    }
}
