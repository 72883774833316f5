//! Feeds the autoscaler: every 100 ms, each revision's requests in flight and waiting
//! (as the gateway's capacity counts them), arrivals since the last sample, and ready
//! replicas. Ten samples a second make the per-second average close to a time-weighted one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use paas_autoscaler::Autoscaler;
use paas_gateway::{RevisionKey, RoutingTable};

const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(autoscaler: Arc<Autoscaler>, table: Arc<RoutingTable>) {
    let mut seen: HashMap<RevisionKey, u64> = HashMap::new();
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let keys = autoscaler.keys();
        seen.retain(|k, _| keys.contains(k));
        for key in keys {
            let capacity = table.revision(&key);
            let in_flight = capacity.in_flight.load(Ordering::Relaxed)
                + capacity.waiting.load(Ordering::Relaxed);
            let total = capacity.requests.load(Ordering::Relaxed);
            let before = seen.insert(key.clone(), total).unwrap_or(total);
            autoscaler.record(&key, in_flight as f64, total.saturating_sub(before));
            autoscaler.report_ready(&key, capacity.ready().len() as u32);
        }
    }
}
