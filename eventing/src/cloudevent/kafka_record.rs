//! Records someone else wrote to Kafka, as a KafkaSource turns them into events, the
//! way Knative's does: a record in the CloudEvents Kafka binding (binary mode, `ce_`
//! headers; or structured mode, a JSON event as the value) is that event; any other
//! record becomes an event of type `dev.knative.kafka.event` carrying the value as
//! data, the key as the `key` extension and the headers as `kafkaheader*` extensions.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use paas_api::kafka_source::KeyType;

use super::error::EventError;
use super::event::{CloudEvent, Data, ExtensionValue};
use super::kafka_binding;
use super::media_type::{Mode, STRUCTURED_JSON};
use crate::{Position, Record};

/// The type of the event a plain record becomes.
pub const KAFKA_EVENT_TYPE: &str = "dev.knative.kafka.event";

/// What is known of a record besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecordOrigin<'a> {
    /// The `source` of events made from plain records:
    /// `/apis/v1/namespaces/{ns}/kafkasources/{name}#{topic}`.
    pub source: &'a str,
    pub position: Position,
    /// The record's timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    pub key_type: KeyType,
}

/// The event a record read by a KafkaSource stands for.
pub fn from_foreign_record(
    record: &Record,
    origin: &RecordOrigin<'_>,
) -> Result<CloudEvent, EventError> {
    if header(record, "ce_specversion").is_some() {
        return kafka_binding::from_record(record);
    }
    let content_type = header(record, "content-type").and_then(|v| std::str::from_utf8(v).ok());
    if matches!(Mode::of(content_type), Mode::Structured) {
        let value: serde_json::Value =
            serde_json::from_slice(&record.value).map_err(|e| EventError::InvalidValue {
                attribute: STRUCTURED_JSON.to_owned(),
                problem: format!("the record's value is not a JSON event: {e}"),
            })?;
        return CloudEvent::from_json(value);
    }
    Ok(plain(record, content_type, origin))
}

fn header<'r>(record: &'r Record, name: &str) -> Option<&'r Bytes> {
    record
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn plain(record: &Record, content_type: Option<&str>, origin: &RecordOrigin<'_>) -> CloudEvent {
    let Position { partition, offset } = origin.position;
    let mut event = CloudEvent::new(
        format!("partition:{partition}/offset:{offset}"),
        origin.source,
        KAFKA_EVENT_TYPE,
    );
    event.subject = Some(format!("partition:{partition}#{offset}"));
    event.time = origin
        .timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    event.datacontenttype = content_type.map(str::to_owned);
    if let Some(key) = &record.key {
        event
            .extensions
            .insert("key".into(), key_value(key, origin.key_type));
    }
    for (name, value) in &record.headers {
        if name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        // Extension names are lower-case letters and digits only.
        let mut extension: String = "kafkaheader".into();
        extension.extend(
            name.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase()),
        );
        event
            .extensions
            .insert(extension, ExtensionValue::String(text.to_owned()));
    }
    if !record.value.is_empty() {
        event.data = Some(Data::Binary(record.value.clone()));
    }
    event
}

/// The `key` extension: the key's bytes read as the source's key type says. Bytes
/// that do not fit the type are carried base64-encoded rather than dropped.
fn key_value(key: &[u8], key_type: KeyType) -> ExtensionValue {
    let base64 = || ExtensionValue::String(base64::engine::general_purpose::STANDARD.encode(key));
    match key_type {
        KeyType::String => match std::str::from_utf8(key) {
            Ok(s) => ExtensionValue::String(s.to_owned()),
            Err(_) => base64(),
        },
        KeyType::Int => {
            let n = match key.len() {
                1 => Some(i64::from(key[0] as i8)),
                2 => <[u8; 2]>::try_from(key)
                    .ok()
                    .map(|b| i16::from_be_bytes(b).into()),
                4 => <[u8; 4]>::try_from(key)
                    .ok()
                    .map(|b| i32::from_be_bytes(b).into()),
                8 => <[u8; 8]>::try_from(key).ok().map(i64::from_be_bytes),
                _ => None,
            };
            // CloudEvents integers are 32-bit: a wider one is carried as its digits.
            match n {
                Some(n) => i32::try_from(n).map_or_else(
                    |_| ExtensionValue::String(n.to_string()),
                    ExtensionValue::Integer,
                ),
                None => base64(),
            }
        }
        KeyType::Float => {
            let f = match key.len() {
                4 => <[u8; 4]>::try_from(key)
                    .ok()
                    .map(|b| f64::from(f32::from_be_bytes(b))),
                8 => <[u8; 8]>::try_from(key).ok().map(f64::from_be_bytes),
                _ => None,
            };
            f.map_or_else(base64, |f| ExtensionValue::String(f.to_string()))
        }
        KeyType::ByteArray => base64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(key_type: KeyType) -> RecordOrigin<'static> {
        RecordOrigin {
            source: "/apis/v1/namespaces/default/kafkasources/orders#orders",
            position: Position {
                partition: 2,
                offset: 41,
            },
            timestamp_ms: Some(1_795_000_000_123),
            key_type,
        }
    }

    #[test]
    fn a_plain_record_becomes_a_kafka_event() {
        let record = Record {
            key: Some(Bytes::from_static(b"user-7")),
            headers: vec![
                ("Trace-Id".into(), Bytes::from_static(b"abc")),
                (
                    "content-type".into(),
                    Bytes::from_static(b"application/json"),
                ),
                ("raw".into(), Bytes::from_static(&[0xff, 0xfe])),
            ],
            value: Bytes::from_static(b"{\"total\":3}"),
        };
        let e = from_foreign_record(&record, &origin(KeyType::String)).unwrap();
        assert_eq!(e.ty, KAFKA_EVENT_TYPE);
        assert_eq!(e.id, "partition:2/offset:41");
        assert_eq!(e.subject.as_deref(), Some("partition:2#41"));
        assert_eq!(
            e.source,
            "/apis/v1/namespaces/default/kafkasources/orders#orders"
        );
        assert_eq!(e.time.as_deref(), Some("2026-11-18T11:06:40.123Z"));
        assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(e.extension("key"), Some(&ExtensionValue::from("user-7")));
        assert_eq!(
            e.extension("kafkaheadertraceid"),
            Some(&ExtensionValue::from("abc"))
        );
        // A header that is not text is left out rather than mangled.
        assert_eq!(e.extensions.len(), 2);
        assert_eq!(
            e.data,
            Some(Data::Binary(Bytes::from_static(b"{\"total\":3}")))
        );
        e.validate().unwrap();
    }

    #[test]
    fn records_in_the_cloudevents_binding_are_their_events() {
        let mut sent = CloudEvent::new("order-1", "/shop", "dev.shop.order");
        sent.data = Some(Data::Binary(Bytes::from_static(b"x")));
        let binary = kafka_binding::to_record(&sent);
        assert_eq!(
            from_foreign_record(&binary, &origin(KeyType::String)).unwrap(),
            sent
        );

        let structured = Record {
            key: None,
            headers: vec![(
                "content-type".into(),
                Bytes::from_static(b"application/cloudevents+json; charset=utf-8"),
            )],
            value: Bytes::from_static(
                br#"{"specversion":"1.0","id":"order-2","source":"/shop","type":"dev.shop.order","data":{"n":2}}"#,
            ),
        };
        let e = from_foreign_record(&structured, &origin(KeyType::String)).unwrap();
        assert_eq!(
            (e.id.as_str(), e.ty.as_str()),
            ("order-2", "dev.shop.order")
        );

        let broken = Record {
            value: Bytes::from_static(b"{\"specversion\":\"1.0\"}"),
            ..structured
        };
        let err = from_foreign_record(&broken, &origin(KeyType::String)).unwrap_err();
        assert!(err.to_string().contains("id"), "{err}");
    }

    #[test]
    fn keys_are_read_as_their_type() {
        let key = |bytes: &[u8], t| {
            let record = Record {
                key: Some(Bytes::copy_from_slice(bytes)),
                ..Record::default()
            };
            from_foreign_record(&record, &origin(t))
                .unwrap()
                .extension("key")
                .cloned()
        };
        assert_eq!(
            key(&[0, 0, 1, 0], KeyType::Int),
            Some(ExtensionValue::Integer(256))
        );
        assert_eq!(
            key(&[0, 0, 0, 1, 0, 0, 0, 0], KeyType::Int),
            Some(ExtensionValue::from("4294967296"))
        );
        assert_eq!(
            key(&1.5f64.to_be_bytes(), KeyType::Float),
            Some(ExtensionValue::from("1.5"))
        );
        assert_eq!(
            key(&[1, 2, 3], KeyType::ByteArray),
            Some(ExtensionValue::from("AQID"))
        );
        assert_eq!(
            key(&[0xff], KeyType::String),
            Some(ExtensionValue::from("/w=="))
        );
    }
}
