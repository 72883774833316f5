//! Reading the Host a request is for.

use std::borrow::Cow;

use http::header::HOST;
use http::Request;

/// The request's host, lower-cased, without port: from the Host header, else the
/// absolute URI's authority (HTTP/1.1 proxies may send either).
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = strip_port(raw).trim_end_matches('.');
    // Clients send lower case almost always; copy only when they did not.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(h: &str) -> Option<String> {
        request_host(&Request::builder().header(HOST, h).body(()).unwrap()).map(Cow::into_owned)
    }

    #[test]
    fn port_and_case_are_dropped() {
        assert_eq!(
            host_of("Hello.Default.localhost:8080").as_deref(),
            Some("hello.default.localhost")
        );
        assert_eq!(
            host_of("hello.default.localhost.").as_deref(),
            Some("hello.default.localhost")
        );
        assert_eq!(host_of("[::1]:8080").as_deref(), Some("[::1]"));
    }

    #[test]
    fn absolute_uri_is_used_without_host_header() {
        let req = Request::builder()
            .uri("http://a.b.localhost:9/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("a.b.localhost"));
    }
}
