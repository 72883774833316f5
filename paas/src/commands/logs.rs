//! `paas logs SERVICE [-f]`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use http::Method;
use paas_api::{Object, Service};

use crate::cli::LogsArgs;
use crate::client::ApiClient;

pub(crate) async fn logs(client: &ApiClient, a: LogsArgs) -> Result<ExitCode> {
    let base = ApiClient::path(Some(&a.namespace), Service::INFO, Some(&a.service));
    // What each replica printed last, to print only what is new when following.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut tail = a.tail;
    loop {
        let answer = client
            .ok(Method::GET, &format!("{base}/logs?tail={tail}"), None)
            .await?;
        let replicas = answer.body["replicas"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let many = replicas.len() > 1;
        for r in &replicas {
            let id = format!(
                "{}/{}",
                r["revision"].as_str().unwrap_or("?"),
                r["replica"].as_str().unwrap_or("?")
            );
            let lines: Vec<String> = r["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect();
            let before = seen.get(&id).cloned().unwrap_or_default();
            for line in &lines[new_from(&before, &lines)..] {
                if many {
                    println!("[{id}] {line}");
                } else {
                    println!("{line}");
                }
            }
            seen.insert(id, lines);
        }
        if !a.follow {
            if replicas.is_empty() {
                eprintln!("Service {:?} has no running replica.", a.service);
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Following re-reads a window large enough to find where it left off.
        tail = tail.max(1000);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where the new lines start: after the longest suffix of `before` that prefixes `now`.
fn new_from(before: &[String], now: &[String]) -> usize {
    for k in (1..=before.len().min(now.len())).rev() {
        if before[before.len() - k..] == now[..k] {
            return k;
        }
    }
    if before.is_empty() {
        0
    } else {
        // The window moved past everything seen; find the last seen line.
        before
            .last()
            .and_then(|last| now.iter().rposition(|l| l == last).map(|i| i + 1))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn only_new_lines_are_printed() {
        assert_eq!(new_from(&[], &v(&["a", "b"])), 0);
        assert_eq!(new_from(&v(&["a", "b"]), &v(&["a", "b", "c"])), 2);
        assert_eq!(new_from(&v(&["a", "b", "c"]), &v(&["b", "c", "d"])), 2);
        assert_eq!(new_from(&v(&["a"]), &v(&["a"])), 1);
    }
}
