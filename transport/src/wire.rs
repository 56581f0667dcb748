//! Whole requests: a typed kind in, the exact HTTP request bytes out, and back (protocol §8).
//!
//! [`build_request`] follows §8 step by step: body XML → payload (UTF-16LE, NUL,
//! attachments, CRLF) → zlib → `clientauth` signature over the bytes actually sent → `Msg`
//! header (UTF-16LE with BOM) → multipart → `CCM_POST`. [`decode_request`] is the inverse,
//! lenient the way an MP is; the emulator and `cmmp wire decode` use it.

use cmmp_model::kinds::Inbound;
use cmmp_model::msg::{HookName, HookPropertyName, Msg};
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{Endpoint, Layout, MessageExt, Signing};

use crate::body::{BomPolicy, decode_body, decode_header};
use crate::error::Error;
use crate::msg::{HostName, file_type, hook_property, hooks};
use crate::multipart::{self, MultipartLimits};
use crate::payload::{self, Attachment};
use crate::raw::{RawMessage, SecurityFlags};
use crate::sign::{HashAlgorithm, SigningKey, client_id_signature, hex_upper};
use crate::zlib::{self, InflateLimits};

/// The `User-Agent` the SDK and third-party implementations send (§2.2).
pub const USER_AGENT: &str = "ConfigMgr Messaging HTTP Sender";

/// The virtual directory a request goes to (§2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Vdir {
    /// `/ccm_system/request`: anonymous over HTTP, client certificate over HTTPS.
    #[default]
    Default,
    /// `/ccm_system_windowsauth/request`: IIS Windows authentication.
    WindowsAuth,
    /// `/ccm_system_altauth/request`: HTTPS without a client certificate (2403+).
    AltAuth,
}

impl Vdir {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Vdir::Default => "/ccm_system/request",
            Vdir::WindowsAuth => "/ccm_system_windowsauth/request",
            Vdir::AltAuth => "/ccm_system_altauth/request",
        }
    }
}

/// Per-sender settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The management point: `TargetHost` and the HTTP `Host`.
    pub mp: HostName,
    /// This machine's NetBIOS name: `SourceHost`, `AuthSenderMachine`.
    pub source_host: HostName,
    /// The virtual directory.
    pub vdir: Vdir,
    /// zlib-compress payloads (default on, as the SDK and real clients do).
    pub compress: bool,
    /// Ask for zlib-compressed replies (default on).
    pub reply_compression: bool,
    /// `Timeout` in milliseconds (SDK default 60000).
    pub timeout_ms: u32,
    /// `Priority` (SDK default 0).
    pub priority: i32,
    /// Hash for `clientauth` signatures (SHA-256; SHA-1 for old sites).
    pub hash: HashAlgorithm,
    /// Native (HTTPS) security mode: `ClientCapabilities` `SSL` instead of `NonSSL`.
    pub native_mode: bool,
    /// The MP encryption certificates (`MPCERT2` `Certificate2`) to encrypt payloads to, when
    /// encryption is asked for (mixed mode only, §3.6).
    pub mp_encryption: Option<Vec<openssl::x509::X509>>,
    /// Encrypt typed messages to `mp_encryption` (off by default, as in the SDK).
    pub encrypt: bool,
    /// The zlib level of compressed payloads: 6 (zlib's default, header `78 9C` as in real
    /// captures) by default; 1 deflates about three times faster into a somewhat larger
    /// stream with the header `78 01`. Whether an MP accepts levels other than 6 is
    /// **\[UNCONFIRMED\]** ([`crate::zlib::compress_at`]).
    pub compression_level: u8,
}

impl Settings {
    /// Settings with the SDK's defaults for `mp` and `source_host`.
    pub fn new(mp: HostName, source_host: HostName) -> Self {
        Self {
            mp,
            source_host,
            vdir: Vdir::Default,
            compress: true,
            reply_compression: true,
            timeout_ms: 60_000,
            priority: 0,
            hash: HashAlgorithm::Sha256,
            native_mode: false,
            mp_encryption: None,
            encrypt: false,
            compression_level: crate::zlib::DEFAULT_LEVEL,
        }
    }
}

/// Who signs: a key and the client ID the message is about.
///
/// A single client signs with its own key. An ISV proxy signs every client's messages with
/// the proxy key while `SourceID` is the client's SMSID (§3.3, the ISV proxy workflow).
pub struct Signer<'k> {
    key: &'k SigningKey,
    client_id: SmsId,
    /// `ClientIDSignature` depends only on key and ID: computed once per signer.
    client_id_signature: String,
    public_key: String,
    hash: HashAlgorithm,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

impl<'k> Signer<'k> {
    /// A signer for messages about `client_id`, signed with `key` using `hash`.
    ///
    /// # Errors
    ///
    /// A signing failure of the backend.
    pub fn new(key: &'k SigningKey, client_id: SmsId, hash: HashAlgorithm) -> Result<Self, Error> {
        let client_id_signature = client_id_signature(key, hash, &client_id)?;
        let public_key = hex_upper(key.public_key_blob());
        Ok(Self { key, client_id, client_id_signature, public_key, hash })
    }

    /// The client ID messages are sent for.
    pub fn client_id(&self) -> SmsId {
        self.client_id
    }

    /// The signing key.
    pub fn key(&self) -> &'k SigningKey {
        self.key
    }

    /// The hash algorithm.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The cached `ClientIDSignature`.
    pub fn client_id_signature(&self) -> &str {
        &self.client_id_signature
    }

    /// The upper-hex PUBLICKEYBLOB (`PublicKey` property).
    pub fn public_key_hex(&self) -> &str {
        &self.public_key
    }
}

/// The fresh parts of a message: a new ID and the current time (fixed in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// `Msg/ID`.
    pub id: BracedGuid,
    /// `Msg/SentTime`.
    pub sent_time: IsoTime,
}

impl Fresh {
    /// A random ID and the current time.
    ///
    /// # Errors
    ///
    /// When the system's random source fails.
    pub fn now() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        // A version-4, variant-1 UUID.
        bytes[6] = (bytes[6] & 0x0F) | 0x40;
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        Ok(Self { id: BracedGuid::from_bytes(bytes), sent_time: IsoTime::now() })
    }
}

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `CCM_POST`.
    pub method: &'static str,
    /// The vdir path.
    pub path: &'static str,
    /// Header fields in the order they are sent.
    pub headers: Vec<(&'static str, String)>,
    /// The multipart body.
    pub body: Vec<u8>,
}

impl Request {
    /// The request as HTTP/1.1 bytes: request line, headers, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let head: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(
            self.method.len() + self.path.len() + 13 + head + 2 + self.body.len(),
        );
        for piece in [self.method, " ", self.path, " HTTP/1.1\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
        for (k, v) in &self.headers {
            push_field(&mut out, k, v);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Appends the header field `name: value` and its CRLF to a request.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    for piece in [name, ": ", value, "\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// Builds the request for `kind` (protocol §8 steps 1–5).
///
/// # Errors
///
/// [`Error::SignerRequired`] for a kind that must be signed when `signer` is `None`;
/// encoding, payload and signing errors.
pub fn build_request<K: Endpoint>(
    settings: &Settings,
    kind: &K,
    attachments: Vec<Attachment>,
    signer: Option<&Signer<'_>>,
    fresh: Fresh,
) -> Result<Request, Error> {
    let sign = match (K::SIGNING, signer) {
        (Signing::Required, None) => return Err(Error::SignerRequired { kind: K::NAME }),
        (Signing::None, _) | (Signing::Optional, None) => false,
        (Signing::Required | Signing::Optional, Some(_)) => true,
    };
    let payload = with_document_buffer(|document| {
        kind.body().write_into(document)?;
        Ok(payload::build_for_layout(K::LAYOUT, document, &attachments)?)
    })?;
    let mut raw = RawMessage::new();
    raw.set_target_endpoint(K::ENDPOINT)?;
    if let Some(ft) = K::FILE_TYPE {
        raw.set_property("FileType", ft);
    }
    let mut flags =
        if settings.native_mode { SecurityFlags::NATIVE_MODE } else { SecurityFlags::MIXED_MODE };
    if sign {
        flags = flags | SecurityFlags::SIGN_MESSAGE;
    }
    if settings.compress {
        flags = flags | SecurityFlags::COMPRESS_MESSAGE;
    }
    if settings.encrypt {
        flags = flags | SecurityFlags::ENCRYPT_MESSAGE;
    }
    raw.set_security_flags(flags);
    raw.request_with_payload(
        payload,
        <K::Delivery as cmmp_model::Delivery>::KIND,
        settings,
        signer,
        fresh,
    )
}

/// Runs `f` with this thread's empty document buffer, which keeps its allocation for the
/// next request up to [`KEPT_DOCUMENT_BUFFER`] bytes.
///
/// A 2 MB report written into a new `String` grew it by doubling from 1 KiB, copying about
/// 2 MB on the way (BENCHMARKS.md); the document is only needed until the payload is built.
fn with_document_buffer<T>(f: impl FnOnce(&mut String) -> Result<T, Error>) -> Result<T, Error> {
    // Taken out of the cell while in use, so a nested call gets a buffer of its own.
    // (A thread whose locals are being torn down gets a fresh buffer, as the deflate and
    // inflate streams do.)
    let mut document = DOCUMENT.try_with(|cell| cell.take()).unwrap_or_default();
    document.clear();
    let result = f(&mut document);
    if document.capacity() <= KEPT_DOCUMENT_BUFFER {
        document.clear();
        let _ = DOCUMENT.try_with(|cell| cell.replace(document));
    }
    result
}

/// The largest document buffer a thread keeps between requests (8 MiB).
const KEPT_DOCUMENT_BUFFER: usize = 8 * 1024 * 1024;

thread_local! {
    /// This thread's document buffer between requests (see [`with_document_buffer`]).
    static DOCUMENT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A request as a management point reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The `Msg` header.
    pub header: Msg,
    /// The payload part as sent (compressed if it was; decrypted if it was encrypted): what
    /// `PayloadSignature` covers.
    pub payload_as_sent: Vec<u8>,
    /// The body XML.
    pub body_xml: String,
    /// The attachments, by name, in payload order.
    pub attachments: Vec<(String, Vec<u8>)>,
    /// The message, decoded by kind; for header-and-attachment kinds the full report from
    /// the attachment.
    pub message: Inbound,
    /// The XML text `message` was decoded from, as received: the full report's attachment
    /// when it came as one, else `None` (then it is `body_xml`).
    pub report_xml: Option<String>,
}

/// Limits for decoding requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeLimits {
    /// Multipart limits.
    pub multipart: MultipartLimits,
    /// Inflate limits.
    pub inflate: InflateLimits,
}

/// A raw HTTP/1.1 request, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// The method, e.g. `CCM_POST`.
    pub method: String,
    /// The request target, e.g. `/ccm_system/request`.
    pub path: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: &'a [u8],
}

impl HttpRequest<'_> {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Splits raw HTTP/1.1 request bytes into request line parts, headers and body.
///
/// # Errors
///
/// [`Error::Http`] when there is no complete header block.
pub fn parse_http_request(bytes: &[u8]) -> Result<HttpRequest<'_>, Error> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(Error::HttpSyntax("no end of headers"))?;
    let head = std::str::from_utf8(&bytes[..end])
        .map_err(|_| Error::HttpSyntax("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(Error::HttpSyntax("no request line"))?;
    let mut parts = request_line.split(' ');
    let method = parts.next().ok_or(Error::HttpSyntax("no method"))?.to_owned();
    let path = parts.next().ok_or(Error::HttpSyntax("no path"))?.to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) =
            line.split_once(':').ok_or(Error::HttpSyntax("a header line without a colon"))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(HttpRequest { method, path, headers, body: &bytes[end + 4..] })
}

/// Decodes a request body given its `Content-Type`, the way an MP reads it: lenient framing
/// (any boundary, BOM optional in the header part, uncompressed payloads), strict UTF-16.
///
/// # Errors
///
/// Framing, inflate, UTF-16, range and decode errors, each typed.
pub fn decode_request(
    content_type: Option<&str>,
    body: &[u8],
    limits: DecodeLimits,
) -> Result<DecodedRequest, Error> {
    decode_request_with_key(content_type, body, limits, None)
}

/// The `Msg` header of a request, when its multipart framing and header part read, whatever
/// the payload holds: what an MP can still log about a request [`decode_request`] refused (its
/// endpoint, `Msg/ID` and the `SourceID` it names, none of them verified).
#[must_use]
pub fn peek_header(content_type: Option<&str>, body: &[u8], limits: DecodeLimits) -> Option<Msg> {
    let boundary =
        content_type.and_then(multipart::boundary_from_content_type).unwrap_or(multipart::BOUNDARY);
    let parts = multipart::parse(body, boundary, limits.multipart).ok()?;
    let header_text = decode_header(parts.first()?.body, BomPolicy::Optional).ok()?;
    Msg::from_xml(&header_text).ok()
}

/// As [`decode_request`], decrypting a payload encrypted to the MP (`Hook2 encrypt`, §3.6)
/// with the MP's encryption key and certificate.
///
/// # Errors
///
/// As [`decode_request`]; [`Error::Cms`] when the envelope cannot be decrypted;
/// [`Error::HttpSyntax`] for an encrypted payload and no key.
pub fn decode_request_with_key(
    content_type: Option<&str>,
    body: &[u8],
    limits: DecodeLimits,
    mp_key: Option<(&SigningKey, &openssl::x509::X509)>,
) -> Result<DecodedRequest, Error> {
    let boundary =
        content_type.and_then(multipart::boundary_from_content_type).unwrap_or(multipart::BOUNDARY);
    let parts = multipart::parse(body, boundary, limits.multipart)?;
    if parts.len() < 2 {
        return Err(Error::Parts { expected: 2, found: parts.len() });
    }
    let header_text = decode_header(parts[0].body, BomPolicy::Optional)?;
    let header = Msg::from_xml(&header_text)?;
    let mut payload_as_sent = parts[1].body.to_vec();
    if hooks(&header, &HookName::Encrypt).next().is_some() {
        let (key, cert) = mp_key
            .ok_or(Error::HttpSyntax("the payload is encrypted to the MP; its key is needed"))?;
        payload_as_sent =
            crate::cms::decrypt_enveloped(&payload_as_sent, key.pkey(), cert)?.expose().to_vec();
    }
    let compressed = hooks(&header, &HookName::ZlibCompress).next().is_some();
    let payload = if compressed {
        zlib::inflate(&payload_as_sent, limits.inflate)?
    } else {
        payload_as_sent.clone()
    };
    let body_range =
        header.body.as_ref().map_or((0, payload.len().saturating_sub(2) as u64), |b| {
            (u64::from(b.offset), u64::from(b.length))
        });
    let ranges: Vec<(String, u64, u64)> = header
        .attachment
        .iter()
        .map(|a| (a.name.clone(), u64::from(a.offset), u64::from(a.length)))
        .collect();
    let payload::Split { body: body_bytes, attachments } =
        payload::split(&payload, body_range, &ranges)?;
    let body_xml = decode_body(body_bytes)?;
    let ft = file_type(&header);
    let endpoint = &header.target_endpoint;
    // Header-and-attachment kinds: the full report travels as a BOM-prefixed attachment. The
    // candidates, in payload order, decoded as they are needed.
    let mut reports = attachments.iter().filter(|(_, b)| b.starts_with(&[0xFF, 0xFE])).map(
        |(_, bytes)| -> Option<(Inbound, String)> {
            let text = decode_header(bytes, BomPolicy::Required).ok()?;
            Some((Inbound::decode(endpoint, ft, &text).ok()?, text))
        },
    );
    let first = reports.next().flatten();
    // When the body is exactly the header-only form of the first full report (what every
    // sender of this layout writes), decoding the body would read the same header again under
    // the same endpoint, `FileType` and root, then an empty `<ReportBody/>`, which every kind
    // of this layout accepts (the wire tests decode each one's header-only body): it would
    // give the same kind, and the search below would pick this very report. So the body is
    // not decoded a second time.
    let header_of_first = first.as_ref().is_some_and(|(full, text)| {
        matches!(full.layout(), Layout::HeaderAndAttachment { .. })
            && payload::is_header_only_of(&body_xml, text)
    });
    let (message, report_xml) = match first {
        Some((full, text)) if header_of_first => (full, Some(text)),
        first => {
            let body = Inbound::decode(endpoint, ft, &body_xml)?;
            match first
                .into_iter()
                .chain(reports.flatten())
                .find(|(full, _)| full.kind_name() == body.kind_name())
            {
                Some((full, text)) => (full, Some(text)),
                None => (body, None),
            }
        }
    };
    Ok(DecodedRequest {
        header,
        payload_as_sent,
        body_xml,
        attachments: attachments.into_iter().map(|(n, b)| (n, b.to_vec())).collect(),
        message,
        report_xml,
    })
}

/// The `clientauth` hook's `PayloadSignature` and `ClientIDSignature` of a decoded request,
/// if it is signed.
pub fn client_auth_signatures(header: &Msg) -> Option<(&str, &str)> {
    let hook = hooks(header, &HookName::Clientauth).next()?;
    Some((
        hook_property(hook, &HookPropertyName::PayloadSignature)?,
        hook_property(hook, &HookPropertyName::ClientIdSignature)?,
    ))
}
