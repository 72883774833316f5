//! The paas sample app: answers every request with `Hello {TARGET}!`.
//!
//! On SIGTERM, as a replica being stopped gets it, it stops accepting connections,
//! finishes the requests in flight, closes idle connections and exits 0: a test can
//! see the platform's stop drain a replica. samples/build.sh links it statically so
//! the image can be a single binary on `scratch`.
//!
//! Environment: `PORT` (8080), `TARGET` (World), `DELAY_MS` (time spent on each
//! request, standing in for real work when testing autoscaling) and `FAIL_EVERY`
//! (every n-th request answers 500, a broken release when testing canaries).

use std::convert::Infallible;
use std::env;
use std::future::Future;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// What the environment asks of this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    port: u16,
    target: String,
    delay: Duration,
    fail_every: u64,
}

impl Config {
    /// Reads the settings through `var`; an empty variable counts as unset. The error
    /// names the variable and what it must be.
    fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let port = match set("PORT") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
            None => 8080,
        };
        // Like Knative's helloworld samples, an empty TARGET counts as unset.
        let target = set("TARGET").unwrap_or_else(|| "World".to_owned());
        let delay = match set("DELAY_MS") {
            Some(d) => Duration::from_millis(
                d.parse::<u64>()
                    .map_err(|_| format!("DELAY_MS must be a number of milliseconds, got {d:?}"))?,
            ),
            None => Duration::ZERO,
        };
        let fail_every = match set("FAIL_EVERY") {
            Some(n) => match n.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(format!(
                        "FAIL_EVERY must be a whole number above 0, got {n:?}"
                    ))
                }
            },
            None => 0,
        };
        Ok(Self {
            port,
            target,
            delay,
            fail_every,
        })
    }
}

fn main() -> ExitCode {
    let config = match Config::from_env(|name| env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hello: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hello: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    // Before listening: a SIGTERM that comes as soon as the port answers is handled.
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("hello: cannot handle SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hello: cannot listen on port {}: {e}", config.port);
            return ExitCode::FAILURE;
        }
    };
    // The port bound, which PORT=0 leaves to the system.
    let port = listener.local_addr().map_or(config.port, |a| a.port());
    // println! flushes at the newline: the line is in the log before any request.
    println!("hello: listening on port {port}");
    let stop = async move {
        term.recv().await;
        println!("hello: SIGTERM: no new connections; finishing the requests in flight");
    };
    serve(listener, Arc::new(Hello::new(&config)), stop).await;
    println!("hello: stopped");
    ExitCode::SUCCESS
}

/// Serves connections until `stop` completes, then stops accepting, lets every
/// connection finish the request it is serving (idle ones close at once) and returns
/// once all are closed.
async fn serve(listener: TcpListener, hello: Arc<Hello>, stop: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Responses go out in one write; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
                    let hello = hello.clone();
                    let service = service_fn(move |request| {
                        let hello = hello.clone();
                        async move { Ok::<_, Infallible>(hello.answer(request).await) }
                    });
                    let connection = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    // Resets and malformed requests are routine for a server; hyper
                    // answers the latter with 400 itself.
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                Err(e) => {
                    eprintln!("hello: accept failed: {e}");
                    // Out of file descriptors would otherwise spin the accept loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    // Connections not yet accepted are refused from here on.
    drop(listener);
    graceful.shutdown().await;
}

/// The answers, made once: they never change.
#[derive(Debug)]
struct Hello {
    greeting: Bytes,
    /// DELAY_MS: time spent on each request before answering.
    delay: Duration,
    /// FAIL_EVERY: every n-th request gets a 500 (0: none).
    fail_every: u64,
    served: AtomicU64,
}

impl Hello {
    fn new(config: &Config) -> Self {
        Self {
            greeting: Bytes::from(format!("Hello {}!\n", config.target)),
            delay: config.delay,
            fail_every: config.fail_every,
            served: AtomicU64::new(0),
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        // Read the whole body (and drop it) before answering, as the work would.
        let mut body = request.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return text(
                    StatusCode::BAD_REQUEST,
                    Bytes::from_static(b"bad request\n"),
                );
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail_every > 0 {
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            if n % self.fail_every == 0 {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Bytes::from_static(b"failing on purpose (FAIL_EVERY)\n"),
                );
            }
        }
        text(StatusCode::OK, self.greeting.clone())
    }
}

fn text(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(|name| vars.get(name).cloned())
    }

    #[test]
    fn reads_its_settings_from_the_environment() {
        assert_eq!(
            config(&[]).unwrap(),
            Config {
                port: 8080,
                target: "World".into(),
                delay: Duration::ZERO,
                fail_every: 0
            }
        );
        let c = config(&[
            ("PORT", "9000"),
            ("TARGET", "Paas"),
            ("DELAY_MS", "100"),
            ("FAIL_EVERY", "2"),
        ])
        .unwrap();
        assert_eq!(
            (c.port, c.target.as_str(), c.delay, c.fail_every),
            (9000, "Paas", Duration::from_millis(100), 2)
        );
        // Empty counts as unset.
        assert_eq!(
            config(&[("TARGET", ""), ("PORT", "")]).unwrap().target,
            "World"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(
            config(&[("PORT", "http")]).unwrap_err(),
            "PORT must be a port number, got \"http\""
        );
        assert!(config(&[("DELAY_MS", "1s")])
            .unwrap_err()
            .starts_with("DELAY_MS must"));
        assert!(config(&[("FAIL_EVERY", "0")])
            .unwrap_err()
            .starts_with("FAIL_EVERY must"));
    }

    /// A server on a free port with `vars`; send on the channel to stop it.
    async fn start(vars: &[(&str, &str)]) -> (u16, oneshot::Sender<()>, JoinHandle<()>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hello = Arc::new(Hello::new(&config(vars).unwrap()));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, hello, async {
            let _ = stopped.await;
        }));
        (port, stop, server)
    }

    /// Reads until `s` ends with `end`.
    async fn read_until(conn: &mut TcpStream, end: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0; 1024];
        while !got.ends_with(end.as_bytes()) {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {end:?}; got {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    async fn read_to_end(conn: &mut TcpStream) -> String {
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        String::from_utf8(rest).unwrap()
    }

    #[tokio::test]
    async fn serves_requests_on_one_connection_until_asked_to_close() {
        let (port, _stop, _server) = start(&[("TARGET", "Tester")]).await;
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        // Pipelined, with bodies framed both ways, which must be read past.
        conn.write_all(
            b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
              POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let out = read_to_end(&mut conn).await;
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{out}");
        assert_eq!(
            out.matches("content-type: text/plain\r\n").count(),
            3,
            "{out}"
        );
        assert_eq!(out.matches("content-length: 14\r\n").count(), 3, "{out}");
        assert!(out.ends_with("\r\n\r\nHello Tester!\n"), "{out}");
        assert_eq!(out.matches("connection: close").count(), 1, "{out}");
    }

    #[tokio::test]
    async fn head_gets_headers_only_and_http10_closes() {
        let (port, _stop, _server) = start(&[]).await;
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        conn.write_all(b"HEAD / HTTP/1.0\r\n\r\n").await.unwrap();
        let out = read_to_end(&mut conn).await;
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(out.contains("content-length: 13\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[tokio::test]
    async fn a_malformed_request_gets_400() {
        let (port, _stop, _server) = start(&[]).await;
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nno colon\r\n\r\n")
            .await
            .unwrap();
        let out = read_to_end(&mut conn).await;
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    }

    #[tokio::test]
    async fn fail_every_two_fails_every_other_request() {
        let (port, _stop, _server) = start(&[("FAIL_EVERY", "2")]).await;
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        conn.write_all(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n\
              GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let out = read_to_end(&mut conn).await;
        let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
        assert_eq!(statuses, ["200", "500", "200", "500"], "{out}");
        assert_eq!(out.matches("failing on purpose (FAIL_EVERY)\n").count(), 2);
    }

    /// The drain: a request whose handler runs when the stop comes still gets its
    /// answer, an idle connection is closed, no new connection is accepted, and the
    /// server returns once the last connection is done.
    #[tokio::test]
    async fn a_stop_finishes_the_request_in_flight_and_refuses_new_ones() {
        let (port, stop, server) = start(&[]).await;
        let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut idle, "Hello World!\n").await;

        let mut busy = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        busy.write_all(
            b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .await
        .unwrap();
        // hyper sends 100 Continue once the handler reads the body: it is in flight.
        read_until(&mut busy, "HTTP/1.1 100 Continue\r\n\r\n").await;

        stop.send(()).unwrap();
        // The idle connection is closed without an answer.
        assert_eq!(read_to_end(&mut idle).await, "");
        busy.write_all(b"body").await.unwrap();
        let out = read_to_end(&mut busy).await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("Hello World!\n"), "{out}");
        server.await.unwrap();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_err());
    }
}
