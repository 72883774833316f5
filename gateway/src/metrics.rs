//! Prometheus counters of the gateway, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::StatusCode;
use paas_activator::Capacity;

use crate::budget::Budget;
use crate::limits::GatewayLimits;
use crate::route_table::RoutingTable;

/// A per-revision metric's name, type, help and how to read it.
type RevisionSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Capacity) -> u64,
);

#[derive(Debug)]
pub struct GatewayMetrics {
    /// Responses by status class: 1xx .. 5xx.
    responses: [AtomicU64; 5],
    /// Client connections open now, up to the limit; shared by every worker.
    pub(crate) connections: Arc<Budget>,
    /// Connections answered 503 because `connections` was full.
    pub(crate) connections_refused: AtomicU64,
    /// Failed accepts (out of file descriptors and the like).
    pub(crate) accept_errors: AtomicU64,
    /// Body bytes held by requests to in-process hosts (the ingress), up to the limit.
    pub(crate) ingress_bytes: Arc<Budget>,
    /// Requests to in-process hosts answered 503 because `ingress_bytes` was full.
    pub(crate) ingress_refused: AtomicU64,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new(&GatewayLimits::default())
    }
}

impl GatewayMetrics {
    pub(crate) fn new(limits: &GatewayLimits) -> Self {
        Self {
            responses: Default::default(),
            connections: Budget::new(limits.max_connections),
            connections_refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            ingress_bytes: Budget::new(limits.ingress_bytes_in_flight),
            ingress_refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_response(&self, status: StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Append the gateway's metrics to `out`.
    pub fn render(&self, table: &RoutingTable, out: &mut String) {
        out.push_str(
            "# HELP paas_gateway_responses_total Responses sent by the gateway, by status class.\n",
        );
        out.push_str("# TYPE paas_gateway_responses_total counter\n");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "paas_gateway_responses_total{{code=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        let load: [(&str, &str, &str, u64); 5] = [
            (
                "paas_gateway_connections_open",
                "gauge",
                "Client connections open on the gateway's port.",
                self.connections.used() as u64,
            ),
            (
                "paas_gateway_connections_refused_total",
                "counter",
                "Client connections answered 503 because the gateway had its maximum open.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                "paas_gateway_accept_errors_total",
                "counter",
                "Client connections the gateway failed to accept (such as out of file descriptors).",
                self.accept_errors.load(Ordering::Relaxed),
            ),
            (
                "paas_gateway_ingress_bytes_in_flight",
                "gauge",
                "Body bytes reserved by requests to the broker and channel ingress now.",
                self.ingress_bytes.used() as u64,
            ),
            (
                "paas_gateway_ingress_refused_total",
                "counter",
                "Ingress requests answered 503 because the ingress bytes in flight were at their maximum.",
                self.ingress_refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in load {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let mut revisions = table.revisions();
        revisions.sort_by(|a, b| a.key.cmp(&b.key));
        let series: [RevisionSeries; 4] = [
            (
                "paas_revision_requests_total",
                "counter",
                "Requests that arrived for a revision.",
                |c| c.requests.load(Ordering::Relaxed),
            ),
            (
                "paas_revision_in_flight",
                "gauge",
                "Requests a revision is serving now.",
                |c| c.in_flight.load(Ordering::Relaxed) as u64,
            ),
            (
                "paas_revision_waiting",
                "gauge",
                "Requests waiting for a replica of a revision.",
                |c| c.waiting.load(Ordering::Relaxed) as u64,
            ),
            (
                "paas_revision_ready_replicas",
                "gauge",
                "Replicas of a revision that pass readiness.",
                |c| c.ready().len() as u64,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for r in &revisions {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",revision=\"{}\"}} {}",
                    r.key.namespace,
                    r.key.name,
                    value(r)
                );
            }
        }
    }
}
