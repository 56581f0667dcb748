//! There are exactly two delivery modes: `Delivery` is sealed.
use cmmp_model::{Delivery, DeliveryKind};

struct Broadcast;

impl Delivery for Broadcast {
    const KIND: DeliveryKind = DeliveryKind::Post;
}

fn main() {}
