//! `cmmp identity`: the signing and encryption identity a client or ISV proxy registers with.
//!
//! A directory holds `signing.pem` + `signing.key` and `encryption.pem` + `encryption.key`
//! (PEM; key files are created with mode 0600 and never overwritten).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cmmp_transport::cert::{Identity, generate_mixed_mode, read_private_key, write_private_key};
use cmmp_transport::sign::SecretString;

use crate::Error;

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|e| Error::Io(path.display().to_string(), e))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Io(path.display().to_string(), e))
}

/// Where a new identity comes from.
pub(crate) enum Source {
    /// A mixed-mode self-signed identity, generated.
    Generate,
    /// A PKI certificate and its key, PEM.
    Pem { cert: PathBuf, key: PathBuf },
    /// A PKI certificate and its key in a PKCS#12 archive.
    Pkcs12 { archive: PathBuf, password: SecretString },
}

/// Creates a mixed-mode self-signed identity in `dir`, or imports a PKI certificate and key.
pub(crate) fn create(dir: &Path, subject: &str, source: Source) -> Result<Identity, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.display().to_string(), e))?;
    // Never replace part of an existing identity.
    for name in ["signing.pem", "signing.key", "encryption.pem", "encryption.key"] {
        let path = dir.join(name);
        if path.exists() {
            let e = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "an identity already exists here; use another --dir",
            );
            return Err(Error::Io(path.display().to_string(), e));
        }
    }
    let identity = match source {
        Source::Pem { cert, key } => Identity::from_pem(&read(&cert)?, &read(&key)?)?,
        Source::Pkcs12 { archive, password } => {
            Identity::from_pkcs12(&read(&archive)?, password.expose()).map_err(|e| {
                Error::Input {
                    path: archive.display().to_string(),
                    message: format!("{e} (the password comes from CMMP_PKCS12_PASSWORD)"),
                }
            })?
        }
        Source::Generate => generate_mixed_mode(subject, SystemTime::now())?,
    };
    for (name, cert, key) in [
        ("signing", identity.signing_cert(), identity.signing_key()),
        ("encryption", identity.encryption_cert(), identity.encryption_key()),
    ] {
        let pem = cert
            .to_pem()
            .map_err(|e| Error::Io(format!("{name} certificate"), std::io::Error::other(e)))?;
        write(&dir.join(format!("{name}.pem")), &pem)?;
        let key_path = dir.join(format!("{name}.key"));
        write_private_key(&key_path, key)
            .map_err(|e| Error::Io(key_path.display().to_string(), e))?;
    }
    Ok(identity)
}

/// Loads the identity in `dir`.
pub(crate) fn load(dir: &Path) -> Result<Identity, Error> {
    let signing = read_private_key(&dir.join("signing.key"))?;
    let encryption = read_private_key(&dir.join("encryption.key"))?;
    let cert = |name: &str| -> Result<openssl::x509::X509, Error> {
        let path = dir.join(name);
        openssl::x509::X509::from_pem(&read(&path)?)
            .map_err(|e| Error::Io(path.display().to_string(), std::io::Error::other(e)))
    };
    Ok(Identity::new(signing, cert("signing.pem")?, encryption, cert("encryption.pem")?)?)
}

/// A one-screen description of an identity.
pub(crate) fn describe(identity: &Identity) -> String {
    let subject = |c: &openssl::x509::X509| {
        c.subject_name()
            .entries()
            .filter_map(|e| e.data().to_string().ok())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "signing certificate:    {} (KeyType {}, {} bytes DER, expires {})\nencryption certificate: {} (KeyType {}, {} bytes DER)",
        subject(identity.signing_cert()),
        identity.signing_key_type().value(),
        identity.signing_cert_der().len(),
        identity.signing_cert().not_after(),
        subject(identity.encryption_cert()),
        identity.encryption_key_type().value(),
        identity.encryption_cert_der().len(),
    )
}
