//! HTTP batched content mode: a JSON array of events in the JSON format.

use serde_json::Value;

use super::error::EventError;
use super::event::CloudEvent;
use super::json;

/// Reads and validates every event of an `application/cloudevents-batch+json`
/// body. An empty array is a valid, empty batch. One bad event rejects the whole
/// batch, and the error says which one.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<CloudEvent>, EventError> {
    let items = match json::parse_body(body)? {
        Value::Array(items) => items,
        other => {
            return Err(EventError::NotAnArray {
                found: json::kind(&other),
            })
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            CloudEvent::from_json(item).map_err(|source| EventError::InBatch {
                index,
                source: Box::new(source),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(id: &str) -> Value {
        json!({"specversion": "1.0", "id": id, "source": "/s", "type": "t"})
    }

    fn body(value: &Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn zero_one_and_three_events() {
        assert_eq!(parse(b"[]").expect("empty"), vec![]);
        assert_eq!(parse(b" [ ] ").expect("empty"), vec![]);
        let one = parse(&body(&json!([event("a")]))).expect("one");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "a");
        let three = parse(&body(&json!([event("a"), event("b"), event("c")]))).expect("three");
        let ids: Vec<_> = three.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn one_bad_event_rejects_the_batch_and_is_located() {
        let mut bad = event("b");
        bad["time"] = json!("yesterday");
        let err = parse(&body(&json!([event("a"), bad, event("c")]))).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "event 1 of the batch (counting from 0): attribute \"time\" must be an RFC 3339 timestamp, got \"yesterday\""
        );
        assert_eq!(err.attribute(), Some("time"));
    }

    #[test]
    fn the_body_must_be_an_array_of_objects() {
        assert_eq!(
            parse(&body(&event("a"))).expect_err("object").to_string(),
            "a CloudEvents batch must be a JSON array of events, got an object"
        );
        assert_eq!(
            parse(b"[1]").expect_err("number").to_string(),
            "event 0 of the batch (counting from 0): a structured CloudEvent must be a JSON object, got a number"
        );
        assert!(parse(b"")
            .expect_err("empty")
            .to_string()
            .contains("the body is empty"));
    }
}
