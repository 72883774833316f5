//! Prometheus counters of the gateway, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

use crate::route_table::RoutingTable;

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
        out.push_str("# HELP paas_revision_requests_total Requests forwarded to a revision.\n");
        out.push_str("# TYPE paas_revision_requests_total counter\n");
        for r in &revisions {
            let _ = writeln!(
                out,
                "paas_revision_requests_total{{namespace=\"{}\",revision=\"{}\"}} {}",
                r.key.namespace,
                r.key.name,
                r.requests.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP paas_revision_in_flight Requests a revision is serving now.\n");
        out.push_str("# TYPE paas_revision_in_flight gauge\n");
        for r in &revisions {
            let _ = writeln!(
                out,
                "paas_revision_in_flight{{namespace=\"{}\",revision=\"{}\"}} {}",
                r.key.namespace,
                r.key.name,
                r.in_flight.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP paas_revision_ready_replicas Replicas of a revision that pass readiness.\n",
        );
        out.push_str("# TYPE paas_revision_ready_replicas gauge\n");
        for r in &revisions {
            let _ = writeln!(
                out,
                "paas_revision_ready_replicas{{namespace=\"{}\",revision=\"{}\"}} {}",
                r.key.namespace,
                r.key.name,
                r.ready().len()
            );
        }
    }
}
