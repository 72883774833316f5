//! Durations in annotations, Go-style as Knative writes them.

use std::time::Duration;

/// The longest duration accepted: Go's `time.Duration` (nanoseconds in an i64, about
/// 292 years), so that whatever Knative refuses as too long is refused here too, and a
/// deadline computed from an accepted duration cannot overflow a clock.
pub const MAX: Duration = Duration::from_nanos(i64::MAX as u64);

/// Why a duration was refused; the caller puts the field's path in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration like 60s, 1m30s or 500ms")]
    Malformed(String),
    #[error("{0:?} is too long: a duration is at most 2562047h (about 292 years)")]
    TooLong(String),
}

/// Go-style durations as Knative writes them: `60s`, `1m30s`, `500ms`, `1h`; a bare
/// number is seconds.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(s.to_owned());
    let too_long = || DurationError::TooLong(s.to_owned());
    let text = s.trim();
    if text.is_empty() {
        return Err(malformed());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is too long as well.
        let secs = text.parse::<u64>().map_err(|_| too_long())?;
        return Some(Duration::from_secs(secs))
            .filter(|d| *d <= MAX)
            .ok_or_else(too_long);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(malformed)?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().map_err(|_| malformed())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1000.0,
            _ => return Err(malformed()),
        };
        // `secs` is never negative or NaN (digits and '.' only), but may be infinite
        // or past u64 seconds: both are too long, never a panic.
        let part = Duration::try_from_secs_f64(secs).map_err(|_| too_long())?;
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX)
            .ok_or_else(too_long)?;
        rest = next;
    }
    Ok(total)
}

/// [`parse`] for callers that only need to know whether the text is a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 30 "), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2562047h"), Ok(Duration::from_secs(2_562_047 * 3600)));
    }

    #[test]
    fn an_overflowing_duration_is_too_long_not_a_panic() {
        for s in [
            "99999999999999999999h",
            "99999999999999999999",
            "2562048h",
            "9223372037",
            "2562047h2562047h",
            &format!("{}s", "9".repeat(400)),
        ] {
            let e = parse(s).unwrap_err();
            assert_eq!(e, DurationError::TooLong(s.to_owned()));
            assert!(e.to_string().contains("is too long"), "{e}");
        }
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn malformed_durations_say_so() {
        for s in ["", "ten", "5x", "1.2.3s", "s", "-1s", "1h-1s", ".s"] {
            assert_eq!(parse(s), Err(DurationError::Malformed(s.to_owned())), "{s}");
        }
    }

    #[test]
    fn parse_duration_is_parse_without_the_reason() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
