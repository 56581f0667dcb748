//! Required fields are constructor parameters: a registration response without its
//! `Status` cannot be built.
use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
use cmmp_model::value::IsoTime;

fn main() {
    let _by_new = ClientRegistrationResponse::new(RegistrationKind::Registration, IsoTime::now());
    let _by_literal = ClientRegistrationResponse {
        response_type: RegistrationKind::Registration,
        time_stamp: IsoTime::now(),
        smsid: None,
        approval_status: None,
    };
}
