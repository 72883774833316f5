//! Knative's `autoscaling.knative.dev/*` annotations on a revision template: what each
//! says, parsed and range-checked. The autoscaler puts the platform's defaults under
//! what is absent.

use std::time::Duration;

use super::{AnnotationError, Annotations};
use crate::keys;

pub const PREFIX: &str = "autoscaling.knative.dev/";
pub const METRIC: &str = "autoscaling.knative.dev/metric";
pub const TARGET: &str = "autoscaling.knative.dev/target";
pub const TARGET_UTILIZATION_PERCENTAGE: &str =
    "autoscaling.knative.dev/target-utilization-percentage";
pub const PANIC_WINDOW_PERCENTAGE: &str = "autoscaling.knative.dev/panic-window-percentage";
pub const PANIC_THRESHOLD_PERCENTAGE: &str = "autoscaling.knative.dev/panic-threshold-percentage";
pub const TARGET_BURST_CAPACITY: &str = "autoscaling.knative.dev/target-burst-capacity";
pub const MIN_SCALE: &str = keys::MIN_SCALE;
pub const MAX_SCALE: &str = keys::MAX_SCALE;
pub const INITIAL_SCALE: &str = keys::INITIAL_SCALE;
pub const ACTIVATION_SCALE: &str = "autoscaling.knative.dev/activation-scale";
pub const WINDOW: &str = "autoscaling.knative.dev/window";
pub const SCALE_DOWN_DELAY: &str = "autoscaling.knative.dev/scale-down-delay";
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD: &str =
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period";

/// Which signal scaling follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Concurrency,
    Rps,
}

/// What a revision's autoscaling annotations say; `None` where one is absent (or bad:
/// its problem is listed beside).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscalingAnnotations {
    pub metric: Option<Metric>,
    /// Per replica, before utilization.
    pub target: Option<f64>,
    pub target_utilization_percentage: Option<f64>,
    pub panic_window_percentage: Option<f64>,
    pub panic_threshold_percentage: Option<f64>,
    /// -1 keeps requests buffered at the proxy always; 0 never.
    pub target_burst_capacity: Option<f64>,
    pub min_scale: Option<u32>,
    /// 0 means unlimited.
    pub max_scale: Option<u32>,
    pub initial_scale: Option<u32>,
    pub activation_scale: Option<u32>,
    /// The stable window.
    pub window: Option<Duration>,
    pub scale_down_delay: Option<Duration>,
    pub scale_to_zero_pod_retention_period: Option<Duration>,
}

/// The autoscaling annotations (other keys are ignored), and a problem for each that
/// cannot be used, in the order above. A bad one is left `None` so that a caller
/// merging defaults can still check the rest, and report everything at once.
pub fn parse(annotations: &Annotations) -> (AutoscalingAnnotations, Vec<AnnotationError>) {
    let mut r = Reader {
        annotations,
        problems: Vec::new(),
    };
    let metric = r.get(METRIC).and_then(|v| match v {
        "concurrency" => Some(Metric::Concurrency),
        "rps" => Some(Metric::Rps),
        _ => {
            r.problems.push(AnnotationError::new(
                METRIC,
                format!("{v:?} is not a metric paas scales on: use concurrency or rps"),
            ));
            None
        }
    });
    let unbounded = f64::MAX;
    let target = r.number(TARGET, 0.01, unbounded);
    let target_utilization_percentage = r.number(TARGET_UTILIZATION_PERCENTAGE, 1.0, 100.0);
    let panic_window_percentage = r.number(PANIC_WINDOW_PERCENTAGE, 1.0, 100.0);
    let panic_threshold_percentage = r.number(PANIC_THRESHOLD_PERCENTAGE, 110.0, 1000.0);
    let target_burst_capacity = r.number(TARGET_BURST_CAPACITY, -1.0, unbounded);
    let min_scale = r.whole(MIN_SCALE);
    let max_scale = r.whole(MAX_SCALE);
    let initial_scale = r.whole(INITIAL_SCALE);
    // A number, as it always was here (Knative wants an integer): 1.5 is read as 1.
    let activation_scale = r
        .number(ACTIVATION_SCALE, 1.0, f64::from(u32::MAX))
        .map(|n| n as u32);
    let hour = Duration::from_secs(3600);
    let window = r.duration(WINDOW, Duration::from_secs(6), hour);
    let scale_down_delay = r.duration(SCALE_DOWN_DELAY, Duration::ZERO, hour);
    let scale_to_zero_pod_retention_period =
        r.duration(SCALE_TO_ZERO_POD_RETENTION_PERIOD, Duration::ZERO, hour);
    // Against a bound the platform sets, the autoscaler checks when it merges.
    if let (Some(min), Some(max)) = (min_scale, max_scale) {
        if max > 0 && min > max {
            r.problems.push(AnnotationError::new(
                MIN_SCALE,
                format!("{min} is above max-scale {max}"),
            ));
        }
    }
    let parsed = AutoscalingAnnotations {
        metric,
        target,
        target_utilization_percentage,
        panic_window_percentage,
        panic_threshold_percentage,
        target_burst_capacity,
        min_scale,
        max_scale,
        initial_scale,
        activation_scale,
        window,
        scale_down_delay,
        scale_to_zero_pod_retention_period,
    };
    (parsed, r.problems)
}

/// Reads annotations one by one, collecting the problems.
struct Reader<'a> {
    annotations: &'a Annotations,
    problems: Vec<AnnotationError>,
}

impl<'a> Reader<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.annotations.get(key).map(|v| v.trim())
    }

    fn number(&mut self, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = self.get(key)?;
        match v.parse::<f64>() {
            Ok(n) if n >= min && n <= max => Some(n),
            _ => {
                let problem = if max == f64::MAX {
                    format!("{v:?} must be a number of at least {min}")
                } else {
                    format!("{v:?} must be a number from {min} to {max}")
                };
                self.problems.push(AnnotationError::new(key, problem));
                None
            }
        }
    }

    fn whole(&mut self, key: &str) -> Option<u32> {
        let v = self.get(key)?;
        v.parse::<u32>()
            .map_err(|_| {
                self.problems.push(AnnotationError::new(
                    key,
                    format!("{v:?} must be a whole number from 0 to {}", u32::MAX),
                ))
            })
            .ok()
    }

    fn duration(&mut self, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let v = self.get(key)?;
        match crate::duration::parse(v) {
            Ok(d) if d >= min && d <= max => Some(d),
            _ => {
                self.problems.push(AnnotationError::new(
                    key,
                    format!(
                        "{v:?} must be a duration from {}s to {}s, like 60s or 1m30s",
                        min.as_secs(),
                        max.as_secs()
                    ),
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect()
    }

    fn keys(problems: &[AnnotationError]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn absent_annotations_are_none() {
        assert_eq!(
            parse(&Annotations::new()),
            (AutoscalingAnnotations::default(), vec![])
        );
    }

    #[test]
    fn every_setting_is_read() {
        let (a, problems) = parse(&annotations(&[
            ("metric", "rps"),
            ("target", " 50 "),
            ("target-utilization-percentage", "100"),
            ("panic-window-percentage", "20"),
            ("panic-threshold-percentage", "300"),
            ("target-burst-capacity", "-1"),
            ("min-scale", "2"),
            ("max-scale", "5"),
            ("initial-scale", "0"),
            ("activation-scale", "3"),
            ("window", "10s"),
            ("scale-down-delay", "1m30s"),
            ("scale-to-zero-pod-retention-period", "1h"),
            ("class", "kpa.autoscaling.knative.dev"),
        ]));
        assert_eq!(problems, []);
        assert_eq!(
            a,
            AutoscalingAnnotations {
                metric: Some(Metric::Rps),
                target: Some(50.0),
                target_utilization_percentage: Some(100.0),
                panic_window_percentage: Some(20.0),
                panic_threshold_percentage: Some(300.0),
                target_burst_capacity: Some(-1.0),
                min_scale: Some(2),
                max_scale: Some(5),
                initial_scale: Some(0),
                activation_scale: Some(3),
                window: Some(Duration::from_secs(10)),
                scale_down_delay: Some(Duration::from_secs(90)),
                scale_to_zero_pod_retention_period: Some(Duration::from_secs(3600)),
            }
        );
    }

    #[test]
    fn each_bad_value_is_named_and_left_unset() {
        let (a, problems) = parse(&annotations(&[
            ("metric", "cpu"),
            ("target", "0"),
            ("target-utilization-percentage", "101"),
            ("panic-threshold-percentage", "NaN"),
            ("min-scale", "abc"),
            ("max-scale", "1.5"),
            ("initial-scale", "-1"),
            ("activation-scale", "0"),
            ("window", "2s"),
            ("scale-down-delay", "2h"),
            (
                "scale-to-zero-pod-retention-period",
                "99999999999999999999h",
            ),
        ]));
        assert_eq!(a, AutoscalingAnnotations::default());
        assert_eq!(
            keys(&problems),
            [
                METRIC,
                TARGET,
                TARGET_UTILIZATION_PERCENTAGE,
                PANIC_THRESHOLD_PERCENTAGE,
                MIN_SCALE,
                MAX_SCALE,
                INITIAL_SCALE,
                ACTIVATION_SCALE,
                WINDOW,
                SCALE_DOWN_DELAY,
                SCALE_TO_ZERO_POD_RETENTION_PERIOD,
            ]
        );
        let says: Vec<_> = problems.iter().map(|p| p.problem.as_str()).collect();
        assert_eq!(
            says[..3],
            [
                "\"cpu\" is not a metric paas scales on: use concurrency or rps",
                "\"0\" must be a number of at least 0.01",
                "\"101\" must be a number from 1 to 100",
            ]
        );
        assert_eq!(
            says[4],
            "\"abc\" must be a whole number from 0 to 4294967295"
        );
        assert_eq!(
            says[8],
            "\"2s\" must be a duration from 6s to 3600s, like 60s or 1m30s"
        );
    }

    #[test]
    fn a_min_scale_above_the_max_scale_is_named_when_both_are_given() {
        let (a, problems) = parse(&annotations(&[("min-scale", "9"), ("max-scale", "3")]));
        assert_eq!((a.min_scale, a.max_scale), (Some(9), Some(3)));
        assert_eq!(keys(&problems), [MIN_SCALE]);
        assert_eq!(problems[0].problem, "9 is above max-scale 3");
        // A max-scale of 0 is no limit.
        let (_, problems) = parse(&annotations(&[("min-scale", "9"), ("max-scale", "0")]));
        assert_eq!(problems, []);
    }

    #[test]
    fn an_activation_scale_is_read_as_a_number_as_before() {
        let (a, problems) = parse(&annotations(&[("activation-scale", "2.7")]));
        assert_eq!((a.activation_scale, problems), (Some(2), vec![]));
    }
}
