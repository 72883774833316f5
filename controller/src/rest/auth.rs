//! The bearer token's check, a layer in front of every call but `/healthz`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, Response};
use axum::response::IntoResponse;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

use super::{token, ApiError};

/// Refuse, with 401, a request without `Authorization: Bearer TOKEN` (any case of the
/// scheme). tower-http's own bearer check compares the whole header value, scheme
/// case included, and answers with an empty body: this one answers as the API does.
pub(super) fn layer(token: Arc<str>) -> ValidateRequestHeaderLayer<BearerToken> {
    ValidateRequestHeaderLayer::custom(BearerToken(token))
}

#[derive(Debug, Clone)]
pub(super) struct BearerToken(Arc<str>);

impl<B> ValidateRequest<B> for BearerToken {
    type ResponseBody = Body;

    fn validate(&mut self, req: &mut Request<B>) -> Result<(), Response<Body>> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(token::bearer);
        if presented.is_some_and(|t| token::matches(&self.0, t)) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized.into_response())
        }
    }
}
