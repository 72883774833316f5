//! paas-gateway
