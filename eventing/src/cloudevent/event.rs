//! The event itself: context attributes, extensions and data.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use super::error::EventError;
use super::validate;

/// The only CloudEvents version this crate speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The context attributes the core specification defines, in the order they are
/// listed by [`CloudEvent::attributes`]. Extensions may not reuse these names.
pub(crate) const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// A CloudEvent (specification 1.0).
///
/// Fields are public so that producers can build events directly; call
/// [`CloudEvent::validate`] before handing a hand-built event on. Events returned by
/// [`from_http`](super::from_http) and [`CloudEvent::from_json`] are already valid.
///
/// Attribute values are kept as the sender wrote them (for example `time` keeps its
/// original string, offset and precision), so an event is forwarded unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// Always `"1.0"` in a valid event.
    pub specversion: String,
    pub id: String,
    /// A URI-reference identifying the context in which the event happened.
    pub source: String,
    /// The `type` attribute (a Rust keyword, hence the name).
    pub ty: String,
    /// The media type of `data`, e.g. `application/json`.
    pub datacontenttype: Option<String>,
    /// An absolute URI naming the schema `data` adheres to.
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    /// An RFC 3339 timestamp, as sent; [`CloudEvent::time`] parses it.
    pub time: Option<String>,
    /// Extension attributes by name. A sorted map, so that serializations are stable.
    pub extensions: BTreeMap<String, ExtensionValue>,
    pub data: Option<Data>,
}

impl CloudEvent {
    /// An event with the required attributes set and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// Checks every rule of the CloudEvents 1.0 core specification; the error names
    /// the first attribute found wrong.
    pub fn validate(&self) -> Result<(), EventError> {
        validate::event(self)
    }

    /// The `time` attribute parsed, or `None` when it is absent or not RFC 3339
    /// (which [`CloudEvent::validate`] rejects).
    pub fn time(&self) -> Option<DateTime<FixedOffset>> {
        self.time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    }

    /// The canonical string form of a context attribute or extension, by its
    /// (lower-case) name. `data` is not an attribute.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attribute_ref(name).map(Cow::into_owned)
    }

    /// A typed extension attribute.
    /// Note that the event passed through channel `hop`, in Knative's `knativehistory`
    /// extension (hops separated by `; `), for tracing the path of an event in a flow.
    pub fn add_history(&mut self, hop: &str) {
        let history = match self.extension(HISTORY).map(ExtensionValue::canonical) {
            Some(h) if !h.is_empty() => format!("{h}; {hop}"),
            _ => hop.to_owned(),
        };
        self.extensions
            .insert(HISTORY.into(), ExtensionValue::String(history));
    }

    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// Every attribute that is set, as (name, canonical string): the core context
    /// attributes first, in specification order, then the extensions by name.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> + '_ {
        CONTEXT_ATTRIBUTES
            .into_iter()
            .filter_map(|name| {
                self.context_attribute(name)
                    .map(|v| (name, Cow::Borrowed(v)))
            })
            .chain(
                self.extensions
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.canonical())),
            )
    }

    fn attribute_ref(&self, name: &str) -> Option<Cow<'_, str>> {
        match self.context_attribute(name) {
            Some(value) => Some(Cow::Borrowed(value)),
            None if CONTEXT_ATTRIBUTES.contains(&name) => None,
            None => self.extensions.get(name).map(ExtensionValue::canonical),
        }
    }

    /// A core context attribute by name; `None` for unset ones and for extensions.
    pub(crate) fn context_attribute(&self, name: &str) -> Option<&str> {
        match name {
            "specversion" => Some(&self.specversion),
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "type" => Some(&self.ty),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "dataschema" => self.dataschema.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            _ => None,
        }
    }
}

/// Knative's extension listing the channels an event went through.
pub const HISTORY: &str = "knativehistory";

/// The value of an extension attribute.
///
/// Structured (JSON) mode carries types; binary mode carries every attribute as a
/// header string, so extensions that arrive in binary mode are always `String`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    String(String),
    /// CloudEvents integers are signed 32-bit.
    Integer(i32),
    Boolean(bool),
}

impl ExtensionValue {
    /// The canonical string encoding the specification defines for the type.
    pub fn canonical(&self) -> Cow<'_, str> {
        match self {
            Self::String(s) => Cow::Borrowed(s),
            Self::Integer(i) => Cow::Owned(i.to_string()),
            Self::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl From<&str> for ExtensionValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for ExtensionValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i32> for ExtensionValue {
    fn from(value: i32) -> Self {
        Self::Integer(value)
    }
}

impl From<bool> for ExtensionValue {
    fn from(value: bool) -> Self {
        Self::Boolean(value)
    }
}

/// The event payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Opaque bytes: a binary-mode body or a structured `data_base64`. Kept as
    /// received so that delivery forwards exactly the bytes the producer sent.
    Binary(Bytes),
    /// A structured-mode `data` member whose `datacontenttype` is JSON (or absent,
    /// which means JSON).
    Json(serde_json::Value),
    /// A structured-mode `data` string whose `datacontenttype` is not JSON, e.g. an
    /// XML document under `application/xml`; its bytes are the UTF-8 text.
    String(String),
}

impl Data {
    /// The payload as an HTTP body or log record value.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            // Cheap: `Bytes` clones share the buffer.
            Self::Binary(bytes) => bytes.clone(),
            Self::Json(value) => Bytes::from(value.to_string()),
            Self::String(text) => Bytes::from(text.clone()),
        }
    }

    /// The media type to announce when the event has no `datacontenttype`: JSON data
    /// is JSON by definition, and text is text; bytes stay unlabelled.
    pub(crate) fn implied_content_type(&self) -> Option<&'static str> {
        match self {
            Self::Binary(_) => None,
            Self::Json(_) => Some("application/json"),
            Self::String(_) => Some("text/plain; charset=utf-8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CloudEvent {
        let mut event = CloudEvent::new("1", "/src", "com.example.created");
        event.subject = Some("order/7".into());
        event.time = Some("2024-05-01T10:00:00.5+02:00".into());
        event.extensions.insert("count".into(), 7.into());
        event.extensions.insert("flag".into(), true.into());
        event.extensions.insert("note".into(), "hi".into());
        event
    }

    #[test]
    fn new_sets_the_version_and_required_attributes() {
        let event = CloudEvent::new("a", "/b", "c");
        assert_eq!(event.specversion, "1.0");
        assert_eq!(
            (event.id.as_str(), event.source.as_str(), event.ty.as_str()),
            ("a", "/b", "c")
        );
        assert!(event.validate().is_ok());
    }

    #[test]
    fn attribute_reads_context_and_extensions_as_canonical_strings() {
        let event = sample();
        assert_eq!(
            event.attribute("type").as_deref(),
            Some("com.example.created")
        );
        assert_eq!(event.attribute("specversion").as_deref(), Some("1.0"));
        assert_eq!(event.attribute("count").as_deref(), Some("7"));
        assert_eq!(event.attribute("flag").as_deref(), Some("true"));
        assert_eq!(event.attribute("note").as_deref(), Some("hi"));
        assert_eq!(event.attribute("dataschema"), None);
        assert_eq!(event.attribute("missing"), None);
        assert_eq!(event.attribute("data"), None);
    }

    #[test]
    fn an_extension_cannot_answer_for_an_unset_context_attribute() {
        // Validation rejects such an event, but the accessor must not mislead either.
        let mut event = CloudEvent::new("1", "/s", "t");
        event.extensions.insert("subject".into(), "sneaky".into());
        assert_eq!(event.attribute("subject"), None);
    }

    #[test]
    fn attributes_lists_context_first_then_extensions_by_name() {
        let names: Vec<_> = sample().attributes().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(
            names,
            [
                "specversion",
                "id",
                "source",
                "type",
                "subject",
                "time",
                "count",
                "flag",
                "note"
            ]
        );
        let values: Vec<_> = sample().attributes().map(|(_, v)| v.into_owned()).collect();
        assert_eq!(values[6..], ["7", "true", "hi"]);
    }

    #[test]
    fn time_keeps_the_string_and_parses_it() {
        let event = sample();
        assert_eq!(event.time.as_deref(), Some("2024-05-01T10:00:00.5+02:00"));
        let parsed = event.time().expect("parses");
        assert_eq!(parsed.to_rfc3339(), "2024-05-01T10:00:00.500+02:00");
        let mut bad = event;
        bad.time = Some("yesterday".into());
        assert_eq!(bad.time(), None);
    }

    #[test]
    fn extension_values_have_canonical_strings() {
        assert_eq!(
            ExtensionValue::Integer(-2_147_483_648).to_string(),
            "-2147483648"
        );
        assert_eq!(ExtensionValue::Boolean(false).to_string(), "false");
        assert_eq!(ExtensionValue::from("x").to_string(), "x");
        assert_eq!(
            sample().extension("count"),
            Some(&ExtensionValue::Integer(7))
        );
    }

    #[test]
    fn data_to_bytes() {
        let raw = Bytes::from_static(b"\x00\xffraw");
        assert_eq!(Data::Binary(raw.clone()).to_bytes(), raw);
        assert_eq!(
            Data::Json(serde_json::json!({"a": [1, true]})).to_bytes(),
            Bytes::from_static(br#"{"a":[1,true]}"#)
        );
        assert_eq!(
            Data::Json(serde_json::json!("text")).to_bytes(),
            Bytes::from_static(br#""text""#)
        );
        assert_eq!(
            Data::String("<a/>".into()).to_bytes(),
            Bytes::from_static(b"<a/>")
        );
    }

    #[test]
    fn history_grows_hop_by_hop() {
        let mut e = CloudEvent::new("1", "/s", "t");
        e.add_history("a");
        e.add_history("b");
        assert_eq!(e.attribute(HISTORY).as_deref(), Some("a; b"));
    }
}
