//! Splits an expression into tokens, each with its 1-based character position.

use std::fmt;

use super::error::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Equal,
    NotEqual,
    LessGreater,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    And,
    Or,
    Xor,
    Not,
    Like,
    In,
    Exists,
    True,
    False,
    /// Digits only; the sign is an operator, so that `-2147483648` can be folded by
    /// the parser although `2147483648` alone is out of range. `None` when the digits
    /// do not even fit an `i64`, which the parser reports as out of range.
    Integer(Option<i64>),
    String(String),
    /// Letters, digits and underscores that are not a keyword: an attribute name or
    /// a function name, which the parser tells apart by a following `(`.
    Word(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned {
    pub(crate) token: Token,
    pub(crate) position: usize,
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let position = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (token, len) = match c {
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            ',' => (Token::Comma, 1),
            '+' => (Token::Plus, 1),
            '-' => (Token::Minus, 1),
            '*' => (Token::Star, 1),
            '/' => (Token::Slash, 1),
            '%' => (Token::Percent, 1),
            '=' => (Token::Equal, 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Token::NotEqual, 2),
            '<' => match chars.get(i + 1) {
                Some('>') => (Token::LessGreater, 2),
                Some('=') => (Token::LessEqual, 2),
                _ => (Token::Less, 1),
            },
            '>' => match chars.get(i + 1) {
                Some('=') => (Token::GreaterEqual, 2),
                _ => (Token::Greater, 1),
            },
            '\'' | '"' => string_literal(&chars, i)?,
            c if is_word_char(c) => word(&chars, i),
            other => {
                return Err(ParseError::new(
                    format!("unexpected character '{other}'"),
                    position,
                ))
            }
        };
        tokens.push(Spanned { token, position });
        i += len;
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A quoted string starting at `start`. Only the quote that delimits the string can
/// be escaped, with a backslash or by doubling it (as SQL does); any other backslash
/// is kept, so that `LIKE` sees the `\%` and `\_` escapes of its pattern. A backslash
/// still pairs with the next character, so `'a\\'` ends at its last quote.
fn string_literal(chars: &[char], start: usize) -> Result<(Token, usize), ParseError> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(ParseError::new("unterminated string literal", start + 1)),
            Some('\\') => match chars.get(i + 1) {
                Some(&next) if next == quote => {
                    value.push(quote);
                    i += 2;
                }
                Some(&next) => {
                    value.push('\\');
                    value.push(next);
                    i += 2;
                }
                None => i += 1,
            },
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    value.push(quote);
                    i += 2;
                } else {
                    return Ok((Token::String(value), i + 1 - start));
                }
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// A run of letters, digits and underscores: an integer when it is all digits (so
/// `1abc` is one identifier, as in the reference grammar), else a keyword or a word.
fn word(chars: &[char], start: usize) -> (Token, usize) {
    let len = chars[start..]
        .iter()
        .take_while(|c| is_word_char(**c))
        .count();
    let text: String = chars[start..start + len].iter().collect();
    let token = if text.bytes().all(|b| b.is_ascii_digit()) {
        Token::Integer(text.parse().ok())
    } else {
        keyword(&text).unwrap_or(Token::Word(text))
    };
    (token, len)
}

/// Keywords are case-insensitive.
fn keyword(text: &str) -> Option<Token> {
    let token = match text.to_ascii_uppercase().as_str() {
        "AND" => Token::And,
        "OR" => Token::Or,
        "XOR" => Token::Xor,
        "NOT" => Token::Not,
        "LIKE" => Token::Like,
        "IN" => Token::In,
        "EXISTS" => Token::Exists,
        "TRUE" => Token::True,
        "FALSE" => Token::False,
        _ => return None,
    };
    Some(token)
}

/// How a token is shown in a parse error.
impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = match self {
            Token::LParen => "(",
            Token::RParen => ")",
            Token::Comma => ",",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::Percent => "%",
            Token::Equal => "=",
            Token::NotEqual => "!=",
            Token::LessGreater => "<>",
            Token::Less => "<",
            Token::LessEqual => "<=",
            Token::Greater => ">",
            Token::GreaterEqual => ">=",
            Token::And => "AND",
            Token::Or => "OR",
            Token::Xor => "XOR",
            Token::Not => "NOT",
            Token::Like => "LIKE",
            Token::In => "IN",
            Token::Exists => "EXISTS",
            Token::True => "TRUE",
            Token::False => "FALSE",
            Token::Integer(Some(n)) => return write!(f, "{n}"),
            Token::Integer(None) => "integer",
            Token::String(s) => return write!(f, "'{s}'"),
            Token::Word(w) => w,
        };
        f.write_str(symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|s| s.token)
            .collect()
    }

    #[test]
    fn keywords_are_case_insensitive_and_words_keep_their_case() {
        assert_eq!(
            tokens("tRuE and NoT Exists SOURCE"),
            vec![
                Token::True,
                Token::And,
                Token::Not,
                Token::Exists,
                Token::Word("SOURCE".into())
            ]
        );
    }

    #[test]
    fn operators_take_the_longest_match() {
        assert_eq!(
            tokens("<> <= < >= > != ="),
            vec![
                Token::LessGreater,
                Token::LessEqual,
                Token::Less,
                Token::GreaterEqual,
                Token::Greater,
                Token::NotEqual,
                Token::Equal
            ]
        );
    }

    #[test]
    fn only_the_delimiting_quote_is_unescaped() {
        assert_eq!(
            tokens(r#"'a"b\'c'"#),
            vec![Token::String(r#"a"b'c"#.into())]
        );
        assert_eq!(
            tokens(r#""a'b\"c""#),
            vec![Token::String(r#"a'b"c"#.into())]
        );
        assert_eq!(tokens(r"'a\%b\c'"), vec![Token::String(r"a\%b\c".into())]);
        assert_eq!(tokens("'it''s'"), vec![Token::String("it's".into())]);
        assert_eq!(tokens(r"'a\\'"), vec![Token::String(r"a\\".into())]);
    }

    #[test]
    fn digits_then_letters_make_one_word() {
        assert_eq!(tokens("1abc"), vec![Token::Word("1abc".into())]);
        assert_eq!(
            tokens("12 99999999999999999999"),
            vec![Token::Integer(Some(12)), Token::Integer(None)]
        );
    }

    #[test]
    fn positions_count_characters_from_one() {
        let spanned = tokenize("'é' = x").unwrap();
        let positions: Vec<usize> = spanned.iter().map(|s| s.position).collect();
        assert_eq!(positions, vec![1, 5, 7]);
    }

    #[test]
    fn errors_name_the_character_and_its_position() {
        let err = tokenize("a ! b").unwrap_err();
        assert_eq!(err.to_string(), "unexpected character '!' at position 3");
        let err = tokenize("x = 'abc").unwrap_err();
        assert_eq!(err.to_string(), "unterminated string literal at position 5");
    }
}
