//! The shared parts of paas' eventing benchmarks (bench/eventing and bench/flows):
//! load generation, the measuring sink, figures, and a `paas up` to drive.

pub mod harness;
pub mod load;
pub mod sink;
pub mod stats;
