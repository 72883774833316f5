//! The error classes of CESQL, as the spec and its conformance cases name them.

use std::fmt;

/// The class of a CESQL error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not a CESQL expression; [`Expression::parse`](super::Expression::parse)
    /// reports it as a [`ParseError`], evaluation never does.
    Parse,
    /// Division or modulo by zero, or an integer result outside the 32-bit range.
    Math,
    /// A value could not be cast to the type an operator or function needs.
    Cast,
    /// No built-in function has this name and number of arguments.
    MissingFunction,
    /// A function rejected its arguments, e.g. a negative length.
    FunctionEvaluation,
    /// The expression refers to an attribute the event does not have.
    MissingAttribute,
    /// Anything else.
    Generic,
}

/// An error met while evaluating; evaluation goes on and still yields a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    kind: ErrorKind,
    message: String,
}

impl EvalError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EvalError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Why a text is not a CESQL expression, and where: `position` counts characters
/// from 1, so that it can be shown under the expression a user wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at position {position}")]
pub struct ParseError {
    problem: String,
    position: usize,
}

impl ParseError {
    pub(crate) fn new(problem: impl Into<String>, position: usize) -> Self {
        ParseError {
            problem: problem.into(),
            position,
        }
    }

    /// 1-based character position of the offending token.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Parse
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Parse => "parse error",
            ErrorKind::Math => "math error",
            ErrorKind::Cast => "cast error",
            ErrorKind::MissingFunction => "missing function",
            ErrorKind::FunctionEvaluation => "function evaluation error",
            ErrorKind::MissingAttribute => "missing attribute",
            ErrorKind::Generic => "error",
        })
    }
}
