//! CloudEvents 1.0: the event, its validation, and the HTTP binding.
