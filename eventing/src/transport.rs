//! Delivering events over HTTP in binary mode, with keep-alive connections pooled per
//! destination. `*.localhost` names go to the loopback address, as browsers and curl
//! resolve them, so that subscriber URLs on the gateway work without DNS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cloudevent::{from_http, to_http_binary, CloudEvent};
use crate::delivery::{Attempt, Transport};

/// Answers larger than this are cut (a reply event is at most 1 MiB).
const MAX_RESPONSE: usize = 1 << 20;
/// Idle connections kept per destination.
const MAX_IDLE: usize = 256;

type Sender = SendRequest<Full<Bytes>>;

#[derive(Debug, Default)]
pub struct HttpTransport {
    idle: Mutex<HashMap<String, Vec<Sender>>>,
}

impl HttpTransport {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Sender>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn checkout(&self, authority: &str, host: &str, port: u16) -> Result<Sender, String> {
        loop {
            let idle = self.lock().get_mut(authority).and_then(Vec::pop);
            match idle {
                Some(mut s) if !s.is_closed() => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        let target = if host == "localhost" || host.ends_with(".localhost") {
            format!("127.0.0.1:{port}")
        } else {
            format!("{host}:{port}")
        };
        let stream = TcpStream::connect(&target)
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {target}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn checkin(&self, authority: &str, sender: Sender) {
        let mut idle = self.lock();
        let list = idle.entry(authority.to_owned()).or_default();
        if list.len() < MAX_IDLE && !sender.is_closed() {
            list.push(sender);
        }
    }

    async fn exchange(&self, url: &str, event: &CloudEvent) -> Result<Attempt, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url}: only http:// destinations are supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{url} has no host"))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| host.clone());
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let (headers, body) = to_http_binary(event);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, &authority)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        req.headers_mut().extend(headers);
        let mut sender = self.checkout(&authority, &host, port).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("sending to {url}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {url}: {e}"))?
            .to_bytes();
        self.checkin(&authority, sender);
        // A 2xx carrying a CloudEvent is a reply; anything else in the body is not.
        let success = (200..300).contains(&status);
        let reply = if success && (!body.is_empty() || parts.headers.contains_key("ce-specversion"))
        {
            from_http(&parts.headers, body.clone())
                .ok()
                .and_then(|mut events| (events.len() == 1).then(|| events.remove(0)))
                .map(Box::new)
        } else {
            None
        };
        Ok(Attempt::Response {
            status,
            retry_after,
            body,
            reply,
        })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, url: &str, event: &CloudEvent, timeout: Duration) -> Attempt {
        match tokio::time::timeout(timeout, self.exchange(url, event)).await {
            Ok(Ok(attempt)) => attempt,
            Ok(Err(reason)) => Attempt::Failed { reason },
            Err(_) => Attempt::Failed {
                reason: format!("no answer from {url} within {} s", timeout.as_secs_f64()),
            },
        }
    }
}
