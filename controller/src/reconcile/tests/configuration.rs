//! Configuration → an immutable Revision per generation of its template; its latest
//! created and latest ready revisions.

use paas_api::keys;

use super::*;

/// A configuration as its service makes it.
async fn configured(f: &Fixture, env: &str) {
    f.apply(&service_yaml("hello", env)).await;
    f.reconcile::<Service>("hello").await;
}

#[tokio::test]
async fn a_configuration_makes_its_first_revision_labelled_and_owned() {
    let f = Fixture::new();
    let yaml = service_yaml("hello", "1").replace(
        "  template:\n",
        "  template:
    metadata:
      labels:
        app: web
      annotations:
        autoscaling.knative.dev/max-scale: \"3\"
",
    );
    f.apply(&yaml).await;
    f.reconcile::<Service>("hello").await;
    assert_eq!(f.reconcile::<Configuration>("hello").await, Action::Done);

    let cfg: Configuration = f.get("hello").await;
    let rev: Revision = f.get("hello-00001").await;
    assert_eq!(rev.spec, cfg.spec.template.spec);
    let labels = &rev.metadata.labels;
    assert_eq!(labels[keys::SERVICE_LABEL], "hello");
    assert_eq!(labels[keys::CONFIGURATION_LABEL], "hello");
    assert_eq!(labels[keys::CONFIGURATION_GENERATION_LABEL], "1");
    assert_eq!(labels["app"], "web", "the template's labels are kept");
    assert_eq!(rev.metadata.annotations[keys::MAX_SCALE], "3");
    let owner = &rev.metadata.owner_references[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Configuration", "hello")
    );
    assert_eq!(Some(&owner.uid), cfg.metadata.uid.as_ref());

    assert_eq!(cfg.status.observed_generation, Some(1));
    assert_eq!(
        cfg.status.latest_created_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(cfg.status.latest_ready_revision_name, None);
    let (status, reason, message) = condition(&cfg.status.conditions, "Ready");
    assert_eq!(status, ConditionStatus::Unknown);
    assert_eq!(reason, "Deploying");
    assert_eq!(message, "waiting for revision hello-00001 to be ready");
}

#[tokio::test]
async fn the_same_generation_makes_no_second_revision_and_writes_nothing() {
    let f = Fixture::new();
    configured(&f, "1").await;
    f.reconcile::<Configuration>("hello").await;
    let mut watch = f.ctx.store.watch();
    f.reconcile::<Configuration>("hello").await;
    assert!(watch.try_recv().is_err(), "a write without a change");
    assert_eq!(f.names::<Revision>().await, ["hello-00001"]);
}

#[tokio::test]
async fn a_new_template_makes_the_next_revision_and_keeps_the_last_ready_one() {
    let f = Fixture::new();
    configured(&f, "1").await;
    f.reconcile::<Configuration>("hello").await;
    f.revision_ready("hello-00001").await;
    f.reconcile::<Configuration>("hello").await;

    configured(&f, "2").await;
    f.reconcile::<Configuration>("hello").await;
    assert_eq!(f.names::<Revision>().await, ["hello-00001", "hello-00002"]);
    let second: Revision = f.get("hello-00002").await;
    assert_eq!(
        second.metadata.labels[keys::CONFIGURATION_GENERATION_LABEL],
        "2"
    );
    let cfg: Configuration = f.get("hello").await;
    assert_eq!(cfg.status.observed_generation, Some(2));
    assert_eq!(
        cfg.status.latest_created_revision_name.as_deref(),
        Some("hello-00002")
    );
    // Traffic stays on the ready one until the new one is ready.
    assert_eq!(
        cfg.status.latest_ready_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(
        condition(&cfg.status.conditions, "Ready").1,
        "Deploying",
        "the configuration speaks of its newest revision"
    );

    f.revision_ready("hello-00002").await;
    f.reconcile::<Configuration>("hello").await;
    let cfg: Configuration = f.get("hello").await;
    assert_eq!(
        cfg.status.latest_ready_revision_name.as_deref(),
        Some("hello-00002")
    );
    assert!(cfg.status.conditions.is_true("Ready"));
}

#[tokio::test]
async fn the_latest_ready_revision_never_moves_back_to_an_older_one() {
    let f = Fixture::new();
    configured(&f, "1").await;
    f.reconcile::<Configuration>("hello").await;
    configured(&f, "2").await;
    f.reconcile::<Configuration>("hello").await;
    f.revision_ready("hello-00002").await;
    f.reconcile::<Configuration>("hello").await;
    // The older revision gets ready later (a slow start): it is not the latest.
    f.revision_ready("hello-00001").await;
    f.reconcile::<Configuration>("hello").await;
    let cfg: Configuration = f.get("hello").await;
    assert_eq!(
        cfg.status.latest_ready_revision_name.as_deref(),
        Some("hello-00002")
    );
}

#[tokio::test]
async fn a_failed_newest_revision_fails_the_configuration_with_its_message() {
    let f = Fixture::new();
    configured(&f, "1").await;
    f.reconcile::<Configuration>("hello").await;
    f.revision_is(
        "hello-00001",
        ConditionStatus::False,
        Some("ExitCode"),
        Some("exited with code 3"),
    )
    .await;
    f.reconcile::<Configuration>("hello").await;
    let cfg: Configuration = f.get("hello").await;
    let (status, reason, message) = condition(&cfg.status.conditions, "Ready");
    assert_eq!(status, ConditionStatus::False);
    assert_eq!(reason, "RevisionFailed");
    assert_eq!(
        message,
        "Revision \"hello-00001\" failed with message: exited with code 3"
    );
}

#[tokio::test]
async fn a_deleted_latest_ready_revision_is_forgotten() {
    let f = Fixture::new();
    configured(&f, "1").await;
    f.reconcile::<Configuration>("hello").await;
    f.revision_ready("hello-00001").await;
    configured(&f, "2").await;
    f.reconcile::<Configuration>("hello").await;
    let cfg: Configuration = f.get("hello").await;
    assert_eq!(
        cfg.status.latest_ready_revision_name.as_deref(),
        Some("hello-00001")
    );
    f.ctx
        .store
        .delete::<Revision>("default", "hello-00001")
        .await
        .unwrap();
    f.reconcile::<Configuration>("hello").await;
    let cfg: Configuration = f.get("hello").await;
    assert_eq!(cfg.status.latest_ready_revision_name, None);
    // Numbers are not reused: the next one counts from the highest left.
    configured(&f, "3").await;
    f.reconcile::<Configuration>("hello").await;
    assert_eq!(f.names::<Revision>().await, ["hello-00002", "hello-00003"]);
}
