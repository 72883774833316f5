//! The paas event-display sample: every request it receives is kept as an event (its
//! `ce-` headers and body, binary mode as paas delivers); `GET /events` lists them as
//! JSON, oldest first. Like Knative's event_display, but it remembers.
//!
//! With `APPEND=WORD` it is also a step of a flow, like Knative's appender sample: it
//! answers each event with the same event, its data extended by ` WORD` (inside the
//! string when the data is a JSON string), which a Sequence passes on.
//!
//! With `FILTER=TEXT` it is a Parallel branch's filter: it answers an event whose data
//! contains TEXT with the event unchanged (it goes on to the branch's subscriber) and
//! any other with an empty 202 (it goes no further in that branch).

use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;

/// One received event: its attributes (from `ce-` headers) and its body.
#[derive(Debug, Clone)]
struct Received {
    attributes: Vec<(String, String)>,
    data: String,
}

type Store = Arc<Mutex<Vec<Received>>>;

/// What this instance does besides keeping what it receives.
#[derive(Debug, Clone)]
enum Role {
    /// Answer 202: the end of a path.
    Display,
    /// Reply with the event, its data extended by this word.
    Append(Arc<str>),
    /// Reply with the event unchanged when its data contains this text.
    Filter(Arc<str>),
}

impl Role {
    fn from_env() -> Self {
        let set = |name| env::var(name).ok().filter(|v| !v.is_empty());
        match (set("APPEND"), set("FILTER")) {
            (Some(word), _) => Role::Append(word.into()),
            (None, Some(text)) => Role::Filter(text.into()),
            (None, None) => Role::Display,
        }
    }

    /// The data to reply with, if this event gets a reply.
    fn reply(&self, data: &str) -> Option<String> {
        match self {
            Role::Display => None,
            Role::Append(word) => Some(appended(data, word)),
            Role::Filter(text) => data.contains(&**text).then(|| data.to_owned()),
        }
    }
}

fn main() -> ExitCode {
    let port = env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("event-display: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("event-display: listening on port {port}");
    let _ = io::stdout().flush();
    let store: Store = Arc::default();
    let role = Role::from_env();
    for stream in listener.incoming().flatten() {
        let (store, role) = (store.clone(), role.clone());
        thread::spawn(move || {
            let _ = serve(stream, &store, &role);
        });
    }
    ExitCode::SUCCESS
}

fn serve(stream: TcpStream, store: &Store, role: &Role) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("/").to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_owned();
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                }
                if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.push((name, value));
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let mut reply_headers = String::new();
        let (status, response) = if method == "GET" && path == "/events" {
            let events = store.lock().unwrap_or_else(|e| e.into_inner()).clone();
            ("200 OK", to_json(&events))
        } else if method == "POST" {
            let attributes = headers
                .iter()
                .filter_map(|(n, v)| n.strip_prefix("ce-").map(|a| (a.to_owned(), v.clone())))
                .collect();
            let event = Received {
                attributes,
                data: String::from_utf8_lossy(&body).into_owned(),
            };
            println!("event-display: {}", to_json(std::slice::from_ref(&event)));
            let _ = io::stdout().flush();
            let reply = role.reply(&event.data);
            if let Some(data) = reply {
                for (name, value) in &event.attributes {
                    reply_headers.push_str(&format!("ce-{name}: {value}\r\n"));
                }
                store.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                ("200 OK", data)
            } else {
                store.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                ("202 Accepted", String::new())
            }
        } else {
            (
                "200 OK",
                "event-display: POST events here, GET /events lists them\n".to_owned(),
            )
        };
        let head = format!(
            "HTTP/1.1 {status}\r\n{reply_headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            response.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(response.as_bytes())?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// `data` with ` word` appended: inside the string when it is a JSON string.
fn appended(data: &str, word: &str) -> String {
    let trimmed = data.trim_end();
    match trimmed.strip_prefix('"').and_then(|d| d.strip_suffix('"')) {
        Some(inner) => quote(&format!("{} {word}", unescape(inner))),
        None => format!("{trimmed} {word}"),
    }
}

/// The text of a JSON string literal's inside (the escapes `quote` writes).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn to_json(events: &[Received]) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                .collect();
            format!(
                "{{\"attributes\":{{{}}},\"data\":{}}}",
                attrs.join(","),
                quote(&e.data)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_list_as_json() {
        let e = Received {
            attributes: vec![("id".into(), "1".into()), ("type".into(), "t\"x".into())],
            data: "{\"a\":1}\n".into(),
        };
        assert_eq!(
            to_json(&[e]),
            r#"[{"attributes":{"id":"1","type":"t\"x"},"data":"{\"a\":1}\n"}]"#
        );
        assert_eq!(to_json(&[]), "[]");
    }

    #[test]
    fn a_filter_passes_what_contains_its_text() {
        let even = Role::Filter("even".into());
        assert_eq!(
            even.reply(r#"{"n":4,"parity":"even"}"#).as_deref(),
            Some(r#"{"n":4,"parity":"even"}"#)
        );
        assert_eq!(even.reply(r#"{"n":3,"parity":"odd"}"#), None);
        assert_eq!(Role::Display.reply("x"), None);
    }

    #[test]
    fn appending_keeps_json_strings_strings() {
        assert_eq!(appended("\"7\"", "one"), "\"7 one\"");
        assert_eq!(appended("\"7 one\"\n", "two"), "\"7 one two\"");
        assert_eq!(appended("\"say \\\"hi\\\"\"", "x"), "\"say \\\"hi\\\" x\"");
        assert_eq!(appended("plain", "word"), "plain word");
    }
}
