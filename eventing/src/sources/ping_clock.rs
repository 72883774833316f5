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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use crate::{InitialOffset, LogError, Position, Record, Subscription};

    use super::*;

    /// 2027-01-15T08:00:30Z: half a minute before a `* * * * *` tick.
    const START: i64 = 1_800_000_030;

    thread_local! {
        /// Tokio's paused instant at the test's start; a `#[tokio::test]` runs its
        /// tasks on the test's thread, so each test has its own.
        static BASE: Cell<Option<tokio::time::Instant>> = const { Cell::new(None) };
    }

    /// Wall time that moves with tokio's paused clock.
    fn clock() -> DateTime<Utc> {
        let base = BASE.with(|b| {
            let base = b.get().unwrap_or_else(tokio::time::Instant::now);
            b.set(Some(base));
            base
        });
        let elapsed = chrono::Duration::from_std(base.elapsed()).unwrap();
        DateTime::from_timestamp(START, 0).unwrap() + elapsed
    }

    fn at(hh_mm: &str) -> String {
        format!("2027-01-15T{hh_mm}:00+00:00")
    }

    /// What the ledger and the log saw, in order: `claim T`, `append T`.
    #[derive(Debug, Default)]
    struct Journal(Mutex<Vec<String>>);

    impl Journal {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }

        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A source in memory, whose ticks up to `claimed_elsewhere` another writer (a
    /// second clock) claims between this clock's read and its claim.
    #[derive(Debug)]
    struct Ledger {
        source: Mutex<Option<PingSource>>,
        claimed_elsewhere: Option<DateTime<Utc>>,
        journal: Arc<Journal>,
    }

    #[async_trait]
    impl TickLedger for Ledger {
        type Error = Infallible;

        async fn source(&self, _: &str, _: &str) -> Result<Option<PingSource>, Infallible> {
            Ok(self.source.lock().unwrap().clone())
        }

        async fn claim(&self, _: &str, _: &str, tick: DateTime<Utc>) -> Result<bool, Infallible> {
            let mut source = self.source.lock().unwrap();
            let Some(source) = source.as_mut() else {
                return Ok(false);
            };
            if let Some(elsewhere) = self.claimed_elsewhere.filter(|e| *e >= tick) {
                source.status.last_tick_time = Some(elsewhere);
            }
            if source.status.last_tick_time.is_some_and(|l| l >= tick) {
                return Ok(false);
            }
            source.status.last_tick_time = Some(tick);
            self.journal.push(format!("claim {}", tick.to_rfc3339()));
            Ok(true)
        }
    }

    /// A log that journals each appended tick by its `ce_time`.
    #[derive(Debug)]
    struct Log(Arc<Journal>);

    #[async_trait]
    impl EventLog for Log {
        async fn ensure_topic(&self, _: &str) -> Result<(), LogError> {
            Ok(())
        }

        async fn delete_topic(&self, _: &str) -> Result<(), LogError> {
            Ok(())
        }

        async fn append(
            &self,
            topic: &str,
            records: Vec<Record>,
        ) -> Result<Vec<Position>, LogError> {
            assert_eq!(topic, "knative-ping-default-ping");
            for record in &records {
                let time = record.headers.iter().find(|(k, _)| k == "ce_time").unwrap();
                self.0
                    .push(format!("append {}", String::from_utf8_lossy(&time.1)));
            }
            Ok(Vec::new())
        }

        async fn subscribe(
            &self,
            topic: &str,
            _: &str,
            _: InitialOffset,
        ) -> Result<Box<dyn Subscription>, LogError> {
            Err(LogError::NoSuchTopic {
                topic: topic.into(),
            })
        }

        async fn delete_group(&self, _: &str, _: &str) -> Result<(), LogError> {
            Ok(())
        }
    }

    fn spec() -> TickerSpec {
        TickerSpec {
            namespace: "default".into(),
            name: "ping".into(),
            schedule: Schedule::parse("* * * * *").unwrap(),
            timezone: chrono_tz::UTC,
            content_type: None,
            payload: Vec::new(),
            topic: "knative-ping-default-ping".into(),
        }
    }

    fn start(claimed_elsewhere: Option<DateTime<Utc>>) -> (Tickers, Arc<Ledger>, Arc<Journal>) {
        clock();
        let journal = Arc::new(Journal::default());
        let ledger = Arc::new(Ledger {
            source: Mutex::new(Some(PingSource::default())),
            claimed_elsewhere,
            journal: journal.clone(),
        });
        let tickers = Tickers::default();
        let log: Arc<dyn EventLog> = Arc::new(Log(journal.clone()));
        tickers.ensure(
            "pingsource:default/ping",
            spec(),
            ledger.clone(),
            log,
            clock,
        );
        (tickers, ledger, journal)
    }

    /// Let the clock run until `lines` lines were journalled (in paused time, each
    /// sleep lets the clock's task run up to its next wake-up).
    async fn until(journal: &Journal, lines: usize) {
        for _ in 0..600 {
            if journal.lines().len() >= lines {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("only {:?} after 10 minutes", journal.lines());
    }

    #[tokio::test(start_paused = true)]
    async fn each_tick_is_claimed_then_appended_and_the_clock_ends_with_its_source() {
        let (tickers, ledger, journal) = start(None);
        until(&journal, 4).await;
        assert_eq!(
            journal.lines(),
            [
                format!("claim {}", at("08:01")),
                format!("append {}", at("08:01")),
                format!("claim {}", at("08:02")),
                format!("append {}", at("08:02")),
            ]
        );

        // The source is deleted: its clock reads that at its next tick and ends.
        *ledger.source.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(journal.lines().len(), 4, "{:?}", journal.lines());
        assert!(tickers.lock()["pingsource:default/ping"].task.is_finished());
        tickers.stop("pingsource:default/ping");
        assert!(tickers.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_claimed_meanwhile_by_another_writer_is_not_appended() {
        let elsewhere = DateTime::parse_from_rfc3339(&at("08:01")).unwrap();
        let (tickers, _ledger, journal) = start(Some(elsewhere.to_utc()));
        until(&journal, 2).await;
        // 08:01 went to the other writer; this clock sends the next one only.
        assert_eq!(
            journal.lines(),
            [
                format!("claim {}", at("08:02")),
                format!("append {}", at("08:02")),
            ]
        );
        tickers.stop("pingsource:default/ping");
    }
}
