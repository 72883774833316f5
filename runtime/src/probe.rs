//! Readiness probing: the revision's readinessProbe (HTTP GET or TCP), else a TCP connect,
//! as Knative does when no probe is declared.

use std::net::SocketAddr;
use std::time::Duration;

use paas_api::serving::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How to check one replica, resolved from the revision's readinessProbe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadinessCheck {
    Tcp,
    Http {
        path: String,
        headers: Vec<(String, String)>,
    },
}

impl ReadinessCheck {
    pub fn from_probe(probe: Option<&Probe>) -> Self {
        match probe.and_then(|p| p.http_get.as_ref()) {
            Some(h) => ReadinessCheck::Http {
                path: h.path.clone().unwrap_or_else(|| "/".into()),
                headers: h
                    .http_headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            },
            None => ReadinessCheck::Tcp,
        }
    }
}

/// Knative's probe timeout default is 1 s.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the replica at `addr` is ready now.
pub async fn is_ready(addr: SocketAddr, check: &ReadinessCheck) -> bool {
    timeout(PROBE_TIMEOUT, probe_once(addr, check))
        .await
        .unwrap_or(false)
}

async fn probe_once(addr: SocketAddr, check: &ReadinessCheck) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let ReadinessCheck::Http { path, headers } = check else {
        return true;
    };
    // A hand-written request keeps probing free of a client stack; the answer's
    // status line is all that matters.
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: paas-probe\r\nK-Kubelet-Probe: readiness\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => len += n,
        }
    }
    status_is_success(&buf[..len])
}

/// Kubernetes counts 200 to 399 as success.
fn status_is_success(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"HTTP/1.") else {
        return false;
    };
    let code = rest.get(2..5).and_then(|c| std::str::from_utf8(c).ok());
    matches!(code.and_then(|c| c.parse::<u16>().ok()), Some(200..=399))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_line_parsing() {
        assert!(status_is_success(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_success(b"HTTP/1.0 302 Found"));
        assert!(!status_is_success(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!status_is_success(b"garbage"));
    }

    async fn serve_once(status: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        });
        addr
    }

    #[tokio::test]
    async fn http_probe_follows_the_status() {
        let check = ReadinessCheck::Http {
            path: "/healthz".into(),
            headers: vec![],
        };
        assert!(is_ready(serve_once("200 OK").await, &check).await);
        assert!(!is_ready(serve_once("503 Unavailable").await, &check).await);
    }

    #[tokio::test]
    async fn tcp_probe_fails_on_a_closed_port() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        assert!(is_ready(addr, &ReadinessCheck::Tcp).await);
        drop(l);
        assert!(!is_ready(addr, &ReadinessCheck::Tcp).await);
    }
}
