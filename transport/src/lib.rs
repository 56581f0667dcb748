//! cmmp-transport: the bytes a ConfigMgr management point (MP) accepts.
//!
//! Pure codecs over bytes, each tested alone and shared with the emulator (house style HS-51):
//!
//! - [`body`]: UTF-16LE bodies (no BOM, one trailing NUL) and header parts (with a BOM),
//!   decoded strictly (protocol §2.3, §2.5, §8).
//! - [`zlib`]: `zlib-compress` payloads and bounded inflate of replies (size and ratio caps).
//! - [`multipart`]: the `multipart/mixed` framing of requests and replies (§2.3, §2.7).
//! - [`sign`] and [`cert`]: `clientauth` signatures, registration signatures, certificates
//!   (§3), on OpenSSL.
//! - [`cms`]: decryption of secret policy bodies (CMS EnvelopedData, §3.8).
//! - [`payload`] and [`msg`]: the payload buffer with its byte ranges (§2.5) and the `Msg`
//!   header built from typed fields (§2.4).
//! - [`wire`]: a typed message kind in, the exact `CCM_POST` request bytes out, and back.
//! - [`raw`]: the raw message API of the 2007 COM surface (§5), which the typed API uses.
//! - [`ntlm`]: NTLMv2 messages for the `windowsauth` vdir (client and emulator sides).
//! - [`register`]: signed registration requests (single client, ISV proxy, proxy clients)
//!   and the pending → confirmation loop as a state machine (§4.1).
//!
//! Over them, the exchange with an MP:
//!
//! - [`reply`]: an HTTP status, headers and body in, a typed reply or a typed error out (no
//!   sockets: shared with the emulator); reply signature checks against a pinned MP
//!   certificate (§3.5).
//! - [`client`]: HTTP and HTTPS (rustls, mutual TLS, proxies, timeouts), Invoke and Post,
//!   the `.sms_aut` GETs and policy downloads; async on tokio with a blocking facade. The
//!   only module that names the HTTP and TLS crates (house style HS-4).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod cert;
pub mod client;
pub mod cms;
mod error;
pub mod msg;
pub mod multipart;
pub mod ntlm;
pub mod payload;
pub mod raw;
pub mod register;
pub mod reply;
pub mod sign;
pub mod wire;
pub mod zlib;

pub use crate::error::{EMPTY_REPLY_CAUSES, Error};
