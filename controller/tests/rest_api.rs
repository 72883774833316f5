//! The REST API's answers to requests it must refuse, as a client sees them: the real
//! server on 127.0.0.1 over a store, an event log and a process runtime in a temporary
//! directory (no controller runs: these are the API's own answers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use paas_autoscaler::{Autoscaler, AutoscalerConfig};
use paas_controller::changed::Changed;
use paas_controller::fleet::Fleet;
use paas_controller::poke::AutoscalerPoke;
use paas_controller::reconcile::Context;
use paas_controller::rest::{self, ApiLimits, ApiState};
use paas_controller::store::{ObjectKey, SqliteStore, Store, StoreError, WatchEvent};
use paas_eventing::dispatcher::Dispatchers;
use paas_eventing::ingress::BrokerIngress;
use paas_eventing::log::{EmbeddedLog, Retention};
use paas_eventing::sources::kafka_clusters::SourceClusters;
use paas_eventing::transport::HttpTransport;
use paas_eventing::EventLog;
use paas_gateway::{Gateway, RoutingTable};
use paas_runtime::process::ProcessRuntime;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "a-test-token-of-32-characters-ok";
const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const BROKERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/brokers";
const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";

/// A running API, and the directory it keeps its state in (removed on drop).
struct Api {
    addr: std::net::SocketAddr,
    dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Api {
    start_with(|store| store, ApiLimits::default()).await
}

/// An API whose store is `wrap` of a fresh SQLite store, serving under `limits`.
async fn start_with(wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>, limits: ApiLimits) -> Api {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "paas-rest-api-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = wrap(Arc::new(SqliteStore::open(&dir.join("paas.db")).unwrap()));
    let runtime = ProcessRuntime::new(&dir).unwrap();
    let table = RoutingTable::new();
    let fleet = Fleet::new(runtime, table.clone(), Arc::new(Changed::default()));
    let autoscaler = Autoscaler::new(AutoscalerConfig::default(), fleet.clone());
    let event_log: Arc<dyn EventLog> =
        EmbeddedLog::open(&dir.join("eventlog"), Retention::default()).unwrap();
    let ctx = Arc::new(Context {
        dispatchers: Dispatchers::new(event_log.clone(), Arc::new(HttpTransport::new())),
        event_log: event_log.clone(),
        store,
        fleet,
        autoscaler: autoscaler.clone(),
        table: table.clone(),
        http_port: 8080,
        keep_revisions: 20,
        tickers: Arc::default(),
        source_clusters: Arc::new(SourceClusters::new(None)),
        clock: chrono::Utc::now,
    });
    let state = ApiState {
        ctx,
        token: TOKEN.into(),
        gateway: Gateway::new(table, Arc::new(AutoscalerPoke(autoscaler))),
        ingress: Arc::new(BrokerIngress::new(event_log.clone())),
        channels: Arc::new(BrokerIngress::channels(event_log)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(rest::serve_with(listener, state, limits));
    Api { addr, dir, server }
}

/// One request on a connection of its own; the answer's status and JSON body.
async fn call(
    api: &Api,
    method: &str,
    path: &str,
    authorization: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let (status, _, value) = send(api, method, path, authorization, body).await;
    (status, value)
}

/// `call`, with the answer's headers.
async fn send(
    api: &Api,
    method: &str,
    path: &str,
    authorization: &str,
    body: Option<&Value>,
) -> (StatusCode, http::HeaderMap, Value) {
    let stream = TcpStream::connect(api.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

async fn authorized(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    call(api, method, path, &format!("Bearer {TOKEN}"), body).await
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"command": ["/bin/true"]}]}}},
    })
}

fn fields(status: &Value) -> Vec<&str> {
    status["details"]["causes"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default()
}

/// POST `object` to `path`: it must be refused as invalid (422); the fields named.
async fn invalid_fields(api: &Api, path: &str, object: &Value) -> (Vec<String>, Value) {
    let (status, body) = authorized(api, "POST", path, Some(object)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let named = fields(&body).into_iter().map(str::to_owned).collect();
    (named, body)
}

#[tokio::test]
async fn a_body_of_another_kind_is_refused_naming_both() {
    let api = start().await;
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello"},
    });
    let (status, body) = authorized(&api, "POST", SERVICES, Some(&deployment)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    for says in ["serving.knative.dev/v1", "Service", "apps/v1", "Deployment"] {
        assert!(message.contains(says), "{message}");
    }
    let (status, _) = authorized(&api, "GET", &format!("{SERVICES}/hello"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");

    // A Broker sent to triggers, and a Service of the wrong version to its own path.
    let broker = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b"}});
    let (status, body) = authorized(&api, "POST", TRIGGERS, Some(&broker)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("kind: Broker"),
        "{body}"
    );
    let mut old = service("hello");
    old["apiVersion"] = "serving.knative.dev/v1alpha1".into();
    let (status, body) = authorized(&api, "PUT", &format!("{SERVICES}/hello"), Some(&old)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Leaving apiVersion and kind out is still fine: the path says what it is.
    let mut bare = service("hello");
    bare.as_object_mut().unwrap().remove("apiVersion");
    bare.as_object_mut().unwrap().remove("kind");
    let (status, body) = authorized(&api, "POST", SERVICES, Some(&bare)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "Service");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let api = start().await;
    // A 50 MB body announced by its Content-Length is refused before it is sent.
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "POST {SERVICES} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        50_000_000
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // Only a guard: an API that waits for the body (as it once did) fails the test
    // here instead of hanging it.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the API waited for a body it should have refused")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(
        answer.contains("\"reason\":\"RequestEntityTooLarge\""),
        "{answer}"
    );
    assert!(answer.contains("over the API's limit of 4 MiB"), "{answer}");
}

#[tokio::test]
async fn annotations_over_256_kib_are_422_naming_metadata_annotations() {
    let api = start().await;
    let mut svc = service("hello");
    svc["metadata"]["annotations"] = json!({"note": "x".repeat(300 * 1024)});
    let (named, body) = invalid_fields(&api, SERVICES, &svc).await;
    assert_eq!(named, ["metadata.annotations"], "{}", body["message"]);

    let broker = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": "default", "annotations": {"note": "x".repeat(300 * 1024)}},
    });
    let (named, body) = invalid_fields(&api, BROKERS, &broker).await;
    assert_eq!(named, ["metadata.annotations"], "{}", body["message"]);
}

#[tokio::test]
async fn a_nul_byte_in_an_env_value_or_name_is_422_naming_the_field() {
    let api = start().await;
    let mut svc = service("hello");
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "GREETING", "value": "hello\u{0}world"},
        {"name": "A\u{0}B", "value": "ok"},
    ]);
    let (named, body) = invalid_fields(&api, SERVICES, &svc).await;
    assert_eq!(
        named,
        [
            "spec.template.spec.containers[0].env[0].value",
            "spec.template.spec.containers[0].env[1].name"
        ],
        "{}",
        body["message"]
    );
}

#[tokio::test]
async fn overflowing_durations_are_422_not_a_dropped_connection() {
    let api = start().await;
    let mut svc = service("hello");
    svc["metadata"]["annotations"] =
        json!({"serving.knative.dev/rollout-duration": "99999999999999999999h"});
    let (named, body) = invalid_fields(&api, SERVICES, &svc).await;
    assert_eq!(
        named,
        ["metadata.annotations.serving.knative.dev/rollout-duration"],
        "{}",
        body["message"]
    );
    let trigger = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "t"},
        "spec": {
            "broker": "default",
            "subscriber": {"uri": "http://127.0.0.1:9/"},
            "delivery": {"backoffDelay": "P99999999999999999999D"},
        },
    });
    let (named, body) = invalid_fields(&api, TRIGGERS, &trigger).await;
    assert_eq!(named, ["spec.delivery.backoffDelay"], "{}", body["message"]);
    assert!(
        body["message"].as_str().unwrap().contains("is too long"),
        "{body}"
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let api = start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, body) = call(&api, "GET", SERVICES, &format!("{scheme} {TOKEN}"), None).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }
    for authorization in [
        format!("Basic {TOKEN}"),
        "bearer wrong".to_owned(),
        TOKEN.to_owned(),
    ] {
        let (status, _) = call(&api, "GET", SERVICES, &authorization, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}");
    }
}

#[tokio::test]
async fn deliveries_of_a_missing_object_are_404() {
    let api = start().await;
    let (status, body) = authorized(&api, "GET", &format!("{BROKERS}/nope/deliveries"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("brokers default/nope not found"),
        "{body}"
    );
    let (status, _) = authorized(
        &api,
        "GET",
        "/apis/flows.knative.dev/v1/namespaces/default/sequences/nope/deliveries",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An object that exists has its (here empty) list of hops.
    let broker = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}});
    let (status, body) = authorized(&api, "POST", BROKERS, Some(&broker)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        authorized(&api, "GET", &format!("{BROKERS}/default/deliveries"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"], json!([]));
    let (status, _) =
        authorized(&api, "POST", &format!("{BROKERS}/default/deliveries"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// A store whose reads work but whose health check fails, as a damaged file's would.
#[derive(Debug)]
struct Damaged(Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for Damaged {
    async fn get_raw(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        self.0.get_raw(key).await
    }
    async fn list_raw(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        self.0.list_raw(kind, namespace).await
    }
    async fn create_raw(&self, key: &ObjectKey, object: Value) -> Result<Value, StoreError> {
        self.0.create_raw(key, object).await
    }
    async fn update_raw(
        &self,
        key: &ObjectKey,
        object: Value,
        status_only: bool,
    ) -> Result<Value, StoreError> {
        self.0.update_raw(key, object, status_only).await
    }
    async fn delete_raw(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        self.0.delete_raw(key).await
    }
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent> {
        self.0.watch()
    }
    async fn health(&self) -> Result<(), StoreError> {
        Err(StoreError::Damaged {
            path: "paas.db".into(),
            problem: "*** in database main *** Page 3: btreeInitPage() returns error code 11"
                .into(),
        })
    }
}

#[tokio::test]
async fn healthz_reflects_the_stores_health() {
    let healthy = start().await;
    let (status, _) = call(&healthy, "GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let damaged = start_with(|store| Arc::new(Damaged(store)), ApiLimits::default()).await;
    let (status, _) = call(&damaged, "GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let limits = ApiLimits {
        header_read_timeout: std::time::Duration::from_millis(500),
        ..ApiLimits::default()
    };
    let api = start_with(|store| store, limits).await;
    let mut slow = TcpStream::connect(api.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // The server closes the connection (maybe after a 408): read to the end.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the connection was still open after 20 s");
    // Meanwhile and after, others are served.
    let (status, _) = call(&api, "GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// `paas apply`'s first pass: every document is sent with `?dryRun=All`, and only when
/// the server would take them all is any written.
#[tokio::test]
async fn a_dry_run_checks_everything_and_stores_nothing() {
    let api = start().await;
    let broker = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}});
    // The third names a revision that does not exist: only the server can tell.
    let mut third = service("third");
    third["spec"]["traffic"] = json!([{"revisionName": "third-00009", "percent": 100}]);
    let documents = [
        (BROKERS, broker),
        (SERVICES, service("hello")),
        (SERVICES, third),
    ];
    let mut refused = Vec::new();
    for (path, body) in &documents {
        let (status, answer) =
            authorized(&api, "POST", &format!("{path}?dryRun=All"), Some(body)).await;
        if status != StatusCode::CREATED {
            refused.push((status, answer));
        } else {
            assert_eq!(answer["metadata"]["name"], body["metadata"]["name"]);
        }
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&refused[0].1), ["spec.traffic[0].revisionName"]);
    // None of the three is stored.
    for (path, _) in &documents {
        let (status, body) = authorized(&api, "GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"], json!([]), "{path}");
    }

    // A dry run meets the refusals of a real write: an object that exists already, a
    // stale resourceVersion, a replace of nothing; and changes nothing it passes.
    let (status, created) = authorized(&api, "POST", SERVICES, Some(&service("hello"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = authorized(
        &api,
        "POST",
        &format!("{SERVICES}?dryRun=All"),
        Some(&service("hello")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "AlreadyExists");
    let mut stale = service("hello");
    stale["metadata"]["resourceVersion"] = "0".into();
    let (status, body) = authorized(
        &api,
        "PUT",
        &format!("{SERVICES}/hello?dryRun=All"),
        Some(&stale),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "Conflict");
    let (status, _) = authorized(
        &api,
        "PUT",
        &format!("{SERVICES}/nobody?dryRun=All"),
        Some(&service("nobody")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut changed = service("hello");
    changed["spec"]["template"]["spec"]["containers"][0]["command"] = json!(["/bin/false"]);
    let (status, body) = authorized(
        &api,
        "PUT",
        &format!("{SERVICES}/hello?dryRun=All"),
        Some(&changed),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["/bin/false"])
    );
    let (status, body) = authorized(
        &api,
        "DELETE",
        &format!("{SERVICES}/hello?dryRun=All"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, stored) = authorized(&api, "GET", &format!("{SERVICES}/hello"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored, created, "the dry runs changed nothing");

    let (status, body) = authorized(
        &api,
        "POST",
        &format!("{SERVICES}?dryRun=true"),
        Some(&service("x")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Each kind's paths come from the table of kinds: every one lists, a derived one is
/// read-only, an unknown plural is 404 naming what the group has.
#[tokio::test]
async fn every_kind_of_the_table_is_served_at_its_plural() {
    let api = start().await;
    for kind in paas_api::KINDS {
        let path = format!(
            "/apis/{}/namespaces/default/{}",
            kind.api_version, kind.plural
        );
        let (status, body) = authorized(&api, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["kind"], "List");
        let (status, _) = authorized(&api, "GET", &format!("{path}/nope"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}/nope");
        if !kind.writable() {
            for method in ["POST", "PUT", "DELETE"] {
                let target = if method == "POST" {
                    path.clone()
                } else {
                    format!("{path}/x")
                };
                let (status, _) = authorized(&api, method, &target, Some(&json!({}))).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {target}");
            }
        }
    }
    let (status, body) = authorized(
        &api,
        "GET",
        "/apis/flows.knative.dev/v1/namespaces/default/brokers",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "no brokers in flows.knative.dev/v1: it has sequences and parallels"
    );
    let (status, _) = authorized(&api, "GET", &format!("{SERVICES}/x/deliveries"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Deleting a service takes what it owns (by the service label) and nothing else.
#[tokio::test]
async fn deleting_a_service_deletes_its_route_configuration_and_revisions() {
    let api = start().await;
    let (status, _) = authorized(&api, "POST", SERVICES, Some(&service("hello"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let store = SqliteStore::open(&api.dir.join("paas.db")).unwrap();
    let labelled = |kind: &'static str, name: &str, service: &str| {
        let key = ObjectKey {
            kind,
            namespace: "default".into(),
            name: name.into(),
        };
        let body = json!({"metadata": {"name": name, "namespace": "default",
            "labels": {"serving.knative.dev/service": service}}});
        (key, body)
    };
    for (kind, name, service) in [
        ("Route", "hello", "hello"),
        ("Configuration", "hello", "hello"),
        ("Revision", "hello-00001", "hello"),
        ("Revision", "other-00001", "other"),
    ] {
        let (key, body) = labelled(kind, name, service);
        store.create_raw(&key, body).await.unwrap();
    }
    let (status, body) = authorized(&api, "DELETE", &format!("{SERVICES}/hello"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut left = Vec::new();
    for kind in ["Route", "Configuration", "Revision"] {
        for o in store.list_raw(kind, Some("default")).await.unwrap() {
            left.push(format!(
                "{kind} {}",
                o["metadata"]["name"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(left, ["Revision other-00001"]);
}

#[tokio::test]
async fn bad_annotations_are_422_naming_each_annotation_as_paas_apply_does() {
    let api = start().await;
    let mut svc = service("hello");
    svc["spec"]["template"]["metadata"] = json!({"annotations": {
        "autoscaling.knative.dev/min-scale": "abc",
        "paas.dev/idle": "sleep",
    }});
    let (named, body) = invalid_fields(&api, SERVICES, &svc).await;
    // Each once: api's validation names them, the platform's checks add nothing.
    assert_eq!(
        named,
        [
            "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale",
            "spec.template.metadata.annotations.paas.dev/idle",
        ],
        "{body}"
    );

    // What only the platform's settings make wrong is named at the same path: an
    // initial scale of 0, which the default settings forbid.
    svc["spec"]["template"]["metadata"] =
        json!({"annotations": {"autoscaling.knative.dev/initial-scale": "0"}});
    let (named, body) = invalid_fields(&api, SERVICES, &svc).await;
    assert_eq!(
        named,
        ["spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale"],
        "{body}"
    );
}

/// Only `/healthz` is open: any other path, known or not, wants the token first.
#[tokio::test]
async fn every_path_but_healthz_needs_the_token() {
    let api = start().await;
    for path in [
        "/metrics",
        "/nope",
        "/apis/nope/v1/things",
        SERVICES,
        "/apis/serving.knative.dev/v1/namespaces/default/services/x/y/z/w",
    ] {
        let (status, body) = call(&api, "GET", path, "Bearer wrong", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["reason"], "Unauthorized", "{path}");
    }
    let (status, _) = call(&api, "POST", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// What each path is answered: empty segments under an apiVersion are ignored, a path
/// under none is 404, any other a kind does not serve is 405 naming the method and path.
#[tokio::test]
async fn paths_are_read_by_their_segments() {
    let api = start().await;
    for path in [
        format!("{SERVICES}/"),
        "/apis/serving.knative.dev/v1//namespaces/default/services".to_owned(),
        "/apis/serving.knative.dev/v1/services/".to_owned(),
    ] {
        let (status, body) = authorized(&api, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["kind"], "List", "{path}");
    }
    let (status, body) = authorized(
        &api,
        "POST",
        &format!("{SERVICES}/"),
        Some(&service("slash")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = authorized(&api, "GET", "/apis/nope/v1/things", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no API at /apis/nope/v1/things");
    let (status, body) = authorized(&api, "GET", "/apis/serving.knative.dev/v1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no API at /apis/serving.knative.dev/v1");

    for (method, path) in [
        ("GET", format!("{SERVICES}/x/y/z/w")),
        (
            "GET",
            "/apis/serving.knative.dev/v1/namespaces/default".to_owned(),
        ),
        ("GET", format!("{SERVICES}/x/nosuchview")),
        ("PATCH", format!("{SERVICES}/x")),
        ("DELETE", SERVICES.to_owned()),
        ("POST", "/apis/serving.knative.dev/v1/services".to_owned()),
        ("POST", format!("{SERVICES}/x/logs")),
    ] {
        let (status, body) = authorized(&api, method, &path, None).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_eq!(body["reason"], "MethodNotAllowed");
        assert_eq!(
            body["message"],
            format!("{method} is not allowed on {path}"),
            "{method} {path}"
        );
    }
    let (status, body) = authorized(
        &api,
        "GET",
        "/apis/serving.knative.dev/v1/namespaces/default/services//x/y/z/w/",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(
        body["message"],
        format!("GET is not allowed on {SERVICES}/x/y/z/w")
    );
}

/// A write's warnings come as Kubernetes sends them, a `Warning: 299 - "..."` header
/// each (`paas apply` prints them); a refusal is JSON, a 401 says the scheme.
#[tokio::test]
async fn answers_carry_warnings_content_types_and_the_auth_scheme_as_headers() {
    let api = start().await;
    let mut svc = service("hello");
    svc["metadata"]["generateName"] = "hello-".into();
    let auth = format!("Bearer {TOKEN}");
    let (status, headers, body) = send(&api, "POST", SERVICES, &auth, Some(&svc)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let warnings: Vec<_> = headers.get_all("warning").iter().collect();
    assert_eq!(
        warnings,
        ["299 - \"metadata.generateName: is not supported; give metadata.name\""]
    );
    assert_eq!(headers["content-type"], "application/json");

    let (status, headers, _) = send(&api, "GET", &format!("{SERVICES}/x"), &auth, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    let (status, headers, _) = send(&api, "GET", SERVICES, "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (_, headers, _) = send(&api, "GET", "/metrics", &auth, None).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}
