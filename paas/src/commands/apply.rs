//! `paas apply -f`: every manifest is read and checked before anything is sent, so a
//! bad file changes nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use http::Method;
use paas_api::{parse_manifests, Resource};

use crate::cli::ApplyArgs;
use crate::client::ApiClient;

pub(crate) async fn apply(client: &ApiClient, a: ApplyArgs) -> Result<ExitCode> {
    let mut sources: Vec<(String, String)> = Vec::new();
    for f in &a.files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            sources.push(("<stdin>".into(), text));
            continue;
        }
        for path in manifest_files(Path::new(f))? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
    }
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in &sources {
        match parse_manifests(name, text) {
            Ok(mut m) => manifests.append(&mut m),
            Err(e) => problems.extend(e.problems),
        }
    }
    // CloudEvents SQL filters are parsed here too, so that a bad expression is reported
    // at its line before anything is sent.
    for m in &manifests {
        if let Resource::Trigger(t) = &m.resource {
            if let Err(e) = paas_eventing::filter::Filter::of_trigger(&t.spec) {
                problems.push(format!("{}: {e}", m.place(&e.path)));
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        bail!(
            "{} problem(s) in the manifests; nothing was applied",
            problems.len()
        );
    }
    if manifests.is_empty() {
        bail!("no resources found in {}", a.files.join(", "));
    }
    for m in &manifests {
        for w in &m.warnings {
            eprintln!("Warning: {w}");
        }
    }
    let total = manifests.len();
    let mut applied: Vec<String> = Vec::new();
    for m in manifests {
        let origin = m.origin.clone();
        let done = apply_one(client, m, &a.namespace).await.map_err(|e| {
            // Until applies are one transaction, say exactly what changed.
            let before = match applied.len() {
                0 => "nothing was applied".to_owned(),
                n => format!(
                    "{n} of {total} resource(s) were applied before it: {}",
                    applied.join(", ")
                ),
            };
            e.context(format!(
                "{origin}: refused by the server; {before}; the rest were not sent"
            ))
        })?;
        println!("{done}");
        applied.push(done.split(' ').next().unwrap_or_default().to_owned());
    }
    Ok(ExitCode::SUCCESS)
}

/// Create or update one resource; the line to print ("service.serving.knative.dev/hello created").
async fn apply_one(client: &ApiClient, m: paas_api::Manifest, namespace: &str) -> Result<String> {
    {
        let kind = m.resource.kind();
        let (plural, group) = match &m.resource {
            Resource::Service(_) => ("services", "serving.knative.dev"),
            Resource::Broker(_) => ("brokers", "eventing.knative.dev"),
            Resource::Trigger(_) => ("triggers", "eventing.knative.dev"),
            Resource::Sequence(_) => ("sequences", "flows.knative.dev"),
            Resource::Parallel(_) => ("parallels", "flows.knative.dev"),
            Resource::PingSource(_) => ("pingsources", "sources.knative.dev"),
            Resource::KafkaSource(_) => ("kafkasources", "sources.knative.dev"),
            _ => bail!(
                "{}: {kind} cannot be applied: it is derived from a Service",
                m.origin
            ),
        };
        let mut resource = m.resource;
        if resource.meta().namespace.is_none() {
            resource.meta_mut().namespace = Some(namespace.to_owned());
        }
        let ns = resource.meta().namespace().to_owned();
        let name = resource.meta().name.clone();
        let path = ApiClient::path(Some(&ns), plural, Some(&name));
        let body = resource.to_json();
        let outcome = match client.get(&path).await? {
            Some(before) => {
                let after = client
                    .ok(Method::PUT, &path, Some(&body))
                    .await
                    .with_context(|| format!("applying {kind} {name}"))?;
                for w in &after.warnings {
                    eprintln!("Warning: {w}");
                }
                // Status writes by the controller also move resourceVersion; what the
                // user owns is spec (generation), labels and annotations.
                let same = |f: &str| after.body["metadata"][f] == before["metadata"][f];
                if same("generation") && same("labels") && same("annotations") {
                    "unchanged"
                } else {
                    "configured"
                }
            }
            None => {
                client
                    .ok(
                        Method::POST,
                        &ApiClient::path(Some(&ns), plural, None),
                        Some(&body),
                    )
                    .await
                    .with_context(|| format!("creating {kind} {name}"))?;
                "created"
            }
        };
        Ok(format!(
            "{}.{group}/{name} {outcome}",
            kind.to_ascii_lowercase()
        ))
    }
}

/// A file as given, or a directory's *.yaml, *.yml and *.json files in name order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}
