//! The producers: HTTP POSTs of binary-mode CloudEvents to a paas broker ingress from
//! a number of concurrent senders, each on its own keep-alive connection.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::sink::Sink;

/// Where and how fast events are sent.
#[derive(Debug, Clone)]
pub struct Load {
    pub range: Range<usize>,
    pub senders: usize,
    pub sent: Arc<Vec<AtomicU64>>,
    pub epoch: Instant,
}

impl Load {
    /// Run `send(i)` for every event of the range, `senders` at a time.
    pub async fn each<F, Fut>(&self, send: F) -> anyhow::Result<()>
    where
        F: Fn(usize) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    {
        let next = Arc::new(AtomicUsize::new(self.range.start));
        let mut tasks = JoinSet::new();
        for _ in 0..self.senders {
            let (next, end, sent, epoch, send) = (
                next.clone(),
                self.range.end,
                self.sent.clone(),
                self.epoch,
                send.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return Ok::<_, anyhow::Error>(());
                    }
                    sent[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    send(i).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }

    /// POST each event to `http://{addr}/{path}` with `Host: {host}`, one keep-alive
    /// connection per sender; anything but 202 stops the run. With `until`, each
    /// sender waits for its event to reach that sink before sending the next (a
    /// closed loop: no backlog builds up behind a slower pipeline).
    pub async fn post(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        until: Option<Sink>,
    ) -> anyhow::Result<()> {
        let senders: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..self.senders {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                v.push(Arc::new(tokio::sync::Mutex::new(sender)));
            }
            v
        };
        let senders = Arc::new(senders);
        let (host, path) = (host.to_owned(), path.to_owned());
        self.each(move |i| {
            let (senders, host, path, until) =
                (senders.clone(), host.clone(), path.clone(), until.clone());
            async move {
                let req = Request::post(path)
                    .header("host", host)
                    .header("ce-specversion", "1.0")
                    .header("ce-id", i.to_string())
                    .header("ce-source", "/bench")
                    .header("ce-type", "dev.paas.bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!("{{\"n\":{i}}}"))))?;
                let mut sender = senders[i % senders.len()].lock().await;
                let status = sender.send_request(req).await?.status();
                if status.as_u16() != 202 {
                    bail!("event {i}: the ingress answered {status}");
                }
                drop(sender);
                if let Some(sink) = until {
                    sink.wait_for(i).await;
                }
                Ok(())
            }
        })
        .await
    }
}
