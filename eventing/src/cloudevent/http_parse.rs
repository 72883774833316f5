//! Reading events from an HTTP message: choosing the content mode.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderMap;

use super::error::EventError;
use super::event::CloudEvent;
use super::media_type::Mode;
use super::{http_batch, http_binary, http_structured};

/// Reads the events an HTTP request (or response) carries, validated.
///
/// The Content-Type decides the mode: `application/cloudevents+json` is one
/// structured event, `application/cloudevents-batch+json` a batch (possibly empty),
/// and anything else, or none, is binary mode, where that Content-Type becomes the
/// event's `datacontenttype` and the body its data, unchanged.
///
/// Size limits are the caller's business: this reads whatever it is given.
pub fn from_http(headers: &HeaderMap, body: Bytes) -> Result<Vec<CloudEvent>, EventError> {
    // A Content-Type that is not ASCII names no CloudEvents format; binary mode
    // then reports it as a bad datacontenttype.
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match Mode::of(content_type) {
        Mode::Structured => Ok(vec![http_structured::parse(&body)?]),
        Mode::Batch => http_batch::parse(&body),
        Mode::Binary => Ok(vec![http_binary::parse(headers, body)?]),
        Mode::UnsupportedFormat(media_type) => Err(EventError::UnsupportedFormat { media_type }),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};
    use serde_json::{json, Value};

    use super::super::{to_http_binary, Data, ExtensionValue};
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    HeaderValue::from_str(value).expect("value"),
                )
            })
            .collect()
    }

    fn structured(value: &Value, content_type: &str) -> Vec<CloudEvent> {
        from_http(
            &headers(&[("content-type", content_type)]),
            Bytes::from(value.to_string()),
        )
        .expect("valid")
    }

    fn full_event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "A234-1234-1234",
            "source": "https://example.com/orders",
            "type": "com.example.order.placed",
            "subject": "orders/17 € \"x\"",
            "time": "2018-04-05T17:31:00Z",
            "dataschema": "https://example.com/order.json",
            "datacontenttype": "application/json",
            "comexampleextension1": "value",
            "comexampleothervalue": 5,
            "flag": false,
            "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true}
        })
    }

    #[test]
    fn structured_round_trip() {
        let value = full_event();
        let events = structured(&value, "application/cloudevents+json");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].to_json(), value);
    }

    #[test]
    fn structured_content_type_may_have_parameters_and_any_case() {
        let value = full_event();
        for content_type in [
            "application/cloudevents+json; charset=UTF-8",
            "Application/CloudEvents+JSON;charset=utf-8",
        ] {
            assert_eq!(structured(&value, content_type)[0].to_json(), value);
        }
    }

    #[test]
    fn structured_ignores_ce_headers() {
        let map = headers(&[
            ("content-type", "application/cloudevents+json"),
            ("ce-id", "from-header"),
        ]);
        let events = from_http(&map, Bytes::from(full_event().to_string())).expect("valid");
        assert_eq!(events[0].id, "A234-1234-1234");
    }

    #[test]
    fn batch_of_zero_one_and_three() {
        let content_type = "application/cloudevents-batch+json; charset=utf-8";
        assert!(structured(&json!([]), content_type).is_empty());
        assert_eq!(structured(&json!([full_event()]), content_type).len(), 1);
        let mut second = full_event();
        second["id"] = json!("second");
        second["data_base64"] = json!("AAEC");
        second.as_object_mut().expect("object").remove("data");
        second["datacontenttype"] = json!("application/octet-stream");
        let events = structured(&json!([full_event(), second, full_event()]), content_type);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[1].data,
            Some(Data::Binary(Bytes::from_static(&[0, 1, 2])))
        );
    }

    #[test]
    fn binary_round_trip() {
        let pairs = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/src"),
            ("ce-type", "t"),
            ("ce-subject", "a%20b%22c%25"),
            ("ce-ext", "%E2%82%AC"),
            ("content-type", "text/plain; charset=utf-8"),
        ];
        let body = Bytes::from_static("plain text €".as_bytes());
        let events = from_http(&headers(&pairs), body.clone()).expect("valid");
        assert_eq!(events[0].subject.as_deref(), Some("a b\"c%"));
        let (out, out_body) = to_http_binary(&events[0]);
        assert_eq!(out, headers(&pairs));
        assert_eq!(out_body, body);
    }

    #[test]
    fn structured_to_binary_turns_extension_types_into_strings() {
        let event = structured(&full_event(), "application/cloudevents+json").remove(0);
        let (map, body) = to_http_binary(&event);
        assert_eq!(map.get("ce-comexampleothervalue").expect("int"), "5");
        assert_eq!(map.get("ce-flag").expect("bool"), "false");
        assert_eq!(
            map.get("ce-subject").expect("subject"),
            "orders/17%20%E2%82%AC%20%22x%22"
        );
        assert_eq!(
            map.get("content-type").expect("content type"),
            "application/json"
        );
        let data: Value = serde_json::from_slice(&body).expect("json body");
        assert_eq!(data, full_event()["data"]);

        let back = from_http(&map, body).expect("valid").remove(0);
        assert_eq!(
            back.extension("comexampleothervalue"),
            Some(&ExtensionValue::String("5".into()))
        );
        assert_eq!(
            back.extension("flag"),
            Some(&ExtensionValue::String("false".into()))
        );
        assert_eq!(back.subject, event.subject);
        assert_eq!(back.time, event.time);
    }

    #[test]
    fn structured_text_data_becomes_the_raw_body() {
        let value = json!({"specversion": "1.0", "id": "B", "source": "/s", "type": "t",
                           "datacontenttype": "application/xml", "data": "<much wow=\"xml\"/>"});
        let event = structured(&value, "application/cloudevents+json").remove(0);
        let (map, body) = to_http_binary(&event);
        assert_eq!(
            map.get("content-type").expect("content type"),
            "application/xml"
        );
        assert_eq!(body.as_ref(), b"<much wow=\"xml\"/>");
    }

    #[test]
    fn an_unknown_content_type_with_ce_headers_is_binary_mode() {
        let pairs = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("content-type", "application/x-made-up"),
        ];
        let events = from_http(&headers(&pairs), Bytes::from_static(b"?")).expect("valid");
        assert_eq!(
            events[0].datacontenttype.as_deref(),
            Some("application/x-made-up")
        );
        assert_eq!(events[0].data, Some(Data::Binary(Bytes::from_static(b"?"))));
    }

    #[test]
    fn a_plain_request_is_not_a_cloudevent() {
        let err = from_http(
            &headers(&[("content-type", "application/json")]),
            Bytes::from_static(b"{}"),
        )
        .expect_err("plain");
        assert_eq!(
            err.to_string(),
            "not a CloudEvent: no ce-specversion header and the Content-Type is not application/cloudevents+json"
        );
    }

    #[test]
    fn other_event_formats_are_refused_by_name() {
        let err = from_http(
            &headers(&[("content-type", "application/cloudevents+avro")]),
            Bytes::new(),
        )
        .expect_err("avro");
        assert_eq!(
            err,
            EventError::UnsupportedFormat {
                media_type: "application/cloudevents+avro".into()
            }
        );
        assert!(err
            .to_string()
            .contains("\"application/cloudevents+avro\" is not supported"));
    }

    #[test]
    fn structured_errors_come_through() {
        let map = headers(&[("content-type", "application/cloudevents+json")]);
        let err = from_http(&map, Bytes::from_static(b"[]")).expect_err("array");
        assert_eq!(
            err.to_string(),
            "a structured CloudEvent must be a JSON object, got an array"
        );
        let err = from_http(&map, Bytes::new()).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "the body is not valid JSON: the body is empty"
        );
    }

    /// Generated events survive both binary and structured round trips.
    #[test]
    fn generated_events_round_trip() {
        const PIECES: [&str; 12] = [
            "a", "Z9", " ", "\"", "%", "\\", "€", "😀", "/", "é", "~!", "%41",
        ];
        let mut state: u64 = 7;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut text = |min: usize| -> String {
            let len = min + next() % 6;
            (0..len).map(|_| PIECES[next() % PIECES.len()]).collect()
        };
        for i in 0..300 {
            let mut event = CloudEvent::new(text(1), format!("/source/{i}"), text(1));
            event.subject = Some(text(1));
            event.time = Some(format!("2024-02-{:02}T12:00:00.{i}Z", 1 + i % 28));
            event.datacontenttype = Some("application/octet-stream".into());
            event
                .extensions
                .insert(format!("ext{}", i % 5), text(0).into());
            let body: Vec<u8> = (0..i % 40).map(|j| (j * 37 + i) as u8).collect();
            event.data = (!body.is_empty()).then(|| Data::Binary(Bytes::from(body)));
            assert_eq!(event.validate(), Ok(()), "{event:?}");

            let (map, body) = to_http_binary(&event);
            assert_eq!(from_http(&map, body).expect("binary"), vec![event.clone()]);

            let structured_body = Bytes::from(event.to_json().to_string());
            let map = headers(&[("content-type", "application/cloudevents+json")]);
            assert_eq!(
                from_http(&map, structured_body).expect("structured"),
                vec![event]
            );
        }
    }
}
