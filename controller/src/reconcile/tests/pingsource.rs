//! PingSource → a topic its ticks are kept in, a dispatcher delivering them to the
//! sink, and a clock that claims each tick in the source's status and appends it.

use paas_api::sources::PING_EVENT_TYPE;
use paas_eventing::dispatcher::ReplyTo;

use super::*;

fn ping(schedule: &str, timezone: &str) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: ping
spec:
  schedule: \"{schedule}\"
  timezone: {timezone}
  contentType: application/json
  data: '{{\"message\": \"hi\"}}'
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: display
"
    )
}

const TOPIC: &str = "knative-ping-default-ping";
const KEY: &str = "pingsource:default/ping";

fn header(record: &paas_eventing::Record, name: &str) -> Option<String> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test(start_paused = true)]
async fn a_ping_source_ticks_on_its_schedule_into_a_topic_delivered_to_its_sink() {
    let f = Fixture::new();
    f.apply(&service_yaml("display", "1")).await;
    f.apply(&ping("* * * * *", "UTC")).await;
    f.at(30);
    assert_eq!(f.reconcile::<PingSource>("ping").await, Action::Done);
    let source: PingSource = f.get("ping").await;
    assert!(
        source.status.conditions.is_true("Ready"),
        "{:?}",
        source.status
    );
    assert_eq!(source.status.observed_generation, Some(1));
    let sink = "http://display.default.localhost:8080";
    assert_eq!(source.status.sink_uri.as_deref(), Some(sink));
    assert!(f.log.topics().contains(&TOPIC.to_owned()));
    let dispatcher = f.dispatcher(KEY).unwrap();
    assert_eq!(dispatcher.topic, TOPIC);
    assert_eq!(dispatcher.group, "knative-pingsource-default-ping");
    assert_eq!(dispatcher.subscriber, sink);
    assert_eq!(dispatcher.reply, ReplyTo::Drop);

    // The clock: the next minute after 08:00:30.
    eventually("a tick", || !f.log.records(TOPIC).is_empty()).await;
    let tick = &f.log.records(TOPIC)[0];
    assert_eq!(header(tick, "ce_type").as_deref(), Some(PING_EVENT_TYPE));
    assert_eq!(
        header(tick, "ce_source").as_deref(),
        Some("/apis/v1/namespaces/default/pingsources/ping")
    );
    assert_eq!(
        header(tick, "ce_time").as_deref(),
        Some("2027-01-15T08:01:00+00:00")
    );
    assert_eq!(&tick.value[..], br#"{"message": "hi"}"#);
    // Claimed in the status before it was appended.
    let source: PingSource = f.get("ping").await;
    let claimed = source.status.last_tick_time.unwrap();
    assert!(claimed >= instant(60), "{claimed}");
    f.ctx.tickers.stop(KEY);
}

#[tokio::test(start_paused = true)]
async fn a_ping_source_ticks_in_its_timezone() {
    let f = Fixture::new();
    f.apply(&service_yaml("display", "1")).await;
    // 09:05 in Paris is 08:05 UTC in January.
    f.apply(&ping("5 9 * * *", "Europe/Paris")).await;
    f.reconcile::<PingSource>("ping").await;
    eventually("a tick", || !f.log.records(TOPIC).is_empty()).await;
    assert_eq!(
        header(&f.log.records(TOPIC)[0], "ce_time").as_deref(),
        Some("2027-01-15T08:05:00+00:00")
    );
    f.ctx.tickers.stop(KEY);
}

#[tokio::test(start_paused = true)]
async fn a_ping_source_whose_sink_goes_away_stops_ticking() {
    let f = Fixture::new();
    f.apply(&ping("* * * * *", "UTC")).await;
    assert_eq!(
        f.reconcile::<PingSource>("ping").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let source: PingSource = f.get("ping").await;
    let (status, reason, message) = condition(&source.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "SinkUnresolved",
            "Service default/display not found or not addressable yet"
        )
    );
    assert_eq!(f.dispatcher(KEY), None);

    f.apply(&service_yaml("display", "1")).await;
    assert_eq!(f.reconcile::<PingSource>("ping").await, Action::Done);
    eventually("a tick", || !f.log.records(TOPIC).is_empty()).await;

    f.ctx
        .store
        .delete::<Service>("default", "display")
        .await
        .unwrap();
    f.reconcile::<PingSource>("ping").await;
    let ticks = f.log.records(TOPIC).len();
    // Five minutes of a stopped clock: no tick.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(f.log.records(TOPIC).len(), ticks);
    let source: PingSource = f.get("ping").await;
    assert_eq!(
        condition(&source.status.conditions, "Ready").1,
        "SinkUnresolved"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_keeps_the_tick_its_clock_claimed_meanwhile() {
    let f = Fixture::new();
    f.apply(&service_yaml("display", "1")).await;
    f.apply(&ping("* * * * *", "UTC")).await;
    // A copy read before the clock's first claim.
    let before: PingSource = f.get("ping").await;
    f.reconcile::<PingSource>("ping").await;
    eventually("a tick", || !f.log.records(TOPIC).is_empty()).await;
    let claimed = f.get::<PingSource>("ping").await.status.last_tick_time;
    assert!(claimed.is_some());
    f.ctx.tickers.stop(KEY);
    // The reconciler writes a status from the old copy (its sink went away): no
    // conflict, and the claim stays.
    f.ctx
        .store
        .delete::<Service>("default", "display")
        .await
        .unwrap();
    before.reconcile(&f.ctx).await.unwrap();
    let after: PingSource = f.get("ping").await;
    assert_eq!(
        condition(&after.status.conditions, "Ready").1,
        "SinkUnresolved"
    );
    assert_eq!(after.status.last_tick_time, claimed, "the claim is kept");
}

/// A store whose first status write of a PingSource finds that the source's clock
/// claimed a tick just before it: the write a reconciler prepared from its read is
/// then stale, as it is when the clock fires between that read and write.
#[derive(Debug)]
struct ClockClaimsFirst {
    inner: Arc<dyn Store>,
    claimed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for ClockClaimsFirst {
    async fn get_raw(&self, key: &ObjectKey) -> crate::store::Result<Option<serde_json::Value>> {
        self.inner.get_raw(key).await
    }
    async fn list_raw(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
    ) -> crate::store::Result<Vec<serde_json::Value>> {
        self.inner.list_raw(kind, namespace).await
    }
    async fn create_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
    ) -> crate::store::Result<serde_json::Value> {
        self.inner.create_raw(key, object).await
    }
    async fn update_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
        status_only: bool,
    ) -> crate::store::Result<serde_json::Value> {
        use paas_eventing::sources::ping_clock::TickLedger;
        let first = !self.claimed.swap(true, std::sync::atomic::Ordering::SeqCst);
        if status_only && key.kind == PingSource::KIND && first {
            let tick = instant(0);
            assert!(self
                .inner
                .claim(&key.namespace, &key.name, tick)
                .await
                .unwrap());
        }
        self.inner.update_raw(key, object, status_only).await
    }
    async fn delete_raw(&self, key: &ObjectKey) -> crate::store::Result<bool> {
        self.inner.delete_raw(key).await
    }
    fn watch(&self) -> tokio::sync::broadcast::Receiver<crate::store::WatchEvent> {
        self.inner.watch()
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_write_the_clock_raced_is_written_again_keeping_the_claim() {
    let store = Arc::new(ClockClaimsFirst {
        inner: Arc::new(SqliteStore::in_memory().unwrap()),
        claimed: std::sync::atomic::AtomicBool::new(true),
    });
    let f = Fixture::with_store(store.clone());
    // No sink: the reconciler writes a status (SinkUnresolved) and starts no clock.
    f.apply(&ping("* * * * *", "UTC")).await;
    store
        .claimed
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        f.reconcile::<PingSource>("ping").await,
        Action::RequeueAfter(std::time::Duration::from_secs(2))
    );
    let after: PingSource = f.get("ping").await;
    assert_eq!(
        condition(&after.status.conditions, "Ready").1,
        "SinkUnresolved"
    );
    assert_eq!(
        after.status.last_tick_time,
        Some(instant(0)),
        "the clock's claim is kept"
    );
}
