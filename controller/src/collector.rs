//! Feeds the autoscaler: every 100 ms, each revision's requests in flight and waiting
//! (as the gateway's capacity counts them), arrivals since the last sample, and ready
//! replicas. Ten samples a second make the per-second average close to a time-weighted one.
//!
//! Revisions at rest (at zero, with nothing arriving: see
//! [`Autoscaler::sampled_keys`]) are not sampled, so an idle platform costs nothing
//! here however many services it holds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use paas_api::RevisionKey;
use paas_autoscaler::Autoscaler;
use paas_gateway::RoutingTable;

const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(autoscaler: Arc<Autoscaler>, table: Arc<RoutingTable>) {
    let mut sampler = Sampler::default();
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        sampler.sample(&autoscaler, &table);
    }
}

/// What the collector remembers between samples.
#[derive(Debug, Default)]
struct Sampler {
    /// Each revision's arrivals counted at its last sample; kept while it rests, so
    /// that requests that woke it count once.
    seen: HashMap<RevisionKey, u64>,
    /// The autoscaler's removals when `seen` was last pruned.
    removals: u64,
}

impl Sampler {
    /// Take one sample of every revision that is not at rest; returns how many.
    fn sample(&mut self, autoscaler: &Autoscaler, table: &RoutingTable) -> usize {
        let removals = autoscaler.removals();
        if removals != self.removals {
            self.removals = removals;
            let known: HashSet<RevisionKey> = autoscaler.keys().into_iter().collect();
            self.seen.retain(|k, _| known.contains(k));
        }
        let keys = autoscaler.sampled_keys();
        for key in &keys {
            let capacity = table.revision(key);
            let in_flight = capacity.in_flight.load(Ordering::Relaxed)
                + capacity.waiting.load(Ordering::Relaxed);
            let total = capacity.requests.load(Ordering::Relaxed);
            let before = self.seen.insert(key.clone(), total).unwrap_or(total);
            autoscaler.record(key, in_flight as f64, total.saturating_sub(before));
            autoscaler.report_ready(key, capacity.ready().len() as u32);
        }
        keys.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use paas_autoscaler::{AutoscalerConfig, ScaleError, Scaler, ScalingSpec};
    use tokio::time::Instant;

    use super::*;

    #[derive(Debug)]
    struct Nothing;

    #[async_trait]
    impl Scaler for Nothing {
        async fn scale(&self, _: &RevisionKey, _: u32) -> Result<(), ScaleError> {
            Ok(())
        }
    }

    fn key(i: usize) -> RevisionKey {
        RevisionKey {
            namespace: "default".into(),
            name: format!("svc-{i}-00001"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn revisions_at_zero_are_not_sampled_until_a_request_wakes_one() {
        let config = AutoscalerConfig {
            stable_window: Duration::from_secs(6),
            scale_to_zero_grace_period: Duration::ZERO,
            ..AutoscalerConfig::default()
        };
        let autoscaler = Autoscaler::new(config.clone(), Arc::new(Nothing));
        let table = RoutingTable::new();
        let spec = ScalingSpec::resolve(&config, &BTreeMap::new(), 0).unwrap();
        for i in 0..1000 {
            autoscaler.upsert(&key(i), spec.clone(), true, None);
        }
        let mut sampler = Sampler::default();
        // Each starts at one replica, is ready, and goes to zero without a request.
        for i in 0..1000 {
            autoscaler.report_ready(&key(i), 1);
        }
        for _ in 0..200 {
            tokio::time::advance(SAMPLE_INTERVAL).await;
            sampler.sample(&autoscaler, &table);
            autoscaler.tick(Instant::now());
        }
        assert_eq!(sampler.sample(&autoscaler, &table), 0);
        assert!((0..1000).all(|i| autoscaler.view(&key(i)).unwrap().desired == 0));

        // A request for one waits at the activator, which pokes it.
        table
            .revision(&key(7))
            .requests
            .fetch_add(1, Ordering::Relaxed);
        autoscaler.poke(&key(7));
        assert_eq!(autoscaler.view(&key(7)).unwrap().desired, 1);
        assert_eq!(sampler.sample(&autoscaler, &table), 1);
        assert_eq!(autoscaler.tick(Instant::now()), vec![(key(7), 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_revision_is_forgotten_by_the_sampler() {
        let config = AutoscalerConfig::default();
        let autoscaler = Autoscaler::new(config.clone(), Arc::new(Nothing));
        let table = RoutingTable::new();
        let spec = ScalingSpec::resolve(&config, &BTreeMap::new(), 0).unwrap();
        autoscaler.upsert(&key(1), spec.clone(), true, None);
        autoscaler.upsert(&key(2), spec, true, None);
        let mut sampler = Sampler::default();
        assert_eq!(sampler.sample(&autoscaler, &table), 2);
        autoscaler.remove(&key(1));
        assert_eq!(sampler.sample(&autoscaler, &table), 1);
        assert_eq!(sampler.seen.keys().collect::<Vec<_>>(), [&key(2)]);
    }
}
