//! The raw message API, mirroring the SCCM 2007 COM surface (`ISmsMessage` … `ISmsMessage4`,
//! protocol §5.2–§5.4): create a message; set its endpoint, body, attachments, properties,
//! client ID, timeout and security flags; then invoke or post it.
//!
//! The typed API ([`crate::wire::build_request`]) is built on this one, so both produce the
//! same bytes for the same message.
//!
//! | COM method | here |
//! |---|---|
//! | `SetTargetEndpoint` / `GetTargetEndpoint` | [`RawMessage::set_target_endpoint`] / [`RawMessage::target_endpoint`] |
//! | `SetTimeout` | [`RawMessage::set_timeout`] (milliseconds on the wire, §2.4) |
//! | `SetProperty` / `GetPropertyByName` | [`RawMessage::set_property`] / [`RawMessage::property`] |
//! | `SetBodyFromString` / `FromBuffer` / `FromFile` | [`RawMessage::set_body_from_string`] / [`RawMessage::set_body_from_buffer`] / [`RawMessage::set_body_from_file`] |
//! | `GetBodyLength` / `GetBodyToBuffer` / `GetBodyToString` | [`RawMessage::body_length`] / [`RawMessage::body_bytes`] / [`RawMessage::body_to_string`] |
//! | `SetAttachmentFromBuffer` / `FromFile` | [`RawMessage::set_attachment_from_buffer`] / [`RawMessage::set_attachment_from_file`] (a name is unique; setting it again replaces) |
//! | `GetAttachmentCount` / `ByIndex` / `ByName` | [`RawMessage::attachment_count`] / [`RawMessage::attachment_by_index`] / [`RawMessage::attachment_by_name`] |
//! | `SetClientID` (`ISmsMessage2`) | [`RawMessage::set_client_id`] |
//! | `SetReplyCompression` (`ISmsMessage3`) | [`RawMessage::set_reply_compression`] |
//! | `SetSecurityFlags` (`ISmsMessage4`) | [`RawMessage::set_security_flags`] with [`SecurityFlags`] |
//! | `SetPort`, `SetProxy`, `VerifyServerSignature` | [`RawMessage::set_port`], [`RawMessage::set_proxy`], [`RawMessage::set_verify_server_signature`] (read by the HTTP client) |

use std::path::Path;
use std::time::Duration;

use cmmp_model::DeliveryKind;
use cmmp_model::value::SmsId;
use openssl::x509::X509;

use crate::body::{decode_body, encode_body};
use crate::error::Error;
use crate::msg::{ClientAuth, HeaderFields, MessageSpec, request_header};
use crate::payload::{self, Attachment};
use crate::sign::payload_signature;
use crate::wire::{Fresh, Request, Settings, Signer};
use crate::{multipart, zlib};

/// `MPAPI_SECURITY_FLAGS` (protocol §5.4): a bit set with the COM values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SecurityFlags(pub u32);

impl SecurityFlags {
    /// `MPAPI_SECURITY_FLAG_MIXED_MODE` (0): HTTP, self-signed certificates.
    pub const MIXED_MODE: Self = Self(0);
    /// `MPAPI_SECURITY_FLAG_NATIVE_MODE`: HTTPS with PKI certificates (`ClientCapabilities` SSL).
    pub const NATIVE_MODE: Self = Self(0x1);
    /// `MPAPI_SECURITY_FLAG_SIGN_MESSAGE`: add the `clientauth` hook.
    pub const SIGN_MESSAGE: Self = Self(0x2);
    /// `MPAPI_SECURITY_FLAG_ENCRYPT_MESSAGE`: CMS-encrypt the payload to the MP (mixed mode).
    pub const ENCRYPT_MESSAGE: Self = Self(0x4);
    /// `MPAPI_SECURITY_FLAG_ENABLE_CRL_CHECKING`: check the MP's TLS certificate revocation.
    /// Enforced by the HTTP client over HTTPS: the client's
    /// [`CrlCheck`](crate::client::CrlCheck), or the default one (CRLs fetched from the
    /// certificate's distribution points) when the client has none; meaningless over HTTP.
    pub const ENABLE_CRL_CHECKING: Self = Self(0x8);
    /// `MPAPI_SECURITY_FLAG_COMPRESS_MESSAGE`: zlib-compress the payload.
    pub const COMPRESS_MESSAGE: Self = Self(0x8000_0000);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SecurityFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A message built by hand (`ISmsMessage`).
#[derive(Debug, Clone, Default)]
pub struct RawMessage {
    endpoint: String,
    body: Vec<u8>,
    attachments: Vec<Attachment>,
    properties: Vec<(String, String)>,
    client_id: Option<SmsId>,
    timeout: Option<Duration>,
    flags: SecurityFlags,
    reply_compression: Option<bool>,
    port: Option<u16>,
    proxy: Option<String>,
    verify_server_signature: bool,
}

impl RawMessage {
    /// An empty message (`ISmsMessaging::CreateMessage`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `TargetEndpoint`.
    ///
    /// # Errors
    ///
    /// [`Error::HttpSyntax`] unless the name is 1–64 ASCII letters, digits and `_`.
    pub fn set_target_endpoint(&mut self, endpoint: &str) -> Result<(), Error> {
        let ok = !endpoint.is_empty()
            && endpoint.len() <= 64
            && endpoint.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(Error::HttpSyntax(
                "an endpoint name is 1 to 64 ASCII letters, digits and `_`",
            ));
        }
        self.endpoint = endpoint.to_owned();
        Ok(())
    }

    /// `TargetEndpoint`.
    pub fn target_endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sets the timeout (`Timeout`, written in milliseconds).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Sets a header property (`<Property Name= Value=/>`); the same name replaces.
    pub fn set_property(&mut self, name: &str, value: &str) {
        match self.properties.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value.to_owned(),
            None => self.properties.push((name.to_owned(), value.to_owned())),
        }
    }

    /// A header property by name.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Sets the body from text: stored as UTF-16LE with one NUL (`SetBodyFromString`).
    pub fn set_body_from_string(&mut self, xml: &str) {
        self.body.clear();
        encode_body(xml, &mut self.body);
    }

    /// Sets the body to raw bytes, sent as they are (`SetBodyFromBuffer`).
    pub fn set_body_from_buffer(&mut self, bytes: Vec<u8>) {
        self.body = bytes;
    }

    /// Sets the body to a file's raw bytes (`SetBodyFromFile`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    pub fn set_body_from_file(&mut self, path: &Path) -> Result<(), Error> {
        self.body = read(path)?;
        Ok(())
    }

    /// The body's length in bytes (`GetBodyLength`).
    pub fn body_length(&self) -> usize {
        self.body.len()
    }

    /// The body's bytes (`GetBodyToBuffer`).
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (`GetBodyToString`).
    ///
    /// # Errors
    ///
    /// [`Error::Body`] when the body is not UTF-16LE with one trailing NUL.
    pub fn body_to_string(&self) -> Result<String, Error> {
        Ok(decode_body(&self.body)?)
    }

    /// Adds an attachment; a second one with the same name replaces the first.
    pub fn set_attachment_from_buffer(&mut self, name: &str, bytes: Vec<u8>) {
        match self.attachments.iter_mut().find(|a| a.name == name) {
            Some(a) => a.bytes = bytes,
            None => self.attachments.push(Attachment::new(name, bytes)),
        }
    }

    /// Adds a file as an attachment (`SetAttachmentFromFile`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    pub fn set_attachment_from_file(&mut self, name: &str, path: &Path) -> Result<(), Error> {
        let bytes = read(path)?;
        self.set_attachment_from_buffer(name, bytes);
        Ok(())
    }

    /// The number of attachments.
    pub fn attachment_count(&self) -> usize {
        self.attachments.len()
    }

    /// An attachment by zero-based index.
    pub fn attachment_by_index(&self, index: usize) -> Option<&Attachment> {
        self.attachments.get(index)
    }

    /// An attachment by name.
    pub fn attachment_by_name(&self, name: &str) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.name == name)
    }

    /// Sets the client ID (`SourceID`, `ISmsMessage2::SetClientID`).
    pub fn set_client_id(&mut self, client_id: SmsId) {
        self.client_id = Some(client_id);
    }

    /// The client ID.
    pub fn client_id(&self) -> Option<SmsId> {
        self.client_id
    }

    /// Asks for a compressed (or uncompressed) reply; the settings decide when unset.
    pub fn set_reply_compression(&mut self, compressed: bool) {
        self.reply_compression = Some(compressed);
    }

    /// Sets the security flags (`ISmsMessage4::SetSecurityFlags`).
    pub fn set_security_flags(&mut self, flags: SecurityFlags) {
        self.flags = flags;
    }

    /// The security flags.
    pub fn security_flags(&self) -> SecurityFlags {
        self.flags
    }

    /// Sets the MP's port (default 80 in mixed mode, 443 in native mode).
    pub fn set_port(&mut self, port: u16) {
        self.port = Some(port);
    }

    /// The port set, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Sets an HTTP proxy, e.g. `http://proxy.corp.example:8080`.
    pub fn set_proxy(&mut self, proxy: &str) {
        self.proxy = Some(proxy.to_owned());
    }

    /// The proxy set, if any.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// Asks the client to verify the reply's `authenticate` signature (`VerifyServerSignature`).
    pub fn set_verify_server_signature(&mut self, verify: bool) {
        self.verify_server_signature = verify;
    }

    /// Whether the reply's signature must be verified.
    pub fn verify_server_signature(&self) -> bool {
        self.verify_server_signature
    }

    /// Builds the HTTP request (protocol §8): payload, compression when
    /// `COMPRESS_MESSAGE`, `clientauth` signature when `SIGN_MESSAGE`, encryption to
    /// `settings.mp_encryption` when `ENCRYPT_MESSAGE`, header, multipart, `CCM_POST`.
    ///
    /// # Errors
    ///
    /// [`Error::SignerRequired`] for `SIGN_MESSAGE` without a signer;
    /// [`Error::HttpSyntax`] for a message without an endpoint, or `ENCRYPT_MESSAGE` without an
    /// MP encryption certificate; payload, signing and encryption errors.
    pub fn to_request(
        &self,
        delivery: DeliveryKind,
        settings: &Settings,
        signer: Option<&Signer<'_>>,
        fresh: Fresh,
    ) -> Result<Request, Error> {
        let payload = payload::build_from_body_bytes(&self.body, &self.attachments)?;
        self.request_with_payload(payload, delivery, settings, signer, fresh)
    }

    /// [`RawMessage::to_request`] with the payload built by the caller instead of from this
    /// message's body and attachments (the typed API writes its payload in one buffer).
    pub(crate) fn request_with_payload(
        &self,
        payload: payload::Payload,
        delivery: DeliveryKind,
        settings: &Settings,
        signer: Option<&Signer<'_>>,
        fresh: Fresh,
    ) -> Result<Request, Error> {
        if self.endpoint.is_empty() {
            return Err(Error::HttpSyntax("the message has no target endpoint"));
        }
        let sign = self.flags.contains(SecurityFlags::SIGN_MESSAGE);
        let signer = match (sign, signer) {
            (true, None) => return Err(Error::SignerRequired { kind: "this" }),
            (true, s) => s,
            (false, _) => None,
        };
        let compress = self.flags.contains(SecurityFlags::COMPRESS_MESSAGE);
        let encrypt = self.flags.contains(SecurityFlags::ENCRYPT_MESSAGE);
        let mut sent = if compress {
            zlib::compress_at(&payload.bytes, settings.compression_level)
        } else {
            payload.bytes.clone()
        };
        let client_auth = match signer {
            Some(s) => Some(ClientAuth {
                sender: settings.source_host.clone(),
                public_key: s.public_key_hex().to_owned(),
                client_id_signature: s.client_id_signature().to_owned(),
                payload_signature: payload_signature(s.key(), s.hash(), &sent)?,
                ssl: self.flags.contains(SecurityFlags::NATIVE_MODE),
                hash_oid: s.hash().oid(),
            }),
            None => None,
        };
        if encrypt {
            // Compress → sign → encrypt (§3.6): the envelope wraps the signed bytes.
            let certs = settings.mp_encryption.as_deref().ok_or(Error::HttpSyntax(
                "ENCRYPT_MESSAGE needs the MP's encryption certificate (MPCERT2)",
            ))?;
            sent = crate::cms::encrypt_to(certs, &sent)?;
        }
        let fields = HeaderFields {
            id: fresh.id,
            source_id: self.client_id.or(signer.map(Signer::client_id)),
            source_host: &settings.source_host,
            target_host: &settings.mp,
            sent_time: fresh.sent_time,
            timeout_ms: self
                .timeout
                .map_or(settings.timeout_ms, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
            priority: settings.priority,
            compressed: compress,
            reply_compression: self.reply_compression.unwrap_or(settings.reply_compression),
            client_auth,
        };
        let spec = MessageSpec {
            endpoint: &self.endpoint,
            properties: &self.properties,
            delivery,
            encrypted: encrypt,
        };
        let header = request_header(&spec, &fields, &payload);
        let mut header_part = Vec::new();
        crate::body::encode_header(&cmmp_model::MessageExt::to_xml(&header)?, &mut header_part);
        let mut body = Vec::with_capacity(header_part.len() + sent.len() + 200);
        multipart::frame(&header_part, &sent, &mut body);
        let headers = vec![
            ("Host", settings.mp.to_string()),
            ("User-Agent", crate::wire::USER_AGENT.to_owned()),
            ("Content-Type", multipart::content_type()),
            ("Content-Length", body.len().to_string()),
            ("Connection", "close".to_owned()),
        ];
        Ok(Request { method: "CCM_POST", path: settings.vdir.path(), headers, body })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// The MP encryption certificates a message may be encrypted to (`MPCERT2` `Certificate2`,
/// one per MP behind a load balancer, §3.6).
pub type EncryptionCertificates = [X509];

#[cfg(test)]
mod tests {
    use cmmp_model::DeliveryKind;

    use super::{RawMessage, SecurityFlags};
    use crate::msg::HostName;
    use crate::wire::{DecodeLimits, Fresh, Settings, decode_request};

    #[test]
    fn the_com_surface_builds_a_message_an_mp_reads() {
        let mut m = RawMessage::new();
        m.set_target_endpoint("MP_LocationManager").unwrap();
        m.set_body_from_string("<SiteInformationRequest SchemaVersion=\"1.00\"><SiteCode Name=\"P01\"/></SiteInformationRequest>");
        m.set_property("Note", "a");
        m.set_property("Note", "b");
        m.set_attachment_from_buffer("x", vec![1, 2]);
        m.set_attachment_from_buffer("x", vec![3]);
        m.set_security_flags(SecurityFlags::MIXED_MODE | SecurityFlags::COMPRESS_MESSAGE);
        assert_eq!(m.property("Note"), Some("b"));
        assert_eq!(m.attachment_count(), 1);
        assert_eq!(m.attachment_by_name("x").unwrap().bytes, vec![3]);
        let settings =
            Settings::new(HostName::new("mp01").unwrap(), HostName::new("WS01").unwrap());
        let req =
            m.to_request(DeliveryKind::Invoke, &settings, None, Fresh::now().unwrap()).unwrap();
        let d = decode_request(
            Some(&crate::multipart::content_type()),
            &req.body,
            DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(d.header.target_endpoint, "MP_LocationManager");
        assert_eq!(d.attachments, vec![("x".to_owned(), vec![3])]);
        assert_eq!(d.message.kind_name(), "SiteInformation");
    }

    #[test]
    fn refuses_bad_endpoints_and_unsigned_sign_requests() {
        let mut m = RawMessage::new();
        assert!(m.set_target_endpoint("MP_X'; --").is_err());
        m.set_target_endpoint("MP_DdrEndpoint").unwrap();
        m.set_security_flags(SecurityFlags::SIGN_MESSAGE);
        let settings =
            Settings::new(HostName::new("mp01").unwrap(), HostName::new("WS01").unwrap());
        let e =
            m.to_request(DeliveryKind::Post, &settings, None, Fresh::now().unwrap()).unwrap_err();
        assert!(matches!(e, crate::Error::SignerRequired { .. }), "{e}");
    }
}
