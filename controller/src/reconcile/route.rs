//! Route → traffic targets resolved to revisions, and the gateway's routing table.

use std::sync::Arc;

use std::time::Duration;

use paas_api::canary::canary_spec;
use paas_api::condition::ConditionStatus;
use paas_api::duration::parse_duration;
use paas_api::eventing::Broker;
use paas_api::keys;
use paas_api::serving::{service_url, Addressable, TrafficTarget};
use paas_api::serving::{CanaryPhase, RouteStatus};
use paas_api::{Configuration, Object, Revision, RevisionKey, Route};
use paas_eventing::cloudevent::{CloudEvent, Data};
use paas_gateway::WeightedRevision;

use super::{canary, gc, rollout, Action, Context, Result};
use crate::store::StoreExt;

pub async fn reconcile(route: &Route, ctx: &Context) -> Result<Action> {
    let ns = route.namespace();
    let name = route.name();
    let now = ctx.now();
    let cfg = ctx.store.get::<Configuration>(ns, name).await?;

    let mut status = route.status.clone();
    let mut next_step = None;
    let mut verdict = None;
    status.observed_generation = route.metadata.generation;
    let url = service_url(ns, name, ctx.http_port);
    status.url = Some(url.clone());
    status.address = Some(Addressable { url });

    let mut resolved = Vec::new();
    // The untagged latest-revision target: where it sits, its share, its revision.
    let mut latest_target: Option<(usize, u32, String)> = None;
    let mut problem: Option<(ConditionStatus, &str, String)> = None;
    for t in &route.spec.traffic {
        let latest = t.latest_revision.unwrap_or(t.revision_name.is_none());
        let revision = if latest {
            let ready = cfg
                .as_ref()
                .and_then(|c| c.status.latest_ready_revision_name.clone());
            if ready.is_none() {
                problem.get_or_insert((
                    ConditionStatus::Unknown,
                    "RevisionMissing",
                    format!("configuration {name} has no ready revision yet"),
                ));
            }
            ready
        } else {
            let wanted = t.revision_name.clone().unwrap_or_default();
            // One read per named target, not a list of every revision in the namespace.
            if ctx.store.get::<Revision>(ns, &wanted).await?.is_none() {
                problem.get_or_insert((
                    ConditionStatus::False,
                    "RevisionMissing",
                    format!("revision {wanted:?} referenced in traffic not found"),
                ));
                None
            } else {
                Some(wanted)
            }
        };
        if let Some(revision_name) = revision {
            if latest && t.tag.is_none() {
                // Expanded below into the revisions of a gradual rollout.
                let (_, share, _) =
                    latest_target.get_or_insert((resolved.len(), 0, revision_name.clone()));
                *share += t.percent.unwrap_or(0);
                continue;
            }
            resolved.push(TrafficTarget {
                tag: t.tag.clone(),
                revision_name: Some(revision_name),
                configuration_name: None,
                latest_revision: Some(latest),
                percent: t.percent,
                url: t
                    .tag
                    .as_ref()
                    .map(|tag| service_url(ns, &format!("{tag}-{name}"), ctx.http_port)),
            });
        }
    }
    let problem_free = problem.is_none();
    match problem {
        Some((st, reason, message)) => {
            status
                .conditions
                .set("AllTrafficAssigned", st, Some(reason), Some(&message), now);
            status
                .conditions
                .set("Ready", st, Some(reason), Some(&message), now);
            // Keep serving what was assigned before until every target resolves.
        }
        None => {
            if let Some((at, share, latest)) = latest_target {
                let expanded = expand_latest(ctx, route, &mut status, &latest, share);
                resolved.splice(at..at, expanded.targets);
                next_step = expanded.next_look;
                verdict = expanded.verdict;
            }
            status.traffic = resolved;
            status.conditions.set_true("AllTrafficAssigned", now);
            status.conditions.set_true("Ready", now);
        }
    }

    let serving = status.traffic.clone();
    if status != route.status {
        let mut next = route.clone();
        next.status = status;
        let written = ctx.store.update_status(&next).await?;
        publish_route(ctx, &written).await;
    } else {
        publish_route(ctx, route).await;
    }
    if let Some(v) = verdict {
        announce(ctx, ns, name, &v).await;
    }
    if problem_free {
        let latest = cfg.as_ref().map_or_else(Vec::new, |c| {
            vec![
                c.status.latest_created_revision_name.clone(),
                c.status.latest_ready_revision_name.clone(),
            ]
        });
        gc::collect(ctx, ns, name, &serving, &latest).await?;
    }
    Ok(match next_step {
        Some(after) => Action::RequeueAfter(after),
        None => Action::Done,
    })
}

/// The latest-revision target resolved to revisions: through a canary when the
/// route declares one, else through a gradual rollout (which may be instant).
struct Expanded {
    targets: Vec<TrafficTarget>,
    next_look: Option<Duration>,
    verdict: Option<canary::Verdict>,
}

fn expand_latest(
    ctx: &Context,
    route: &Route,
    status: &mut RouteStatus,
    latest: &str,
    share: u32,
) -> Expanded {
    let now = ctx.now();
    let target = |revision: &str, percent: u32| TrafficTarget {
        revision_name: Some(revision.to_owned()),
        latest_revision: Some(true),
        percent: Some(percent),
        ..TrafficTarget::default()
    };
    // Validation refused a bad canary when the service was applied.
    if let Ok(Some(spec)) = canary_spec(&route.metadata.annotations) {
        let key = RevisionKey {
            namespace: route.namespace().to_owned(),
            name: latest.to_owned(),
        };
        let measured = ctx.table.revision(&key).outcomes.snapshot();
        let plan = canary::plan(&spec, status.canary.as_ref(), latest, &measured, now);
        // Percents of the whole route: the target's share split as the plan says,
        // rounding in the candidate's favour so that the total stays exact.
        let mut left = share;
        let mut targets = Vec::new();
        for (i, (revision, percent)) in plan.split.iter().enumerate() {
            let part = if i + 1 == plan.split.len() {
                left
            } else {
                (share * percent).div_ceil(100).min(left)
            };
            left -= part;
            targets.push(target(revision, part));
        }
        let (st, reason) = match plan.state.phase {
            CanaryPhase::Progressing => (ConditionStatus::Unknown, "Progressing"),
            CanaryPhase::Succeeded => (ConditionStatus::True, "Promoted"),
            CanaryPhase::Failed => (ConditionStatus::False, "CanaryFailed"),
        };
        status.conditions.set(
            "Canary",
            st,
            Some(reason),
            plan.state.message.as_deref(),
            now,
        );
        status.canary = Some(plan.state);
        status.rollout = None;
        return Expanded {
            targets,
            next_look: plan.check_in,
            verdict: plan.verdict,
        };
    }
    status.canary = None;
    status.conditions.remove("Canary");
    let duration = route
        .metadata
        .annotations
        .get(keys::ROLLOUT_DURATION)
        .and_then(|d| parse_duration(d))
        .unwrap_or(Duration::ZERO);
    let plan = rollout::plan(status.rollout.as_ref(), latest, share, duration, now);
    let targets = plan
        .state
        .revisions
        .iter()
        .rev()
        .map(|r| target(&r.revision_name, r.percent))
        .collect();
    status.rollout = (!duration.is_zero()).then_some(plan.state);
    Expanded {
        targets,
        next_look: plan.next_step_in,
        verdict: None,
    }
}

/// A canary's end is logged, and sent as a CloudEvent to the namespace's `default`
/// broker when there is one, for whoever wants to be told.
async fn announce(ctx: &Context, ns: &str, name: &str, verdict: &canary::Verdict) {
    let (ty, message) = match verdict {
        canary::Verdict::Failed(m) => {
            tracing::warn!(service = %name, namespace = %ns, "canary failed: {m}");
            ("dev.paas.canary.failed", m)
        }
        canary::Verdict::Promoted(m) => {
            tracing::info!(service = %name, namespace = %ns, "canary promoted: {m}");
            ("dev.paas.canary.promoted", m)
        }
    };
    let Ok(Some(_)) = ctx.store.get::<Broker>(ns, "default").await else {
        return;
    };
    let mut event = CloudEvent::new(
        uuid::Uuid::new_v4().to_string(),
        format!("/apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}"),
        ty,
    );
    event.subject = Some(name.to_owned());
    event.time = Some(ctx.now().to_rfc3339());
    event.datacontenttype = Some("application/json".into());
    event.data = Some(Data::Json(
        serde_json::json!({ "service": name, "message": message }),
    ));
    let topic = paas_eventing::broker_topic(ns, "default");
    let record = paas_eventing::cloudevent::kafka_binding::to_record(&event);
    if let Err(e) = ctx.event_log.append(&topic, vec![record]).await {
        tracing::warn!(%topic, error = %e, "could not send the canary's event");
    }
}

/// Why a route has no revision to send requests to, in the words of its own Ready
/// condition and of its latest revision's.
async fn why_not_serving(ctx: &Context, route: &Route) -> String {
    let mut why = match route.status.conditions.get("Ready") {
        Some(c) if c.status != ConditionStatus::True => c
            .message
            .clone()
            .unwrap_or_else(|| c.reason.clone().unwrap_or_default()),
        _ => String::new(),
    };
    let config = ctx
        .store
        .get::<Configuration>(route.namespace(), route.name())
        .await
        .ok()
        .flatten();
    let latest = config.and_then(|c| c.status.latest_created_revision_name);
    if let Some(latest) = latest {
        let revision = ctx
            .store
            .get::<Revision>(route.namespace(), &latest)
            .await
            .ok()
            .flatten();
        if let Some(c) = revision
            .as_ref()
            .and_then(|r| r.status.conditions.get("Ready"))
        {
            if c.status != ConditionStatus::True {
                let reason = c.message.as_deref().or(c.reason.as_deref()).unwrap_or("");
                let line = format!("revision {latest}: {reason}");
                why = if why.is_empty() {
                    line
                } else {
                    format!("{why}; {line}")
                };
            }
        }
    }
    if why.is_empty() {
        "it has no ready revision yet".to_owned()
    } else {
        // One line: the answer is a plain-text body.
        why.replace('\n', " | ")
    }
}

/// The gateway's owner name of a route's hosts.
fn owner(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Put every stored route in the gateway's table, as a restarted paas does before its
/// controller catches up.
pub async fn publish(ctx: &Context) -> Result<()> {
    for route in ctx.store.list::<Route>(None).await? {
        publish_route(ctx, &route).await;
    }
    Ok(())
}

/// Put one route's resolved traffic (its status as stored) in the gateway's table: its
/// host, and a host per tag. Other routes are not read, so a change costs the same
/// however many services there are.
pub async fn publish_route(ctx: &Context, route: &Route) {
    let ns = route.namespace();
    let name = route.name();
    let mut hosts = Vec::new();
    let mut targets: Vec<WeightedRevision> = Vec::new();
    for t in &route.status.traffic {
        let Some(rev) = &t.revision_name else {
            continue;
        };
        let key = RevisionKey {
            namespace: ns.to_owned(),
            name: rev.clone(),
        };
        let percent = t.percent.unwrap_or(0);
        match targets.iter_mut().find(|w| w.revision.key == key) {
            Some(w) => w.percent += percent,
            None => targets.push(WeightedRevision {
                percent,
                revision: ctx.table.revision(&key),
            }),
        }
        if let Some(tag) = &t.tag {
            hosts.push((
                format!("{tag}-{name}.{ns}.localhost"),
                Arc::new(paas_gateway::Route::new(
                    format!("{ns}/{name} tag {tag}"),
                    vec![WeightedRevision {
                        percent: 100,
                        revision: ctx.table.revision(&key),
                    }],
                )),
            ));
        }
    }
    targets.retain(|t| t.percent > 0);
    let host = format!("{name}.{ns}.localhost");
    let main = if !targets.is_empty() {
        paas_gateway::Route::new(owner(ns, name), targets)
    } else {
        let why = why_not_serving(ctx, route).await;
        paas_gateway::Route::unavailable(owner(ns, name), why)
    };
    // The route's own host wins over a tag host of the same name, as it did when
    // the table was built in one go.
    hosts.retain(|(h, _)| *h != host);
    hosts.push((host, Arc::new(main)));
    ctx.table.set_owner_routes(&owner(ns, name), hosts);
}

/// A deleted route's hosts leave the gateway's table.
pub fn unpublish(ctx: &Context, ns: &str, name: &str) {
    ctx.table.remove_owner(&owner(ns, name));
}
