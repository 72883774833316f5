//! CloudEvents SQL (CESQL) v1: expressions over an event's attributes, as Knative's
//! `cesql` trigger filter uses them.
