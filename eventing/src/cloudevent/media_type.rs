//! Media types: recognising the CloudEvents formats and JSON content.
//!
//! Hand-written rather than on the `mime` crate (0.3.17), which gets both ways wrong
//! what RFC 9110 section 8.3.1 says: it accepts `text/` (an empty subtype) and refuses
//! whitespace before `;` (`text/plain ; charset=utf-8`), both pinned by
//! `tests::media_type_shape`.

/// The media type of a structured-mode event in the JSON format.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// The media type of a JSON batch of events.
pub const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// How an HTTP message carries its events, decided by its Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Structured,
    Batch,
    Binary,
    /// A CloudEvents format other than JSON (Avro, Protobuf, ...).
    UnsupportedFormat(String),
}

impl Mode {
    pub(crate) fn of(content_type: Option<&str>) -> Self {
        let Some(content_type) = content_type else {
            return Self::Binary;
        };
        let essence = essence(content_type);
        match essence.as_str() {
            STRUCTURED_JSON => Self::Structured,
            BATCH_JSON => Self::Batch,
            other
                if other.starts_with("application/cloudevents+")
                    || other.starts_with("application/cloudevents-batch+") =>
            {
                Self::UnsupportedFormat(essence)
            }
            _ => Self::Binary,
        }
    }
}

/// `type/subtype` without parameters, lower-cased (media types are case-insensitive).
fn essence(content_type: &str) -> String {
    let without_params = content_type.split(';').next().unwrap_or_default();
    without_params.trim().to_ascii_lowercase()
}

/// Whether `data` under this `datacontenttype` is JSON: a subtype of `json` or one
/// ending in `+json`. An absent content type means JSON in the JSON event format.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = essence(content_type);
    essence
        .split_once('/')
        .is_some_and(|(_, subtype)| subtype == "json" || subtype.ends_with("+json"))
}

/// Checks the RFC 2046 shape `type/subtype[; parameters]`, so that the value also
/// fits in a Content-Type header when the event is delivered in binary mode.
pub(crate) fn check(content_type: &str) -> Result<(), String> {
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let shape_ok = essence
        .trim()
        .split_once('/')
        .is_some_and(|(ty, subtype)| is_token(ty) && is_token(subtype));
    if !shape_ok {
        return Err("a media type of the form type/subtype".to_owned());
    }
    if !params
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err("printable ASCII".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_follows_the_content_type() {
        assert_eq!(
            Mode::of(Some("application/cloudevents+json")),
            Mode::Structured
        );
        assert_eq!(
            Mode::of(Some("Application/CloudEvents+JSON; charset=UTF-8")),
            Mode::Structured
        );
        assert_eq!(
            Mode::of(Some("application/cloudevents-batch+json;charset=utf-8")),
            Mode::Batch
        );
        assert_eq!(Mode::of(Some("application/json")), Mode::Binary);
        assert_eq!(Mode::of(Some("text/plain")), Mode::Binary);
        assert_eq!(Mode::of(None), Mode::Binary);
        assert_eq!(
            Mode::of(Some("application/cloudevents+avro")),
            Mode::UnsupportedFormat("application/cloudevents+avro".into())
        );
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(None));
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("text/json")));
        assert!(is_json(Some("application/vnd.api+JSON")));
        assert!(!is_json(Some("application/xml")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/jsonl")));
        assert!(!is_json(Some("json")));
    }

    #[test]
    fn media_type_shape() {
        assert_eq!(check("application/json"), Ok(()));
        assert_eq!(check("text/plain; charset=\"utf-8\""), Ok(()));
        assert_eq!(check("application/vnd.apache.thrift.binary"), Ok(()));
        assert_eq!(check("text/plain ; charset=utf-8"), Ok(()));
        assert!(check("json").is_err());
        assert!(check("/json").is_err());
        assert!(check("text/").is_err());
        assert!(check("text plain/x").is_err());
        assert!(check("text/plain; name=é").is_err());
    }
}
