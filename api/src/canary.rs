//! Automated canary analysis, declared on a Service with annotations:
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     canary.paas.dev/steps: "10,50,100"      # percents of traffic, in order
//!     canary.paas.dev/step-duration: "60s"    # how long each step is held
//!     canary.paas.dev/success-rate: "99"      # minimum % of answers below 500
//!     canary.paas.dev/max-p99: "500ms"        # optional latency ceiling
//!     canary.paas.dev/min-requests: "20"      # answers needed before a step is judged
//! ```
//!
//! A new latest revision then gets each step's share in turn, measured by the gateway
//! on its own traffic; a failed check sends everything back to the previous revision.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::annotations::AnnotationError;

pub const PREFIX: &str = "canary.paas.dev/";
pub const STEPS: &str = "canary.paas.dev/steps";
pub const STEP_DURATION: &str = "canary.paas.dev/step-duration";
pub const SUCCESS_RATE: &str = "canary.paas.dev/success-rate";
pub const MAX_P99: &str = "canary.paas.dev/max-p99";
pub const MIN_REQUESTS: &str = "canary.paas.dev/min-requests";

#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    /// Percents of the candidate, increasing; the last need not be 100 (passing it
    /// promotes the candidate all the same).
    pub steps: Vec<u32>,
    pub step_duration: Duration,
    pub min_success_percent: f64,
    pub max_p99: Option<Duration>,
    pub min_requests: u64,
}

/// The canary a Service's annotations declare (`None` without `steps`), or a problem
/// for each annotation that cannot be used. Without `steps` the other settings are not
/// read (only a key that is not a canary setting is refused).
pub fn canary_spec(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<CanarySpec>, Vec<AnnotationError>> {
    let mut problems = Vec::new();
    for key in annotations.keys().filter(|k| k.starts_with(PREFIX)) {
        if ![STEPS, STEP_DURATION, SUCCESS_RATE, MAX_P99, MIN_REQUESTS].contains(&key.as_str()) {
            problems.push(AnnotationError::new(
                STEPS,
                format!("{key} is not a canary setting: use steps, step-duration, success-rate, max-p99 or min-requests"),
            ));
        }
    }
    let Some(steps) = annotations.get(STEPS) else {
        return if problems.is_empty() {
            Ok(None)
        } else {
            Err(problems)
        };
    };
    let mut parsed = Vec::new();
    for s in steps.split(',') {
        match s.trim().trim_end_matches('%').parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) && parsed.last().is_none_or(|l| p > *l) => {
                parsed.push(p)
            }
            _ => {
                problems.push(AnnotationError::new(
                    STEPS,
                    format!(
                        "{steps:?}: give increasing percents from 1 to 100, e.g. \"10,50,100\""
                    ),
                ));
                break;
            }
        }
    }
    let mut duration = |key: &'static str| match annotations.get(key) {
        None => None,
        Some(v) => match crate::duration::parse(v) {
            Ok(d) if d.is_zero() => {
                problems.push(AnnotationError::new(
                    key,
                    format!("{v:?} must be longer than zero"),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(AnnotationError::new(key, e.to_string()));
                None
            }
        },
    };
    let step_duration = duration(STEP_DURATION).unwrap_or(Duration::from_secs(60));
    let max_p99 = duration(MAX_P99);
    let min_success_percent = match annotations.get(SUCCESS_RATE) {
        None => 99.0,
        Some(v) => match v.trim().trim_end_matches('%').parse::<f64>() {
            Ok(r) if (0.0..=100.0).contains(&r) => r,
            _ => {
                problems.push(AnnotationError::new(
                    SUCCESS_RATE,
                    format!("{v:?} is not a percent from 0 to 100"),
                ));
                99.0
            }
        },
    };
    let min_requests = match annotations.get(MIN_REQUESTS) {
        None => 10,
        Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
            problems.push(AnnotationError::new(
                MIN_REQUESTS,
                format!("{v:?} is not a whole number"),
            ));
            10
        }),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Some(CanarySpec {
        steps: parsed,
        step_duration,
        min_success_percent,
        max_p99,
        min_requests,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_every_setting() {
        assert_eq!(canary_spec(&annotations(&[])).unwrap(), None);
        let s = canary_spec(&annotations(&[(STEPS, "10, 50%,100")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.steps, [10, 50, 100]);
        assert_eq!(s.step_duration, Duration::from_secs(60));
        assert_eq!(s.min_success_percent, 99.0);
        assert_eq!(s.max_p99, None);
        assert_eq!(s.min_requests, 10);
        let s = canary_spec(&annotations(&[
            (STEPS, "20"),
            (STEP_DURATION, "2s"),
            (SUCCESS_RATE, "95.5"),
            (MAX_P99, "250ms"),
            (MIN_REQUESTS, "5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.max_p99, Some(Duration::from_millis(250)));
        assert_eq!(s.min_success_percent, 95.5);
    }

    #[test]
    fn each_mistake_names_its_annotation() {
        for (pairs, key) in [
            (vec![(STEPS, "50,10")], STEPS),
            (vec![(STEPS, "0,100")], STEPS),
            (vec![(STEPS, "ten")], STEPS),
            (vec![(STEPS, "10"), (STEP_DURATION, "soon")], STEP_DURATION),
            (vec![(STEPS, "10"), (SUCCESS_RATE, "101")], SUCCESS_RATE),
            (vec![(STEPS, "10"), (MAX_P99, "fast")], MAX_P99),
            (
                vec![(STEPS, "10"), (STEP_DURATION, "99999999999999999999h")],
                STEP_DURATION,
            ),
            (vec![(STEPS, "10"), (MAX_P99, "0s")], MAX_P99),
            (vec![(STEPS, "10"), (MIN_REQUESTS, "-1")], MIN_REQUESTS),
            (vec![("canary.paas.dev/stepz", "10")], STEPS),
        ] {
            let e = canary_spec(&annotations(&pairs)).unwrap_err();
            assert_eq!(e[0].key, key, "{pairs:?}: {}", e[0].problem);
        }
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let e = canary_spec(&annotations(&[
            ("canary.paas.dev/stepz", "10"),
            (STEPS, "50,10"),
            (STEP_DURATION, "soon"),
            (SUCCESS_RATE, "101"),
            (MAX_P99, "0s"),
            (MIN_REQUESTS, "-1"),
        ]))
        .unwrap_err();
        let keys: Vec<_> = e.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                STEPS,
                STEPS,
                STEP_DURATION,
                MAX_P99,
                SUCCESS_RATE,
                MIN_REQUESTS
            ]
        );
        assert!(
            e[0].problem.contains("stepz is not a canary setting"),
            "{e:?}"
        );
    }
}
