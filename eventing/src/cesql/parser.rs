//! Recursive descent over the tokens, with the precedence of the CloudEvents
//! reference grammar (`CESQLParser.g4`, which Knative's engine is generated from), so
//! that a filter means here what it means there. From tightest to loosest:
//!
//! 1. unary `NOT` and `-`
//! 2. `[NOT] LIKE 'pattern'`, `[NOT] IN (set)`
//! 3. `*`, `/`, `%`
//! 4. `+`, `-`
//! 5. `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`
//! 6. `AND`, `OR`, `XOR`: one level, right-associative
//!
//! So `NOT a = b` is `(NOT a) = b` and `a AND b OR c` is `a AND (b OR c)`; write the
//! parentheses when in doubt.

use super::ast::{BinaryOp, Expr};
use super::error::ParseError;
use super::functions::Function;
use super::lexer::{tokenize, Spanned, Token};
use super::like::Pattern;
use super::value::Value;

/// Parsing, evaluating and dropping an expression recurse, and an expression from a
/// trigger's spec must not be able to exhaust a thread's stack: parentheses, unary
/// operators and calls may nest `MAX_NESTING` deep, and the tree may be `MAX_HEIGHT`
/// high (long `OR` chains are common in filters, deep parentheses are not).
const MAX_NESTING: usize = 64;
const MAX_HEIGHT: usize = 512;

pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        next: 0,
        end: text.chars().count() + 1,
        nesting: 0,
    };
    let node = parser.logic()?;
    if let Some(extra) = parser.peek() {
        return Err(unexpected(extra));
    }
    Ok(node.expr)
}

/// An expression with the height of its tree. The height is checked as the tree
/// grows, so that no tree higher than `MAX_HEIGHT` is ever built.
struct Node {
    expr: Expr,
    height: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, height: 1 }
    }
}

/// The height of a node over children of these heights, if it is allowed.
fn height_over(
    position: usize,
    children: impl IntoIterator<Item = usize>,
) -> Result<usize, ParseError> {
    let height = 1 + children.into_iter().max().unwrap_or(0);
    if height > MAX_HEIGHT {
        Err(too_deep(position))
    } else {
        Ok(height)
    }
}

fn too_deep(position: usize) -> ParseError {
    ParseError::new("expression is nested too deeply", position)
}

fn binary(op: BinaryOp, position: usize, left: Node, right: Node) -> Result<Node, ParseError> {
    Ok(Node {
        height: height_over(position, [left.height, right.height])?,
        expr: Expr::Binary {
            op,
            left: Box::new(left.expr),
            right: Box::new(right.expr),
        },
    })
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    /// Position reported for a premature end: just past the last character.
    end: usize,
    /// Current recursion depth, bounded by `MAX_NESTING`: the parser descends before it
    /// builds, so `((((...` must be stopped here rather than by the tree's height.
    nesting: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.next)
    }

    fn peek_token(&self) -> Option<&Token> {
        self.peek().map(|s| &s.token)
    }

    fn peek_second(&self) -> Option<&Token> {
        self.tokens.get(self.next + 1).map(|s| &s.token)
    }

    fn advance(&mut self) -> Result<Spanned, ParseError> {
        match self.tokens.get(self.next) {
            Some(spanned) => {
                self.next += 1;
                Ok(spanned.clone())
            }
            None => Err(self.end_of_input()),
        }
    }

    fn expect(&mut self, token: &Token) -> Result<(), ParseError> {
        let found = self.advance()?;
        if found.token == *token {
            Ok(())
        } else {
            Err(unexpected(&found))
        }
    }

    fn end_of_input(&self) -> ParseError {
        ParseError::new("unexpected end of expression", self.end)
    }

    /// Runs `parse` one recursion level deeper, refusing to go past `MAX_NESTING`.
    fn nested<T>(
        &mut self,
        position: usize,
        parse: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.nesting >= MAX_NESTING {
            return Err(too_deep(position));
        }
        self.nesting += 1;
        let result = parse(self);
        self.nesting -= 1;
        result
    }

    /// Consumes the next token if `classify` makes it a binary operator.
    fn operator(&mut self, classify: fn(&Token) -> Option<BinaryOp>) -> Option<(BinaryOp, usize)> {
        let spanned = self.peek()?;
        let found = (classify(&spanned.token)?, spanned.position);
        self.next += 1;
        Some(found)
    }

    /// `AND`, `OR` and `XOR` share one level and group to the right, as in the
    /// reference grammar; the chain is folded from its end rather than by recursion.
    fn logic(&mut self) -> Result<Node, ParseError> {
        let mut operands = vec![self.comparison()?];
        let mut operators = Vec::new();
        while let Some(op) = self.operator(logic_operator) {
            operators.push(op);
            operands.push(self.comparison()?);
        }
        let mut node = operands.pop().ok_or_else(|| self.end_of_input())?;
        while let (Some((op, position)), Some(left)) = (operators.pop(), operands.pop()) {
            node = binary(op, position, left, node)?;
        }
        Ok(node)
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let mut node = self.additive()?;
        while let Some((op, position)) = self.operator(comparison_operator) {
            node = binary(op, position, node, self.additive()?)?;
        }
        Ok(node)
    }

    fn additive(&mut self) -> Result<Node, ParseError> {
        let mut node = self.multiplicative()?;
        while let Some((op, position)) = self.operator(additive_operator) {
            node = binary(op, position, node, self.multiplicative()?)?;
        }
        Ok(node)
    }

    fn multiplicative(&mut self) -> Result<Node, ParseError> {
        let mut node = self.postfix()?;
        while let Some((op, position)) = self.operator(multiplicative_operator) {
            node = binary(op, position, node, self.postfix()?)?;
        }
        Ok(node)
    }

    /// `x [NOT] LIKE 'pattern'` and `x [NOT] IN (a, b, ...)`.
    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut node = self.unary()?;
        loop {
            let negated = match (self.peek_token(), self.peek_second()) {
                (Some(Token::Like | Token::In), _) => false,
                (Some(Token::Not), Some(Token::Like | Token::In)) => {
                    self.next += 1;
                    true
                }
                _ => return Ok(node),
            };
            let operator = self.advance()?;
            node = if operator.token == Token::Like {
                let pattern = self.advance()?;
                let Token::String(pattern) = pattern.token else {
                    return Err(ParseError::new(
                        format!(
                            "LIKE needs a string literal pattern, not '{}'",
                            pattern.token
                        ),
                        pattern.position,
                    ));
                };
                Node {
                    height: height_over(operator.position, [node.height])?,
                    expr: Expr::Like {
                        value: Box::new(node.expr),
                        pattern: Pattern::compile(&pattern),
                        negated,
                    },
                }
            } else {
                let set = self.parenthesized_list(operator.position, false)?;
                let heights = set.iter().map(|n| n.height).chain([node.height]);
                Node {
                    height: height_over(operator.position, heights)?,
                    expr: Expr::In {
                        value: Box::new(node.expr),
                        set: set.into_iter().map(|n| n.expr).collect(),
                        negated,
                    },
                }
            };
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        let Some(first) = self.peek().cloned() else {
            return Err(self.end_of_input());
        };
        let negative = match first.token {
            Token::Not => {
                self.next += 1;
                let operand = self.nested(first.position, Self::unary)?;
                return Ok(Node {
                    height: height_over(first.position, [operand.height])?,
                    expr: Expr::Not(Box::new(operand.expr)),
                });
            }
            Token::Minus => true,
            Token::Plus => false,
            _ => return self.primary(),
        };
        self.next += 1;
        // A sign directly before digits is part of the literal, which is how
        // -2147483648 can be written although 2147483648 is out of range.
        if let Some(&Token::Integer(digits)) = self.peek_token() {
            self.next += 1;
            return integer_literal(digits, negative, first.position);
        }
        if !negative {
            return Err(unexpected(&first));
        }
        let operand = self.nested(first.position, Self::unary)?;
        Ok(Node {
            height: height_over(first.position, [operand.height])?,
            expr: Expr::Negate(Box::new(operand.expr)),
        })
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let first = self.advance()?;
        let expr = match first.token {
            Token::Integer(digits) => return integer_literal(digits, false, first.position),
            Token::String(s) => Expr::Literal(Value::String(s)),
            Token::True => Expr::Literal(Value::Bool(true)),
            Token::False => Expr::Literal(Value::Bool(false)),
            Token::Exists => {
                let name = self.advance()?;
                match &name.token {
                    Token::Word(word) => Expr::Exists(attribute_name(word, name.position)?),
                    _ => return Err(unexpected(&name)),
                }
            }
            Token::LParen => {
                let inner = self.nested(first.position, Self::logic)?;
                self.expect(&Token::RParen)?;
                return Ok(inner);
            }
            Token::Word(word) if self.peek_token() == Some(&Token::LParen) => {
                let name = function_name(&word, first.position)?;
                let args = self.parenthesized_list(first.position, true)?;
                let height = height_over(first.position, args.iter().map(|n| n.height))?;
                let function = Function::resolve(&name, args.len());
                return Ok(Node {
                    height,
                    expr: Expr::Call {
                        name,
                        function,
                        args: args.into_iter().map(|n| n.expr).collect(),
                    },
                });
            }
            Token::Word(word) => Expr::Attribute(attribute_name(&word, first.position)?),
            _ => return Err(unexpected(&first)),
        };
        Ok(Node::leaf(expr))
    }

    /// `( expr, expr, ... )`: function arguments may be empty, an `IN` set may not.
    fn parenthesized_list(
        &mut self,
        position: usize,
        may_be_empty: bool,
    ) -> Result<Vec<Node>, ParseError> {
        self.expect(&Token::LParen)?;
        let mut items = Vec::new();
        if may_be_empty && self.peek_token() == Some(&Token::RParen) {
            self.next += 1;
            return Ok(items);
        }
        loop {
            items.push(self.nested(position, Self::logic)?);
            let separator = self.advance()?;
            match separator.token {
                Token::Comma => continue,
                Token::RParen => return Ok(items),
                _ => return Err(unexpected(&separator)),
            }
        }
    }
}

fn logic_operator(token: &Token) -> Option<BinaryOp> {
    match token {
        Token::And => Some(BinaryOp::And),
        Token::Or => Some(BinaryOp::Or),
        Token::Xor => Some(BinaryOp::Xor),
        _ => None,
    }
}

fn comparison_operator(token: &Token) -> Option<BinaryOp> {
    match token {
        Token::Equal => Some(BinaryOp::Equal),
        Token::NotEqual | Token::LessGreater => Some(BinaryOp::NotEqual),
        Token::Less => Some(BinaryOp::Less),
        Token::LessEqual => Some(BinaryOp::LessEqual),
        Token::Greater => Some(BinaryOp::Greater),
        Token::GreaterEqual => Some(BinaryOp::GreaterEqual),
        _ => None,
    }
}

fn additive_operator(token: &Token) -> Option<BinaryOp> {
    match token {
        Token::Plus => Some(BinaryOp::Add),
        Token::Minus => Some(BinaryOp::Subtract),
        _ => None,
    }
}

fn multiplicative_operator(token: &Token) -> Option<BinaryOp> {
    match token {
        Token::Star => Some(BinaryOp::Multiply),
        Token::Slash => Some(BinaryOp::Divide),
        Token::Percent => Some(BinaryOp::Modulo),
        _ => None,
    }
}

/// The spec requires integer literals to be valid 32-bit values, so an out-of-range
/// literal is a parse error rather than a silently wrapped number.
fn integer_literal(
    digits: Option<i64>,
    negative: bool,
    position: usize,
) -> Result<Node, ParseError> {
    let value = digits
        .map(|n| if negative { -n } else { n })
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| ParseError::new("integer literal outside the 32-bit range", position))?;
    Ok(Node::leaf(Expr::Literal(Value::Integer(value))))
}

/// Attribute names are lower-case letters and digits in CloudEvents; they are
/// matched case-insensitively (the TCK writes `EXISTS SOURCE`), so they are stored
/// lower-cased, which loses nothing.
fn attribute_name(word: &str, position: usize) -> Result<String, ParseError> {
    if word.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(word.to_ascii_lowercase())
    } else {
        Err(ParseError::new(
            format!("'{word}' is not a valid attribute name"),
            position,
        ))
    }
}

/// Function names are letters and underscores, starting with a letter.
fn function_name(word: &str, position: usize) -> Result<String, ParseError> {
    let mut chars = word.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphabetic() || c == '_');
    if valid {
        Ok(word.to_ascii_uppercase())
    } else {
        Err(ParseError::new(
            format!("'{word}' is not a valid function name"),
            position,
        ))
    }
}

fn unexpected(found: &Spanned) -> ParseError {
    let what = match &found.token {
        Token::String(s) => format!("unexpected string '{s}'"),
        token => format!("unexpected token '{token}'"),
    };
    ParseError::new(what, found.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i32) -> Expr {
        Expr::Literal(Value::Integer(n))
    }

    fn attr(name: &str) -> Expr {
        Expr::Attribute(name.into())
    }

    fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn multiplication_binds_tighter_than_addition_and_both_group_left() {
        assert_eq!(
            parse("1 - 2 + 3 * 4").unwrap(),
            bin(
                BinaryOp::Add,
                bin(BinaryOp::Subtract, int(1), int(2)),
                bin(BinaryOp::Multiply, int(3), int(4)),
            )
        );
    }

    #[test]
    fn logic_operators_share_a_level_and_group_right() {
        assert_eq!(
            parse("a AND b OR c").unwrap(),
            bin(
                BinaryOp::And,
                attr("a"),
                bin(BinaryOp::Or, attr("b"), attr("c"))
            )
        );
        assert_eq!(
            parse("a = 1 xor b").unwrap(),
            bin(
                BinaryOp::Xor,
                bin(BinaryOp::Equal, attr("a"), int(1)),
                attr("b")
            )
        );
    }

    #[test]
    fn unary_operators_bind_tightest() {
        assert_eq!(
            parse("NOT a = b").unwrap(),
            bin(BinaryOp::Equal, Expr::Not(Box::new(attr("a"))), attr("b"))
        );
        assert_eq!(
            parse("- a * 2").unwrap(),
            bin(
                BinaryOp::Multiply,
                Expr::Negate(Box::new(attr("a"))),
                int(2)
            )
        );
        assert_eq!(
            parse("NOT EXISTS subject").unwrap(),
            Expr::Not(Box::new(Expr::Exists("subject".into())))
        );
    }

    #[test]
    fn like_and_in_bind_tighter_than_arithmetic() {
        let Expr::Binary { op, right, .. } = parse("1 + x NOT LIKE 'a%'").unwrap() else {
            panic!("not a binary expression");
        };
        assert_eq!(op, BinaryOp::Add);
        assert!(matches!(*right, Expr::Like { negated: true, .. }));
        let Expr::In { set, negated, .. } = parse("x IN (1, y, 'z')").unwrap() else {
            panic!("not an IN expression");
        };
        assert!(!negated);
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn signs_fold_into_integer_literals() {
        assert_eq!(parse("-2147483648").unwrap(), int(i32::MIN));
        assert_eq!(parse("+5").unwrap(), int(5));
        assert_eq!(parse("--10").unwrap(), Expr::Negate(Box::new(int(-10))));
        assert_eq!(
            parse("4 -1").unwrap(),
            bin(BinaryOp::Subtract, int(4), int(1))
        );
        assert_eq!(
            error("2147483648"),
            "integer literal outside the 32-bit range at position 1"
        );
        assert_eq!(
            error("1 + -2147483649"),
            "integer literal outside the 32-bit range at position 5"
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(parse("SOURCE").unwrap(), attr("source"));
        let Expr::Call { name, function, .. } = parse("concat_Ws(',', a)").unwrap() else {
            panic!("not a call");
        };
        assert_eq!(name, "CONCAT_WS");
        assert_eq!(function, Some(Function::ConcatWs));
    }

    #[test]
    fn unknown_functions_parse_and_fail_later() {
        let Expr::Call { function, args, .. } = parse("NOPE(1, 2)").unwrap() else {
            panic!("not a call");
        };
        assert_eq!(function, None);
        assert_eq!(args.len(), 2);
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(error("(a = 1))"), "unexpected token ')' at position 8");
        assert_eq!(error("ABC("), "unexpected end of expression at position 5");
        assert_eq!(error("LEFT('a' 1)"), "unexpected token '1' at position 10");
        assert_eq!(
            error("x LIKE 123"),
            "LIKE needs a string literal pattern, not '123' at position 8"
        );
        assert_eq!(error("x IN ()"), "unexpected token ')' at position 7");
        assert_eq!(error("a NOT b"), "unexpected token 'NOT' at position 3");
        assert_eq!(
            error("my_ext = 1"),
            "'my_ext' is not a valid attribute name at position 1"
        );
        assert_eq!(
            error("f1(2)"),
            "'f1' is not a valid function name at position 1"
        );
        assert_eq!(error("'a' 'b'"), "unexpected string 'b' at position 5");
        assert_eq!(error(""), "unexpected end of expression at position 1");
        assert_eq!(error("EXISTS 1"), "unexpected token '1' at position 8");
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(error(&deep).contains("nested too deeply"));
        let long_chain = vec!["a"; 10_000].join(" AND ");
        assert!(error(&long_chain).contains("nested too deeply"));
        let fine = format!("{}1{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(parse(&fine).unwrap(), int(1));
        let long_but_fine = vec!["type = 'x'"; 300].join(" OR ");
        assert!(parse(&long_but_fine).is_ok());
    }
}
