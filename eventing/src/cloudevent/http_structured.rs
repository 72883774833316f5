//! HTTP structured content mode: one event in the JSON format as the body.

use super::error::EventError;
use super::event::CloudEvent;
use super::json;

/// Reads and validates the event in an `application/cloudevents+json` body.
///
/// `ce-` headers that may accompany a structured message are ignored: the binding
/// requires every attribute to be in the body, which is the authority.
pub(crate) fn parse(body: &[u8]) -> Result<CloudEvent, EventError> {
    CloudEvent::from_json(json::parse_body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_event() {
        let body = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"x":1}}"#;
        let event = parse(body).expect("valid");
        assert_eq!(event.id, "1");
        assert_eq!(event.to_json()["data"]["x"], 1);
    }

    #[test]
    fn reports_bad_json_and_bad_events() {
        let msg = parse(b"{not json").expect_err("bad json").to_string();
        assert!(msg.starts_with("the body is not valid JSON: "), "{msg}");
        assert_eq!(
            parse(br#"{"specversion":"1.0","source":"/s","type":"t"}"#)
                .expect_err("no id")
                .to_string(),
            "attribute \"id\" is required and must be non-empty"
        );
    }
}
