//! The paas sample app: answers every request with `Hello {TARGET}!`.
//!
//! It uses only std so the image can be a single static binary on `scratch`.
//! One thread serves each connection, which is plenty for a sample and keeps
//! the HTTP/1.1 handling readable.

use std::env;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

// Bounds on a request head, so a misbehaving client cannot make a connection
// buffer without limit.
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;

fn main() -> ExitCode {
    let port = match env::var("PORT") {
        Ok(p) if !p.is_empty() => match p.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("hello: PORT must be a port number, got {p:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => 8080,
    };
    // Like Knative's helloworld samples, an empty TARGET counts as unset.
    let target = env::var("TARGET")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "World".to_owned());

    let delay = match env::var("DELAY_MS") {
        Ok(d) if !d.is_empty() => match d.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                eprintln!("hello: DELAY_MS must be a number of milliseconds, got {d:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => Duration::ZERO,
    };

    // Every FAIL_EVERY-th request answers 500: a stand-in for a broken release when
    // testing canaries (2 fails half of them).
    let fail_every = match env::var("FAIL_EVERY") {
        Ok(n) if !n.is_empty() => match n.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("hello: FAIL_EVERY must be a whole number above 0, got {n:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => 0,
    };

    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hello: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("hello: listening on port {port}");
    // Make sure the line reaches the logs before any request does.
    let _ = io::stdout().flush();

    // SIGTERM keeps its default action (exit): there is no state to save and
    // std cannot install a handler without unsafe code. As PID 1 in a
    // container that action is ignored, hence STOPSIGNAL in the Dockerfile.
    run(
        &listener,
        &Arc::new(Responses::new(&target, delay).failing_every(fail_every)),
    )
}

/// Accepts connections forever, one thread each.
fn run(listener: &TcpListener, responses: &Arc<Responses>) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let responses = Arc::clone(responses);
                // Resets and timeouts are routine for a server; nothing to report.
                let spawned = thread::Builder::new().spawn(move || serve(stream, &responses));
                if let Err(e) = spawned {
                    eprintln!("hello: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("hello: accept failed: {e}");
                // Out of file descriptors would otherwise spin the accept loop.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve(stream: TcpStream, responses: &Responses) -> io::Result<()> {
    // Responses go out in one write; Nagle would only delay them.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    let mut line = Vec::new();
    loop {
        match exchange(&mut reader, &mut writer, &mut line, responses) {
            Ok(true) => {}
            Ok(false) => return writer.flush(),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                writer.write_all(responses.bad_request.bytes(false))?;
                return writer.flush();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads one request and queues its response; returns whether the connection
/// stays open for another request.
fn exchange<R: Read, W: Write>(
    reader: &mut BufReader<R>,
    writer: &mut W,
    line: &mut Vec<u8>,
    responses: &Responses,
) -> io::Result<bool> {
    let Some(request) = read_request(reader, line)? else {
        return Ok(false);
    };
    if request.expect_continue {
        // Otherwise the client waits a while before sending the body.
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    discard_body(reader, request.body, line)?;
    if !responses.delay.is_zero() {
        thread::sleep(responses.delay);
    }
    let response = responses.pick(request.keep_alive);
    writer.write_all(response.bytes(request.head_only))?;
    // Pipelined requests already buffered get their responses in the same
    // write; flushing once the reader runs dry keeps a lone request prompt.
    if request.keep_alive && reader.buffer().is_empty() {
        writer.flush()?;
    }
    Ok(request.keep_alive)
}

/// A complete response, rendered once at startup since it never changes.
#[derive(Debug)]
struct Response {
    bytes: Vec<u8>,
    head_len: usize,
}

impl Response {
    fn new(status: &str, body: &str, keep_alive: bool) -> Self {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
            body.len()
        );
        let head_len = head.len();
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Self { bytes, head_len }
    }

    fn bytes(&self, head_only: bool) -> &[u8] {
        if head_only {
            &self.bytes[..self.head_len]
        } else {
            &self.bytes
        }
    }
}

#[derive(Debug)]
struct Responses {
    keep_alive: Response,
    close: Response,
    bad_request: Response,
    /// Time spent on each request before answering (DELAY_MS), to stand in for real
    /// work when testing autoscaling.
    delay: Duration,
    /// FAIL_EVERY: every n-th request gets `failure` (0: none).
    fail_every: u64,
    served: AtomicU64,
    failure: [Response; 2],
}

impl Responses {
    fn new(target: &str, delay: Duration) -> Self {
        let hello = format!("Hello {target}!\n");
        Self {
            keep_alive: Response::new("200 OK", &hello, true),
            close: Response::new("200 OK", &hello, false),
            bad_request: Response::new("400 Bad Request", "bad request\n", false),
            delay,
            fail_every: 0,
            served: AtomicU64::new(0),
            failure: [
                Response::new(
                    "500 Internal Server Error",
                    "failing on purpose (FAIL_EVERY)\n",
                    false,
                ),
                Response::new(
                    "500 Internal Server Error",
                    "failing on purpose (FAIL_EVERY)\n",
                    true,
                ),
            ],
        }
    }

    fn failing_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    fn pick(&self, keep_alive: bool) -> &Response {
        if self.fail_every > 0 {
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            if n % self.fail_every == 0 {
                return &self.failure[usize::from(keep_alive)];
            }
        }
        if keep_alive {
            &self.keep_alive
        } else {
            &self.close
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

/// What the server needs to know about a request; everything else is ignored.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    head_only: bool,
    keep_alive: bool,
    expect_continue: bool,
    body: Body,
}

/// Reads a request line and headers. `Ok(None)` means the client closed the
/// connection between requests; malformed input is `InvalidData`.
fn read_request(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<Request>> {
    // Blank lines before a request line are to be ignored (RFC 9112 §2.2).
    loop {
        if !read_line(r, line)? {
            return Ok(None);
        }
        if !line.is_empty() {
            break;
        }
    }
    let start = parse_request_line(line)?;
    let mut headers = Headers::default();
    for _ in 0..MAX_HEADERS {
        if !read_line(r, line)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.is_empty() {
            return headers.into_request(start).map(Some);
        }
        headers.add(line)?;
    }
    Err(bad("too many headers"))
}

/// Reads one line without its line ending into `buf`; false at end of input.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let n = (&mut *r).take(MAX_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.pop() != Some(b'\n') {
        return Err(if n as u64 == MAX_LINE {
            bad("line too long")
        } else {
            io::ErrorKind::UnexpectedEof.into()
        });
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestLine {
    http11: bool,
    head_only: bool,
}

fn parse_request_line(line: &[u8]) -> io::Result<RequestLine> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || target.is_empty() {
        return Err(bad("malformed request line"));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(bad("unsupported HTTP version")),
    };
    Ok(RequestLine {
        http11,
        head_only: method == b"HEAD",
    })
}

/// The headers that matter for framing and connection reuse.
#[derive(Debug, Default)]
struct Headers {
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    content_length: Option<u64>,
    /// Whether the last transfer coding is chunked, if there is one.
    chunked: Option<bool>,
}

impl Headers {
    fn add(&mut self, line: &[u8]) -> io::Result<()> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("malformed header"))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || name.ends_with(b" ") || name.ends_with(b"\t") {
            return Err(bad("malformed header"));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            self.close |= has_token(value, b"close");
            self.keep_alive |= has_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value).ok_or_else(|| bad("bad content-length"))?;
            if self.content_length.is_some_and(|m| m != n) {
                return Err(bad("conflicting content-length"));
            }
            self.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            self.chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn into_request(self, start: RequestLine) -> io::Result<Request> {
        let mut keep_alive = keep_alive(start.http11, self.close, self.keep_alive);
        let body = match (self.chunked, self.content_length) {
            // Without chunked last the body runs to connection close, which a
            // server cannot tell from an aborted upload (RFC 9112 §6.3).
            (Some(false), _) => return Err(bad("unsupported transfer-encoding")),
            (Some(true), length) => {
                // Both framings at once smells of request smuggling; serve this
                // request by the chunked framing, then stop trusting the stream.
                keep_alive &= length.is_none();
                Body::Chunked
            }
            (None, None | Some(0)) => Body::Empty,
            (None, Some(n)) => Body::Length(n),
        };
        Ok(Request {
            head_only: start.head_only,
            keep_alive,
            // An HTTP/1.0 client cannot understand an interim response.
            expect_continue: self.expect_continue && start.http11 && body != Body::Empty,
            body,
        })
    }
}

/// HTTP/1.1 connections persist unless closed; HTTP/1.0 ones only on request.
fn keep_alive(http11: bool, close: bool, keep_alive: bool) -> bool {
    !close && (http11 || keep_alive)
}

/// Whether a comma-separated header value such as Connection's lists `token`.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn parse_content_length(value: &[u8]) -> Option<u64> {
    // u64's parser would accept a leading '+', which HTTP does not.
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Parses a chunk-size line, ignoring any chunk extensions.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Reads past the request body so the next request starts where it should.
fn discard_body(r: &mut impl BufRead, body: Body, line: &mut Vec<u8>) -> io::Result<()> {
    match body {
        Body::Empty => Ok(()),
        Body::Length(n) => skip(r, n),
        Body::Chunked => loop {
            if !read_line(r, line)? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let size = parse_chunk_size(line).ok_or_else(|| bad("bad chunk size"))?;
            if size == 0 {
                return skip_trailers(r, line);
            }
            skip(r, size)?;
            if !read_line(r, line)? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if !line.is_empty() {
                return Err(bad("chunk data longer than its size"));
            }
        },
    }
}

fn skip_trailers(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<()> {
    for _ in 0..MAX_HEADERS {
        if !read_line(r, line)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.is_empty() {
            return Ok(());
        }
    }
    Err(bad("too many trailers"))
}

fn skip(r: &mut impl BufRead, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut (&mut *r).take(n), &mut io::sink())?;
    if skipped < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> io::Result<Option<Request>> {
        read_request(&mut &raw[..], &mut Vec::new())
    }

    fn request(raw: &str) -> Request {
        parse(raw.as_bytes()).unwrap().unwrap()
    }

    fn is_bad(raw: &str) -> bool {
        matches!(parse(raw.as_bytes()), Err(e) if e.kind() == io::ErrorKind::InvalidData)
    }

    /// Feeds `raw` through the connection loop's per-request step and returns
    /// everything written back.
    fn converse(raw: &[u8]) -> String {
        let responses = Responses::new("Test", Duration::ZERO);
        let mut reader = BufReader::new(raw);
        let mut out = Vec::new();
        let mut line = Vec::new();
        while exchange(&mut reader, &mut out, &mut line, &responses).unwrap() {}
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn http11_keeps_the_connection_unless_told_to_close() {
        assert!(request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!request("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        assert!(!request("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn frames_the_body() {
        assert_eq!(request("GET / HTTP/1.1\r\n\r\n").body, Body::Empty);
        assert_eq!(
            request("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            Body::Empty
        );
        assert_eq!(
            request("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").body,
            Body::Length(12)
        );
        assert_eq!(
            request("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n").body,
            Body::Length(5)
        );
        assert_eq!(
            request("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").body,
            Body::Chunked
        );
    }

    #[test]
    fn both_framings_close_after_the_request() {
        let r =
            request("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.body, Body::Chunked);
        assert!(!r.keep_alive);
    }

    #[test]
    fn rejects_malformed_heads() {
        assert!(is_bad("GET /\r\n\r\n"));
        assert!(is_bad("GET / HTTP/2.0\r\n\r\n"));
        assert!(is_bad("GET / HTTP/1.1\r\nno colon\r\n\r\n"));
        assert!(is_bad("GET / HTTP/1.1\r\nHost : x\r\n\r\n"));
        assert!(is_bad("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"));
        assert!(is_bad(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        ));
        assert!(is_bad("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE as usize));
        assert!(is_bad(&long));
    }

    #[test]
    fn end_of_input_between_requests_is_not_an_error() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b"\r\n").unwrap().is_none());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").is_err());
    }

    #[test]
    fn tolerates_bare_newlines_and_leading_blank_lines() {
        assert!(request("\r\nGET / HTTP/1.1\nHost: x\n\n").keep_alive);
    }

    #[test]
    fn parses_content_lengths_and_chunk_sizes() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"1234"), Some(1234));
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b"99999999999999999999999"), None);
        assert_eq!(parse_chunk_size(b"1A"), Some(26));
        assert_eq!(parse_chunk_size(b"0;ext=1"), Some(0));
        assert_eq!(parse_chunk_size(b"+1"), None);
        assert_eq!(parse_chunk_size(b""), None);
    }

    #[test]
    fn discards_bodies_between_pipelined_requests() {
        let out = converse(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
              POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nTrailer: t\r\n\r\n\
              GET /c HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
        assert_eq!(out.matches("Hello Test!\n").count(), 3, "{out}");
        assert!(
            out.ends_with("Connection: close\r\n\r\nHello Test!\n"),
            "{out}"
        );
    }

    #[test]
    fn head_gets_headers_only_and_expect_gets_continue() {
        let out = converse(b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(
            out.ends_with("Content-Length: 12\r\nConnection: keep-alive\r\n\r\n"),
            "{out}"
        );
        let out = converse(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{out}"
        );
    }

    #[test]
    fn serves_two_requests_on_one_connection() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let responses = Arc::new(Responses::new("Tester", Duration::ZERO));
        thread::spawn(move || run(&listener, &responses));

        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let expected = |connection: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\
                 Connection: {connection}\r\n\r\nHello Tester!\n"
            )
        };
        for (req, connection) in [
            ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", "keep-alive"),
            (
                "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                "close",
            ),
        ] {
            conn.write_all(req.as_bytes()).unwrap();
            let want = expected(connection);
            let mut got = vec![0; want.len()];
            conn.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
        // The server hangs up after the request that asked it to.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
