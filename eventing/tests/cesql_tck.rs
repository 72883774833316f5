//! Runs every case of the CloudEvents SQL conformance suite (the CloudEvents project's
//! CESQL TCK, kept in `tests/data/cesql-tck/`) against `paas_eventing::cesql`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use paas_eventing::cesql::{ErrorKind, Expression, Value};
use serde::Deserialize;
use serde_yaml::Value as Yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    name: String,
    expression: String,
    result: Option<Yaml>,
    error: Option<String>,
    event: Option<serde_yaml::Mapping>,
    event_overrides: Option<serde_yaml::Mapping>,
}

fn tck_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cesql-tck")
}

/// "Any valid event" where a case gives none: the required attributes only, so that
/// every optional attribute and extension is missing unless a case sets it.
fn default_event() -> BTreeMap<String, Value> {
    [
        ("specversion", "1.0"),
        ("id", "123"),
        ("source", "/source"),
        ("type", "type"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), Value::from(value)))
    .collect()
}

/// Attributes keep the type the YAML gives them: an extension written as `10` is an
/// Integer, one written as `true` a Boolean, anything else its string form.
fn attribute_value(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => Value::Integer(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or_else(|| panic!("attribute {n} is not a 32-bit integer")),
        ),
        Yaml::String(s) => Value::String(s.clone()),
        other => panic!("unsupported attribute value {other:?}"),
    }
}

fn apply(event: &mut BTreeMap<String, Value>, attributes: &serde_yaml::Mapping) {
    for (name, value) in attributes {
        let name = name.as_str().expect("attribute names are strings");
        // The data is not addressable from CESQL, so it is no attribute.
        if name != "data" && name != "data_base64" {
            event.insert(name.to_owned(), attribute_value(value));
        }
    }
}

fn build_event(case: &Case) -> BTreeMap<String, Value> {
    let mut event = match &case.event {
        Some(full) => {
            let mut event = BTreeMap::new();
            apply(&mut event, full);
            event
        }
        None => default_event(),
    };
    if let Some(overrides) = &case.event_overrides {
        apply(&mut event, overrides);
    }
    event
}

fn expected_result(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => Value::Integer(i32::try_from(n.as_i64().unwrap()).unwrap()),
        Yaml::String(s) => Value::String(s.clone()),
        other => panic!("unsupported result {other:?}"),
    }
}

fn error_class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Parse => "parse",
        ErrorKind::Math => "math",
        ErrorKind::Cast => "cast",
        ErrorKind::MissingFunction => "missingFunction",
        ErrorKind::FunctionEvaluation => "functionEvaluation",
        ErrorKind::MissingAttribute => "missingAttribute",
        ErrorKind::Generic => "generic",
    }
}

/// `Ok` when the case passes, else what was expected and what came out.
fn run(case: &Case) -> Result<(), (String, String)> {
    let expected_errors: BTreeSet<&str> = case.error.iter().map(String::as_str).collect();
    let expected_value = case.result.as_ref().map(expected_result);
    let expected = format!("value {expected_value:?}, errors {expected_errors:?}");

    let expression = match Expression::parse(&case.expression) {
        Ok(expression) => expression,
        Err(err) if expected_errors.contains("parse") => {
            assert_eq!(error_class(err.kind()), "parse");
            return Ok(());
        }
        Err(err) => return Err((expected, format!("parse error: {err}"))),
    };
    if expected_errors.contains("parse") {
        return Err((expected, format!("parsed as {expression:?}")));
    }

    let evaluation = expression.evaluate(&build_event(case));
    let got_errors: BTreeSet<&str> = evaluation
        .errors
        .iter()
        .map(|e| error_class(e.kind()))
        .collect();
    let value_ok = expected_value
        .as_ref()
        .is_none_or(|v| *v == evaluation.value);
    if value_ok && got_errors == expected_errors {
        Ok(())
    } else {
        let messages: Vec<String> = evaluation.errors.iter().map(|e| e.to_string()).collect();
        Err((
            expected,
            format!(
                "value {:?}, errors {got_errors:?} {messages:?}",
                evaluation.value
            ),
        ))
    }
}

#[test]
fn every_tck_case_passes() {
    let dir = tck_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the CESQL TCK is missing at {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no CESQL TCK files in {}", dir.display());

    let mut total = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let suite: Suite = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a TCK file: {e}", file.display()));
        assert!(!suite.tests.is_empty(), "{} has no cases", suite.name);
        let file_name = file.file_name().unwrap().to_string_lossy();
        for case in &suite.tests {
            total += 1;
            if let Err((expected, got)) = run(case) {
                failures.push(format!(
                    "{file_name} / {}: `{}`\n    expected {expected}\n    got      {got}",
                    case.name, case.expression
                ));
            }
        }
    }

    println!(
        "CESQL TCK: {} of {total} cases pass ({} files)",
        total - failures.len(),
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} CESQL TCK cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
