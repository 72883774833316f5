//! Parallel → an ingress channel copied to every branch (a consumer group each), and
//! per branch: with a filter, a dispatcher delivering to the filter whose reply (the
//! event, when the filter lets it through) goes into the branch's own channel, and a
//! dispatcher delivering that channel to the subscriber; without one, the subscriber
//! reads the ingress channel directly. A subscriber's reply goes to the branch's
//! reply, else the Parallel's, else nowhere.

use std::sync::Arc;

use paas_api::eventing::{Destination, DELIVERY_ORDER};
use paas_api::flows::{Parallel, ParallelBranchStatus};
use paas_api::serving::Addressable;
use paas_api::Object;
use paas_eventing::channel_topic;
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Records, ReplyTo};
use paas_eventing::filter::Filter;

use super::sequence::channel_url;
use super::{destination, set_ready, Action, Context, Result};
use crate::store::StoreExt;

/// The channel every event of the Parallel enters.
pub fn ingress_channel(parallel: &str) -> String {
    format!("{parallel}-kn-parallel")
}

/// The channel of what branch `branch`'s filter let through.
pub fn branch_channel(parallel: &str, branch: usize) -> String {
    format!("{parallel}-kn-parallel-{branch}")
}

/// The prefix every dispatcher key of a Parallel starts with.
pub fn dispatcher_prefix(namespace: &str, parallel: &str) -> String {
    format!("parallel:{namespace}/{parallel}/")
}

async fn resolve_optional(
    d: Option<&Destination>,
    ns: &str,
    ctx: &Context,
) -> Result<Result<Option<String>, String>> {
    Ok(match d {
        None => Ok(None),
        Some(d) => destination::resolve(d, ns, ctx).await?.map(Some),
    })
}

pub async fn reconcile(par: &Parallel, ctx: &Context) -> Result<Action> {
    let ns = par.namespace();
    let name = par.name();
    let now = ctx.now();
    // As a trigger: one event in flight per partition, so each partition key's order
    // holds through every hop.
    let ordered = par
        .metadata
        .annotations
        .get(DELIVERY_ORDER)
        .is_some_and(|o| o == "ordered");
    let mut status = par.status.clone();
    status.observed_generation = par.metadata.generation;
    let branches = &par.spec.branches;
    let mut problem: Option<(&str, String)> = None;

    let ingress = channel_topic(ns, &ingress_channel(name));
    let mut topics = vec![ingress.clone()];
    for (i, b) in branches.iter().enumerate() {
        if b.filter.is_some() {
            topics.push(channel_topic(ns, &branch_channel(name, i)));
        }
    }
    for t in &topics {
        if let Err(e) = ctx.event_log.ensure_topic(t).await {
            problem.get_or_insert(("ChannelFailed", e.to_string()));
        }
    }

    let top_reply = match resolve_optional(par.spec.reply.as_ref(), ns, ctx).await? {
        Ok(r) => r,
        Err(why) => {
            problem.get_or_insert(("ReplyUnresolved", format!("reply: {why}")));
            None
        }
    };
    let mut resolved = Vec::new();
    for (i, b) in branches.iter().enumerate() {
        let filter = resolve_optional(b.filter.as_ref(), ns, ctx).await?;
        let subscriber = destination::resolve(&b.subscriber, ns, ctx).await?;
        let reply = resolve_optional(b.reply.as_ref(), ns, ctx).await?;
        let dls = resolve_optional(
            b.delivery
                .as_ref()
                .and_then(|d| d.dead_letter_sink.as_ref()),
            ns,
            ctx,
        )
        .await?;
        match (filter, subscriber, reply, dls) {
            (Ok(filter_uri), Ok(subscriber_uri), Ok(reply_uri), Ok(dls)) => {
                resolved.push((
                    ParallelBranchStatus {
                        filter_uri,
                        subscriber_uri,
                        reply_uri,
                    },
                    dls,
                ));
            }
            (f, s, r, d) => {
                let why = [f.err(), s.err(), r.err(), d.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                problem.get_or_insert(("BranchUnresolved", format!("branch {i}: {why}")));
            }
        }
    }

    if problem.is_none() {
        let mut keep = Vec::new();
        for (i, (b, (resolved, dls))) in branches.iter().zip(&resolved).enumerate() {
            let policy = DeliveryPolicy::from_spec(b.delivery.as_ref());
            let reply = resolved
                .reply_uri
                .clone()
                .or_else(|| top_reply.clone())
                .map_or(ReplyTo::Drop, ReplyTo::Url);
            let mut specs = Vec::new();
            let subscriber_reads = match &resolved.filter_uri {
                Some(filter_uri) => {
                    let filtered = channel_topic(ns, &branch_channel(name, i));
                    specs.push((
                        format!("{}filter-{i}", dispatcher_prefix(ns, name)),
                        DispatchSpec {
                            topic: ingress.clone(),
                            group: format!("knative-parallel-{ns}-{name}-filter-{i}"),
                            filter: Arc::new(Filter::Everything),
                            subscriber: filter_uri.clone(),
                            dead_letter: dls.clone(),
                            policy: policy.clone(),
                            ordered,
                            // What the filter answers with is what goes on.
                            reply: ReplyTo::Topic(filtered.clone()),
                            records: Records::CloudEvents,
                        },
                    ));
                    filtered
                }
                None => ingress.clone(),
            };
            specs.push((
                format!("{}{i}", dispatcher_prefix(ns, name)),
                DispatchSpec {
                    topic: subscriber_reads,
                    group: format!("knative-parallel-{ns}-{name}-{i}"),
                    filter: Arc::new(Filter::Everything),
                    subscriber: resolved.subscriber_uri.clone(),
                    dead_letter: dls.clone(),
                    policy,
                    ordered,
                    reply,
                    records: Records::CloudEvents,
                },
            ));
            for (key, spec) in specs {
                if let Err(e) = ctx.dispatchers.ensure(&key, spec).await {
                    problem.get_or_insert(("DispatcherFailed", e.to_string()));
                }
                keep.push(key);
            }
        }
        let prefix = dispatcher_prefix(ns, name);
        ctx.dispatchers
            .stop_where(|k| k.starts_with(&prefix) && !keep.iter().any(|kept| kept == k));
    }

    status.branches = resolved.into_iter().map(|(b, _)| b).collect();
    status.address = Some(Addressable {
        url: channel_url(ns, &ingress_channel(name), ctx.http_port),
    });
    let retry = set_ready(&mut status.conditions, problem, now);
    if status != par.status {
        let mut next = par.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(retry.map_or(Action::Done, Action::RequeueAfter))
}
