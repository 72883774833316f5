//! Scaling settings: the platform's defaults (Knative's `config-autoscaler`) and each
//! revision's `autoscaling.knative.dev/*` annotations on top of them (parsed in
//! `paas_api::annotations::autoscaling`).

use std::collections::BTreeMap;
use std::time::Duration;

use paas_api::annotations::autoscaling::{self, AutoscalingAnnotations};
pub use paas_api::annotations::autoscaling::{Metric, PREFIX};
pub use paas_api::annotations::AnnotationError;

/// Platform-wide defaults, as Knative ships them.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerConfig {
    pub container_concurrency_target_default: f64,
    pub container_concurrency_target_percentage: f64,
    pub requests_per_second_target_default: f64,
    pub stable_window: Duration,
    pub panic_window_percentage: f64,
    pub panic_threshold_percentage: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub scale_to_zero_grace_period: Duration,
    pub scale_to_zero_pod_retention_period: Duration,
    pub initial_scale: u32,
    pub allow_zero_initial_scale: bool,
    pub min_scale: u32,
    /// 0 means unlimited.
    pub max_scale: u32,
    pub scale_down_delay: Duration,
    /// -1 keeps requests buffered at the proxy always; 0 never.
    pub target_burst_capacity: f64,
    pub activation_scale: u32,
    pub enable_scale_to_zero: bool,
    /// How often decisions are made.
    pub tick_interval: Duration,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            container_concurrency_target_default: 100.0,
            container_concurrency_target_percentage: 70.0,
            requests_per_second_target_default: 200.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            scale_down_delay: Duration::ZERO,
            target_burst_capacity: 211.0,
            activation_scale: 1,
            enable_scale_to_zero: true,
            tick_interval: Duration::from_secs(2),
        }
    }
}

impl AutoscalerConfig {
    /// Every setting out of range, by its flag name, so that all are reported at once.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |ok: bool, what: &str| {
            if !ok {
                out.push(what.to_owned());
            }
        };
        check(
            self.container_concurrency_target_default >= 0.01,
            "--container-concurrency-target-default must be at least 0.01",
        );
        check(
            (1.0..=100.0).contains(&self.container_concurrency_target_percentage),
            "--target-utilization-percentage must be 1 to 100",
        );
        check(
            self.requests_per_second_target_default >= 0.01,
            "--rps-target-default must be at least 0.01",
        );
        check(
            self.stable_window >= Duration::from_secs(6)
                && self.stable_window <= Duration::from_secs(3600),
            "--stable-window must be 6s to 1h",
        );
        check(
            (1.0..=100.0).contains(&self.panic_window_percentage),
            "--panic-window-percentage must be 1 to 100",
        );
        check(
            (110.0..=1000.0).contains(&self.panic_threshold_percentage),
            "--panic-threshold-percentage must be 110 to 1000",
        );
        check(
            self.max_scale_up_rate > 1.0,
            "--max-scale-up-rate must be above 1",
        );
        check(
            self.max_scale_down_rate > 1.0,
            "--max-scale-down-rate must be above 1",
        );
        check(
            self.max_scale == 0 || self.min_scale <= self.max_scale,
            "--min-scale must not be above --max-scale",
        );
        check(
            self.target_burst_capacity >= -1.0,
            "--target-burst-capacity must be -1 or more",
        );
        check(
            self.activation_scale >= 1,
            "--activation-scale must be at least 1",
        );
        check(
            self.initial_scale > 0 || self.allow_zero_initial_scale,
            "--initial-scale 0 needs --allow-zero-initial-scale true",
        );
        out
    }
}

/// The settings of one revision, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    pub metric: Metric,
    /// The target per replica, before utilization (`target` annotation or default).
    pub total_target: f64,
    /// What the decider aims each replica at: target × utilization.
    pub target_value: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    /// As a ratio: 2.0 for 200%.
    pub panic_threshold: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub min_scale: u32,
    pub max_scale: u32,
    pub initial_scale: u32,
    pub scale_down_delay: Duration,
    pub activation_scale: u32,
    pub target_burst_capacity: f64,
    pub scale_to_zero_grace_period: Duration,
    pub scale_to_zero_pod_retention_period: Duration,
    pub enable_scale_to_zero: bool,
}

impl ScalingSpec {
    /// A revision's annotations (parsed by api) over the platform's defaults; every
    /// problem at once, the platform's own rules included.
    /// `container_concurrency` 0 means unlimited; when set it is the default target.
    pub fn resolve(
        config: &AutoscalerConfig,
        annotations: &BTreeMap<String, String>,
        container_concurrency: u32,
    ) -> Result<Self, Vec<AnnotationError>> {
        let (parsed, mut errors) = autoscaling::parse(annotations);
        let metric = parsed.metric.unwrap_or(Metric::Concurrency);
        let default_target = match metric {
            Metric::Rps => config.requests_per_second_target_default,
            Metric::Concurrency if container_concurrency > 0 => {
                f64::from(container_concurrency).min(config.container_concurrency_target_default)
            }
            Metric::Concurrency => config.container_concurrency_target_default,
        };
        let target = parsed.target.unwrap_or(default_target);
        let utilization = parsed
            .target_utilization_percentage
            .unwrap_or(config.container_concurrency_target_percentage);
        let panic_window_pct = parsed
            .panic_window_percentage
            .unwrap_or(config.panic_window_percentage);
        let panic_threshold_pct = parsed
            .panic_threshold_percentage
            .unwrap_or(config.panic_threshold_percentage);
        let tbc = parsed
            .target_burst_capacity
            .unwrap_or(config.target_burst_capacity);
        let (min_scale, max_scale, initial_scale) = scales(config, &parsed);
        let activation_scale = parsed.activation_scale.unwrap_or(config.activation_scale);
        let stable_window = parsed.window.unwrap_or(config.stable_window);
        let scale_down_delay = parsed.scale_down_delay.unwrap_or(config.scale_down_delay);
        let retention = parsed
            .scale_to_zero_pod_retention_period
            .unwrap_or(config.scale_to_zero_pod_retention_period);

        errors.extend(platform_checks(config, &parsed));
        if !errors.is_empty() {
            return Err(errors);
        }
        let panic_window = stable_window
            .mul_f64(panic_window_pct / 100.0)
            .max(Duration::from_secs(1));
        Ok(Self {
            metric,
            total_target: target,
            target_value: (target * utilization / 100.0).max(0.01),
            stable_window,
            panic_window,
            panic_threshold: panic_threshold_pct / 100.0,
            max_scale_up_rate: config.max_scale_up_rate,
            max_scale_down_rate: config.max_scale_down_rate,
            min_scale,
            max_scale,
            initial_scale,
            scale_down_delay,
            activation_scale,
            target_burst_capacity: tbc,
            scale_to_zero_grace_period: config.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period: retention,
            enable_scale_to_zero: config.enable_scale_to_zero,
        })
    }

    /// The problems of a revision template's annotations that only this platform's
    /// settings reveal; api's validation (`paas apply`, the REST API) reports the
    /// others, so the REST API adds just these.
    pub fn platform_problems(
        config: &AutoscalerConfig,
        annotations: &BTreeMap<String, String>,
    ) -> Vec<AnnotationError> {
        platform_checks(config, &autoscaling::parse(annotations).0)
    }
}

/// Min, max and initial scale: the annotations' or the platform's.
fn scales(config: &AutoscalerConfig, parsed: &AutoscalingAnnotations) -> (u32, u32, u32) {
    (
        parsed.min_scale.unwrap_or(config.min_scale),
        parsed.max_scale.unwrap_or(config.max_scale),
        parsed.initial_scale.unwrap_or(config.initial_scale),
    )
}

/// What only the platform's settings make wrong: a min-scale above the max-scale when
/// one of them is the platform's (api compares two given in annotations), an initial
/// scale of 0 the platform forbids.
fn platform_checks(
    config: &AutoscalerConfig,
    parsed: &AutoscalingAnnotations,
) -> Vec<AnnotationError> {
    let mut errors = Vec::new();
    let (min_scale, max_scale, initial_scale) = scales(config, parsed);
    let both_given = parsed.min_scale.is_some() && parsed.max_scale.is_some();
    if !both_given && max_scale > 0 && min_scale > max_scale {
        errors.push(AnnotationError {
            key: autoscaling::MIN_SCALE.into(),
            problem: format!("{min_scale} is above max-scale {max_scale}"),
        });
    }
    if initial_scale == 0 && !config.allow_zero_initial_scale {
        errors.push(AnnotationError {
            key: autoscaling::INITIAL_SCALE.into(),
            problem: "0 is not allowed on this platform (allow-zero-initial-scale is off)".into(),
        });
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn knative_defaults() {
        let s = ScalingSpec::resolve(&AutoscalerConfig::default(), &BTreeMap::new(), 0).unwrap();
        assert_eq!(s.metric, Metric::Concurrency);
        assert_eq!(s.total_target, 100.0);
        assert!((s.target_value - 70.0).abs() < 1e-9);
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        assert_eq!(s.panic_threshold, 2.0);
        assert_eq!(
            (
                s.min_scale,
                s.max_scale,
                s.initial_scale,
                s.activation_scale
            ),
            (0, 0, 1, 1)
        );
        assert_eq!(s.target_burst_capacity, 211.0);
    }

    #[test]
    fn container_concurrency_is_the_default_target() {
        let s = ScalingSpec::resolve(&AutoscalerConfig::default(), &BTreeMap::new(), 10).unwrap();
        assert_eq!(s.total_target, 10.0);
        assert!((s.target_value - 7.0).abs() < 1e-9);
    }

    #[test]
    fn annotations_override() {
        let a = annotations(&[
            ("metric", "rps"),
            ("target", "50"),
            ("target-utilization-percentage", "100"),
            ("window", "10s"),
            ("panic-window-percentage", "20"),
            ("min-scale", "2"),
            ("max-scale", "5"),
            ("scale-down-delay", "1m30s"),
        ]);
        let s = ScalingSpec::resolve(&AutoscalerConfig::default(), &a, 0).unwrap();
        assert_eq!(s.metric, Metric::Rps);
        assert_eq!(s.target_value, 50.0);
        assert_eq!(s.panic_window, Duration::from_secs(2));
        assert_eq!((s.min_scale, s.max_scale), (2, 5));
        assert_eq!(s.scale_down_delay, Duration::from_secs(90));
    }

    #[test]
    fn bad_annotations_are_all_reported() {
        let a = annotations(&[
            ("metric", "cpu"),
            ("window", "2s"),
            ("min-scale", "9"),
            ("max-scale", "3"),
        ]);
        let errors = ScalingSpec::resolve(&AutoscalerConfig::default(), &a, 0).unwrap_err();
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "autoscaling.knative.dev/metric",
                "autoscaling.knative.dev/window",
                "autoscaling.knative.dev/min-scale"
            ]
        );
    }

    #[test]
    fn the_defaults_are_valid_and_bad_settings_are_all_named() {
        assert!(AutoscalerConfig::default().problems().is_empty());
        let bad = AutoscalerConfig {
            container_concurrency_target_percentage: 0.0,
            stable_window: Duration::from_secs(1),
            min_scale: 5,
            max_scale: 2,
            ..AutoscalerConfig::default()
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
    }

    #[test]
    fn the_platforms_bounds_are_checked_where_annotations_meet_them() {
        let platform = AutoscalerConfig {
            max_scale: 3,
            ..AutoscalerConfig::default()
        };
        // A min-scale above the platform's max-scale, an initial scale of 0 the
        // platform forbids, and a value that does not parse: all named at once.
        let a = annotations(&[
            ("min-scale", "5"),
            ("initial-scale", "0"),
            ("metric", "cpu"),
        ]);
        let errors = ScalingSpec::resolve(&platform, &a, 0).unwrap_err();
        let said: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "annotation autoscaling.knative.dev/metric: \"cpu\" is not a metric paas scales on: use concurrency or rps",
                "annotation autoscaling.knative.dev/min-scale: 5 is above max-scale 3",
                "annotation autoscaling.knative.dev/initial-scale: 0 is not allowed on this platform (allow-zero-initial-scale is off)",
            ]
        );
        // A max-scale annotation replaces the platform's.
        let a = annotations(&[("min-scale", "5"), ("max-scale", "8")]);
        let s = ScalingSpec::resolve(&platform, &a, 0).unwrap();
        assert_eq!((s.min_scale, s.max_scale), (5, 8));
    }

    #[test]
    fn platform_problems_are_those_api_cannot_see() {
        let platform = AutoscalerConfig {
            max_scale: 3,
            ..AutoscalerConfig::default()
        };
        let a = annotations(&[
            ("min-scale", "5"),
            ("initial-scale", "0"),
            ("metric", "cpu"),
        ]);
        let keys: Vec<_> = ScalingSpec::platform_problems(&platform, &a)
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "autoscaling.knative.dev/min-scale",
                "autoscaling.knative.dev/initial-scale"
            ]
        );
        // Two given in annotations are api's to compare.
        let a = annotations(&[("min-scale", "5"), ("max-scale", "4")]);
        assert_eq!(ScalingSpec::platform_problems(&platform, &a), []);
    }
}
