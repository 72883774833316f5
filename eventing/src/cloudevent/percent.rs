//! Attribute values in HTTP headers (HTTP binding, section 3.1.3.2).
//!
//! Headers may only carry printable US-ASCII, while attribute values are Unicode
//! strings; the binding bridges the two with percent-encoding of UTF-8 bytes.

use std::borrow::Cow;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};

/// What the binding requires encoded: space, `"`, `%`, and everything outside
/// printable ASCII (U+0021..U+007E). `CONTROLS` is U+0000..U+001F and U+007F; bytes
/// outside ASCII are always encoded.
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Percent-encodes what the binding requires, byte by byte of the UTF-8 encoding,
/// with upper-case hex. The result is always a valid header value.
pub(crate) fn encode(value: &str) -> Cow<'_, str> {
    utf8_percent_encode(value, HEADER_VALUE).into()
}

/// Decodes a received header value: first undo an RFC 7230 quoted-string (older
/// senders quoted values instead of encoding spaces and quotes), then one round of
/// percent-decoding (either hex case), then require UTF-8.
///
/// The error completes the sentence "attribute X ...".
pub(crate) fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let unquoted = unquote(trim(raw))?;
    // percent-encoding passes a '%' that starts no escape through as it is; the
    // binding makes such a value malformed, so it is refused first.
    let malformed = unquoted.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !unquoted
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err("has a '%' that does not start a percent-encoding such as %20");
    }
    // Rejects overlong forms such as %C0%A0, as the binding requires.
    percent_decode(&unquoted)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| "is not valid UTF-8 once percent-decoded")
}

fn trim(raw: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = raw.iter().position(|b| !is_ows(b)).unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &raw[start..end]
}

/// A value that starts with `"` must be exactly one quoted-string; backslash escapes
/// the next byte. Any other value is taken as it is.
fn unquote(raw: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    let Some(inner) = raw.strip_prefix(b"\"") else {
        return Ok(Cow::Borrowed(raw));
    };
    const MALFORMED: &str = "starts with '\"' but is not a single quoted-string";
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(*bytes.next().ok_or(MALFORMED)?),
            b'"' if bytes.as_slice().is_empty() => return Ok(Cow::Owned(out)),
            b'"' => return Err(MALFORMED),
            _ => out.push(b),
        }
    }
    Err(MALFORMED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_spec_example() {
        assert_eq!(encode("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
    }

    #[test]
    fn encodes_only_what_must_be_encoded() {
        assert!(matches!(encode("/a/b?c=d&e#f"), Cow::Borrowed(_)));
        assert_eq!(encode(r#"say "100%""#), "say%20%22100%25%22");
        assert_eq!(encode("tab\there\n"), "tab%09here%0A");
        assert_eq!(encode("\u{7f}"), "%7F");
        assert_eq!(encode(""), "");
    }

    #[test]
    fn decodes_either_hex_case_and_needless_encodings() {
        assert_eq!(
            decode(b"Euro%20%e2%82%ac%20%F0%9F%98%80"),
            Ok("Euro € 😀".into())
        );
        assert_eq!(decode(b"%61%62c"), Ok("abc".into()));
        assert_eq!(decode(b"plain"), Ok("plain".into()));
        assert_eq!(decode(b"  padded\t"), Ok("padded".into()));
        assert_eq!(decode(b""), Ok(String::new()));
    }

    #[test]
    fn decodes_quoted_strings_from_older_senders() {
        assert_eq!(decode(br#""hello world""#), Ok("hello world".into()));
        assert_eq!(
            decode(br#""a \"quote\" and \\""#),
            Ok(r#"a "quote" and \"#.into())
        );
        assert_eq!(decode(br#""100%25""#), Ok("100%".into()));
        assert_eq!(decode(br#""""#), Ok(String::new()));
        // A quote that does not start the value is just a character.
        assert_eq!(decode(br#"a"b"#), Ok(r#"a"b"#.into()));
    }

    #[test]
    fn rejects_malformed_values() {
        for raw in [&b"%"[..], b"%2", b"%zz", b"abc%4g"] {
            assert!(decode(raw).expect_err("bad").contains("percent-encoding"));
        }
        for raw in [&br#""open"#[..], br#""a"b""#, br#""trailing\"#, b"\""] {
            assert!(decode(raw).expect_err("bad").contains("quoted-string"));
        }
        // Overlong encoding of a space, and a lone continuation byte.
        assert!(decode(b"%C0%A0").expect_err("overlong").contains("UTF-8"));
        assert!(decode(b"%80").expect_err("continuation").contains("UTF-8"));
    }

    /// A small deterministic fuzz: encoding any string yields a legal header value
    /// that decodes back to the same string.
    #[test]
    fn encode_then_decode_is_the_identity() {
        const ALPHABET: [char; 16] = [
            'a', 'Z', '0', ' ', '"', '%', '\\', '\t', '\n', '~', '!', 'é', '€', '😀', '\u{0}',
            '\u{fffd}',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            // Knuth's MMIX linear congruential generator.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..2_000 {
            let len = next() % 24;
            let value: String = (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect();
            let encoded = encode(&value);
            assert!(
                encoded
                    .bytes()
                    .all(|b| (0x21..=0x7E).contains(&b) && b != b'"'),
                "{encoded}"
            );
            assert!(http::HeaderValue::from_str(&encoded).is_ok());
            assert_eq!(decode(encoded.as_bytes()).as_deref(), Ok(value.as_str()));
        }
    }
}
