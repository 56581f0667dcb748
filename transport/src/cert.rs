//! Client certificates: the self-signed mixed-mode pair, PKI material for native mode, and
//! private-key files (protocol §3.4).
//!
//! An [`Identity`] holds a signing role and an encryption role, each an RSA key with its
//! certificate. The real client keeps two certificates, one per role; third-party
//! implementations register one certificate for both, and so does PKI material loaded from
//! PEM or PKCS#12 ([`Identity::single`]). Loading always checks that each key matches its
//! certificate, and a mismatch names the role (field notes §2.1). The certificates go into a
//! registration request as upper-case hex of their DER, with `KeyType` 1 (self-signed) or 2
//! (PKI-issued) (§3.4, §4.1.1).
//!
//! # Examples
//!
//! ```
//! use std::time::SystemTime;
//!
//! use cmmp_transport::cert::{self, KeyType};
//!
//! let identity = cert::generate_mixed_mode("ConfigMgr Client", SystemTime::now())?;
//! assert_eq!(identity.signing_key_type(), KeyType::SelfSigned);
//! assert_eq!(identity.signing_key_type().value(), 1);
//! assert!(!identity.signing_cert_der().is_empty());
//! # Ok::<(), cmmp_transport::cert::CertError>(())
//! ```

use core::cmp::Ordering;
use core::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Ref};

use crate::sign::{HashAlgorithm, SecretBytes, SignError, SigningKey};

/// The role a key and certificate play for the client (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CertRole {
    /// Signs messages, registration requests and tokens (EKU `1.3.6.1.4.1.311.101`).
    Signing,
    /// Receives secret policies (EKU `1.3.6.1.4.1.311.101.2`).
    Encryption,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signing => "signing",
            Self::Encryption => "encryption",
        })
    }
}

/// The `KeyType` attribute of a registration certificate (§3.4, §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyType {
    /// `1`: a self-signed certificate (mixed mode).
    SelfSigned,
    /// `2`: a certificate issued by a PKI (native mode).
    Pki,
}

impl KeyType {
    /// The attribute value, `1` or `2`.
    #[must_use]
    pub const fn value(self) -> u8 {
        match self {
            Self::SelfSigned => 1,
            Self::Pki => 2,
        }
    }

    /// The key type of `cert`, as the SDK computes it (`IsSelfSigned ? 1 : 2`, §3.4).
    #[must_use]
    pub fn of(cert: &X509Ref) -> Self {
        if is_self_signed(cert) { Self::SelfSigned } else { Self::Pki }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// A failure to generate, load or store client certificates and keys (§3.4).
///
/// Messages name the role (signing or encryption) and the format involved; they never contain
/// key material or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The subject common name is unusable.
    #[error("the {role} certificate subject CN is invalid: {reason}")]
    Subject {
        /// The certificate being built.
        role: CertRole,
        /// Why the CN was rejected.
        reason: &'static str,
    },
    /// The clock is before 1970 or too far in the future for a certificate validity.
    #[error("the system time cannot be used for a certificate validity period")]
    Clock,
    /// A key operation failed (generation, format, signing).
    #[error("the {role} key: {source}")]
    Key {
        /// The key's role.
        role: CertRole,
        /// The underlying error.
        #[source]
        source: SignError,
    },
    /// OpenSSL failed while building a certificate.
    #[error("building the self-signed sha256WithRSAEncryption {role} certificate failed")]
    Build {
        /// The certificate being built.
        role: CertRole,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// A certificate does not parse.
    #[error("the {role} certificate does not parse as {format}")]
    Parse {
        /// The certificate's role.
        role: CertRole,
        /// The expected format, e.g. `"PEM X.509"`.
        format: &'static str,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// DER-encoding a certificate failed.
    #[error("DER-encoding the {role} certificate failed")]
    Encode {
        /// The certificate's role.
        role: CertRole,
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// The private key does not belong to the certificate.
    #[error("the {role} private key does not match the {role} certificate's public key")]
    KeyMismatch {
        /// The role whose pair does not match.
        role: CertRole,
    },
    /// The PKCS#12 archive does not parse or the password is wrong.
    #[error(
        "the PKCS#12 archive does not parse or the password is wrong (archives protected with \
         RC2 or 3DES, as older Windows exports are, need OpenSSL's legacy provider)"
    )]
    Pkcs12 {
        /// OpenSSL's error.
        #[source]
        source: ErrorStack,
    },
    /// The PKCS#12 password holds a NUL byte, which OpenSSL cannot take.
    #[error("the PKCS#12 password contains a NUL byte")]
    Pkcs12Password,
    /// The PKCS#12 archive lacks the private key or the certificate.
    #[error("the PKCS#12 archive holds no {what} for the signing role")]
    Pkcs12Missing {
        /// `"private key"` or `"certificate"`.
        what: &'static str,
    },
    /// A key file could not be read.
    #[error("reading the private key file {path:?} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A key file is readable by group or others.
    #[error(
        "the private key file {path:?} has mode {mode:04o}; it must not be accessible to group \
         or others (chmod 600)"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The client's keys and certificates: a signing role and an encryption role (§3.4).
///
/// Both roles may share one key pair and certificate, as third-party implementations and PKI
/// material do; the real client has two. The DER of each certificate and its [`KeyType`] are
/// computed once, at construction. `Debug` shows the subjects and key types, never the keys.
pub struct Identity {
    /// The signing key.
    signing_key: SigningKey,
    /// The signing certificate.
    signing_cert: X509,
    /// DER of the signing certificate.
    signing_der: Vec<u8>,
    /// The encryption key.
    encryption_key: SigningKey,
    /// The encryption certificate.
    encryption_cert: X509,
    /// DER of the encryption certificate.
    encryption_der: Vec<u8>,
}

impl Identity {
    /// Builds an identity from a pair per role.
    ///
    /// # Errors
    ///
    /// [`CertError::KeyMismatch`] naming the role whose key does not match its certificate;
    /// [`CertError::Encode`] when a certificate cannot be DER-encoded.
    pub fn new(
        signing_key: SigningKey,
        signing_cert: X509,
        encryption_key: SigningKey,
        encryption_cert: X509,
    ) -> Result<Self, CertError> {
        check_pair(CertRole::Signing, &signing_key, &signing_cert)?;
        check_pair(CertRole::Encryption, &encryption_key, &encryption_cert)?;
        let signing_der = der(CertRole::Signing, &signing_cert)?;
        let encryption_der = der(CertRole::Encryption, &encryption_cert)?;
        Ok(Self {
            signing_key,
            signing_cert,
            signing_der,
            encryption_key,
            encryption_cert,
            encryption_der,
        })
    }

    /// Builds an identity whose one key and certificate serve both roles.
    ///
    /// # Errors
    ///
    /// [`CertError::KeyMismatch`] (role signing) when the key does not match the certificate;
    /// [`CertError::Encode`] when the certificate cannot be DER-encoded.
    pub fn single(key: SigningKey, cert: X509) -> Result<Self, CertError> {
        check_pair(CertRole::Signing, &key, &cert)?;
        let der = der(CertRole::Signing, &cert)?;
        Ok(Self {
            signing_key: key.clone(),
            signing_cert: cert.clone(),
            signing_der: der.clone(),
            encryption_key: key,
            encryption_cert: cert,
            encryption_der: der,
        })
    }

    /// Loads PKI material (native mode, §3.4) from a PEM certificate and an unencrypted PEM
    /// private key; the one pair serves both roles.
    ///
    /// The first certificate in `cert_pem` is the client's; a chain after it is ignored.
    ///
    /// # Errors
    ///
    /// [`CertError::Parse`] when the certificate does not parse; [`CertError::Key`] when the
    /// key does not parse, is encrypted or is not RSA; [`CertError::KeyMismatch`] when they do
    /// not belong together.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertError> {
        let cert = X509::from_pem(cert_pem).map_err(|source| CertError::Parse {
            role: CertRole::Signing,
            format: "PEM X.509",
            source,
        })?;
        let key = SigningKey::from_pem(key_pem)
            .map_err(|source| CertError::Key { role: CertRole::Signing, source })?;
        Self::single(key, cert)
    }

    /// Loads PKI material from a DER PKCS#12 (`.pfx`) archive protected by `password`; the
    /// archive's key and certificate serve both roles.
    ///
    /// Archives using RC2 or 3DES (older Windows exports) need OpenSSL's legacy provider,
    /// which this crate does not load.
    ///
    /// # Errors
    ///
    /// [`CertError::Pkcs12Password`] when `password` contains a NUL byte;
    /// [`CertError::Pkcs12`] when the archive does not parse or the password is wrong;
    /// [`CertError::Pkcs12Missing`] when it lacks a key or certificate; [`CertError::Key`]
    /// when the key is not RSA; [`CertError::KeyMismatch`] when they do not belong together.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, CertError> {
        if password.contains('\0') {
            return Err(CertError::Pkcs12Password);
        }
        let archive = Pkcs12::from_der(der).map_err(|source| CertError::Pkcs12 { source })?;
        let parsed = archive.parse2(password).map_err(|source| CertError::Pkcs12 { source })?;
        let Some(pkey) = parsed.pkey else {
            return Err(CertError::Pkcs12Missing { what: "private key" });
        };
        let Some(cert) = parsed.cert else {
            return Err(CertError::Pkcs12Missing { what: "certificate" });
        };
        let key = SigningKey::from_pkey(pkey)
            .map_err(|source| CertError::Key { role: CertRole::Signing, source })?;
        Self::single(key, cert)
    }

    /// The signing key (`clientauth`, registration and token signatures).
    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The signing certificate.
    #[must_use]
    pub fn signing_cert(&self) -> &X509 {
        &self.signing_cert
    }

    /// DER of the signing certificate (sent as hex in `Certificates/Signing`, §4.1.1).
    #[must_use]
    pub fn signing_cert_der(&self) -> &[u8] {
        &self.signing_der
    }

    /// `KeyType` of the signing certificate.
    #[must_use]
    pub fn signing_key_type(&self) -> KeyType {
        KeyType::of(&self.signing_cert)
    }

    /// The encryption key (decrypts secret policies, §3.8).
    #[must_use]
    pub fn encryption_key(&self) -> &SigningKey {
        &self.encryption_key
    }

    /// The encryption certificate.
    #[must_use]
    pub fn encryption_cert(&self) -> &X509 {
        &self.encryption_cert
    }

    /// DER of the encryption certificate (sent as hex in `Certificates/Encryption`, §4.1.1).
    #[must_use]
    pub fn encryption_cert_der(&self) -> &[u8] {
        &self.encryption_der
    }

    /// `KeyType` of the encryption certificate.
    #[must_use]
    pub fn encryption_key_type(&self) -> KeyType {
        KeyType::of(&self.encryption_cert)
    }

    /// Whether one certificate serves both roles.
    #[must_use]
    pub fn is_single(&self) -> bool {
        self.signing_der == self.encryption_der
    }

    /// The hash to announce in `HashAlgorithm`: the signing certificate's signature hash (§3.2).
    ///
    /// # Errors
    ///
    /// [`CertError::Key`] (role signing) wrapping [`SignError::UnsupportedCertificateHash`]
    /// when the certificate is signed with neither SHA-1 nor SHA-256 RSA.
    pub fn hash_algorithm(&self) -> Result<HashAlgorithm, CertError> {
        HashAlgorithm::from_certificate(&self.signing_cert)
            .map_err(|source| CertError::Key { role: CertRole::Signing, source })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("signing_subject", &subject(&self.signing_cert))
            .field("signing_key_type", &self.signing_key_type())
            .field("signing_key", &self.signing_key)
            .field("encryption_subject", &subject(&self.encryption_cert))
            .field("encryption_key_type", &self.encryption_key_type())
            .field("encryption_key", &self.encryption_key)
            .finish()
    }
}

/// Generates the mixed-mode identity a real client has (§3.4): two RSA-2048 keys (e = 65537),
/// each with a self-signed sha256WithRSAEncryption certificate `CN=<subject_cn>`, valid from
/// `now` − 2 days to `now` + 365 days, with a random 127-bit serial.
///
/// | Certificate | KeyUsage (non-critical) | ExtendedKeyUsage (non-critical) |
/// |---|---|---|
/// | signing | digitalSignature, dataEncipherment | `1.3.6.1.4.1.311.101` (SMS signing) |
/// | encryption | digitalSignature, keyEncipherment, dataEncipherment | `1.3.6.1.4.1.311.101.2` (SMS encryption) |
///
/// The MP does not check the subject (\[inferred\], §3.4): `ConfigMgr Client` is what
/// third-party implementations use.
///
/// # Errors
///
/// [`CertError::Subject`] when `subject_cn` is empty, longer than 64 characters or holds a
/// control character; [`CertError::Clock`] when `now` is before 1970; [`CertError::Key`] or
/// [`CertError::Build`] when OpenSSL fails.
pub fn generate_mixed_mode(subject_cn: &str, now: SystemTime) -> Result<Identity, CertError> {
    let now = unix_seconds(now)?;
    let signing_key = generate_key(CertRole::Signing)?;
    let encryption_key = generate_key(CertRole::Encryption)?;
    let signing_cert = self_signed(CertRole::Signing, &signing_key, subject_cn, now, false)?;
    let encryption_cert =
        self_signed(CertRole::Encryption, &encryption_key, subject_cn, now, false)?;
    Identity::new(signing_key, signing_cert, encryption_key, encryption_cert)
}

/// Generates the one-certificate identity third-party implementations register (§3.4): one
/// RSA-2048 key and one self-signed certificate with KeyUsage digitalSignature,
/// keyEncipherment, dataEncipherment and both EKUs, `1.3.6.1.4.1.311.101` and
/// `1.3.6.1.4.1.311.101.2`; otherwise as [`generate_mixed_mode`].
///
/// # Errors
///
/// As [`generate_mixed_mode`].
pub fn generate_mixed_mode_single(
    subject_cn: &str,
    now: SystemTime,
) -> Result<Identity, CertError> {
    let now = unix_seconds(now)?;
    let key = generate_key(CertRole::Signing)?;
    let cert = self_signed(CertRole::Signing, &key, subject_cn, now, true)?;
    Identity::single(key, cert)
}

/// Whether `cert` is self-signed: its subject equals its issuer and its own public key
/// verifies its signature (the SDK's `IsSelfSigned`, §3.4).
#[must_use]
pub fn is_self_signed(cert: &X509Ref) -> bool {
    let same_name = matches!(cert.subject_name().try_cmp(cert.issuer_name()), Ok(Ordering::Equal));
    same_name && cert.public_key().is_ok_and(|public| cert.verify(&public).unwrap_or(false))
}

/// Writes `key` as unencrypted PKCS#8 PEM to a **new** file created with mode 0600.
///
/// The file must not exist: the call never truncates or follows an existing file, so an
/// existing key (or a planted symlink) is left alone and the call fails with
/// [`io::ErrorKind::AlreadyExists`]. On Unix the mode is set at creation (`O_CREAT` with
/// 0600) and again explicitly, so the umask cannot widen or narrow it. When writing fails
/// after creation, the partial file is removed.
///
/// # Errors
///
/// Any I/O error, [`io::ErrorKind::AlreadyExists`] included; a PEM-encoding failure is
/// reported as [`io::ErrorKind::Other`].
pub fn write_private_key(path: &Path, key: &SigningKey) -> io::Result<()> {
    let pem = key.to_pem().map_err(io::Error::other)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    let written = fill_key_file(file, pem.expose());
    if written.is_err() {
        // Best effort: the partial file holds part of a key; the write error is what matters.
        let _ = fs::remove_file(path);
    }
    written
}

/// Reads a private key written by [`write_private_key`] (or any unencrypted PEM RSA key).
///
/// On Unix the file must not be accessible to group or others (as OpenSSH requires of its
/// keys).
///
/// # Errors
///
/// [`CertError::Io`] when the file cannot be read; [`CertError::KeyFilePermissions`] when its
/// mode allows group or other access; [`CertError::Key`] (role signing) when it does not hold
/// an unencrypted RSA private key.
pub fn read_private_key(path: &Path) -> Result<SigningKey, CertError> {
    let io_error = |source| CertError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(io_error)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CertError::KeyFilePermissions { path: path.to_owned(), mode });
        }
    }
    let mut pem = Vec::new();
    let read = file.read_to_end(&mut pem);
    let pem = SecretBytes::new(pem);
    read.map_err(io_error)?;
    SigningKey::from_pem(pem.expose())
        .map_err(|source| CertError::Key { role: CertRole::Signing, source })
}

/// Sets the mode and writes the PEM into a newly created key file.
fn fill_key_file(mut file: File, pem: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(pem)?;
    file.sync_all()
}

/// Checks that `key` belongs to `cert`.
fn check_pair(role: CertRole, key: &SigningKey, cert: &X509Ref) -> Result<(), CertError> {
    if key.matches_certificate(cert) { Ok(()) } else { Err(CertError::KeyMismatch { role }) }
}

/// DER of `cert`.
fn der(role: CertRole, cert: &X509Ref) -> Result<Vec<u8>, CertError> {
    cert.to_der().map_err(|source| CertError::Encode { role, source })
}

/// The subject as one line, for `Debug`.
fn subject(cert: &X509Ref) -> String {
    let mut out = String::new();
    for entry in cert.subject_name().entries() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(entry.object().nid().short_name().unwrap_or("?"));
        out.push('=');
        match entry.data().to_string() {
            Ok(text) => out.push_str(&text),
            Err(_) => out.push('?'),
        }
    }
    out
}

/// Seconds since the Unix epoch.
fn unix_seconds(now: SystemTime) -> Result<i64, CertError> {
    let seconds = now.duration_since(UNIX_EPOCH).map_err(|_| CertError::Clock)?.as_secs();
    i64::try_from(seconds).map_err(|_| CertError::Clock)
}

/// A fresh RSA-2048 key for `role`.
fn generate_key(role: CertRole) -> Result<SigningKey, CertError> {
    SigningKey::generate(KEY_BITS).map_err(|source| CertError::Key { role, source })
}

/// A self-signed certificate for `role` (both roles when `both`), valid around `now`.
fn self_signed(
    role: CertRole,
    key: &SigningKey,
    subject_cn: &str,
    now: i64,
    both: bool,
) -> Result<X509, CertError> {
    check_cn(role, subject_cn)?;
    let not_before = now.checked_sub(BACKDATE_SECONDS).ok_or(CertError::Clock)?;
    let not_after = now.checked_add(LIFETIME_SECONDS).ok_or(CertError::Clock)?;
    let not_before = Asn1Time::from_unix(not_before).map_err(|_| CertError::Clock)?;
    let not_after = Asn1Time::from_unix(not_after).map_err(|_| CertError::Clock)?;
    let build = |source| CertError::Build { role, source };

    let mut name = X509NameBuilder::new().map_err(build)?;
    name.append_entry_by_nid(Nid::COMMONNAME, subject_cn).map_err(build)?;
    let name = name.build();

    let mut serial = BigNum::new().map_err(build)?;
    serial.rand(SERIAL_BITS, MsbOption::MAYBE_ZERO, false).map_err(build)?;
    if serial.num_bits() == 0 {
        serial = BigNum::from_u32(1).map_err(build)?;
    }
    let serial = serial.to_asn1_integer().map_err(build)?;

    let mut usage = KeyUsage::new();
    usage.digital_signature().data_encipherment();
    let mut eku = ExtendedKeyUsage::new();
    match (role, both) {
        (_, true) => {
            usage.key_encipherment();
            eku.other(SMS_SIGNING_EKU).other(SMS_ENCRYPTION_EKU);
        }
        (CertRole::Signing, false) => {
            eku.other(SMS_SIGNING_EKU);
        }
        (CertRole::Encryption, false) => {
            usage.key_encipherment();
            eku.other(SMS_ENCRYPTION_EKU);
        }
    }

    let mut builder = X509Builder::new().map_err(build)?;
    builder.set_version(2).map_err(build)?;
    builder.set_serial_number(&serial).map_err(build)?;
    builder.set_subject_name(&name).map_err(build)?;
    builder.set_issuer_name(&name).map_err(build)?;
    builder.set_pubkey(key.pkey()).map_err(build)?;
    builder.set_not_before(&not_before).map_err(build)?;
    builder.set_not_after(&not_after).map_err(build)?;
    builder.append_extension(usage.build().map_err(build)?).map_err(build)?;
    builder.append_extension(eku.build().map_err(build)?).map_err(build)?;
    builder.sign(key.pkey(), MessageDigest::sha256()).map_err(build)?;
    Ok(builder.build())
}

/// Rejects a CN that X.509 (ub-common-name) or a log line would not take.
fn check_cn(role: CertRole, cn: &str) -> Result<(), CertError> {
    let reason = if cn.is_empty() {
        "empty"
    } else if cn.chars().count() > 64 {
        "longer than 64 characters"
    } else if cn.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(CertError::Subject { role, reason })
}

/// The key size of generated identities (§3.4).
const KEY_BITS: u32 = 2048;

/// How far before `now` a generated certificate becomes valid (2 days, §3.4).
const BACKDATE_SECONDS: i64 = 2 * 24 * 60 * 60;

/// How long after `now` a generated certificate stays valid (365 days, §3.4).
const LIFETIME_SECONDS: i64 = 365 * 24 * 60 * 60;

/// Serial number size: positive and within RFC 5280's 20 octets.
const SERIAL_BITS: i32 = 127;

/// EKU of the SMS signing certificate (§3.4).
pub const SMS_SIGNING_EKU: &str = "1.3.6.1.4.1.311.101";

/// EKU of the SMS encryption certificate (§3.4).
pub const SMS_ENCRYPTION_EKU: &str = "1.3.6.1.4.1.311.101.2";
