//! Route → traffic targets resolved to revisions (splits, tags, the latest ready
//! revision, gradual rollouts, canaries), and the gateway's routing table.

use paas_api::serving::CanaryPhase;
use paas_api::RevisionKey;

use super::*;

/// Service `hello` (with `annotations` and `traffic`, YAML lines indented for
/// `metadata:` and `spec:`) at template `env`, settled, its newest revision ready.
async fn deploy(f: &Fixture, env: &str, annotations: &str, traffic: &str) -> String {
    let mut yaml = service_yaml("hello", env);
    if !annotations.is_empty() {
        yaml = yaml.replace(
            "  name: hello\n",
            &format!("  name: hello\n  annotations:\n{annotations}"),
        );
    }
    yaml.push_str(traffic);
    f.apply(&yaml).await;
    f.settle().await;
    let cfg: Configuration = f.get("hello").await;
    let newest = cfg.status.latest_created_revision_name.unwrap();
    f.revision_ready(&newest).await;
    newest
}

/// The route's resolved traffic: (tag, revision, percent).
async fn traffic(f: &Fixture) -> Vec<(Option<String>, String, u32)> {
    let route: Route = f.get("hello").await;
    route
        .status
        .traffic
        .iter()
        .map(|t| {
            (
                t.tag.clone(),
                t.revision_name.clone().unwrap_or_default(),
                t.percent.unwrap_or(0),
            )
        })
        .collect()
}

fn untagged(revision: &str, percent: u32) -> (Option<String>, String, u32) {
    (None, revision.to_owned(), percent)
}

/// What the gateway does with `host`: the revisions it picks from, with weights, or
/// why it cannot serve.
fn gateway(f: &Fixture, host: &str) -> Result<Vec<(String, u32)>, String> {
    let route = f
        .ctx
        .table
        .route(host)
        .unwrap_or_else(|| panic!("{host} is not in the gateway's table"));
    match &route.unavailable {
        Some(why) => Err(why.clone()),
        None => Ok(route
            .targets
            .iter()
            .map(|w| (w.revision.key.name.clone(), w.percent))
            .collect()),
    }
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|(r, p)| ((*r).to_owned(), *p)).collect()
}

#[tokio::test]
async fn the_latest_ready_revision_takes_all_traffic_and_is_published() {
    let f = Fixture::new();
    deploy(&f, "1", "", "").await;
    deploy(&f, "2", "", "").await;
    assert_eq!(f.reconcile::<Configuration>("hello").await, Action::Done);
    assert_eq!(f.reconcile::<Route>("hello").await, Action::Done);
    let route: Route = f.get("hello").await;
    assert_eq!(route.status.observed_generation, route.metadata.generation);
    assert_eq!(
        route.status.url.as_deref(),
        Some("http://hello.default.localhost:8080")
    );
    assert_eq!(traffic(&f).await, [untagged("hello-00002", 100)]);
    assert_eq!(route.status.traffic[0].latest_revision, Some(true));
    assert!(route.status.conditions.is_true("AllTrafficAssigned"));
    assert!(route.status.conditions.is_true("Ready"));
    assert_eq!(
        route.status.rollout, None,
        "no rollout-duration, no rollout"
    );
    assert_eq!(
        gateway(&f, "hello.default.localhost"),
        Ok(pairs(&[("hello-00002", 100)]))
    );
}

#[tokio::test]
async fn a_route_without_a_ready_revision_waits_and_the_gateway_says_why() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.settle().await;
    let route: Route = f.get("hello").await;
    for c in ["AllTrafficAssigned", "Ready"] {
        let (status, reason, message) = condition(&route.status.conditions, c);
        assert_eq!(status, ConditionStatus::Unknown, "{c}");
        assert_eq!(reason, "RevisionMissing", "{c}");
        assert_eq!(
            message, "configuration hello has no ready revision yet",
            "{c}"
        );
    }
    assert!(route.status.traffic.is_empty());
    // A 503 saying why, not a 404.
    assert_eq!(
        gateway(&f, "hello.default.localhost"),
        Err("configuration hello has no ready revision yet; \
             revision hello-00001: waiting for a replica to pass readiness"
            .to_owned())
    );
}

#[tokio::test]
async fn percents_split_traffic_and_tags_get_hosts_of_their_own() {
    let f = Fixture::new();
    deploy(&f, "1", "", "").await;
    deploy(
        &f,
        "2",
        "",
        "  traffic:
    - revisionName: hello-00001
      tag: stable
      percent: 70
    - latestRevision: true
      percent: 30
    - revisionName: hello-00002
      tag: candidate
      percent: 0
",
    )
    .await;
    f.settle().await;
    assert_eq!(
        traffic(&f).await,
        [
            (Some("stable".into()), "hello-00001".into(), 70),
            untagged("hello-00002", 30),
            (Some("candidate".into()), "hello-00002".into(), 0),
        ]
    );
    let route: Route = f.get("hello").await;
    let urls: Vec<Option<&str>> = route
        .status
        .traffic
        .iter()
        .map(|t| t.url.as_deref())
        .collect();
    assert_eq!(
        urls,
        [
            Some("http://stable-hello.default.localhost:8080"),
            None,
            Some("http://candidate-hello.default.localhost:8080"),
        ]
    );
    assert_eq!(
        route
            .status
            .traffic
            .iter()
            .map(|t| t.latest_revision)
            .collect::<Vec<_>>(),
        [Some(false), Some(true), Some(false)]
    );
    assert_eq!(
        gateway(&f, "hello.default.localhost"),
        Ok(pairs(&[("hello-00001", 70), ("hello-00002", 30)]))
    );
    assert_eq!(
        gateway(&f, "stable-hello.default.localhost"),
        Ok(pairs(&[("hello-00001", 100)]))
    );
    assert_eq!(
        gateway(&f, "candidate-hello.default.localhost"),
        Ok(pairs(&[("hello-00002", 100)]))
    );
    // Both revisions carry traffic: the service says so too.
    let svc: Service = f.get("hello").await;
    assert_eq!(svc.status.traffic, route.status.traffic);
}

#[tokio::test]
async fn a_missing_revision_fails_the_route_which_keeps_serving_what_it_had() {
    let f = Fixture::new();
    deploy(&f, "1", "", "").await;
    f.settle().await;
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);
    let mut yaml = service_yaml("hello", "1");
    yaml.push_str(
        "  traffic:
    - revisionName: hello-00009
      percent: 100
",
    );
    f.apply(&yaml).await;
    f.settle().await;
    let route: Route = f.get("hello").await;
    let (status, reason, message) = condition(&route.status.conditions, "Ready");
    assert_eq!(status, ConditionStatus::False);
    assert_eq!(reason, "RevisionMissing");
    assert_eq!(
        message,
        "revision \"hello-00009\" referenced in traffic not found"
    );
    assert_eq!(
        condition(&route.status.conditions, "AllTrafficAssigned").0,
        ConditionStatus::False
    );
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);
    assert_eq!(
        gateway(&f, "hello.default.localhost"),
        Ok(pairs(&[("hello-00001", 100)]))
    );
    let svc: Service = f.get("hello").await;
    assert_eq!(
        condition(&svc.status.conditions, "Ready").1,
        "RevisionMissing"
    );
}

#[tokio::test]
async fn a_gradual_rollout_moves_one_percent_then_equal_steps_on_the_clock() {
    let f = Fixture::new();
    let annotations = "    serving.knative.dev/rollout-duration: 10s\n";
    deploy(&f, "1", annotations, "").await;
    f.settle().await;
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);
    let route: Route = f.get("hello").await;
    assert!(route.status.rollout.is_some(), "a rollout is tracked");

    deploy(&f, "2", annotations, "").await;
    f.reconcile::<Configuration>("hello").await;
    // 1% at once, then 99% in 9 steps of 11% a second (the first second counts).
    let step = Action::RequeueAfter(Duration::from_secs(1));
    assert_eq!(f.reconcile::<Route>("hello").await, step);
    assert_eq!(
        traffic(&f).await,
        [untagged("hello-00002", 1), untagged("hello-00001", 99)]
    );
    assert_eq!(
        gateway(&f, "hello.default.localhost"),
        Ok(pairs(&[("hello-00002", 1), ("hello-00001", 99)]))
    );
    // Not yet due: nothing moves.
    f.at(0);
    assert_eq!(f.reconcile::<Route>("hello").await, step);
    assert_eq!(
        traffic(&f).await,
        [untagged("hello-00002", 1), untagged("hello-00001", 99)]
    );
    let mut newest = Vec::new();
    for t in 1..=8 {
        f.at(t);
        assert_eq!(f.reconcile::<Route>("hello").await, step, "at {t} s");
        newest.push(traffic(&f).await[0].2);
    }
    assert_eq!(newest, [12, 23, 34, 45, 56, 67, 78, 89]);
    f.at(9);
    assert_eq!(f.reconcile::<Route>("hello").await, Action::Done);
    assert_eq!(traffic(&f).await, [untagged("hello-00002", 100)]);
}

#[tokio::test]
async fn the_old_revision_of_a_rollout_keeps_running_until_it_has_no_traffic() {
    let f = Fixture::new();
    let annotations = "    serving.knative.dev/rollout-duration: 10s\n";
    deploy(&f, "1", annotations, "").await;
    f.settle().await;
    deploy(&f, "2", annotations, "").await;
    f.settle().await;
    let desired = |name: &str| {
        let key = RevisionKey {
            namespace: "default".into(),
            name: name.into(),
        };
        f.ctx.autoscaler.view(&key).map(|v| v.desired)
    };
    // hello-00001 carries 99%: still wanted, at its initial scale.
    assert_eq!(desired("hello-00001"), Some(1));
    // One step a second, as the route's requeues come.
    for t in 1..=9 {
        f.at(t);
        f.settle().await;
    }
    assert_eq!(traffic(&f).await, [untagged("hello-00002", 100)]);
    assert_eq!(desired("hello-00001"), Some(0));
    assert_eq!(desired("hello-00002"), Some(1));
}

const CANARY: &str = "    canary.paas.dev/steps: \"10,50\"
    canary.paas.dev/step-duration: 60s
    canary.paas.dev/min-requests: \"5\"
    canary.paas.dev/success-rate: \"99\"
";

/// Answers the gateway counted for a revision.
fn answered(f: &Fixture, revision: &str, statuses: &[u16]) {
    let key = RevisionKey {
        namespace: "default".into(),
        name: revision.into(),
    };
    let outcomes = &f.ctx.table.revision(&key).outcomes;
    for s in statuses {
        outcomes.record(*s, Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_canary_that_answers_well_is_promoted_step_by_step() {
    let f = Fixture::new();
    deploy(&f, "1", CANARY, "").await;
    f.settle().await;
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);

    deploy(&f, "2", CANARY, "").await;
    f.reconcile::<Configuration>("hello").await;
    assert_eq!(
        f.reconcile::<Route>("hello").await,
        Action::RequeueAfter(Duration::from_secs(60))
    );
    assert_eq!(
        traffic(&f).await,
        [untagged("hello-00002", 10), untagged("hello-00001", 90)]
    );
    let route: Route = f.get("hello").await;
    let canary = route.status.canary.clone().unwrap();
    assert_eq!(
        (canary.stable.as_str(), canary.candidate.as_str()),
        ("hello-00001", "hello-00002")
    );
    assert_eq!(canary.phase, CanaryPhase::Progressing);
    let (status, reason, message) = condition(&route.status.conditions, "Canary");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::Unknown,
            "Progressing",
            "step 1 of 2: 10% to hello-00002"
        )
    );
    // The service tells of the canary, and stays Ready: the stable revision serves.
    f.reconcile::<Service>("hello").await;
    let svc: Service = f.get("hello").await;
    assert_eq!(condition(&svc.status.conditions, "Canary").1, "Progressing");
    assert!(svc.status.conditions.is_true("Ready"));

    answered(&f, "hello-00002", &[200; 5]);
    f.at(60);
    f.reconcile::<Route>("hello").await;
    assert_eq!(
        traffic(&f).await,
        [untagged("hello-00002", 50), untagged("hello-00001", 50)]
    );
    answered(&f, "hello-00002", &[200; 5]);
    f.at(120);
    assert_eq!(f.reconcile::<Route>("hello").await, Action::Done);
    assert_eq!(traffic(&f).await, [untagged("hello-00002", 100)]);
    let route: Route = f.get("hello").await;
    assert_eq!(route.status.canary.unwrap().phase, CanaryPhase::Succeeded);
    assert_eq!(condition(&route.status.conditions, "Canary").1, "Promoted");
}

#[tokio::test]
async fn a_failing_canary_sends_everything_back_and_tells_the_default_broker() {
    let f = Fixture::new();
    f.apply(
        "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
",
    )
    .await;
    f.reconcile::<Broker>("default").await;
    deploy(&f, "1", CANARY, "").await;
    f.settle().await;
    deploy(&f, "2", CANARY, "").await;
    f.reconcile::<Configuration>("hello").await;
    f.reconcile::<Route>("hello").await;
    assert_eq!(
        traffic(&f).await,
        [untagged("hello-00002", 10), untagged("hello-00001", 90)]
    );

    // Too few answers to judge: the step is held and looked at again.
    answered(&f, "hello-00002", &[200; 3]);
    f.at(60);
    assert_eq!(
        f.reconcile::<Route>("hello").await,
        Action::RequeueAfter(Duration::from_secs(15))
    );
    assert_eq!(traffic(&f).await[0], untagged("hello-00002", 10));

    answered(&f, "hello-00002", &[500, 500]);
    f.at(75);
    assert_eq!(f.reconcile::<Route>("hello").await, Action::Done);
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);
    let route: Route = f.get("hello").await;
    assert_eq!(route.status.canary.unwrap().phase, CanaryPhase::Failed);
    let (status, reason, message) = condition(&route.status.conditions, "Canary");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "CanaryFailed")
    );
    assert!(
        message.starts_with("hello-00002 failed at step 1 (10%): success rate 60.0% < 99%"),
        "{message}"
    );
    assert!(
        message.ends_with("all traffic is back on hello-00001"),
        "{message}"
    );

    let events = f
        .log
        .records(&paas_eventing::broker_topic("default", "default"));
    assert_eq!(events.len(), 1, "one event for the verdict");
    let header = |name: &str| {
        events[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("ce_type").as_deref(), Some("dev.paas.canary.failed"));
    assert_eq!(header("ce_subject").as_deref(), Some("hello"));

    // The failed candidate stays out until a new one comes.
    f.at(200);
    f.reconcile::<Route>("hello").await;
    assert_eq!(traffic(&f).await, [untagged("hello-00001", 100)]);
    assert_eq!(
        f.log
            .records(&paas_eventing::broker_topic("default", "default"))
            .len(),
        1
    );
}
