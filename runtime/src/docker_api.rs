//! A minimal Docker Engine API client over the unix socket: one HTTP/1.1 connection per
//! call (calls are rare and the socket is local), JSON in and out, the API version
//! negotiated once against the engine's.

use std::path::PathBuf;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::{Error, Result};

/// The newest API this client is written against: Debian's engine 20.10 speaks 1.41.
const CLIENT_API: (u32, u32) = (1, 41);

#[derive(Debug, Clone)]
pub(crate) struct DockerApi {
    socket: PathBuf,
    version: String,
}

impl DockerApi {
    /// Connects once to learn the engine's API version and settles on the older of it
    /// and ours.
    pub(crate) async fn connect(socket: PathBuf) -> Result<Self> {
        let mut api = Self {
            socket,
            version: String::new(),
        };
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(rename = "ApiVersion")]
            api_version: String,
        }
        let v: Version = api.json(Method::GET, "/version", None).await?;
        let server = parse_version(&v.api_version).unwrap_or(CLIENT_API);
        let (major, minor) = server.min(CLIENT_API);
        api.version = format!("v{major}.{minor}");
        tracing::debug!(engine_api = %v.api_version, using = %api.version, "connected to the Docker Engine");
        Ok(api)
    }

    /// Sends a request and returns status and body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let what = format!("{method} {path}");
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| Error::DockerUnreachable {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| Error::DockerHttp {
                what: what.clone(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let uri = if self.version.is_empty() {
            path.to_owned()
        } else {
            format!("/{}{path}", self.version)
        };
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::HOST, "docker")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Error::Docker {
                what: what.clone(),
                status: 0,
                message: e.to_string(),
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| Error::DockerHttp {
                what: what.clone(),
                source,
            })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|source| Error::DockerHttp { what, source })?
            .to_bytes();
        Ok((status, bytes))
    }

    /// A call whose 2xx answer is JSON; any other answer becomes [`Error::Docker`].
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let bytes = self.ok(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::DockerDecode {
            what: path.to_owned(),
            source,
        })
    }

    /// A call that must answer 2xx (or 304, "already in that state").
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes> {
        let what = format!("{method} {path}");
        let (status, bytes) = self.call(method, path, body).await?;
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            Ok(bytes)
        } else {
            Err(Error::Docker {
                what,
                status: status.as_u16(),
                message: engine_message(&bytes),
            })
        }
    }
}

/// The engine's `{"message": "..."}`, or the raw body.
pub(crate) fn engine_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    serde_json::from_slice::<Msg>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned())
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Percent-encode a query value (filters are JSON).
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Container logs without a TTY come as frames: 1 byte stream, 3 zero bytes, a 4-byte
/// big-endian length, then the payload.
pub(crate) fn demux_logs(mut raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    while raw.len() >= 8 && matches!(raw[0], 0..=2) && raw[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let end = (8 + len).min(raw.len());
        out.extend_from_slice(&raw[8..end]);
        raw = &raw[end..];
    }
    out.extend_from_slice(raw);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("1.41"), Some((1, 41)));
        assert!(parse_version("1.9").unwrap() < parse_version("1.41").unwrap());
        assert_eq!(parse_version("1.50").unwrap().min(CLIENT_API), (1, 41));
    }

    #[test]
    fn log_frames_are_joined() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 6];
        raw.extend_from_slice(b"hello\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        raw.extend_from_slice(b"err\n");
        assert_eq!(demux_logs(&raw), "hello\nerr\n");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape(r#"{"a":["b=c"]}"#),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
