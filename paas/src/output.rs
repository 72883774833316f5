//! Printing resources: aligned tables for people, JSON and YAML for programs.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::cli::OutputFormat;

/// Print `value` as JSON or YAML; returns false for the table format.
pub(crate) fn print_structured(value: &serde_json::Value, format: OutputFormat) -> Result<bool> {
    match format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        OutputFormat::Yaml => {
            print!("{}", serde_yaml::to_string(value)?);
            Ok(true)
        }
        OutputFormat::Table => Ok(false),
    }
}

/// Columns padded to their widest cell.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// `5s`, `3m`, `2h`, `4d` since an RFC 3339 time.
pub(crate) fn age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "-".into();
    };
    let secs = (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A condition's status and reason from an object's status.conditions.
pub(crate) fn condition<'a>(
    obj: &'a serde_json::Value,
    type_: &str,
) -> (&'a str, &'a str, &'a str) {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("Unknown"),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or(""),
            )
        })
        .unwrap_or(("Unknown", "", ""))
}

pub(crate) fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_formats() {
        assert_eq!(age(None), "-");
        let t = (Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
        assert_eq!(age(Some(&t)), "30s");
        let t = (Utc::now() - chrono::Duration::hours(50)).to_rfc3339();
        assert_eq!(age(Some(&t)), "2d");
    }

    #[test]
    fn conditions_are_read() {
        let v = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "X", "message": "m"}]}});
        assert_eq!(condition(&v, "Ready"), ("False", "X", "m"));
        assert_eq!(condition(&v, "Other").0, "Unknown");
    }
}
