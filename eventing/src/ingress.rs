//! The broker ingress: `POST /{namespace}/{broker}` with CloudEvents in any HTTP mode.
//! Events are validated, stored in the broker's topic (in the Kafka binding), and
//! answered 202 only once the log says they are durable. The same ingress serves the
//! channels of flows (`POST /{namespace}/{channel}`), each a topic of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};

use crate::cloudevent::{from_http, kafka_binding};
use crate::{EventLog, LogError};

/// The CloudEvents size limit the ingress enforces by default (per request).
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// What an ingress's paths name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressKind {
    Broker,
    Channel,
}

impl IngressKind {
    fn noun(self) -> &'static str {
        match self {
            IngressKind::Broker => "broker",
            IngressKind::Channel => "channel",
        }
    }

    fn topic(self, namespace: &str, name: &str) -> String {
        match self {
            IngressKind::Broker => crate::broker_topic(namespace, name),
            IngressKind::Channel => crate::channel_topic(namespace, name),
        }
    }
}

#[derive(Debug)]
pub struct BrokerIngress {
    kind: IngressKind,
    log: Arc<dyn EventLog>,
    max_bytes: usize,
    /// Requests accepted (202) and refused, for /metrics.
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
}

impl BrokerIngress {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self::of(IngressKind::Broker, log)
    }

    /// The ingress of the channels flows are made of.
    pub fn channels(log: Arc<dyn EventLog>) -> Self {
        Self::of(IngressKind::Channel, log)
    }

    fn of(kind: IngressKind, log: Arc<dyn EventLog>) -> Self {
        Self {
            kind,
            log,
            max_bytes: DEFAULT_MAX_BYTES,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Handle one request; every failure is an answer saying what was wrong.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let resp = self
            .accept(req)
            .await
            .unwrap_or_else(|(status, message)| answer(status, &message));
        if resp.status() == StatusCode::ACCEPTED {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        resp
    }

    async fn accept<B>(
        &self,
        req: Request<B>,
    ) -> Result<Response<Full<Bytes>>, (StatusCode, String)>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().to_owned();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let noun = self.kind.noun();
        let [namespace, broker] = parts.as_slice() else {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "no {noun} at {path}: post to /NAMESPACE/{}",
                    noun.to_uppercase()
                ),
            ));
        };
        if req.method() != Method::POST {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} is not allowed: post CloudEvents to a {noun}",
                    req.method()
                ),
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_bytes) {
            return Err(too_large(self.max_bytes));
        }
        let (parts_, body) = req.into_parts();
        let body = Limited::new(body, self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large(self.max_bytes)
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("reading the request body: {e}"),
                    )
                }
            })?
            .to_bytes();
        let events = from_http(&parts_.headers, body)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let topic = self.kind.topic(namespace, broker);
        let mut events = events;
        if self.kind == IngressKind::Channel {
            for e in &mut events {
                e.add_history(&topic);
            }
        }
        let records = events.iter().map(kafka_binding::to_record).collect();
        match self.log.append(&topic, records).await {
            Ok(_) => Ok(answer(StatusCode::ACCEPTED, "")),
            Err(LogError::NoSuchTopic { .. }) => Err((
                StatusCode::NOT_FOUND,
                match self.kind {
                    IngressKind::Broker => format!("no broker {namespace}/{broker}: create it with a Broker manifest (paas apply -f)"),
                    IngressKind::Channel => format!("no channel {namespace}/{broker}: post to a Sequence's address (paas get sequences)"),
                },
            )),
            Err(e) => {
                tracing::warn!(%topic, error = %e, "storing events failed");
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the event log did not store the events: {e}; nothing was accepted, retry"),
                ))
            }
        }
    }
}

impl BrokerIngress {
    /// Prometheus text for the ingress's counters.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let noun = self.kind.noun();
        let name = format!("paas_{noun}_ingress_requests_total");
        let _ = writeln!(
            out,
            "# HELP {name} Requests to {noun} ingresses, by outcome.\n# TYPE {name} counter\n{name}{{outcome=\"accepted\"}} {}\n{name}{{outcome=\"refused\"}} {}",
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed)
        );
    }
}

fn too_large(max: usize) -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request is larger than the {max} bytes a broker accepts"),
    )
}

fn answer(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(if message.is_empty() {
        String::new()
    } else {
        format!("{message}\n")
    })));
    *resp.status_mut() = status;
    if !message.is_empty() {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{EmbeddedLog, Retention};
    use crate::InitialOffset;

    async fn setup(name: &str) -> (Arc<EmbeddedLog>, BrokerIngress) {
        let dir = std::env::temp_dir().join(format!("paas-ingress-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = EmbeddedLog::open(&dir, Retention::default()).unwrap();
        log.ensure_topic("knative-broker-default-default")
            .await
            .unwrap();
        let ingress = BrokerIngress::new(log.clone()).with_max_bytes(1024);
        (log, ingress)
    }

    fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(Method::POST).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    const BINARY: [(&str, &str); 5] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "/tests"),
        ("ce-type", "dev.paas.test"),
        ("content-type", "application/json"),
    ];

    #[tokio::test]
    async fn an_event_is_stored_and_answered_202() {
        let (log, ingress) = setup("ok").await;
        let resp = ingress
            .handle(post("/default/default", &BINARY, "{\"n\":1}"))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let mut sub = log
            .subscribe(
                "knative-broker-default-default",
                "g",
                InitialOffset::Earliest,
            )
            .await
            .unwrap();
        let d = sub.next().await.unwrap();
        let event = kafka_binding::from_record(&d.record).unwrap();
        assert_eq!(event.id, "e-1");
        assert_eq!(event.ty, "dev.paas.test");
    }

    #[tokio::test]
    async fn bad_requests_say_what_is_wrong() {
        let (_log, ingress) = setup("bad").await;
        let missing_id: Vec<_> = BINARY
            .iter()
            .filter(|(k, _)| *k != "ce-id")
            .copied()
            .collect();
        let resp = ingress
            .handle(post("/default/default", &missing_id, "{}"))
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("\"id\""),
            "{body:?}"
        );

        let resp = ingress.handle(post("/default/nope", &BINARY, "{}")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        let big = "x".repeat(2048);
        let resp = ingress
            .handle(post("/default/default", &BINARY, &big))
            .await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let get = Request::builder()
            .uri("/default/default")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(
            ingress.handle(get).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(ingress.accepted.load(Ordering::Relaxed), 0);
        assert_eq!(ingress.refused.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn a_batch_is_stored_whole() {
        let (log, ingress) = setup("batch").await;
        let batch = r#"[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]"#;
        let resp = ingress
            .handle(post(
                "/default/default",
                &[("content-type", "application/cloudevents-batch+json")],
                batch,
            ))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let mut sub = log
            .subscribe(
                "knative-broker-default-default",
                "g",
                InitialOffset::Earliest,
            )
            .await
            .unwrap();
        let ids: Vec<String> = [sub.next().await.unwrap(), sub.next().await.unwrap()]
            .iter()
            .map(|d| kafka_binding::from_record(&d.record).unwrap().id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
