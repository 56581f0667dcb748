//! A kind whose delivery is `NoReply` cannot also be an Invoke kind.
use cmmp_model::registration::{ClientRegistrationRequest, ClientRegistrationResponse};
use cmmp_model::{Endpoint, Invoke, NoReply, Signing};

struct Confused(ClientRegistrationRequest);

impl Endpoint for Confused {
    type Body = ClientRegistrationRequest;
    const ENDPOINT: &'static str = "MP_ClientRegistration";
    const SIGNING: Signing = Signing::None;
    const NAME: &'static str = "Confused";
    type Delivery = NoReply;
    fn body(&self) -> &ClientRegistrationRequest {
        &self.0
    }
    fn from_body(body: ClientRegistrationRequest) -> Self {
        Self(body)
    }
}

impl Invoke for Confused {
    type Reply = ClientRegistrationResponse;
}

fn main() {}
