//! HTTP binary content mode: attributes in `ce-` headers, data as the body.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::error::EventError;
use super::event::{CloudEvent, Data, ExtensionValue};
use super::{percent, validate};

const PREFIX: &str = "ce-";

/// Reads and validates one event from a binary-mode message.
///
/// `http::HeaderMap` stores names in lower case, which is what makes `CE-Id` and
/// `ce-id` the same attribute, as HTTP requires.
pub(crate) fn parse(headers: &HeaderMap, body: Bytes) -> Result<CloudEvent, EventError> {
    let mut attributes = BTreeMap::new();
    for name in headers.keys() {
        let Some(attribute) = name.as_str().strip_prefix(PREFIX) else {
            continue;
        };
        validate::name(attribute)?;
        if attribute == "datacontenttype" {
            return Err(EventError::invalid(
                attribute,
                "must be sent as the Content-Type header in binary mode, not as ce-datacontenttype",
            ));
        }
        if attribute == "data" {
            return Err(EventError::ReservedName {
                name: attribute.to_owned(),
            });
        }
        let mut values = headers.get_all(name).iter();
        let (Some(raw), None) = (values.next(), values.next()) else {
            // Each attribute appears at most once; we do not guess which one counts.
            return Err(EventError::Duplicate {
                attribute: attribute.to_owned(),
            });
        };
        let value = percent::decode(raw.as_bytes())
            .map_err(|problem| EventError::invalid(attribute, problem))?;
        attributes.insert(attribute.to_owned(), value);
    }
    if attributes.is_empty() {
        return Err(EventError::NotACloudEvent);
    }

    let mut take = |name: &str| attributes.remove(name);
    let mut event = CloudEvent {
        specversion: take("specversion").unwrap_or_default(),
        id: take("id").unwrap_or_default(),
        source: take("source").unwrap_or_default(),
        ty: take("type").unwrap_or_default(),
        datacontenttype: content_type(headers)?,
        dataschema: take("dataschema"),
        subject: take("subject"),
        time: take("time"),
        extensions: Default::default(),
        // HTTP cannot tell "no data" from "empty data"; we call an empty body no data.
        data: (!body.is_empty()).then_some(Data::Binary(body)),
    };
    // Headers carry no types, so every extension arrives as a string.
    event.extensions = attributes
        .into_iter()
        .map(|(name, value)| (name, ExtensionValue::String(value)))
        .collect();
    event.validate()?;
    Ok(event)
}

/// The Content-Type header is the `datacontenttype`, as sent (not percent-decoded:
/// it is an ordinary HTTP header).
fn content_type(headers: &HeaderMap) -> Result<Option<String>, EventError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) => Ok(Some(text.to_owned())),
        Err(_) => Err(EventError::invalid(
            "datacontenttype",
            "(the Content-Type header) must be printable ASCII",
        )),
    }
}

/// The event as a binary-mode HTTP message, for delivery to a subscriber: every
/// attribute as a percent-encoded `ce-` header, `datacontenttype` as Content-Type,
/// and the data as the body.
///
/// JSON data with no `datacontenttype` (possible in structured mode) is labelled
/// `application/json`, as the JSON format asks when an event changes format.
/// The event should be valid; an extension whose name cannot be a header name is
/// left out.
pub fn to_http_binary(event: &CloudEvent) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    for (name, value) in event.attributes() {
        if name == "datacontenttype" {
            continue;
        }
        let header = HeaderName::try_from(format!("{PREFIX}{name}"));
        // Percent-encoding only emits printable ASCII, so the value always converts.
        let value = HeaderValue::from_str(&percent::encode(&value));
        if let (Ok(header), Ok(value)) = (header, value) {
            headers.insert(header, value);
        }
    }
    let content_type = event
        .datacontenttype
        .as_deref()
        .or_else(|| event.data.as_ref().and_then(Data::implied_content_type));
    // A valid datacontenttype is printable ASCII, so this only drops invalid ones.
    if let Some(Ok(value)) = content_type.map(HeaderValue::from_str) {
        headers.insert(CONTENT_TYPE, value);
    }
    let body = event.data.as_ref().map(Data::to_bytes).unwrap_or_default();
    (headers, body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn required() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "1234-1234-1234"),
            ("ce-source", "/mycontext/subcontext"),
            ("ce-type", "com.example.someevent"),
        ]
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        parse(&headers(pairs), Bytes::new())
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn reads_the_spec_example() {
        let mut pairs = required();
        pairs.extend([
            ("ce-time", "2018-04-05T03:56:24Z"),
            ("ce-comexampleextension1", "value"),
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "11"),
            ("user-agent", "curl"),
        ]);
        let body = Bytes::from_static(b"{\"a\": 1 }\n");
        let event = parse(&headers(&pairs), body.clone()).expect("valid");
        assert_eq!(event.specversion, "1.0");
        assert_eq!(event.id, "1234-1234-1234");
        assert_eq!(event.source, "/mycontext/subcontext");
        assert_eq!(event.ty, "com.example.someevent");
        assert_eq!(event.time.as_deref(), Some("2018-04-05T03:56:24Z"));
        assert_eq!(
            event.datacontenttype.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            event.extension("comexampleextension1"),
            Some(&ExtensionValue::String("value".into()))
        );
        assert_eq!(event.extensions.len(), 1);
        // The body is kept byte for byte, whitespace included.
        assert_eq!(event.data, Some(Data::Binary(body)));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let pairs = [
            ("CE-SpecVersion", "1.0"),
            ("Ce-Id", "1"),
            ("cE-SOURCE", "/s"),
            ("CE-TYPE", "t"),
            ("Ce-MyExt", "x"),
        ];
        let event = parse(&headers(&pairs), Bytes::new()).expect("valid");
        assert_eq!((event.id.as_str(), event.ty.as_str()), ("1", "t"));
        assert_eq!(event.attribute("myext").as_deref(), Some("x"));
        assert_eq!(event.data, None);
    }

    #[test]
    fn values_are_percent_decoded() {
        let mut pairs = required();
        pairs.push(("ce-subject", "Euro%20%E2%82%AC%20%f0%9f%98%80"));
        pairs.push(("ce-quoted", r#""old \"style\" value""#));
        let event = parse(&headers(&pairs), Bytes::new()).expect("valid");
        assert_eq!(event.subject.as_deref(), Some("Euro € 😀"));
        assert_eq!(
            event.attribute("quoted").as_deref(),
            Some(r#"old "style" value"#)
        );
    }

    #[test]
    fn malformed_values_name_the_attribute() {
        let mut pairs = required();
        pairs.push(("ce-subject", "100%"));
        assert_eq!(
            error(&pairs),
            "attribute \"subject\" has a '%' that does not start a percent-encoding such as %20"
        );
        let mut pairs = required();
        pairs.push(("ce-subject", "%C0%A0"));
        assert_eq!(
            error(&pairs),
            "attribute \"subject\" is not valid UTF-8 once percent-decoded"
        );
        // Decoding cannot smuggle in a control character.
        let mut pairs = required();
        pairs.push(("ce-subject", "line%0Abreak"));
        assert!(error(&pairs).starts_with("attribute \"subject\" contains U+000A"));
    }

    #[test]
    fn no_ce_headers_is_not_a_cloudevent() {
        let pairs = [("content-type", "application/json")];
        assert_eq!(
            error(&pairs),
            "not a CloudEvent: no ce-specversion header and the Content-Type is not application/cloudevents+json"
        );
        assert_eq!(
            parse(&HeaderMap::new(), Bytes::new()),
            Err(EventError::NotACloudEvent)
        );
    }

    #[test]
    fn missing_required_headers_are_named() {
        for (missing, attribute) in [
            ("ce-specversion", "specversion"),
            ("ce-id", "id"),
            ("ce-source", "source"),
            ("ce-type", "type"),
        ] {
            let pairs: Vec<_> = required()
                .into_iter()
                .filter(|(n, _)| *n != missing)
                .collect();
            assert_eq!(
                error(&pairs),
                format!("attribute \"{attribute}\" is required and must be non-empty")
            );
        }
    }

    #[test]
    fn header_level_rules() {
        let mut pairs = required();
        pairs.push(("ce-bad_name", "x"));
        assert_eq!(
            error(&pairs),
            "attribute name \"bad_name\" is invalid: names are 1 to 20 lower-case letters or digits"
        );
        let mut pairs = required();
        pairs.push(("ce-datacontenttype", "text/plain"));
        assert!(error(&pairs)
            .starts_with("attribute \"datacontenttype\" must be sent as the Content-Type header"));
        let mut pairs = required();
        pairs.push(("ce-data", "x"));
        assert!(error(&pairs).starts_with("attribute name \"data\" is reserved"));
        let mut pairs = required();
        pairs.push(("ce-id", "again"));
        assert_eq!(error(&pairs), "attribute \"id\" appears more than once");
        let mut pairs = required();
        pairs[0] = ("ce-specversion", "0.3");
        assert_eq!(
            error(&pairs),
            "specversion \"0.3\" is not supported: use 1.0"
        );
        let mut pairs = required();
        pairs.push(("ce-time", "yesterday"));
        assert_eq!(
            error(&pairs),
            "attribute \"time\" must be an RFC 3339 timestamp, got \"yesterday\""
        );
        let mut pairs = required();
        pairs.push(("content-type", ""));
        assert_eq!(
            error(&pairs),
            "attribute \"datacontenttype\" must be non-empty when present"
        );
    }

    #[test]
    fn raw_utf8_in_a_header_is_accepted_and_re_encoded() {
        let mut map = headers(&required());
        map.insert(
            HeaderName::from_static("ce-subject"),
            HeaderValue::from_bytes("café".as_bytes()).expect("obs-text"),
        );
        let event = parse(&map, Bytes::new()).expect("valid");
        assert_eq!(event.subject.as_deref(), Some("café"));
        assert_eq!(
            to_http_binary(&event).0.get("ce-subject").expect("subject"),
            "caf%C3%A9"
        );
    }

    #[test]
    fn a_non_ascii_content_type_is_reported() {
        let mut map = headers(&required());
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"text/plain; x=\xe9").expect("obs-text"),
        );
        assert_eq!(
            parse(&map, Bytes::new()).expect_err("bad").to_string(),
            "attribute \"datacontenttype\" (the Content-Type header) must be printable ASCII"
        );
    }

    #[test]
    fn writes_attributes_as_encoded_headers() {
        let mut event = CloudEvent::new("id 1", "/s", "t");
        event.subject = Some("Euro € \"q\" 100%".into());
        event.time = Some("2018-04-05T03:56:24Z".into());
        event.dataschema = Some("https://example.com/s.json".into());
        event.datacontenttype = Some("application/octet-stream".into());
        event.extensions.insert("count".into(), 5.into());
        event.extensions.insert("flag".into(), true.into());
        event.extensions.insert("note".into(), "a b".into());
        event.data = Some(Data::Binary(Bytes::from_static(&[0, 159, 146, 150])));
        let (map, body) = to_http_binary(&event);
        let get = |name: &str| {
            map.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(get("ce-specversion").as_deref(), Some("1.0"));
        assert_eq!(get("ce-id").as_deref(), Some("id%201"));
        assert_eq!(
            get("ce-subject").as_deref(),
            Some("Euro%20%E2%82%AC%20%22q%22%20100%25")
        );
        assert_eq!(get("ce-time").as_deref(), Some("2018-04-05T03:56:24Z"));
        assert_eq!(
            get("ce-dataschema").as_deref(),
            Some("https://example.com/s.json")
        );
        assert_eq!(get("ce-count").as_deref(), Some("5"));
        assert_eq!(get("ce-flag").as_deref(), Some("true"));
        assert_eq!(get("ce-note").as_deref(), Some("a%20b"));
        assert_eq!(
            get("content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert!(map.get("ce-datacontenttype").is_none());
        assert_eq!(map.len(), 11);
        assert_eq!(body.as_ref(), &[0, 159, 146, 150]);
    }

    #[test]
    fn json_data_without_a_content_type_is_labelled_json() {
        let mut event = CloudEvent::new("1", "/s", "t");
        event.data = Some(Data::Json(json!("I'm just a string")));
        let (map, body) = to_http_binary(&event);
        assert_eq!(
            map.get(CONTENT_TYPE).expect("content type"),
            "application/json"
        );
        assert_eq!(body.as_ref(), b"\"I'm just a string\"");
    }

    #[test]
    fn no_data_and_no_content_type_means_an_empty_body() {
        let (map, body) = to_http_binary(&CloudEvent::new("1", "/s", "t"));
        assert!(map.get(CONTENT_TYPE).is_none());
        assert!(body.is_empty());
    }

    #[test]
    fn binary_round_trip_keeps_everything() {
        let mut pairs = required();
        pairs.extend([
            ("ce-subject", "%E2%82%AC%20sign"),
            ("ce-time", "2018-04-05T03:56:24.123456+02:00"),
            ("ce-dataschema", "urn:schema:x"),
            (
                "ce-traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("content-type", "application/vnd.custom+thing; v=2"),
        ]);
        let body = Bytes::from_static(b"\x00\x01 arbitrary \xff bytes");
        let event = parse(&headers(&pairs), body.clone()).expect("valid");
        let (out, out_body) = to_http_binary(&event);
        assert_eq!(out_body, body);
        assert_eq!(out.len(), pairs.len());
        for (name, value) in &pairs {
            assert_eq!(out.get(*name).expect(name), value, "{name}");
        }
        assert_eq!(parse(&out, out_body), Ok(event));
    }
}
