//! Every parser of user input in paas-api, fed random text: each answers with a value
//! or an error, never a panic (a panic crashes `paas apply` and drops the API's
//! connection). Inputs are drawn both from any characters and from each grammar's own
//! characters, so that they get past the first check and reach the arithmetic.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use paas_api::canary::{self, canary_spec};
use paas_api::cron::Schedule;
use paas_api::eventing_validation::attribute_name_problem;
use paas_api::kafka_source::KeyType;
use paas_api::manifest::locate;
use paas_api::names::{dns1035_label_problem, dns1123_label_problem, env_name_problem};
use paas_api::serving::{Container, EnvVar, ServiceSpec};
use paas_api::sources::PingSourceSpec;
use paas_api::validation::validate_service;
use paas_api::{duration, iso8601, keys, parse_manifests, Service};
use proptest::prelude::*;

/// Cases per property: enough to find what a grammar-shaped input reaches, few enough
/// that the whole file runs in seconds.
const CASES: u32 = 512;

/// A number as a user might write it: small, near a type's limit, or far past it.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        (u64::from(u32::MAX) - 100..=u64::from(u32::MAX) + 100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,40}",
        "[0-9]{0,25}\\.[0-9]{0,25}",
        "[0-9]{300,400}",
    ]
}

fn go_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.hms ]{0,30}",
        prop::collection::vec((number(), prop_oneof!["h", "m", "s", "ms", "", "x"]), 1..4)
            .prop_map(|parts| parts.into_iter().map(|(n, u)| n + &u).collect()),
    ]
}

fn iso_duration() -> impl Strategy<Value = String> {
    let part = |units: &'static [&'static str]| {
        prop::option::of((number(), prop::sample::select(units)))
            .prop_map(|p| p.map(|(n, u)| n.replace('.', ",") + u).unwrap_or_default())
    };
    prop_oneof![
        "[pPtT0-9.,DHMSYW-]{0,30}",
        (
            prop_oneof!["P", "p", ""],
            part(&["D", "d", "W", "Y"]),
            prop_oneof!["T", "t", ""],
            part(&["H", "h"]),
            part(&["M", "m"]),
            part(&["S", "s"]),
        )
            .prop_map(|(p, d, t, h, m, s)| format!("{p}{d}{t}{h}{m}{s}")),
    ]
}

fn cron_field() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        3 => (0u32..70).prop_map(|n| n.to_string()),
        1 => number(),
        1 => prop::sample::select(&["jan", "dec", "sun", "sat", "MON", "foo", ""][..])
            .prop_map(str::to_owned),
    ];
    // Steps near u32::MAX once overflowed as the field's values were listed.
    let step = prop_oneof![
        (0u32..70).prop_map(|n| n.to_string()),
        (u32::MAX - 64..=u32::MAX).prop_map(|n| n.to_string()),
        number(),
    ];
    let range = prop_oneof![
        Just("*".to_owned()),
        Just("?".to_owned()),
        value.clone(),
        (value.clone(), value).prop_map(|(a, b)| format!("{a}-{b}")),
    ];
    let part = (range, prop::option::of(step)).prop_map(|(r, step)| match step {
        Some(s) => format!("{r}/{s}"),
        None => r,
    });
    prop::collection::vec(part, 1..3).prop_map(|parts| parts.join(","))
}

fn cron() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "[0-9*/,? a-z@-]{0,40}",
        // Five fields most often: a wrong count is refused before any field is read.
        3 => prop::collection::vec(cron_field(), 5).prop_map(|fields| fields.join(" ")),
        1 => prop::collection::vec(cron_field(), 0..7).prop_map(|fields| fields.join(" ")),
        1 => "@[a-z]{0,10}",
    ]
}

fn annotations(keys: &'static [&'static str]) -> impl Strategy<Value = BTreeMap<String, String>> {
    let value = prop_oneof![".{0,20}", number(), go_duration(), "[0-9,% ]{0,20}",];
    prop::collection::btree_map(
        prop::sample::select(keys).prop_map(str::to_owned),
        value,
        0..keys.len() + 1,
    )
}

const CANARY_KEYS: &[&str] = &[
    canary::STEPS,
    canary::STEP_DURATION,
    canary::SUCCESS_RATE,
    canary::MAX_P99,
    canary::MIN_REQUESTS,
    "canary.paas.dev/other",
];

const SERVICE_KEYS: &[&str] = &[
    keys::ROLLOUT_DURATION,
    keys::FREEZE_RETENTION,
    keys::IDLE,
    canary::STEPS,
    canary::STEP_DURATION,
    canary::MAX_P99,
];

const TEMPLATE_KEYS: &[&str] = &[
    keys::MIN_SCALE,
    keys::MAX_SCALE,
    keys::INITIAL_SCALE,
    "autoscaling.knative.dev/target",
    "autoscaling.knative.dev/window",
    "autoscaling.knative.dev/metric",
];

/// A YAML double-quoted scalar holding exactly `s` (JSON's escapes are YAML's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A manifest of one of the applied kinds, with user-written fields drawn at random.
fn manifest() -> impl Strategy<Value = String> {
    let text = prop_oneof![".{0,16}", number(), go_duration(), iso_duration(), cron()];
    (0usize..5, prop::collection::vec(text, 6)).prop_map(|(kind, v)| {
        let q: Vec<String> = v.iter().map(|s| quoted(s)).collect();
        match kind {
            0 => format!(
                "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {}\n  annotations:\n    {}: {}\n    {}: {}\nspec:\n  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: {}\n    spec:\n      containers:\n        - image: x\n          env:\n            - name: {}\n              value: {}\n",
                q[0], keys::ROLLOUT_DURATION, q[1], canary::STEP_DURATION, q[2], q[3], q[4], q[5]
            ),
            1 => format!(
                "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {}\nspec:\n  broker: {}\n  subscriber:\n    uri: {}\n  delivery:\n    backoffDelay: {}\n    timeout: {}\n",
                q[0], q[1], q[2], q[3], q[4]
            ),
            2 => format!(
                "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata:\n  name: {}\nspec:\n  schedule: {}\n  timezone: {}\n  dataBase64: {}\n  sink:\n    uri: {}\n",
                q[0], q[1], q[2], q[3], q[4]
            ),
            3 => format!(
                "apiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\nmetadata:\n  name: {}\n  annotations:\n    kafkasources.sources.knative.dev/key-type: {}\nspec:\n  bootstrapServers: [{}]\n  topics: [{}]\n  sink:\n    uri: {}\n",
                q[0], q[1], q[2], q[3], q[4]
            ),
            _ => format!(
                "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata:\n  name: {}\nspec:\n  steps:\n    - uri: {}\n      delivery:\n        retry: 1\n        backoffDelay: {}\n  reply:\n    ref: {{kind: {}, name: {}}}\n",
                q[0], q[1], q[2], q[3], q[4]
            ),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn go_durations_never_panic(s in prop_oneof![".*", go_duration()]) {
        let _ = duration::parse(&s);
    }

    #[test]
    fn iso8601_durations_never_panic(s in prop_oneof![".*", iso_duration()]) {
        let _ = iso8601::parse(&s);
    }

    #[test]
    fn cron_schedules_never_panic(s in prop_oneof![".*", cron()], minutes in 0i64..10_000_000) {
        if let Ok(schedule) = Schedule::parse(&s) {
            // A schedule that parses is used: its next tick is found without a panic too.
            let after = Utc.timestamp_opt(1_700_000_000 + minutes * 60, 0).single();
            if let Some(after) = after {
                let _ = schedule.next_after(&after.with_timezone(&chrono_tz::Europe::Paris));
            }
        }
    }

    #[test]
    fn names_never_panic(s in prop_oneof![".*", "[a-zA-Z0-9._-]{0,70}"]) {
        let _ = dns1035_label_problem(&s);
        let _ = dns1123_label_problem(&s);
        let _ = env_name_problem(&s);
        let _ = attribute_name_problem(&s);
        let _ = KeyType::parse(&s);
    }

    #[test]
    fn canary_annotations_never_panic(a in annotations(CANARY_KEYS)) {
        let _ = canary_spec(&a);
    }

    #[test]
    fn service_annotations_and_env_never_panic(
        meta in annotations(SERVICE_KEYS),
        template in annotations(TEMPLATE_KEYS),
        name in ".{0,20}",
        env in prop::collection::vec((".{0,10}", prop::option::of(".{0,10}")), 0..3),
    ) {
        let mut spec = ServiceSpec::default();
        spec.template.metadata.annotations = template;
        spec.template.spec.containers.push(Container {
            image: Some("x".into()),
            env: env
                .into_iter()
                .map(|(name, value)| EnvVar { name, value, value_from: None })
                .collect(),
            ..Container::default()
        });
        let mut svc = Service::new("default", &name, spec);
        svc.metadata.annotations = meta;
        let _ = validate_service(&svc);
    }

    #[test]
    fn ping_source_data_never_panics(data in ".{0,20}", b64 in "[A-Za-z0-9+/=]{0,20}") {
        let spec = PingSourceSpec { data_base64: Some(b64), ..PingSourceSpec::default() };
        let _ = spec.payload();
        let spec = PingSourceSpec { data: Some(data), ..PingSourceSpec::default() };
        let _ = spec.payload();
    }

    #[test]
    fn manifests_never_panic(text in prop_oneof![
        ".*",
        "[a-zA-Z0-9:\\-\\[\\]{}\"'#&*!|>%@`,. \n]{0,200}",
        manifest(),
    ]) {
        match parse_manifests("fuzz.yaml", &text) {
            Ok(manifests) => {
                for m in manifests {
                    let _ = m.place("spec.template.spec.containers[0].env[0].value");
                }
            }
            Err(e) => prop_assert!(!e.problems.is_empty()),
        }
    }

    #[test]
    fn locating_a_field_never_panics(
        doc in prop_oneof![".*", "[a-z: \\-\n\\[\\]]{0,80}"],
        path in prop_oneof![".*", "[a-z.\\[\\]0-9]{0,30}"],
    ) {
        let _ = locate(&doc, &path);
    }
}

/// What the panics looked like: each overflowing duration is an error that says so.
#[test]
fn the_reported_overflows_are_clear_errors() {
    let e = duration::parse("99999999999999999999h").unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"99999999999999999999h\" is too long: a duration is at most 2562047h (about 292 years)"
    );
    let e = iso8601::parse("P99999999999999999999D").unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"P99999999999999999999D\" is too long: a duration is at most P106751D (about 292 years)"
    );
}

/// A step past the end of u32 once overflowed while the field's values were listed.
#[test]
fn a_huge_cron_step_is_one_value() {
    let s = Schedule::parse("5/4294967295 * * * *").unwrap();
    let after = Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).unwrap();
    assert_eq!(
        s.next_after(&after).map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-01-01T01:05:00+00:00")
    );
}
