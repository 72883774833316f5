//! paas-runtime
