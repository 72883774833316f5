//! Event log backends. [`embedded::EmbeddedLog`] keeps each topic in append-only segment
//! files in the data directory, fsynced before an append returns.

mod codec;
pub mod embedded;
mod reader;

pub use embedded::{EmbeddedLog, Retention};
