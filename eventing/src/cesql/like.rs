//! `LIKE` patterns: `%` matches any run of characters, `_` exactly one.

/// A pattern compiled once at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Char(char),
    AnyOne,
    AnyRun,
}

impl Pattern {
    /// The spec lets `\` escape `%` and `_` only. A backslash before anything else is
    /// an ordinary character (the TCK has `'ab\c' LIKE 'ab\c'` match), which keeps
    /// patterns with Windows paths or regex-looking text working as written.
    pub(crate) fn compile(text: &str) -> Self {
        let mut parts = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let part = match c {
                '\\' => match chars.peek() {
                    Some(&escaped @ ('%' | '_')) => {
                        chars.next();
                        Part::Char(escaped)
                    }
                    _ => Part::Char('\\'),
                },
                '%' => Part::AnyRun,
                '_' => Part::AnyOne,
                c => Part::Char(c),
            };
            parts.push(part);
        }
        Pattern { parts }
    }

    /// Whole-value match. A `%` remembers where it was met; on a mismatch the match
    /// resumes after it with one more character swallowed. Only the latest `%` needs
    /// revisiting, so this takes at most value × pattern steps and no recursion.
    pub(crate) fn matches(&self, value: &str) -> bool {
        let value: Vec<char> = value.chars().collect();
        let (mut v, mut p) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while v < value.len() {
            match self.parts.get(p) {
                Some(Part::AnyRun) => {
                    backtrack = Some((p + 1, v));
                    p += 1;
                    continue;
                }
                Some(Part::AnyOne) => {
                    v += 1;
                    p += 1;
                    continue;
                }
                Some(Part::Char(c)) if *c == value[v] => {
                    v += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((after_run, swallowed)) => {
                    p = after_run;
                    v = swallowed + 1;
                    backtrack = Some((after_run, swallowed + 1));
                }
                None => return false,
            }
        }
        self.parts[p..].iter().all(|part| *part == Part::AnyRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(value: &str, pattern: &str) -> bool {
        Pattern::compile(pattern).matches(value)
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(like("abc", "%"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("azbzc", "a_b_c"));
        assert!(!like("abc", "a_b_c"));
        assert!(like("aXbXXc", "a%b_%c"));
        assert!(!like("ab", "a%b_%c"));
        assert!(like("mississippi", "%iss%ppi"));
    }

    #[test]
    fn escapes() {
        assert!(like("a%b", r"a\%b"));
        assert!(!like("axb", r"a\%b"));
        assert!(like("a_b", r"a\_b"));
        assert!(!like("axb", r"a\_b"));
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"C:\dir", r"C:\d%"));
        // `\%` is always the escape, so a backslash cannot precede a wildcard.
        assert!(like("C:%", r"C:\%"));
        assert!(!like(r"C:\dir", r"C:\%"));
        assert!(like(r"end\", r"end\"));
    }

    #[test]
    fn characters_not_bytes() {
        assert!(like("é", "_"));
        assert!(like("zürich", "z_rich"));
    }

    #[test]
    fn many_runs_stay_fast() {
        let value = "a".repeat(2000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&value, &pattern));
    }
}
