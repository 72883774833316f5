//! The baseline: the sender carries each event through the three steps itself, posting
//! it to step 1, step 1's reply to step 2, and so on, then the last reply to the sink,
//! over keep-alive connections. No log, no retries: the least three hops can cost.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::bail;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use paas_bench_eventing::load::Load;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Connection = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// POST an event (its `ce-` headers and content type, and its body); the answer.
async fn post(
    conn: &mut Connection,
    headers: &HeaderMap,
    body: Bytes,
) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
    let mut req = Request::post("/");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = conn
        .send_request(req.header("host", "step").body(Full::new(body))?)
        .await?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let mut kept = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("ce-") || name == "content-type" {
            kept.insert(name.clone(), value.clone());
        }
    }
    Ok((status, kept, body.collect().await?.to_bytes()))
}

pub(crate) async fn run(
    load: &Load,
    steps: [SocketAddr; 3],
    sink: SocketAddr,
) -> anyhow::Result<()> {
    // One set of connections (three steps and the sink) per sender.
    let mut sets = Vec::with_capacity(load.senders);
    for _ in 0..load.senders {
        let mut set = Vec::with_capacity(4);
        for addr in steps.iter().chain([&sink]) {
            set.push(connect(*addr).await?);
        }
        sets.push(Arc::new(Mutex::new(set)));
    }
    let sets = Arc::new(sets);
    load.each(move |i| {
        let sets = sets.clone();
        async move {
            let mut set = sets[i % sets.len()].lock().await;
            let mut headers = HeaderMap::new();
            headers.insert("ce-specversion", "1.0".parse()?);
            headers.insert("ce-id", i.to_string().parse()?);
            headers.insert("ce-source", "/bench".parse()?);
            headers.insert("ce-type", "dev.paas.bench".parse()?);
            headers.insert("content-type", "application/json".parse()?);
            let mut body = Bytes::from(format!("{{\"n\":{i}}}"));
            let Some((last, hops)) = set.split_last_mut() else {
                bail!("no connections to send on");
            };
            for (n, conn) in hops.iter_mut().enumerate() {
                let (status, h, b) = post(conn, &headers, body).await?;
                if status != 200 {
                    bail!("event {i}: step {} answered {status}", n + 1);
                }
                (headers, body) = (h, b);
            }
            let (status, _, _) = post(last, &headers, body).await?;
            if status != 202 {
                bail!("event {i}: the sink answered {status}");
            }
            Ok(())
        }
    })
    .await
}
