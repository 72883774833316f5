//! The JSON event format (structured mode): one event as one JSON object.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::{excerpt, EventError};
use super::event::{CloudEvent, Data, ExtensionValue, CONTEXT_ATTRIBUTES};
use super::{media_type, validate};

/// Standard base64 that writes padding but accepts data with or without it: some
/// producers strip the padding, and there is no ambiguity in decoding either way.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl CloudEvent {
    /// The event in the JSON event format, ready to send as
    /// `application/cloudevents+json`.
    ///
    /// Extensions keep their JSON types. [`Data::Binary`] is written as `data_base64`
    /// even when it holds JSON text, so that its exact bytes survive a trip through
    /// this format (re-serializing JSON would change whitespace and key order).
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for name in CONTEXT_ATTRIBUTES {
            if let Some(value) = self.context_attribute(name) {
                object.insert(name.to_owned(), Value::String(value.to_owned()));
            }
        }
        for (name, value) in &self.extensions {
            let json = match value {
                ExtensionValue::String(s) => Value::String(s.clone()),
                ExtensionValue::Integer(i) => Value::from(*i),
                ExtensionValue::Boolean(b) => Value::Bool(*b),
            };
            object.insert(name.clone(), json);
        }
        match &self.data {
            None => {}
            Some(Data::Json(value)) => {
                object.insert("data".to_owned(), value.clone());
            }
            Some(Data::String(text)) => {
                object.insert("data".to_owned(), Value::String(text.clone()));
            }
            Some(Data::Binary(bytes)) => {
                object.insert(
                    "data_base64".to_owned(),
                    Value::String(BASE64.encode(bytes)),
                );
            }
        }
        Value::Object(object)
    }

    /// Reads and validates an event in the JSON event format.
    ///
    /// Members set to `null` count as absent, except `data: null`, which is an
    /// explicit null JSON payload.
    pub fn from_json(value: Value) -> Result<Self, EventError> {
        let Value::Object(mut object) = value else {
            return Err(EventError::NotAnObject {
                found: kind(&value),
            });
        };
        // The version first: another version may use other attribute names and types.
        let specversion = take_string(&mut object, "specversion")?.unwrap_or_default();
        validate::specversion(&specversion)?;

        let data = object.remove("data");
        // A null `data_base64` is unset like any null member; a null `data` is a payload.
        let data_base64 = object.remove("data_base64").filter(|v| !v.is_null());
        let mut event = Self {
            specversion,
            id: take_string(&mut object, "id")?.unwrap_or_default(),
            source: take_string(&mut object, "source")?.unwrap_or_default(),
            ty: take_string(&mut object, "type")?.unwrap_or_default(),
            datacontenttype: take_string(&mut object, "datacontenttype")?,
            dataschema: take_string(&mut object, "dataschema")?,
            subject: take_string(&mut object, "subject")?,
            time: take_string(&mut object, "time")?,
            extensions: Default::default(),
            data: None,
        };
        // Everything left is an extension.
        for (name, value) in object {
            validate::name(&name)?;
            if let Some(value) = extension(&name, value)? {
                event.extensions.insert(name, value);
            }
        }
        event.data = match (data, data_base64) {
            (Some(data), Some(_)) if !data.is_null() => return Err(EventError::DataConflict),
            // `"data": null` beside `data_base64` adds nothing: take the bytes.
            (_, Some(encoded)) => Some(Data::Binary(decode_base64(encoded)?)),
            (Some(data), None) => payload(data, event.datacontenttype.as_deref()),
            (None, None) => None,
        };
        event.validate()?;
        Ok(event)
    }
}

/// Parses an HTTP body as JSON, with a message a sender can act on.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, EventError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EventError::InvalidJson {
            reason: "the body is empty".to_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|e| EventError::InvalidJson {
        reason: e.to_string(),
    })
}

/// The JSON type of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn take_string(object: &mut Map<String, Value>, name: &str) -> Result<Option<String>, EventError> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EventError::invalid(
            name,
            format!("must be a JSON string, got {}", kind(&other)),
        )),
    }
}

fn extension(name: &str, value: Value) -> Result<Option<ExtensionValue>, EventError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(ExtensionValue::String(s))),
        Value::Bool(b) => Ok(Some(ExtensionValue::Boolean(b))),
        Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Ok(Some(ExtensionValue::Integer(i))),
            None => Err(EventError::invalid(
                name,
                format!(
                    "must be an integer from -2147483648 to 2147483647 (CloudEvents integers are 32-bit), got {}",
                    excerpt(&n.to_string())
                ),
            )),
        },
        other => Err(EventError::invalid(
            name,
            format!("must be a string, an integer or a boolean, got {}", kind(&other)),
        )),
    }
}

fn decode_base64(value: Value) -> Result<Bytes, EventError> {
    let Value::String(encoded) = value else {
        return Err(EventError::InvalidDataBase64 {
            problem: format!("must be a base64 string, got {}", kind(&value)),
        });
    };
    BASE64
        .decode(encoded)
        .map(Bytes::from)
        .map_err(|e| EventError::InvalidDataBase64 {
            problem: format!("is not valid base64: {e}"),
        })
}

/// The JSON format's rule for `data`: under a JSON content type (or none) it is a
/// JSON value; otherwise it is the payload as text.
fn payload(data: Value, content_type: Option<&str>) -> Option<Data> {
    if media_type::is_json(content_type) {
        return Some(Data::Json(data));
    }
    match data {
        Value::String(text) => Some(Data::String(text)),
        // `null` under a non-JSON type cannot be a payload of that type: no data.
        Value::Null => None,
        // The spec lets us refuse this; keeping it as JSON loses nothing.
        other => Some(Data::Json(other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn minimal() -> Value {
        json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
    }

    fn with(mut base: Value, member: &str, value: Value) -> Value {
        base[member] = value;
        base
    }

    fn error(value: Value) -> String {
        CloudEvent::from_json(value)
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn reads_the_spec_example_with_json_data() {
        let value = json!({
            "specversion": "1.0",
            "type": "com.example.someevent",
            "source": "/mycontext",
            "subject": null,
            "id": "C234-1234-1234",
            "time": "2018-04-05T17:31:00Z",
            "comexampleextension1": "value",
            "comexampleothervalue": 5,
            "unsetextension": null,
            "datacontenttype": "application/json",
            "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true}
        });
        let event = CloudEvent::from_json(value).expect("valid");
        assert_eq!(event.id, "C234-1234-1234");
        assert_eq!(event.subject, None);
        assert_eq!(event.time.as_deref(), Some("2018-04-05T17:31:00Z"));
        assert_eq!(
            event.extension("comexampleothervalue"),
            Some(&ExtensionValue::Integer(5))
        );
        assert_eq!(event.extension("unsetextension"), None);
        assert_eq!(
            event.data,
            Some(Data::Json(
                json!({"appinfoA": "abc", "appinfoB": 123, "appinfoC": true})
            ))
        );
    }

    #[test]
    fn round_trips_through_json() {
        let value = json!({
            "specversion": "1.0",
            "id": "42",
            "source": "https://example.com/things",
            "type": "com.example.thing.created",
            "datacontenttype": "application/xml",
            "dataschema": "https://example.com/schema.xsd",
            "subject": "thing/42",
            "time": "2020-01-01T00:00:00.123+01:00",
            "str": "s",
            "int": -7,
            "bool": true,
            "data": "<much wow=\"xml\"/>"
        });
        let event = CloudEvent::from_json(value.clone()).expect("valid");
        assert_eq!(event.data, Some(Data::String("<much wow=\"xml\"/>".into())));
        assert_eq!(event.to_json(), value);
        assert_eq!(CloudEvent::from_json(event.to_json()), Ok(event));
    }

    #[test]
    fn data_base64_becomes_bytes_and_back() {
        let value = with(minimal(), "data_base64", json!("AAH/"));
        let event = CloudEvent::from_json(value.clone()).expect("valid");
        assert_eq!(
            event.data,
            Some(Data::Binary(Bytes::from_static(&[0, 1, 255])))
        );
        assert_eq!(event.to_json(), value);
        // Unpadded base64 is accepted too.
        let unpadded = with(minimal(), "data_base64", json!("AAE"));
        assert_eq!(
            CloudEvent::from_json(unpadded).expect("valid").data,
            Some(Data::Binary(Bytes::from_static(&[0, 1])))
        );
    }

    #[test]
    fn binary_data_is_written_as_base64_even_when_it_is_json() {
        let mut event = CloudEvent::new("1", "/s", "t");
        event.datacontenttype = Some("application/json".into());
        event.data = Some(Data::Binary(Bytes::from_static(b"{ \"b\": 1, \"a\": 2 }")));
        let value = event.to_json();
        assert!(value.get("data").is_none());
        assert_eq!(CloudEvent::from_json(value).expect("valid"), event);
    }

    #[test]
    fn data_and_data_base64_together_are_rejected() {
        let value = with(
            with(minimal(), "data", json!({})),
            "data_base64",
            json!("AA=="),
        );
        assert_eq!(
            error(value),
            "an event must not have both \"data\" and \"data_base64\""
        );
    }

    #[test]
    fn null_data_is_an_explicit_json_null() {
        let event = CloudEvent::from_json(with(minimal(), "data", Value::Null)).expect("valid");
        assert_eq!(event.data, Some(Data::Json(Value::Null)));
        let nulls = with(
            with(minimal(), "data", Value::Null),
            "data_base64",
            json!("AA=="),
        );
        assert_eq!(
            CloudEvent::from_json(nulls).expect("valid").data,
            Some(Data::Binary(Bytes::from_static(&[0])))
        );
        let text = with(
            with(minimal(), "data", Value::Null),
            "datacontenttype",
            json!("text/plain"),
        );
        assert_eq!(CloudEvent::from_json(text).expect("valid").data, None);
    }

    #[test]
    fn a_json_string_stays_a_json_string() {
        let event = CloudEvent::from_json(with(minimal(), "data", json!("{\"not\":\"parsed\"}")))
            .expect("valid");
        assert_eq!(event.data, Some(Data::Json(json!("{\"not\":\"parsed\"}"))));
    }

    #[test]
    fn bad_base64_is_reported() {
        assert!(error(with(minimal(), "data_base64", json!("***")))
            .starts_with("\"data_base64\" is not valid base64"));
        assert_eq!(
            error(with(minimal(), "data_base64", json!(12))),
            "\"data_base64\" must be a base64 string, got a number"
        );
    }

    #[test]
    fn attribute_json_types_are_checked() {
        assert_eq!(
            error(with(minimal(), "id", json!(5))),
            "attribute \"id\" must be a JSON string, got a number"
        );
        assert_eq!(
            error(with(minimal(), "time", json!({"at": "noon"}))),
            "attribute \"time\" must be a JSON string, got an object"
        );
        assert_eq!(
            error(with(minimal(), "specversion", json!(1.0))),
            "attribute \"specversion\" must be a JSON string, got a number"
        );
    }

    #[test]
    fn extension_types_are_checked() {
        assert_eq!(
            error(with(minimal(), "ext", json!([1]))),
            "attribute \"ext\" must be a string, an integer or a boolean, got an array"
        );
        for number in [
            json!(1.5),
            json!(2_147_483_648_i64),
            json!(-2_147_483_649_i64),
        ] {
            let msg = error(with(minimal(), "ext", number));
            assert!(
                msg.starts_with("attribute \"ext\" must be an integer from"),
                "{msg}"
            );
        }
        let edge = with(
            with(minimal(), "min", json!(-2_147_483_648_i64)),
            "max",
            json!(2_147_483_647),
        );
        let event = CloudEvent::from_json(edge).expect("valid");
        assert_eq!(
            event.extension("min"),
            Some(&ExtensionValue::Integer(i32::MIN))
        );
        assert_eq!(
            event.extension("max"),
            Some(&ExtensionValue::Integer(i32::MAX))
        );
    }

    #[test]
    fn unknown_members_must_be_valid_attribute_names() {
        assert_eq!(
            error(with(minimal(), "Bad_Name", json!("x"))),
            "attribute name \"Bad_Name\" is invalid: names are 1 to 20 lower-case letters or digits"
        );
    }

    #[test]
    fn missing_and_null_required_attributes() {
        let mut value = minimal();
        value.as_object_mut().expect("object").remove("source");
        assert_eq!(
            error(value),
            "attribute \"source\" is required and must be non-empty"
        );
        assert_eq!(
            error(with(minimal(), "type", Value::Null)),
            "attribute \"type\" is required and must be non-empty"
        );
        let mut no_version = minimal();
        no_version
            .as_object_mut()
            .expect("object")
            .remove("specversion");
        assert_eq!(
            error(no_version),
            "attribute \"specversion\" is required and must be non-empty"
        );
    }

    #[test]
    fn an_old_version_is_reported_before_its_attributes() {
        let value = json!({"specversion": "0.3", "id": "1", "source": "/s", "type": "t",
                           "schemaURL": "x", "datacontentencoding": "base64"});
        assert_eq!(
            error(value),
            "specversion \"0.3\" is not supported: use 1.0"
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            error(json!([])),
            "a structured CloudEvent must be a JSON object, got an array"
        );
        assert_eq!(
            error(json!("x")),
            "a structured CloudEvent must be a JSON object, got a string"
        );
    }

    #[test]
    fn body_parse_errors_are_clear() {
        assert_eq!(
            parse_body(b"  ").expect_err("empty").to_string(),
            "the body is not valid JSON: the body is empty"
        );
        let msg = parse_body(b"{\"id\": }").expect_err("bad").to_string();
        assert!(
            msg.starts_with("the body is not valid JSON: ") && msg.contains("line 1"),
            "{msg}"
        );
    }
}
