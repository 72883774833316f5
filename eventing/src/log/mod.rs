//! Event log backends. [`embedded::EmbeddedLog`] keeps each topic in append-only segment
//! files in the data directory, fsynced before an append returns; [`kafka::KafkaLog`]
//! keeps them in a Kafka cluster.

mod codec;
pub mod embedded;
pub mod kafka;
mod reader;

pub use embedded::{EmbeddedLog, Retention};
pub use kafka::{KafkaConfig, KafkaLog};
