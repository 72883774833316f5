//! ISO 8601 durations as Knative's delivery spec writes them: `PT0.2S`, `PT1M`, `P1D`.

use std::time::Duration;

use crate::duration::MAX;

/// Why a duration was refused; the caller puts the field's path in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Iso8601Error {
    #[error("{0:?} is not an ISO 8601 duration like PT0.5S or PT1M")]
    Malformed(String),
    #[error("{0:?} is too long: a duration is at most P106751D (about 292 years)")]
    TooLong(String),
}

/// Parse `P[nD][T[nH][nM][n[.f]S]]`; years, months and weeks are refused (their
/// length varies, and Knative does not use them).
pub fn parse(s: &str) -> Result<Duration, Iso8601Error> {
    let malformed = || Iso8601Error::Malformed(s.to_owned());
    let rest = s
        .trim()
        .strip_prefix(['P', 'p'])
        .filter(|r| !r.is_empty())
        .ok_or_else(malformed)?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((_, "")) => return Err(malformed()),
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let secs = parts(date, &[('D', 86_400.0)]).ok_or_else(malformed)?
        + parts(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)]).ok_or_else(malformed)?;
    // Numbers are digits only, so `secs` is never negative or NaN; it may be infinite
    // or past what a Duration holds, which is too long rather than a panic.
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX)
        .ok_or_else(|| Iso8601Error::TooLong(s.to_owned()))
}

/// [`parse`] for callers that only need to know whether the text is a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    parse(s).ok()
}

/// Sum `number unit` pairs in the order the units are given.
fn parts(mut s: &str, units: &[(char, f64)]) -> Option<f64> {
    let mut total = 0.0;
    let mut next_unit = 0;
    while !s.is_empty() {
        let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
        if end == 0 {
            return None;
        }
        let value: f64 = s[..end].replace(',', ".").parse().ok()?;
        let unit = s[end..].chars().next()?.to_ascii_uppercase();
        let index = units[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total += value * units[index].1;
        next_unit = index + 1;
        s = &s[end + unit.len_utf8()..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knative_delivery_durations() {
        assert_eq!(parse_duration("PT0.2S"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("PT1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("PT2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("P1DT1S"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_duration("P1D"), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "", "P", "PT", "1S", "PT1", "PTS", "P1Y", "PT1S1M", "PT-1S", "P1W",
        ] {
            assert_eq!(
                parse(bad),
                Err(Iso8601Error::Malformed(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_overflowing_duration_is_too_long_not_a_panic() {
        for s in [
            "P99999999999999999999D",
            "PT99999999999999999999H",
            "P106752D",
            "P106751DT24H",
            &format!("PT{}S", "9".repeat(400)),
        ] {
            let e = parse(s).unwrap_err();
            assert_eq!(e, Iso8601Error::TooLong(s.to_owned()));
            assert!(e.to_string().contains("is too long"), "{e}");
        }
        assert_eq!(parse("P106751D"), Ok(Duration::from_secs(106_751 * 86_400)));
        assert_eq!(parse_duration("P99999999999999999999D"), None);
    }
}
