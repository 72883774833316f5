//! `paas get`.

use anyhow::{bail, Result};
use std::process::ExitCode;

use paas_api::kinds::Cell;

use super::kind;
use crate::cli::GetArgs;
use crate::client::ApiClient;
use crate::output::{age, condition, print_structured, print_table, s};

pub(crate) async fn get(client: &ApiClient, a: GetArgs) -> Result<ExitCode> {
    let kind = kind(&a.kind)?;
    let plural = kind.plural;
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let value = match &a.name {
        Some(name) => match client
            .get(&ApiClient::path(Some(&a.namespace), kind, Some(name)))
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
            .get(&ApiClient::path(ns, kind, None))
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
    header.push("NAME");
    header.extend(kind.columns.iter().map(|c| c.header));
    header.extend(["AGE", "READY", "REASON"]);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut row = Vec::new();
            if with_ns {
                row.push(s(&o["metadata"]["namespace"]));
            }
            row.push(s(&o["metadata"]["name"]));
            row.extend(kind.columns.iter().map(|c| cell(o, &c.value)));
            let (ready, reason, _) = condition(o, "Ready");
            row.extend([
                age(o["metadata"]["creationTimestamp"].as_str()),
                ready.into(),
                reason.into(),
            ]);
            row
        })
        .collect();
    print_table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

/// What a column of the table of kinds shows of `o`.
fn cell(o: &serde_json::Value, value: &Cell) -> String {
    let at = |pointer: &str| o.pointer(pointer).unwrap_or(&serde_json::Value::Null);
    match value {
        Cell::At(pointer) => s(at(pointer)),
        Cell::Count(pointer) => at(pointer).as_array().map_or(0, Vec::len).to_string(),
        Cell::Join(pointer) => at(pointer)
            .as_array()
            .map(|items| items.iter().map(s).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        Cell::Numbers(pointers) => pointers
            .iter()
            .map(|p| at(p).as_u64().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join("/"),
        Cell::Traffic => traffic_summary(o),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use paas_api::kafka_source::KafkaSource;
    use paas_api::{Object, Revision};
    use serde_json::json;

    fn cells(info: &paas_api::KindInfo, o: &serde_json::Value) -> Vec<String> {
        info.columns.iter().map(|c| cell(o, &c.value)).collect()
    }

    #[test]
    fn cells_show_what_the_table_of_kinds_points_at() {
        let revision = json!({
            "metadata": {"labels": {
                "serving.knative.dev/service": "hello",
                "serving.knative.dev/configurationGeneration": "2",
            }},
            "status": {"desiredReplicas": 3, "readyReplicas": 1},
        });
        assert_eq!(cells(Revision::INFO, &revision), ["hello", "2", "3/0/1"]);
        let source = json!({"spec": {"topics": ["a", "b"], "bootstrapServers": ["k:9092", "x"]}});
        assert_eq!(cells(KafkaSource::INFO, &source), ["a,b", "k:9092", "-"]);
        let route = json!({"status": {"traffic": [{"revisionName": "r-1", "percent": 100}]}});
        assert_eq!(cells(paas_api::Route::INFO, &route), ["-", "100% -> r-1"]);
    }
}
