//! CESQL values and the casts between their three types.

use std::fmt;

/// A CESQL value. The language has exactly three types; URIs and timestamps are
/// represented as strings, and integers are 32-bit signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Bool(bool),
    Integer(i32),
    String(String),
}

/// The type of a [`Value`], used to pick casts and zero values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Bool,
    Integer,
    String,
}

impl Type {
    /// The value an operator or function of this return type yields when it cannot
    /// compute one: the spec makes every expression total, so errors come with a value.
    pub(crate) fn zero(self) -> Value {
        match self {
            Type::Bool => Value::Bool(false),
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(String::new()),
        }
    }
}

impl Value {
    pub(crate) fn type_of(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Integer(_) => Type::Integer,
            Value::String(_) => Type::String,
        }
    }

    /// Implicit cast, as operators and function arguments apply it. `Err` carries the
    /// reason; the caller records a cast error and goes on with the zero value.
    ///
    /// Integer to Boolean is not an implicit cast: the conformance cases expect
    /// `NOT 10` to fail with a cast error, while the explicit `BOOL(10)` succeeds.
    pub(crate) fn cast(&self, target: Type) -> Result<Value, String> {
        match (self, target) {
            (Value::Integer(_), Type::Bool) => Err(format!(
                "cannot cast Integer {self} to Boolean implicitly; use BOOL()"
            )),
            _ => self.convert(target),
        }
    }

    /// Explicit conversion, the semantics of `INT()`, `BOOL()` and `STRING()`.
    pub(crate) fn convert(&self, target: Type) -> Result<Value, String> {
        match (self, target) {
            (Value::String(s), Type::Integer) => parse_integer(s)
                .map(Value::Integer)
                .ok_or_else(|| format!("cannot cast String '{s}' to Integer")),
            (Value::String(s), Type::Bool) => parse_bool(s)
                .map(Value::Bool)
                .ok_or_else(|| format!("cannot cast String '{s}' to Boolean")),
            (Value::Bool(b), Type::Integer) => Ok(Value::Integer(i32::from(*b))),
            (Value::Integer(i), Type::Bool) => Ok(Value::Bool(*i != 0)),
            (value, Type::String) => Ok(Value::String(value.to_string())),
            (value, _) => Ok(value.clone()),
        }
    }
}

/// An optional sign and decimal digits, within the 32-bit range. No whitespace is
/// trimmed: attribute values are compared exactly everywhere else too.
pub(crate) fn parse_integer(text: &str) -> Option<i32> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `true` and `false` in any letter case, like the boolean literals.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The canonical string form: what `STRING(x)` returns and what `LIKE` matches.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Integer(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_with_sign_and_within_range_only() {
        assert_eq!(parse_integer("42"), Some(42));
        assert_eq!(parse_integer("-42"), Some(-42));
        assert_eq!(parse_integer("+7"), Some(7));
        assert_eq!(parse_integer("-2147483648"), Some(i32::MIN));
        assert_eq!(parse_integer("2147483648"), None);
        assert_eq!(parse_integer(" 1"), None);
        assert_eq!(parse_integer("-"), None);
        assert_eq!(parse_integer("1e3"), None);
        assert_eq!(parse_integer(""), None);
    }

    #[test]
    fn implicit_casts_refuse_integer_to_boolean_but_explicit_ones_allow_it() {
        assert!(Value::Integer(3).cast(Type::Bool).is_err());
        assert_eq!(Value::Integer(3).convert(Type::Bool), Ok(Value::Bool(true)));
        assert_eq!(
            Value::Integer(0).convert(Type::Bool),
            Ok(Value::Bool(false))
        );
        assert_eq!(Value::Bool(true).cast(Type::Integer), Ok(Value::Integer(1)));
        assert_eq!(
            Value::from("FaLsE").cast(Type::Bool),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            Value::Bool(false).cast(Type::String),
            Ok(Value::from("false"))
        );
        assert!(Value::from("yes").cast(Type::Bool).is_err());
    }
}
