//! RSA signatures in CryptoAPI byte order: the `clientauth` hook, the registration request and
//! the policy-download tokens (protocol §3.2, §3.3, §3.7).
//!
//! Every signature the management point (MP) exchanges is RSASSA-PKCS1-v1_5 whose bytes are
//! **reversed** (little-endian, as CryptoAPI's `CryptSignHash` returns them) and written as
//! upper-case hex (§3.2, §7). Two paddings occur: the standard one with a DigestInfo
//! ([`SignatureFormat::DigestInfo`], `clientauth` and registration) and the one without
//! ([`SignatureFormat::NoHashOid`], CryptoAPI's `CRYPT_NOHASHOID`, token schemes 2 and 3 of
//! §3.7). The hash is a per-site setting ([`HashAlgorithm`], field notes §2.1), never a constant.
//!
//! [`SigningKey`] holds the RSA private key on OpenSSL; its `Debug` output is redacted and its
//! PEM comes back as [`SecretBytes`] (house style HS-64). The functions here are pure: bytes in,
//! bytes or strings out, no I/O (HS-51).
//!
//! # Examples
//!
//! ```
//! use cmmp_model::value::SmsId;
//! use cmmp_transport::sign::{self, HashAlgorithm, SigningKey};
//!
//! let key = SigningKey::generate(2048)?;
//! let id: SmsId = "GUID:2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB".parse()?;
//! // Computed once per client: it depends only on the key, the hash and the ID.
//! let id_signature = sign::client_id_signature(&key, HashAlgorithm::Sha256, &id)?;
//! assert_eq!(id_signature.len(), 2 * 256);
//! let blob = key.public_key_blob();
//! assert_eq!(&blob[..12], b"\x06\x02\x00\x00\x00\xA4\x00\x00RSA1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::str::FromStr;

use cmmp_model::value::{HexBytes, IsoTime, SmsId, ValueError};
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::x509::X509Ref;

mod secret;

pub use self::secret::{SecretBytes, SecretString};

/// The hash of an MP signature: a per-site setting (protocol §3.2, §3.3; field notes §2.1).
///
/// On the wire it appears as the `HashAlgorithm` property of the `clientauth` hook and as
/// `Data/@HashAlgorithm` of a registration request, both holding the signature algorithm OID
/// of the signing certificate; an absent property means SHA-1 ("legacy" mode).
///
/// # Examples
///
/// ```
/// use cmmp_transport::sign::HashAlgorithm;
///
/// assert_eq!(HashAlgorithm::Sha256.oid(), Some("1.2.840.113549.1.1.11"));
/// assert_eq!(HashAlgorithm::Sha1.oid(), None);
/// assert_eq!(HashAlgorithm::from_property(None)?, HashAlgorithm::Sha1);
/// assert_eq!("1.2.840.113549.1.1.11".parse::<HashAlgorithm>()?, HashAlgorithm::Sha256);
/// assert_eq!(HashAlgorithm::default(), HashAlgorithm::Sha256);
/// # Ok::<(), cmmp_transport::sign::SignError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-1: 2007-era clients and "legacy" mode; the property is omitted.
    Sha1,
    /// SHA-256: current clients, announced as `1.2.840.113549.1.1.11`.
    #[default]
    Sha256,
}

impl HashAlgorithm {
    /// The DER `DigestInfo` of `data`'s digest: what PKCS#1 v1.5 signs (RFC 8017 §9.2).
    fn digest_info(self, data: &[u8]) -> Vec<u8> {
        let prefix = self.digest_info_prefix();
        let mut info = Vec::with_capacity(prefix.len() + 32);
        info.extend_from_slice(prefix);
        // The hasher, not the one-shot `sha256()`: OpenSSL 3's `SHA256()` goes through
        // `EVP_Q_digest`, which fetches the algorithm by name and builds a context on every
        // call (the fetch alone was 40 % of the digest of a DDR's payload in the emulator's
        // profile).
        match self {
            Self::Sha1 => {
                let mut hasher = openssl::sha::Sha1::new();
                hasher.update(data);
                info.extend_from_slice(&hasher.finish());
            }
            Self::Sha256 => {
                let mut hasher = openssl::sha::Sha256::new();
                hasher.update(data);
                info.extend_from_slice(&hasher.finish());
            }
        }
        info
    }

    /// The DER of `DigestInfo` up to the digest (RFC 8017 §9.2, note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Self::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Self::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
        }
    }

    /// `sha1WithRSAEncryption`, accepted when parsing.
    pub const SHA1_WITH_RSA_OID: &'static str = "1.2.840.113549.1.1.5";
    /// `sha256WithRSAEncryption`, the value current clients send (§3.2).
    pub const SHA256_WITH_RSA_OID: &'static str = "1.2.840.113549.1.1.11";

    /// The `HashAlgorithm` property value to send, or `None` when the property is omitted
    /// (SHA-1, as the SDK does in mixed mode; §3.2).
    #[must_use]
    pub const fn oid(self) -> Option<&'static str> {
        match self {
            Self::Sha1 => None,
            Self::Sha256 => Some(Self::SHA256_WITH_RSA_OID),
        }
    }

    /// The hash's display name, `SHA-1` or `SHA-256`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
        }
    }

    /// Parses a `HashAlgorithm` OID: `1.2.840.113549.1.1.11` is SHA-256 and
    /// `1.2.840.113549.1.1.5` is SHA-1 (surrounding white space is ignored).
    ///
    /// # Errors
    ///
    /// [`SignError::UnknownHashAlgorithm`] for any other value.
    pub fn from_oid(oid: &str) -> Result<Self, SignError> {
        match oid.trim() {
            Self::SHA256_WITH_RSA_OID => Ok(Self::Sha256),
            Self::SHA1_WITH_RSA_OID => Ok(Self::Sha1),
            other => Err(SignError::UnknownHashAlgorithm { oid: cut(other) }),
        }
    }

    /// Reads the optional `HashAlgorithm` property or attribute: absent means SHA-1 (§3.2, §4.1.1).
    ///
    /// # Errors
    ///
    /// [`SignError::UnknownHashAlgorithm`] when the value is present but not a known OID.
    pub fn from_property(value: Option<&str>) -> Result<Self, SignError> {
        value.map_or(Ok(Self::Sha1), Self::from_oid)
    }

    /// The hash a certificate is signed with, which the SDK announces as the `HashAlgorithm`
    /// property (§3.2 "the signing certificate's signature algorithm OID").
    ///
    /// # Errors
    ///
    /// [`SignError::UnsupportedCertificateHash`] unless the certificate is signed with
    /// `sha1WithRSAEncryption` or `sha256WithRSAEncryption`.
    pub fn from_certificate(cert: &X509Ref) -> Result<Self, SignError> {
        match cert.signature_algorithm().object().nid() {
            Nid::SHA256WITHRSAENCRYPTION => Ok(Self::Sha256),
            Nid::SHA1WITHRSAENCRYPTION => Ok(Self::Sha1),
            other => Err(SignError::UnsupportedCertificateHash {
                name: other.long_name().map_or_else(
                    |_| cert.signature_algorithm().object().to_string(),
                    str::to_owned,
                ),
            }),
        }
    }

    /// The OpenSSL digest.
    fn digest(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha256 => MessageDigest::sha256(),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = SignError;

    fn from_str(oid: &str) -> Result<Self, SignError> {
        Self::from_oid(oid)
    }
}

/// The two PKCS#1 v1.5 signature encodings the MP protocol uses (§3.2, §3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SignatureFormat {
    /// RSASSA-PKCS1-v1_5 with the DigestInfo (hash OID) of RFC 8017: `clientauth`,
    /// registration and token scheme 1.
    DigestInfo,
    /// PKCS#1 v1.5 type-1 padding over the bare digest, without DigestInfo: CryptoAPI's
    /// `CRYPT_NOHASHOID` (`CryptNoHashId`), token schemes 2 and 3.
    NoHashOid,
}

impl fmt::Display for SignatureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DigestInfo => "RSASSA-PKCS1-v1_5",
            Self::NoHashOid => "RSASSA-PKCS1-v1_5 without DigestInfo (CRYPT_NOHASHOID)",
        })
    }
}

/// A failure to load, use or check an RSA signing key (protocol §3).
///
/// Messages name the hash, the padding and the key's role (field notes §2.1); they never
/// contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The requested RSA key size is outside what this crate generates.
    #[error("RSA-{bits} keys are not supported (sizes from 1024 to 16384 bits, in multiples of 8)")]
    KeySize {
        /// The requested size in bits.
        bits: u32,
    },
    /// OpenSSL failed to generate a key.
    #[error("generating an RSA-{bits} key failed")]
    Generate {
        /// The requested size in bits.
        bits: u32,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// The key is not an RSA key (the MP protocol signs with RSA only).
    #[error("the private key has key type {found}; the MP protocol needs RSA")]
    NotRsa {
        /// The key type OpenSSL reports.
        found: String,
    },
    /// The RSA public exponent does not fit the 32-bit field of a `PUBLICKEYBLOB` (§3.2).
    #[error("the RSA public exponent does not fit the 32-bit field of a PUBLICKEYBLOB")]
    Exponent,
    /// Bytes that are not an RSA `PUBLICKEYBLOB` (§3.2).
    #[error("not an RSA PUBLICKEYBLOB: {reason}")]
    PublicKeyBlob {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The private-key PEM does not parse (or the passphrase is wrong).
    #[error("the PEM does not hold a private key, or the passphrase is wrong")]
    KeyPem {
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// The private-key PEM is encrypted and no passphrase was given.
    #[error("the private key PEM is encrypted; load it with SigningKey::from_pem_with_passphrase")]
    EncryptedKey,
    /// The passphrase holds a NUL byte, which OpenSSL cannot take.
    #[error("the private key passphrase contains a NUL byte")]
    Passphrase,
    /// Encoding the key failed.
    #[error("encoding the private key as {what} failed")]
    Encode {
        /// What was being encoded, e.g. `"PKCS#8 PEM"`.
        what: &'static str,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// OpenSSL failed to sign.
    #[error("{format} {hash} signing with the client signing key failed")]
    Sign {
        /// The hash.
        hash: HashAlgorithm,
        /// The padding.
        format: SignatureFormat,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// The signature does not match the data and public key.
    #[error("{format} {hash} signature (byte-reversed) does not verify with the given public key")]
    BadSignature {
        /// The hash.
        hash: HashAlgorithm,
        /// The padding.
        format: SignatureFormat,
    },
    /// Verification could not run (the public key is unusable).
    #[error("{format} {hash} verification with the given public key could not run")]
    Verify {
        /// The hash.
        hash: HashAlgorithm,
        /// The padding.
        format: SignatureFormat,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// A `HashAlgorithm` value that is neither sha256WithRSAEncryption nor sha1WithRSAEncryption.
    #[error(
        "unknown HashAlgorithm {oid:?}: expected 1.2.840.113549.1.1.11 (sha256WithRSAEncryption) \
         or 1.2.840.113549.1.1.5 (sha1WithRSAEncryption)"
    )]
    UnknownHashAlgorithm {
        /// The value found, cut to at most 64 characters.
        oid: String,
    },
    /// A certificate signed with a hash the MP protocol does not announce.
    #[error(
        "the certificate is signed with {name}; the MP protocol announces only \
         sha256WithRSAEncryption or sha1WithRSAEncryption"
    )]
    UnsupportedCertificateHash {
        /// The certificate's signature algorithm.
        name: String,
    },
}

/// An RSA private key of the client: signs MP messages, and, as the encryption key of an
/// [`Identity`](crate::cert::Identity), decrypts secret policies.
///
/// `Debug` prints the key size only; the PEM export is a [`SecretBytes`] (house style HS-64).
/// The CryptoAPI `PUBLICKEYBLOB` is computed once when the key is loaded. Cloning shares the
/// OpenSSL key (reference-counted), it does not copy key material. Signing is deterministic
/// (PKCS#1 v1.5), so a signature over fixed data such as the client ID can be computed once
/// and reused.
///
/// # Examples
///
/// ```
/// use cmmp_transport::sign::{self, HashAlgorithm, SigningKey};
///
/// let key = SigningKey::generate(2048)?;
/// assert_eq!(format!("{key:?}"), "SigningKey { bits: 2048, key: <redacted> }");
/// let signature = key.sign(HashAlgorithm::Sha256, b"payload")?;
/// sign::verify_reversed(key.pkey(), HashAlgorithm::Sha256, b"payload", &signature)?;
/// # Ok::<(), cmmp_transport::sign::SignError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    /// The key, for EVP signing and CMS.
    pkey: PKey<Private>,
    /// The same key as an RSA object, for the raw (no-DigestInfo) operation.
    rsa: Rsa<Private>,
    /// The CryptoAPI `PUBLICKEYBLOB`.
    blob: Vec<u8>,
}

impl SigningKey {
    /// Generates an RSA key of `bits` bits with public exponent 65537 (§3.4 uses 2048).
    ///
    /// # Errors
    ///
    /// [`SignError::KeySize`] unless `bits` is a multiple of 8 from 1024 to 16384;
    /// [`SignError::Generate`] when OpenSSL fails.
    pub fn generate(bits: u32) -> Result<Self, SignError> {
        if !(MIN_BITS..=MAX_BITS).contains(&bits) || !bits.is_multiple_of(8) {
            return Err(SignError::KeySize { bits });
        }
        let rsa = Rsa::generate(bits).map_err(|source| SignError::Generate { bits, source })?;
        let pkey = PKey::from_rsa(rsa).map_err(|source| SignError::Generate { bits, source })?;
        Self::from_pkey(pkey)
    }

    /// Wraps an OpenSSL private key.
    ///
    /// # Errors
    ///
    /// [`SignError::NotRsa`] when the key is not RSA; [`SignError::Exponent`] when its public
    /// exponent does not fit 32 bits.
    pub fn from_pkey(pkey: PKey<Private>) -> Result<Self, SignError> {
        if pkey.id() != Id::RSA {
            return Err(SignError::NotRsa { found: key_type_name(pkey.id()) });
        }
        let rsa = pkey.rsa().map_err(|_| SignError::NotRsa { found: key_type_name(pkey.id()) })?;
        let blob = public_key_blob(&rsa, pkey.bits())?;
        Ok(Self { pkey, rsa, blob })
    }

    /// Loads an unencrypted PEM private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    ///
    /// The first private key in `pem` is used; other blocks (certificates) are skipped. OpenSSL
    /// never prompts for a passphrase.
    ///
    /// # Errors
    ///
    /// [`SignError::EncryptedKey`] for an encrypted PEM; [`SignError::KeyPem`] when it does not
    /// parse; [`SignError::NotRsa`] and [`SignError::Exponent`] as for [`SigningKey::from_pkey`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignError> {
        // An empty passphrase stops OpenSSL's default callback from prompting on the terminal.
        match PKey::private_key_from_pem_passphrase(pem, b"") {
            Ok(pkey) => Self::from_pkey(pkey),
            Err(_) if is_encrypted_pem(pem) => Err(SignError::EncryptedKey),
            Err(source) => Err(SignError::KeyPem { source }),
        }
    }

    /// Loads a PEM private key that may be encrypted with `passphrase`.
    ///
    /// # Errors
    ///
    /// [`SignError::Passphrase`] when `passphrase` contains a NUL byte; [`SignError::KeyPem`]
    /// when the PEM does not parse or the passphrase is wrong; [`SignError::NotRsa`] and
    /// [`SignError::Exponent`] as for [`SigningKey::from_pkey`].
    pub fn from_pem_with_passphrase(pem: &[u8], passphrase: &[u8]) -> Result<Self, SignError> {
        if passphrase.contains(&0) {
            return Err(SignError::Passphrase);
        }
        let pkey = PKey::private_key_from_pem_passphrase(pem, passphrase)
            .map_err(|source| SignError::KeyPem { source })?;
        Self::from_pkey(pkey)
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): secret.
    ///
    /// To store it, prefer [`write_private_key`](crate::cert::write_private_key), which
    /// creates the file with mode 0600.
    ///
    /// # Errors
    ///
    /// [`SignError::Encode`] when OpenSSL fails.
    pub fn to_pem(&self) -> Result<SecretBytes, SignError> {
        self.pkey
            .private_key_to_pem_pkcs8()
            .map(SecretBytes::new)
            .map_err(|source| SignError::Encode { what: "PKCS#8 PEM", source })
    }

    /// The OpenSSL key, for CMS decryption and certificate building.
    #[must_use]
    pub fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }

    /// The public half as an OpenSSL key.
    ///
    /// # Errors
    ///
    /// [`SignError::Encode`] when OpenSSL fails.
    pub fn public_key(&self) -> Result<PKey<Public>, SignError> {
        let encode = |source| SignError::Encode { what: "public key", source };
        let der = self.pkey.public_key_to_der().map_err(encode)?;
        PKey::public_key_from_der(&der).map_err(encode)
    }

    /// The public key as `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo).
    ///
    /// # Errors
    ///
    /// [`SignError::Encode`] when OpenSSL fails.
    pub fn public_key_pem(&self) -> Result<Vec<u8>, SignError> {
        self.pkey
            .public_key_to_pem()
            .map_err(|source| SignError::Encode { what: "public key PEM", source })
    }

    /// The key size in bits (the modulus length).
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    /// Whether `cert` carries this key's public half.
    #[must_use]
    pub fn matches_certificate(&self, cert: &X509Ref) -> bool {
        cert.public_key().is_ok_and(|public| public.public_eq(&self.pkey))
    }

    /// The CryptoAPI `PUBLICKEYBLOB` sent (as upper-case hex) in the `PublicKey` property of
    /// the `clientauth` hook (§3.2).
    ///
    /// Layout: `06 02 00 00` (PUBLICKEYBLOB, version 2) | `00 A4 00 00` (CALG_RSA_KEYX) |
    /// `RSA1` | bit length (u32 LE) | public exponent (u32 LE) | modulus, little-endian, padded
    /// to the key's byte length.
    #[must_use]
    pub fn public_key_blob(&self) -> &[u8] {
        &self.blob
    }

    /// Signs `data` with RSASSA-PKCS1-v1_5 (with DigestInfo) and returns the signature
    /// **byte-reversed**, as CryptoAPI does (§3.2).
    ///
    /// The DigestInfo and digest are built here and padded and signed by the RSA key itself
    /// (`RSA_private_encrypt` with PKCS#1 v1.5 padding, blinding on): the bytes OpenSSL's EVP
    /// signer writes, since it builds the same DigestInfo, without looking the digest and
    /// signature algorithms up in the provider on every call (BENCHMARKS.md).
    ///
    /// # Errors
    ///
    /// [`SignError::Sign`] when OpenSSL fails.
    pub fn sign(&self, hash: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let format = SignatureFormat::DigestInfo;
        let fail = |source| SignError::Sign { hash, format, source };
        self.private_pkcs1_reversed(&hash.digest_info(data)).map_err(fail)
    }

    /// Signs `data` with PKCS#1 v1.5 padding over the bare digest, **without** DigestInfo
    /// (CryptoAPI `CRYPT_NOHASHOID`; token schemes 2 and 3 of §3.7), byte-reversed.
    ///
    /// # Errors
    ///
    /// [`SignError::Sign`] when OpenSSL fails.
    pub fn sign_no_oid(&self, hash: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let format = SignatureFormat::NoHashOid;
        let fail = |source| SignError::Sign { hash, format, source };
        let digest = hash_bytes(hash, data).map_err(fail)?;
        self.private_pkcs1_reversed(&digest).map_err(fail)
    }

    /// The RSA private operation on `message` with PKCS#1 v1.5 type 1 padding, byte-reversed.
    fn private_pkcs1_reversed(&self, message: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let mut signature = vec![0; self.rsa.size() as usize];
        let written = self.rsa.private_encrypt(message, &mut signature, Padding::PKCS1)?;
        signature.truncate(written);
        signature.reverse();
        Ok(signature)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey {{ bits: {}, key: <redacted> }}", self.bits())
    }
}

/// Verifies a byte-reversed RSASSA-PKCS1-v1_5 signature (with DigestInfo) over `data`: MP
/// reply signatures (§3.5), and client signatures in the emulator.
///
/// Pass a certificate's key as `&cert.public_key()?`; a private key works too.
///
/// # Errors
///
/// [`SignError::BadSignature`] when the signature does not match (wrong length included);
/// [`SignError::Verify`] when OpenSSL cannot run the check.
pub fn verify_reversed<T: HasPublic>(
    public: &PKeyRef<T>,
    hash: HashAlgorithm,
    data: &[u8],
    reversed_signature: &[u8],
) -> Result<(), SignError> {
    let format = SignatureFormat::DigestInfo;
    if public.id() != Id::RSA || reversed_signature.len() != public.size() {
        return Err(SignError::BadSignature { hash, format });
    }
    let fail = |source| SignError::Verify { hash, format, source };
    // Encode and compare (RFC 8017 §8.2.2): recover the PKCS#1 v1.5 block with the public
    // key, then compare it whole with the DigestInfo this data must give. The same check as
    // OpenSSL's `EVP_DigestVerify`, without setting up a digest-verify context per message,
    // which cost a third of a verification (an emulator verifies every signed request).
    let rsa = public.rsa().map_err(fail)?;
    let signature: Vec<u8> = reversed_signature.iter().rev().copied().collect();
    let mut recovered = vec![0; signature.len()];
    match rsa.public_decrypt(&signature, &mut recovered, Padding::PKCS1) {
        Ok(len) if recovered.get(..len) == Some(&hash.digest_info(data)[..]) => Ok(()),
        _ => Err(SignError::BadSignature { hash, format }),
    }
}

/// Verifies a byte-reversed PKCS#1 v1.5 signature made without DigestInfo
/// ([`SigningKey::sign_no_oid`]; token schemes 2 and 3 of §3.7).
///
/// # Errors
///
/// [`SignError::BadSignature`] when the signature does not match; [`SignError::Verify`] when
/// the key is not a usable RSA public key.
pub fn verify_reversed_no_oid<T: HasPublic>(
    public: &PKeyRef<T>,
    hash: HashAlgorithm,
    data: &[u8],
    reversed_signature: &[u8],
) -> Result<(), SignError> {
    let format = SignatureFormat::NoHashOid;
    if public.id() != Id::RSA || reversed_signature.len() != public.size() {
        return Err(SignError::BadSignature { hash, format });
    }
    let fail = |source| SignError::Verify { hash, format, source };
    let rsa = public.rsa().map_err(fail)?;
    let digest = hash_bytes(hash, data).map_err(fail)?;
    let signature: Vec<u8> = reversed_signature.iter().rev().copied().collect();
    let mut recovered = vec![0; signature.len()];
    match rsa.public_decrypt(&signature, &mut recovered, Padding::PKCS1) {
        Ok(len) if recovered.get(..len) == Some(&digest[..]) => Ok(()),
        _ => Err(SignError::BadSignature { hash, format }),
    }
}

/// Upper-case hex without separators, as every MP hex field is written (§7).
///
/// # Examples
///
/// ```
/// assert_eq!(cmmp_transport::sign::hex_upper(&[0x0A, 0xFF]), "0AFF");
/// ```
#[must_use]
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    out
}

/// Parses hex of either case (surrounding XML white space ignored), as
/// [`HexBytes`] does.
///
/// # Errors
///
/// A [`ValueError`] for an odd number of digits or a non-hex character.
pub fn from_hex(text: &str) -> Result<Vec<u8>, ValueError> {
    text.parse::<HexBytes>().map(HexBytes::into_inner)
}

/// The `ClientIDSignature` property of the `clientauth` hook (§3.2):
/// `HEX(reverse(sign(UTF16LE("GUID:<UPPER-CASE GUID>") || 00 00)))`.
///
/// The value depends only on the key, the hash and the ID (PKCS#1 v1.5 is deterministic):
/// compute it once per client and reuse it for every message.
///
/// # Errors
///
/// [`SignError::Sign`] when OpenSSL fails.
pub fn client_id_signature(
    key: &SigningKey,
    hash: HashAlgorithm,
    sms_id: &SmsId,
) -> Result<String, SignError> {
    key.sign(hash, &utf16le_nul(&sms_id.to_string())).map(|s| hex_upper(&s))
}

/// The `PayloadSignature` property of the `clientauth` hook (§3.2) over exactly the bytes of
/// the octet-stream part: the **compressed** payload when `zlib-compress` is used, before any
/// encryption.
///
/// # Errors
///
/// [`SignError::Sign`] when OpenSSL fails.
pub fn payload_signature(
    key: &SigningKey,
    hash: HashAlgorithm,
    payload_as_sent: &[u8],
) -> Result<String, SignError> {
    key.sign(hash, payload_as_sent).map(|s| hex_upper(&s))
}

/// The `Signature/SignatureValue` of a `ClientRegistrationRequest` (§3.3): the byte-reversed,
/// upper-case hex signature over the UTF-16LE bytes (no BOM, no NUL) of the exact
/// `<Data …>…</Data>` text as it appears in the message.
///
/// With an ISV proxy, `key` is the proxy's key, which signs for every client it registers
/// (ISV proxy workflow; field notes §5 item 7).
///
/// # Errors
///
/// [`SignError::Sign`] when OpenSSL fails.
pub fn registration_signature(
    key: &SigningKey,
    hash: HashAlgorithm,
    data_element_xml: &str,
) -> Result<String, SignError> {
    key.sign(hash, &utf16le(data_element_xml)).map(|s| hex_upper(&s))
}

/// The header scheme that authenticates a policy-body download (GET `.sms_pol`, §3.7).
///
/// Which scheme a given MP build requires is **\[UNCONFIRMED\]** (§3.7); the scheme is a
/// setting, and the variants form a conformance matrix (field notes §2.1). All schemes sign
/// with SHA-256 and the client's **signing** key (SharpSCCM#39: the encryption key fails).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TokenScheme {
    /// Scheme 1, current third-party implementations: `ClientToken: GUID:<id>;<ts>;2` and
    /// `ClientTokenSignature` with DigestInfo. The default.
    #[default]
    ClientToken,
    /// Scheme 2, SDK 5.2103 and PXEThief: `CCMClientID`, `CCMClientIDSignature`,
    /// `CCMClientTimestamp`, `CCMClientTimestampSignature`, signed without DigestInfo.
    CcmClientHeaders,
    /// Scheme 3, SharpSCCM: `ClientToken: {<id>};<ts>` (braced, no `;2`) and
    /// `ClientTokenSignature` without DigestInfo.
    BracedClientToken,
}

/// The HTTP headers (name, value) that authenticate a policy-body download (§3.7), in the
/// order they are sent.
///
/// Every signature is SHA-256, made with `key` (the client's **signing** key), byte-reversed
/// and upper-case hex, over the UTF-16LE value followed by a 2-byte NUL:
///
/// | Scheme | Headers | Padding |
/// |---|---|---|
/// | [`TokenScheme::ClientToken`] | `ClientToken: GUID:<ID>;<ts>;2`, `ClientTokenSignature` | with DigestInfo |
/// | [`TokenScheme::CcmClientHeaders`] | `CCMClientID: GUID:<ID>`, `CCMClientIDSignature`, `CCMClientTimestamp: <ts>`, `CCMClientTimestampSignature` | without DigestInfo |
/// | [`TokenScheme::BracedClientToken`] | `ClientToken: {<ID>};<ts>`, `ClientTokenSignature` | without DigestInfo |
///
/// `<ID>` is the upper-case GUID and `<ts>` the `yyyy-MM-ddTHH:mm:ssZ` time (§7); use a fresh
/// time for every download (field notes §5 item 6).
///
/// **\[UNCONFIRMED\]** parts: which scheme an MP build requires; for scheme 2, whether the SDK
/// signs the value with the trailing NUL (PXEThief does; the SDK source shows
/// `UTF16LE(value)` only); for scheme 3, the trailing NUL (SharpSCCM's fallback token has
/// one); byte reversal in schemes 2 and 3 follows CryptoAPI's output order.
///
/// # Errors
///
/// [`SignError::Sign`] when OpenSSL fails.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::{IsoTime, SmsId};
/// use cmmp_transport::sign::{self, SigningKey, TokenScheme};
///
/// let key = SigningKey::generate(2048)?;
/// let id: SmsId = "GUID:2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB".parse()?;
/// let ts: IsoTime = "2024-05-01T12:00:00Z".parse()?;
/// let headers = sign::policy_token_headers(&key, TokenScheme::ClientToken, &id, ts)?;
/// assert_eq!(headers[0].0, "ClientToken");
/// assert_eq!(headers[0].1, "GUID:2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB;2024-05-01T12:00:00Z;2");
/// assert_eq!(headers[1].0, "ClientTokenSignature");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn policy_token_headers(
    key: &SigningKey,
    scheme: TokenScheme,
    sms_id: &SmsId,
    timestamp: IsoTime,
) -> Result<Vec<(&'static str, String)>, SignError> {
    let hash = HashAlgorithm::Sha256;
    let with_oid = |value: &str| key.sign(hash, &utf16le_nul(value)).map(|s| hex_upper(&s));
    let no_oid = |value: &str| key.sign_no_oid(hash, &utf16le_nul(value)).map(|s| hex_upper(&s));
    Ok(match scheme {
        TokenScheme::ClientToken => {
            let token = format!("{sms_id};{timestamp};2");
            let signature = with_oid(&token)?;
            vec![("ClientToken", token), ("ClientTokenSignature", signature)]
        }
        TokenScheme::CcmClientHeaders => {
            let id = sms_id.to_string();
            let ts = timestamp.to_string();
            let id_signature = no_oid(&id)?;
            let ts_signature = no_oid(&ts)?;
            vec![
                ("CCMClientID", id),
                ("CCMClientIDSignature", id_signature),
                ("CCMClientTimestamp", ts),
                ("CCMClientTimestampSignature", ts_signature),
            ]
        }
        TokenScheme::BracedClientToken => {
            let guid = sms_id.to_string();
            // `SmsId`'s canonical form is always `GUID:` and the GUID.
            let bare = guid.strip_prefix("GUID:").unwrap_or(&guid);
            let token = format!("{{{bare}}};{timestamp}");
            let signature = no_oid(&token)?;
            vec![("ClientToken", token), ("ClientTokenSignature", signature)]
        }
    })
}

/// UTF-16LE code units of `text`, no BOM, no NUL.
fn utf16le(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// UTF-16LE code units of `text` followed by a 2-byte NUL.
fn utf16le_nul(text: &str) -> Vec<u8> {
    let mut out = utf16le(text);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The digest of `data`.
fn hash_bytes(hash: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    openssl::hash::hash(hash.digest(), data).map(|digest| digest.to_vec())
}

/// Builds the CryptoAPI `PUBLICKEYBLOB` of `rsa` (§3.2).
fn public_key_blob(rsa: &Rsa<Private>, bits: u32) -> Result<Vec<u8>, SignError> {
    let exponent = rsa.e().to_vec();
    if exponent.len() > 4 {
        return Err(SignError::Exponent);
    }
    let mut e = [0u8; 4];
    for (slot, byte) in e.iter_mut().zip(exponent.iter().rev()) {
        *slot = *byte;
    }
    let modulus = rsa.n().to_vec();
    let width = (rsa.size() as usize).max(modulus.len());
    let mut blob = Vec::with_capacity(20 + width);
    blob.extend_from_slice(&BLOB_HEADER);
    blob.extend_from_slice(b"RSA1");
    blob.extend_from_slice(&bits.to_le_bytes());
    blob.extend_from_slice(&e);
    blob.extend(modulus.iter().rev());
    blob.resize(20 + width, 0);
    Ok(blob)
}

/// The RSA public key of a CryptoAPI `PUBLICKEYBLOB` (§3.2): what
/// [`SigningKey::public_key_blob`] writes and the `PublicKey` property of a `clientauth` hook
/// carries. `06 02 00 00`, an algorithm ID (any), `RSA1`, the bit length and the public
/// exponent (u32 little-endian), then the modulus, little-endian.
///
/// # Errors
///
/// [`SignError::PublicKeyBlob`] for another header, a modulus shorter than the bit length
/// says, bytes after it, or numbers OpenSSL refuses.
///
/// ```
/// # fn main() -> Result<(), cmmp_transport::sign::SignError> {
/// use cmmp_transport::sign::{SigningKey, public_key_from_blob};
///
/// let key = SigningKey::generate(1024)?;
/// let public = public_key_from_blob(key.public_key_blob())?;
/// assert!(public.public_eq(&*key.public_key()?));
/// # Ok(())
/// # }
/// ```
pub fn public_key_from_blob(blob: &[u8]) -> Result<PKey<Public>, SignError> {
    let fail = |reason| SignError::PublicKeyBlob { reason };
    let head = blob.get(..20).ok_or(fail("shorter than its 20-byte header"))?;
    if head[..4] != BLOB_HEADER[..4] || &head[8..12] != b"RSA1" {
        return Err(fail("the header is not PUBLICKEYBLOB version 2 with RSA1"));
    }
    let word = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let (bits, exponent) = (word(12), word(16));
    let len = usize::try_from(bits.div_ceil(8)).map_err(|_| fail("an impossible bit length"))?;
    let modulus = &blob[20..];
    if bits == 0 || modulus.len() != len {
        return Err(fail("the modulus is not as long as the bit length says"));
    }
    let big_endian: Vec<u8> = modulus.iter().rev().copied().collect();
    let number =
        |bytes: &[u8]| BigNum::from_slice(bytes).map_err(|_| fail("a number OpenSSL refuses"));
    let rsa = Rsa::from_public_components(number(&big_endian)?, number(&exponent.to_be_bytes())?)
        .map_err(|_| fail("a key OpenSSL refuses"))?;
    PKey::from_rsa(rsa).map_err(|_| fail("a key OpenSSL refuses"))
}

/// Whether a PEM that failed to load is an encrypted private key.
fn is_encrypted_pem(pem: &[u8]) -> bool {
    const MARKERS: [&[u8]; 2] = [b"BEGIN ENCRYPTED PRIVATE KEY", b"Proc-Type: 4,ENCRYPTED"];
    MARKERS.iter().any(|marker| pem.windows(marker.len()).any(|window| window == *marker))
}

/// A readable name for an OpenSSL key type.
fn key_type_name(id: Id) -> String {
    match id {
        Id::EC => "EC".to_owned(),
        Id::DSA => "DSA".to_owned(),
        Id::DH => "DH".to_owned(),
        Id::ED25519 => "Ed25519".to_owned(),
        Id::ED448 => "Ed448".to_owned(),
        Id::RSA_PSS => "RSA-PSS".to_owned(),
        other => format!("type {}", other.as_raw()),
    }
}

/// Cuts untrusted text for an error message to at most [`ValueError::MAX_FOUND_CHARS`] chars.
fn cut(text: &str) -> String {
    ValueError::new("", "", text).found
}

/// `PUBLICKEYBLOB`, version 2, reserved, `CALG_RSA_KEYX` (§3.2).
const BLOB_HEADER: [u8; 8] = [0x06, 0x02, 0x00, 0x00, 0x00, 0xA4, 0x00, 0x00];

/// The smallest key [`SigningKey::generate`] makes.
const MIN_BITS: u32 = 1024;

/// The largest key [`SigningKey::generate`] makes.
const MAX_BITS: u32 = 16384;

#[cfg(test)]
mod tests {
    use openssl::pkey::{PKey, Public};
    use openssl::sign::{Signer, Verifier};

    use super::{
        HashAlgorithm, SignError, SigningKey, hex_upper, is_encrypted_pem, public_key_from_blob,
        utf16le, utf16le_nul, verify_reversed,
    };

    /// The key of the golden wire files (`tests/wire/test-key.pem`).
    fn test_key() -> SigningKey {
        let pem = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wire/test-key.pem"),
        )
        .unwrap();
        SigningKey::from_pem(&pem).unwrap()
    }

    #[test]
    fn a_public_key_blob_reads_back_to_the_same_key_and_nothing_else_does() {
        let key = test_key();
        let blob = key.public_key_blob();
        assert!(public_key_from_blob(blob).unwrap().public_eq(&key.public_key().unwrap()));
        let refused = |bytes: &[u8]| {
            matches!(public_key_from_blob(bytes), Err(SignError::PublicKeyBlob { .. }))
        };
        assert!(refused(&blob[..19]), "short header");
        assert!(refused(&blob[..blob.len() - 1]), "short modulus");
        assert!(refused(&[blob, &[0][..]].concat()), "a byte after the modulus");
        let mut other = blob.to_vec();
        other[8..12].copy_from_slice(b"RSA2");
        assert!(refused(&other), "a private-key blob magic");
        assert!(refused(b"not a blob at all, really"));
    }

    /// The encode-and-compare check gives OpenSSL's `EVP_DigestVerify` answer for good
    /// signatures, signatures of other data, flipped bits, signatures without DigestInfo or
    /// with the other hash, and a key of another size.
    #[test]
    fn verify_reversed_agrees_with_openssl_digest_verify() {
        let key = test_key();
        let public = key.public_key().unwrap();
        let small = SigningKey::generate(1024).unwrap().public_key().unwrap();
        let openssl = |public: &PKey<Public>, hash: HashAlgorithm, data: &[u8], reversed: &[u8]| {
            let signature: Vec<u8> = reversed.iter().rev().copied().collect();
            Verifier::new(hash.digest(), public)
                .unwrap()
                .verify_oneshot(&signature, data)
                .unwrap_or(false)
        };
        let data = b"<Report>payload as sent</Report>".as_slice();
        for hash in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
            let other = match hash {
                HashAlgorithm::Sha1 => HashAlgorithm::Sha256,
                HashAlgorithm::Sha256 => HashAlgorithm::Sha1,
            };
            let good = key.sign(hash, data).unwrap();
            let mut cases = vec![
                (good.clone(), data, true),
                (good.clone(), &data[1..], false),
                (key.sign(other, data).unwrap(), data, false),
                (key.sign_no_oid(hash, data).unwrap(), data, false),
                (good[1..].to_vec(), data, false),
            ];
            for at in [0, 1, 100, good.len() - 1] {
                let mut flipped = good.clone();
                flipped[at] ^= 0x01;
                cases.push((flipped, data, false));
            }
            for (signature, signed, expected) in cases {
                let ours = verify_reversed(&public, hash, signed, &signature);
                assert_eq!(ours.is_ok(), expected, "{hash:?}");
                assert_eq!(openssl(&public, hash, signed, &signature), expected, "{hash:?}");
                if !expected {
                    assert!(matches!(ours, Err(SignError::BadSignature { .. })), "{ours:?}");
                }
            }
            assert!(matches!(
                verify_reversed(&small, hash, data, &good),
                Err(SignError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn utf16_helpers_have_no_bom_and_one_nul() {
        assert_eq!(utf16le("G\u{e9}"), [0x47, 0x00, 0xE9, 0x00]);
        assert_eq!(utf16le_nul("A"), [0x41, 0x00, 0x00, 0x00]);
        assert_eq!(utf16le("\u{1F600}"), [0x3D, 0xD8, 0x00, 0xDE]);
    }

    #[test]
    fn hash_algorithm_oids() {
        assert_eq!(
            HashAlgorithm::from_oid(" 1.2.840.113549.1.1.11 ").ok(),
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(HashAlgorithm::from_oid("1.2.840.113549.1.1.5").ok(), Some(HashAlgorithm::Sha1));
        let long = "9".repeat(500);
        let err = HashAlgorithm::from_oid(&long).unwrap_err();
        assert!(
            matches!(&err, SignError::UnknownHashAlgorithm { oid } if oid.chars().count() <= 64)
        );
        assert!(err.to_string().contains("1.2.840.113549.1.1.11"), "{err}");
    }

    proptest::proptest! {
        /// `sign` (DigestInfo built here, raw RSA operation) writes exactly what OpenSSL's
        /// EVP signer writes, byte-reversed, for both hashes and any data.
        #[test]
        fn sign_agrees_with_the_evp_signer(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            sha1 in proptest::bool::ANY,
        ) {
            let key = test_key();
            let hash = if sha1 { HashAlgorithm::Sha1 } else { HashAlgorithm::Sha256 };
            let mut evp = Signer::new(hash.digest(), key.pkey()).unwrap();
            let mut expected = evp.sign_oneshot_to_vec(&data).unwrap();
            expected.reverse();
            proptest::prop_assert_eq!(key.sign(hash, &data).unwrap(), expected);
        }
    }

    #[test]
    fn hex_is_upper_case() {
        assert_eq!(hex_upper(&[]), "");
        assert_eq!(hex_upper(&[0x00, 0xAB, 0x7F]), "00AB7F");
    }

    #[test]
    fn detects_encrypted_pem() {
        assert!(is_encrypted_pem(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(is_encrypted_pem(b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"));
        assert!(!is_encrypted_pem(b"-----BEGIN PRIVATE KEY-----\n"));
    }
}
