//! What event sources need besides a dispatcher: the clocks of PingSources and the
//! connections to the Kafka clusters KafkaSources read. Their reconcilers (in the
//! controller) decide when each runs; these keep them running.

pub mod kafka_clusters;
pub mod ping_clock;
