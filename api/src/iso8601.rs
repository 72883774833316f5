//! ISO 8601 durations as Knative's delivery spec writes them: `PT0.2S`, `PT1M`, `P1D`.

use std::time::Duration;

/// Parse `P[nD][T[nH][nM][n[.f]S]]`; years, months and weeks are refused (their
/// length varies, and Knative does not use them).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let rest = s
        .trim()
        .strip_prefix('P')
        .or_else(|| s.trim().strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, t)
        }
        None => (rest, ""),
    };
    let mut secs = 0.0f64;
    secs += parts(date, &[('D', 86_400.0)])?;
    secs += parts(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
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
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
