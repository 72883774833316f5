//! The clocks of PingSources: one task per source that sleeps until the next tick,
//! claims it in the source's status, then appends the tick's CloudEvent to the source's
//! topic, from which a dispatcher delivers it to the sink with retries.
//!
//! Claiming before appending makes a tick at most once: a crash between the two loses
//! that one tick, and a restart never sends a claimed tick again. Ticks due while paas
//! was down are skipped, not sent in a burst (see `paas_api::sources::next_tick`).
//!
//! The source's status lives in the controller's store, which this crate does not
//! know: a clock reads and claims through a [`TickLedger`] the controller implements.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use paas_api::cron::Schedule;
use paas_api::sources::{next_tick, PingSource, PING_EVENT_TYPE};
use tokio::task::JoinHandle;

use crate::cloudevent::{kafka_binding, CloudEvent, Data};
use crate::EventLog;

/// Where a clock reads its source and claims each tick in the source's status.
#[async_trait]
pub trait TickLedger: Send + Sync + 'static {
    type Error: fmt::Display + Send;

    /// The source as stored; `None` once it was deleted, which stops its clock.
    async fn source(&self, namespace: &str, name: &str) -> Result<Option<PingSource>, Self::Error>;

    /// Record `tick` as the source's last; false when it (or a later one) already was,
    /// or the source is gone. The clock appends the tick only after a true.
    async fn claim(
        &self,
        namespace: &str,
        name: &str,
        tick: DateTime<Utc>,
    ) -> Result<bool, Self::Error>;
}

/// What a source's clock needs; a change restarts it.
#[derive(Debug, Clone, PartialEq)]
pub struct TickerSpec {
    pub namespace: String,
    pub name: String,
    pub schedule: Schedule,
    pub timezone: chrono_tz::Tz,
    pub content_type: Option<String>,
    pub payload: Vec<u8>,
    pub topic: String,
}

#[derive(Debug)]
struct Running {
    spec: TickerSpec,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
pub struct Tickers {
    running: Mutex<HashMap<String, Running>>,
}

impl Tickers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ensure<L: TickLedger + ?Sized>(
        &self,
        key: &str,
        spec: TickerSpec,
        ledger: Arc<L>,
        log: Arc<dyn EventLog>,
        clock: fn() -> DateTime<Utc>,
    ) {
        let mut running = self.lock();
        if running
            .get(key)
            .is_some_and(|r| r.spec == spec && !r.task.is_finished())
        {
            return;
        }
        let task = tokio::spawn(run(ledger, log, spec.clone(), clock));
        if let Some(old) = running.insert(key.to_owned(), Running { spec, task }) {
            old.task.abort();
        }
        tracing::info!(pingsource = %key, "clock started");
    }

    pub fn stop(&self, key: &str) {
        if let Some(r) = self.lock().remove(key) {
            r.task.abort();
            tracing::info!(pingsource = %key, "clock stopped");
        }
    }
}

async fn run<L: TickLedger + ?Sized>(
    ledger: Arc<L>,
    log: Arc<dyn EventLog>,
    spec: TickerSpec,
    clock: fn() -> DateTime<Utc>,
) {
    loop {
        let source = match ledger.source(&spec.namespace, &spec.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(pingsource = %spec.name, error = %e, "reading the source failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = clock();
        let Some(tick) = next_tick(
            &spec.schedule,
            &spec.timezone,
            source.status.last_tick_time,
            now,
        ) else {
            tracing::warn!(pingsource = %spec.name, "the schedule never fires");
            return;
        };
        tokio::time::sleep((tick - now).to_std().unwrap_or_default()).await;
        match ledger.claim(&spec.namespace, &spec.name, tick).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(pingsource = %spec.name, %tick, error = %e, "claiming a tick failed; it is skipped");
                continue;
            }
        }
        let mut event = CloudEvent::new(
            uuid::Uuid::new_v4().to_string(),
            format!(
                "/apis/v1/namespaces/{}/pingsources/{}",
                spec.namespace, spec.name
            ),
            PING_EVENT_TYPE,
        );
        event.time = Some(tick.to_rfc3339());
        event.datacontenttype = spec.content_type.clone();
        if !spec.payload.is_empty() {
            event.data = Some(Data::Binary(Bytes::from(spec.payload.clone())));
        }
        if let Err(e) = log
            .append(&spec.topic, vec![kafka_binding::to_record(&event)])
            .await
        {
            tracing::error!(pingsource = %spec.name, %tick, error = %e, "a tick could not be stored and is lost");
        }
    }
}
