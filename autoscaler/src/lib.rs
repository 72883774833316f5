//! paas-autoscaler
