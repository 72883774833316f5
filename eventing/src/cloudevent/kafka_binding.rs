//! The CloudEvents Kafka protocol binding, binary mode: attributes as `ce_` headers,
//! `content-type` for datacontenttype, the `partitionkey` extension as the record key,
//! data as the value. This is how events are kept in the log, whichever backend.

use bytes::Bytes;

use super::error::EventError;
use super::event::{CloudEvent, Data, ExtensionValue};
use crate::Record;

const PREFIX: &str = "ce_";
const CONTENT_TYPE: &str = "content-type";
/// The extension whose value orders events: same key, same partition, kept in order.
pub const PARTITION_KEY: &str = "partitionkey";

/// The record an event is stored as.
pub fn to_record(event: &CloudEvent) -> Record {
    let mut headers = Vec::with_capacity(8 + event.extensions.len());
    for (name, value) in event.attributes() {
        if name == "datacontenttype" {
            continue;
        }
        headers.push((format!("{PREFIX}{name}"), Bytes::from(value.into_owned())));
    }
    let content_type = event
        .datacontenttype
        .as_deref()
        .or_else(|| event.data.as_ref().and_then(Data::implied_content_type));
    if let Some(ct) = content_type {
        headers.push((CONTENT_TYPE.to_owned(), Bytes::from(ct.to_owned())));
    }
    Record {
        key: event
            .extension(PARTITION_KEY)
            .map(|k| Bytes::from(k.canonical().into_owned())),
        headers,
        value: event.data.as_ref().map(Data::to_bytes).unwrap_or_default(),
    }
}

/// The event a record holds. Extensions come back as strings, as in HTTP binary mode.
pub fn from_record(record: &Record) -> Result<CloudEvent, EventError> {
    let text = |v: &Bytes, attribute: &str| {
        String::from_utf8(v.to_vec()).map_err(|_| EventError::InvalidValue {
            attribute: attribute.to_owned(),
            problem: "is not UTF-8".into(),
        })
    };
    let mut event = CloudEvent::new("", "", "");
    event.specversion = String::new();
    for (name, value) in &record.headers {
        if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            event.datacontenttype = Some(text(value, "datacontenttype")?);
            continue;
        }
        let Some(attribute) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let value = text(value, attribute)?;
        match attribute {
            "specversion" => event.specversion = value,
            "id" => event.id = value,
            "source" => event.source = value,
            "type" => event.ty = value,
            "dataschema" => event.dataschema = Some(value),
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            other => {
                event
                    .extensions
                    .insert(other.to_owned(), ExtensionValue::String(value));
            }
        }
    }
    if !record.value.is_empty() {
        event.data = Some(Data::Binary(record.value.clone()));
    }
    event.validate()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_log() {
        let mut e = CloudEvent::new("1", "/src", "dev.example");
        e.subject = Some("s".into());
        e.time = Some("2026-01-01T00:00:00Z".into());
        e.datacontenttype = Some("application/json".into());
        e.extensions.insert(
            PARTITION_KEY.into(),
            ExtensionValue::String("user-7".into()),
        );
        e.data = Some(Data::Binary(Bytes::from_static(b"{\"a\":1}")));
        let r = to_record(&e);
        assert_eq!(r.key.as_deref(), Some(&b"user-7"[..]));
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == "ce_type" && v == "dev.example"));
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "application/json"));
        assert_eq!(from_record(&r).unwrap(), e);
    }

    #[test]
    fn a_record_without_attributes_is_not_an_event() {
        let r = Record {
            key: None,
            headers: vec![],
            value: Bytes::from_static(b"plain"),
        };
        let err = from_record(&r).unwrap_err().to_string();
        assert!(err.contains("specversion"), "{err}");
    }
}
