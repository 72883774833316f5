//! CloudEvents 1.0: the event, its validation, and the HTTP binding.
//!
//! Pure code, no I/O. The ingress hands a request's headers and body to
//! [`from_http`], which picks the content mode (binary, structured or batch) and
//! returns validated events; delivery sends [`to_http_binary`]'s headers and body;
//! replies and storage use the JSON event format ([`CloudEvent::to_json`],
//! [`CloudEvent::from_json`]). Every [`EventError`] message names the attribute and
//! the rule, because it is returned to the sender as a 400 body.

mod error;
mod event;
mod http_batch;
mod http_binary;
mod http_parse;
mod http_structured;
mod json;
pub mod kafka_binding;
pub mod kafka_record;
mod media_type;
mod percent;
mod uri;
mod validate;

pub use error::EventError;
pub use event::{CloudEvent, Data, ExtensionValue, HISTORY, SPEC_VERSION};
pub use http_binary::to_http_binary;
pub use http_parse::from_http;
pub use media_type::{BATCH_JSON, STRUCTURED_JSON};
