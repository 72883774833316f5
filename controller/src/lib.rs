//! paas-controller
