//! `paas rollback SERVICE [--to REVISION]`: pin all of a service's traffic to an
//! earlier revision, keeping its tags (so a tagged candidate stays reachable on its
//! own URL), and wait until the route serves it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http::Method;
use paas_api::keys::{CONFIGURATION_GENERATION_LABEL, SERVICE_LABEL};
use paas_api::{Object, Revision, Service, TrafficTarget};

use crate::cli::RollbackArgs;
use crate::client::ApiClient;
use crate::output::condition;

/// A revision of the service: name, configuration generation, ready.
struct Candidate {
    name: String,
    generation: i64,
    ready: bool,
}

pub(crate) async fn rollback(client: &ApiClient, a: RollbackArgs) -> Result<ExitCode> {
    let path = ApiClient::path(Some(&a.namespace), Service::INFO, Some(&a.service));
    let found = client.get(&path).await?.with_context(|| {
        format!(
            "service {:?} not found in namespace {:?}",
            a.service, a.namespace
        )
    })?;
    let mut svc: Service =
        serde_json::from_value(found).context("the API returned a service this CLI cannot read")?;
    let revisions = revisions_of(client, &a.namespace, &a.service).await?;
    let current = svc
        .status
        .traffic
        .iter()
        .max_by_key(|t| t.percent.unwrap_or(0))
        .and_then(|t| t.revision_name.clone())
        .context("the service serves no revision yet: nothing to roll back")?;
    let target = match &a.to {
        Some(to) => {
            let Some(r) = revisions.iter().find(|r| &r.name == to) else {
                let names: Vec<&str> = revisions.iter().map(|r| r.name.as_str()).collect();
                bail!(
                    "{to:?} is not a revision of {}: it has {}",
                    a.service,
                    names.join(", ")
                );
            };
            if !r.ready {
                bail!("revision {to} is not ready; `paas describe rev {to}` shows why");
            }
            r.name.clone()
        }
        None => {
            let now = revisions
                .iter()
                .find(|r| r.name == current)
                .map_or(i64::MAX, |r| r.generation);
            revisions
                .iter()
                .filter(|r| r.ready && r.generation < now)
                .max_by_key(|r| r.generation)
                .map(|r| r.name.clone())
                .with_context(|| {
                    format!(
                        "{current} has no earlier ready revision to go back to; name one with --to"
                    )
                })?
        }
    };

    // All traffic to the target; tagged targets stay, at 0%, so their URLs still work.
    let mut traffic = vec![TrafficTarget {
        revision_name: Some(target.clone()),
        latest_revision: Some(false),
        percent: Some(100),
        ..TrafficTarget::default()
    }];
    for t in &svc.spec.traffic {
        if t.tag.is_some() {
            traffic.push(TrafficTarget {
                percent: Some(0),
                url: None,
                ..t.clone()
            });
        }
    }
    svc.spec.traffic = traffic;
    svc.status = Default::default();
    client
        .ok(Method::PUT, &path, Some(&serde_json::to_value(&svc)?))
        .await?;
    eprintln!(
        "Rolling back {:?}: all traffic to {target} (was mostly {current})",
        a.service
    );

    let deadline = Instant::now() + Duration::from_secs(a.wait_timeout);
    loop {
        let svc = client
            .get(&path)
            .await?
            .context("the service disappeared")?;
        let serves = svc["status"]["traffic"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["revisionName"] == target.as_str() && t["percent"] == 100)
        });
        let (ready, reason, message) = condition(&svc, "Ready");
        if serves && ready == "True" {
            eprintln!(
                "Service {:?} serves {target}. New revisions get no traffic until `paas deploy {} --traffic @latest=100`.",
                a.service, a.service
            );
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            bail!(
                "the route did not switch to {target} within {} s ({reason}: {message})",
                a.wait_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn revisions_of(client: &ApiClient, ns: &str, service: &str) -> Result<Vec<Candidate>> {
    let list = client
        .get(&ApiClient::path(Some(ns), Revision::INFO, None))
        .await?
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in list["items"].as_array().into_iter().flatten() {
        let labels = &r["metadata"]["labels"];
        if labels[SERVICE_LABEL] != service {
            continue;
        }
        out.push(Candidate {
            name: r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            generation: labels[CONFIGURATION_GENERATION_LABEL]
                .as_str()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            ready: condition(r, "Ready").0 == "True",
        });
    }
    Ok(out)
}
