//! The activator's poke, delivered to the autoscaler. The activator says what a poke
//! means ([`Poke`]: requests wait for a revision without a replica), the autoscaler what
//! it does on one ([`Autoscaler::poke`]: scale from zero now). The autoscaler need not
//! know the activator for that: this adapter, on the wiring's side, joins the two.

use std::sync::Arc;

use paas_activator::Poke;
use paas_api::RevisionKey;
use paas_autoscaler::Autoscaler;

/// The autoscaler, as the gateway's activator pokes it.
#[derive(Debug, Clone)]
pub struct AutoscalerPoke(pub Arc<Autoscaler>);

impl Poke for AutoscalerPoke {
    fn poke(&self, revision: &RevisionKey) {
        self.0.poke(revision);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use async_trait::async_trait;
    use paas_activator::Capacity;
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

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_at_the_activator_wakes_its_revision_from_zero() {
        let key = RevisionKey {
            namespace: "default".into(),
            name: "hello-00001".into(),
        };
        let config = AutoscalerConfig::default();
        let autoscaler = Autoscaler::new(config.clone(), Arc::new(Nothing));
        let spec = ScalingSpec::resolve(&config, &BTreeMap::new(), 0).unwrap();
        // Known with no replica running: at zero.
        autoscaler.upsert(&key, spec, true, Some(0));
        assert_eq!(autoscaler.view(&key).unwrap().desired, 0);

        let capacity = Arc::new(Capacity::new(key.clone()));
        let poke = AutoscalerPoke(autoscaler.clone());
        let waiter = {
            let capacity = capacity.clone();
            tokio::spawn(async move {
                capacity
                    .acquire(Instant::now() + Duration::from_secs(10), &poke)
                    .await
            })
        };
        // The request waits, and its poke alone (no tick) scales the revision up. On this
        // one-thread runtime the request's task runs until it waits, so once it counts as
        // waiting it has poked.
        while capacity.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(autoscaler.view(&key).unwrap().desired, 1);

        let replica: SocketAddr = "127.0.0.1:9".parse().unwrap();
        capacity.set_ready(&[replica]);
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(permit.endpoint().addr, replica);
    }
}
