//! Revision garbage collection, run by the route once its traffic resolves: of a
//! configuration's revisions without traffic, the newest `keep_revisions` stay.

use super::*;

/// Revisions hello-00001 to hello-0000{n}, each of a new template, each ready.
async fn revisions(f: &Fixture, n: u32) {
    for i in 1..=n {
        f.apply(&service_yaml("hello", &i.to_string())).await;
        f.settle().await;
        f.revision_ready(&format!("hello-{i:05}")).await;
    }
    f.settle().await;
}

#[tokio::test]
async fn the_newest_revisions_without_traffic_are_kept_and_older_ones_deleted() {
    let f = Fixture::keeping(2);
    revisions(&f, 6).await;
    // 00006 serves; 00005 and 00004 are the two kept.
    assert_eq!(
        f.names::<Revision>().await,
        ["hello-00004", "hello-00005", "hello-00006"]
    );
    let route: Route = f.get("hello").await;
    assert_eq!(route.status.traffic.len(), 1);
}

#[tokio::test]
async fn revisions_with_traffic_or_a_tag_are_never_collected() {
    let mut f = Fixture::new();
    revisions(&f, 6).await;
    assert_eq!(f.names::<Revision>().await.len(), 6);
    f.ctx.keep_revisions = 1;
    let mut yaml = service_yaml("hello", "6");
    yaml.push_str(
        "  traffic:
    - latestRevision: true
      percent: 90
    - revisionName: hello-00001
      percent: 10
    - revisionName: hello-00002
      tag: old
      percent: 0
",
    );
    f.apply(&yaml).await;
    f.settle().await;
    // 00006 is the latest, 00001 has 10%, 00002 a tag; 00005 is the one kept.
    assert_eq!(
        f.names::<Revision>().await,
        ["hello-00001", "hello-00002", "hello-00005", "hello-00006"]
    );
}

#[tokio::test]
async fn a_revision_annotated_no_gc_is_kept() {
    let f = Fixture::keeping(0);
    revisions(&f, 2).await;
    assert_eq!(f.names::<Revision>().await, ["hello-00002"]);

    let f = Fixture::keeping(0);
    f.apply(&service_yaml("hello", "1")).await;
    f.settle().await;
    let mut first: Revision = f.get("hello-00001").await;
    first
        .metadata
        .annotations
        .insert(crate::reconcile::gc::NO_GC.into(), "true".into());
    f.ctx.store.update(&first).await.unwrap();
    f.revision_ready("hello-00001").await;
    f.settle().await;
    f.apply(&service_yaml("hello", "2")).await;
    f.settle().await;
    f.revision_ready("hello-00002").await;
    f.settle().await;
    assert_eq!(f.names::<Revision>().await, ["hello-00001", "hello-00002"]);
}

#[tokio::test]
async fn nothing_is_collected_while_the_routes_traffic_does_not_resolve() {
    let mut f = Fixture::new();
    revisions(&f, 3).await;
    f.ctx.keep_revisions = 0;
    let mut yaml = service_yaml("hello", "3");
    yaml.push_str(
        "  traffic:
    - revisionName: hello-00009
      percent: 100
",
    );
    f.apply(&yaml).await;
    f.settle().await;
    let route: Route = f.get("hello").await;
    assert_eq!(
        condition(&route.status.conditions, "Ready").1,
        "RevisionMissing"
    );
    assert_eq!(
        f.names::<Revision>().await,
        ["hello-00001", "hello-00002", "hello-00003"]
    );
    // Once it resolves, what has no traffic goes.
    f.apply(&service_yaml("hello", "3")).await;
    f.settle().await;
    assert_eq!(f.names::<Revision>().await, ["hello-00003"]);
}

#[tokio::test]
async fn the_latest_created_revision_is_kept_while_it_gets_ready() {
    let f = Fixture::keeping(0);
    revisions(&f, 1).await;
    f.apply(&service_yaml("hello", "2")).await;
    f.settle().await;
    // 00002 has no traffic yet, but it is the one getting ready.
    assert_eq!(f.names::<Revision>().await, ["hello-00001", "hello-00002"]);
    f.revision_ready("hello-00002").await;
    f.settle().await;
    assert_eq!(f.names::<Revision>().await, ["hello-00002"]);
}
