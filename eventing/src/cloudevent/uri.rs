//! RFC 3986 syntax checks for the URI and URI-reference attribute types, by
//! `fluent-uri`'s parser.
//!
//! Syntax only: nothing is resolved or normalized, because attribute values are
//! forwarded exactly as sent. The checks return the reason a value is not a URI so
//! that the caller can put it in a message for the sender.

use fluent_uri::{ParseError, ParseErrorKind, UriRef};

/// Checks a URI-reference (RFC 3986 section 4.1): a URI or a relative reference.
pub(crate) fn check_reference(value: &str) -> Result<(), String> {
    if let Some(len) = scheme_len(value) {
        check_scheme(&value[..len])?;
    }
    UriRef::parse(value).map(drop).map_err(|e| reason(value, e))
}

/// Checks an absolute URI (RFC 3986 section 4.3): a scheme, and no fragment.
pub(crate) fn check_absolute(value: &str) -> Result<(), String> {
    check_reference(value)?;
    if scheme_len(value).is_none() {
        return Err("it has no scheme such as \"https:\"".to_owned());
    }
    if value.contains('#') {
        return Err("an absolute URI has no fragment (\"#...\")".to_owned());
    }
    Ok(())
}

/// The length of the scheme, when the value starts with one: a ':' before any
/// '/', '?' or '#'. A relative reference cannot have ':' in its first segment, so
/// such a prefix must be a scheme or the value is invalid.
fn scheme_len(value: &str) -> Option<usize> {
    let colon = value.find(':')?;
    let first_delimiter = value.find(['/', '?', '#']).unwrap_or(value.len());
    (colon < first_delimiter).then_some(colon)
}

/// The parser reports a bad scheme at the first character of what it then takes
/// for a relative path, so the scheme is checked first, for a message that names it.
fn check_scheme(scheme: &str) -> Result<(), String> {
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if starts_with_letter && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "{scheme:?} before ':' is not a valid scheme (a letter, then letters, digits, '+', '-' or '.')"
        ))
    }
}

/// Why `value` is not a URI-reference, from where the parser stopped.
fn reason(value: &str, e: ParseError) -> String {
    let at = value.get(e.index()..).and_then(|rest| rest.chars().next());
    match (e.kind(), at) {
        (ParseErrorKind::InvalidPctEncodedOctet, _) => {
            "'%' must start a percent-encoding such as %20".to_owned()
        }
        (ParseErrorKind::InvalidIpv6Addr, _) => {
            "the IPv6 address in brackets is not valid".to_owned()
        }
        (ParseErrorKind::UnexpectedChar, _) if in_open_brackets(&value[..e.index()]) => {
            "the IP literal in brackets is not valid or not closed with ']'".to_owned()
        }
        (ParseErrorKind::UnexpectedChar, None) => "it ends too early".to_owned(),
        (ParseErrorKind::UnexpectedChar, Some('#')) => {
            "'#' may appear only once, to start the fragment".to_owned()
        }
        (ParseErrorKind::UnexpectedChar, Some(c)) => match authority(value, e.index()) {
            Some(authority) if allowed(c) => format!(
                "character {c:?} is out of place in the authority {authority:?} (a host, then ':' and a port of digits; an IPv6 address in brackets)"
            ),
            _ => format!("character {c:?} is not allowed and must be percent-encoded"),
        },
    }
}

/// Whether `before` has a '[' that no ']' closes: only an IP literal opens one.
fn in_open_brackets(before: &str) -> bool {
    before
        .rfind('[')
        .is_some_and(|open| !before[open..].contains(']'))
}

/// The authority of `value` (after "scheme://" or "//"), when byte `index` lies in it.
fn authority(value: &str, index: usize) -> Option<&str> {
    let start = scheme_len(value).map_or(0, |len| len + 1) + 2;
    if !value.get(start - 2..)?.starts_with("//") {
        return None;
    }
    let end = value[start..]
        .find(['/', '?', '#'])
        .map_or(value.len(), |i| start + i);
    (start..end).contains(&index).then(|| &value[start..end])
}

/// Characters a URI may hold somewhere: unreserved, gen-delims and sub-delims.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_are_valid() {
        for value in [
            "/mycontext",
            "/apis/v1/namespaces/default/pingsources/ping",
            "https://github.com/cloudevents/spec/pull",
            "urn:event:from:myapi/resource/123",
            "mailto:cncf-wg-serverless@lists.cncf.io",
            "https://[2001:db8::1]:8080/a?b=c#frag",
            "http://user:pw@[::1]:80/",
            "relative/path?q=1",
            "a%20b",
            "//authority.only",
            "#fragment-only",
            "x",
        ] {
            assert_eq!(check_reference(value), Ok(()), "{value}");
        }
    }

    #[test]
    fn references_that_are_not() {
        for (value, reason) in [
            ("a b", "character ' '"),
            ("/über", "character 'ü'"),
            ("/a\"b", "character '\"'"),
            ("/a%2", "'%' must start"),
            ("/a%zz", "'%' must start"),
            ("1abc:def", "not a valid scheme"),
            (":nothing", "not a valid scheme"),
            ("/a#b#c", "'#' may appear only once"),
            ("/path[1]", "character '['"),
            ("/a{b}", "character '{'"),
            // What a check of characters alone let through.
            (
                "http://host:port/",
                "out of place in the authority \"host:port\"",
            ),
            ("http://a[b]/", "out of place in the authority"),
            ("http://[::1/", "not closed"),
            ("http://[::1", "not closed"),
            ("http://[1:2:3]/", "IPv6 address"),
        ] {
            let err = check_reference(value).expect_err(value);
            assert!(err.contains(reason), "{value}: {err}");
        }
    }

    #[test]
    fn absolute_uris_need_a_scheme_and_no_fragment() {
        assert_eq!(check_absolute("https://example.com/schema.json"), Ok(()));
        assert_eq!(check_absolute("urn:example:schema"), Ok(()));
        assert!(check_absolute("/relative/schema")
            .expect_err("relative")
            .contains("no scheme"));
        assert!(check_absolute("https://x/s#part")
            .expect_err("fragment")
            .contains("fragment"));
        assert!(check_absolute("https://x/a b")
            .expect_err("space")
            .contains("' '"));
    }
}
