//! `eventing.knative.dev/v1` on the REST API: Brokers and Triggers.
//!
//! ```text
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
use paas_api::eventing_validation::{validate_broker, validate_trigger};
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

impl Writable for Broker {
    fn validate(&self) -> Report {
        validate_broker(self)
    }
    fn clear_status(&mut self) {
        self.status = Default::default();
    }
    fn set_type(&mut self) {
        self.api_version = EVENTING_API_VERSION.into();
        self.kind = Self::KIND.into();
    }
}

impl Writable for Trigger {
    fn validate(&self) -> Report {
        let mut report = validate_trigger(self);
        // CESQL expressions are parsed here, where the parser lives, so that a bad one
        // is refused at apply time with its position.
        if report.errors.is_empty() {
            if let Err(e) = paas_eventing::filter::Filter::of_trigger(&self.spec) {
                report.errors.push(paas_api::validation::FieldError {
                    path: e.path,
                    message: e.message,
                });
            }
        }
        report
    }
    fn clear_status(&mut self) {
        self.status = Default::default();
    }
    fn set_type(&mut self) {
        self.api_version = EVENTING_API_VERSION.into();
        self.kind = Self::KIND.into();
    }
}

pub(super) async fn route(
    state: &ApiState,
    req: Request<Incoming>,
    parts: &[&str],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = req.method().clone();
    match (parts, &method) {
        (["brokers"], &Method::GET) => list::<Broker>(state, None).await,
        (["triggers"], &Method::GET) => list::<Trigger>(state, None).await,
        (["namespaces", ns, "brokers"], &Method::GET) => list::<Broker>(state, Some(ns)).await,
        (["namespaces", ns, "triggers"], &Method::GET) => list::<Trigger>(state, Some(ns)).await,
        (["namespaces", ns, "brokers", name], &Method::GET) => get::<Broker>(state, ns, name).await,
        (["namespaces", ns, "triggers", name], &Method::GET) => {
            get::<Trigger>(state, ns, name).await
        }
        (["namespaces", ns, "brokers"], &Method::POST) => {
            create::<Broker>(state, read(req, ns, None).await?).await
        }
        (["namespaces", ns, "triggers"], &Method::POST) => {
            create::<Trigger>(state, read(req, ns, None).await?).await
        }
        (["namespaces", ns, "brokers", name], &Method::PUT) => {
            replace::<Broker>(state, read(req, ns, Some(name)).await?).await
        }
        (["namespaces", ns, "triggers", name], &Method::PUT) => {
            replace::<Trigger>(state, read(req, ns, Some(name)).await?).await
        }
        (["namespaces", ns, "brokers", name], &Method::DELETE) => {
            delete::<Broker>(state, ns, name).await
        }
        (["namespaces", ns, "triggers", name], &Method::DELETE) => {
            delete::<Trigger>(state, ns, name).await
        }
        _ => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: format!("/apis/{EVENTING_API_VERSION}/{}", parts.join("/")),
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
