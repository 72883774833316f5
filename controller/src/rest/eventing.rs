//! `eventing.knative.dev/v1` (Brokers, Triggers) and `flows.knative.dev/v1`
//! (Sequences) on the REST API.
//!
//! ```text
//! (and the same under /apis/flows.knative.dev/v1 for sequences and parallels,
//! /apis/sources.knative.dev/v1 for pingsources and /apis/sources.knative.dev/v1beta1
//! for kafkasources)
//! GET    /apis/eventing.knative.dev/v1/{brokers|triggers}                 all namespaces
//! GET    /apis/eventing.knative.dev/v1/namespaces/{ns}/{brokers|triggers}[/{name}]
//! POST   /apis/eventing.knative.dev/v1/namespaces/{ns}/{brokers|triggers}
//! PUT    /apis/eventing.knative.dev/v1/namespaces/{ns}/{brokers|triggers}/{name}
//! DELETE /apis/eventing.knative.dev/v1/namespaces/{ns}/{brokers|triggers}/{name}
//! ```

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use paas_api::eventing::{Broker, Trigger, EVENTING_API_VERSION};
use paas_api::eventing_validation::{
    validate_broker, validate_kafka_source, validate_parallel, validate_ping_source,
    validate_sequence, validate_trigger,
};
use paas_api::flows::{Parallel, Sequence, FLOWS_API_VERSION};
use paas_api::kafka_source::{KafkaSource, KAFKA_SOURCE_API_VERSION};
use paas_api::sources::{PingSource, SOURCES_API_VERSION};
use paas_api::validation::Report;
use paas_api::Object;
use serde_json::json;

use super::{json_response, read_object, to_json, ApiError, ApiState};
use crate::store::StoreExt;

/// What the API needs to know of a writable eventing kind.
trait Writable: Object {
    fn validate(&self) -> Report;
    fn clear_status(&mut self);
    fn set_type(&mut self);
}

/// `Writable` for a kind whose validation is `validate` and whose status is reset on
/// every write, as the API server resets what clients send in `status`.
macro_rules! writable {
    ($ty:ty, $validate:expr) => {
        impl Writable for $ty {
            fn validate(&self) -> Report {
                $validate(self)
            }
            fn clear_status(&mut self) {
                self.status = Default::default();
            }
            fn set_type(&mut self) {
                self.api_version = Self::API_VERSION.into();
                self.kind = Self::KIND.into();
            }
        }
    };
}

writable!(Broker, validate_broker);
writable!(Sequence, validate_sequence);
writable!(Parallel, validate_parallel);
writable!(PingSource, validate_ping_source);
writable!(KafkaSource, validate_kafka_source);
writable!(Trigger, validate_trigger_and_filters);

/// A trigger's fields, then its CESQL expressions, parsed here where the parser lives,
/// so that a bad one is refused at apply time with its position.
fn validate_trigger_and_filters(t: &Trigger) -> Report {
    let mut report = validate_trigger(t);
    if report.errors.is_empty() {
        if let Err(e) = paas_eventing::filter::Filter::of_trigger(&t.spec) {
            report.errors.push(paas_api::validation::FieldError {
                path: e.path,
                message: e.message,
            });
        }
    }
    report
}

pub(super) async fn route(
    state: &ApiState,
    req: Request<Incoming>,
    group: &str,
    parts: &[&str],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = req.method().clone();
    let not_allowed = || ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/apis/{group}/{}", parts.join("/")),
    };
    let at = match parts {
        [plural] => At::new(None, plural, None),
        ["namespaces", ns, plural] => At::new(Some(ns), plural, None),
        ["namespaces", ns, plural, name] => At::new(Some(ns), plural, Some(name)),
        ["namespaces", ns, plural, name, "deliveries"] => At {
            deliveries: true,
            ..At::new(Some(ns), plural, Some(name))
        },
        _ => return Err(not_allowed()),
    };
    let plural = at.plural;
    match (group, plural) {
        (EVENTING_API_VERSION, "brokers") => handle::<Broker>(state, req, at).await,
        (EVENTING_API_VERSION, "triggers") => handle::<Trigger>(state, req, at).await,
        (FLOWS_API_VERSION, "sequences") => handle::<Sequence>(state, req, at).await,
        (FLOWS_API_VERSION, "parallels") => handle::<Parallel>(state, req, at).await,
        (SOURCES_API_VERSION, "pingsources") => handle::<PingSource>(state, req, at).await,
        (KAFKA_SOURCE_API_VERSION, "kafkasources") => handle::<KafkaSource>(state, req, at).await,
        _ => Err(ApiError::NotFound(format!(
            "no {plural} in {group}: it has {}",
            match group {
                FLOWS_API_VERSION => "sequences and parallels",
                SOURCES_API_VERSION => "pingsources",
                KAFKA_SOURCE_API_VERSION => "kafkasources",
                _ => "brokers and triggers",
            }
        ))),
    }
    .map_err(|e| match e {
        ApiError::MethodNotAllowed { .. } => not_allowed(),
        e => e,
    })
}

/// What a path under a group names: a kind's collection (in a namespace or all), one
/// object, or one object's deliveries.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    ns: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    deliveries: bool,
}

impl<'a> At<'a> {
    fn new(ns: Option<&'a str>, plural: &'a str, name: Option<&'a str>) -> Self {
        Self {
            ns,
            plural,
            name,
            deliveries: false,
        }
    }
}

/// One kind's CRUD: list (all or one namespace), get, create, replace, delete; and an
/// object's deliveries.
async fn handle<T: Writable>(
    state: &ApiState,
    req: Request<Incoming>,
    at: At<'_>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = req.method().clone();
    let (ns, name) = (at.ns, at.name);
    if at.deliveries {
        return match (method, ns, name) {
            (Method::GET, Some(ns), Some(name)) => {
                super::deliveries::deliveries::<T>(state, ns, name).await
            }
            (method, _, _) => Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: String::new(),
            }),
        };
    }
    match (method, ns, name) {
        (Method::GET, ns, None) => list::<T>(state, ns).await,
        (Method::GET, Some(ns), Some(name)) => get::<T>(state, ns, name).await,
        (Method::POST, Some(ns), None) => create::<T>(state, read(req, ns, None).await?).await,
        (Method::PUT, Some(ns), Some(name)) => {
            replace::<T>(state, read(req, ns, Some(name)).await?).await
        }
        (Method::DELETE, Some(ns), Some(name)) => delete::<T>(state, ns, name).await,
        (method, _, _) => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: String::new(),
        }),
    }
}

async fn list<T: Object>(
    state: &ApiState,
    ns: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let items: Vec<_> = state
        .ctx
        .store
        .list::<T>(ns)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
        &[],
    ))
}

async fn get<T: Object>(
    state: &ApiState,
    ns: &str,
    name: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    match state.ctx.store.get::<T>(ns, name).await? {
        Some(o) => Ok(json_response(StatusCode::OK, &to_json(&o), &[])),
        None => Err(ApiError::NotFound(format!(
            "{} {ns}/{name} not found",
            T::PLURAL
        ))),
    }
}

async fn read<T: Writable>(
    req: Request<Incoming>,
    ns: &str,
    name: Option<&str>,
) -> Result<T, ApiError> {
    let mut o: T = read_object(req, ns, name).await?;
    o.set_type();
    o.clear_status();
    Ok(o)
}

fn check<T: Writable>(o: &T) -> Result<Vec<String>, ApiError> {
    let report = o.validate();
    if !report.errors.is_empty() {
        return Err(ApiError::Invalid {
            kind: T::KIND,
            name: o.name().to_owned(),
            causes: report
                .errors
                .iter()
                .map(|e| (e.path.clone(), e.message.clone()))
                .collect(),
        });
    }
    Ok(report.warnings.iter().map(ToString::to_string).collect())
}

async fn create<T: Writable>(state: &ApiState, o: T) -> Result<Response<Full<Bytes>>, ApiError> {
    let warnings = check(&o)?;
    let created = state.ctx.store.create(&o).await?;
    tracing::info!(kind = T::KIND, name = %created.name(), namespace = %created.namespace(), "created");
    Ok(json_response(
        StatusCode::CREATED,
        &to_json(&created),
        &warnings,
    ))
}

async fn replace<T: Writable>(state: &ApiState, o: T) -> Result<Response<Full<Bytes>>, ApiError> {
    let warnings = check(&o)?;
    if state
        .ctx
        .store
        .get::<T>(o.namespace(), o.name())
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "{} {}/{} not found: create it first",
            T::PLURAL,
            o.namespace(),
            o.name()
        )));
    }
    let updated = state.ctx.store.update(&o).await?;
    Ok(json_response(StatusCode::OK, &to_json(&updated), &warnings))
}

async fn delete<T: Object>(
    state: &ApiState,
    ns: &str,
    name: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    if !state.ctx.store.delete::<T>(ns, name).await? {
        return Err(ApiError::NotFound(format!(
            "{} {ns}/{name} not found",
            T::PLURAL
        )));
    }
    tracing::info!(kind = T::KIND, %name, namespace = %ns, "deleted");
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "details": {"name": name, "kind": T::PLURAL}}),
        &[],
    ))
}
