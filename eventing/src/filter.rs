//! Trigger filters: Knative's attribute filter (exact match; an empty value matches
//! any value of a present attribute) and the Subscriptions API filters (exact,
//! prefix, suffix, all, any, not, cesql). Compiled once per trigger, applied per event.

use paas_api::eventing::{SubscriptionsApiFilter, TriggerSpec};

use crate::cesql::{AttributeSource, Expression, Value};
use crate::cloudevent::{CloudEvent, ExtensionValue};

#[derive(Debug, Clone)]
pub enum Filter {
    /// Every event passes.
    Everything,
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    /// `filter.attributes`: the attribute is present and, unless the value is empty, equal.
    Attribute {
        name: String,
        value: String,
    },
    Exact {
        name: String,
        value: String,
    },
    Prefix {
        name: String,
        value: String,
    },
    Suffix {
        name: String,
        value: String,
    },
    Cesql(Expression),
}

/// A filter that cannot be compiled, with the field path it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl Filter {
    /// The filter of a trigger: `filters` when present (all must match), else `filter`.
    pub fn of_trigger(spec: &TriggerSpec) -> Result<Filter, FilterError> {
        if !spec.filters.is_empty() {
            let parts = spec
                .filters
                .iter()
                .enumerate()
                .map(|(i, f)| compile(f, &format!("spec.filters[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Filter::All(parts));
        }
        match &spec.filter {
            Some(f) if !f.attributes.is_empty() => Ok(Filter::All(
                f.attributes
                    .iter()
                    .map(|(name, value)| Filter::Attribute {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            )),
            _ => Ok(Filter::Everything),
        }
    }

    pub fn matches(&self, event: &CloudEvent) -> bool {
        match self {
            Filter::Everything => true,
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
            Filter::Attribute { name, value } => event
                .attribute(name)
                .is_some_and(|v| value.is_empty() || &v == value),
            Filter::Exact { name, value } => event.attribute(name).is_some_and(|v| &v == value),
            Filter::Prefix { name, value } => event
                .attribute(name)
                .is_some_and(|v| v.starts_with(value.as_str())),
            Filter::Suffix { name, value } => event
                .attribute(name)
                .is_some_and(|v| v.ends_with(value.as_str())),
            Filter::Cesql(e) => e.evaluate(event).matches(),
        }
    }
}

fn compile(f: &SubscriptionsApiFilter, path: &str) -> Result<Filter, FilterError> {
    let dialects = f.dialects();
    if dialects.len() != 1 {
        return Err(FilterError {
            path: path.to_owned(),
            message: "a filter has exactly one dialect".into(),
        });
    }
    let single = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_default()
    };
    Ok(match dialects[0] {
        "all" => Filter::All(
            f.all
                .iter()
                .enumerate()
                .map(|(i, s)| compile(s, &format!("{path}.all[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        "any" => Filter::Any(
            f.any
                .iter()
                .enumerate()
                .map(|(i, s)| compile(s, &format!("{path}.any[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        "not" => match &f.not {
            Some(s) => Filter::Not(Box::new(compile(s, &format!("{path}.not"))?)),
            None => Filter::Everything,
        },
        "exact" => {
            let (name, value) = single(&f.exact);
            Filter::Exact { name, value }
        }
        "prefix" => {
            let (name, value) = single(&f.prefix);
            Filter::Prefix { name, value }
        }
        "suffix" => {
            let (name, value) = single(&f.suffix);
            Filter::Suffix { name, value }
        }
        _ => {
            let text = f.cesql.as_deref().unwrap_or_default();
            Filter::Cesql(Expression::parse(text).map_err(|e| FilterError {
                path: format!("{path}.cesql"),
                message: format!("invalid CloudEvents SQL expression {text:?}: {e}"),
            })?)
        }
    })
}

/// CESQL reads an event's attributes with their CloudEvents types: extensions keep
/// the integer or boolean type they were sent with, everything else is a string.
impl AttributeSource for CloudEvent {
    fn attribute(&self, name: &str) -> Option<Value> {
        match self.extension(name) {
            Some(ExtensionValue::Integer(i)) => Some(Value::Integer(*i)),
            Some(ExtensionValue::Boolean(b)) => Some(Value::Bool(*b)),
            _ => CloudEvent::attribute(self, name).map(Value::String),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paas_api::eventing::TriggerFilter;

    fn event() -> CloudEvent {
        let mut e = CloudEvent::new("1", "/orders/eu", "com.shop.order.created");
        e.subject = Some("order-42".into());
        e.extensions
            .insert("priority".into(), ExtensionValue::Integer(7));
        e
    }

    fn spec_with(filters: Vec<SubscriptionsApiFilter>) -> TriggerSpec {
        TriggerSpec {
            filters,
            ..TriggerSpec::default()
        }
    }

    fn one(dialect: &str, name: &str, value: &str) -> SubscriptionsApiFilter {
        let map = [(name.to_owned(), value.to_owned())].into_iter().collect();
        match dialect {
            "exact" => SubscriptionsApiFilter {
                exact: map,
                ..Default::default()
            },
            "prefix" => SubscriptionsApiFilter {
                prefix: map,
                ..Default::default()
            },
            _ => SubscriptionsApiFilter {
                suffix: map,
                ..Default::default()
            },
        }
    }

    fn passes(filters: Vec<SubscriptionsApiFilter>) -> bool {
        Filter::of_trigger(&spec_with(filters))
            .unwrap()
            .matches(&event())
    }

    #[test]
    fn attribute_filters_match_exactly_and_empty_means_present() {
        let mut spec = TriggerSpec {
            filter: Some(TriggerFilter {
                attributes: [("type".to_owned(), "com.shop.order.created".to_owned())].into(),
            }),
            ..TriggerSpec::default()
        };
        assert!(Filter::of_trigger(&spec).unwrap().matches(&event()));
        spec.filter = Some(TriggerFilter {
            attributes: [("subject".to_owned(), String::new())].into(),
        });
        assert!(Filter::of_trigger(&spec).unwrap().matches(&event()));
        spec.filter = Some(TriggerFilter {
            attributes: [("dataschema".to_owned(), String::new())].into(),
        });
        assert!(!Filter::of_trigger(&spec).unwrap().matches(&event()));
        assert!(Filter::of_trigger(&TriggerSpec::default())
            .unwrap()
            .matches(&event()));
    }

    #[test]
    fn every_dialect() {
        assert!(passes(vec![one("exact", "type", "com.shop.order.created")]));
        assert!(!passes(vec![one("exact", "type", "com.shop.order")]));
        assert!(passes(vec![one("prefix", "type", "com.shop.")]));
        assert!(passes(vec![one("suffix", "source", "/eu")]));
        assert!(!passes(vec![one("suffix", "source", "/us")]));
        assert!(passes(vec![SubscriptionsApiFilter {
            not: Some(Box::new(one("prefix", "source", "/payments"))),
            ..Default::default()
        }]));
        assert!(passes(vec![SubscriptionsApiFilter {
            any: vec![
                one("exact", "subject", "nope"),
                one("exact", "subject", "order-42")
            ],
            ..Default::default()
        }]));
        assert!(!passes(vec![SubscriptionsApiFilter {
            all: vec![
                one("prefix", "type", "com.shop"),
                one("exact", "subject", "nope")
            ],
            ..Default::default()
        }]));
        assert!(passes(vec![SubscriptionsApiFilter {
            cesql: Some("priority > 5 AND source LIKE '/orders/%'".into()),
            ..Default::default()
        }]));
        // Several filters: all must pass.
        assert!(!passes(vec![
            one("prefix", "type", "com."),
            one("exact", "subject", "other")
        ]));
    }

    #[test]
    fn an_invalid_expression_names_its_path_and_position() {
        let err = Filter::of_trigger(&spec_with(vec![SubscriptionsApiFilter {
            cesql: Some("type = ".into()),
            ..Default::default()
        }]))
        .unwrap_err();
        assert_eq!(err.path, "spec.filters[0].cesql");
        assert!(err.message.contains("position"), "{}", err.message);
    }
}
