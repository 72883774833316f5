//! The one error type for parsing and validating events.

/// Why an event, or an HTTP message claiming to carry events, was rejected.
///
/// The messages are written for the sender: the ingress returns them verbatim as
/// the body of a 400 response, so each one names the attribute and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Binary mode without any `ce-` header: most likely a plain HTTP request.
    #[error(
        "not a CloudEvent: no ce-specversion header and the Content-Type is not application/cloudevents+json"
    )]
    NotACloudEvent,

    #[error("specversion {found:?} is not supported: use 1.0")]
    UnsupportedSpecVersion { found: String },

    #[error("attribute {attribute:?} is required and must be non-empty")]
    Missing { attribute: &'static str },

    #[error("attribute name {name:?} is invalid: names are 1 to 20 lower-case letters or digits")]
    InvalidName { name: String },

    #[error("attribute name {name:?} is reserved: an extension cannot reuse the name of a CloudEvents attribute")]
    ReservedName { name: String },

    #[error("attribute {attribute:?} appears more than once")]
    Duplicate { attribute: String },

    /// An attribute is present but its value breaks a rule; `problem` completes the
    /// sentence, e.g. `must be an RFC 3339 timestamp, got "yesterday"`.
    #[error("attribute {attribute:?} {problem}")]
    InvalidValue { attribute: String, problem: String },

    #[error("an event must not have both \"data\" and \"data_base64\"")]
    DataConflict,

    #[error("\"data_base64\" {problem}")]
    InvalidDataBase64 { problem: String },

    #[error("the body is not valid JSON: {reason}")]
    InvalidJson { reason: String },

    #[error("a structured CloudEvent must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },

    #[error("a CloudEvents batch must be a JSON array of events, got {found}")]
    NotAnArray { found: &'static str },

    #[error("event format {media_type:?} is not supported: send application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce- headers")]
    UnsupportedFormat { media_type: String },

    /// One event of a batch is wrong; the whole batch is rejected.
    #[error("event {index} of the batch (counting from 0): {source}")]
    InBatch {
        index: usize,
        source: Box<EventError>,
    },
}

impl EventError {
    /// The attribute the error is about, if it is about one (for logs and metrics).
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::UnsupportedSpecVersion { .. } => Some("specversion"),
            Self::Missing { attribute } => Some(attribute),
            Self::InvalidName { name } | Self::ReservedName { name } => Some(name),
            Self::Duplicate { attribute } | Self::InvalidValue { attribute, .. } => Some(attribute),
            Self::InBatch { source, .. } => source.attribute(),
            Self::NotACloudEvent
            | Self::DataConflict
            | Self::InvalidDataBase64 { .. }
            | Self::InvalidJson { .. }
            | Self::NotAnObject { .. }
            | Self::NotAnArray { .. }
            | Self::UnsupportedFormat { .. } => None,
        }
    }

    pub(crate) fn invalid(attribute: &str, problem: impl Into<String>) -> Self {
        Self::InvalidValue {
            attribute: attribute.to_owned(),
            problem: problem.into(),
        }
    }
}

/// How a sender's value is echoed back in a message: cut short, because the
/// message becomes a response body and a value can be as large as the request.
pub(crate) fn excerpt(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_and_name_the_attribute() {
        let err = EventError::invalid("time", r#"must be an RFC 3339 timestamp, got "yesterday""#);
        assert_eq!(
            err.to_string(),
            r#"attribute "time" must be an RFC 3339 timestamp, got "yesterday""#
        );
        assert_eq!(err.attribute(), Some("time"));
        assert_eq!(
            EventError::UnsupportedSpecVersion {
                found: "0.3".into()
            }
            .to_string(),
            r#"specversion "0.3" is not supported: use 1.0"#
        );
    }

    #[test]
    fn batch_errors_carry_the_index_and_the_inner_attribute() {
        let err = EventError::InBatch {
            index: 2,
            source: Box::new(EventError::Missing { attribute: "id" }),
        };
        assert_eq!(
            err.to_string(),
            r#"event 2 of the batch (counting from 0): attribute "id" is required and must be non-empty"#
        );
        assert_eq!(err.attribute(), Some("id"));
    }

    #[test]
    fn excerpt_cuts_long_values_on_a_char_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 65);
        assert!(cut.ends_with('…'));
    }
}
