//! API failures, answered as Kubernetes `Status` objects: the one place where an
//! error becomes a response (and a log line, in the request's span).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token: the CLI reads it from the data directory's `token` file (set PAAS_DATA_DIR or --data-dir to the one `paas up` uses)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is over the API's limit of {} MiB: send one resource per request, and keep large data out of manifests", limit >> 20)]
    PayloadTooLarge { limit: usize },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{kind} {name:?} is invalid: {}", causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        kind: &'static str,
        name: String,
        causes: Vec<(String, String)>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(StoreError::AlreadyExists { .. }) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Conflict { .. }) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NotFound(_) | ApiError::Store(StoreError::NotFound { .. }) => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::PayloadTooLarge { .. } => "RequestEntityTooLarge",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Store(StoreError::AlreadyExists { .. }) => "AlreadyExists",
            ApiError::Store(StoreError::Conflict { .. }) => "Conflict",
            ApiError::Store(_) | ApiError::Internal(_) => "InternalError",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "API call failed");
        } else {
            tracing::debug!(error = %self, "API call refused");
        }
        let causes: Vec<_> = match &self {
            ApiError::Invalid { causes, .. } => causes
                .iter()
                .map(|(field, message)| json!({"field": field, "message": message}))
                .collect(),
            _ => vec![],
        };
        let body = json!({
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "details": {"causes": causes},
            "code": status.as_u16(),
        });
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
