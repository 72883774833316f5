//! Wiring: the broker ingress answers `broker-ingress.localhost` on the gateway's port,
//! the channel ingress (the first hop of a Sequence) `channel-ingress.localhost`.

use std::sync::Arc;

use http::Request;
use paas_eventing::ingress::BrokerIngress;
use paas_gateway::{HandlerBody, HandlerFuture, HostHandler};

/// The host producers post events to, as in Knative's broker addresses.
pub(crate) const INGRESS_HOST: &str = "broker-ingress.localhost";
/// The host a Sequence's address points at.
pub(crate) const CHANNEL_HOST: &str = "channel-ingress.localhost";

#[derive(Debug)]
pub(crate) struct IngressHandler(pub(crate) Arc<BrokerIngress>);

impl HostHandler for IngressHandler {
    fn handle(&self, req: Request<HandlerBody>) -> HandlerFuture<'_> {
        Box::pin(self.0.handle(req))
    }
}
