//! `paas describe`: one resource for a person to read.

use std::process::ExitCode;

use anyhow::{bail, Result};

use super::get::traffic_summary;
use super::plural;
use crate::cli::DescribeArgs;
use crate::client::ApiClient;
use crate::output::{age, s};

pub(crate) async fn describe(client: &ApiClient, a: DescribeArgs) -> Result<ExitCode> {
    let plural = plural(&a.kind)?;
    let Some(o) = client
        .get(&ApiClient::path(Some(&a.namespace), plural, Some(&a.name)))
        .await?
    else {
        bail!(
            "{plural} {:?} not found in namespace {}: `paas get {plural}` lists them",
            a.name,
            a.namespace
        );
    };
    let field = |label: &str, value: String| println!("{:<14}{value}", format!("{label}:"));
    field("Name", s(&o["metadata"]["name"]));
    field("Namespace", s(&o["metadata"]["namespace"]));
    field("Kind", s(&o["kind"]));
    field("Age", age(o["metadata"]["creationTimestamp"].as_str()));
    field("Generation", s(&o["metadata"]["generation"]));
    match plural {
        "services" | "routes" => {
            field("URL", s(&o["status"]["url"]));
            field("Traffic", traffic_summary(&o));
        }
        _ => {}
    }
    if plural == "routes" {
        let canary = &o["status"]["canary"];
        if canary.is_object() {
            field(
                "Canary",
                format!("{}: {}", s(&canary["phase"]), s(&canary["message"])),
            );
        }
        let rollout = &o["status"]["rollout"]["revisions"];
        if rollout.as_array().is_some_and(|r| r.len() > 1) {
            field(
                "Rollout",
                format!(
                    "{}% every {} ms, next step at {}",
                    s(&o["status"]["rollout"]["stepPercent"]),
                    s(&o["status"]["rollout"]["stepMillis"]),
                    s(&o["status"]["rollout"]["nextStepTime"])
                ),
            );
        }
    }
    if plural == "services" || plural == "configurations" {
        field("Latest", s(&o["status"]["latestCreatedRevisionName"]));
        field("Latest ready", s(&o["status"]["latestReadyRevisionName"]));
    }
    let spec = if plural == "revisions" {
        &o["spec"]
    } else {
        &o["spec"]["template"]["spec"]
    };
    if let Some(c) = spec["containers"].get(0) {
        if let Some(image) = c["image"].as_str() {
            field("Image", image.into());
        }
        if let Some(cmd) = c["command"].as_array() {
            field("Command", cmd.iter().map(s).collect::<Vec<_>>().join(" "));
        }
        if let Some(env) = c["env"].as_array() {
            field(
                "Env",
                env.iter()
                    .map(|e| format!("{}={}", s(&e["name"]), s(&e["value"])))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if let Some(port) = c["ports"][0]["containerPort"].as_u64() {
            field("Port", port.to_string());
        }
    }
    if plural == "revisions" {
        field(
            "Replicas",
            format!(
                "{} desired, {} actual, {} ready",
                o["status"]["desiredReplicas"].as_u64().unwrap_or(0),
                o["status"]["actualReplicas"].as_u64().unwrap_or(0),
                o["status"]["readyReplicas"].as_u64().unwrap_or(0)
            ),
        );
    }
    if plural == "revisions" {
        let path = format!(
            "{}/autoscaler",
            ApiClient::path(Some(&a.namespace), "revisions", Some(&a.name))
        );
        if let Some(v) = client.get(&path).await? {
            println!("\nAutoscaler:");
            println!(
                "  mode {}, desired {}, ready {}",
                s(&v["mode"]),
                s(&v["desired"]),
                s(&v["ready"])
            );
            println!(
                "  {} per replica target {:.1}; stable average {:.2}, panic average {:.2}",
                s(&v["metric"]),
                v["target"].as_f64().unwrap_or(0.0),
                v["stable"].as_f64().unwrap_or(0.0),
                v["panic"].as_f64().unwrap_or(0.0)
            );
            println!("  excess burst capacity {}", s(&v["excessBurstCapacity"]));
        }
    }
    if plural == "services" {
        let revs = client
            .get(&ApiClient::path(Some(&a.namespace), "revisions", None))
            .await?
            .unwrap_or_default();
        let mine: Vec<_> = revs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["metadata"]["labels"]["serving.knative.dev/service"] == a.name.as_str())
            .collect();
        println!("\nRevisions:");
        for r in mine.iter().rev() {
            let name = s(&r["metadata"]["name"]);
            let percent = o["status"]["traffic"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["revisionName"] == name.as_str())
                .filter_map(|t| t["percent"].as_u64())
                .sum::<u64>();
            println!(
                "  {:>4}%  {name}  [{}] ({} ago)  replicas {}/{}",
                percent,
                s(&r["metadata"]["labels"]["serving.knative.dev/configurationGeneration"]),
                age(r["metadata"]["creationTimestamp"].as_str()),
                r["status"]["readyReplicas"].as_u64().unwrap_or(0),
                r["status"]["desiredReplicas"].as_u64().unwrap_or(0)
            );
        }
    }
    println!("\nConditions:");
    println!("  {:<26}{:<9}{:<20}MESSAGE", "TYPE", "STATUS", "REASON");
    for c in o["status"]["conditions"].as_array().into_iter().flatten() {
        println!(
            "  {:<26}{:<9}{:<20}{}",
            s(&c["type"]),
            s(&c["status"]),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
