//! `paas get`.

use anyhow::{bail, Result};
use std::process::ExitCode;

use super::plural;
use crate::cli::GetArgs;
use crate::client::ApiClient;
use crate::output::{age, condition, print_structured, print_table, s};

pub(crate) async fn get(client: &ApiClient, a: GetArgs) -> Result<ExitCode> {
    let plural = plural(&a.kind)?;
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let value = match &a.name {
        Some(name) => match client
            .get(&ApiClient::path(Some(&a.namespace), plural, Some(name)))
            .await?
        {
            Some(v) => v,
            None => bail!(
                "{plural} {:?} not found in namespace {}: `paas get {plural}` lists them",
                name,
                a.namespace
            ),
        },
        None => client
            .get(&ApiClient::path(ns, plural, None))
            .await?
            .unwrap_or_default(),
    };
    if print_structured(&value, a.output)? {
        return Ok(ExitCode::SUCCESS);
    }
    let items: Vec<serde_json::Value> = match value["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![value],
    };
    if items.is_empty() {
        eprintln!(
            "No {plural} found in {}.",
            ns.map_or("any namespace".to_owned(), |n| format!("namespace {n}"))
        );
        return Ok(ExitCode::SUCCESS);
    }
    let with_ns = a.all_namespaces;
    let mut header: Vec<&str> = Vec::new();
    if with_ns {
        header.push("NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut row = Vec::new();
            if with_ns {
                row.push(s(&o["metadata"]["namespace"]));
            }
            let (ready, reason, _) = condition(o, "Ready");
            let name = s(&o["metadata"]["name"]);
            let created = o["metadata"]["creationTimestamp"].as_str();
            match plural {
                "services" => row.extend([
                    name,
                    s(&o["status"]["url"]),
                    s(&o["status"]["latestReadyRevisionName"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "revisions" => row.extend([
                    name,
                    s(&o["metadata"]["labels"]["serving.knative.dev/service"]),
                    s(&o["metadata"]["labels"]["serving.knative.dev/configurationGeneration"]),
                    format!(
                        "{}/{}/{}",
                        o["status"]["desiredReplicas"].as_u64().unwrap_or(0),
                        o["status"]["actualReplicas"].as_u64().unwrap_or(0),
                        o["status"]["readyReplicas"].as_u64().unwrap_or(0)
                    ),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "routes" => row.extend([
                    name,
                    s(&o["status"]["url"]),
                    traffic_summary(o),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "brokers" => row.extend([
                    name,
                    s(&o["status"]["address"]["url"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "pingsources" => row.extend([
                    name,
                    s(&o["spec"]["schedule"]),
                    s(&o["status"]["sinkUri"]),
                    s(&o["status"]["lastTickTime"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "kafkasources" => row.extend([
                    name,
                    o["spec"]["topics"]
                        .as_array()
                        .map(|ts| ts.iter().map(s).collect::<Vec<_>>().join(","))
                        .unwrap_or_default(),
                    s(&o["spec"]["bootstrapServers"][0]),
                    s(&o["status"]["sinkUri"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "sequences" | "parallels" => row.extend([
                    name,
                    s(&o["status"]["address"]["url"]),
                    o["spec"][if plural == "sequences" {
                        "steps"
                    } else {
                        "branches"
                    }]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                "triggers" => row.extend([
                    name,
                    s(&o["spec"]["broker"]),
                    s(&o["status"]["subscriberUri"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
                _ => row.extend([
                    name,
                    s(&o["status"]["latestCreatedRevisionName"]),
                    s(&o["status"]["latestReadyRevisionName"]),
                    age(created),
                    ready.into(),
                    reason.into(),
                ]),
            }
            row
        })
        .collect();
    header.extend(match plural {
        "services" => ["NAME", "URL", "LATEST", "AGE", "READY", "REASON"].as_slice(),
        "revisions" => [
            "NAME",
            "SERVICE",
            "GENERATION",
            "REPLICAS(D/A/R)",
            "AGE",
            "READY",
            "REASON",
        ]
        .as_slice(),
        "routes" => ["NAME", "URL", "TRAFFIC", "AGE", "READY", "REASON"].as_slice(),
        "brokers" => ["NAME", "URL", "AGE", "READY", "REASON"].as_slice(),
        "sequences" => ["NAME", "URL", "STEPS", "AGE", "READY", "REASON"].as_slice(),
        "parallels" => ["NAME", "URL", "BRANCHES", "AGE", "READY", "REASON"].as_slice(),
        "pingsources" => [
            "NAME",
            "SCHEDULE",
            "SINK",
            "LAST TICK",
            "AGE",
            "READY",
            "REASON",
        ]
        .as_slice(),
        "kafkasources" => [
            "NAME",
            "TOPICS",
            "BOOTSTRAP SERVERS",
            "SINK",
            "AGE",
            "READY",
            "REASON",
        ]
        .as_slice(),
        "triggers" => ["NAME", "BROKER", "SUBSCRIBER_URI", "AGE", "READY", "REASON"].as_slice(),
        _ => [
            "NAME",
            "LATEST CREATED",
            "LATEST READY",
            "AGE",
            "READY",
            "REASON",
        ]
        .as_slice(),
    });
    print_table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

/// `100% -> hello-00002, 0% -> hello-00001 (tag stable)`.
pub(crate) fn traffic_summary(o: &serde_json::Value) -> String {
    let Some(traffic) = o["status"]["traffic"].as_array() else {
        return "-".into();
    };
    traffic
        .iter()
        .map(|t| {
            let mut part = format!(
                "{}% -> {}",
                t["percent"].as_u64().unwrap_or(0),
                t["revisionName"].as_str().unwrap_or("?")
            );
            if let Some(tag) = t["tag"].as_str() {
                part.push_str(&format!(" (tag {tag})"));
            }
            part
        })
        .collect::<Vec<_>>()
        .join(", ")
}
