//! The CLI's client of the REST API.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use paas_api::KindInfo;
use tokio::net::TcpStream;

use crate::cli::Global;
use crate::config::{default_data_dir, SERVER_FILE};

#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    /// host:port
    authority: String,
    token: String,
}

/// An answer: status, warnings and the JSON body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) warnings: Vec<String>,
    pub(crate) body: serde_json::Value,
}

impl ApiClient {
    pub(crate) fn from_global(g: &Global) -> Result<Self> {
        let data_dir = g.data_dir.clone().unwrap_or_else(default_data_dir);
        let server = match &g.server {
            Some(s) => s.clone(),
            None => std::fs::read_to_string(data_dir.join(SERVER_FILE))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "http://127.0.0.1:7070".into()),
        };
        let authority = server
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if server.starts_with("https://") {
            bail!("{server}: the paas API speaks plain HTTP on loopback; use http://");
        }
        let token = match &g.token {
            Some(t) => t.clone(),
            None => read_token(&data_dir)?,
        };
        Ok(Self { authority, token })
    }

    /// The REST path of a resource type (or one resource), in its API group.
    pub(crate) fn path(namespace: Option<&str>, kind: &KindInfo, name: Option<&str>) -> String {
        let mut p = format!("/apis/{}", kind.api_version);
        if let Some(ns) = namespace {
            p.push_str(&format!("/namespaces/{ns}"));
        }
        p.push_str(&format!("/{}", kind.plural));
        if let Some(n) = name {
            p.push_str(&format!("/{n}"));
        }
        p
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let stream = TcpStream::connect(&self.authority).await.with_context(|| {
            format!(
                "cannot reach the paas API at http://{}: is `paas up` running? (set PAAS_SERVER or --server if it listens elsewhere)",
                self.authority
            )
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let warnings = resp
            .headers()
            .get_all(header::WARNING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| {
                let text = v.trim_start_matches("299 - ").trim();
                serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned())
            })
            .collect();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned().into())
        };
        Ok(Answer {
            status,
            warnings,
            body,
        })
    }

    /// A call that must succeed; the API's Status message becomes the error.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let answer = self.call(method, path, body).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(anyhow!(status_message(&answer)))
        }
    }

    /// GET an object; `None` when it does not exist.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<serde_json::Value>> {
        let answer = self.call(Method::GET, path, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(answer.body)),
            _ => Err(anyhow!(status_message(&answer))),
        }
    }
}

/// The message of a Kubernetes Status body, with its causes on their own lines.
pub(crate) fn status_message(answer: &Answer) -> String {
    let b = &answer.body;
    let mut msg = b["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the API answered {}: {}", answer.status, b));
    if let Some(causes) = b["details"]["causes"].as_array() {
        if !causes.is_empty() {
            // The message names the object ("Service \"hello\" is invalid: ..."); the
            // causes follow, one per line.
            let subject = msg
                .split_once(" is invalid:")
                .map_or("the request", |(subject, _)| subject);
            msg = format!("{subject} is invalid:");
            for c in causes {
                msg.push_str(&format!(
                    "\n  {}: {}",
                    c["field"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    msg
}

fn read_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(paas_controller::rest::token::TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .with_context(|| {
            format!(
                "cannot read the API token at {}: run `paas up` first, or point --data-dir (PAAS_DATA_DIR) at its data directory",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_object_is_named_with_its_causes() {
        let answer = Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            warnings: vec![],
            body: serde_json::json!({
                "kind": "Status",
                "reason": "Invalid",
                "message": "Service \"hello\" is invalid: spec.template.spec.containers[0].image: required",
                "details": {"causes": [{"field": "spec.template.spec.containers[0].image", "message": "required"}]},
            }),
        };
        assert_eq!(
            status_message(&answer),
            "Service \"hello\" is invalid:\n  spec.template.spec.containers[0].image: required"
        );
    }
}
