//! Rules a write must pass beyond its kind's own validation (which api holds): those
//! that need the running platform (the autoscaler's configuration, the runtime, the
//! store) or a parser that lives in another crate (CloudEvents SQL, in eventing).
//! They are the only per-kind checks of the REST API, keyed by type.

use std::any::Any;

use paas_api::eventing::Trigger;
use paas_api::{Object, Revision, Service};
use paas_runtime::ReplicaSpec;

use super::{ApiError, ApiState};
use crate::store::StoreExt;

/// A problem: the field path and what is wrong with it.
pub(super) type Cause = (String, String);

/// Add to `causes` what the platform finds wrong with `o`; `causes` holds what the
/// kind's own validation found.
pub(super) async fn admit<T: Object>(
    state: &ApiState,
    o: &T,
    causes: &mut Vec<Cause>,
) -> Result<(), ApiError> {
    let any: &(dyn Any + Send + Sync) = o;
    if let Some(svc) = any.downcast_ref::<Service>() {
        service(state, svc, causes).await?;
    } else if let Some(trigger) = any.downcast_ref::<Trigger>() {
        trigger_filters(trigger, causes);
    }
    Ok(())
}

/// A service's scaling annotations against the platform's settings, its named
/// revisions and its container.
async fn service(state: &ApiState, svc: &Service, causes: &mut Vec<Cause>) -> Result<(), ApiError> {
    // api's validation has reported every annotation that is wrong on its own
    // (autoscaling, paas.dev/idle, ...): only what the platform's settings make wrong
    // is added, so that no problem is named twice.
    let annotations = &svc.spec.template.metadata.annotations;
    for e in
        paas_autoscaler::ScalingSpec::platform_problems(&state.ctx.autoscaler.config, annotations)
    {
        causes.push((
            format!("spec.template.metadata.annotations.{}", e.key),
            e.problem,
        ));
    }
    // Named revisions must exist, and be this service's: a typo is an error now
    // rather than a route that never becomes ready.
    for (i, t) in svc.spec.traffic.iter().enumerate() {
        let Some(revision) = t.revision_name.as_deref() else {
            continue;
        };
        let found = state
            .ctx
            .store
            .get::<Revision>(svc.namespace(), revision)
            .await?;
        if found.is_none_or(|r| r.configuration_name() != Some(svc.name())) {
            causes.push((
                format!("spec.traffic[{i}].revisionName"),
                format!(
                    "{revision} is not a revision of {}: `paas get revisions` lists them",
                    svc.name()
                ),
            ));
        }
    }
    // The runtime is asked last, and only of a service that is otherwise right.
    if causes.is_empty() {
        let probe = Revision {
            metadata: paas_api::ObjectMeta::named(svc.namespace(), svc.name()),
            spec: svc.spec.template.spec.clone(),
            ..Revision::default()
        };
        if let Some(spec) = ReplicaSpec::from_revision(&probe) {
            if let Err(e) = state.ctx.fleet.runtime().check(&spec) {
                causes.push(("spec.template.spec.containers[0]".into(), e.to_string()));
            }
        }
    }
    Ok(())
}

/// A trigger's CloudEvents SQL expressions, parsed here where the parser lives, so that
/// a bad one is refused at apply time with its position (once its fields are right).
fn trigger_filters(t: &Trigger, causes: &mut Vec<Cause>) {
    if !causes.is_empty() {
        return;
    }
    if let Err(e) = paas_eventing::filter::Filter::of_trigger(&t.spec) {
        causes.push((e.path, e.message));
    }
}
