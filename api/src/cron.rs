//! Cron schedules as PingSource takes them: five fields (minute, hour, day of month,
//! month, day of week) with `*`, lists, ranges, steps and month or day names, or one
//! of the macros `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`. As in
//! standard cron, when both day fields are restricted a day matching either counts.
//!
//! The fields are read here and the firing times found by `croner`, which also gets
//! time zones' daylight-saving changes right: a time that a change skips fires at the
//! change, one it repeats fires once. croner reads more than PingSource takes (a
//! seconds and a year field, `L`, `W`, `#`, `+`, names in any field, macros in any
//! case) and its errors do not name the field, so the grammar below is the guard:
//! what it accepts reaches croner as plain lists of values.

use chrono::{DateTime, Duration, TimeZone};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cron: Cron,
}

/// Field bounds and names, in field order.
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (
        "day of week",
        0,
        7,
        &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    ),
];

fn value(s: &str, field: usize) -> Result<u32, String> {
    let (name, low, high, names) = FIELDS[field];
    let lower = s.to_ascii_lowercase();
    let n = match names.iter().position(|n| *n == lower) {
        Some(i) => i as u32 + low,
        None => s
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not a {name}"))?,
    };
    if n < low || n > high {
        return Err(format!("{name} {n} is outside {low}-{high}"));
    }
    Ok(n)
}

/// One field as a bit set; whether it was `*` (unrestricted).
fn field(text: &str, index: usize) -> Result<(u64, bool), String> {
    let (_, low, high, _) = FIELDS[index];
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {s:?} is not a number above 0"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, index)?, value(b, index)?),
                None => {
                    let v = value(r, index)?;
                    // `5/15` means from 5 to the end, every 15.
                    (v, if part.contains('/') { high } else { v })
                }
            },
        };
        if from > to {
            return Err(format!("range {range:?} goes backwards"));
        }
        let mut v = Some(from);
        // A step may be any u32: past the field's end it simply stops the list.
        while let Some(n) = v.filter(|n| *n <= to) {
            bits |= 1 << n;
            v = n.checked_add(step);
        }
    }
    Ok((bits, text == "*" || text == "?"))
}

impl Schedule {
    /// Parse a schedule; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => {
                return Err(format!(
                    "{t:?} is not a schedule macro (@yearly, @monthly, @weekly, @daily, @hourly)"
                ))
            }
            t => t,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "{text:?} has {} fields; a schedule has 5: minute hour day-of-month month day-of-week",
                parts.len()
            ));
        }
        let mut sets = [(0u64, false); 5];
        for (i, p) in parts.iter().enumerate() {
            sets[i] = field(p, i).map_err(|e| format!("field {} ({}): {e}", i + 1, FIELDS[i].0))?;
        }
        // 7 is Sunday too.
        if sets[4].0 & (1 << 7) != 0 {
            sets[4].0 = (sets[4].0 | 1) & !(1 << 7);
        }
        // An unrestricted field stays `*`: croner, as cron, lets a day match either
        // day field only when both are restricted.
        let pattern: Vec<String> = sets
            .iter()
            .map(|&(bits, unrestricted)| {
                if unrestricted {
                    return "*".to_owned();
                }
                let values: Vec<String> = (0..64)
                    .filter(|n| bits & (1 << n) != 0)
                    .map(|n: u32| n.to_string())
                    .collect();
                values.join(",")
            })
            .collect();
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern.join(" "))
            .map_err(|e| format!("{text:?} cannot be scheduled: {e}"))?;
        Ok(Schedule { cron })
    }

    /// The first time strictly after `after` the schedule fires, in `after`'s zone
    /// (within the next eight years, else `None`).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let next = self.cron.find_next_occurrence(after, false).ok()?;
        (next < after.clone() + Duration::days(366 * 8)).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(&at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn common_schedules() {
        assert_eq!(
            next("* * * * *", "2026-11-25T10:00:30Z"),
            "2026-11-25T10:01:00+00:00"
        );
        assert_eq!(
            next("* * * * *", "2026-11-25T10:01:00Z"),
            "2026-11-25T10:02:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-11-25T10:01:00Z"),
            "2026-11-25T10:15:00+00:00"
        );
        assert_eq!(
            next("0 9 * * mon-fri", "2026-11-27T10:00:00Z"),
            "2026-11-30T09:00:00+00:00"
        );
        assert_eq!(
            next("@monthly", "2026-12-15T00:00:00Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("30 2 29 feb *", "2026-03-01T00:00:00Z"),
            "2028-02-29T02:30:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-11-25T00:00:00Z"),
            "2026-11-29T00:00:00+00:00"
        );
        assert_eq!(
            next("5/20 1,3 * * *", "2026-11-25T01:30:00Z"),
            "2026-11-25T01:45:00+00:00"
        );
    }

    #[test]
    fn restricted_day_fields_match_either() {
        // The 1st of the month or any Monday.
        assert_eq!(
            next("0 0 1 * mon", "2026-11-25T00:00:00Z"),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * mon", "2026-11-30T00:00:00Z"),
            "2026-12-01T00:00:00+00:00"
        );
    }

    fn next_in_paris(schedule: &str, after: &str) -> Option<String> {
        let after = at(after).with_timezone(&chrono_tz::Europe::Paris);
        let next = Schedule::parse(schedule).unwrap().next_after(&after)?;
        Some(next.to_rfc3339())
    }

    /// On 2026-10-25 Paris goes from 03:00 CEST back to 02:00 CET; a schedule went
    /// quiet there (no next time at all) when its search met the repeated hour.
    #[test]
    fn a_schedule_goes_on_across_the_autumn_change() {
        for (schedule, after, next) in [
            (
                "*/15 * * * *",
                "2026-10-25T00:00:00Z",
                "2026-10-25T02:15:00+02:00",
            ),
            (
                "0 3 * * *",
                "2026-10-24T23:30:00Z",
                "2026-10-25T03:00:00+01:00",
            ),
            (
                "0 0 * * 7",
                "2026-10-24T23:30:00Z",
                "2026-11-01T00:00:00+01:00",
            ),
            (
                "59 1 * * *",
                "2026-10-24T23:59:00Z",
                "2026-10-26T01:59:00+01:00",
            ),
        ] {
            assert_eq!(
                next_in_paris(schedule, after).as_deref(),
                Some(next),
                "{schedule} after {after}"
            );
        }
    }

    #[test]
    fn a_time_the_clocks_repeat_fires_once() {
        let first = next_in_paris("30 2 * * *", "2026-10-24T23:00:00Z");
        assert_eq!(first.as_deref(), Some("2026-10-25T02:30:00+02:00"));
        let second = next_in_paris("30 2 * * *", &first.unwrap());
        assert_eq!(second.as_deref(), Some("2026-10-26T02:30:00+01:00"));
    }

    /// On 2026-03-29 Paris goes from 02:00 CET to 03:00 CEST: 02:30 does not exist
    /// that day, and fires at the change, as in Vixie cron, rather than a day late.
    #[test]
    fn a_time_the_clocks_skip_fires_at_the_change() {
        assert_eq!(
            next_in_paris("30 2 * * *", "2026-03-29T00:00:00Z").as_deref(),
            Some("2026-03-29T03:00:00+02:00")
        );
    }

    #[test]
    fn a_day_that_never_comes_has_no_next_time() {
        for schedule in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let after = at("2026-01-01T00:00:00Z");
            assert_eq!(Schedule::parse(schedule).unwrap().next_after(&after), None);
        }
    }

    /// croner reads all of these; Knative's PingSource (robfig/cron's standard
    /// parser) takes none of them, nor does this grammar.
    #[test]
    fn what_croner_reads_but_pingsource_does_not_is_refused() {
        for (s, says) in [
            ("0 * * * * *", "has 6 fields"),
            ("0 0 * * * * 2030", "has 7 fields"),
            (
                "0 0 L * *",
                "field 3 (day of month): \"L\" is not a day of month",
            ),
            ("0 0 15W * *", "field 3 (day of month)"),
            ("0 0 * * 5#2", "field 5 (day of week)"),
            ("0 0 * * 5L", "field 5 (day of week)"),
            ("0 0 1 * +mon", "field 5 (day of week)"),
            ("mon * * * *", "field 1 (minute): \"mon\" is not a minute"),
            ("@Daily", "not a schedule macro"),
        ] {
            let e = Schedule::parse(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn mistakes_say_which_field() {
        for (s, says) in [
            ("* * * *", "has 4 fields"),
            ("60 * * * *", "field 1 (minute): minute 60 is outside 0-59"),
            ("* 24 * * *", "field 2 (hour)"),
            ("* * 0 * *", "field 3 (day of month)"),
            ("* * * foo *", "field 4 (month): \"foo\" is not a month"),
            ("* * * * */0", "field 5 (day of week): step"),
            ("10-5 * * * *", "goes backwards"),
            ("@often", "not a schedule macro"),
        ] {
            let e = Schedule::parse(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
    }
}
