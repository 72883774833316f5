//! Service → its Configuration and Route (same name), and status rolled up from both.

use std::collections::BTreeMap;

use paas_api::canary;
use paas_api::condition::{ConditionStatus, Conditions};
use paas_api::keys;
use paas_api::serving::{ConfigurationSpec, RouteSpec, TrafficTarget};
use paas_api::{Configuration, Object, Route, Service};

use super::{owned_by, Action, Context, Result};
use crate::store::StoreExt;

pub async fn reconcile(svc: &Service, ctx: &Context) -> Result<Action> {
    let ns = svc.namespace();
    let name = svc.name();
    let now = ctx.now();

    let cfg = match ctx.store.get::<Configuration>(ns, name).await? {
        Some(mut cfg) => {
            if cfg.spec.template != svc.spec.template {
                cfg.spec.template = svc.spec.template.clone();
                ctx.store.update(&cfg).await?
            } else {
                cfg
            }
        }
        None => {
            let mut cfg = Configuration {
                api_version: Configuration::API_VERSION.into(),
                kind: Configuration::KIND.into(),
                metadata: paas_api::ObjectMeta::named(ns, name),
                spec: ConfigurationSpec {
                    template: svc.spec.template.clone(),
                },
                status: Default::default(),
            };
            cfg.metadata
                .labels
                .insert(keys::SERVICE_LABEL.into(), name.into());
            cfg.metadata.owner_references.push(owned_by(svc));
            ctx.store.create(&cfg).await?
        }
    };

    let traffic = desired_traffic(svc);
    let route_annotations = route_annotations(svc);
    let route = match ctx.store.get::<Route>(ns, name).await? {
        Some(mut route) => {
            if route.spec.traffic != traffic || route.metadata.annotations != route_annotations {
                route.spec.traffic = traffic;
                route.metadata.annotations = route_annotations;
                ctx.store.update(&route).await?
            } else {
                route
            }
        }
        None => {
            let mut route = Route {
                api_version: Route::API_VERSION.into(),
                kind: Route::KIND.into(),
                metadata: paas_api::ObjectMeta::named(ns, name),
                spec: RouteSpec { traffic },
                status: Default::default(),
            };
            route
                .metadata
                .labels
                .insert(keys::SERVICE_LABEL.into(), name.into());
            route.metadata.owner_references.push(owned_by(svc));
            route.metadata.annotations = route_annotations;
            ctx.store.create(&route).await?
        }
    };

    let mut status = svc.status.clone();
    status.observed_generation = svc.metadata.generation;
    status.latest_created_revision_name = cfg.status.latest_created_revision_name.clone();
    status.latest_ready_revision_name = cfg.status.latest_ready_revision_name.clone();
    status.url = route.status.url.clone();
    status.address = route.status.address.clone();
    status.traffic = route.status.traffic.clone();

    let cfg_current = cfg.status.observed_generation == cfg.metadata.generation;
    let route_current = route.status.observed_generation == route.metadata.generation;
    mirror(
        &mut status.conditions,
        "ConfigurationsReady",
        cfg_current,
        &cfg.status.conditions,
        now,
    );
    mirror(
        &mut status.conditions,
        "RoutesReady",
        route_current,
        &route.status.conditions,
        now,
    );
    // A canary's outcome is told on the service, without touching its readiness: a
    // failed canary leaves the stable revision serving.
    match route.status.conditions.get("Canary") {
        Some(c) => status.conditions.set(
            "Canary",
            c.status,
            c.reason.as_deref(),
            c.message.as_deref(),
            now,
        ),
        None => status.conditions.remove("Canary"),
    }
    let parts = [
        status.conditions.get("ConfigurationsReady").cloned(),
        status.conditions.get("RoutesReady").cloned(),
    ];
    let failed = parts
        .iter()
        .flatten()
        .find(|c| c.status == ConditionStatus::False);
    let pending = parts
        .iter()
        .flatten()
        .find(|c| c.status == ConditionStatus::Unknown);
    match (failed, pending) {
        (Some(c), _) | (None, Some(c)) => {
            let (st, reason, message) = (c.status, c.reason.clone(), c.message.clone());
            status
                .conditions
                .set("Ready", st, reason.as_deref(), message.as_deref(), now);
        }
        (None, None) => status.conditions.set_true("Ready", now),
    }

    if status != svc.status {
        let mut next = svc.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(Action::Done)
}

/// The service's annotations its route acts on: the rollout duration (as in Knative)
/// and the canary settings.
fn route_annotations(svc: &Service) -> BTreeMap<String, String> {
    svc.metadata
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() == keys::ROLLOUT_DURATION || k.starts_with(canary::PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The service's traffic block, or Knative's default: everything to the latest ready revision.
pub(crate) fn desired_traffic(svc: &Service) -> Vec<TrafficTarget> {
    if svc.spec.traffic.is_empty() {
        vec![TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..TrafficTarget::default()
        }]
    } else {
        svc.spec.traffic.clone()
    }
}

/// Copy a child's Ready condition into the parent's condition `type_`.
fn mirror(
    into: &mut Conditions,
    type_: &str,
    current: bool,
    from: &Conditions,
    now: chrono::DateTime<chrono::Utc>,
) {
    match from.get("Ready") {
        Some(c) if current => into.set(
            type_,
            c.status,
            c.reason.as_deref(),
            c.message.as_deref(),
            now,
        ),
        _ => into.set(
            type_,
            ConditionStatus::Unknown,
            Some("Outdated"),
            Some("waiting for the controller"),
            now,
        ),
    }
}
