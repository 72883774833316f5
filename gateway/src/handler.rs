//! Hosts the gateway answers itself instead of proxying, such as the broker ingress.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Full, Limited};
use hyper::body::Incoming;

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send + 'a>>;

/// A request body as a handler gets it: reading past the gateway's
/// `ingress_request_bytes` fails with `http_body_util::LengthLimitError`, so that no
/// request holds more than its share of the ingress bytes in flight.
pub type HandlerBody = Limited<Incoming>;

/// Answers every request for one host.
pub trait HostHandler: Send + Sync + fmt::Debug + 'static {
    fn handle(&self, req: Request<HandlerBody>) -> HandlerFuture<'_>;
}
