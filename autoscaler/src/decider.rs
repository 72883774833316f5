//! The KPA decision: a pure function of the metrics window, the revision's settings,
//! its state and the time. No clock is read here, so tests run on a paused one.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::config::{Metric, ScalingSpec};
use crate::window::MetricWindow;

/// What the decider remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeciderState {
    panic_since: Option<Instant>,
    max_panic_pods: u32,
    /// Recommendations within the scale-down delay, oldest first.
    recent: VecDeque<(Instant, u32)>,
    /// Since when the recommendation has been zero, for the grace period.
    zero_since: Option<Instant>,
    /// The count last decided (or set by a wake-up).
    current: u32,
}

impl DeciderState {
    pub fn panicking(&self) -> bool {
        self.panic_since.is_some()
    }

    /// Requests arrived for a revision at zero, which now runs `replicas`: forget any
    /// pending scale to zero.
    pub fn woken(&mut self, replicas: u32) {
        self.zero_since = None;
        self.current = replicas;
    }

    /// Whether the last decision was zero replicas, with no panic under way.
    pub fn is_at_zero(&self) -> bool {
        self.current == 0 && self.panic_since.is_none()
    }

    /// The count the revision runs now, when the autoscaler first sees it.
    pub fn starting_at(replicas: u32) -> Self {
        Self {
            current: replicas,
            ..Self::default()
        }
    }
}

/// One decision, with the figures it was made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub desired: u32,
    /// Stable- and panic-window averages of the metric (requests in flight, or per second).
    pub stable: f64,
    pub panic: f64,
    pub panicking: bool,
    /// Spare capacity beyond the burst the revision must absorb; negative means a burst
    /// would have to wait at the proxy.
    pub excess_burst_capacity: f64,
}

/// Decide the replica count. `ready` is how many replicas pass readiness now.
/// Returns `None` when the window holds no data yet: keep the current scale.
pub fn decide(
    spec: &ScalingSpec,
    window: &MetricWindow,
    ready: u32,
    state: &mut DeciderState,
    now: Instant,
) -> Option<Decision> {
    let (stable, panic) = match spec.metric {
        Metric::Concurrency => (
            window.concurrency(now, spec.stable_window)?,
            window.concurrency(now, spec.panic_window)?,
        ),
        Metric::Rps => (
            window.rps(now, spec.stable_window)?,
            window.rps(now, spec.panic_window)?,
        ),
    };
    let ready_count = f64::from(ready.max(1));
    let max_up = (spec.max_scale_up_rate * ready_count).ceil();
    let max_down = (ready_count / spec.max_scale_down_rate).floor();
    let clamp = |pods: f64| pods.min(max_up).max(max_down);
    let stable_pods = clamp((stable / spec.target_value).ceil());
    let panic_pods = clamp((panic / spec.target_value).ceil());

    // Panic when the short window wants at least `threshold` times what is ready; it
    // ends a stable window after the last time that held.
    let over_threshold = panic_pods / ready_count >= spec.panic_threshold;
    if over_threshold {
        state.panic_since = Some(now);
    } else if state
        .panic_since
        .is_some_and(|since| now >= since + spec.stable_window)
    {
        state.panic_since = None;
        state.max_panic_pods = 0;
    }
    let mut desired = stable_pods as u32;
    if state.panic_since.is_some() {
        // Never scale down while panicking.
        state.max_panic_pods = state.max_panic_pods.max(panic_pods as u32).max(ready);
        desired = state.max_panic_pods;
    }

    if !spec.scale_down_delay.is_zero() {
        state.recent.push_back((now, desired));
        while state
            .recent
            .front()
            .is_some_and(|(t, _)| *t + spec.scale_down_delay <= now)
        {
            state.recent.pop_front();
        }
        desired = state
            .recent
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(desired);
    }

    if desired > 0 {
        desired = desired.max(spec.activation_scale);
    }
    desired = desired.max(spec.min_scale);
    if spec.max_scale > 0 {
        desired = desired.min(spec.max_scale);
    }

    if desired == 0 && state.current > 0 {
        // Going to zero takes a full stable window of data (a new revision stays up that
        // long), then the grace period, then any pod retention.
        let since = *state.zero_since.get_or_insert(now);
        let window_full = window
            .first_sample()
            .is_some_and(|first| now >= first + spec.stable_window);
        let in_grace = now < since + spec.scale_to_zero_grace_period;
        let retained = window
            .last_active()
            .is_some_and(|last| now < last + spec.scale_to_zero_pod_retention_period);
        if !window_full || in_grace || retained || !spec.enable_scale_to_zero {
            desired = 1;
        }
    } else if desired > 0 {
        state.zero_since = None;
    }
    state.current = desired;

    let excess_burst_capacity = if spec.target_burst_capacity < 0.0 {
        -1.0
    } else if spec.target_burst_capacity == 0.0 {
        0.0
    } else {
        (f64::from(ready) * spec.total_target - spec.target_burst_capacity - panic).floor()
    };
    Some(Decision {
        desired,
        stable,
        panic,
        panicking: state.panic_since.is_some(),
        excess_burst_capacity,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::{AutoscalerConfig, PREFIX};

    fn spec(pairs: &[(&str, &str)], cc: u32) -> ScalingSpec {
        let a: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        ScalingSpec::resolve(&AutoscalerConfig::default(), &a, cc).unwrap()
    }

    /// A revision under a constant load, sampled every 100 ms.
    struct Sim {
        spec: ScalingSpec,
        window: MetricWindow,
        state: DeciderState,
        now: Instant,
        ready: u32,
    }

    impl Sim {
        fn new(spec: ScalingSpec, ready: u32) -> Self {
            let now = Instant::now();
            Self {
                window: MetricWindow::new(now, spec.stable_window),
                spec,
                state: DeciderState::default(),
                now,
                ready,
            }
        }

        /// Run `secs` seconds at `in_flight` (and `rps` arrivals), deciding every 2 s like
        /// the tick, following the decisions instantly. Returns the last decision.
        fn run(&mut self, secs: u64, in_flight: f64, rps: u64) -> Decision {
            let mut last = None;
            for tenth in 0..secs * 10 {
                self.now += Duration::from_millis(100);
                self.window
                    .record(self.now, in_flight, if tenth % 10 == 0 { rps } else { 0 });
                if tenth % 20 == 19 {
                    let d = decide(
                        &self.spec,
                        &self.window,
                        self.ready,
                        &mut self.state,
                        self.now,
                    )
                    .unwrap();
                    self.ready = d.desired;
                    last = Some(d);
                }
            }
            last.unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stable_load_scales_to_average_over_target() {
        // target 100 × 70% = 70 per replica: 200 in flight wants ceil(200/70) = 3.
        let mut sim = Sim::new(spec(&[], 0), 3);
        let d = sim.run(60, 200.0, 0);
        assert_eq!(d.desired, 3);
        assert!(!d.panicking);
        assert!((d.stable - 200.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn panic_starts_on_a_burst_and_never_scales_down_while_it_lasts() {
        let mut sim = Sim::new(spec(&[("target", "10")], 0), 1);
        sim.run(60, 5.0, 0);
        assert_eq!(sim.ready, 1);
        // A burst: 100 in flight is 100/7 → 15 wanted once it fills the 6 s panic
        // window, far over 2× the one ready replica.
        let d = sim.run(8, 100.0, 0);
        assert!(d.panicking);
        let peak = d.desired;
        assert!(peak >= 15, "{d:?}");
        // Load drops: still panicking within a stable window of the last trigger, so no
        // scale-down at all.
        let d = sim.run(30, 5.0, 0);
        assert!(d.panicking);
        assert_eq!(d.desired, peak);
        // A stable window after the last trigger, panic ends and the count comes down.
        let d = sim.run(70, 5.0, 0);
        assert!(!d.panicking, "{d:?}");
        assert!(d.desired < peak);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_bound_each_step() {
        let mut s = spec(
            &[("target", "1"), ("target-utilization-percentage", "100")],
            0,
        );
        s.max_scale_up_rate = 2.0;
        let origin = Instant::now();
        let mut w = MetricWindow::new(origin, s.stable_window);
        w.record(origin, 100.0, 0);
        let mut st = DeciderState::default();
        // Wants 100, may grow 2× the 3 ready.
        let d = decide(&s, &w, 3, &mut st, origin).unwrap();
        assert_eq!(d.desired, 6);
        // Down: wants 1 of 10 ready, may halve.
        let mut w = MetricWindow::new(origin, s.stable_window);
        w.record(origin, 1.0, 0);
        let mut st = DeciderState::default();
        assert_eq!(decide(&s, &w, 10, &mut st, origin).unwrap().desired, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn scale_to_zero_after_the_window_and_the_grace_period() {
        let s = spec(&[("window", "10s")], 0);
        let mut sim = Sim::new(s, 1);
        sim.run(10, 3.0, 0);
        assert_eq!(sim.ready, 1);
        // Traffic stops. For a stable window the average is still above zero.
        let d = sim.run(8, 0.0, 0);
        assert_eq!(d.desired, 1);
        // The window is empty now, but the grace period (30 s) keeps one replica.
        let d = sim.run(20, 0.0, 0);
        assert_eq!(d.desired, 1);
        assert_eq!(d.stable, 0.0);
        let d = sim.run(14, 0.0, 0);
        assert_eq!(d.desired, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_revision_stays_up_for_a_full_window_before_zero() {
        let mut s = spec(&[("window", "20s")], 0);
        s.scale_to_zero_grace_period = Duration::ZERO;
        let mut sim = Sim::new(s, 1);
        sim.state = DeciderState::starting_at(1);
        // No traffic at all: zero is wanted from the start, but only a full window of
        // samples may say so.
        assert_eq!(sim.run(18, 0.0, 0).desired, 1);
        assert_eq!(sim.run(4, 0.0, 0).desired, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn pod_retention_keeps_the_last_replica() {
        let s = spec(
            &[
                ("window", "6s"),
                ("scale-to-zero-pod-retention-period", "2m"),
            ],
            0,
        );
        let mut sim = Sim::new(s, 1);
        sim.run(6, 1.0, 0);
        let d = sim.run(60, 0.0, 0);
        assert_eq!(d.desired, 1, "retained");
        let d = sim.run(70, 0.0, 0);
        assert_eq!(d.desired, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn min_and_max_scale_bound_the_count() {
        let mut sim = Sim::new(spec(&[("min-scale", "2"), ("max-scale", "4")], 0), 2);
        assert_eq!(sim.run(60, 0.0, 0).desired, 2);
        assert_eq!(sim.run(60, 10_000.0, 0).desired, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn activation_scale_is_the_least_above_zero() {
        let mut sim = Sim::new(spec(&[("activation-scale", "3")], 0), 0);
        assert_eq!(sim.run(10, 1.0, 0).desired, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn scale_down_delay_holds_the_peak() {
        let mut sim = Sim::new(
            spec(
                &[
                    ("target", "10"),
                    ("target-utilization-percentage", "100"),
                    ("window", "6s"),
                    ("scale-down-delay", "20s"),
                ],
                0,
            ),
            5,
        );
        assert_eq!(sim.run(10, 50.0, 0).desired, 5);
        // Load drops to a tenth; without the delay the count would fall within a window.
        let d = sim.run(12, 5.0, 0);
        assert_eq!(d.desired, 5, "{d:?}");
        let d = sim.run(30, 5.0, 0);
        assert_eq!(d.desired, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rps_metric_scales_on_requests_per_second() {
        // 200 rps target × 70% = 140 per replica; 700 rps wants 5.
        let mut sim = Sim::new(spec(&[("metric", "rps")], 0), 5);
        let d = sim.run(60, 1.0, 700);
        assert_eq!(d.desired, 5);
        // The current second is still filling, so the average sits a little under.
        assert!((d.stable - 700.0).abs() < 20.0, "{d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn excess_burst_capacity_follows_knative() {
        // 3 ready × 100 − 211 − 50 in flight = 39.
        let mut sim = Sim::new(spec(&[], 0), 3);
        let d = sim.run(60, 50.0, 0);
        assert_eq!(d.desired, 1.max(d.desired));
        let origin = Instant::now();
        let mut w = MetricWindow::new(origin, Duration::from_secs(60));
        w.record(origin, 50.0, 0);
        let s = spec(&[], 0);
        let d = decide(&s, &w, 3, &mut DeciderState::default(), origin).unwrap();
        assert_eq!(d.excess_burst_capacity, 39.0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_data_keeps_the_current_scale() {
        let s = spec(&[], 0);
        let now = Instant::now();
        let w = MetricWindow::new(now, s.stable_window);
        assert_eq!(decide(&s, &w, 1, &mut DeciderState::default(), now), None);
    }
}
