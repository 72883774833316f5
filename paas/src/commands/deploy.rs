//! `paas deploy`: create or update a service from flags, then wait until it is ready.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http::Method;
use paas_api::serving::{Container, ContainerPort, EnvVar, ServiceSpec};
use paas_api::{Object, Revision, Service};

use super::traffic::{self, TrafficFlags};
use crate::cli::DeployArgs;
use crate::client::ApiClient;
use crate::output::condition;

pub(crate) async fn deploy(client: &ApiClient, a: DeployArgs) -> Result<ExitCode> {
    let path = ApiClient::path(Some(&a.namespace), Service::INFO, Some(&a.name));
    let existing = client.get(&path).await?;
    let mut svc: Service = match &existing {
        Some(v) => serde_json::from_value(v.clone())
            .context("the API returned a service this CLI cannot read")?,
        None => {
            if a.image.is_none() && a.cmd.is_empty() {
                bail!("service {:?} does not exist yet: give --image IMAGE (or --cmd for the process runtime)", a.name);
            }
            Service::new(&a.namespace, &a.name, ServiceSpec::default())
        }
    };
    apply_flags(&mut svc, &a)?;
    traffic::apply(
        &mut svc.spec.traffic,
        &TrafficFlags {
            traffic: &a.traffic,
            tags: &a.tags,
            untags: &a.untags,
        },
    )?;
    svc.status = Default::default();

    let answer = if existing.is_some() {
        client
            .ok(Method::PUT, &path, Some(&serde_json::to_value(&svc)?))
            .await?
    } else {
        let list = ApiClient::path(Some(&a.namespace), Service::INFO, None);
        client
            .ok(Method::POST, &list, Some(&serde_json::to_value(&svc)?))
            .await?
    };
    for w in &answer.warnings {
        eprintln!("Warning: {w}");
    }
    let generation = answer.body["metadata"]["generation"].as_i64().unwrap_or(1);
    let verb = if existing.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    eprintln!("{verb} service {:?} in namespace {:?}", a.name, a.namespace);
    if a.no_wait {
        eprintln!(
            "Not waiting (--no-wait): `paas get ksvc {}` shows when it is ready.",
            a.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    wait_ready(client, &a, generation).await
}

/// Annotations read on the Service (and its Route), not on revisions; so are the
/// canary settings (`canary.paas.dev/*`).
const SERVICE_ANNOTATIONS: &[&str] = &[paas_api::keys::ROLLOUT_DURATION];

/// Change the service's template as the flags say; unchanged flags keep what is there.
fn apply_flags(svc: &mut Service, a: &DeployArgs) -> Result<()> {
    let template = &mut svc.spec.template;
    if template.spec.containers.is_empty() {
        template.spec.containers.push(Container::default());
    }
    let c = &mut template.spec.containers[0];
    if let Some(image) = &a.image {
        c.image = Some(image.clone());
    }
    if !a.cmd.is_empty() {
        c.command = a.cmd.clone();
    }
    if !a.args.is_empty() {
        c.args = a.args.clone();
    }
    if let Some(port) = a.port {
        c.ports = vec![ContainerPort {
            container_port: Some(port),
            ..ContainerPort::default()
        }];
    }
    for e in &a.env {
        match parse_kv(e, "--env")? {
            (name, Some(value)) => match c.env.iter_mut().find(|v| v.name == name) {
                Some(v) => v.value = Some(value),
                None => c.env.push(EnvVar {
                    name,
                    value: Some(value),
                    value_from: None,
                }),
            },
            (name, None) => c.env.retain(|v| v.name != name),
        }
    }
    for an in &a.annotations {
        let (key, value) = parse_kv(an, "--annotation")?;
        // A service-level key goes on the service; the rest on its revisions.
        let on_service = SERVICE_ANNOTATIONS.contains(&key.as_str())
            || key.starts_with(paas_api::canary::PREFIX);
        let annotations = if on_service {
            &mut svc.metadata.annotations
        } else {
            &mut svc.spec.template.metadata.annotations
        };
        match value {
            Some(v) => annotations.insert(key, v),
            None => annotations.remove(&key),
        };
    }
    let template = &mut svc.spec.template;
    if let Some(cc) = a.concurrency_limit {
        template.spec.container_concurrency = Some(cc);
    }
    if let Some(t) = a.timeout {
        template.spec.timeout_seconds = Some(t);
    }
    Ok(())
}

/// `K=V` sets, `K-` removes.
fn parse_kv(s: &str, flag: &str) -> Result<(String, Option<String>)> {
    if let Some((k, v)) = s.split_once('=') {
        if k.is_empty() {
            bail!("{flag} {s:?}: the name before '=' is empty");
        }
        return Ok((k.to_owned(), Some(v.to_owned())));
    }
    if let Some(k) = s.strip_suffix('-') {
        return Ok((k.to_owned(), None));
    }
    bail!("{flag} {s:?}: use NAME=VALUE to set, or NAME- to remove")
}

async fn wait_ready(client: &ApiClient, a: &DeployArgs, generation: i64) -> Result<ExitCode> {
    let path = ApiClient::path(Some(&a.namespace), Service::INFO, Some(&a.name));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.wait_timeout);
    let tty = std::io::stderr().is_terminal();
    let spinner = ['|', '/', '-', '\\'];
    let mut last_line = String::new();
    let mut tick = 0usize;
    loop {
        let svc = client
            .get(&path)
            .await?
            .context("the service disappeared while waiting")?;
        let observed = svc["status"]["observedGeneration"].as_i64().unwrap_or(0);
        let latest = svc["status"]["latestCreatedRevisionName"]
            .as_str()
            .map(str::to_owned);
        let (ready, reason, message) = condition(&svc, "Ready");
        let rev = match latest.as_ref().filter(|_| observed >= generation) {
            Some(r) => {
                client
                    .get(&ApiClient::path(
                        Some(&a.namespace),
                        Revision::INFO,
                        Some(r),
                    ))
                    .await?
            }
            None => None,
        };
        let current = observed >= generation;
        if current
            && ready == "True"
            && svc["status"]["latestReadyRevisionName"].as_str() == latest.as_deref()
        {
            if tty {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "Service {:?} is ready with revision {} ({:.1}s).",
                a.name,
                latest.unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
            println!("{}", svc["status"]["url"].as_str().unwrap_or(""));
            return Ok(ExitCode::SUCCESS);
        }
        let rev_failed = rev.as_ref().map(|r| condition(r, "Ready"));
        if current && (ready == "False" || matches!(rev_failed, Some(("False", _, _)))) {
            if tty {
                eprint!("\r\x1b[2K");
            }
            let why = match rev_failed {
                Some(("False", r, m)) => format!("{r}: {m}"),
                _ => format!("{reason}: {message}"),
            };
            eprintln!("Service {:?} failed to become ready.\n{why}", a.name);
            if let Some(r) = &latest {
                print_revision_logs(client, &a.namespace, r).await;
            }
            eprintln!("Fix the cause and run `paas deploy` again; `paas describe ksvc {}` shows the details.", a.name);
            return Ok(ExitCode::FAILURE);
        }
        if Instant::now() > deadline {
            eprintln!();
            bail!(
                "service {:?} was not ready after {} s ({reason}: {message}); `paas describe ksvc {}` shows why",
                a.name,
                a.wait_timeout,
                a.name
            );
        }
        let replicas = rev
            .as_ref()
            .map(|r| {
                format!(
                    "{}/{} replicas ready",
                    r["status"]["readyReplicas"].as_u64().unwrap_or(0),
                    r["status"]["desiredReplicas"].as_u64().unwrap_or(1)
                )
            })
            .unwrap_or_else(|| "creating revision".into());
        let line = match (&latest, current) {
            (Some(r), true) => format!("Waiting for {r} to be ready: {replicas}"),
            _ => "Waiting for the new revision to be created".to_owned(),
        };
        if tty {
            eprint!(
                "\r\x1b[2K{} {line} ({:.0}s)",
                spinner[tick % 4],
                started.elapsed().as_secs_f64()
            );
        } else if line != last_line {
            eprintln!("{line}");
        }
        last_line = line;
        tick += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn print_revision_logs(client: &ApiClient, ns: &str, revision: &str) {
    let path = format!(
        "{}/logs?tail=20",
        ApiClient::path(Some(ns), Revision::INFO, Some(revision))
    );
    if let Ok(answer) = client.ok(Method::GET, &path, None).await {
        for r in answer.body["replicas"].as_array().into_iter().flatten() {
            let lines: Vec<&str> = r["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .collect();
            if lines.is_empty() {
                continue;
            }
            eprintln!(
                "Last log lines of replica {}:",
                r["replica"].as_str().unwrap_or("?")
            );
            for l in lines {
                eprintln!("  {l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(
            parse_kv("A=b=c", "--env").unwrap(),
            ("A".into(), Some("b=c".into()))
        );
        assert_eq!(parse_kv("A-", "--env").unwrap(), ("A".into(), None));
        assert!(parse_kv("A", "--env").is_err());
        assert!(parse_kv("=x", "--env").is_err());
    }
}
