//! Reading the Host a request is for.

use std::borrow::Cow;

use http::header::HOST;
use http::Request;

use crate::error::ProxyError;

/// The request's host, lower-cased, without port: from the Host header, else the
/// absolute URI's authority (HTTP/1.1 proxies may send either). Two Host headers are
/// refused (RFC 9112 §3.2): routing on one while the replica reads the other would let a
/// client reach a service the route did not choose.
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<Cow<'_, str>, ProxyError> {
    let mut headers = req.headers().get_all(HOST).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(ProxyError::TwoHosts);
    }
    let raw = header
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .ok_or(ProxyError::NoHost)?;
    let host = strip_port(raw).trim_end_matches('.');
    // Clients send lower case almost always; copy only when they did not.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(host))
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
        request_host(&Request::builder().header(HOST, h).body(()).unwrap())
            .ok()
            .map(Cow::into_owned)
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
        assert_eq!(request_host(&req).unwrap(), "a.b.localhost");
    }

    #[test]
    fn two_host_headers_are_refused() {
        let req = Request::builder()
            .header(HOST, "a.default.localhost")
            .header(HOST, "b.default.localhost")
            .body(())
            .unwrap();
        assert!(matches!(request_host(&req), Err(ProxyError::TwoHosts)));
        let none = Request::builder().uri("/").body(()).unwrap();
        assert!(matches!(request_host(&none), Err(ProxyError::NoHost)));
    }
}
