//! Evaluation: every expression yields a value, and the errors met on the way.
//!
//! CESQL is total, so errors never stop evaluation. Two rules, both pinned by the
//! conformance cases, decide the value that goes with an error:
//!
//! * An operator or function whose operand reported an error (a missing attribute, a
//!   division by zero, ...) yields the zero value of its result type (`false`, `0`,
//!   `""`) without computing: `NOT missing` is `false`, `missing / 0` is `0` with
//!   only the missing-attribute error, `TRUE AND (1 != 1 / 0)` is `false`.
//! * When an operand evaluated fine but cannot be cast to the type the operator needs,
//!   a cast error is recorded and the operand's zero value is used instead: `NOT 10`
//!   is `true` with a cast error.

use std::collections::{BTreeMap, HashMap};

use super::ast::{BinaryOp, Expr};
use super::error::{ErrorKind, EvalError};
use super::functions::Function;
use super::value::{Type, Value};

/// Where an expression reads attributes from: the context attributes and extensions
/// of one event, by lower-case name, as their canonical value (URIs and timestamps as
/// strings; extensions as the string, integer or boolean they were given as).
pub trait AttributeSource {
    fn attribute(&self, name: &str) -> Option<Value>;
}

impl AttributeSource for HashMap<String, Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl AttributeSource for BTreeMap<String, Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

/// The outcome of evaluating an expression: its value, and every error met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub value: Value,
    pub errors: Vec<EvalError>,
}

impl Evaluation {
    /// Whether an event passes a filter with this expression. The spec: "If the output
    /// value is not a Boolean or any errors are returned, the event MUST NOT pass the
    /// filter", so only an error-free `true` matches; `'true'` or `1` do not.
    pub fn matches(&self) -> bool {
        self.errors.is_empty() && self.value == Value::Bool(true)
    }
}

pub(crate) fn evaluate(expr: &Expr, source: &dyn AttributeSource) -> Evaluation {
    let mut evaluator = Evaluator {
        source,
        errors: Vec::new(),
    };
    let value = evaluator.eval(expr);
    Evaluation {
        value,
        errors: evaluator.errors,
    }
}

struct Evaluator<'a> {
    source: &'a dyn AttributeSource,
    errors: Vec<EvalError>,
}

impl Evaluator<'_> {
    fn error(&mut self, kind: ErrorKind, message: impl Into<String>) {
        self.errors.push(EvalError::new(kind, message));
    }

    /// Evaluates an operand; `None` when it reported an error, in which case the
    /// caller yields its own zero value (see the module comment).
    fn operand(&mut self, expr: &Expr) -> Option<Value> {
        let before = self.errors.len();
        let value = self.eval(expr);
        (self.errors.len() == before).then_some(value)
    }

    /// Implicit cast of an operand that evaluated fine; a failure is a cast error and
    /// the zero value of `target`.
    fn cast(&mut self, value: &Value, target: Type) -> Value {
        value.cast(target).unwrap_or_else(|message| {
            self.error(ErrorKind::Cast, message);
            target.zero()
        })
    }

    fn cast_bool(&mut self, value: &Value) -> bool {
        matches!(self.cast(value, Type::Bool), Value::Bool(true))
    }

    fn cast_integer(&mut self, value: &Value) -> i32 {
        match self.cast(value, Type::Integer) {
            Value::Integer(i) => i,
            _ => 0,
        }
    }

    fn eval(&mut self, expr: &Expr) -> Value {
        match expr {
            Expr::Literal(value) => value.clone(),
            Expr::Attribute(name) => self.source.attribute(name).unwrap_or_else(|| {
                self.error(
                    ErrorKind::MissingAttribute,
                    format!("the event has no attribute '{name}'"),
                );
                // The spec: a reference to a missing attribute evaluates to false.
                Value::Bool(false)
            }),
            Expr::Exists(name) => Value::Bool(self.source.attribute(name).is_some()),
            Expr::Not(operand) => match self.operand(operand) {
                Some(value) => Value::Bool(!self.cast_bool(&value)),
                None => Value::Bool(false),
            },
            Expr::Negate(operand) => match self.operand(operand) {
                Some(value) => {
                    let x = self.cast_integer(&value);
                    Value::Integer(self.fit(-i64::from(x), || format!("-({x})")))
                }
                None => Value::Integer(0),
            },
            Expr::Binary { op, left, right } => self.binary(*op, left, right),
            Expr::Like {
                value,
                pattern,
                negated,
            } => match self.operand(value) {
                // Every value has a string form, so this cast cannot fail.
                Some(value) => Value::Bool(pattern.matches(&value.to_string()) != *negated),
                None => Value::Bool(false),
            },
            Expr::In {
                value,
                set,
                negated,
            } => self.membership(value, set, *negated),
            Expr::Call {
                name,
                function,
                args,
            } => self.call(name, *function, args),
        }
    }

    fn call(&mut self, name: &str, function: Option<Function>, args: &[Expr]) -> Value {
        let Some(function) = function else {
            self.error(
                ErrorKind::MissingFunction,
                format!("no function {name} takes {} argument(s)", args.len()),
            );
            // The spec leaves the value undefined; the TCK expects false.
            return Value::Bool(false);
        };
        let before = self.errors.len();
        let values: Vec<Value> = args.iter().map(|arg| self.eval(arg)).collect();
        if self.errors.len() > before {
            return function.return_type().zero();
        }
        let cast: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(index, value)| match function.parameter_type(index) {
                Some(target) => self.cast(value, target),
                None => value.clone(),
            })
            .collect();
        function.call(&cast, &mut self.errors)
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr) -> Value {
        match op {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => self.logic(op, left, right),
            BinaryOp::Equal | BinaryOp::NotEqual => {
                // Evaluate both sides so that all their errors are reported.
                let (left, right) = (self.operand(left), self.operand(right));
                let (Some(left), Some(right)) = (left, right) else {
                    return Value::Bool(false);
                };
                // `=` is defined for each type pair, so the spec casts the left operand
                // to the right one's type: `'TRUE' = true` is true, `true = 'TRUE'` is not.
                let left = self.cast(&left, right.type_of());
                Value::Bool((left == right) == (op == BinaryOp::Equal))
            }
            _ => {
                let (left, right) = (self.operand(left), self.operand(right));
                let (Some(left), Some(right)) = (left, right) else {
                    return match op {
                        BinaryOp::Less
                        | BinaryOp::LessEqual
                        | BinaryOp::Greater
                        | BinaryOp::GreaterEqual => Value::Bool(false),
                        _ => Value::Integer(0),
                    };
                };
                let (x, y) = (self.cast_integer(&left), self.cast_integer(&right));
                self.integer_operation(op, x, y)
            }
        }
    }

    /// The comparisons and arithmetic, on operands already cast to integers.
    fn integer_operation(&mut self, op: BinaryOp, x: i32, y: i32) -> Value {
        let (wide_x, wide_y) = (i64::from(x), i64::from(y));
        // Rust's `/` and `%` truncate, as the spec requires.
        let (wide, symbol) = match op {
            BinaryOp::Less => return Value::Bool(x < y),
            BinaryOp::LessEqual => return Value::Bool(x <= y),
            BinaryOp::Greater => return Value::Bool(x > y),
            BinaryOp::GreaterEqual => return Value::Bool(x >= y),
            BinaryOp::Divide | BinaryOp::Modulo if y == 0 => {
                self.error(ErrorKind::Math, format!("division of {x} by zero"));
                return Value::Integer(0);
            }
            BinaryOp::Add => (wide_x + wide_y, '+'),
            BinaryOp::Subtract => (wide_x - wide_y, '-'),
            BinaryOp::Multiply => (wide_x * wide_y, '*'),
            BinaryOp::Divide => (wide_x / wide_y, '/'),
            BinaryOp::Modulo => (wide_x % wide_y, '%'),
            // Handled by `logic` and the equality arm of `binary`.
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Equal | BinaryOp::NotEqual => {
                return Value::Bool(false)
            }
        };
        Value::Integer(self.fit(wide, || format!("{x} {symbol} {y}")))
    }

    /// Results are computed in 64 bits, where no operation on two 32-bit operands
    /// overflows. A result outside the 32-bit range is a math error and saturates at
    /// the nearest bound, as the spec defines for `ABS(-2147483648)`: the least
    /// surprising value to go on with, and the error makes any filter fail anyway.
    fn fit(&mut self, wide: i64, describe: impl FnOnce() -> String) -> i32 {
        i32::try_from(wide).unwrap_or_else(|_| {
            self.error(
                ErrorKind::Math,
                format!("{} overflows a 32-bit integer", describe()),
            );
            if wide > 0 {
                i32::MAX
            } else {
                i32::MIN
            }
        })
    }

    /// `AND` and `OR` short-circuit as the spec requires; `XOR` needs both sides.
    fn logic(&mut self, op: BinaryOp, left: &Expr, right: &Expr) -> Value {
        let Some(left) = self.operand(left) else {
            return Value::Bool(false);
        };
        let left = self.cast_bool(&left);
        match (op, left) {
            (BinaryOp::And, false) => return Value::Bool(false),
            (BinaryOp::Or, true) => return Value::Bool(true),
            _ => {}
        }
        let Some(right) = self.operand(right) else {
            return Value::Bool(false);
        };
        let right = self.cast_bool(&right);
        Value::Bool(match op {
            BinaryOp::Xor => left != right,
            // AND with a true left side, or OR with a false one: the right decides.
            _ => right,
        })
    }

    /// `x IN (...)` compares like `=`, except that the spec casts each element to the
    /// type of `x`: `'TRUE' IN (TRUE)` is false while `'TRUE' = TRUE` is true.
    fn membership(&mut self, value: &Expr, set: &[Expr], negated: bool) -> Value {
        let value = self.operand(value);
        let elements: Vec<Option<Value>> = set.iter().map(|e| self.operand(e)).collect();
        let (Some(value), Some(elements)) =
            (value, elements.into_iter().collect::<Option<Vec<_>>>())
        else {
            return Value::Bool(false);
        };
        let target = value.type_of();
        let mut found = false;
        for element in &elements {
            found |= self.cast(element, target) == value;
        }
        Value::Bool(found != negated)
    }
}
