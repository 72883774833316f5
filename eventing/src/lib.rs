//! paas-eventing
