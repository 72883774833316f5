//! Events built by the CloudEvents SDK and sent with its HTTP binding, in binary and in
//! structured mode, reach a subscriber that parses them with the SDK unchanged: every
//! attribute, every extension and every data byte. The platform keeps its own
//! CloudEvents model; this is what a user's code written with the SDK sees of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::binding::http::{to_event, Builder, Serializer};
use cloudevents::event::ExtensionValue;
use cloudevents::message::{self, BinaryDeserializer, StructuredDeserializer};
use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use paas_e2e::{event_server, Hop, Platform, ReceivedEvent, RuntimeKind};
use serde_json::json;

/// Where the SDK's HTTP serializer writes a request: its headers and body.
#[derive(Debug, Default)]
struct Written(HeaderMap);

impl Builder<(HeaderMap, Vec<u8>)> for Written {
    fn header(&mut self, key: &str, value: HeaderValue) {
        self.0.insert(HeaderName::try_from(key).unwrap(), value);
    }

    fn body(&mut self, bytes: Vec<u8>) -> message::Result<(HeaderMap, Vec<u8>)> {
        Ok((std::mem::take(&mut self.0), bytes))
    }

    fn finish(&mut self) -> message::Result<(HeaderMap, Vec<u8>)> {
        self.body(Vec::new())
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Binary,
    Structured,
}

/// The SDK's HTTP message for `event` in `mode`.
fn written(event: &Event, mode: Mode) -> (HeaderMap, Vec<u8>) {
    let serializer = Serializer::new(Written::default());
    match mode {
        Mode::Binary => BinaryDeserializer::deserialize_binary(event.clone(), serializer),
        Mode::Structured => {
            StructuredDeserializer::deserialize_structured(event.clone(), serializer)
        }
    }
    .unwrap()
}

/// POST a message to broker `default`; its status and body.
fn post(p: &Platform, headers: &HeaderMap, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", p.http_port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST /default/default HTTP/1.1\r\nHost: broker-ingress.localhost:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        p.http_port,
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    conn.write_all(&request).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A delivery as the SDK's HTTP binding parses it.
fn parsed(received: &ReceivedEvent) -> Event {
    let mut headers = HeaderMap::new();
    for (name, value) in &received.headers {
        headers.append(
            HeaderName::try_from(name.as_str()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    to_event(&headers, received.bytes.clone())
        .unwrap_or_else(|e| panic!("the SDK cannot parse {received:?}: {e}"))
}

/// `sent` as binary mode, the way the broker delivers, carries it: each extension as
/// its text, the data as the bytes the SDK writes for it.
fn as_delivered(sent: &Event) -> Event {
    let mut event = sent.clone();
    let extensions: Vec<(String, ExtensionValue)> = sent
        .iter_extensions()
        .map(|(name, value)| (name.to_owned(), ExtensionValue::String(value.to_string())))
        .collect();
    for (name, value) in extensions {
        event.set_extension(&name, value);
    }
    if let Some(data) = sent.data() {
        event.set_data_unchecked(Vec::<u8>::try_from(data.clone()).unwrap());
    }
    event
}

/// What the SDK can carry in both modes. Attribute values keep to printable ASCII
/// without space, '"' or '%': the SDK does not percent-encode binary-mode headers as
/// the HTTP binding asks, nor decode them.
fn events() -> Vec<(Mode, Event)> {
    let time = "2026-03-04T05:06:07.123456789Z";
    let order = json!({"order": 17, "lines": [{"sku": "a-1", "qty": 2}], "note": "grüße \"quoted\"", "paid": null});
    let bytes: Vec<u8> = (0..=255u8).collect();
    let full = |id: &str| {
        EventBuilderV10::new()
            .id(id)
            .source("/e2e/sdk?q=1#frag")
            .ty("dev.paas.sdk.order")
            .subject("orders/17")
            .time(time)
            .extension("tenant", "acme")
            .extension("attempt", 3_i64)
            .extension("urgent", true)
    };
    vec![
        (
            Mode::Binary,
            full("binary-json")
                .data_with_schema(
                    "application/json",
                    "https://schemas.example.com/order.json",
                    order.clone(),
                )
                .build()
                .unwrap(),
        ),
        (
            Mode::Binary,
            full("binary-bytes")
                .data("application/octet-stream", bytes.clone())
                .build()
                .unwrap(),
        ),
        (
            Mode::Binary,
            EventBuilderV10::new()
                .id("binary-no-data")
                .source("urn:e2e:sdk")
                .ty("dev.paas.sdk.ping")
                .build()
                .unwrap(),
        ),
        (
            Mode::Structured,
            full("structured-json")
                .data_with_schema(
                    "application/json",
                    "https://schemas.example.com/order.json",
                    order,
                )
                .build()
                .unwrap(),
        ),
        (
            Mode::Structured,
            full("structured-bytes")
                .data("application/octet-stream", bytes)
                .build()
                .unwrap(),
        ),
        (
            Mode::Structured,
            full("structured-text")
                .data(
                    "text/plain; charset=utf-8",
                    "plain text, ünïcode\r\nand lines",
                )
                .build()
                .unwrap(),
        ),
    ]
}

#[test]
fn events_the_sdk_sends_in_either_mode_reach_an_sdk_subscriber_unchanged() {
    let p = Platform::start(RuntimeKind::Process);
    let deliveries: Arc<Mutex<Vec<ReceivedEvent>>> = Arc::default();
    let d = deliveries.clone();
    let port = event_server(move |event| {
        d.lock().unwrap().push(event);
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    p.trigger_everything_to(port);

    let sent = events();
    for (mode, event) in &sent {
        let (headers, body) = written(event, *mode);
        let (status, answer) = post(&p, &headers, &body);
        assert_eq!(status, 202, "{} ({mode:?}): {answer}", event.id());
    }
    let hops = p.wait_deliveries(
        "triggers",
        "all",
        Duration::from_secs(60),
        "every event delivered",
        |hops| hops.iter().map(|h| h.count("delivered")).sum::<u64>() == sent.len() as u64,
    );
    assert!(hops.iter().all(Hop::settled), "{hops:?}");

    let received: HashMap<String, Event> = deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let event = parsed(r);
            (event.id().to_owned(), event)
        })
        .collect();
    for (mode, event) in &sent {
        let got = received
            .get(event.id())
            .unwrap_or_else(|| panic!("{} never arrived: {:?}", event.id(), received.keys()));
        assert_eq!(
            got,
            &as_delivered(event),
            "{} sent in {mode:?} mode",
            event.id()
        );
    }
    // The data types each kept: JSON as the SDK wrote it, and every byte value.
    assert_eq!(
        received["binary-bytes"].data(),
        Some(&Data::Binary((0..=255u8).collect()))
    );
    assert_eq!(
        received["structured-json"].data(),
        received["binary-json"].data()
    );
}
