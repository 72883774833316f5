//! Reading YAML manifests: several documents per file, each checked for unknown fields
//! and for the validation rules, with every problem reported as `FILE:LINE: FIELD: problem`.

use std::fmt;

use crate::kinds::{self, english_list, KindVisitor, Resource, KINDS};
use crate::object::{Object, TypeMeta};
use crate::serving::SERVING_API_VERSION;

/// One resource read from a manifest, with what the reader noticed about it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub resource: Resource,
    /// `FILE:LINE` of the document, for messages about the resource as a whole.
    pub origin: String,
    /// Accepted-but-ignored fields, already formatted as `FILE:LINE: FIELD: ...`.
    pub warnings: Vec<String>,
    /// The document's text and where it starts, to place problems found later.
    file: String,
    text: String,
    first_line: usize,
}

impl Manifest {
    /// `FILE:LINE` of a field path in this document (or of its nearest ancestor), for
    /// problems that only a later check finds.
    pub fn place(&self, path: &str) -> String {
        let line = locate(&self.text, path).unwrap_or(1);
        format!("{}:{}", self.file, self.first_line + line - 1)
    }
}

/// Everything wrong with a set of manifests; nothing is applied when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub problems: Vec<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

/// Parse every document of `text`, read from `file`.
pub fn parse_manifests(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for doc in split_documents(text) {
        match parse_document(file, &doc) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => {}
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ManifestError { problems })
    }
}

/// A document and the 1-based line of the file it starts on.
#[derive(Debug)]
struct Document {
    first_line: usize,
    text: String,
}

fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = Document {
        first_line: 1,
        text: String::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line == "...";
        if is_marker {
            docs.push(std::mem::replace(
                &mut current,
                Document {
                    first_line: i + 2,
                    text: String::new(),
                },
            ));
        } else {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    docs.push(current);
    docs.retain(|d| {
        d.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn parse_document(file: &str, doc: &Document) -> Result<Option<Manifest>, Vec<String>> {
    let at = |line: usize| format!("{file}:{}", doc.first_line + line - 1);
    let origin = at(1);
    let type_meta: TypeMeta = match serde_yaml::from_str(&doc.text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            return Err(vec![format!(
                "{}: not a YAML mapping with apiVersion and kind: {}",
                at(line),
                strip_location(&e.to_string())
            )]);
        }
    };
    if type_meta.kind.is_empty() || type_meta.api_version.is_empty() {
        return Err(vec![format!(
            "{origin}: apiVersion and kind are required (e.g. apiVersion: {SERVING_API_VERSION}, kind: Service)"
        )]);
    }
    match kinds::by_kind(&type_meta.api_version, &type_meta.kind) {
        Some(info) if info.writable() => info.visit(ParseAs { file, doc, origin }),
        _ => Err(vec![format!(
            "{origin}: kind: {} ({}) cannot be applied: paas applies {}",
            type_meta.kind,
            type_meta.api_version,
            applicable_kinds()
        )]),
    }
}

/// What `paas apply` takes, by apiVersion: `serving.knative.dev/v1 Service, ...`.
fn applicable_kinds() -> String {
    let groups: Vec<String> = kinds::api_versions()
        .into_iter()
        .filter_map(|api_version| {
            let names: Vec<&str> = KINDS
                .iter()
                .filter(|k| k.api_version == api_version && k.writable())
                .map(|k| k.kind)
                .collect();
            (!names.is_empty()).then(|| format!("{api_version} {}", english_list(&names, "and")))
        })
        .collect();
    english_list(&groups, "and")
}

/// Parse a document as the kind its apiVersion and kind name.
struct ParseAs<'a> {
    file: &'a str,
    doc: &'a Document,
    origin: String,
}

impl KindVisitor for ParseAs<'_> {
    type Output = Result<Option<Manifest>, Vec<String>>;

    fn visit<T: Object>(self) -> Self::Output {
        parse_typed::<T>(self.file, self.doc, self.origin)
    }
}

/// Deserialize a document as `T` (unknown fields are errors naming their path and
/// line), then validate it.
fn parse_typed<T: Object>(
    file: &str,
    doc: &Document,
    origin: String,
) -> Result<Option<Manifest>, Vec<String>> {
    let at = |line: usize| format!("{file}:{}", doc.first_line + line - 1);
    let de = serde_yaml::Deserializer::from_str(&doc.text);
    let mut value: T = match serde_path_to_error::deserialize(de) {
        Ok(v) => v,
        Err(e) => {
            let line = e.inner().location().map_or(1, |l| l.line());
            let path = e.path().to_string();
            let mut message = strip_location(&e.inner().to_string());
            // serde_yaml puts the path of the enclosing mapping in front of its message.
            if let Some((prefix, rest)) = message.split_once(": ") {
                if !prefix.contains(' ') {
                    message = rest.to_owned();
                }
            }
            return Err(vec![format!(
                "{}: {}",
                at(line),
                describe_serde_problem(&path, &message)
            )]);
        }
    };
    value.prepare_write();
    let report = value.validate();
    let locate_line = |path: &str| locate(&doc.text, path).unwrap_or(1);
    if !report.errors.is_empty() {
        return Err(report
            .errors
            .iter()
            .map(|e| format!("{}: {e}", at(locate_line(&e.path))))
            .collect());
    }
    let warnings = report
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", at(locate_line(&w.path))))
        .collect();
    Ok(Some(Manifest {
        resource: value.into_resource(),
        origin,
        warnings,
        file: file.to_owned(),
        text: doc.text.clone(),
        first_line: doc.first_line,
    }))
}

/// serde_yaml appends " at line L column C"; the caller puts the line in front instead.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Turn serde's "unknown field `x`, expected one of ..." into "PATH.x: unknown field ...".
fn describe_serde_problem(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let field = &rest[..end];
            let full = if path.is_empty() {
                field.to_owned()
            } else if path == field || path.ends_with(&format!(".{field}")) {
                path.to_owned()
            } else {
                format!("{path}.{field}")
            };
            let expected = rest[end + 1..]
                .trim_start_matches(',')
                .trim()
                .replace('`', "");
            return format!("{full}: unknown field ({expected})");
        }
    }
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// The 1-based line of a field path such as `spec.template.spec.containers[0].image` in
/// a block-style YAML document, or of its nearest ancestor that is present.
pub fn locate(doc: &str, path: &str) -> Option<usize> {
    let entries = entries(doc);
    let mut range = 0..entries.len();
    let mut parent_col: isize = -1;
    let mut found = None;
    for seg in segments(path) {
        let step = match seg {
            Segment::Key(k) => find_key(&entries, range.clone(), parent_col, k),
            Segment::Index(i) => find_item(&entries, range.clone(), parent_col, i),
        };
        match step {
            Some((idx, col, end)) => {
                found = Some(entries[idx].line);
                range = idx + 1..end;
                parent_col = col as isize;
                if let Segment::Index(_) = seg {
                    // The item's first key shares the dash's line.
                    range = idx..end;
                }
            }
            None => break,
        }
    }
    found
}

#[derive(Debug)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    // Annotation keys contain dots and slashes; they are always the last segment.
    let (head, tail) = match path.find(".annotations.").or_else(|| path.find(".labels.")) {
        Some(i) => {
            let after = path[i + 1..].find('.').map(|j| i + 1 + j);
            match after {
                Some(j) => (&path[..j], Some(&path[j + 1..])),
                None => (path, None),
            }
        }
        None => (path, None),
    };
    for part in head.split('.') {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            if b > 0 {
                out.push(Segment::Key(&rest[..b]));
            }
            rest = &rest[b..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let end = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..end].parse() {
                    out.push(Segment::Index(i));
                }
                rest = stripped.get(end + 1..).unwrap_or("");
            }
        } else if !rest.is_empty() {
            out.push(Segment::Key(rest));
        }
    }
    if let Some(t) = tail {
        out.push(Segment::Key(t));
    }
    out
}

/// A key or a list dash found on a line, with its column.
#[derive(Debug)]
struct Entry<'a> {
    line: usize,
    col: usize,
    dash: bool,
    key: Option<&'a str>,
}

fn entries(doc: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (i, raw) in doc.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut col = raw.len() - trimmed.len();
        let mut rest = trimmed;
        while let Some(after) =
            rest.strip_prefix("- ")
                .or(if rest == "-" { Some("") } else { None })
        {
            out.push(Entry {
                line: i + 1,
                col,
                dash: true,
                key: None,
            });
            let skipped = rest.len() - after.len();
            let after_trim = after.trim_start();
            col += skipped + (after.len() - after_trim.len());
            rest = after_trim;
        }
        if rest.is_empty() {
            continue;
        }
        let key = rest
            .find(':')
            .map(|c| rest[..c].trim().trim_matches(['"', '\'']));
        out.push(Entry {
            line: i + 1,
            col,
            dash: false,
            key,
        });
    }
    out
}

fn block_end(entries: &[Entry<'_>], from: usize, end: usize, col: usize) -> usize {
    (from + 1..end)
        // A list may sit at its key's own indentation: its dashes still belong to the key.
        .find(|&j| entries[j].col < col || (entries[j].col == col && !entries[j].dash))
        .unwrap_or(end)
}

fn find_key(
    entries: &[Entry<'_>],
    range: std::ops::Range<usize>,
    parent_col: isize,
    key: &str,
) -> Option<(usize, usize, usize)> {
    let child_col = range
        .clone()
        .filter(|&j| !entries[j].dash && entries[j].col as isize > parent_col)
        .map(|j| entries[j].col)
        .min()?;
    let idx = range.clone().find(|&j| {
        !entries[j].dash && entries[j].col == child_col && entries[j].key == Some(key)
    })?;
    Some((
        idx,
        child_col,
        block_end(entries, idx, range.end, child_col),
    ))
}

fn find_item(
    entries: &[Entry<'_>],
    range: std::ops::Range<usize>,
    parent_col: isize,
    index: usize,
) -> Option<(usize, usize, usize)> {
    let first = range
        .clone()
        .find(|&j| entries[j].dash && entries[j].col as isize >= parent_col)?;
    let col = entries[first].col;
    let idx = range
        .clone()
        .filter(|&j| entries[j].dash && entries[j].col == col)
        .nth(index)?;
    let end = (idx + 1..range.end)
        .find(|&j| entries[j].col <= col)
        .unwrap_or(range.end);
    Some((idx, col, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "\
# a comment
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  annotations:
    autoscaling.knative.dev/min-scale: \"1\"
spec:
  template:
    spec:
      containers:
        - image: paas-samples/hello:latest
          env:
            - name: TARGET
              value: World
          ports:
          - containerPort: 8080
";

    #[test]
    fn reads_a_knative_service() {
        let m = parse_manifests("hello.yaml", HELLO).unwrap();
        assert_eq!(m.len(), 1);
        let Resource::Service(svc) = &m[0].resource else {
            panic!("not a service")
        };
        assert_eq!(svc.metadata.name, "hello");
        assert_eq!(svc.spec.template.spec.containers[0].port(), 8080);
        assert!(m[0].warnings.is_empty());
    }

    #[test]
    fn locates_nested_fields() {
        assert_eq!(locate(HELLO, "metadata.name"), Some(5));
        assert_eq!(
            locate(HELLO, "spec.template.spec.containers[0].image"),
            Some(12)
        );
        assert_eq!(
            locate(HELLO, "spec.template.spec.containers[0].env[0].value"),
            Some(15)
        );
        assert_eq!(
            locate(
                HELLO,
                "spec.template.spec.containers[0].ports[0].containerPort"
            ),
            Some(17)
        );
        assert_eq!(
            locate(
                HELLO,
                "metadata.annotations.autoscaling.knative.dev/min-scale"
            ),
            Some(7)
        );
        // A missing field points at its nearest present ancestor.
        assert_eq!(
            locate(HELLO, "spec.template.spec.containers[0].resources"),
            Some(12)
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_path() {
        let text = HELLO.replace("          env:", "          imag: x\n          env:");
        let err = parse_manifests("hello.yaml", &text).unwrap_err();
        let msg = &err.problems[0];
        assert!(msg.starts_with("hello.yaml:13: "), "{msg}");
        assert!(
            msg.contains("spec.template.spec.containers[0].imag: unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn missing_image_points_at_the_container() {
        let text = HELLO.replace(
            "        - image: paas-samples/hello:latest\n          env:",
            "        - env:",
        );
        let err = parse_manifests("svc.yaml", &text).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["svc.yaml:12: spec.template.spec.containers[0].image: is required (or, for the process runtime, a command)"]
        );
    }

    #[test]
    fn invalid_name_is_reported_at_its_line() {
        let text = HELLO.replace("name: hello", "name: Hello_1");
        let err = parse_manifests("svc.yaml", &text).unwrap_err();
        assert!(
            err.problems[0].starts_with("svc.yaml:5: metadata.name: "),
            "{err}"
        );
    }

    #[test]
    fn several_documents_keep_their_file_lines() {
        let text = format!("{HELLO}---\n{}", HELLO.replace("name: hello", "name: Bad"));
        let err = parse_manifests("two.yaml", &text).unwrap_err();
        // The second document starts on line 19; its name is its 5th line.
        assert!(
            err.problems[0].starts_with("two.yaml:23: metadata.name"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_field_is_a_warning() {
        let text = HELLO.replace(
            "          env:",
            "          resources:\n            limits: {cpu: 1}\n          env:",
        );
        let m = parse_manifests("w.yaml", &text).unwrap();
        assert_eq!(
            m[0].warnings,
            vec!["w.yaml:13: spec.template.spec.containers[0].resources: is a Knative field that paas does not support yet; it is ignored"]
        );
    }

    #[test]
    fn brokers_and_triggers_are_read() {
        let text = "\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: display
spec:
  broker: default
  filter:
    attributes:
      type: dev.example.greeting
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
";
        let m = parse_manifests("e.yaml", text).unwrap();
        assert!(matches!(m[0].resource, Resource::Broker(_)));
        let Resource::Trigger(t) = &m[1].resource else {
            panic!("not a trigger")
        };
        assert_eq!(
            t.spec.filter.as_ref().unwrap().attributes["type"],
            "dev.example.greeting"
        );
        let bad = text.replace("type: dev", "Type: dev");
        let err = parse_manifests("e.yaml", &bad).unwrap_err();
        assert!(
            err.problems[0].starts_with("e.yaml:14: spec.filter.attributes.Type"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_kind_is_an_error() {
        let err = parse_manifests("k.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
            .unwrap_err();
        assert!(err.problems[0].contains("kind: Pod"));
        // What paas derives from a Service is not applied either; the message lists
        // what is, from the table of kinds.
        let err = parse_manifests(
            "c.yaml",
            "apiVersion: serving.knative.dev/v1\nkind: Configuration\nmetadata: {name: x}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            ["c.yaml:1: kind: Configuration (serving.knative.dev/v1) cannot be applied: paas applies serving.knative.dev/v1 Service, eventing.knative.dev/v1 Broker and Trigger, flows.knative.dev/v1 Sequence and Parallel, sources.knative.dev/v1 PingSource and sources.knative.dev/v1beta1 KafkaSource"]
        );
    }

    #[test]
    fn a_status_in_a_manifest_is_ignored() {
        let text = format!("{HELLO}status:\n  url: http://elsewhere\n");
        let m = parse_manifests("s.yaml", &text).unwrap();
        let Resource::Service(svc) = &m[0].resource else {
            panic!("not a service")
        };
        assert!(svc.status.is_empty());
        assert_eq!(svc.kind, "Service");
    }

    #[test]
    fn empty_documents_are_skipped() {
        let m = parse_manifests("e.yaml", &format!("---\n# nothing\n---\n{HELLO}")).unwrap();
        assert_eq!(m.len(), 1);
    }
    #[test]
    fn overflowing_durations_are_errors_at_their_line() {
        let text = HELLO.replace(
            "  annotations:\n",
            "  annotations:\n    serving.knative.dev/rollout-duration: 99999999999999999999h\n",
        );
        let err = parse_manifests("svc.yaml", &text).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["svc.yaml:7: metadata.annotations.serving.knative.dev/rollout-duration: \"99999999999999999999h\" is too long: a duration is at most 2562047h (about 292 years)"]
        );
        let trigger = "\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: display
spec:
  broker: default
  subscriber:
    uri: http://127.0.0.1:9/
  delivery:
    backoffDelay: P99999999999999999999D
";
        let err = parse_manifests("t.yaml", trigger).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["t.yaml:10: spec.delivery.backoffDelay: \"P99999999999999999999D\" is too long: a duration is at most P106751D (about 292 years)"]
        );
    }

    #[test]
    fn a_nul_byte_in_an_env_value_is_refused_at_apply() {
        let text = HELLO.replace("value: World", "value: \"Wor\\0ld\"");
        let err = parse_manifests("svc.yaml", &text).unwrap_err();
        assert!(
            err.problems[0].starts_with(
                "svc.yaml:15: spec.template.spec.containers[0].env[0].value: contains a NUL byte"
            ),
            "{err}"
        );
    }

    #[test]
    fn annotations_over_256_kib_are_refused_at_apply() {
        let text = HELLO.replace(
            "  annotations:\n",
            &format!("  annotations:\n    big: {}\n", "x".repeat(300 * 1024)),
        );
        let err = parse_manifests("svc.yaml", &text).unwrap_err();
        assert!(
            err.problems[0].starts_with("svc.yaml:6: metadata.annotations: are 307"),
            "{err}"
        );
    }
}
