//! Service → its Configuration and Route, and its status rolled up from both.

use paas_api::keys;
use paas_api::serving::TrafficTarget;

use super::*;

#[tokio::test]
async fn a_service_makes_its_configuration_and_route_labelled_and_owned() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    assert_eq!(f.reconcile::<Service>("hello").await, Action::Done);

    let svc: Service = f.get("hello").await;
    let cfg: Configuration = f.get("hello").await;
    let route: Route = f.get("hello").await;
    assert_eq!(cfg.spec.template, svc.spec.template);
    for meta in [&cfg.metadata, &route.metadata] {
        assert_eq!(meta.labels[keys::SERVICE_LABEL], "hello");
        assert_eq!(meta.owner_references.len(), 1);
        let owner = &meta.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Service", "hello")
        );
        assert_eq!(owner.api_version, "serving.knative.dev/v1");
        assert_eq!(Some(&owner.uid), svc.metadata.uid.as_ref());
        assert_eq!(owner.controller, Some(true));
    }
    // Knative's default: everything to the latest ready revision.
    assert_eq!(
        route.spec.traffic,
        [TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..TrafficTarget::default()
        }]
    );
}

#[tokio::test]
async fn a_service_is_outdated_until_its_children_have_been_reconciled() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.reconcile::<Service>("hello").await;
    let svc: Service = f.get("hello").await;
    assert_eq!(svc.status.observed_generation, Some(1));
    for c in ["ConfigurationsReady", "RoutesReady", "Ready"] {
        let (status, reason, message) = condition(&svc.status.conditions, c);
        assert_eq!(status, ConditionStatus::Unknown, "{c}");
        assert_eq!(reason, "Outdated", "{c}");
        assert_eq!(message, "waiting for the controller", "{c}");
    }
}

#[tokio::test]
async fn a_service_whose_revision_is_ready_is_ready_with_its_url_and_traffic() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.settle().await;
    let svc: Service = f.get("hello").await;
    let (status, reason, message) = condition(&svc.status.conditions, "Ready");
    assert_eq!(status, ConditionStatus::Unknown);
    // The configuration's word: its first revision is not ready yet.
    assert_eq!(reason, "Deploying");
    assert_eq!(message, "waiting for revision hello-00001 to be ready");

    f.revision_ready("hello-00001").await;
    f.settle().await;
    let svc: Service = f.get("hello").await;
    assert!(svc.status.conditions.is_true("Ready"), "{:?}", svc.status);
    assert!(svc.status.conditions.is_true("ConfigurationsReady"));
    assert!(svc.status.conditions.is_true("RoutesReady"));
    assert_eq!(
        svc.status.url.as_deref(),
        Some("http://hello.default.localhost:8080")
    );
    assert_eq!(
        svc.status.address.as_ref().map(|a| a.url.as_str()),
        Some("http://hello.default.localhost:8080")
    );
    assert_eq!(
        svc.status.latest_created_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(
        svc.status.latest_ready_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(svc.status.traffic.len(), 1);
    assert_eq!(
        svc.status.traffic[0].revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(svc.status.traffic[0].percent, Some(100));
    assert!(f.ctx.table.route("hello.default.localhost").is_some());
}

#[tokio::test]
async fn a_revision_the_runtime_refuses_makes_the_service_not_ready_saying_why() {
    let f = Fixture::new();
    // The fake runtime, as the process runtime, runs commands, not images.
    let yaml = service_yaml("hello", "1").replace("- command: [server]", "- image: hello:1");
    f.apply(&yaml).await;
    f.settle().await;
    let svc: Service = f.get("hello").await;
    let (status, reason, message) = condition(&svc.status.conditions, "Ready");
    assert_eq!(status, ConditionStatus::False);
    assert_eq!(reason, "RevisionFailed");
    assert_eq!(
        message,
        "Revision \"hello-00001\" failed with message: the fake runtime needs a command"
    );
    assert_eq!(
        condition(&svc.status.conditions, "ConfigurationsReady").0,
        ConditionStatus::False
    );
    // No revision is ready: the route waits for one.
    let (status, reason, _) = condition(&svc.status.conditions, "RoutesReady");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::Unknown, "RevisionMissing")
    );
}

#[tokio::test]
async fn a_changed_service_changes_its_configuration_and_route_in_place() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.reconcile::<Service>("hello").await;
    let first: Configuration = f.get("hello").await;

    let mut yaml = service_yaml("hello", "2");
    yaml.push_str(
        "  traffic:
    - latestRevision: true
      percent: 100
    - revisionName: hello-00001
      tag: old
      percent: 0
",
    );
    f.apply(&yaml).await;
    f.reconcile::<Service>("hello").await;
    let svc: Service = f.get("hello").await;
    let cfg: Configuration = f.get("hello").await;
    let route: Route = f.get("hello").await;
    assert_eq!(svc.metadata.generation, Some(2));
    assert_eq!(svc.status.observed_generation, Some(2));
    assert_eq!(
        cfg.metadata.uid, first.metadata.uid,
        "updated, not replaced"
    );
    assert_eq!(cfg.metadata.generation, Some(2));
    assert_eq!(cfg.spec.template, svc.spec.template);
    assert_eq!(route.spec.traffic, svc.spec.traffic);
    assert_eq!(route.spec.traffic[1].tag.as_deref(), Some("old"));
}

#[tokio::test]
async fn a_services_rollout_and_canary_annotations_and_no_others_go_to_its_route() {
    let f = Fixture::new();
    let yaml = service_yaml("hello", "1").replace(
        "  name: hello\n",
        "  name: hello
  annotations:
    serving.knative.dev/rollout-duration: 60s
    canary.paas.dev/steps: \"10,50\"
    team: web
",
    );
    f.apply(&yaml).await;
    f.reconcile::<Service>("hello").await;
    let route: Route = f.get("hello").await;
    let keys: Vec<&str> = route
        .metadata
        .annotations
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "canary.paas.dev/steps",
            "serving.knative.dev/rollout-duration"
        ]
    );

    // Taking the annotations off the service takes them off the route.
    f.apply(&service_yaml("hello", "1")).await;
    f.reconcile::<Service>("hello").await;
    let route: Route = f.get("hello").await;
    assert!(
        route.metadata.annotations.is_empty(),
        "{:?}",
        route.metadata
    );
}

#[tokio::test]
async fn reconciling_a_settled_service_writes_nothing() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.settle().await;
    f.revision_ready("hello-00001").await;
    f.settle().await;
    let mut watch = f.ctx.store.watch();
    f.reconcile::<Service>("hello").await;
    f.reconcile::<Configuration>("hello").await;
    f.reconcile::<Route>("hello").await;
    f.reconcile::<Revision>("hello-00001").await;
    assert!(watch.try_recv().is_err(), "a write without a change");
}
