//! Resolving a destination to a URL, as Knative does: a `ref` to an addressable
//! resource gives its address, a `uri` alone is used as it is, and a `uri` relative to
//! a `ref` is appended to the ref's address.

use paas_api::eventing::{Broker, Destination};
use paas_api::flows::{Parallel, Sequence};
use paas_api::Service;

use super::{Context, Result};
use crate::store::StoreExt;

/// The URL of a destination, or why there is none (yet).
pub(crate) async fn resolve(
    d: &Destination,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<String, String>> {
    let base = match &d.reference {
        None => None,
        Some(r) => {
            let ns = r.namespace.as_deref().unwrap_or(namespace);
            let address = match r.kind.as_str() {
                "Service" => ctx.store.get::<Service>(ns, &r.name).await?.map(|s| {
                    s.status.url.unwrap_or_else(|| {
                        paas_api::serving::service_url(ns, &r.name, ctx.http_port)
                    })
                }),
                "Broker" => ctx
                    .store
                    .get::<Broker>(ns, &r.name)
                    .await?
                    .and_then(|b| b.status.address.map(|a| a.url)),
                "Sequence" => ctx
                    .store
                    .get::<Sequence>(ns, &r.name)
                    .await?
                    .and_then(|q| q.status.address.map(|a| a.url)),
                "Parallel" => ctx
                    .store
                    .get::<Parallel>(ns, &r.name)
                    .await?
                    .and_then(|q| q.status.address.map(|a| a.url)),
                other => {
                    return Ok(Err(format!(
                        "{other} {ns}/{} cannot be a destination",
                        r.name
                    )))
                }
            };
            match address {
                Some(a) => Some(a),
                None => {
                    return Ok(Err(format!(
                        "{} {ns}/{} not found or not addressable yet",
                        r.kind, r.name
                    )))
                }
            }
        }
    };
    Ok(match (base, &d.uri) {
        (Some(base), Some(uri)) if !uri.contains("://") => Ok(join(&base, uri)),
        (_, Some(uri)) => Ok(uri.clone()),
        (Some(base), None) => Ok(base),
        (None, None) => Err("the destination has neither ref nor uri".to_owned()),
    })
}

fn join(base: &str, relative: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        relative.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uris_are_appended() {
        assert_eq!(
            join("http://a.localhost:8080", "/x/y"),
            "http://a.localhost:8080/x/y"
        );
        assert_eq!(
            join("http://a.localhost:8080/", "x"),
            "http://a.localhost:8080/x"
        );
    }
}
