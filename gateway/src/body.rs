//! A response body that holds the replica's in-flight slot until the last byte has
//! been streamed to the client (or the client went away).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::route_table::{Endpoint, RevisionEndpoints};

/// Counts one request in flight on an endpoint and its revision while alive.
#[derive(Debug)]
pub(crate) struct InFlight {
    endpoint: Arc<Endpoint>,
    revision: Arc<RevisionEndpoints>,
}

impl InFlight {
    pub(crate) fn start(endpoint: Arc<Endpoint>, revision: Arc<RevisionEndpoints>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        revision.in_flight.fetch_add(1, Ordering::Relaxed);
        revision.requests.fetch_add(1, Ordering::Relaxed);
        Self { endpoint, revision }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.revision.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct CountedBody<B> {
    inner: B,
    guard: Option<InFlight>,
}

impl<B> CountedBody<B> {
    pub(crate) fn new(inner: B, guard: InFlight) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
