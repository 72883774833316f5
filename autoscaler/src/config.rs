//! Scaling settings: the platform's defaults (Knative's `config-autoscaler`) and each
//! revision's `autoscaling.knative.dev/*` annotations on top of them.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// Which signal scaling follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Concurrency,
    Rps,
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

/// An annotation that could not be used, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {problem}")]
pub struct AnnotationError {
    pub key: String,
    pub problem: String,
}

pub const PREFIX: &str = "autoscaling.knative.dev/";

impl ScalingSpec {
    /// Resolve a revision's annotations against the platform defaults.
    /// `container_concurrency` 0 means unlimited; when set it is the default target.
    pub fn resolve(
        config: &AutoscalerConfig,
        annotations: &BTreeMap<String, String>,
        container_concurrency: u32,
    ) -> Result<Self, Vec<AnnotationError>> {
        let mut errors = Vec::new();
        let get = |name: &str| {
            annotations
                .get(&format!("{PREFIX}{name}"))
                .map(|v| (name.to_owned(), v.trim().to_owned()))
        };
        let mut err = |key: &str, problem: String| {
            errors.push(AnnotationError {
                key: format!("{PREFIX}{key}"),
                problem,
            })
        };

        let metric = match get("metric") {
            None => Metric::Concurrency,
            Some((_, v)) if v == "concurrency" => Metric::Concurrency,
            Some((_, v)) if v == "rps" => Metric::Rps,
            Some((k, v)) => {
                err(
                    &k,
                    format!("{v:?} is not a metric paas scales on: use concurrency or rps"),
                );
                Metric::Concurrency
            }
        };
        let default_target = match metric {
            Metric::Rps => config.requests_per_second_target_default,
            Metric::Concurrency if container_concurrency > 0 => {
                f64::from(container_concurrency).min(config.container_concurrency_target_default)
            }
            Metric::Concurrency => config.container_concurrency_target_default,
        };
        let mut number = |name: &str, min: f64, max: f64| -> Option<f64> {
            let (k, v) = get(name)?;
            match v.parse::<f64>() {
                Ok(n) if n >= min && n <= max => Some(n),
                _ => {
                    err(&k, format!("{v:?} must be a number from {min} to {max}"));
                    None
                }
            }
        };
        let target = number("target", 0.01, f64::MAX).unwrap_or(default_target);
        let utilization = number("target-utilization-percentage", 1.0, 100.0)
            .unwrap_or(config.container_concurrency_target_percentage);
        let panic_window_pct =
            number("panic-window-percentage", 1.0, 100.0).unwrap_or(config.panic_window_percentage);
        let panic_threshold_pct = number("panic-threshold-percentage", 110.0, 1000.0)
            .unwrap_or(config.panic_threshold_percentage);
        let tbc =
            number("target-burst-capacity", -1.0, f64::MAX).unwrap_or(config.target_burst_capacity);
        let min_scale =
            number("min-scale", 0.0, f64::from(u32::MAX)).map_or(config.min_scale, |n| n as u32);
        let max_scale =
            number("max-scale", 0.0, f64::from(u32::MAX)).map_or(config.max_scale, |n| n as u32);
        let initial_scale = number("initial-scale", 0.0, f64::from(u32::MAX))
            .map_or(config.initial_scale, |n| n as u32);
        let activation_scale = number("activation-scale", 1.0, f64::from(u32::MAX))
            .map_or(config.activation_scale, |n| n as u32);

        let mut duration = |name: &str, min: Duration, max: Duration| -> Option<Duration> {
            let (k, v) = get(name)?;
            match parse_duration(&v) {
                Some(d) if d >= min && d <= max => Some(d),
                _ => {
                    err(
                        &k,
                        format!(
                            "{v:?} must be a duration from {}s to {}s, like 60s or 1m30s",
                            min.as_secs(),
                            max.as_secs()
                        ),
                    );
                    None
                }
            }
        };
        let stable_window = duration("window", Duration::from_secs(6), Duration::from_secs(3600))
            .unwrap_or(config.stable_window);
        let scale_down_delay = duration(
            "scale-down-delay",
            Duration::ZERO,
            Duration::from_secs(3600),
        )
        .unwrap_or(config.scale_down_delay);
        let retention = duration(
            "scale-to-zero-pod-retention-period",
            Duration::ZERO,
            Duration::from_secs(3600),
        )
        .unwrap_or(config.scale_to_zero_pod_retention_period);

        if max_scale > 0 && min_scale > max_scale {
            err(
                "min-scale",
                format!("{min_scale} is above max-scale {max_scale}"),
            );
        }
        if initial_scale == 0 && !config.allow_zero_initial_scale {
            err(
                "initial-scale",
                "0 is not allowed on this platform (allow-zero-initial-scale is off)".into(),
            );
        }
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
}

pub use paas_api::duration::parse_duration;

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
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
