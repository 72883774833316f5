//! `paas describe`: one resource for a person to read.

use std::process::ExitCode;

use anyhow::{bail, Result};
use paas_api::{Object, Revision};

use super::get::traffic_summary;
use super::kind;
use crate::cli::DescribeArgs;
use crate::client::ApiClient;
use crate::output::{age, s};

pub(crate) async fn describe(client: &ApiClient, a: DescribeArgs) -> Result<ExitCode> {
    let kind = kind(&a.kind)?;
    let plural = kind.plural;
    let Some(o) = client
        .get(&ApiClient::path(Some(&a.namespace), kind, Some(&a.name)))
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
    if kind.has_autoscaler {
        let path = format!(
            "{}/autoscaler",
            ApiClient::path(Some(&a.namespace), kind, Some(&a.name))
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
            .get(&ApiClient::path(Some(&a.namespace), Revision::INFO, None))
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
    if let Some(addresses) = addresses(plural, &o) {
        println!();
        for (label, value) in addresses {
            field(&label, value);
        }
    }
    if kind.has_deliveries {
        let path = format!(
            "{}/deliveries",
            ApiClient::path(Some(&a.namespace), kind, Some(&a.name))
        );
        let hops = client.get(&path).await?.unwrap_or_default();
        print_hops(&hops);
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

/// Where an eventing object takes and sends events, as its status resolved them.
fn addresses(plural: &str, o: &serde_json::Value) -> Option<Vec<(String, String)>> {
    let st = &o["status"];
    let or_none = |v: &serde_json::Value| v.as_str().unwrap_or("(none)").to_owned();
    let mut lines = Vec::new();
    match plural {
        "brokers" => lines.push(("Address".into(), or_none(&st["address"]["url"]))),
        "triggers" => {
            lines.push(("Broker".into(), s(&o["spec"]["broker"])));
            lines.push(("Subscriber".into(), or_none(&st["subscriberUri"])));
            if st["deadLetterSinkUri"].is_string() {
                lines.push(("Dead letters".into(), s(&st["deadLetterSinkUri"])));
            }
        }
        "sequences" => {
            lines.push(("Address".into(), or_none(&st["address"]["url"])));
            for (i, uri) in st["stepUris"].as_array().into_iter().flatten().enumerate() {
                lines.push((format!("Step {i}"), s(uri)));
            }
            lines.push(("Reply".into(), or_none(&st["replyUri"])));
        }
        "parallels" => {
            lines.push(("Address".into(), or_none(&st["address"]["url"])));
            for (i, b) in st["branches"].as_array().into_iter().flatten().enumerate() {
                if b["filterUri"].is_string() {
                    lines.push((format!("Branch {i} filter"), s(&b["filterUri"])));
                }
                lines.push((format!("Branch {i}"), s(&b["subscriberUri"])));
                if b["replyUri"].is_string() {
                    lines.push((format!("Branch {i} reply"), s(&b["replyUri"])));
                }
            }
        }
        "pingsources" => {
            let zone = o["spec"]["timezone"].as_str().unwrap_or("UTC");
            lines.push((
                "Schedule".into(),
                format!("{} ({zone})", s(&o["spec"]["schedule"])),
            ));
            lines.push(("Sink".into(), or_none(&st["sinkUri"])));
            lines.push(("Last tick".into(), or_none(&st["lastTickTime"])));
        }
        "kafkasources" => {
            let list = |v: &serde_json::Value| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            lines.push(("Brokers".into(), list(&o["spec"]["bootstrapServers"])));
            lines.push(("Topics".into(), list(&o["spec"]["topics"])));
            lines.push((
                "Group".into(),
                o["spec"]["consumerGroup"]
                    .as_str()
                    .unwrap_or("(the source's own)")
                    .to_owned(),
            ));
            lines.push(("Sink".into(), or_none(&st["sinkUri"])));
        }
        _ => return None,
    }
    Some(lines)
}

/// Each hop: what it reads, where it delivers, its counts and its last outcome.
fn print_hops(hops: &serde_json::Value) {
    let items = hops["items"].as_array().cloned().unwrap_or_default();
    println!("\nDeliveries:");
    if items.is_empty() {
        println!("  (no dispatcher running: see the conditions)");
        return;
    }
    for h in &items {
        let count = |name: &str| h["counts"][name].as_u64().unwrap_or(0);
        println!(
            "  {}: {} -> {}",
            s(&h["hop"]),
            s(&h["topic"]),
            s(&h["subscriber"])
        );
        let replies = match h["reply"].as_str() {
            Some("dropped") | None => "replies are dropped".to_owned(),
            Some(to) => format!("replies go to {to}"),
        };
        println!(
            "    {} received, {} filtered out, {} delivered, {} dead-lettered, {} dropped, {} replies; {replies}",
            count("received"),
            count("filtered"),
            count("delivered"),
            count("dead_lettered"),
            count("dropped"),
            count("replied"),
        );
        let last = &h["last"];
        if last.is_object() {
            let detail = last["detail"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            println!(
                "    last: {} {}{detail}, {} ago",
                s(&last["outcome"]).replace('_', "-"),
                s(&last["eventId"]),
                age(last["time"].as_str())
            );
        } else {
            println!("    last: nothing delivered yet");
        }
    }
}
