//! Hosts the gateway answers itself instead of proxying, such as the broker ingress.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send + 'a>>;

/// Answers every request for one host.
pub trait HostHandler: Send + Sync + fmt::Debug + 'static {
    fn handle(&self, req: Request<Incoming>) -> HandlerFuture<'_>;
}
