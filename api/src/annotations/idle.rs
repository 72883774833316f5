//! `paas.dev/idle` and `paas.dev/freeze-retention` on a revision template: what becomes
//! of the last replica when the revision scales to zero.

use std::time::Duration;

use super::{AnnotationError, Annotations};
use crate::duration::DurationError;
use crate::keys::{FREEZE_RETENTION, IDLE};

/// What `paas.dev/idle` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Stopped, as in Knative.
    Stop,
    /// Frozen (memory kept, no CPU) until the retention runs out.
    Freeze,
}

/// What a revision's idle annotations say; `None` where one is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdleAnnotations {
    pub idle: Option<Idle>,
    pub freeze_retention: Option<Duration>,
}

/// The idle annotations, or a problem for each that cannot be used. The retention is
/// checked even without `freeze`, so that a typo does not wait for the day it is used.
pub fn parse(annotations: &Annotations) -> Result<IdleAnnotations, Vec<AnnotationError>> {
    let mut problems = Vec::new();
    let idle = match annotations.get(IDLE).map(|v| v.trim()) {
        None => None,
        Some("stop") => Some(Idle::Stop),
        Some("freeze") => Some(Idle::Freeze),
        Some(other) => {
            problems.push(AnnotationError::new(
                IDLE,
                format!("{other:?} is not an idle policy: use stop or freeze"),
            ));
            None
        }
    };
    let freeze_retention = match annotations.get(FREEZE_RETENTION) {
        None => None,
        Some(v) => match crate::duration::parse(v) {
            Ok(d) => Some(d),
            Err(e) => {
                let problem = match e {
                    DurationError::Malformed(_) => {
                        format!("{v:?} is not a duration like 15m or 90s")
                    }
                    DurationError::TooLong(_) => e.to_string(),
                };
                problems.push(AnnotationError::new(FREEZE_RETENTION, problem));
                None
            }
        },
    };
    if problems.is_empty() {
        Ok(IdleAnnotations {
            idle,
            freeze_retention,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stop_freeze_and_a_retention() {
        assert_eq!(parse(&Annotations::new()), Ok(IdleAnnotations::default()));
        assert_eq!(
            parse(&annotations(&[
                (IDLE, " freeze "),
                (FREEZE_RETENTION, "90s")
            ])),
            Ok(IdleAnnotations {
                idle: Some(Idle::Freeze),
                freeze_retention: Some(Duration::from_secs(90)),
            })
        );
        assert_eq!(
            parse(&annotations(&[(IDLE, "stop")])).map(|a| a.idle),
            Ok(Some(Idle::Stop))
        );
    }

    #[test]
    fn a_bad_policy_and_a_bad_retention_are_both_named() {
        let problems = parse(&annotations(&[
            (IDLE, "sleep"),
            (FREEZE_RETENTION, "forever"),
        ]))
        .unwrap_err();
        let said: Vec<_> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "annotation paas.dev/idle: \"sleep\" is not an idle policy: use stop or freeze",
                "annotation paas.dev/freeze-retention: \"forever\" is not a duration like 15m or 90s",
            ]
        );
        let problems =
            parse(&annotations(&[(FREEZE_RETENTION, "99999999999999999999h")])).unwrap_err();
        assert!(problems[0].problem.contains("is too long"), "{problems:?}");
    }
}
