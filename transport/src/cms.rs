//! Decryption of secret policy bodies: DER CMS `EnvelopedData` addressed to the client's
//! encryption certificate (protocol §3.8).
//!
//! The key transport (`rsaEncryption`, i.e. RSAES-PKCS1-v1_5, or `id-RSAES-OAEP`) and the
//! content cipher (`des-ede3-cbc`, `aes128-CBC`, `aes256-CBC`) vary by site and version: since
//! 2403 MPs use OAEP and AES (field notes §2.1). OpenSSL decrypts them all; this module first
//! reads the envelope's algorithms with a small bounded DER reader so that every failure names
//! them and the certificate role involved, instead of "something went wrong".
//!
//! Decrypted bytes are secret: they come back as [`SecretBytes`] and [`SecretString`], which
//! redact `Debug` and zeroise on drop (house style HS-64; field notes §5 item 7).
//!
//! # Examples
//!
//! ```no_run
//! use cmmp_transport::{cert::Identity, cms};
//!
//! # fn demo(identity: &Identity, body: &[u8]) -> Result<(), cms::CmsError> {
//! let plain = cms::decrypt_enveloped(
//!     body,
//!     identity.encryption_key().pkey(),
//!     identity.encryption_cert(),
//! )?;
//! let policy = cms::policy_plaintext(plain.expose())?;
//! assert!(policy.expose().starts_with('<'));
//! # Ok(()) }
//! ```

use core::fmt;

use openssl::cms::CmsContentInfo;
use openssl::error::ErrorStack;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::{X509, X509Ref};

use self::der::{DerError, Reader, Tlv, algorithm, oid_string, tag};
use crate::sign::{SecretBytes, SecretString};

mod der;

/// How the content-encryption key is wrapped for the recipient (§3.8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyTransport {
    /// `rsaEncryption` (`1.2.840.113549.1.1.1`): RSAES-PKCS1-v1_5.
    RsaPkcs1v15,
    /// `id-RSAES-OAEP` (`1.2.840.113549.1.1.7`), with its hashes (SHA-1 / MGF1-SHA-1 when the
    /// parameters are absent, as MPs send them).
    RsaOaep {
        /// The OAEP hash, e.g. `SHA-1` (or its OID when unknown).
        hash: String,
        /// The MGF1 hash, e.g. `SHA-1` (or its OID when unknown).
        mgf1_hash: String,
    },
    /// Any other algorithm, by OID.
    Other {
        /// The algorithm's OID.
        oid: String,
    },
}

impl fmt::Display for KeyTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RsaPkcs1v15 => f.write_str("RSAES-PKCS1-v1_5 (rsaEncryption)"),
            Self::RsaOaep { hash, mgf1_hash } => write!(f, "RSAES-OAEP ({hash}, MGF1-{mgf1_hash})"),
            Self::Other { oid } => write!(f, "unknown algorithm {oid}"),
        }
    }
}

/// The cipher of the policy content (§3.8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ContentEncryption {
    /// `des-ede3-cbc` (`1.2.840.113549.3.7`), older MPs.
    DesEde3Cbc,
    /// `aes128-CBC` (`2.16.840.1.101.3.4.1.2`).
    Aes128Cbc,
    /// `aes192-CBC` (`2.16.840.1.101.3.4.1.22`).
    Aes192Cbc,
    /// `aes256-CBC` (`2.16.840.1.101.3.4.1.42`).
    Aes256Cbc,
    /// Any other algorithm, by OID.
    Other {
        /// The algorithm's OID.
        oid: String,
    },
}

impl fmt::Display for ContentEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DesEde3Cbc => f.write_str("DES-EDE3-CBC"),
            Self::Aes128Cbc => f.write_str("AES-128-CBC"),
            Self::Aes192Cbc => f.write_str("AES-192-CBC"),
            Self::Aes256Cbc => f.write_str("AES-256-CBC"),
            Self::Other { oid } => write!(f, "unknown cipher {oid}"),
        }
    }
}

/// The algorithms of an envelope: what a decryption failure names (field notes §2.1).
///
/// Displayed as, e.g., `AES-256-CBC content, RSAES-OAEP (SHA-1, MGF1-SHA-1) key transport`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvelopeAlgorithms {
    /// The key transport of the recipient (the client's, when it is among several).
    pub key_transport: KeyTransport,
    /// The content cipher.
    pub content: ContentEncryption,
}

impl fmt::Display for EnvelopeAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} content, {} key transport", self.content, self.key_transport)
    }
}

/// A secret policy body that cannot be decrypted or decoded (§3.8).
///
/// Every variant after parsing names the envelope's algorithms and the certificate role (the
/// client's encryption certificate); none contains decrypted bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// The bytes are not a well-formed CMS `ContentInfo`.
    #[error("the policy body is not a well-formed CMS EnvelopedData: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
        /// OpenSSL's error, when OpenSSL rejected the structure.
        #[source]
        source: Option<ErrorStack>,
    },
    /// A CMS structure of another type (e.g. SignedData).
    #[error(
        "the policy body is CMS content type {content_type}, not EnvelopedData (1.2.840.113549.1.7.3)"
    )]
    NotEnveloped {
        /// The content type OID.
        content_type: String,
    },
    /// No recipient uses key transport (RSA); e.g. key agreement only.
    #[error(
        "{content} content: the envelope has no key-transport (RSA) recipient for the client's encryption certificate"
    )]
    NoKeyTransport {
        /// The content cipher.
        content: ContentEncryption,
    },
    /// The client's key is not the one of the certificate passed with it.
    #[error("the client's encryption key does not match the client's encryption certificate")]
    KeyMismatch,
    /// The envelope is addressed to other certificates.
    #[error(
        "{algorithms}: none of the envelope's {recipients} recipient(s) is the client's \
         encryption certificate (was the policy encrypted to another certificate, such as the \
         signing one or a previous registration's?)"
    )]
    NoMatchingRecipient {
        /// The envelope's algorithms.
        algorithms: EnvelopeAlgorithms,
        /// How many recipients the envelope has.
        recipients: usize,
    },
    /// OpenSSL could not decrypt (corrupt envelope, unsupported cipher, wrong key).
    #[error("{algorithms}: decryption with the client's encryption certificate failed")]
    Decrypt {
        /// The envelope's algorithms.
        algorithms: EnvelopeAlgorithms,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// OpenSSL could not build an envelope.
    #[error(
        "CMS encryption (3DES-CBC content, RSA PKCS#1 v1.5 key transport to the MP encryption certificate) failed"
    )]
    Encrypt(#[source] ErrorStack),
    /// The decrypted bytes are not UTF-16LE text with exactly one trailing NUL.
    #[error("the decrypted policy is not UTF-16LE text with one trailing NUL")]
    Plaintext(#[source] crate::body::BodyError),
}

/// CMS-envelopes `data` to `recipients` (the MP encryption certificates; one recipient per
/// MP behind a load balancer) with 3DES-CBC content encryption, the algorithm the SDK uses
/// (OID `1.2.840.113549.3.7`, §3.6), and RSA PKCS#1 v1.5 key transport. Returns DER.
///
/// # Errors
///
/// [`CmsError::Encrypt`] when OpenSSL cannot build the envelope (e.g. no recipients).
pub fn encrypt_to(recipients: &[X509], data: &[u8]) -> Result<Vec<u8>, CmsError> {
    let mut stack = openssl::stack::Stack::new().map_err(CmsError::Encrypt)?;
    for cert in recipients {
        stack.push(cert.clone()).map_err(CmsError::Encrypt)?;
    }
    let cms = CmsContentInfo::encrypt(
        &stack,
        data,
        openssl::symm::Cipher::des_ede3_cbc(),
        openssl::cms::CMSOptions::BINARY,
    )
    .map_err(CmsError::Encrypt)?;
    cms.to_der().map_err(CmsError::Encrypt)
}

/// Decrypts a DER CMS `ContentInfo(EnvelopedData)` with the client's encryption key and
/// certificate (§3.8).
///
/// Supported: key transport RSAES-PKCS1-v1_5 and RSAES-OAEP; content DES-EDE3-CBC,
/// AES-128-CBC, AES-192-CBC, AES-256-CBC (what OpenSSL's default provider decrypts). The key
/// must match `cert`: this is checked first, because OpenSSL's defence against the
/// Bleichenbacher attack otherwise turns a wrong key into random output (about 1 in 256
/// times) instead of an error. Pass the result to [`policy_plaintext`].
///
/// EnvelopedData gives confidentiality only: CBC content without a MAC is malleable (a
/// changed IV changes the plaintext and still decrypts). Check the decrypted policy against
/// the `PolicyHash` of its assignment (§4.2.2) before trusting it.
///
/// # Errors
///
/// [`CmsError::Malformed`] or [`CmsError::NotEnveloped`] when `der` is not an
/// EnvelopedData; [`CmsError::NoKeyTransport`] without an RSA recipient;
/// [`CmsError::KeyMismatch`] when `key` does not belong to `cert`;
/// [`CmsError::NoMatchingRecipient`] when the envelope is addressed to other certificates;
/// [`CmsError::Decrypt`] when decryption fails. All but the first three name the algorithms.
pub fn decrypt_enveloped(
    der: &[u8],
    key: &PKeyRef<Private>,
    cert: &X509,
) -> Result<SecretBytes, CmsError> {
    let envelope = Envelope::parse(der)?;
    let first = envelope.first_key_transport()?;
    if !cert.public_key().is_ok_and(|public| public.public_eq(key)) {
        return Err(CmsError::KeyMismatch);
    }
    let matched = envelope.recipient_for(cert);
    let algorithms = EnvelopeAlgorithms {
        key_transport: matched.map_or(first, |recipient| recipient.key_transport.clone()),
        content: envelope.content.clone(),
    };
    let info = CmsContentInfo::from_der(der).map_err(|source| CmsError::Malformed {
        reason: "OpenSSL rejected the structure",
        source: Some(source),
    })?;
    match info.decrypt(key, cert) {
        Ok(plain) => Ok(SecretBytes::new(plain)),
        Err(_) if matched.is_none() => {
            Err(CmsError::NoMatchingRecipient { algorithms, recipients: envelope.recipients.len() })
        }
        Err(source) => Err(CmsError::Decrypt { algorithms, source }),
    }
}

/// Reads the algorithms of an EnvelopedData without decrypting it: the first key-transport
/// recipient's key transport and the content cipher.
///
/// Useful to log (or enforce) which algorithms a site uses (field notes §2.1).
///
/// # Errors
///
/// [`CmsError::Malformed`], [`CmsError::NotEnveloped`] or [`CmsError::NoKeyTransport`], as
/// for [`decrypt_enveloped`].
pub fn envelope_algorithms(der: &[u8]) -> Result<EnvelopeAlgorithms, CmsError> {
    let envelope = Envelope::parse(der)?;
    let key_transport = envelope.first_key_transport()?;
    Ok(EnvelopeAlgorithms { key_transport, content: envelope.content })
}

/// Whether `body` is a CMS EnvelopedData, as opposed to a plain UTF-16LE policy (an MP that
/// enforces HTTPS may send secret policies unencrypted, §3.8).
#[must_use]
pub fn is_enveloped_data(body: &[u8]) -> bool {
    Envelope::parse(body).is_ok()
}

/// Decodes a decrypted policy: UTF-16LE without BOM, exactly one trailing NUL (§3.8, §2.5).
///
/// Strict, as field notes §5 item 2 requires: an odd byte count, a BOM, a missing NUL, a NUL
/// before the end (a second trailing NUL included) and an unpaired surrogate are errors.
/// The rules are those of [`crate::body::decode_body`].
///
/// # Errors
///
/// [`CmsError::Plaintext`] naming the defect.
pub fn policy_plaintext(decrypted: &[u8]) -> Result<SecretString, CmsError> {
    crate::body::decode_body(decrypted).map(SecretString::new).map_err(CmsError::Plaintext)
}

/// A parsed EnvelopedData: its recipients and content cipher.
#[derive(Debug)]
struct Envelope<'a> {
    /// The key-transport recipients, in order.
    recipients: Vec<Recipient<'a>>,
    /// The content cipher.
    content: ContentEncryption,
}

/// A `KeyTransRecipientInfo`.
#[derive(Debug)]
struct Recipient<'a> {
    /// Which certificate it is addressed to.
    rid: Rid<'a>,
    /// How the content key is wrapped.
    key_transport: KeyTransport,
}

/// A `RecipientIdentifier`.
#[derive(Debug)]
enum Rid<'a> {
    /// `IssuerAndSerialNumber`: the issuer `Name` and serial `INTEGER`, whole encodings.
    IssuerSerial {
        /// The issuer `Name` element.
        issuer: &'a [u8],
        /// The serial `INTEGER` element.
        serial: &'a [u8],
    },
    /// `[0] SubjectKeyIdentifier` contents.
    KeyId(&'a [u8]),
}

impl<'a> Envelope<'a> {
    /// Parses `ContentInfo { envelopedData, [0] EnvelopedData }` (RFC 5652 §3, §6.1).
    fn parse(der: &'a [u8]) -> Result<Self, CmsError> {
        Self::parse_inner(der).map_err(|reason| match reason {
            Inner::Der(reason) => CmsError::Malformed { reason, source: None },
            Inner::NotEnveloped(content_type) => CmsError::NotEnveloped { content_type },
        })
    }

    /// [`Envelope::parse`] with an internal error type.
    fn parse_inner(der: &'a [u8]) -> Result<Self, Inner> {
        let mut top = Reader::new(der);
        let content_info = top.expect(tag::SEQUENCE, "not a DER SEQUENCE")?;
        if !top.is_empty() {
            return Err(Inner::Der("trailing bytes after the ContentInfo"));
        }
        let mut fields = content_info.children();
        let content_type =
            oid_string(fields.expect(tag::OID, "ContentInfo without a type")?.content)?;
        if content_type != OID_ENVELOPED_DATA {
            return Err(Inner::NotEnveloped(content_type));
        }
        let explicit = fields.expect(tag::CONTEXT_0, "ContentInfo without [0] content")?;
        let enveloped =
            explicit.children().expect(tag::SEQUENCE, "EnvelopedData is not a SEQUENCE")?;

        let mut fields = enveloped.children();
        fields.expect(tag::INTEGER, "EnvelopedData without a version")?;
        fields.optional(tag::CONTEXT_0)?; // originatorInfo
        let infos = fields.expect(tag::SET, "EnvelopedData without recipientInfos")?;
        let mut recipients = Vec::new();
        let mut reader = infos.children();
        while !reader.is_empty() {
            let info = reader.read()?;
            // KeyTransRecipientInfo is the only untagged choice; the others are [1]..[4].
            if info.tag == tag::SEQUENCE {
                recipients.push(Recipient::parse(&info)?);
            }
        }
        let encrypted =
            fields.expect(tag::SEQUENCE, "EnvelopedData without encryptedContentInfo")?;
        let mut fields = encrypted.children();
        fields.expect(tag::OID, "encryptedContentInfo without a content type")?;
        let cipher = fields.read()?;
        let (cipher, _) = algorithm(&cipher, "content encryption is not an AlgorithmIdentifier")?;
        let content = match cipher.as_str() {
            OID_DES_EDE3_CBC => ContentEncryption::DesEde3Cbc,
            OID_AES128_CBC => ContentEncryption::Aes128Cbc,
            OID_AES192_CBC => ContentEncryption::Aes192Cbc,
            OID_AES256_CBC => ContentEncryption::Aes256Cbc,
            _ => ContentEncryption::Other { oid: cipher },
        };
        Ok(Self { recipients, content })
    }

    /// The key transport of the first key-transport recipient.
    fn first_key_transport(&self) -> Result<KeyTransport, CmsError> {
        self.recipients
            .first()
            .map(|recipient| recipient.key_transport.clone())
            .ok_or_else(|| CmsError::NoKeyTransport { content: self.content.clone() })
    }

    /// The recipient addressed to `cert`, if the envelope names it.
    fn recipient_for(&self, cert: &X509Ref) -> Option<&Recipient<'a>> {
        let cert_der = cert.to_der().ok();
        let issuer_serial = cert_der.as_deref().and_then(|der| issuer_and_serial(der).ok());
        let key_id = cert.subject_key_id().map(|id| id.as_slice());
        self.recipients.iter().find(|recipient| match recipient.rid {
            Rid::IssuerSerial { issuer, serial } => issuer_serial == Some((issuer, serial)),
            Rid::KeyId(id) => key_id == Some(id),
        })
    }
}

impl<'a> Recipient<'a> {
    /// Parses `KeyTransRecipientInfo { version, rid, keyEncryptionAlgorithm, encryptedKey }`.
    fn parse(info: &Tlv<'a>) -> Result<Self, DerError> {
        let mut fields = info.children();
        fields.expect(tag::INTEGER, "KeyTransRecipientInfo without a version")?;
        let rid = fields.read()?;
        let rid = match rid.tag {
            tag::SEQUENCE => {
                let mut parts = rid.children();
                let issuer = parts.expect(tag::SEQUENCE, "recipient issuer is not a Name")?;
                let serial = parts.expect(tag::INTEGER, "recipient serial is not an INTEGER")?;
                Rid::IssuerSerial { issuer: issuer.raw, serial: serial.raw }
            }
            tag::CONTEXT_0_PRIMITIVE => Rid::KeyId(rid.content),
            _ => return Err("unknown RecipientIdentifier"),
        };
        let algorithm_tlv = fields.read()?;
        let (oid, params) =
            algorithm(&algorithm_tlv, "key encryption is not an AlgorithmIdentifier")?;
        let key_transport = match oid.as_str() {
            OID_RSA_ENCRYPTION => KeyTransport::RsaPkcs1v15,
            OID_RSAES_OAEP => oaep(params)?,
            _ => KeyTransport::Other { oid },
        };
        fields.expect(tag::OCTET_STRING, "KeyTransRecipientInfo without an encryptedKey")?;
        Ok(Self { rid, key_transport })
    }
}

/// An internal parse failure.
enum Inner {
    /// Malformed structure.
    Der(DerError),
    /// Another content type.
    NotEnveloped(String),
}

impl From<DerError> for Inner {
    fn from(reason: DerError) -> Self {
        Self::Der(reason)
    }
}

/// Reads `RSAES-OAEP-params { [0] hashFunc, [1] maskGenFunc, [2] pSourceFunc }` (RFC 8017
/// A.2.1); absent fields default to SHA-1 and MGF1-SHA-1.
fn oaep(params: Option<Tlv<'_>>) -> Result<KeyTransport, DerError> {
    let mut hash = OID_SHA1.to_owned();
    let mut mgf1_hash = OID_SHA1.to_owned();
    if let Some(params) = params.filter(|params| params.tag == tag::SEQUENCE) {
        let mut fields = params.children();
        if let Some(explicit) = fields.optional(tag::CONTEXT_0)? {
            let inner = explicit.children().read()?;
            hash = algorithm(&inner, "OAEP hash is not an AlgorithmIdentifier")?.0;
        }
        if let Some(explicit) = fields.optional(tag::CONTEXT_1)? {
            let inner = explicit.children().read()?;
            let (mgf, mgf_params) = algorithm(&inner, "OAEP MGF is not an AlgorithmIdentifier")?;
            mgf1_hash = match mgf_params {
                Some(mgf_hash) if mgf == OID_MGF1 => {
                    algorithm(&mgf_hash, "MGF1 hash is not an AlgorithmIdentifier")?.0
                }
                _ => mgf,
            };
        }
    }
    Ok(KeyTransport::RsaOaep { hash: digest_name(hash), mgf1_hash: digest_name(mgf1_hash) })
}

/// A digest's name, or its OID when unknown.
fn digest_name(oid: String) -> String {
    match oid.as_str() {
        OID_SHA1 => "SHA-1".to_owned(),
        "2.16.840.1.101.3.4.2.4" => "SHA-224".to_owned(),
        "2.16.840.1.101.3.4.2.1" => "SHA-256".to_owned(),
        "2.16.840.1.101.3.4.2.2" => "SHA-384".to_owned(),
        "2.16.840.1.101.3.4.2.3" => "SHA-512".to_owned(),
        _ => oid,
    }
}

/// The issuer `Name` and serial `INTEGER` elements of a DER certificate (RFC 5280 §4.1).
fn issuer_and_serial(cert_der: &[u8]) -> Result<(&[u8], &[u8]), DerError> {
    let certificate = Reader::new(cert_der).expect(tag::SEQUENCE, "certificate")?;
    let tbs = certificate.children().expect(tag::SEQUENCE, "tbsCertificate")?;
    let mut fields = tbs.children();
    fields.optional(tag::CONTEXT_0)?; // version
    let serial = fields.expect(tag::INTEGER, "serialNumber")?;
    fields.expect(tag::SEQUENCE, "signature")?;
    let issuer = fields.expect(tag::SEQUENCE, "issuer")?;
    Ok((issuer.raw, serial.raw))
}

/// `envelopedData` content type (RFC 5652 §6.1).
const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";

/// `rsaEncryption`: RSAES-PKCS1-v1_5 key transport.
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// `id-RSAES-OAEP`.
const OID_RSAES_OAEP: &str = "1.2.840.113549.1.1.7";

/// `id-mgf1`.
const OID_MGF1: &str = "1.2.840.113549.1.1.8";

/// `id-sha1`.
const OID_SHA1: &str = "1.3.14.3.2.26";

/// `des-ede3-cbc`.
const OID_DES_EDE3_CBC: &str = "1.2.840.113549.3.7";

/// `id-aes128-CBC`.
const OID_AES128_CBC: &str = "2.16.840.1.101.3.4.1.2";

/// `id-aes192-CBC`.
const OID_AES192_CBC: &str = "2.16.840.1.101.3.4.1.22";

/// `id-aes256-CBC`.
const OID_AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";

#[cfg(test)]
mod tests {
    use super::{CmsError, is_enveloped_data, policy_plaintext};

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn plaintext_follows_the_body_rules() {
        let mut good = utf16("<Policy/>\r\n");
        good.extend([0, 0]);
        assert_eq!(policy_plaintext(&good).unwrap().expose(), "<Policy/>\r\n");
        assert!(matches!(policy_plaintext(&utf16("<P/>")), Err(CmsError::Plaintext(_))));
        assert!(matches!(policy_plaintext(&[0x3C, 0x00, 0x00]), Err(CmsError::Plaintext(_))));
    }

    #[test]
    fn plain_policy_is_not_an_envelope() {
        let mut plain = utf16("<Policy/>");
        plain.extend([0, 0]);
        assert!(!is_enveloped_data(&plain));
        assert!(!is_enveloped_data(&[]));
    }
}
