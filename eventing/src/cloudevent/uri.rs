//! RFC 3986 syntax checks for the URI and URI-reference attribute types.
//!
//! Syntax only: nothing is resolved or normalized, because attribute values are
//! forwarded exactly as sent. The checks return the reason a value is not a URI so
//! that the caller can put it in a message for the sender.

/// Checks a URI-reference (RFC 3986 section 4.1): a URI or a relative reference.
pub(crate) fn check_reference(value: &str) -> Result<(), String> {
    let rest = match scheme_len(value) {
        Some(len) => {
            check_scheme(&value[..len])?;
            &value[len + 1..]
        }
        None => value,
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (rest, None),
    };
    if fragment.is_some_and(|f| f.contains('#')) {
        return Err("'#' may appear only once, to start the fragment".to_owned());
    }
    // Brackets are only allowed around an IP literal in the authority.
    let (authority, path_and_query) = match before_fragment.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            after.split_at(end)
        }
        None => ("", before_fragment),
    };
    check_chars(authority, true)?;
    check_chars(path_and_query, false)?;
    check_chars(fragment.unwrap_or(""), false)
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

fn check_chars(part: &str, brackets_allowed: bool) -> Result<(), String> {
    let bytes = part.as_bytes();
    for (i, c) in part.char_indices() {
        let allowed = c.is_ascii_alphanumeric()
            // unreserved, gen-delims (except brackets) and sub-delims
            || "-._~:/?#@!$&'()*+,;=".contains(c)
            || (brackets_allowed && matches!(c, '[' | ']'));
        if allowed {
            continue;
        }
        if c == '%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if hex(i + 1) && hex(i + 2) {
                continue;
            }
            return Err("'%' must start a percent-encoding such as %20".to_owned());
        }
        return Err(format!(
            "character {c:?} is not allowed and must be percent-encoded"
        ));
    }
    Ok(())
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
