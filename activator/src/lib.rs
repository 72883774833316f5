//! paas-activator
