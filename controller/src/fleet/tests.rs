//! The fleet end to end, against in-memory runtimes, on a paused clock.

use super::*;
use crate::fake_runtime::{Call, FakeRuntime};
use paas_runtime::Replica;
use std::sync::atomic::{AtomicU32, Ordering};

/// A runtime whose replicas never start.
#[derive(Debug, Default)]
struct NeverStarts {
    tries: AtomicU32,
}

#[async_trait::async_trait]
impl Runtime for NeverStarts {
    fn name(&self) -> &'static str {
        "never-starts"
    }
    fn check(&self, _spec: &ReplicaSpec) -> paas_runtime::Result<()> {
        Ok(())
    }
    async fn start(&self, spec: &ReplicaSpec) -> paas_runtime::Result<Replica> {
        self.tries.fetch_add(1, Ordering::Relaxed);
        Err(paas_runtime::Error::Spawn {
            command: spec.command.join(" "),
            source: std::io::Error::other("no such file"),
        })
    }
    async fn stop(&self, _id: &str, _grace: Duration) -> paas_runtime::Result<()> {
        Ok(())
    }
    async fn list(&self) -> paas_runtime::Result<Vec<Replica>> {
        Ok(vec![])
    }
    async fn logs(&self, _id: &str, _tail: usize) -> paas_runtime::Result<Vec<String>> {
        Ok(vec![])
    }
    async fn freeze(&self, _id: &str) -> paas_runtime::Result<()> {
        Ok(())
    }
    async fn thaw(&self, _id: &str) -> paas_runtime::Result<()> {
        Ok(())
    }
}

/// What revision `name` (uid `uid-{name}`) runs: a TCP-probed server.
pub(super) fn desired(name: &str, idle: IdlePolicy) -> Desired {
    Desired {
        key: RevisionKey {
            namespace: "default".into(),
            name: name.into(),
        },
        spec: ReplicaSpec {
            namespace: "default".into(),
            service: "svc".into(),
            configuration: "svc".into(),
            revision: name.into(),
            revision_uid: format!("uid-{name}"),
            image: None,
            command: vec!["server".into()],
            args: vec![],
            env: vec![],
            port: 8080,
        },
        check: ReadinessCheck::Tcp,
        period: Duration::from_secs(10),
        failure_threshold: 3,
        timeout: Duration::from_secs(300),
        container_concurrency: 0,
        idle,
        replicas: 0,
    }
}

#[tokio::test(start_paused = true)]
async fn a_revision_that_cannot_start_backs_off_as_crash_loop_back_off() {
    let runtime = Arc::new(NeverStarts::default());
    let changes = Arc::new(Changed::default());
    let fleet = Fleet::new(runtime.clone(), RoutingTable::new(), changes.clone());
    let key = RevisionKey {
        namespace: "default".into(),
        name: "broken-00001".into(),
    };
    let mut broken = desired(&key.name, IdlePolicy::Stop);
    broken.spec.command = vec!["/nonexistent/server".into()];
    fleet.set_desired("uid-1", broken);
    fleet.scale(&key, 1);
    fleet.adoption_done();
    let run = tokio::spawn(fleet.clone().run());
    // Ten minutes of a fleet that syncs every second.
    tokio::time::sleep(Duration::from_secs(600)).await;
    run.abort();
    let tries = runtime.tries.load(Ordering::Relaxed);
    // At 0, 10, 30, 70, 150, 310 s (then 610 s): not once a second.
    assert_eq!(tries, 6, "{tries} tries in 10 minutes");
    let observed = fleet.observed("uid-1");
    assert_eq!(observed.restarts, 6);
    assert!(observed.next_start.is_some(), "{observed:?}");
    assert!(observed.start_error.is_some(), "{observed:?}");
    assert_eq!(changes.take(), [key]);
}

fn serving(name: &str, idle: IdlePolicy) -> (RevisionKey, Desired) {
    let mut d = desired(name, idle);
    d.period = Duration::from_secs(1);
    (d.key.clone(), d)
}

/// Wait (on the paused clock) until `done` holds, for at most a minute.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "not within a minute: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn replicas_scaled_down_are_stopped_only_once_their_requests_are_done() {
    let runtime = Arc::new(FakeRuntime::default());
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
    let (key, desired) = serving("a", IdlePolicy::Stop);
    fleet.set_desired("uid-a", desired);
    fleet.adoption_done();
    let run = tokio::spawn(fleet.clone().run());
    fleet.scale(&key, 2);
    eventually("two ready", || fleet.observed("uid-a").ready == 2).await;
    let endpoints = table.revision(&key).ready();
    assert_eq!(endpoints.len(), 2);
    // One request in flight on each.
    for e in endpoints.iter() {
        e.in_flight.fetch_add(1, Ordering::AcqRel);
    }
    fleet.scale(&key, 0);
    eventually("out of the ready set", || {
        table.revision(&key).ready().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let stops = |calls: Vec<Call>| calls.iter().filter(|c| matches!(c, Call::Stop(_))).count();
    assert_eq!(
        stops(runtime.calls()),
        0,
        "stopped mid-request: {:?}",
        runtime.calls()
    );
    endpoints[0].in_flight.fetch_sub(1, Ordering::AcqRel);
    eventually("the first stopped", || stops(runtime.calls()) == 1).await;
    assert_eq!(runtime.ids().len(), 1);
    endpoints[1].in_flight.fetch_sub(1, Ordering::AcqRel);
    eventually("both stopped", || runtime.ids().is_empty()).await;
    assert_eq!(fleet.observed("uid-a").actual, 0);
    let starts = runtime
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Start(_)))
        .count();
    assert_eq!(starts, 2, "{:?}", runtime.calls());
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_restarted_fleet_adopts_its_replicas_and_removes_orphans_after_adoption() {
    let runtime = Arc::new(FakeRuntime::default());
    runtime.running("a-old", "a", "uid-a");
    runtime.running("gone-old", "gone", "uid-gone");
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
    let (key, desired) = serving("a", IdlePolicy::Stop);
    // As after a restart: the revision resumes at the replicas it had.
    fleet.scale(&key, 1);
    fleet.set_desired("uid-a", desired);
    let run = tokio::spawn(fleet.clone().run());
    eventually("adopted and ready", || fleet.observed("uid-a").ready == 1).await;
    assert_eq!(fleet.replica_ids("uid-a"), ["a-old"]);
    // Other revisions may not have been read yet: nothing is removed meanwhile.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(runtime.calls(), []);
    fleet.adoption_done();
    eventually("the orphan removed", || runtime.ids() == ["a-old"]).await;
    assert_eq!(runtime.calls(), [Call::Stop("gone-old".into())]);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_revision_at_zero_freezes_its_last_replica_and_thaws_it_on_scale_up() {
    let runtime = Arc::new(FakeRuntime::default());
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
    let retention = Duration::from_secs(15 * 60);
    let (key, desired) = serving("a", IdlePolicy::Freeze { retention });
    fleet.set_desired("uid-a", desired);
    fleet.adoption_done();
    let run = tokio::spawn(fleet.clone().run());
    fleet.scale(&key, 1);
    eventually("ready", || fleet.observed("uid-a").ready == 1).await;
    fleet.scale(&key, 0);
    let id = "a-1".to_owned();
    eventually("frozen", || {
        runtime.calls().contains(&Call::Freeze(id.clone()))
    })
    .await;
    assert!(table.revision(&key).ready().is_empty());
    fleet.scale(&key, 1);
    eventually("thawed and ready", || fleet.observed("uid-a").ready == 1).await;
    assert_eq!(
        runtime.calls(),
        [
            Call::Start(id.clone()),
            Call::Freeze(id.clone()),
            Call::Thaw(id.clone())
        ]
    );
    // At zero again, the frozen replica is stopped once its retention is over.
    fleet.scale(&key, 0);
    eventually("frozen again", || runtime.calls().len() == 4).await;
    tokio::time::sleep(retention + Duration::from_secs(2)).await;
    assert_eq!(runtime.calls()[4..], [Call::Stop(id)]);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn an_idle_fleet_lists_once_a_second_whatever_its_revisions() {
    let runtime = Arc::new(FakeRuntime::default());
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
    for i in 0..1_000 {
        let (_, desired) = serving(&format!("r{i}"), IdlePolicy::Stop);
        fleet.set_desired(&format!("uid-r{i}"), desired);
    }
    fleet.adoption_done();
    let run = tokio::spawn(fleet.clone().run());
    tokio::time::sleep(Duration::from_secs(60)).await;
    run.abort();
    let lists = runtime.lists();
    // One list a second (plus the one at once), not one per revision.
    assert!((60..=62).contains(&lists), "{lists} lists in a minute");
    assert_eq!(runtime.calls(), []);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_revisions_routing_entry_stays_forgotten_once_its_replicas_are_gone() {
    let runtime = Arc::new(FakeRuntime::default());
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
    let (key, desired) = serving("a", IdlePolicy::Stop);
    fleet.set_desired("uid-a", desired);
    fleet.adoption_done();
    let run = tokio::spawn(fleet.clone().run());
    fleet.scale(&key, 1);
    eventually("one ready", || fleet.observed("uid-a").ready == 1).await;
    // As the controller does when the revision is deleted.
    fleet.retain(&[]);
    table.forget_revision(&key);
    eventually("the revision forgotten", || {
        fleet.lock().revisions.is_empty()
    })
    .await;
    assert!(runtime.ids().is_empty(), "{:?}", runtime.calls());
    assert!(
        table.known_revision(&key).is_none(),
        "the table has an entry for the deleted revision again"
    );
    assert!(table.revisions().is_empty());
    run.abort();
}
