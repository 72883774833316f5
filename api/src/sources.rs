//! `sources.knative.dev/v1`: PingSource, in Knative's shape: a CloudEvent on a cron
//! schedule (in a time zone), with fixed data, to a sink.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::condition::Conditions;
use crate::cron::Schedule;
use crate::eventing::Destination;
use crate::serving::Unsupported;

pub const SOURCES_API_VERSION: &str = "sources.knative.dev/v1";
/// The type of the events a PingSource sends, as Knative names it.
pub const PING_EVENT_TYPE: &str = "dev.knative.sources.ping";

resource!(PingSource, PingSourceSpec, PingSourceStatus);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingSourceSpec {
    #[serde(default)]
    pub schedule: String,
    /// An IANA time zone (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Unsupported,
}

impl PingSourceSpec {
    /// The schedule and zone; validation has checked both.
    pub fn timing(&self) -> Result<(Schedule, chrono_tz::Tz), String> {
        let schedule = Schedule::parse(&self.schedule)?;
        let tz = match self.timezone.as_deref() {
            None | Some("") => chrono_tz::UTC,
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map_err(|_| format!("{name:?} is not an IANA time zone (e.g. Europe/Paris)"))?,
        };
        Ok((schedule, tz))
    }

    /// The data every event carries.
    pub fn payload(&self) -> Result<Vec<u8>, String> {
        match (&self.data, &self.data_base64) {
            (Some(_), Some(_)) => Err("give data or dataBase64, not both".into()),
            (Some(d), None) => Ok(d.clone().into_bytes()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("dataBase64 is not base64: {e}")),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// The first tick to emit: strictly after the last one emitted and not before `now`.
/// Ticks missed while paas was down are skipped rather than sent in a burst, and a
/// tick already emitted is never emitted again.
pub fn next_tick(
    schedule: &Schedule,
    tz: &chrono_tz::Tz,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // A schedule fires on whole minutes: starting from the minute before `now` lets a
    // tick due at exactly `now` count.
    let from = now - chrono::Duration::seconds(1);
    let from = last.map_or(from, |l| l.max(from));
    schedule
        .next_after(&from.with_timezone(tz))
        .map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PingSourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    /// The last tick claimed for emission (paas' own): never emitted twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tick_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ticks_are_never_doubled_and_downtime_is_not_replayed() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let utc = chrono_tz::UTC;
        // Running: the next minute.
        assert_eq!(
            next_tick(&every_minute, &utc, None, at("2026-11-25T10:00:30Z")),
            Some(at("2026-11-25T10:01:00Z"))
        );
        // Restarted within the minute after emitting 10:01: 10:01 is not sent again.
        assert_eq!(
            next_tick(
                &every_minute,
                &utc,
                Some(at("2026-11-25T10:01:00Z")),
                at("2026-11-25T10:01:00.500Z")
            ),
            Some(at("2026-11-25T10:02:00Z"))
        );
        // Restarted on the dot of a tick not yet emitted: it is sent.
        assert_eq!(
            next_tick(
                &every_minute,
                &utc,
                Some(at("2026-11-25T10:01:00Z")),
                at("2026-11-25T10:02:00Z")
            ),
            Some(at("2026-11-25T10:02:00Z"))
        );
        // Down from 10:01:10 to 10:04:20: 10:02, 10:03 and 10:04 are not sent in a
        // burst; the next is 10:05.
        assert_eq!(
            next_tick(
                &every_minute,
                &utc,
                Some(at("2026-11-25T10:01:00Z")),
                at("2026-11-25T10:04:20Z")
            ),
            Some(at("2026-11-25T10:05:00Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_ticks() {
        let nine_am = Schedule::parse("0 9 * * *").unwrap();
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        // 09:00 in Paris in November is 08:00 UTC.
        assert_eq!(
            next_tick(&nine_am, &paris, None, at("2026-11-25T07:00:00Z")),
            Some(at("2026-11-25T08:00:00Z"))
        );
    }

    #[test]
    fn data_and_base64_data() {
        let mut spec = PingSourceSpec {
            data: Some("{\"a\":1}".into()),
            ..PingSourceSpec::default()
        };
        assert_eq!(spec.payload().unwrap(), b"{\"a\":1}");
        spec.data_base64 = Some("aGk=".into());
        assert!(spec.payload().is_err());
        spec.data = None;
        assert_eq!(spec.payload().unwrap(), b"hi");
        spec.timezone = Some("Mars/Olympus".into());
        spec.schedule = "* * * * *".into();
        assert!(spec.timing().unwrap_err().contains("IANA"));
    }
}
