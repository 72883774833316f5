//! Kubernetes name rules, as Knative applies them.

/// A DNS-1035 label: lower-case alphanumerics and '-', starting with a letter,
/// ending with an alphanumeric, at most 63 characters. Service names must be one
/// because they become the first label of the service's host name.
pub fn dns1035_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "must be at most 63 characters (has {})",
            name.len()
        ));
    }
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Some("must start with a lower-case letter (a DNS-1035 label)".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits and '-' are allowed (a DNS-1035 label)"
        ));
    }
    if name.ends_with('-') {
        return Some("must end with a letter or digit (a DNS-1035 label)".into());
    }
    None
}

/// A DNS-1123 label, the rule for namespaces: like DNS-1035 but may start with a digit.
pub fn dns1123_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "must be at most 63 characters (has {})",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits and '-' are allowed (a DNS-1123 label)"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit (a DNS-1123 label)".into());
    }
    None
}

/// An environment variable name as Kubernetes accepts it (C identifier, plus '.' and '-').
pub fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Some("must not start with a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Some(format!(
            "contains {bad:?}: use letters, digits, '_', '-' or '.'"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_accepts_knative_style_names() {
        for ok in ["hello", "a", "hello-world-2", &"a".repeat(63)] {
            assert_eq!(dns1035_label_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn dns1035_rejects_with_the_rule_broken() {
        assert!(dns1035_label_problem("Hello")
            .unwrap()
            .contains("lower-case letter"));
        assert!(dns1035_label_problem("1abc").unwrap().contains("start"));
        assert!(dns1035_label_problem("ab_c").unwrap().contains("'_'"));
        assert!(dns1035_label_problem("abc-").unwrap().contains("end"));
        assert!(dns1035_label_problem(&"a".repeat(64))
            .unwrap()
            .contains("63"));
        assert!(dns1035_label_problem("").unwrap().contains("empty"));
    }

    #[test]
    fn dns1123_allows_leading_digit() {
        assert_eq!(dns1123_label_problem("1team"), None);
        assert!(dns1123_label_problem("-team").is_some());
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name_problem("TARGET"), None);
        assert_eq!(env_name_problem("my.var-1"), None);
        assert!(env_name_problem("1X").is_some());
        assert!(env_name_problem("A B").is_some());
    }
}
