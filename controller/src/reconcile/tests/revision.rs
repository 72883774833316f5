//! Revision → what the fleet runs and the autoscaler scales, and its status from
//! what runs.

use paas_api::keys;
use paas_api::RevisionKey;

use super::*;
use crate::fake_runtime::Call;

fn key(name: &str) -> RevisionKey {
    RevisionKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

/// Service `hello`'s first revision, made by its configuration, not reconciled yet.
async fn first_revision(f: &Fixture, yaml: &str) -> Revision {
    f.apply(yaml).await;
    f.reconcile::<Service>("hello").await;
    f.reconcile::<Configuration>("hello").await;
    f.get("hello-00001").await
}

#[tokio::test]
async fn the_latest_created_revision_is_scaled_to_its_initial_scale_and_prepared() {
    let f = Fixture::new();
    let rev = first_revision(&f, &service_yaml("hello", "1")).await;
    assert_eq!(f.reconcile::<Revision>("hello-00001").await, Action::Done);
    let view = f.ctx.autoscaler.view(&key("hello-00001")).unwrap();
    assert_eq!(view.desired, 1, "Knative's initial scale");
    let stored: Revision = f.get("hello-00001").await;
    assert_eq!(stored.status.observed_generation, rev.metadata.generation);
    assert_eq!(stored.status.desired_replicas, Some(1));
    assert_eq!(stored.status.actual_replicas, Some(0));
    assert_eq!(stored.status.ready_replicas, Some(0));
    let (status, reason, message) = condition(&stored.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::Unknown,
            "Deploying",
            "waiting for a replica to pass readiness"
        )
    );
    // The fleet was told what to run: it prepares a replica ahead of the first start.
    eventually("a replica prepared", || !f.runtime.prepared().is_empty()).await;
    assert_eq!(f.runtime.prepared(), ["hello-00001"]);
    assert_eq!(f.runtime.calls(), [], "the fleet loop is not running");
}

#[tokio::test(start_paused = true)]
async fn a_revision_is_ready_once_the_fleet_has_a_ready_replica_of_it() {
    let f = Fixture::new();
    first_revision(&f, &service_yaml("hello", "1")).await;
    f.ctx.fleet.adoption_done();
    let fleet = tokio::spawn(f.ctx.fleet.clone().run());
    let autoscaler = tokio::spawn(f.ctx.autoscaler.clone().run());
    f.reconcile::<Revision>("hello-00001").await;
    let rev: Revision = f.get("hello-00001").await;
    let uid = rev.metadata.uid.clone().unwrap();
    eventually("a ready replica", || f.ctx.fleet.observed(&uid).ready == 1).await;
    f.reconcile::<Revision>("hello-00001").await;
    let rev: Revision = f.get("hello-00001").await;
    for c in ["ResourcesAvailable", "ContainerHealthy", "Ready"] {
        assert!(rev.status.conditions.is_true(c), "{c}: {:?}", rev.status);
    }
    assert_eq!(rev.status.actual_replicas, Some(1));
    assert_eq!(rev.status.ready_replicas, Some(1));
    assert_eq!(f.runtime.calls(), [Call::Start("hello-00001-1".into())]);
    // The gateway can send requests to it.
    assert_eq!(f.ctx.table.revision(&key("hello-00001")).ready().len(), 1);
    fleet.abort();
    autoscaler.abort();
}

#[tokio::test]
async fn a_revision_neither_latest_nor_routed_runs_nothing() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.settle().await;
    f.revision_ready("hello-00001").await;
    f.apply(&service_yaml("hello", "2")).await;
    f.settle().await;
    f.revision_ready("hello-00002").await;
    f.settle().await;
    assert_eq!(
        f.ctx.autoscaler.view(&key("hello-00001")).unwrap().desired,
        0
    );
    assert_eq!(
        f.ctx.autoscaler.view(&key("hello-00002")).unwrap().desired,
        1
    );
    let old: Revision = f.get("hello-00001").await;
    assert_eq!(old.status.desired_replicas, Some(0));
    // A revision without traffic that was ready stays Ready, as in Knative.
    assert!(old.status.conditions.is_true("Ready"));
}

#[tokio::test]
async fn a_ready_revision_resumes_at_the_replicas_it_had_after_a_restart() {
    let f = Fixture::new();
    let mut rev = first_revision(&f, &service_yaml("hello", "1")).await;
    rev.status.conditions.set_true("Ready", f.ctx.now());
    rev.status.actual_replicas = Some(3);
    f.ctx.store.update_status(&rev).await.unwrap();
    f.reconcile::<Revision>("hello-00001").await;
    // Not its initial scale of 1: the 3 replicas adopted are kept.
    assert_eq!(
        f.ctx.autoscaler.view(&key("hello-00001")).unwrap().desired,
        3
    );
}

#[tokio::test]
async fn a_revision_the_runtime_cannot_run_is_refused_as_unsupported() {
    let f = Fixture::new();
    let yaml = service_yaml("hello", "1").replace("- command: [server]", "- image: hello:1");
    first_revision(&f, &yaml).await;
    f.reconcile::<Revision>("hello-00001").await;
    let rev: Revision = f.get("hello-00001").await;
    let (status, reason, message) = condition(&rev.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "Unsupported",
            "the fake runtime needs a command"
        )
    );
    assert!(f.ctx.autoscaler.view(&key("hello-00001")).is_none());
}

#[tokio::test]
async fn a_revision_without_a_container_is_not_ready() {
    let f = Fixture::new();
    let mut rev = Revision {
        metadata: paas_api::ObjectMeta::named("default", "bare-00001"),
        ..Revision::default()
    };
    rev.metadata
        .labels
        .insert(keys::CONFIGURATION_LABEL.into(), "bare".into());
    f.ctx.store.create(&rev).await.unwrap();
    f.reconcile::<Revision>("bare-00001").await;
    let rev: Revision = f.get("bare-00001").await;
    let (status, reason, message) = condition(&rev.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "ContainerMissing",
            "the revision has no container"
        )
    );
}

#[tokio::test]
async fn a_bad_annotation_on_a_stored_revision_is_reported_not_acted_on() {
    // paas apply refuses these; a revision stored before that check was there, or by
    // another client of the store, still gets a reason.
    // The messages are api's (which names the annotation and the value).
    for (annotation, value) in [(keys::IDLE, "sleep"), (keys::MIN_SCALE, "many")] {
        let f = Fixture::new();
        let mut rev = first_revision(&f, &service_yaml("hello", "1")).await;
        rev.metadata
            .annotations
            .insert(annotation.into(), value.into());
        f.ctx.store.update(&rev).await.unwrap();
        f.reconcile::<Revision>("hello-00001").await;
        let rev: Revision = f.get("hello-00001").await;
        let (status, reason, m) = condition(&rev.status.conditions, "Ready");
        assert_eq!(
            (status, reason.as_str()),
            (ConditionStatus::False, "InvalidAnnotation")
        );
        assert!(m.contains(annotation) && m.contains(value), "{m}");
        assert!(f.ctx.autoscaler.view(&key("hello-00001")).is_none());
    }
}
