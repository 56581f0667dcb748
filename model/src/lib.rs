//! cmmp-model: typed ConfigMgr management point (MP) messages.
//!
//! The message types are generated at build time from the XSDs in `schemas/` by
//! `cmmp-codegen` (one module per schema) and the endpoint manifest `schemas/endpoints.toml`
//! (the [`kinds`] module). A **body** type such as [`ddr::Report`] implements [`Message`];
//! a **kind** such as [`kinds::DdrReport`] wraps a body and implements [`Endpoint`] plus
//! exactly one of [`Invoke`] and [`Post`], so a sender bound on `K: Invoke` does not accept
//! a Post kind, and the other way round.
//!
//! Decoding is lenient the way a management point is (unknown attributes and elements are
//! skipped, children come in any order, enumerations are open); writing is canonical (the
//! schema's element order, no whitespace, no XML declaration, everything escaped).
//!
//! ```
//! use cmmp_model::kinds::ClientRegistration;
//! use cmmp_model::registration::ClientRegistrationResponse;
//! use cmmp_model::{Endpoint, Invoke, MessageExt};
//!
//! let text = r#"<ClientRegistrationResponse ResponseType="Registration" TimeStamp="2025-01-31T10:00:00Z" Status="0" SMSID="GUID:4A3E3A52-5F9B-4B43-9D8A-0C7F1B2E3D4C" ApprovalStatus="1"/>"#;
//! let reply = ClientRegistrationResponse::from_xml(text)?;
//! assert_eq!(reply.status, 0);
//! assert_eq!(reply.to_xml()?, text);
//!
//! // The kind carries the endpoint; its reply type is fixed at compile time.
//! fn reply_root<K: Invoke>() -> &'static str {
//!     <K::Reply as cmmp_model::Message>::ROOT
//! }
//! assert_eq!(ClientRegistration::ENDPOINT, "MP_ClientRegistration");
//! assert_eq!(reply_root::<ClientRegistration>(), "ClientRegistrationResponse");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate self as cmmp_model;

pub mod error;
pub mod message;
pub mod value;
pub mod xml;

pub use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
pub use crate::message::{
    Delivery, DeliveryKind, Endpoint, Invoke, Layout, Message, MessageExt, NoReply, Post, Reply,
    Signing,
};

/// The `Msg` header of every request and reply (`schemas/msg.xsd`, protocol §2.4).
pub mod msg {
    include!(concat!(env!("OUT_DIR"), "/msg.rs"));
}
/// Client registration request and response (`schemas/registration.xsd`, protocol §4.1).
pub mod registration {
    include!(concat!(env!("OUT_DIR"), "/registration.rs"));
}
/// Policy assignment request and reply, policy bodies (`schemas/policy.xsd`, protocol §4.2).
pub mod policy {
    include!(concat!(env!("OUT_DIR"), "/policy.rs"));
}
/// Location Manager requests and replies (`schemas/location.xsd`, protocol §4.3).
pub mod location {
    include!(concat!(env!("OUT_DIR"), "/location.rs"));
}
/// Report parts shared by every report kind (`schemas/report-common.xsd`, protocol §4.4).
pub mod report_common {
    include!(concat!(env!("OUT_DIR"), "/report_common.rs"));
}
/// Discovery data record report (`schemas/ddr.xsd`, protocol §4.5).
pub mod ddr {
    include!(concat!(env!("OUT_DIR"), "/ddr.rs"));
}
/// Hardware inventory report (`schemas/hinv.xsd`, protocol §4.6).
pub mod hinv {
    include!(concat!(env!("OUT_DIR"), "/hinv.rs"));
}
/// Software inventory report (`schemas/sinv.xsd`, protocol §4.7).
pub mod sinv {
    include!(concat!(env!("OUT_DIR"), "/sinv.rs"));
}
/// Software inventory file collection report (`schemas/filecoll.xsd`, protocol §4.8).
pub mod filecoll {
    include!(concat!(env!("OUT_DIR"), "/filecoll.rs"));
}
/// State message report (`schemas/state.xsd`, protocol §4.9).
pub mod state {
    include!(concat!(env!("OUT_DIR"), "/state.rs"));
}
/// Software metering report (`schemas/metering.xsd`, protocol §4.10).
pub mod metering {
    include!(concat!(env!("OUT_DIR"), "/metering.rs"));
}
/// IDMIF collection report (`schemas/idmif.xsd`, protocol §4.11).
pub mod idmif {
    include!(concat!(env!("OUT_DIR"), "/idmif.rs"));
}
/// Status message (`schemas/status.xsd`, protocol §4.12).
pub mod status {
    include!(concat!(env!("OUT_DIR"), "/status.rs"));
}
/// `.sms_aut` GET replies: MP lists, certificates, key information (`schemas/mpinfo.xsd`,
/// protocol §2.10).
pub mod mpinfo {
    include!(concat!(env!("OUT_DIR"), "/mpinfo.rs"));
}
/// Message kinds from `schemas/endpoints.toml`, inbound dispatch and the document index.
pub mod kinds {
    include!(concat!(env!("OUT_DIR"), "/kinds.rs"));
}
