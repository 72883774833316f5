//! The request body limit: manifests are small, and a body over the limit is refused
//! with 413 (a Kubernetes `Status` saying so), at once when its Content-Length says
//! so, else when that many bytes have come.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::header;

use super::ApiError;

/// Requests larger than this are refused.
pub(crate) const MAX_BODY: usize = 4 << 20;

/// The limit of the bodies the handlers read (axum's is 2 MB).
pub(super) fn layer() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY)
}

/// A write's body, read whole within the limit.
#[derive(Debug)]
pub(super) struct Manifest(pub(super) Bytes);

impl<S: Send + Sync> FromRequest<S> for Manifest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // axum cuts a body at the limit only as it reads it: a client that announced
        // 50 MB would be waited for.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
        }
        match Bytes::from_request(req, state).await {
            Ok(body) => Ok(Self(body)),
            Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
                Err(ApiError::PayloadTooLarge { limit: MAX_BODY })
            }
            Err(e) => Err(ApiError::BadRequest(format!("reading the body: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    /// What a request to a route reading a `Manifest` under `layer()` is answered.
    async fn answer(req: Request) -> (StatusCode, String) {
        let app = Router::new()
            .route(
                "/",
                post(|Manifest(body): Manifest| async move { body.len().to_string() }),
            )
            .layer(layer());
        let resp = app.oneshot(req).await.unwrap().into_response();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_body_without_a_length_is_refused_with_413_once_over_the_limit() {
        // No Content-Length: only reading finds the size.
        let unannounced = |n: usize| Request::post("/").body(Body::from(vec![b'x'; n])).unwrap();
        let (status, body) = answer(unannounced(MAX_BODY + 1)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(body.contains("over the API's limit of 4 MiB"), "{body}");
        assert!(
            body.contains("\"reason\":\"RequestEntityTooLarge\""),
            "{body}"
        );
        let (status, body) = answer(unannounced(MAX_BODY)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, MAX_BODY.to_string());
    }

    #[tokio::test]
    async fn a_body_announced_over_the_limit_is_refused_before_it_is_read() {
        // The body is empty: only its Content-Length can have it refused.
        let req = Request::post("/")
            .header(header::CONTENT_LENGTH, (MAX_BODY + 1).to_string())
            .body(Body::empty())
            .unwrap();
        let (status, body) = answer(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }
}
