//! The rules of the CloudEvents 1.0 core specification, checked one attribute at a
//! time so that the first error names the attribute and the rule.

use chrono::DateTime;

use super::error::{excerpt, EventError};
use super::event::{CloudEvent, ExtensionValue, CONTEXT_ATTRIBUTES, SPEC_VERSION};
use super::{media_type, uri};

pub(crate) fn event(event: &CloudEvent) -> Result<(), EventError> {
    // The version first: under another version the other attributes mean other things.
    specversion(&event.specversion)?;
    required_string("id", &event.id)?;
    required("source", &event.source)?;
    uri::check_reference(&event.source).map_err(|reason| {
        EventError::invalid(
            "source",
            format!(
                "must be a URI-reference (RFC 3986), got {:?}: {reason}",
                excerpt(&event.source)
            ),
        )
    })?;
    required_string("type", &event.ty)?;
    if let Some(content_type) = &event.datacontenttype {
        datacontenttype(content_type)?;
    }
    if let Some(schema) = &event.dataschema {
        dataschema(schema)?;
    }
    if let Some(subject) = &event.subject {
        non_empty_if_present("subject", subject)?;
        string("subject", subject)?;
    }
    if let Some(time) = &event.time {
        timestamp(time)?;
    }
    for (name, value) in &event.extensions {
        extension_name(name)?;
        if let ExtensionValue::String(s) = value {
            string(name, s)?;
        }
        // Integer and Boolean are valid by construction: i32 is the CloudEvents range.
    }
    Ok(())
}

pub(crate) fn specversion(value: &str) -> Result<(), EventError> {
    match value {
        "" => Err(EventError::Missing {
            attribute: "specversion",
        }),
        SPEC_VERSION => Ok(()),
        other => Err(EventError::UnsupportedSpecVersion {
            found: excerpt(other),
        }),
    }
}

/// Attribute names are lower-case ASCII letters and digits. The specification only
/// says names SHOULD NOT exceed 20 characters; we enforce it, so that an event we
/// accept is accepted by every conforming receiver, strict ones included.
pub(crate) fn name(name: &str) -> Result<(), EventError> {
    let valid = (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(EventError::InvalidName {
            name: excerpt(name),
        })
    }
}

/// An extension's name must be valid and must not be one the core spec defines
/// (or `data`, which event formats use for the payload).
pub(crate) fn extension_name(extension: &str) -> Result<(), EventError> {
    name(extension)?;
    if extension == "data" || CONTEXT_ATTRIBUTES.contains(&extension) {
        return Err(EventError::ReservedName {
            name: extension.to_owned(),
        });
    }
    Ok(())
}

fn required(attribute: &'static str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        Err(EventError::Missing { attribute })
    } else {
        Ok(())
    }
}

fn required_string(attribute: &'static str, value: &str) -> Result<(), EventError> {
    required(attribute, value)?;
    string(attribute, value)
}

fn non_empty_if_present(attribute: &str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        Err(EventError::invalid(
            attribute,
            "must be non-empty when present",
        ))
    } else {
        Ok(())
    }
}

/// The CloudEvents String type excludes control characters and Unicode
/// noncharacters. (Unpaired surrogates, also excluded, cannot occur in a Rust string.)
fn string(attribute: &str, value: &str) -> Result<(), EventError> {
    let forbidden = value.chars().find(|&c| {
        let code = u32::from(c);
        code <= 0x1F
            || (0x7F..=0x9F).contains(&code)
            || (0xFDD0..=0xFDEF).contains(&code)
            // U+FFFE and U+FFFF in every plane
            || code & 0xFFFE == 0xFFFE
    });
    match forbidden {
        None => Ok(()),
        Some(c) => Err(EventError::invalid(
            attribute,
            format!(
                "contains U+{:04X}, which is not allowed: CloudEvents strings exclude control characters and Unicode noncharacters",
                u32::from(c)
            ),
        )),
    }
}

fn datacontenttype(value: &str) -> Result<(), EventError> {
    non_empty_if_present("datacontenttype", value)?;
    media_type::check(value).map_err(|shape| {
        EventError::invalid(
            "datacontenttype",
            format!("must be {shape}, got {:?}", excerpt(value)),
        )
    })
}

fn dataschema(value: &str) -> Result<(), EventError> {
    non_empty_if_present("dataschema", value)?;
    uri::check_absolute(value).map_err(|reason| {
        EventError::invalid(
            "dataschema",
            format!(
                "must be an absolute URI (RFC 3986), got {:?}: {reason}",
                excerpt(value)
            ),
        )
    })
}

fn timestamp(value: &str) -> Result<(), EventError> {
    match DateTime::parse_from_rfc3339(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(EventError::invalid(
            "time",
            format!("must be an RFC 3339 timestamp, got {:?}", excerpt(value)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CloudEvent {
        let mut event = CloudEvent::new("id-1", "/sources/a", "com.example.thing");
        event.datacontenttype = Some("application/json".into());
        event.dataschema = Some("https://example.com/schema.json".into());
        event.subject = Some("thing/1".into());
        event.time = Some("2018-04-05T17:31:00Z".into());
        event
            .extensions
            .insert("traceparent".into(), "00-abc".into());
        event.extensions.insert("count".into(), 3.into());
        event.extensions.insert("flag".into(), false.into());
        event
    }

    fn message(event: &CloudEvent) -> String {
        event.validate().expect_err("should be invalid").to_string()
    }

    #[test]
    fn a_complete_event_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn required_attributes_must_be_non_empty() {
        for attribute in ["specversion", "id", "source", "type"] {
            let mut event = valid();
            match attribute {
                "specversion" => event.specversion.clear(),
                "id" => event.id.clear(),
                "source" => event.source.clear(),
                _ => event.ty.clear(),
            }
            assert_eq!(
                message(&event),
                format!("attribute \"{attribute}\" is required and must be non-empty")
            );
            assert_eq!(
                event.validate().expect_err("invalid").attribute(),
                Some(attribute)
            );
        }
    }

    #[test]
    fn only_version_1_0_is_supported() {
        let mut event = valid();
        event.specversion = "0.3".into();
        assert_eq!(
            message(&event),
            r#"specversion "0.3" is not supported: use 1.0"#
        );
        // The version is checked before anything else.
        event.id.clear();
        assert!(message(&event).starts_with("specversion"));
    }

    #[test]
    fn time_must_be_rfc3339() {
        let mut event = valid();
        event.time = Some("yesterday".into());
        assert_eq!(
            message(&event),
            r#"attribute "time" must be an RFC 3339 timestamp, got "yesterday""#
        );
        for bad in [
            "2018-04-05",
            "2018-04-05T17:31:00",
            "2018-13-05T17:31:00Z",
            "",
        ] {
            event.time = Some(bad.into());
            assert!(message(&event).starts_with("attribute \"time\""), "{bad}");
        }
        for good in [
            "2018-04-05T17:31:00Z",
            "2018-04-05t17:31:00z",
            "2018-04-05T17:31:00.123456789+05:30",
            "2016-12-31T23:59:60Z",
        ] {
            event.time = Some(good.into());
            assert_eq!(event.validate(), Ok(()), "{good}");
        }
    }

    #[test]
    fn source_must_be_a_uri_reference() {
        let mut event = valid();
        event.source = "not a uri".into();
        assert_eq!(
            message(&event),
            r#"attribute "source" must be a URI-reference (RFC 3986), got "not a uri": character ' ' is not allowed and must be percent-encoded"#
        );
        event.source = "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66".into();
        assert_eq!(event.validate(), Ok(()));
    }

    #[test]
    fn dataschema_must_be_an_absolute_uri() {
        let mut event = valid();
        event.dataschema = Some("/schemas/a.json".into());
        let msg = message(&event);
        assert!(
            msg.starts_with(r#"attribute "dataschema" must be an absolute URI"#),
            "{msg}"
        );
        event.dataschema = Some(String::new());
        assert_eq!(
            message(&event),
            r#"attribute "dataschema" must be non-empty when present"#
        );
    }

    #[test]
    fn datacontenttype_must_be_a_non_empty_media_type() {
        let mut event = valid();
        event.datacontenttype = Some(String::new());
        assert_eq!(
            message(&event),
            r#"attribute "datacontenttype" must be non-empty when present"#
        );
        event.datacontenttype = Some("json".into());
        assert_eq!(
            message(&event),
            r#"attribute "datacontenttype" must be a media type of the form type/subtype, got "json""#
        );
    }

    #[test]
    fn subject_must_be_non_empty_when_present() {
        let mut event = valid();
        event.subject = Some(String::new());
        assert_eq!(
            message(&event),
            r#"attribute "subject" must be non-empty when present"#
        );
    }

    #[test]
    fn strings_exclude_control_characters_and_noncharacters() {
        for (bad, code) in [
            ("a\nb", "U+000A"),
            ("\u{7f}", "U+007F"),
            ("\u{85}", "U+0085"),
            ("\u{fdd0}", "U+FDD0"),
            ("\u{fffe}", "U+FFFE"),
            ("\u{1ffff}", "U+1FFFF"),
        ] {
            let mut event = valid();
            event.id = bad.into();
            let msg = message(&event);
            assert!(
                msg.starts_with("attribute \"id\" contains ") && msg.contains(code),
                "{msg}"
            );

            let mut event = valid();
            event.extensions.insert("ext".into(), bad.into());
            assert!(message(&event).starts_with("attribute \"ext\" contains "));
        }
        let mut event = valid();
        event.id = "ünïcödé € 😀".into();
        assert_eq!(event.validate(), Ok(()));
    }

    #[test]
    fn extension_names_are_lower_case_letters_and_digits() {
        for bad in [
            "Bad_Name",
            "",
            "UPPER",
            "with-dash",
            "a".repeat(21).as_str(),
        ] {
            let mut event = valid();
            event.extensions.insert(bad.into(), "v".into());
            assert_eq!(
                message(&event),
                format!(
                    "attribute name {bad:?} is invalid: names are 1 to 20 lower-case letters or digits"
                )
            );
        }
        let mut event = valid();
        event.extensions.insert("a".repeat(20), "v".into());
        event.extensions.insert("x0".into(), "".into());
        assert_eq!(event.validate(), Ok(()));
    }

    #[test]
    fn extensions_cannot_shadow_core_attributes() {
        for reserved in ["id", "time", "specversion", "data"] {
            let mut event = valid();
            event.extensions.insert(reserved.into(), "x".into());
            let err = event.validate().expect_err("reserved");
            assert_eq!(
                err,
                EventError::ReservedName {
                    name: reserved.into()
                }
            );
            assert!(err
                .to_string()
                .contains(&format!("{reserved:?} is reserved")));
        }
    }

    #[test]
    fn long_values_are_cut_short_in_messages() {
        let mut event = valid();
        event.time = Some("x".repeat(10_000));
        assert!(message(&event).len() < 200);
    }
}
