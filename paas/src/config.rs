//! Where things are: the data directory and the API server, shared by `paas up` and the CLI.

use std::path::PathBuf;

/// `$XDG_DATA_HOME/paas`, else `~/.local/share/paas`, else `./.paas`.
pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("paas");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/paas");
    }
    PathBuf::from(".paas")
}

/// The file in which `paas up` records its API address for the CLI.
pub(crate) const SERVER_FILE: &str = "server";

/// The file in which `paas up` records where it listens, as JSON
/// (`{"http": "127.0.0.1:8080", "api": "127.0.0.1:7070"}`): with `--http 0 --api 0` the
/// system chooses free ports, and this is how a script finds them.
pub(crate) const ADDRESSES_FILE: &str = "addresses.json";

/// Accept `PORT` or `HOST:PORT`; a bare port listens on 127.0.0.1.
pub(crate) fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not PORT or HOST:PORT (e.g. 127.0.0.1:8080)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(
            parse_listen("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert!(parse_listen("localhost").is_err());
    }
}
