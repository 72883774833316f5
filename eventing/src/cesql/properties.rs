//! Property tests: any text given as a trigger's `cesql` filter parses to an
//! expression or a parse error, never a panic (a panic would crash the API call that
//! applies the trigger), and an expression that parses evaluates against an event
//! without a panic too (a panic there would stop the trigger's dispatcher).

use std::collections::HashMap;

use proptest::prelude::*;

use super::{Expression, Value};

/// Cases per property: enough to reach the parser's and the functions' corners, few
/// enough that the tests run in seconds.
const CASES: u32 = 1000;

const FUNCTIONS: &[&str] = &[
    "LENGTH",
    "CONCAT",
    "CONCAT_WS",
    "LOWER",
    "UPPER",
    "TRIM",
    "LEFT",
    "RIGHT",
    "SUBSTRING",
    "ABS",
    "INT",
    "BOOL",
    "STRING",
    "IS_INT",
    "IS_BOOL",
    "IS_STRING",
    "nope",
];

const ATTRIBUTES: &[&str] = &["id", "type", "count", "subject", "flag", "missing"];

fn integer() -> impl Strategy<Value = String> {
    prop_oneof![
        (-10i64..10).prop_map(|n| n.to_string()),
        (i64::from(i32::MAX) - 2..=i64::from(i32::MAX) + 2).prop_map(|n| n.to_string()),
        (i64::from(i32::MIN) - 2..=i64::from(i32::MIN) + 2).prop_map(|n| n.to_string()),
        "[0-9]{1,30}",
    ]
}

/// A string literal: quotes doubled or escaped, LIKE's wildcards and escapes, and
/// characters of more than one byte (the functions cut strings by character).
fn string() -> impl Strategy<Value = String> {
    "[a-zé日%_\\\\' 0-9]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''")))
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        integer(),
        string(),
        prop::sample::select(ATTRIBUTES).prop_map(str::to_owned),
        Just("TRUE".to_owned()),
        Just("FALSE".to_owned()),
    ]
}

/// Expressions shaped by the grammar, so that most of them parse and evaluate.
fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        let op = prop::sample::select(
            &[
                "AND", "OR", "XOR", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
                "LIKE", "NOT LIKE",
            ][..],
        );
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            prop::sample::select(ATTRIBUTES).prop_map(|a| format!("EXISTS {a}")),
            (inner.clone(), prop::collection::vec(inner.clone(), 1..4))
                .prop_map(|(a, set)| format!("{a} IN ({})", set.join(", "))),
            (
                prop::sample::select(FUNCTIONS),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
        ]
    })
}

/// Tokens of the language in any order: past the lexer, into the parser's errors.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        leaf(),
        prop::sample::select(
            &[
                "(", ")", ",", "+", "-", "*", "/", "%", "=", "!=", "<>", "<", "<=", ">", ">=",
                "AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "'", "\"", "\\", "!",
            ][..]
        )
        .prop_map(str::to_owned),
        prop::sample::select(FUNCTIONS).prop_map(str::to_owned),
    ];
    (
        prop::collection::vec(token, 0..24),
        prop_oneof![Just(" "), Just("")],
    )
        .prop_map(|(tokens, sep)| tokens.join(sep))
}

fn event() -> HashMap<String, Value> {
    HashMap::from([
        ("id".to_owned(), Value::from("42")),
        ("type".to_owned(), Value::from("order.créé")),
        ("subject".to_owned(), Value::from("日本%_\\")),
        ("count".to_owned(), Value::Integer(i32::MAX)),
        ("flag".to_owned(), Value::Bool(true)),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_text_parses_or_is_refused_without_a_panic(
        text in prop_oneof![".*", "[ -~]{0,60}", token_soup()],
    ) {
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.evaluate(&event());
        }
    }

    #[test]
    fn grammatical_expressions_evaluate_without_a_panic(text in expression()) {
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.evaluate(&event());
            prop_assert_eq!(e.to_string(), text);
        }
    }
}
