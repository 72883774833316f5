//! The baseline: a bare rdkafka consumer loop that POSTs each record to the subscriber
//! in binary mode, with as many requests in flight as a paas dispatcher allows, and
//! stores each record's offset once its POST was answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

type Pool = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

pub(crate) async fn run(
    bootstrap: &str,
    topic: &str,
    sink: SocketAddr,
    parallelism: usize,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{topic}-bare"))
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // As the paas Kafka backend's consumers.
            .set("fetch.wait.max.ms", "20")
            .create()?,
    );
    consumer.subscribe(&[topic])?;
    let slots = Arc::new(Semaphore::new(parallelism));
    let pool: Pool = Arc::default();
    loop {
        // Stopping drops the consumer here, while its broker still runs: closing a
        // consumer whose broker is gone waits for it forever.
        let message = tokio::select! {
            m = consumer.recv() => m?,
            _ = &mut stop => return Ok(()),
        };
        let mut req = Request::post("/").header("host", sink.to_string());
        if let Some(headers) = message.headers() {
            for h in headers.iter() {
                let name = match h.key.strip_prefix("ce_") {
                    Some(attribute) => format!("ce-{attribute}"),
                    None => h.key.to_owned(),
                };
                req = req.header(name, h.value.unwrap_or_default());
            }
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(
            message.payload().unwrap_or_default(),
        )))?;
        let (partition, offset) = (message.partition(), message.offset());
        drop(message);
        let permit = slots.clone().acquire_owned().await?;
        let (pool, consumer, topic) = (pool.clone(), consumer.clone(), topic.to_owned());
        tokio::spawn(async move {
            let _permit = permit;
            let taken = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut sender = match taken {
                Some(s) => s,
                None => match connect(sink).await {
                    Ok(s) => s,
                    Err(e) => return eprintln!("bare loop: connecting to the sink: {e}"),
                },
            };
            match sender.send_request(req).await {
                Ok(_) => {
                    let _ = consumer.store_offset(&topic, partition, offset);
                    pool.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
                }
                Err(e) => eprintln!("bare loop: POST failed: {e}"),
            }
        });
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}
