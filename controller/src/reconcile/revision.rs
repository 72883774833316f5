//! Revision → replicas in the runtime (through the fleet), and status from what runs.
//!
//! A revision is scaled by the autoscaler while it carries traffic or is its
//! configuration's latest created revision (it has to get ready before traffic moves to
//! it); otherwise it runs nothing.

use std::time::Duration;

use paas_api::condition::ConditionStatus;
use paas_api::{Configuration, Object, Revision, RevisionKey, Route};
use paas_autoscaler::ScalingSpec;
use paas_runtime::probe::ReadinessCheck;
use paas_runtime::ReplicaSpec;

use super::{Action, Context, Result};
use crate::fleet::{Desired, IdlePolicy};
use crate::store::StoreExt;

pub async fn reconcile(rev: &Revision, ctx: &Context) -> Result<Action> {
    let ns = rev.namespace();
    let now = ctx.now();
    let uid = rev.metadata.uid.clone().unwrap_or_default();
    let key = RevisionKey {
        namespace: ns.to_owned(),
        name: rev.name().to_owned(),
    };
    let mut status = rev.status.clone();
    status.observed_generation = rev.metadata.generation;

    let Some(spec) = ReplicaSpec::from_revision(rev) else {
        status.conditions.set(
            "Ready",
            ConditionStatus::False,
            Some("ContainerMissing"),
            Some("the revision has no container"),
            now,
        );
        return write(rev, status, ctx).await;
    };
    if let Err(e) = ctx.fleet.runtime().check(&spec) {
        status.conditions.set(
            "Ready",
            ConditionStatus::False,
            Some("Unsupported"),
            Some(&e.to_string()),
            now,
        );
        return write(rev, status, ctx).await;
    }

    let cc = rev.spec.container_concurrency.unwrap_or(0);
    let scaling = match ScalingSpec::resolve(&ctx.autoscaler.config, &rev.metadata.annotations, cc)
    {
        Ok(s) => s,
        Err(errors) => {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            status.conditions.set(
                "Ready",
                ConditionStatus::False,
                Some("InvalidAnnotation"),
                Some(&message),
                now,
            );
            return write(rev, status, ctx).await;
        }
    };
    let idle = match IdlePolicy::from_annotations(&rev.metadata.annotations) {
        Ok(i) => i,
        Err(message) => {
            status.conditions.set(
                "Ready",
                ConditionStatus::False,
                Some("InvalidAnnotation"),
                Some(&message),
                now,
            );
            return write(rev, status, ctx).await;
        }
    };
    let wanted = is_wanted(rev, ctx).await?;
    // After a restart, a revision that was serving resumes at the replicas it had, so
    // that adopted replicas are kept; a new one starts at its initial scale.
    let running = status
        .conditions
        .is_true("Ready")
        .then(|| status.actual_replicas.unwrap_or(0));
    ctx.autoscaler.upsert(&key, scaling, wanted, running);
    let container = rev.spec.container();
    let probe = container.and_then(|c| c.readiness_probe.as_ref());
    ctx.fleet.set_desired(
        &uid,
        Desired {
            key: key.clone(),
            spec,
            check: ReadinessCheck::from_probe(probe),
            period: Duration::from_secs(u64::from(
                probe.and_then(|p| p.period_seconds).unwrap_or(1).max(1),
            )),
            failure_threshold: probe.and_then(|p| p.failure_threshold).unwrap_or(3).max(1),
            timeout: Duration::from_secs(rev.spec.timeout_seconds()),
            container_concurrency: cc,
            idle,
            replicas: 0,
        },
    );

    let observed = ctx.fleet.observed(&uid);
    status.desired_replicas = Some(ctx.autoscaler.view(&key).map_or(0, |v| v.desired));
    status.actual_replicas = Some(observed.actual);
    status.ready_replicas = Some(observed.ready);
    let was_ready = status.conditions.is_true("Ready");
    if observed.ready > 0 {
        status.conditions.set_true("ResourcesAvailable", now);
        status.conditions.set_true("ContainerHealthy", now);
        status.conditions.set_true("Ready", now);
    } else if let Some(e) = &observed.start_error {
        let reason = if e.contains("not found locally") {
            "ImageNotFound"
        } else {
            "StartFailed"
        };
        let e = &with_backoff(e, &observed);
        status.conditions.set(
            "ResourcesAvailable",
            ConditionStatus::False,
            Some(reason),
            Some(e),
            now,
        );
        status
            .conditions
            .set("Ready", ConditionStatus::False, Some(reason), Some(e), now);
    } else if was_ready {
        // A ready revision whose replica is being replaced, or that carries no traffic,
        // stays Ready, as in Knative.
    } else if let Some(f) = &observed.failure {
        let f = &with_backoff(f, &observed);
        let reason = if observed.next_start.is_some() {
            "CrashLoopBackOff"
        } else {
            "ContainerUnhealthy"
        };
        status.conditions.set(
            "ContainerHealthy",
            ConditionStatus::False,
            Some("ExitCode"),
            Some(f),
            now,
        );
        status
            .conditions
            .set("Ready", ConditionStatus::False, Some(reason), Some(f), now);
    } else {
        status.conditions.set(
            "Ready",
            ConditionStatus::Unknown,
            Some("Deploying"),
            Some("waiting for a replica to pass readiness"),
            now,
        );
    }
    write(rev, status, ctx).await
}

async fn write(
    rev: &Revision,
    status: paas_api::serving::RevisionStatus,
    ctx: &Context,
) -> Result<Action> {
    if status != rev.status {
        let mut next = rev.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(Action::Done)
}

/// Whether the revision should run: routed, or its configuration's latest created.
async fn is_wanted(rev: &Revision, ctx: &Context) -> Result<bool> {
    let ns = rev.namespace();
    let Some(cfg_name) = rev.configuration_name() else {
        return Ok(false);
    };
    if let Some(cfg) = ctx.store.get::<Configuration>(ns, cfg_name).await? {
        if cfg.status.latest_created_revision_name.as_deref() == Some(rev.name()) {
            return Ok(true);
        }
    }
    let service = rev.service_name().unwrap_or(cfg_name);
    if let Some(route) = ctx.store.get::<Route>(ns, service).await? {
        if route
            .status
            .traffic
            .iter()
            .any(|t| t.revision_name.as_deref() == Some(rev.name()))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A failure's message, with when the next start will be tried while starts are held
/// back after crashes.
fn with_backoff(message: &str, observed: &crate::fleet::Observed) -> String {
    match observed.next_start {
        Some(at) => format!(
            "{message}\nback-off after {} crashes in a row: next start at {}",
            observed.restarts,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => message.to_owned(),
    }
}
