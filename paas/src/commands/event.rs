//! `paas event send`: one CloudEvent, in binary mode, to a broker's ingress.

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use paas_api::eventing::Broker;
use paas_api::Object;
use tokio::net::TcpStream;

use crate::cli::EventSendArgs;
use crate::client::ApiClient;

pub(crate) async fn send(client: &ApiClient, a: EventSendArgs) -> Result<ExitCode> {
    let path = ApiClient::path(Some(&a.namespace), Broker::INFO, Some(&a.broker));
    let Some(broker) = client.get(&path).await? else {
        bail!(
            "broker {:?} not found in namespace {}: create one with a Broker manifest (samples/eventing/broker.yaml)",
            a.broker,
            a.namespace
        );
    };
    let Some(url) = broker["status"]["address"]["url"].as_str() else {
        bail!(
            "broker {} has no address yet: `paas describe broker {}` says why",
            a.broker,
            a.broker
        );
    };
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("the broker's address {url:?}"))?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let id =
        a.id.clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri.path())
        .header(header::HOST, &authority)
        .header("ce-specversion", "1.0")
        .header("ce-id", &id)
        .header("ce-source", &a.source)
        .header("ce-type", &a.ty);
    if let Some(subject) = &a.subject {
        req = req.header("ce-subject", subject);
    }
    for ext in &a.extensions {
        let Some((name, value)) = ext.split_once('=') else {
            bail!("--ext {ext:?}: use NAME=VALUE");
        };
        // HTTP headers lose case, so a bad name is caught here, as the user wrote it.
        if let Some(problem) = paas_api::eventing_validation::attribute_name_problem(name) {
            bail!("--ext {ext:?}: {problem}");
        }
        req = req.header(format!("ce-{name}"), value);
    }
    let body = match &a.data {
        Some(d) => {
            serde_json::from_str::<serde_json::Value>(d)
                .with_context(|| format!("--data {d:?} is not JSON"))?;
            req = req.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(d.clone())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body))?;

    // Broker addresses are *.localhost names on the gateway's port: loopback.
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot reach the broker ingress on 127.0.0.1:{port}: is `paas up` running?")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let text = resp.into_body().collect().await?.to_bytes();
    if status.is_success() {
        println!(
            "Event {id} sent to broker {}/{} ({status}).",
            a.namespace, a.broker
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the broker answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        );
        Ok(ExitCode::FAILURE)
    }
}
