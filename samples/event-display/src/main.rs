//! The paas event-display sample, written with the CloudEvents SDK as a user's function
//! would be: every CloudEvent it receives over HTTP (binary mode, as paas delivers, or
//! structured; any body framing, chunked included) is kept, and `GET /events` lists them
//! as JSON, oldest first: `{"attributes": {name: value as text}, "data": body as text}`.
//! Like Knative's event_display, but it remembers.
//!
//! With `APPEND=WORD` it is also a step of a flow, like Knative's appender sample: it
//! answers each event with the same event, its data extended by ` WORD` (inside the
//! string when the data is a JSON string), which a Sequence passes on.
//!
//! With `FILTER=TEXT` it is a Parallel branch's filter: it answers an event whose data
//! contains TEXT with the event unchanged (it goes on to the branch's subscriber) and
//! any other with an empty 202 (it goes no further in that branch).
//!
//! On SIGTERM it stops accepting, answers the requests in flight and exits 0.

use std::convert::Infallible;
use std::env;
use std::future::Future;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::SecondsFormat;
use cloudevents::binding::http::{to_event, Builder, Serializer};
use cloudevents::event::AttributeValue;
use cloudevents::message::{self, BinaryDeserializer};
use cloudevents::{Data, Event};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// What this instance does besides keeping what it receives.
#[derive(Debug, Clone)]
enum Role {
    /// Answer 202: the end of a path.
    Display,
    /// Reply with the event, its data extended by this word.
    Append(String),
    /// Reply with the event unchanged when its data contains this text.
    Filter(String),
}

impl Role {
    fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name| var(name).filter(|v| !v.is_empty());
        match (set("APPEND"), set("FILTER")) {
            (Some(word), _) => Role::Append(word),
            (None, Some(text)) => Role::Filter(text),
            (None, None) => Role::Display,
        }
    }

    /// The event to reply with, if this event gets a reply.
    fn reply(&self, event: &Event) -> Option<Event> {
        match self {
            Role::Display => None,
            Role::Append(word) => {
                let mut reply = event.clone();
                // The bytes as they are, under the event's own datacontenttype.
                reply.set_data_unchecked(appended(&data_text(event), word).into_bytes());
                Some(reply)
            }
            Role::Filter(text) => data_text(event).contains(text).then(|| event.clone()),
        }
    }
}

/// The events received, oldest first, and what to do with the next.
#[derive(Debug)]
struct Display {
    role: Role,
    events: Mutex<Vec<Event>>,
}

impl Display {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/events") => {
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                let list: Vec<Value> = events.iter().map(listed).collect();
                respond(
                    StatusCode::OK,
                    "application/json",
                    Value::from(list).to_string(),
                )
            }
            (&Method::POST, _) => self.receive(request).await,
            _ => respond(
                StatusCode::OK,
                "text/plain",
                "event-display: POST events here, GET /events lists them\n".to_owned(),
            ),
        }
    }

    async fn receive(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (head, body) = request.into_parts();
        // hyper has taken off the framing (Content-Length or chunked) by now.
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("event-display: cannot read the request body: {e}\n"),
                )
            }
        };
        let event = match to_event(&head.headers, body.to_vec()) {
            Ok(event) => event,
            Err(e) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!(
                        "event-display: not a CloudEvent in HTTP binary or structured mode: {e}\n"
                    ),
                )
            }
        };
        println!("event-display: {}", listed(&event));
        let reply = self.role.reply(&event);
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
        match reply.map(binary_response) {
            None => respond(StatusCode::ACCEPTED, "application/json", String::new()),
            Some(Ok(response)) => response,
            Some(Err(e)) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("event-display: cannot write the reply event: {e}\n"),
            ),
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 carrying `event` in HTTP binary mode, written by the SDK's serializer.
fn binary_response(event: Event) -> Result<Response<Full<Bytes>>, message::Error> {
    BinaryDeserializer::deserialize_binary(event, Serializer::new(ReplyBuilder::default()))
}

/// Where the SDK's HTTP serializer writes a response: the SDK has one for hyper only
/// behind features that bring a web framework along.
#[derive(Debug, Default)]
struct ReplyBuilder(http::response::Builder);

impl Builder<Response<Full<Bytes>>> for ReplyBuilder {
    fn header(&mut self, key: &str, value: HeaderValue) {
        self.0 = std::mem::take(&mut self.0).header(key, value);
    }

    fn body(&mut self, bytes: Vec<u8>) -> message::Result<Response<Full<Bytes>>> {
        std::mem::take(&mut self.0)
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| message::Error::Other {
                source: Box::new(e),
            })
    }

    fn finish(&mut self) -> message::Result<Response<Full<Bytes>>> {
        self.body(Vec::new())
    }
}

/// An event as `GET /events` lists it: every attribute and extension as text, and the
/// data as text.
fn listed(event: &Event) -> Value {
    let attributes: Map<String, Value> = event
        .iter()
        .map(|(name, value)| {
            let text = match value {
                // RFC 3339 with `Z`, as the event was most likely sent.
                AttributeValue::Time(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                other => other.to_string(),
            };
            (name.to_owned(), Value::String(text))
        })
        .collect();
    json!({ "attributes": attributes, "data": data_text(event) })
}

/// The data as text: the body's bytes in binary mode, the JSON text of structured-mode
/// JSON data; empty without data.
fn data_text(event: &Event) -> String {
    match event.data() {
        None => String::new(),
        Some(Data::Binary(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Data::String(text)) => text.clone(),
        Some(Data::Json(value)) => value.to_string(),
    }
}

/// `data` with ` word` appended: inside the string when it is a JSON string.
fn appended(data: &str, word: &str) -> String {
    let trimmed = data.trim_end();
    match serde_json::from_str::<String>(trimmed) {
        Ok(text) => Value::String(format!("{text} {word}")).to_string(),
        Err(_) => format!("{trimmed} {word}"),
    }
}

fn main() -> ExitCode {
    let port = env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("event-display: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(port))
}

async fn run(port: u16) -> ExitCode {
    // Before listening: a SIGTERM that comes as soon as the port answers is handled.
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("event-display: cannot handle SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("event-display: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map_or(port, |a| a.port());
    println!("event-display: listening on port {port}");
    let display = Arc::new(Display {
        role: Role::from_env(|name| env::var(name).ok()),
        events: Mutex::default(),
    });
    let stop = async move {
        term.recv().await;
        println!("event-display: SIGTERM: no new connections; finishing the requests in flight");
    };
    serve(listener, display, stop).await;
    ExitCode::SUCCESS
}

/// Serves connections until `stop` completes, then stops accepting, lets every
/// connection finish the request it is serving and returns once all are closed.
async fn serve(listener: TcpListener, display: Arc<Display>, stop: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let display = display.clone();
                    let service = service_fn(move |request| {
                        let display = display.clone();
                        async move { Ok::<_, Infallible>(display.answer(request).await) }
                    });
                    let connection = graceful.watch(
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    );
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                Err(e) => {
                    eprintln!("event-display: accept failed: {e}");
                    // Out of file descriptors would otherwise spin the accept loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A display with `role` on a free port; the server lives as long as the test.
    async fn start(role: Role) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let display = Arc::new(Display {
            role,
            events: Mutex::default(),
        });
        tokio::spawn(serve(listener, display, std::future::pending()));
        port
    }

    /// One request through hyper's client; the answer's head and body.
    async fn send(port: u16, request: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let (head, body) = sender.send_request(request).await.unwrap().into_parts();
        (head, body.collect().await.unwrap().to_bytes())
    }

    /// `event` as the SDK writes a request in binary mode (a GET to `/`, until told
    /// otherwise).
    fn binary_request(event: Event) -> Request<Full<Bytes>> {
        let request: Request<Option<Vec<u8>>> = event.try_into().unwrap();
        let mut request = request.map(|body| Full::new(Bytes::from(body.unwrap_or_default())));
        *request.method_mut() = Method::POST;
        request
    }

    async fn list(port: u16) -> Vec<Value> {
        let get = Request::get("/events").body(Full::default()).unwrap();
        let (head, body) = send(port, get).await;
        assert_eq!(head.status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    fn event(id: &str, data: &str) -> Event {
        EventBuilderV10::new()
            .id(id)
            .source("/tests")
            .ty("dev.paas.test")
            .time("2026-01-02T03:04:05.678Z")
            .extension("partitionkey", "k1")
            .data("application/json", data.as_bytes().to_vec())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn binary_and_structured_events_are_listed_with_every_attribute() {
        let port = start(Role::Display).await;
        let (head, _) = send(port, binary_request(event("b-1", "{\"n\":1}"))).await;
        assert_eq!(head.status, StatusCode::ACCEPTED);
        let structured = EventBuilderV10::new()
            .id("s-1")
            .source("/tests")
            .ty("dev.paas.test")
            .data("application/json", json!({"n": 2}))
            .build()
            .unwrap();
        let body = serde_json::to_vec(&structured).unwrap();
        let request = Request::post("/")
            .header(CONTENT_TYPE, "application/cloudevents+json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        assert_eq!(send(port, request).await.0.status, StatusCode::ACCEPTED);

        let events = list(port).await;
        assert_eq!(
            events[0],
            json!({
                "attributes": {
                    "specversion": "1.0",
                    "id": "b-1",
                    "source": "/tests",
                    "type": "dev.paas.test",
                    "datacontenttype": "application/json",
                    "time": "2026-01-02T03:04:05.678Z",
                    "partitionkey": "k1",
                },
                "data": "{\"n\":1}",
            })
        );
        assert_eq!(events[1]["attributes"]["id"], "s-1");
        assert_eq!(events[1]["data"], "{\"n\":2}");
    }

    /// The hand-written parser this sample had read Content-Length bodies only.
    #[tokio::test]
    async fn a_chunked_body_is_read_whole() {
        let port = start(Role::Display).await;
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        conn.write_all(
            b"POST / HTTP/1.1\r\nHost: t\r\nce-specversion: 1.0\r\nce-id: c-1\r\n\
              ce-source: /tests\r\nce-type: dev.paas.test\r\nContent-Type: text/plain\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 202 Accepted\r\n"), "{answer}");
        let events = list(port).await;
        assert_eq!(events[0]["attributes"]["id"], "c-1");
        assert_eq!(events[0]["data"], "hello world");
    }

    #[tokio::test]
    async fn what_is_not_a_cloudevent_is_refused_with_the_reason() {
        let port = start(Role::Display).await;
        let request = Request::post("/")
            .header("ce-specversion", "1.0")
            .header("ce-id", "x")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let (head, body) = send(port, request).await;
        assert_eq!(head.status, StatusCode::BAD_REQUEST);
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("not a CloudEvent") && body.contains("Missing required attribute type"),
            "{body}"
        );
        assert!(list(port).await.is_empty());
    }

    #[tokio::test]
    async fn an_appender_replies_with_the_event_its_data_extended() {
        let port = start(Role::Append("one".into())).await;
        let sent = event("a-1", "\"7\"");
        let (head, body) = send(port, binary_request(sent.clone())).await;
        assert_eq!(head.status, StatusCode::OK);
        let reply = to_event(&head.headers, body.to_vec()).unwrap();
        assert_eq!(reply.id(), "a-1");
        assert_eq!(reply.datacontenttype(), Some("application/json"));
        assert_eq!(
            reply.extension("partitionkey"),
            sent.extension("partitionkey")
        );
        assert_eq!(reply.data(), Some(&Data::Binary(b"\"7 one\"".to_vec())));
    }

    #[tokio::test]
    async fn a_filter_passes_what_contains_its_text() {
        let port = start(Role::Filter("even".into())).await;
        let even = event("f-1", r#"{"n":4,"parity":"even"}"#);
        let (head, body) = send(port, binary_request(even.clone())).await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(to_event(&head.headers, body.to_vec()).unwrap(), even);
        let odd = event("f-2", r#"{"n":3,"parity":"odd"}"#);
        let (head, body) = send(port, binary_request(odd)).await;
        assert_eq!((head.status, body.len()), (StatusCode::ACCEPTED, 0));
    }

    #[test]
    fn the_role_comes_from_the_environment() {
        let role = |vars: &'static [(&str, &str)]| {
            Role::from_env(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert!(matches!(role(&[]), Role::Display));
        assert!(matches!(role(&[("APPEND", "")]), Role::Display));
        assert!(matches!(role(&[("APPEND", "x"), ("FILTER", "y")]), Role::Append(w) if w == "x"));
        assert!(matches!(role(&[("FILTER", "y")]), Role::Filter(t) if t == "y"));
    }

    #[test]
    fn appending_keeps_json_strings_strings() {
        assert_eq!(appended("\"7\"", "one"), "\"7 one\"");
        assert_eq!(appended("\"7 one\"\n", "two"), "\"7 one two\"");
        assert_eq!(appended("\"say \\\"hi\\\"\"", "x"), "\"say \\\"hi\\\" x\"");
        assert_eq!(appended("plain", "word"), "plain word");
    }
}
