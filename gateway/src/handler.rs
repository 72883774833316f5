//! Hosts the gateway answers itself instead of proxying, such as the broker ingress.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Full, Limited};
use hyper::body::Incoming;
use tokio::time::Sleep;

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send + 'a>>;

/// Answers every request for one host.
pub trait HostHandler: Send + Sync + fmt::Debug + 'static {
    fn handle(&self, req: Request<HandlerBody>) -> HandlerFuture<'_>;
}

/// A request body as a handler gets it, bounded so that no request holds more than
/// its share of the ingress bytes in flight, nor holds it for long: reading past the
/// gateway's `ingress_request_bytes` fails with `http_body_util::LengthLimitError`,
/// and a body not all there within `ingress_body_timeout` fails with [`BodyTimeout`].
#[derive(Debug)]
pub struct HandlerBody {
    inner: Limited<Incoming>,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

/// The client did not send the whole request body in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s: send it whole, without pauses", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

impl HandlerBody {
    /// Must be called within a Tokio runtime: the deadline is a Tokio timer.
    pub(crate) fn new(inner: Incoming, most: usize, timeout: Duration) -> Self {
        Self {
            inner: Limited::new(inner, most),
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl Body for HandlerBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
