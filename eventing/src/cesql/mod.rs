//! CloudEvents SQL (CESQL) v1: expressions over an event's attributes, as Knative's
//! `cesql` trigger filter uses them.
//!
//! ```
//! use std::collections::BTreeMap;
//! use paas_eventing::cesql::{Expression, Value};
//!
//! let filter = Expression::parse("type LIKE 'com.example.%' AND INT(priority) > 2").unwrap();
//! let event = BTreeMap::from([
//!     ("type".to_owned(), Value::from("com.example.created")),
//!     ("priority".to_owned(), Value::from("5")),
//! ]);
//! assert!(filter.evaluate(&event).matches());
//! ```
//!
//! Conformance is measured by the CloudEvents project's own cases
//! (`tests/cesql_tck.rs`). Where the spec leaves room, the choices are documented
//! where they are made: operator precedence in `parser`, the value that goes with an
//! error in `eval`, `LIKE` escapes in `like`, casts in `value`.

mod ast;
mod error;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;
#[cfg(test)]
mod properties;
mod value;

use std::fmt;

pub use error::{ErrorKind, EvalError, ParseError};
pub use eval::{AttributeSource, Evaluation};
pub use value::Value;

/// A parsed expression; parse errors carry the 1-based character position.
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    root: ast::Expr,
}

impl Expression {
    /// Parses `text`. Unknown functions are not parse errors: the spec classes them
    /// as `missingFunction`, reported by [`Expression::evaluate`].
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        Ok(Expression {
            text: text.to_owned(),
            root: parser::parse(text)?,
        })
    }

    /// Evaluate against an event's attributes (context attributes and extensions by
    /// lower-case name, values as their canonical string/int/bool). Never fails: CESQL
    /// is total, so the result always has a value, and lists the errors met.
    pub fn evaluate(&self, event: &dyn AttributeSource) -> Evaluation {
        eval::evaluate(&self.root, event)
    }
}

/// The expression as it was written.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn event() -> HashMap<String, Value> {
        HashMap::from([
            ("specversion".to_owned(), Value::from("1.0")),
            ("id".to_owned(), Value::from("42")),
            ("source".to_owned(), Value::from("/orders")),
            ("type".to_owned(), Value::from("order.created")),
            ("count".to_owned(), Value::Integer(3)),
        ])
    }

    fn eval(text: &str) -> (Value, Vec<ErrorKind>) {
        let evaluation = Expression::parse(text).unwrap().evaluate(&event());
        let kinds = evaluation.errors.iter().map(EvalError::kind).collect();
        (evaluation.value, kinds)
    }

    #[test]
    fn matches_needs_an_error_free_true() {
        let matches = |text: &str| {
            Expression::parse(text)
                .unwrap()
                .evaluate(&event())
                .matches()
        };
        assert!(matches("type = 'order.created'"));
        assert!(!matches("type = 'order.deleted'"));
        assert!(!matches("'true'"));
        assert!(!matches("1"));
        // NOT 10 is true, but with a cast error.
        assert!(!matches("NOT 10"));
        assert!(!matches("NOT missing"));
    }

    #[test]
    fn errors_in_operands_give_the_operator_its_zero_value() {
        assert_eq!(
            eval("NOT missing"),
            (Value::Bool(false), vec![ErrorKind::MissingAttribute])
        );
        assert_eq!(
            eval("NOT (1 / 0 = 0)"),
            (Value::Bool(false), vec![ErrorKind::Math])
        );
        assert_eq!(
            eval("CONCAT('a', missing)"),
            (Value::from(""), vec![ErrorKind::MissingAttribute])
        );
        assert_eq!(
            eval("missing = other"),
            (
                Value::Bool(false),
                vec![ErrorKind::MissingAttribute, ErrorKind::MissingAttribute]
            )
        );
        assert_eq!(
            eval("LENGTH(NOPE())"),
            (Value::Integer(0), vec![ErrorKind::MissingFunction])
        );
    }

    #[test]
    fn failed_casts_use_the_operand_zero_value() {
        assert_eq!(eval("NOT 10"), (Value::Bool(true), vec![ErrorKind::Cast]));
        assert_eq!(
            eval("'abc' + 1"),
            (Value::Integer(1), vec![ErrorKind::Cast])
        );
        assert_eq!(
            eval("1 / 'x'"),
            (Value::Integer(0), vec![ErrorKind::Cast, ErrorKind::Math])
        );
    }

    #[test]
    fn overflow_saturates_with_a_math_error() {
        assert_eq!(
            eval("2147483647 + 1"),
            (Value::Integer(i32::MAX), vec![ErrorKind::Math])
        );
        assert_eq!(
            eval("-2147483648 - 1"),
            (Value::Integer(i32::MIN), vec![ErrorKind::Math])
        );
        assert_eq!(
            eval("65536 * -65536"),
            (Value::Integer(i32::MIN), vec![ErrorKind::Math])
        );
        assert_eq!(
            eval("-2147483648 / -1"),
            (Value::Integer(i32::MAX), vec![ErrorKind::Math])
        );
        assert_eq!(
            eval("-(-2147483648)"),
            (Value::Integer(i32::MAX), vec![ErrorKind::Math])
        );
        assert_eq!(eval("-2147483648 % -1"), (Value::Integer(0), vec![]));
        assert_eq!(eval("-7 % 3"), (Value::Integer(-1), vec![]));
        assert_eq!(eval("-7 / 2"), (Value::Integer(-3), vec![]));
    }

    #[test]
    fn equality_casts_left_to_right_and_in_casts_elements_to_left() {
        assert_eq!(eval("count = '3'"), (Value::Bool(true), vec![]));
        assert_eq!(eval("'03' = count"), (Value::Bool(true), vec![]));
        assert_eq!(eval("count = '03'"), (Value::Bool(false), vec![]));
        assert_eq!(eval("count IN ('03', 4)"), (Value::Bool(true), vec![]));
        assert_eq!(eval("'3' IN (count)"), (Value::Bool(true), vec![]));
        assert_eq!(eval("count < '10'"), (Value::Bool(true), vec![]));
    }

    #[test]
    fn short_circuit_skips_the_errors_of_the_right_side() {
        assert_eq!(eval("FALSE AND missing"), (Value::Bool(false), vec![]));
        assert_eq!(eval("TRUE OR missing"), (Value::Bool(true), vec![]));
        assert_eq!(
            eval("FALSE XOR missing"),
            (Value::Bool(false), vec![ErrorKind::MissingAttribute])
        );
        assert_eq!(
            eval("missing OR TRUE"),
            (Value::Bool(false), vec![ErrorKind::MissingAttribute])
        );
    }

    #[test]
    fn integer_extensions_keep_their_type() {
        assert_eq!(eval("count + 1"), (Value::Integer(4), vec![]));
        assert_eq!(eval("count"), (Value::Integer(3), vec![]));
        assert_eq!(eval("count LIKE '3'"), (Value::Bool(true), vec![]));
        assert_eq!(eval("EXISTS COUNT"), (Value::Bool(true), vec![]));
    }

    #[test]
    fn functions_and_keywords_ignore_case() {
        assert_eq!(
            eval("lower('ABC') = 'abc' and Upper('x') = 'X'"),
            (Value::Bool(true), vec![])
        );
        assert_eq!(eval("Is_Int(id)"), (Value::Bool(true), vec![]));
        assert_eq!(eval("abs(-3)"), (Value::Integer(3), vec![]));
    }

    #[test]
    fn expressions_display_as_written() {
        let text = "id  =  '42'";
        assert_eq!(Expression::parse(text).unwrap().to_string(), text);
    }
}
