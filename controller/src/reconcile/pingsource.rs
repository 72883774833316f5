//! PingSource → its clock (see `paas_eventing::sources::ping_clock`), a topic its ticks are kept in, and a
//! dispatcher delivering them to the sink with retries.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paas_api::sources::PingSource;
use paas_api::Object;
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Records, ReplyTo};
use paas_eventing::filter::Filter;
use paas_eventing::sources::ping_clock::{TickLedger, TickerSpec};

use super::{destination, set_ready, Action, Context, Result};
use crate::store::{Store, StoreError, StoreExt};

/// The topic a source's ticks are kept in until delivered.
pub fn topic(namespace: &str, name: &str) -> String {
    format!("knative-ping-{namespace}-{name}")
}

/// The key of a source's clock and dispatcher.
pub fn key(namespace: &str, name: &str) -> String {
    format!("pingsource:{namespace}/{name}")
}

pub async fn reconcile(source: &PingSource, ctx: &Context) -> Result<Action> {
    let ns = source.namespace();
    let name = source.name();
    let now = ctx.now();
    let mut status = source.status.clone();
    status.observed_generation = source.metadata.generation;
    let key = key(ns, name);
    let topic = topic(ns, name);

    let mut problem: Option<(&str, String)> = None;
    if let Err(e) = ctx.event_log.ensure_topic(&topic).await {
        problem = Some(("TopicFailed", e.to_string()));
    }
    match destination::resolve(&source.spec.sink, ns, ctx).await? {
        Ok(uri) => status.sink_uri = Some(uri),
        Err(why) => {
            problem.get_or_insert(("SinkUnresolved", why));
        }
    }
    // Validation checked both when the source was applied.
    let timing = source.spec.timing();
    let payload = source.spec.payload();
    let (Ok((schedule, timezone)), Ok(payload)) = (timing, payload) else {
        problem.get_or_insert(("Invalid", "the schedule or data is invalid".into()));
        return finish(source, status, problem, ctx, now).await;
    };
    if problem.is_none() {
        let spec = DispatchSpec {
            topic: topic.clone(),
            group: format!("knative-pingsource-{ns}-{name}"),
            filter: Arc::new(Filter::Everything),
            subscriber: status.sink_uri.clone().unwrap_or_default(),
            dead_letter: None,
            policy: DeliveryPolicy::default(),
            ordered: false,
            reply: ReplyTo::Drop,
            records: Records::CloudEvents,
        };
        match ctx.dispatchers.ensure(&key, spec).await {
            Ok(()) => ctx.tickers.ensure(
                &key,
                TickerSpec {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                    schedule,
                    timezone,
                    content_type: source.spec.content_type.clone(),
                    payload,
                    topic,
                },
                ctx.store.clone(),
                ctx.event_log.clone(),
                ctx.clock,
            ),
            Err(e) => problem = Some(("DispatcherFailed", e.to_string())),
        }
    }
    finish(source, status, problem, ctx, now).await
}

/// How often a status write is tried again when the source's clock wrote in between.
const CLAIM_RACE_ATTEMPTS: u32 = 5;

async fn finish(
    source: &PingSource,
    mut status: paas_api::sources::PingSourceStatus,
    problem: Option<(&str, String)>,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Action> {
    if problem.is_some() {
        ctx.tickers.stop(&key(source.namespace(), source.name()));
    }
    let retry = set_ready(&mut status.conditions, problem, now);
    if status != source.status {
        // The clock may claim a tick at any moment, also between the read and the
        // write below: keep its claim, and on a conflict read it again (as the clock
        // does on its side) rather than fail the reconcile over a write of our own.
        for attempt in 1..=CLAIM_RACE_ATTEMPTS {
            let mut next = source.clone();
            if let Some(latest) = ctx
                .store
                .get::<PingSource>(source.namespace(), source.name())
                .await?
            {
                status.last_tick_time = latest.status.last_tick_time;
                next.metadata.resource_version = latest.metadata.resource_version;
            }
            next.status = status.clone();
            match ctx.store.update_status(&next).await {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) if attempt < CLAIM_RACE_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(retry.map_or(Action::Done, Action::RequeueAfter))
}

/// A clock reads its source from, and claims its ticks in, the store: implemented on
/// `dyn Store` so that the reconciler hands the clock `ctx.store` as it is.
#[async_trait]
impl TickLedger for dyn Store {
    type Error = StoreError;

    async fn source(&self, namespace: &str, name: &str) -> Result<Option<PingSource>, StoreError> {
        self.get::<PingSource>(namespace, name).await
    }

    async fn claim(
        &self,
        namespace: &str,
        name: &str,
        tick: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let Some(mut source) = self.get::<PingSource>(namespace, name).await? else {
                return Ok(false);
            };
            if source.status.last_tick_time.is_some_and(|l| l >= tick) {
                return Ok(false);
            }
            source.status.last_tick_time = Some(tick);
            match self.update_status(&source).await {
                Ok(_) => return Ok(true),
                // The reconciler wrote in between: read again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}
