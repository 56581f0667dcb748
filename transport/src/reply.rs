//! Replies: an HTTP status, headers and body in, a typed reply or a typed error out (protocol
//! §2.7–§2.10, §3.5, §3.8, §4.2.3, §8 rules 6 and 7; field notes §2.2, M6–M11, M15, §5).
//!
//! Pure functions over bytes, with no sockets, shared by the HTTP client and the emulator
//! (house style HS-51). Every reply is hostile input (field notes §5 item 1, HS-54):
//!
//! - an HTTP status other than 200 is [`Error::Http`] with the `<title>` of an HTML error page;
//!   an empty 200 is [`Error::EmptyReply`]; an HTML page in a 200 is [`Error::HtmlPage`];
//! - a Sync reply has exactly two MIME parts ([`Error::Parts`]): the UTF-16LE `Msg` header
//!   and the body, inflated within [`ReplyLimits::inflate`] (size and ratio caps) and decoded
//!   as strict UTF-16LE with one trailing NUL ([`Error::Body`]);
//! - a Post reply is one part reading `NoReply` ([`Error::UnexpectedReply`] otherwise);
//! - XML is read by the model's reader: no DTD, no entity beyond the predefined ones, a depth
//!   and size limit, and errors that name the element path ([`Error::Decode`]);
//! - the `authenticate` hook of a reply is verified when an MP signing certificate is pinned
//!   ([`ReplyVerifier`], §3.5): signature, `AuthSenderMachine` and `MPSiteCode`; a mismatch is
//!   [`Error::BadReplySignature`].
//!
//! The encoders at the end ([`encode_sync_reply`], [`encode_no_reply`]) build replies the way
//! this module reads them, for the emulator and for tests.

use std::fmt;

use cmmp_model::Message;
use cmmp_model::MessageExt as _;
use cmmp_model::mpinfo::{MpCertificate, MpCertificates, Mpkeyinformation};
use cmmp_model::msg::{
    BodyRange, Hook, HookName, HookProperty, HookPropertyName, Hooks, HooksContent, Msg, RangeKind,
};
use cmmp_model::policy::{Policy, PolicyCompression, PolicyXml};
use cmmp_model::xml::{self, Reader};
use openssl::pkey::{PKey, Public};
use openssl::x509::{X509, X509Ref};

use crate::body::{self, BomPolicy};
use crate::cert::Identity;
use crate::cms::{self, EnvelopeAlgorithms};
use crate::error::Error;
use crate::msg::{HostName, hook_property, hooks};
use crate::multipart::{self, MultipartError, MultipartLimits};
use crate::payload::PayloadError;
use crate::sign::{self, HashAlgorithm, SecretBytes, SecretString, SigningKey};
use crate::zlib::{self, InflateError, InflateLimits};

/// An HTTP response as received: status, header fields and the whole body.
///
/// `Debug` shows the body's length only: a policy body fetched over HTTPS may be a plain
/// secret policy (§3.8; house style HS-64).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Header fields in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, after any chunked transfer coding is removed.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` header field.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

impl fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Bounds on what a reply may cost (field notes §5 items 1 and 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Largest HTTP body read, in bytes; the client stops reading past it
    /// ([`Error::ReplyTooLarge`]). Default 64 MiB.
    pub max_body: usize,
    /// Multipart limits (default: 16 parts, 64 MiB).
    pub multipart: MultipartLimits,
    /// Inflate limits for compressed bodies (default: 64 MiB at most 400:1).
    pub inflate: InflateLimits,
    /// Deepest XML nesting accepted (default [`xml::DEFAULT_MAX_DEPTH`], 64).
    pub max_xml_depth: usize,
    /// Largest XML text accepted, in bytes of UTF-8 (default [`xml::DEFAULT_MAX_SIZE`]).
    pub max_xml_size: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024 * 1024,
            multipart: MultipartLimits::default(),
            inflate: InflateLimits::default(),
            max_xml_depth: xml::DEFAULT_MAX_DEPTH,
            max_xml_size: xml::DEFAULT_MAX_SIZE,
        }
    }
}

/// The pinned MP signing certificate that reply signatures are checked against (§3.5; field
/// notes M15, §5 item 5).
///
/// Pin it from the site's published key information ([`ReplyVerifier::from_key_information`],
/// `MPKEYINFORMATIONEX`), from `MPCERT2` `Certificate1` or `MPCERT`, or from a certificate
/// provisioned out of band. Fetched over plain HTTP, those documents are trust on first use:
/// prefer a certificate provisioned out of band, or fetch them over verified HTTPS.
///
/// With a verifier, a reply that carries the `authenticate` hook must verify: the signature
/// over the reply's `Body` range of the raw (still compressed) second part, `AuthSenderMachine`
/// naming the host asked, and `MPSiteCode` equal to the expected site code when one is set.
/// A reply without the hook passes (the SDK skips verification then) unless
/// [`ReplyVerifier::require_signature`] is set.
#[derive(Clone)]
pub struct ReplyVerifier {
    /// The MP signing certificate's public key.
    key: PKey<Public>,
    /// The hash of the reply signatures.
    hash: HashAlgorithm,
    /// The expected `MPSiteCode`, upper-case.
    site_code: Option<String>,
    /// Whether a reply without the `authenticate` hook is an error.
    require_signature: bool,
}

impl ReplyVerifier {
    /// Pins `cert`, the MP signing certificate.
    ///
    /// The hash defaults to the certificate's own signature hash (SHA-1 or SHA-256), else
    /// SHA-256; which hash MPs use for reply signatures is **\[UNCONFIRMED\]** (§3.5), so
    /// [`ReplyVerifier::with_hash`] overrides it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the certificate has no usable RSA public key.
    pub fn from_certificate(cert: &X509Ref) -> Result<Self, Error> {
        let key = cert.public_key().map_err(|e| {
            Error::Config(format!("the MP signing certificate has no usable public key: {e}"))
        })?;
        if key.rsa().is_err() {
            return Err(Error::Config("the MP signing certificate's key is not RSA".to_owned()));
        }
        let hash = HashAlgorithm::from_certificate(cert).unwrap_or(HashAlgorithm::Sha256);
        Ok(Self { key, hash, site_code: None, require_signature: false })
    }

    /// Pins the MP signing certificate given as DER.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the DER is not a certificate with an RSA key.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, Error> {
        let cert = X509::from_der(der).map_err(|e| {
            Error::Config(format!("the MP signing certificate does not parse as DER: {e}"))
        })?;
        Self::from_certificate(&cert)
    }

    /// Pins the certificate of an `MPCERT` reply (§2.10).
    ///
    /// # Errors
    ///
    /// As [`ReplyVerifier::from_certificate_der`].
    pub fn from_mp_certificate(doc: &MpCertificate) -> Result<Self, Error> {
        Self::from_certificate_der(doc.certificate.as_bytes())
    }

    /// Pins `Certificate1`, the signing certificate, of an `MPCERT2` reply (§2.10).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `Certificate1` is missing; else as
    /// [`ReplyVerifier::from_certificate_der`].
    pub fn from_mp_certificates(doc: &MpCertificates) -> Result<Self, Error> {
        let cert = doc.certificate1.as_ref().ok_or_else(|| {
            Error::Config(
                "the MPCERT2 reply has no Certificate1 (the signing certificate)".to_owned(),
            )
        })?;
        Self::from_certificate_der(cert.value.as_bytes())
    }

    /// Pins `MPCERTIFICATE` of an `MPKEYINFORMATIONEX` reply (§2.10) and expects its
    /// `SITECODE` as `MPSiteCode`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `MPCERTIFICATE` is missing; else as
    /// [`ReplyVerifier::from_certificate_der`].
    pub fn from_key_information(doc: &Mpkeyinformation) -> Result<Self, Error> {
        let cert = doc.mpcertificate.as_ref().ok_or_else(|| {
            Error::Config("the MPKEYINFORMATION reply has no MPCERTIFICATE".to_owned())
        })?;
        let verifier = Self::from_certificate_der(cert.value.as_bytes())?;
        Ok(match doc.sitecode.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(site) => verifier.with_site_code(site),
            None => verifier,
        })
    }

    /// Expects `site_code` in the `MPSiteCode` property (compared ignoring ASCII case).
    #[must_use]
    pub fn with_site_code(mut self, site_code: &str) -> Self {
        self.site_code = Some(site_code.trim().to_ascii_uppercase());
        self
    }

    /// Verifies with `hash` instead of the certificate's signature hash.
    #[must_use]
    pub fn with_hash(mut self, hash: HashAlgorithm) -> Self {
        self.hash = hash;
        self
    }

    /// Whether a Sync reply without the `authenticate` hook is an error (default: no, as the
    /// SDK; whether production MPs always sign is **\[UNCONFIRMED\]**, §3.5).
    #[must_use]
    pub fn require_signature(mut self, required: bool) -> Self {
        self.require_signature = required;
        self
    }

    /// The expected `MPSiteCode`, if set.
    pub fn site_code(&self) -> Option<&str> {
        self.site_code.as_deref()
    }

    /// The hash reply signatures are verified with.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }
}

impl fmt::Debug for ReplyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyVerifier")
            .field("key_bits", &self.key.bits())
            .field("hash", &self.hash)
            .field("site_code", &self.site_code)
            .field("require_signature", &self.require_signature)
            .finish()
    }
}

/// What became of a reply's `authenticate` signature (§3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplySignature {
    /// The reply carries no `authenticate` hook (the SDK skips verification then).
    Absent,
    /// The reply is signed but no MP certificate is pinned: nothing was checked.
    Unchecked,
    /// The signature verified against the pinned certificate, and `AuthSenderMachine` and
    /// `MPSiteCode` matched.
    Verified,
}

/// A Sync reply taken apart: the `Msg` header and the body text (§2.7).
#[derive(Clone, Debug, PartialEq)]
pub struct SyncReply {
    /// The reply's `Msg` header.
    pub header: Msg,
    /// The body XML, decoded from UTF-16LE without its NUL.
    pub body_xml: String,
    /// The outcome of the signature check.
    pub signature: ReplySignature,
}

/// A typed Sync reply with its header (the result of an Invoke).
#[derive(Clone, Debug, PartialEq)]
pub struct Received<R> {
    /// The reply document.
    pub reply: R,
    /// The reply's `Msg` header.
    pub header: Msg,
    /// The body XML the reply was decoded from.
    pub body_xml: String,
    /// The outcome of the signature check.
    pub signature: ReplySignature,
}

/// What a Sync reply is decoded against.
#[derive(Clone, Copy, Debug)]
pub struct SyncContext<'a> {
    /// The MP host the request went to; `AuthSenderMachine` must name it.
    pub host_asked: &'a HostName,
    /// Whether the request asked for `ReplyCompression="zlib"`.
    pub reply_compression: bool,
    /// The pinned MP certificate, if any.
    pub verifier: Option<&'a ReplyVerifier>,
    /// The limits.
    pub limits: ReplyLimits,
}

/// Decodes a Sync (Invoke) reply into its typed document (§2.7, §8 rule 6).
///
/// # Errors
///
/// As [`decode_sync_raw`], and [`Error::Decode`] (with the element path) when the body is not
/// an `R` document.
pub fn decode_sync<R: Message>(
    http: &HttpReply,
    ctx: &SyncContext<'_>,
) -> Result<Received<R>, Error> {
    let SyncReply { header, body_xml, signature } = decode_sync_raw(http, ctx)?;
    let reply = decode_xml::<R>(&body_xml, &ctx.limits)?;
    Ok(Received { reply, header, body_xml, signature })
}

/// Takes a Sync reply apart without decoding the body document (§2.7, §8 rule 6).
///
/// Steps: the status must be 200 and the body neither empty nor an HTML page; the body must
/// be `multipart` with exactly two parts; part 1 is the UTF-16LE `Msg` header (BOM optional);
/// the `authenticate` hook is checked over the raw part 2; part 2 is inflated when the header
/// carries the `zlib-compress` hook, or when compression was asked for and the part starts
/// with a zlib header; the result (one optional trailing CRLF dropped) must be UTF-16LE with
/// exactly one trailing NUL.
///
/// # Errors
///
/// [`Error::Http`], [`Error::EmptyReply`], [`Error::HtmlPage`], [`Error::Multipart`],
/// [`Error::Parts`], [`Error::Body`], [`Error::Decode`] (header),
/// [`Error::BadReplySignature`], [`Error::Inflate`].
pub fn decode_sync_raw(http: &HttpReply, ctx: &SyncContext<'_>) -> Result<SyncReply, Error> {
    check_http(http)?;
    let parts = multipart::parse(&http.body, boundary(http), ctx.limits.multipart)?;
    let [header_part, body_part] = parts.as_slice() else {
        return Err(Error::Parts { expected: 2, found: parts.len() });
    };
    let header_text = body::decode_header(header_part.body, BomPolicy::Optional)?;
    let header: Msg = decode_xml(&header_text, &ctx.limits)?;
    let raw = body_part.body;
    let signature = check_authenticate(&header, raw, ctx.verifier, ctx.host_asked)?;
    let compressed = hooks(&header, &HookName::ZlibCompress).next().is_some()
        || (ctx.reply_compression && looks_like_zlib(raw));
    let body_xml = if compressed {
        reply_body_text(&zlib::inflate(raw, ctx.limits.inflate)?)?
    } else {
        reply_body_text(raw)?
    };
    Ok(SyncReply { header, body_xml, signature })
}

/// Checks the answer to a Post (async) message: one part reading `NoReply` (§2.8, §8 rule 7).
///
/// The framing a real MP uses is unconfirmed, so the part's text is compared leniently
/// ([`multipart::is_no_reply`]), and a bare `NoReply` body without MIME framing is accepted.
///
/// # Errors
///
/// [`Error::Http`], [`Error::EmptyReply`], [`Error::HtmlPage`]; [`Error::Parts`] for a
/// multipart body with other than one part; [`Error::UnexpectedReply`] for one part (or an
/// unframed body) that is not `NoReply`; [`Error::Multipart`] for broken framing.
pub fn decode_post(http: &HttpReply, limits: &ReplyLimits) -> Result<(), Error> {
    check_http(http)?;
    match multipart::parse(&http.body, boundary(http), limits.multipart) {
        Ok(parts) => match parts.as_slice() {
            [part] if multipart::is_no_reply(part.body) => Ok(()),
            [_] => Err(Error::UnexpectedReply),
            _ => Err(Error::Parts { expected: 1, found: parts.len() }),
        },
        Err(MultipartError::BoundaryNotFound) if multipart::is_no_reply(&http.body) => Ok(()),
        Err(MultipartError::BoundaryNotFound) => Err(Error::UnexpectedReply),
        Err(e) => Err(e.into()),
    }
}

/// Decodes the XML document of a GET reply (`.sms_aut`, §2.10): UTF-8 or ASCII text, read
/// leniently (a UTF-8 or UTF-16 BOM, UTF-16LE without BOM, trailing NULs).
///
/// # Errors
///
/// [`Error::Http`], [`Error::EmptyReply`], [`Error::HtmlPage`]; [`Error::NotUtf8`] or
/// [`Error::Body`] for text that does not decode; [`Error::Decode`] for a document that is
/// not an `R`.
pub fn decode_document<R: Message>(http: &HttpReply, limits: &ReplyLimits) -> Result<R, Error> {
    check_http(http)?;
    decode_xml(&document_text(&http.body)?, limits)
}

/// A downloaded policy body (§4.2.3): the policy XML, secret (house style HS-64).
#[derive(Debug)]
pub struct PolicyDownload {
    /// The policy XML text (root `Policy` for every known body).
    pub text: SecretString,
    /// The envelope's algorithms when the body was CMS EnvelopedData (§3.8).
    pub encryption: Option<EnvelopeAlgorithms>,
    /// Whether the body was the compressed `PolicyXML` form (§4.2.3).
    pub compressed: bool,
}

impl PolicyDownload {
    /// Decodes the text as a [`Policy`].
    ///
    /// The decoded values are ordinary `String`s: keep them no longer than needed.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the element path.
    pub fn policy(&self, limits: &ReplyLimits) -> Result<Policy, Error> {
        decode_xml(self.text.expose(), limits)
    }
}

/// Decodes a policy body download (§4.2.3, §3.8): CMS EnvelopedData (decrypted with the
/// identity's encryption key), plain UTF-16 (or UTF-8) XML, and the compressed `PolicyXML`
/// form, whose text is hex(zlib(UTF-16 XML)), inside either.
///
/// # Errors
///
/// [`Error::Http`], [`Error::EmptyReply`]; [`Error::HtmlPage`] for the `ERROR` page an MP
/// returns for a secret policy requested without valid signed headers (M8);
/// [`Error::PolicyEncrypted`] for an envelope without `identity`; [`Error::Cms`] when
/// decryption fails; [`Error::Body`] or [`Error::NotUtf8`] for undecodable text;
/// [`Error::Inflate`] when the compressed form passes the limits; [`Error::Decode`] for a
/// malformed `PolicyXML`.
pub fn decode_policy(
    http: &HttpReply,
    identity: Option<&Identity>,
    limits: &ReplyLimits,
) -> Result<PolicyDownload, Error> {
    check_http(http)?;
    let (text, encryption) = if cms::is_enveloped_data(&http.body) {
        let identity = identity.ok_or(Error::PolicyEncrypted)?;
        let algorithms = cms::envelope_algorithms(&http.body)?;
        let plain = cms::decrypt_enveloped(
            &http.body,
            identity.encryption_key().pkey(),
            identity.encryption_cert(),
        )?;
        (cms::policy_plaintext(plain.expose())?, Some(algorithms))
    } else {
        (SecretString::new(document_text(&http.body)?), None)
    };
    let root = xml::root_name(text.expose())?;
    if !root.eq_ignore_ascii_case(PolicyXml::ROOT) {
        return Ok(PolicyDownload { text, encryption, compressed: false });
    }
    let compressed: PolicyXml = decode_xml(text.expose(), limits)?;
    if compressed.compression != PolicyCompression::Zlib {
        return Err(Error::Inflate(InflateError::Corrupt(format!(
            "PolicyXML Compression {:?} is not zlib",
            compressed.compression.as_str()
        ))));
    }
    let inflated = SecretBytes::new(zlib::inflate(compressed.value.as_bytes(), limits.inflate)?);
    let inner = body::decode_header(inflated.expose(), BomPolicy::Optional)?;
    Ok(PolicyDownload { text: SecretString::new(inner), encryption, compressed: true })
}

/// Whether a policy with these `PolicyFlags` must be downloaded with signed headers:
/// `RequiresAuth` (2) or `Secret` (4) (§3.7, §4.2.2).
#[must_use]
pub fn policy_needs_auth(policy_flags: Option<u32>) -> bool {
    policy_flags.is_some_and(|flags| flags & 0b110 != 0)
}

/// Checks a reply's `authenticate` hook against `verifier` (§3.5; field notes M15).
///
/// Without a verifier nothing is checked ([`ReplySignature::Unchecked`] when the hook is
/// there). With one: `AuthSenderMachine` (a `;`-separated list) must name `host_asked`
/// (ASCII case-insensitive); `MPSiteCode` must equal the expected site code when one is set;
/// `Signature` (hex, byte-reversed) must verify over [`signed_bytes`] of `raw_part`, the raw
/// (still compressed) second MIME part.
///
/// # Errors
///
/// [`Error::BadReplySignature`] saying which check failed.
pub fn check_authenticate(
    header: &Msg,
    raw_part: &[u8],
    verifier: Option<&ReplyVerifier>,
    host_asked: &HostName,
) -> Result<ReplySignature, Error> {
    let hook = hooks(header, &HookName::Authenticate).next();
    let Some(verifier) = verifier else {
        return Ok(if hook.is_some() { ReplySignature::Unchecked } else { ReplySignature::Absent });
    };
    let Some(hook) = hook else {
        return if verifier.require_signature {
            Err(bad("the reply carries no authenticate hook and a signature is required"))
        } else {
            Ok(ReplySignature::Absent)
        };
    };
    let property = |name: HookPropertyName| {
        hook_property(hook, &name)
            .ok_or_else(|| bad(format!("the authenticate hook has no {} property", name.as_str())))
    };
    let machines = property(HookPropertyName::AuthSenderMachine)?;
    if !machines.split(';').any(|m| m.trim().eq_ignore_ascii_case(host_asked.as_str())) {
        return Err(bad(format!(
            "AuthSenderMachine {:?} does not name the MP asked, {host_asked}",
            shorten(machines)
        )));
    }
    if let Some(expected) = &verifier.site_code {
        let site = property(HookPropertyName::MpSiteCode)?;
        if !site.trim().eq_ignore_ascii_case(expected) {
            return Err(bad(format!(
                "MPSiteCode {:?} is not the expected site {expected}",
                shorten(site)
            )));
        }
    }
    let signature = sign::from_hex(property(HookPropertyName::Signature)?)
        .map_err(|e| bad(format!("the Signature property is not hex: {e}")))?;
    let data = signed_bytes(header, raw_part)?;
    sign::verify_reversed(&verifier.key, verifier.hash, data, &signature)
        .map_err(|e| bad(e.to_string()))?;
    Ok(ReplySignature::Verified)
}

/// The bytes a reply signature covers: the reply header's `Body` range of the raw (still
/// compressed) second part, taken as the SDK does, `Length − Offset` bytes from `Offset`
/// (§3.5); the whole part when the header has no `Body` range.
///
/// # Errors
///
/// [`Error::BadReplySignature`] when the range is inverted or lies outside the part.
pub fn signed_bytes<'r>(header: &Msg, raw_part: &'r [u8]) -> Result<&'r [u8], Error> {
    let Some(range) = &header.body else {
        return Ok(raw_part);
    };
    let outside = || {
        bad(format!(
            "the Body range (Offset {}, Length {}) lies outside the {}-byte reply part",
            range.offset,
            range.length,
            raw_part.len()
        ))
    };
    let offset = usize::try_from(range.offset).map_err(|_| outside())?;
    let length = usize::try_from(range.length).map_err(|_| outside())?;
    let count = length.checked_sub(offset).ok_or_else(outside)?;
    let end = offset.checked_add(count).ok_or_else(outside)?;
    raw_part.get(offset..end).ok_or_else(outside)
}

/// The `<title>` of an HTML page, whitespace collapsed, the predefined entities decoded, at
/// most 200 characters; `None` when there is none.
///
/// # Examples
///
/// ```
/// use cmmp_transport::reply::html_title;
///
/// let page = b"<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";
/// assert_eq!(html_title(page).as_deref(), Some("ERROR"));
/// assert_eq!(html_title(b"no page"), None);
/// ```
pub fn html_title(body: &[u8]) -> Option<String> {
    let text = lossy_text(body.get(..HTML_SCAN).unwrap_or(body));
    let lower = text.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let content_start = open + lower[open..].find('>')? + 1;
    let content_end = content_start + lower[content_start..].find("</title")?;
    let raw = text.get(content_start..content_end)?;
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let decoded = collapsed
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(decoded.chars().take(200).collect())
}

/// Whether a body is an HTML page rather than a message: it starts (after a BOM and white
/// space) with `<!DOCTYPE html`, `<html`, `<head`, `<title` or `<body`, ignoring case.
pub fn is_html(body: &[u8]) -> bool {
    let text = lossy_text(body.get(..HTML_SCAN).unwrap_or(body));
    let lower = text.trim_start_matches(['\u{FEFF}', ' ', '\t', '\r', '\n']).to_ascii_lowercase();
    ["<!doctype html", "<html", "<head", "<title", "<body"].iter().any(|p| lower.starts_with(p))
}

/// Decodes a document of type `R` under the limits (no DTD, predefined entities only,
/// nesting and size limits; errors carry the element path).
///
/// # Errors
///
/// [`Error::Decode`].
pub fn decode_xml<R: Message>(text: &str, limits: &ReplyLimits) -> Result<R, Error> {
    let mut reader = Reader::with_limits(text, limits.max_xml_depth, limits.max_xml_size)?;
    R::read_document(&mut reader).map_err(Error::from)
}

/// Decodes the text of a GET reply leniently (§2.10): after a UTF-8 BOM, UTF-8; after an
/// `FF FE` BOM, or when the second byte is zero and the first is not, UTF-16LE (one trailing
/// NUL tolerated); else UTF-8. Trailing NULs after UTF-8 text are dropped.
///
/// # Errors
///
/// [`Error::Body`] for malformed UTF-16 (odd length, unpaired surrogate, embedded NUL);
/// [`Error::NotUtf8`] for invalid UTF-8.
pub fn document_text(bytes: &[u8]) -> Result<String, Error> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8_text(rest, 3);
    }
    let utf16 = bytes.starts_with(b"\xFF\xFE") || matches!(bytes, [first, 0, ..] if *first != 0);
    if utf16 {
        return Ok(body::decode_header(bytes, BomPolicy::Optional)?);
    }
    utf8_text(bytes, 0)
}

/// Who signs replies built by [`encode_sync_reply`] (the emulator's MP identity).
#[derive(Debug, Clone, Copy)]
pub struct ReplySigner<'k> {
    /// The MP signing key.
    pub key: &'k SigningKey,
    /// The hash.
    pub hash: HashAlgorithm,
    /// `AuthSenderMachine`: the MP's names, `;`-separated.
    pub sender_machines: &'k str,
    /// `MPSiteCode`.
    pub site_code: &'k str,
}

/// Builds a Sync reply body (`multipart/mixed` with [`multipart::BOUNDARY`], §2.7) as this
/// module reads it: `header` with its `Body` range and hooks replaced, then the body
/// (UTF-16LE, one NUL), zlib-compressed when `compress` is set.
///
/// The `Body` range is `Offset 0`, `Length` = the length of the part as sent (compressed
/// when compressed), which is the range [`signed_bytes`] reads; for an uncompressed body it
/// is also the byte length of the text with its NUL. **\[inferred\]**: what a real MP writes
/// for compressed replies is unconfirmed (§3.5). Hooks: `authenticate` when `signer` is given
/// (Signature over the part as sent), then `zlib-compress` when compressed.
///
/// # Errors
///
/// [`Error::Encode`] when the header cannot be written; [`Error::Payload`] for a body over
/// 4 GiB; [`Error::Sign`] when signing fails.
pub fn encode_sync_reply(
    mut header: Msg,
    body_xml: &str,
    compress: bool,
    signer: Option<&ReplySigner<'_>>,
) -> Result<Vec<u8>, Error> {
    let mut payload = Vec::with_capacity(body_xml.len() * 2 + 2);
    body::encode_body(body_xml, &mut payload);
    let raw = if compress { zlib::compress(&payload) } else { payload };
    let length = u32::try_from(raw.len()).map_err(|_| PayloadError::TooLarge)?;
    header.body = Some(BodyRange::new(RangeKind::ByteRange, 0, length));
    let mut content = Vec::new();
    if let Some(signer) = signer {
        let signature = signer.key.sign(signer.hash, &raw)?;
        let mut hook = Hook::new(HookName::Authenticate);
        for (name, value) in [
            (HookPropertyName::Signature, sign::hex_upper(&signature)),
            (HookPropertyName::AuthSenderMachine, signer.sender_machines.to_owned()),
            (HookPropertyName::MpSiteCode, signer.site_code.to_owned()),
        ] {
            hook.property.push(HookProperty::new(name, value));
        }
        content.push(HooksContent::Hook(Box::new(hook)));
    }
    if compress {
        content.push(HooksContent::Hook3(Box::new(Hook::new(HookName::ZlibCompress))));
    }
    header.hooks = Some(Hooks { content });
    let mut header_part = Vec::new();
    body::encode_header(&header.to_xml()?, &mut header_part);
    let mut out = Vec::with_capacity(header_part.len() + raw.len() + 200);
    multipart::frame(&header_part, &raw, &mut out);
    Ok(out)
}

/// Builds the answer to a Post: one `text/plain; charset=UTF-16` part holding `NoReply` as
/// UTF-16LE after an `FF FE` BOM (§2.8; the real MP's exact bytes are **\[UNCONFIRMED\]**).
pub fn encode_no_reply() -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"--");
    out.extend_from_slice(multipart::BOUNDARY.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n");
    body::encode_header("NoReply", &mut out);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(multipart::BOUNDARY.as_bytes());
    out.extend_from_slice(b"--");
    out
}

/// Status 200 with a body that is neither blank nor an HTML page.
fn check_http(http: &HttpReply) -> Result<(), Error> {
    if http.status != 200 {
        return Err(Error::Http { status: http.status, title: html_title(&http.body) });
    }
    if http.body.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return Err(Error::EmptyReply);
    }
    let html_type = http
        .content_type()
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if is_html(&http.body) || (html_type && !http.body.starts_with(b"--")) {
        return Err(Error::HtmlPage { title: html_title(&http.body).unwrap_or_default() });
    }
    Ok(())
}

/// The boundary of the reply's `Content-Type`, else the SDK's constant (§2.7).
fn boundary(http: &HttpReply) -> &str {
    http.content_type()
        .and_then(multipart::boundary_from_content_type)
        .unwrap_or(multipart::BOUNDARY)
}

/// Whether `bytes` start with a valid zlib header (RFC 1950 §2.2: deflate, FCHECK).
/// UTF-16LE XML starts with `3C 00` and never passes.
fn looks_like_zlib(bytes: &[u8]) -> bool {
    match bytes {
        [cmf, flg, ..] => cmf & 0x0F == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Decodes a reply body: one trailing CRLF (as requests carry) dropped, then strict UTF-16LE
/// with exactly one trailing NUL.
fn reply_body_text(payload: &[u8]) -> Result<String, Error> {
    let text = match payload.strip_suffix(b"\r\n") {
        Some(rest) if rest.ends_with(&[0, 0]) => rest,
        _ => payload,
    };
    Ok(body::decode_body(text)?)
}

/// Strict UTF-8, trailing NULs dropped; `base` is the offset of `bytes` in the reply.
fn utf8_text(bytes: &[u8], base: usize) -> Result<String, Error> {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1);
    let text = bytes.get(..end).unwrap_or_default();
    std::str::from_utf8(text)
        .map(str::to_owned)
        .map_err(|e| Error::NotUtf8 { offset: base + e.valid_up_to() })
}

/// Text for sniffing: UTF-16LE when it looks like it, else lossy UTF-8.
fn lossy_text(bytes: &[u8]) -> String {
    let utf16 = bytes.starts_with(b"\xFF\xFE") || matches!(bytes, [first, 0, ..] if *first != 0);
    if utf16 {
        let units = bytes.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]]));
        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// A [`Error::BadReplySignature`].
fn bad(reason: impl Into<String>) -> Error {
    Error::BadReplySignature { reason: reason.into() }
}

/// At most 80 characters of a value taken from a reply, for error messages.
fn shorten(value: &str) -> String {
    value.chars().take(80).collect()
}

/// How much of a body is scanned for an HTML page and its title.
const HTML_SCAN: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::{html_title, is_html, looks_like_zlib, signed_bytes};
    use crate::zlib;
    use cmmp_model::msg::{BodyRange, Msg, RangeKind};

    #[test]
    fn finds_titles_in_any_case_and_collapses_white_space() {
        assert_eq!(
            html_title(b"<html><head><Title>\r\n  Server   Error &amp; more </TITLE>").as_deref(),
            Some("Server Error & more")
        );
        assert_eq!(html_title(b"<html><title>unterminated"), None);
        let utf16: Vec<u8> = "\u{FEFF}<HTML><TITLE>ERROR</TITLE></HTML>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(html_title(&utf16).as_deref(), Some("ERROR"));
        assert!(is_html(&utf16));
        assert!(is_html(b"  <!DOCTYPE html><html/>"));
        assert!(!is_html(b"<MPList/>"));
    }

    #[test]
    fn sniffs_zlib_but_not_utf16_xml() {
        assert!(looks_like_zlib(&zlib::compress(b"x")));
        assert!(!looks_like_zlib(b"<\0R\0"));
        assert!(!looks_like_zlib(b"x"));
    }

    #[test]
    fn signed_range_follows_the_sdk_arithmetic() {
        let mut header = Msg::new("SccmMessaging".to_owned());
        assert_eq!(signed_bytes(&header, b"abcdef").unwrap(), b"abcdef");
        header.body = Some(BodyRange::new(RangeKind::ByteRange, 2, 5));
        assert_eq!(signed_bytes(&header, b"abcdef").unwrap(), b"cde");
        header.body = Some(BodyRange::new(RangeKind::ByteRange, 0, 7));
        assert!(signed_bytes(&header, b"abcdef").is_err());
        header.body = Some(BodyRange::new(RangeKind::ByteRange, 5, 2));
        assert!(signed_bytes(&header, b"abcdef").is_err());
    }
}
