//! Prometheus counters of the gateway, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

use crate::route_table::{Capacity, RoutingTable};

/// A per-revision metric's name, type, help and how to read it.
type RevisionSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Capacity) -> u64,
);

#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Responses by status class: 1xx .. 5xx.
    responses: [AtomicU64; 5],
}

impl GatewayMetrics {
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
