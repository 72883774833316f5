//! `kafka.eventing.knative.dev/delivery.order` (Knative's Kafka broker key) on a
//! Trigger, Sequence, Parallel or KafkaSource: one event at a time per partition, or
//! many in flight.

use super::{AnnotationError, Annotations};
use crate::eventing::DELIVERY_ORDER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOrder {
    Ordered,
    Unordered,
}

/// The delivery order (`None` without the annotation), or why it cannot be used.
pub fn parse(annotations: &Annotations) -> Result<Option<DeliveryOrder>, AnnotationError> {
    match annotations.get(DELIVERY_ORDER).map(String::as_str) {
        None => Ok(None),
        Some("ordered") => Ok(Some(DeliveryOrder::Ordered)),
        Some("unordered") => Ok(Some(DeliveryOrder::Unordered)),
        Some(other) => Err(AnnotationError::new(
            DELIVERY_ORDER,
            format!("{other:?} is not a delivery order: use ordered or unordered"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_unordered_or_a_problem() {
        let mut a = Annotations::new();
        assert_eq!(parse(&a), Ok(None));
        a.insert(DELIVERY_ORDER.into(), "ordered".into());
        assert_eq!(parse(&a), Ok(Some(DeliveryOrder::Ordered)));
        a.insert(DELIVERY_ORDER.into(), "unordered".into());
        assert_eq!(parse(&a), Ok(Some(DeliveryOrder::Unordered)));
        // As the dispatchers compare it: exactly, case and spaces included.
        a.insert(DELIVERY_ORDER.into(), "Ordered".into());
        let e = parse(&a).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation kafka.eventing.knative.dev/delivery.order: \"Ordered\" is not a delivery order: use ordered or unordered"
        );
    }
}
