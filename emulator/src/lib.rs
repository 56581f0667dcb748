//! cmmp-emulator: a local ConfigMgr management point (MP) on SQLite that applies a site's
//! real rules.
//!
//! A [`Site`] is a site file ([`SiteConfig`], TOML, with the defaults of a stock site) and a
//! site database ([`store`], one SQLite file per site). Its operations take what the
//! transport decoded (`cmmp_transport::wire::decode_request`) and answer the way a site does:
//! registration with SMSIDs, approval and the pending → confirmation loop, ISV proxies,
//! blocking, duplicate hardware IDs, inventory sequencing, state message and redelivery
//! deduplication, policy assignments and (secret) bodies, content and WSUS locations by
//! boundary, and fault injection as data. The HTTP server is built on top: it decodes,
//! consults [`Site::fault_for`], calls [`Site::handle`], and answers each [`Refusal`] with
//! what a real MP sends ([`Refusal::mp_answer`]).
//!
//! [`Emulator`] serves a site over HTTP (loopback by default), and over HTTPS with TLS client
//! certificates when asked ([`Emulator::serve_https`], [`tls`]): the MP's `CCM_POST` vdirs,
//! the `.sms_aut` and `.sms_pol` GETs, the fallback status point, and a JSON admin surface
//! under `/cmmp-admin/`.
//!
//! The rules and every decision taken where the sources are silent are documented in
//! [`behaviour`]; the MP behaviours of the field notes (M1–M20) sit behind
//! [`site::Switches`], each defaulting to a stock MP.
//!
//! ```
//! use chrono::Utc;
//! use cmmp_emulator::{Site, SiteConfig};
//!
//! let mut site = Site::in_memory(SiteConfig::default(), Utc::now())?;
//! assert!(site.clients()?.is_empty());
//! assert_eq!(site.fault_for("MP_PolicyManager")?, None);
//! assert!(!site.server_cookie()?.is_empty());
//! # Ok::<(), cmmp_emulator::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
pub mod behaviour;
mod error;
mod key_memo;
mod server;
pub mod site;
pub mod store;
pub mod tls;

pub use crate::behaviour::{
    ClientAuthProof, Envelope, Handled, LocationReply, MpAnswer, Outcome, PolicyBody,
    PolicyBodyRequest, Refusal, Resolution, Site,
};
pub use crate::error::{ConfigError, Error};
pub use crate::server::{
    Emulator, HTML_403_CLIENT_CERTIFICATE_PAGE, HTML_500_PAGE, HTML_ERROR_PAGE,
};
pub use crate::site::{FaultKind, FaultSpec, SiteConfig};
pub use crate::store::{ClientId, ClientRecord, ConflictId, FaultId, Store, Summary};
pub use crate::tls::HttpsConfig;
