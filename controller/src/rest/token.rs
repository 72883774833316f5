//! The API's bearer token: generated at first start into the data directory, readable
//! only by its owner, and read by the CLI from there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const TOKEN_FILE: &str = "token";
/// The shortest token `paas up` accepts from `PAAS_TOKEN`.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("{what} the API token at {path}: {source}")]
pub struct TokenError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Read the token in `data_dir`, creating it (mode 0600) if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TokenError {
                what: "reading",
                path,
                source,
            })
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| TokenError {
        what: "generating",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    save(data_dir, &token)
}

/// Use `token` (from `PAAS_TOKEN`) as the API token, recording it (mode 0600) where the
/// CLI looks for it. A short or blank one is refused: it would be guessed.
pub fn save(data_dir: &Path, token: &str) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    let token = token.trim();
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError {
            what: "using PAAS_TOKEN as",
            path,
            source: std::io::Error::other(format!(
                "it must be at least {MIN_TOKEN_LEN} printable characters without spaces; unset it to have paas generate one"
            )),
        });
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| TokenError {
            what: "creating",
            path: path.clone(),
            source,
        })?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| TokenError {
            what: "writing",
            path,
            source,
        })?;
    Ok(token.to_owned())
}

/// The token of an `Authorization` header value with the Bearer scheme. A scheme is
/// case-insensitive (RFC 9110, section 11.1): `bearer` and `BEARER` are Bearer too.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
}

/// Compare without leaking, through timing, how much of the token was right.
pub fn matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("paas-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(TOKEN_FILE));
        let first = load_or_create(&dir).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&dir).unwrap(), first);
        let mode = std::fs::metadata(dir.join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches(&first, &first.clone()));
        assert!(!matches(&first, "nope"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_given_token_is_recorded_for_the_cli_and_a_weak_one_refused() {
        let dir = std::env::temp_dir().join(format!("paas-token-given-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let given = "a-token-of-our-own-choosing";
        assert_eq!(save(&dir, given).unwrap(), given);
        assert_eq!(load_or_create(&dir).unwrap(), given);
        let err = save(&dir, "short").unwrap_err().to_string();
        assert!(err.contains("PAAS_TOKEN") && err.contains("16"), "{err}");
        assert!(save(&dir, "has a space in the middle").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR  abc ",
            " Bearer abc",
        ] {
            assert_eq!(bearer(value), Some("abc"), "{value:?}");
        }
        for value in [
            "Basic abc",
            "Bearerabc",
            "Bearer",
            "Bearer  ",
            "abc",
            "",
            "Bearer: abc",
        ] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }
}
