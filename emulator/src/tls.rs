//! The emulator's HTTPS listener settings: the MP's TLS certificate and the roots client
//! certificates must chain to (protocol §3.4 "Native / HTTPS (PKI) mode").
//!
//! An HTTPS MP asks for a TLS client certificate. Over HTTPS, without one, the default
//! `/ccm_system/request` vdir and the `/SMS_MP/` GETs answer **403** "Client certificate
//! required", while the `…_altauth` vdirs (`/ccm_system_altauth/`, `/SMS_MP_AltAuth/`) serve
//! certless clients (§2.9, §2.10 `?SMSTRC`, source S9). The emulator does the same when it is
//! given client roots ([`HttpsConfig::with_client_roots_pem`]); a client certificate that does
//! not chain to them fails the TLS handshake. Without client roots no client certificate is
//! asked for and every vdir serves as on the plain-HTTP listener.
//!
//! Which other paths of a real HTTPS MP demand a client certificate (the `windowsauth` vdir,
//! `.sms_pol` on `/SMS_MP/`) is **\[UNCONFIRMED\]**: the emulator demands one on the
//! `/ccm_system/` vdir and everything under `/SMS_MP/`, and on nothing else.
//!
//! NTLM logons over HTTPS are bound to the listener's certificate: the channel binding
//! (RFC 5929 `tls-server-end-point`) the site's `extended_protection` setting checks is the
//! one of [`HttpsConfig`]'s leaf certificate.
//!
//! This module is the only one that names rustls; none of its types is public.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cmmp_transport::sign::{SecretBytes, SigningKey};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::Error;

/// How long a generated TLS certificate stays valid (a year; it is made again on request).
const LIFETIME_SECONDS: i64 = 365 * 24 * 60 * 60;

/// How far back a generated TLS certificate is valid from (clock skew between machines).
const BACKDATE_SECONDS: i64 = 2 * 24 * 60 * 60;

/// The HTTPS listener of an [`crate::Emulator`]: where it listens, the MP's TLS certificate
/// chain and key, and the roots a client certificate must chain to (module docs).
///
/// `Debug` shows the listen address and the certificates' sizes, never the key.
#[derive(Clone)]
pub struct HttpsConfig {
    /// The address to listen on (`127.0.0.1:0` for an ephemeral port).
    pub listen: SocketAddr,
    /// The chain, leaf first, DER.
    chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER (zeroised when the last clone drops).
    key: Arc<SecretBytes>,
    /// Roots (DER) client certificates must chain to; empty: none asked for.
    client_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for HttpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsConfig")
            .field("listen", &self.listen)
            .field("chain_len", &self.chain.len())
            .field("client_roots", &self.client_roots.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl HttpsConfig {
    /// A PEM chain (leaf first; intermediates may follow) and its unencrypted PEM private key
    /// (RSA or EC, PKCS#1, SEC 1 or PKCS#8).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when either does not parse, the chain is empty, or the key does not
    /// belong to the leaf.
    pub fn from_pem(listen: SocketAddr, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let certs = X509::stack_from_pem(chain_pem)
            .map_err(|e| Error::Tls(format!("the certificate chain does not parse as PEM: {e}")))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Error::Tls("the certificate file holds no certificate".to_owned()))?;
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| Error::Tls(format!("the private key does not parse as PEM: {e}")))?;
        let leaf_key = leaf
            .public_key()
            .map_err(|e| Error::Tls(format!("the certificate's public key: {e}")))?;
        if !key.public_eq(&leaf_key) {
            return Err(Error::Tls(
                "the private key does not belong to the first certificate of the chain".to_owned(),
            ));
        }
        let chain = certs
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("the certificate chain: {e}")))?;
        let key = key.private_key_to_pkcs8().map_err(|e| {
            Error::Tls(format!("the private key cannot be exported as PKCS#8: {e}"))
        })?;
        Ok(Self { listen, chain, key: Arc::new(SecretBytes::new(key)), client_roots: Vec::new() })
    }

    /// Client certificates are asked for and must chain to one of the roots in `pem`; the
    /// default vdir and `/SMS_MP/` answer 403 without one (module docs).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when `pem` holds no certificate or does not parse.
    pub fn with_client_roots_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let roots = X509::stack_from_pem(pem)
            .map_err(|e| Error::Tls(format!("the client roots do not parse as PEM: {e}")))?;
        if roots.is_empty() {
            return Err(Error::Tls("the client roots file holds no certificate".to_owned()));
        }
        self.client_roots = roots
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("the client roots: {e}")))?;
        Ok(self)
    }

    /// Whether client certificates are asked for.
    #[must_use]
    pub fn asks_for_client_certificates(&self) -> bool {
        !self.client_roots.is_empty()
    }

    /// The leaf certificate, DER: what a client sees, and what NTLM channel bindings name.
    #[must_use]
    pub fn certificate_der(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// The rustls configuration.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let tls = |what: &str, e: rustls::Error| Error::Tls(format!("{what}: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls("TLS versions", e))?;
        let builder = if self.client_roots.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for root in &self.client_roots {
                roots
                    .add(CertificateDer::from(root.clone()))
                    .map_err(|e| tls("a client root certificate", e))?;
            }
            // Optional at the TLS level: the altauth vdirs serve certless clients; the others
            // answer 403 (module docs).
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Tls(format!("the client roots: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        };
        let chain = self.chain.iter().cloned().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.expose().to_vec()));
        let mut config =
            builder.with_single_cert(chain, key).map_err(|e| tls("the certificate and key", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A self-signed TLS server certificate for an MP named `names` (DNS names and IP addresses;
/// the first is the subject's common name), with a fresh RSA-2048 key: serverAuth EKU, valid
/// from `now` − 2 days for a year. Clients trust it by its PEM (`cmmp … --ca`), so a lab needs
/// no CA.
///
/// # Errors
///
/// [`Error::Tls`] when `names` is empty or a name is not a DNS name or an address;
/// [`Error::Crypto`] when OpenSSL fails.
pub fn generate_tls_certificate(
    names: &[&str],
    now: SystemTime,
) -> Result<(X509, SigningKey), Error> {
    let first =
        names.first().ok_or_else(|| Error::Tls("a TLS certificate needs a name".to_owned()))?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Error::Tls("the clock is before 1970".to_owned()))?;
    let key = SigningKey::generate(2048).map_err(|e| Error::Tls(format!("key generation: {e}")))?;
    let crypto = Error::crypto;
    let mut san = SubjectAlternativeName::new();
    for n in names {
        if n.parse::<IpAddr>().is_ok() {
            san.ip(n);
        } else if !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            san.dns(n);
        } else {
            return Err(Error::Tls(format!("{n:?} is neither a DNS name nor an IP address")));
        }
    }
    let mut name = X509NameBuilder::new().map_err(crypto("naming a TLS certificate"))?;
    name.append_entry_by_text("CN", first).map_err(crypto("naming a TLS certificate"))?;
    let name = name.build();
    let mut serial = BigNum::new().map_err(crypto("making a serial number"))?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false).map_err(crypto("making a serial number"))?;
    let serial = serial.to_asn1_integer().map_err(crypto("making a serial number"))?;
    let time = |t: i64| Asn1Time::from_unix(t).map_err(crypto("setting a validity date"));
    let building = || crypto("building a TLS certificate");
    let mut b = X509Builder::new().map_err(building())?;
    b.set_version(2).map_err(building())?;
    b.set_serial_number(&serial).map_err(building())?;
    b.set_subject_name(&name).map_err(building())?;
    b.set_issuer_name(&name).map_err(building())?;
    b.set_pubkey(key.pkey()).map_err(building())?;
    let (not_before, not_after) = (time(now - BACKDATE_SECONDS)?, time(now + LIFETIME_SECONDS)?);
    b.set_not_before(&not_before).map_err(building())?;
    b.set_not_after(&not_after).map_err(building())?;
    let san = san.build(&b.x509v3_context(None, None)).map_err(building())?;
    let extensions = [
        BasicConstraints::new().build(),
        KeyUsage::new().critical().digital_signature().key_encipherment().build(),
        ExtendedKeyUsage::new().server_auth().build(),
        Ok(san),
    ];
    for extension in extensions {
        b.append_extension(extension.map_err(building())?).map_err(building())?;
    }
    b.sign(key.pkey(), MessageDigest::sha256()).map_err(crypto("signing a TLS certificate"))?;
    Ok((b.build(), key))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use super::{HttpsConfig, generate_tls_certificate};
    use crate::error::Error;

    fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn a_generated_certificate_names_its_hosts_and_serves_tls() {
        let (cert, key) =
            generate_tls_certificate(&["mp01.corp.example", "127.0.0.1", "::1"], SystemTime::now())
                .unwrap();
        let names: Vec<String> = cert
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| {
                n.dnsname().map(str::to_owned).unwrap_or_else(|| format!("{:?}", n.ipaddress()))
            })
            .collect();
        assert_eq!(names[0], "mp01.corp.example");
        assert_eq!(names[1], format!("{:?}", Some(&[127_u8, 0, 0, 1][..])));
        assert_eq!(names.len(), 3);
        let config = HttpsConfig::from_pem(
            listen(),
            &cert.to_pem().unwrap(),
            key.to_pem().unwrap().expose(),
        )
        .unwrap();
        assert_eq!(config.certificate_der(), cert.to_der().unwrap());
        assert!(!config.asks_for_client_certificates());
        config.server_config().unwrap();
        assert!(!format!("{config:?}").contains("PRIVATE"), "{config:?}");
    }

    #[test]
    fn unusable_material_is_a_typed_error() {
        let (cert, key) = generate_tls_certificate(&["localhost"], SystemTime::now()).unwrap();
        let (_, other_key) = generate_tls_certificate(&["localhost"], SystemTime::now()).unwrap();
        let cert_pem = cert.to_pem().unwrap();
        let other_key = other_key.to_pem().unwrap();
        let tls = |r: Result<HttpsConfig, Error>| match r {
            Err(Error::Tls(message)) => message,
            other => panic!("{other:?}"),
        };
        let m = tls(HttpsConfig::from_pem(listen(), &cert_pem, other_key.expose()));
        assert!(m.contains("does not belong"), "{m}");
        let m = tls(HttpsConfig::from_pem(listen(), b"", other_key.expose()));
        assert!(m.contains("certificate"), "{m}");
        let m = tls(HttpsConfig::from_pem(listen(), &cert_pem, b"-----BEGIN nothing"));
        assert!(m.contains("private key"), "{m}");
        let config = HttpsConfig::from_pem(listen(), &cert_pem, key.to_pem().unwrap().expose());
        let m = tls(config.and_then(|c| c.with_client_roots_pem(b"no certificate here")));
        assert!(m.contains("client roots"), "{m}");
        for bad in [&[][..], &["mp 01"][..], &[""][..], &["mp01/x"][..]] {
            assert!(matches!(generate_tls_certificate(bad, SystemTime::now()), Err(Error::Tls(_))));
        }
    }
}
