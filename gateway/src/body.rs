//! Response bodies: the replica's, streamed while holding its permit (its slot on the
//! replica) until the last byte, or a short one the gateway wrote itself. An enum
//! rather than a boxed body, to save an allocation per response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use paas_activator::Permit;

use crate::pool::{Pool, Sender};

/// The connection a response came on, to go back to its pool once the body is read.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) pool: Arc<Pool>,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) sender: Sender,
}

#[derive(Debug)]
pub(crate) enum ProxyBody {
    Upstream {
        inner: Incoming,
        permit: Option<Permit>,
        checkout: Option<Checkout>,
    },
    Local(Full<Bytes>),
}

impl ProxyBody {
    pub(crate) fn upstream(inner: Incoming, permit: Permit, checkout: Checkout) -> Self {
        ProxyBody::Upstream {
            inner,
            permit: Some(permit),
            checkout: Some(checkout),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body the server never polled because it knew it was empty is still complete.
        if let ProxyBody::Upstream {
            inner, checkout, ..
        } = self
        {
            if inner.is_end_stream() {
                if let Some(c) = checkout.take() {
                    c.pool.checkin(c.addr, c.sender);
                }
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream {
                inner,
                permit,
                checkout,
            } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        *permit = None;
                        if let Some(c) = checkout.take() {
                            c.pool.checkin(c.addr, c.sender);
                        }
                    }
                    // A broken response leaves the connection in an unknown state: drop it.
                    Poll::Ready(Some(Err(_))) => {
                        *permit = None;
                        *checkout = None;
                    }
                    _ => {}
                }
                polled
            }
            ProxyBody::Local(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
            ProxyBody::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
            ProxyBody::Local(full) => full.size_hint(),
        }
    }
}
