//! The autoscaler's state for every revision, its tick, and the poke that wakes a
//! revision from zero at once instead of at the next tick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paas_api::RevisionKey;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{AutoscalerConfig, ScalingSpec};
use crate::decider::{decide, DeciderState, Decision};
use crate::window::MetricWindow;
use crate::Scaler;

#[derive(Debug)]
struct Entry {
    spec: ScalingSpec,
    window: MetricWindow,
    state: DeciderState,
    /// Routed (or about to be): only active revisions run replicas.
    active: bool,
    desired: u32,
    ready: u32,
    /// Until the initial scale has been ready once, the decider does not scale down.
    reached_initial: bool,
    last: Option<Decision>,
    /// Set when the scaler has not been told the current `desired` yet.
    dirty: bool,
}

/// A revision rests once it has been at zero, with nothing ready and no request,
/// for this long: it is then neither sampled nor decided for until something wakes it.
const REST_AFTER: Duration = Duration::from_secs(1);

impl Entry {
    /// Whether nothing can change for this revision until a request or a new spec
    /// arrives: it runs nothing and wants nothing. A request for it waits at the
    /// activator, which pokes it awake, so the samples of zero are not needed.
    fn may_rest(&self, now: Instant) -> bool {
        let at_zero = !self.active || (self.desired == 0 && self.state.is_at_zero());
        at_zero
            && self.ready == 0
            && !self.dirty
            && self
                .window
                .last_active()
                .is_none_or(|last| now.saturating_duration_since(last) >= REST_AFTER)
    }

    fn wake(&mut self, now: Instant) {
        self.window.resume(now);
    }
}

/// What the autoscaler thinks of one revision, for `paas describe` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionView {
    pub desired: u32,
    pub ready: u32,
    pub stable: f64,
    pub panic: f64,
    pub panicking: bool,
    pub excess_burst_capacity: f64,
    pub target: f64,
    pub metric: &'static str,
}

/// A metric's name, type, help and how to read it from a view.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RevisionView) -> f64,
);

#[derive(Debug)]
pub struct Autoscaler {
    pub config: AutoscalerConfig,
    revisions: Mutex<Revisions>,
    scaler: Arc<dyn Scaler>,
    wake: Notify,
    /// Grows with every removal, so that a sampler knows when to forget keys.
    removals: AtomicU64,
}

/// Every revision's entry, and which are awake (not at rest): ticks and samples go
/// over those alone.
#[derive(Debug, Default)]
struct Revisions {
    entries: HashMap<RevisionKey, Entry>,
    awake: HashSet<RevisionKey>,
}

impl std::ops::Deref for Revisions {
    type Target = HashMap<RevisionKey, Entry>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for Revisions {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

impl Autoscaler {
    pub fn new(config: AutoscalerConfig, scaler: Arc<dyn Scaler>) -> Arc<Self> {
        Arc::new(Self {
            config,
            revisions: Mutex::new(Revisions::default()),
            scaler,
            wake: Notify::new(),
            removals: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Revisions> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register or update a revision. `running` is how many replicas it already has
    /// when the autoscaler first sees it (after a restart), so that nothing restarts
    /// needlessly; a new revision starts at its initial scale.
    pub fn upsert(&self, key: &RevisionKey, spec: ScalingSpec, active: bool, running: Option<u32>) {
        let now = Instant::now();
        let mut revisions = self.lock();
        let mut new = false;
        let entry = revisions.entry(key.clone()).or_insert_with(|| {
            new = true;
            let (desired, reached_initial) = match running {
                Some(n) => (n.max(spec.min_scale), true),
                None => (spec.initial_scale.max(spec.min_scale), false),
            };
            Entry {
                window: MetricWindow::new(now, spec.stable_window),
                spec: spec.clone(),
                state: DeciderState::starting_at(desired),
                active,
                desired,
                ready: 0,
                reached_initial,
                last: None,
                dirty: true,
            }
        });
        let changed = new || entry.spec != spec || entry.active != active;
        if changed {
            // A new min-scale, say, is decided on at once.
            entry.wake(now);
        }
        entry.window.set_keep(spec.stable_window);
        entry.spec = spec;
        if entry.active != active {
            entry.active = active;
            entry.dirty = true;
        }
        if changed {
            revisions.awake.insert(key.clone());
        }
        drop(revisions);
        // The same registration again (every resync) changes nothing to decide.
        if changed {
            self.wake.notify_one();
        }
    }

    pub fn remove(&self, key: &RevisionKey) {
        let mut revisions = self.lock();
        revisions.awake.remove(key);
        if revisions.remove(key).is_some() {
            self.removals.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many revisions were removed so far.
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::Relaxed)
    }

    /// A load sample: requests in flight (and waiting) now, requests arrived since the last.
    pub fn record(&self, key: &RevisionKey, in_flight: f64, arrived: u64) {
        let now = Instant::now();
        if let Some(e) = self.lock().get_mut(key) {
            e.window.record(now, in_flight, arrived);
        }
    }

    /// How many replicas pass readiness, as the fleet sees it.
    pub fn report_ready(&self, key: &RevisionKey, ready: u32) {
        if let Some(e) = self.lock().get_mut(key) {
            e.ready = ready;
            if ready >= e.spec.initial_scale.max(1) {
                e.reached_initial = true;
            }
        }
    }

    /// Requests wait for a revision that has no replica: scale it from zero now.
    pub fn poke(&self, key: &RevisionKey) {
        let mut revisions = self.lock();
        let Some(e) = revisions.get_mut(key) else {
            return;
        };
        if e.desired == 0 {
            e.wake(Instant::now());
            let mut wake = e.spec.activation_scale.max(1);
            if e.spec.max_scale > 0 {
                wake = wake.min(e.spec.max_scale);
            }
            e.state.woken(wake);
            // The waiting request is load the collector has not sampled yet.
            e.window.record(Instant::now(), 1.0, 1);
            e.desired = wake;
            e.dirty = true;
            tracing::info!(revision = %key, replicas = wake, "request for a revision at zero: scaling up");
            revisions.awake.insert(key.clone());
            drop(revisions);
            self.wake.notify_one();
        }
    }

    pub fn view(&self, key: &RevisionKey) -> Option<RevisionView> {
        let revisions = self.lock();
        let e = revisions.get(key)?;
        let d = e.last;
        Some(RevisionView {
            desired: if e.active { e.desired } else { 0 },
            ready: e.ready,
            stable: d.map_or(0.0, |d| d.stable),
            panic: d.map_or(0.0, |d| d.panic),
            panicking: d.is_some_and(|d| d.panicking),
            excess_burst_capacity: d.map_or(0.0, |d| d.excess_burst_capacity),
            target: e.spec.target_value,
            metric: match e.spec.metric {
                crate::Metric::Concurrency => "concurrency",
                crate::Metric::Rps => "rps",
            },
        })
    }

    /// Prometheus text for every revision's autoscaler view.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let mut views: Vec<(RevisionKey, RevisionView)> = self
            .keys()
            .into_iter()
            .filter_map(|k| Some((k.clone(), self.view(&k)?)))
            .collect();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let series: [Series; 6] = [
            (
                "paas_autoscaler_desired_replicas",
                "gauge",
                "Replicas the autoscaler wants.",
                |v| f64::from(v.desired),
            ),
            (
                "paas_autoscaler_ready_replicas",
                "gauge",
                "Replicas ready, as the autoscaler sees them.",
                |v| f64::from(v.ready),
            ),
            (
                "paas_autoscaler_stable_value",
                "gauge",
                "The metric averaged over the stable window.",
                |v| v.stable,
            ),
            (
                "paas_autoscaler_panic_value",
                "gauge",
                "The metric averaged over the panic window.",
                |v| v.panic,
            ),
            (
                "paas_autoscaler_panic_mode",
                "gauge",
                "1 while the revision is in panic mode.",
                |v| if v.panicking { 1.0 } else { 0.0 },
            ),
            (
                "paas_autoscaler_excess_burst_capacity",
                "gauge",
                "Spare capacity beyond the target burst.",
                |v| v.excess_burst_capacity,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (k, v) in &views {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",revision=\"{}\"}} {}",
                    k.namespace,
                    k.name,
                    value(v)
                );
            }
        }
    }

    pub fn keys(&self) -> Vec<RevisionKey> {
        self.lock().keys().cloned().collect()
    }

    /// The revisions to sample: all but those at rest, which wait at zero for a request
    /// (an idle platform samples nothing).
    pub fn sampled_keys(&self) -> Vec<RevisionKey> {
        self.lock().awake.iter().cloned().collect()
    }

    /// Decide for every revision not at rest; returns the counts that changed, to
    /// apply. A revision that may rest is put to rest.
    pub fn tick(&self, now: Instant) -> Vec<(RevisionKey, u32)> {
        let mut changes = Vec::new();
        let mut revisions = self.lock();
        let Revisions { entries, awake } = &mut *revisions;
        awake.retain(|key| {
            let Some(e) = entries.get_mut(key) else {
                return false;
            };
            if e.active && e.reached_initial {
                if let Some(d) = decide(&e.spec, &e.window, e.ready, &mut e.state, now) {
                    if d.desired != e.desired {
                        tracing::info!(
                            revision = %key,
                            from = e.desired,
                            to = d.desired,
                            stable = d.stable,
                            panic = d.panic,
                            panicking = d.panicking,
                            "scaling"
                        );
                        e.desired = d.desired;
                        e.dirty = true;
                    }
                    e.last = Some(d);
                }
            }
            if e.dirty {
                e.dirty = false;
                changes.push((key.clone(), if e.active { e.desired } else { 0 }));
            } else if e.may_rest(now) {
                e.window.rest(now);
                return false;
            }
            true
        });
        changes
    }

    /// Tick until the task is dropped; pokes and registrations apply at once.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(self.config.tick_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let changes = self.tick(Instant::now());
            for (key, replicas) in changes {
                if let Err(e) = self.scaler.scale(&key, replicas).await {
                    tracing::warn!(error = %e, "scaling failed");
                    if let Some(entry) = self.lock().get_mut(&key) {
                        entry.dirty = true;
                    }
                }
            }
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::ScaleError;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(String, u32)>>);

    #[async_trait]
    impl Scaler for Recorder {
        async fn scale(&self, revision: &RevisionKey, replicas: u32) -> Result<(), ScaleError> {
            self.0
                .lock()
                .unwrap()
                .push((revision.name.clone(), replicas));
            Ok(())
        }
    }

    fn key() -> RevisionKey {
        RevisionKey {
            namespace: "default".into(),
            name: "hello-00001".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_revision_starts_at_initial_scale_then_goes_to_zero_when_idle() {
        let config = AutoscalerConfig {
            scale_to_zero_grace_period: Duration::from_secs(5),
            ..AutoscalerConfig::default()
        };
        let a = Autoscaler::new(config.clone(), Arc::new(Recorder::default()));
        let mut ann = BTreeMap::new();
        ann.insert("autoscaling.knative.dev/window".to_owned(), "6s".to_owned());
        let spec = ScalingSpec::resolve(&config, &ann, 0).unwrap();
        a.upsert(&key(), spec, true, None);
        assert_eq!(a.tick(Instant::now()), vec![(key(), 1)]);
        a.report_ready(&key(), 1);
        let mut scaled_to = None;
        for _ in 0..200 {
            tokio::time::advance(Duration::from_millis(100)).await;
            a.record(&key(), 0.0, 0);
            if let Some((_, n)) = a.tick(Instant::now()).pop() {
                scaled_to = Some(n);
                break;
            }
        }
        assert_eq!(scaled_to, Some(0));
        // A request arrives: the poke scales up without waiting for a tick, and the tick
        // right after it, whose window has not seen the request yet, keeps it up.
        a.poke(&key());
        assert_eq!(a.tick(Instant::now()), vec![(key(), 1)]);
        a.report_ready(&key(), 0);
        tokio::time::advance(Duration::from_millis(100)).await;
        a.record(&key(), 0.0, 0);
        assert_eq!(a.tick(Instant::now()), vec![]);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_scale_holds_until_reached_then_the_decider_takes_over() {
        let config = AutoscalerConfig::default();
        let a = Autoscaler::new(config.clone(), Arc::new(Recorder::default()));
        let mut ann = BTreeMap::new();
        ann.insert(
            "autoscaling.knative.dev/initial-scale".to_owned(),
            "3".to_owned(),
        );
        ann.insert("autoscaling.knative.dev/window".to_owned(), "6s".to_owned());
        let spec = ScalingSpec::resolve(&config, &ann, 0).unwrap();
        a.upsert(&key(), spec, true, None);
        assert_eq!(a.tick(Instant::now()), vec![(key(), 3)]);
        // Idle, but only two of three ready: no decision yet.
        a.report_ready(&key(), 2);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            a.record(&key(), 0.0, 0);
            assert_eq!(a.tick(Instant::now()), vec![]);
        }
        // All three ready: the decider scales the idle revision down.
        a.report_ready(&key(), 3);
        let mut next = None;
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            a.record(&key(), 0.0, 0);
            if let Some((_, n)) = a.tick(Instant::now()).pop() {
                next = Some(n);
                break;
            }
        }
        assert!(next.is_some_and(|n| n < 3), "{next:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_revision_at_zero_rests_until_a_new_spec_or_a_request_wakes_it() {
        let config = AutoscalerConfig {
            scale_to_zero_grace_period: Duration::ZERO,
            ..AutoscalerConfig::default()
        };
        let a = Autoscaler::new(config.clone(), Arc::new(Recorder::default()));
        let mut ann = BTreeMap::new();
        ann.insert("autoscaling.knative.dev/window".to_owned(), "6s".to_owned());
        let spec = ScalingSpec::resolve(&config, &ann, 0).unwrap();
        a.upsert(&key(), spec.clone(), true, None);
        a.tick(Instant::now());
        a.report_ready(&key(), 1);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            a.record(&key(), 0.0, 0);
            if a.tick(Instant::now()) == vec![(key(), 0)] {
                break;
            }
        }
        a.report_ready(&key(), 0);
        tokio::time::advance(REST_AFTER).await;
        assert_eq!(a.tick(Instant::now()), vec![]);
        assert!(a.sampled_keys().is_empty(), "a revision at zero is sampled");
        assert_eq!(a.keys(), vec![key()]);

        // The same registration again (a resync) leaves it at rest.
        a.upsert(&key(), spec.clone(), true, None);
        assert!(a.sampled_keys().is_empty());
        // A min-scale wakes it, and the next tick scales it up.
        let mut ann_min = ann.clone();
        ann_min.insert(
            "autoscaling.knative.dev/min-scale".to_owned(),
            "1".to_owned(),
        );
        let spec_min = ScalingSpec::resolve(&config, &ann_min, 0).unwrap();
        a.upsert(&key(), spec_min, true, None);
        assert_eq!(a.sampled_keys(), vec![key()]);
        tokio::time::advance(Duration::from_millis(100)).await;
        a.record(&key(), 0.0, 0);
        assert_eq!(a.tick(Instant::now()), vec![(key(), 1)]);

        // Back to min-scale 0, at rest again; a request wakes it.
        a.upsert(&key(), spec, true, None);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            a.record(&key(), 0.0, 0);
            a.tick(Instant::now());
        }
        assert!(a.sampled_keys().is_empty());
        a.poke(&key());
        assert_eq!(a.sampled_keys(), vec![key()]);
        assert_eq!(a.tick(Instant::now()), vec![(key(), 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_autoscaler_keeps_what_runs() {
        let config = AutoscalerConfig::default();
        let a = Autoscaler::new(config.clone(), Arc::new(Recorder::default()));
        let spec = ScalingSpec::resolve(&config, &BTreeMap::new(), 0).unwrap();
        a.upsert(&key(), spec, true, Some(4));
        assert_eq!(a.tick(Instant::now()), vec![(key(), 4)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrouted_revision_runs_nothing() {
        let config = AutoscalerConfig::default();
        let a = Autoscaler::new(config.clone(), Arc::new(Recorder::default()));
        let spec = ScalingSpec::resolve(&config, &BTreeMap::new(), 0).unwrap();
        a.upsert(&key(), spec.clone(), true, None);
        a.tick(Instant::now());
        a.upsert(&key(), spec, false, None);
        assert_eq!(a.tick(Instant::now()), vec![(key(), 0)]);
    }
}
