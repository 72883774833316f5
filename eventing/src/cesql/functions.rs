//! The built-in functions: string manipulation, `ABS`, and the casts.

use super::error::{ErrorKind, EvalError};
use super::value::{parse_bool, parse_integer, Type, Value};

/// A built-in resolved from its name and arity at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    SubstringLength,
    Abs,
    Int,
    Bool,
    String,
    IsInt,
    IsBool,
    IsString,
}

impl Function {
    /// Names are case-insensitive; overloads differ by arity only (`SUBSTRING`), and
    /// a known name with the wrong arity is as missing as an unknown name.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Function> {
        let function = match (name.to_ascii_uppercase().as_str(), arity) {
            ("LENGTH", 1) => Function::Length,
            ("CONCAT", _) => Function::Concat,
            ("CONCAT_WS", n) if n >= 1 => Function::ConcatWs,
            ("LOWER", 1) => Function::Lower,
            ("UPPER", 1) => Function::Upper,
            ("TRIM", 1) => Function::Trim,
            ("LEFT", 2) => Function::Left,
            ("RIGHT", 2) => Function::Right,
            ("SUBSTRING", 2) => Function::Substring,
            ("SUBSTRING", 3) => Function::SubstringLength,
            ("ABS", 1) => Function::Abs,
            ("INT", 1) => Function::Int,
            ("BOOL", 1) => Function::Bool,
            ("STRING", 1) => Function::String,
            ("IS_INT", 1) => Function::IsInt,
            ("IS_BOOL", 1) => Function::IsBool,
            ("IS_STRING", 1) => Function::IsString,
            _ => return None,
        };
        Some(function)
    }

    fn name(self) -> &'static str {
        match self {
            Function::Length => "LENGTH",
            Function::Concat => "CONCAT",
            Function::ConcatWs => "CONCAT_WS",
            Function::Lower => "LOWER",
            Function::Upper => "UPPER",
            Function::Trim => "TRIM",
            Function::Left => "LEFT",
            Function::Right => "RIGHT",
            Function::Substring | Function::SubstringLength => "SUBSTRING",
            Function::Abs => "ABS",
            Function::Int => "INT",
            Function::Bool => "BOOL",
            Function::String => "STRING",
            Function::IsInt => "IS_INT",
            Function::IsBool => "IS_BOOL",
            Function::IsString => "IS_STRING",
        }
    }

    pub(crate) fn return_type(self) -> Type {
        match self {
            Function::Length | Function::Abs | Function::Int => Type::Integer,
            Function::Bool | Function::IsInt | Function::IsBool | Function::IsString => Type::Bool,
            _ => Type::String,
        }
    }

    /// The type argument `index` is implicitly cast to; `None` takes any value as is.
    pub(crate) fn parameter_type(self, index: usize) -> Option<Type> {
        match self {
            Function::Int
            | Function::Bool
            | Function::String
            | Function::IsInt
            | Function::IsBool
            | Function::IsString => None,
            Function::Abs => Some(Type::Integer),
            Function::Left | Function::Right | Function::Substring | Function::SubstringLength
                if index > 0 =>
            {
                Some(Type::Integer)
            }
            _ => Some(Type::String),
        }
    }

    /// Applies the function to arguments already cast to their parameter types.
    /// Failures are recorded in `errors` and still produce a value, as the spec's
    /// definitions say (e.g. `LEFT(x, -1)` returns `x`).
    pub(crate) fn call(self, args: &[Value], errors: &mut Vec<EvalError>) -> Value {
        match self {
            Function::Length => {
                Value::Integer(i32::try_from(string(args, 0).chars().count()).unwrap_or(i32::MAX))
            }
            Function::Concat => Value::String(args.iter().map(|a| a.to_string()).collect()),
            Function::ConcatWs => {
                let parts: Vec<String> = args[1..].iter().map(|a| a.to_string()).collect();
                Value::String(parts.join(string(args, 0)))
            }
            Function::Lower => Value::String(string(args, 0).to_lowercase()),
            Function::Upper => Value::String(string(args, 0).to_uppercase()),
            Function::Trim => Value::String(string(args, 0).trim().to_owned()),
            Function::Left | Function::Right => {
                let (text, count) = (string(args, 0), integer(args, 1));
                let Ok(count) = usize::try_from(count) else {
                    errors.push(EvalError::new(
                        ErrorKind::FunctionEvaluation,
                        format!("{}: negative length {count}", self.name()),
                    ));
                    return Value::String(text.to_owned());
                };
                let chars: Vec<char> = text.chars().collect();
                let taken = if self == Function::Left {
                    &chars[..count.min(chars.len())]
                } else {
                    &chars[chars.len().saturating_sub(count)..]
                };
                Value::String(taken.iter().collect())
            }
            Function::Substring => {
                Value::String(substring(string(args, 0), integer(args, 1), None, errors))
            }
            Function::SubstringLength => Value::String(substring(
                string(args, 0),
                integer(args, 1),
                Some(integer(args, 2)),
                errors,
            )),
            Function::Abs => {
                let x = integer(args, 0);
                Value::Integer(x.checked_abs().unwrap_or_else(|| {
                    // The spec: ABS(-2147483648) is 2147483647 and a math error.
                    errors.push(EvalError::new(
                        ErrorKind::Math,
                        format!("ABS({x}) overflows a 32-bit integer"),
                    ));
                    i32::MAX
                }))
            }
            Function::Int => explicit_cast(&args[0], Type::Integer, errors),
            Function::Bool => explicit_cast(&args[0], Type::Bool, errors),
            Function::String => explicit_cast(&args[0], Type::String, errors),
            // The type tests answer whether a value is of the type or is a string
            // holding one, which is how attributes carry integers and booleans.
            Function::IsInt => Value::Bool(match &args[0] {
                Value::Integer(_) => true,
                Value::String(s) => parse_integer(s).is_some(),
                Value::Bool(_) => false,
            }),
            Function::IsBool => Value::Bool(match &args[0] {
                Value::Bool(_) => true,
                Value::String(s) => parse_bool(s).is_some(),
                Value::Integer(_) => false,
            }),
            Function::IsString => Value::Bool(matches!(args[0], Value::String(_))),
        }
    }
}

fn explicit_cast(value: &Value, target: Type, errors: &mut Vec<EvalError>) -> Value {
    value.convert(target).unwrap_or_else(|message| {
        errors.push(EvalError::new(ErrorKind::Cast, message));
        target.zero()
    })
}

/// `SUBSTRING` counts characters from 1; a negative `pos` counts from the end and 0
/// gives the empty string. Positions outside the string, or a negative length, give
/// the empty string and an error, as the spec defines.
fn substring(text: &str, pos: i32, len: Option<i32>, errors: &mut Vec<EvalError>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len() as i64;
    let pos = i64::from(pos);
    if pos > n || pos < -n {
        errors.push(EvalError::new(
            ErrorKind::FunctionEvaluation,
            format!("SUBSTRING: position {pos} is outside a string of length {n}"),
        ));
        return String::new();
    }
    if let Some(len @ ..=-1) = len {
        errors.push(EvalError::new(
            ErrorKind::FunctionEvaluation,
            format!("SUBSTRING: negative length {len}"),
        ));
        return String::new();
    }
    if pos == 0 {
        return String::new();
    }
    let start = if pos > 0 { pos - 1 } else { n + pos };
    let end = len.map_or(n, |len| (start + i64::from(len)).min(n));
    // Both bounds are within 0..=n here, so the conversions cannot fail.
    let (start, end) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(end).unwrap_or(0),
    );
    chars[start..end.max(start)].iter().collect()
}

/// Arguments arrive cast to their parameter types, so these never see another type;
/// the fallbacks only keep the code total.
fn string(args: &[Value], index: usize) -> &str {
    match args.get(index) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn integer(args: &[Value], index: usize) -> i32 {
    match args.get(index) {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Value]) -> (Value, Vec<ErrorKind>) {
        let function = Function::resolve(name, args.len()).unwrap();
        let mut errors = Vec::new();
        let value = function.call(args, &mut errors);
        (value, errors.iter().map(EvalError::kind).collect())
    }

    #[test]
    fn resolution_is_case_insensitive_and_by_arity() {
        assert_eq!(Function::resolve("substring", 2), Some(Function::Substring));
        assert_eq!(
            Function::resolve("SubString", 3),
            Some(Function::SubstringLength)
        );
        assert_eq!(Function::resolve("SUBSTRING", 4), None);
        assert_eq!(Function::resolve("CONCAT", 0), Some(Function::Concat));
        assert_eq!(Function::resolve("CONCAT_WS", 0), None);
        assert_eq!(Function::resolve("NOPE", 1), None);
    }

    #[test]
    fn substring_counts_characters_and_reports_bad_positions() {
        let s = |t: &str| Value::from(t);
        assert_eq!(
            call(
                "SUBSTRING",
                &[s("héllo"), Value::Integer(2), Value::Integer(3)]
            )
            .0,
            s("éll")
        );
        assert_eq!(
            call("SUBSTRING", &[s("abc"), Value::Integer(-3)]),
            (s("abc"), vec![])
        );
        assert_eq!(
            call("SUBSTRING", &[s("abc"), Value::Integer(3)]),
            (s("c"), vec![])
        );
        assert_eq!(
            call(
                "SUBSTRING",
                &[s("abc"), Value::Integer(1), Value::Integer(-1)]
            ),
            (s(""), vec![ErrorKind::FunctionEvaluation])
        );
        assert_eq!(
            call("SUBSTRING", &[s(""), Value::Integer(0)]),
            (s(""), vec![])
        );
    }

    #[test]
    fn left_and_right_keep_the_string_on_a_negative_count() {
        let s = |t: &str| Value::from(t);
        assert_eq!(call("RIGHT", &[s("héllo"), Value::Integer(4)]).0, s("éllo"));
        assert_eq!(
            call("LEFT", &[s("abc"), Value::Integer(-1)]),
            (s("abc"), vec![ErrorKind::FunctionEvaluation])
        );
    }

    #[test]
    fn type_tests() {
        assert_eq!(call("IS_INT", &[Value::from("-12")]).0, Value::Bool(true));
        assert_eq!(call("IS_INT", &[Value::from("1.5")]).0, Value::Bool(false));
        assert_eq!(call("IS_BOOL", &[Value::from("TRUE")]).0, Value::Bool(true));
        assert_eq!(call("IS_BOOL", &[Value::Integer(1)]).0, Value::Bool(false));
        assert_eq!(
            call("IS_STRING", &[Value::Integer(1)]).0,
            Value::Bool(false)
        );
    }
}
