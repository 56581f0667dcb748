//! Test PKI made in the test (no stored keys): a CA, a server certificate for `localhost` and
//! 127.0.0.1, a client certificate, and a second, untrusted CA; CRLs and server certificates
//! naming a CRL distribution point for the revocation tests.

use std::sync::{Arc, OnceLock};

use openssl::asn1::Asn1Time;
use openssl::asn1::{Asn1Object, Asn1OctetString};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage,
    SubjectAlternativeName,
};
use openssl::x509::{
    X509, X509Builder, X509CrlBuilder, X509Extension, X509NameBuilder, X509RevokedBuilder,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key.
pub(crate) struct Pair {
    /// The certificate.
    pub(crate) cert: X509,
    /// The key.
    pub(crate) key: PKey<Private>,
}

impl Pair {
    /// The certificate as DER.
    pub(crate) fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    /// The key as PKCS#8 DER.
    pub(crate) fn key_der(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().unwrap()
    }
}

/// The test PKI, made once per test binary.
pub(crate) struct Pki {
    /// The trusted CA.
    pub(crate) ca: Pair,
    /// The server certificate: `localhost`, 127.0.0.1.
    pub(crate) server: Pair,
    /// A client certificate (`CN=WS01`, clientAuth) issued by the CA.
    pub(crate) client: Pair,
    /// A CA nobody trusts, and a server certificate it issued.
    pub(crate) rogue_ca: Pair,
    pub(crate) rogue_server: Pair,
}

/// The shared test PKI.
pub(crate) fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = ca_pair("cmmp test CA");
        let server = issue(&ca, "localhost", true);
        let client = issue(&ca, "WS01", false);
        let rogue = ca_pair("rogue CA");
        let rogue_server = issue(&rogue, "localhost", true);
        Pki { ca, server, client, rogue_ca: rogue, rogue_server }
    })
}

/// A rustls server configuration with `pair` (chain: the leaf), optionally asking for a
/// client certificate issued by the test CA (`required`: mandatory, else optional).
pub(crate) fn server_config(pair: &Pair, client_auth: Option<bool>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(required) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(pki().ca.der())).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if required { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().unwrap())
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.key_der()));
    Arc::new(builder.with_single_cert(vec![CertificateDer::from(pair.der())], key).unwrap())
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn builder(cn: &str, serial: u32, key: &PKey<Private>) -> X509Builder {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b
}

fn ca_pair(cn: &str) -> Pair {
    let key = key();
    let mut b = builder(cn, 1, &key);
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    b.set_issuer_name(&name.build()).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Pair { cert: b.build(), key }
}

fn issue(ca: &Pair, cn: &str, server: bool) -> Pair {
    issue_with(ca, cn, server, None)
}

/// A server certificate of the test CA for `localhost` and 127.0.0.1 whose CRL distribution
/// point is `url`.
pub(crate) fn server_with_crl_point(url: &str) -> Pair {
    issue_with(&pki().ca, "localhost", true, Some(url))
}

/// A CRL of `ca` listing `revoked`, issued a day ago, valid until `next_update_days` from now
/// (negative: already stale), DER.
pub(crate) fn crl(ca: &Pair, revoked: &[&Pair], next_update_days: i64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_last_update(&Asn1Time::from_unix(now - 2 * 86_400).unwrap()).unwrap();
    b.set_next_update(&Asn1Time::from_unix(now + next_update_days * 86_400).unwrap()).unwrap();
    b.append_extension(CrlNumber::new(BigNum::from_u32(1).unwrap()).unwrap().build().unwrap())
        .unwrap();
    let context = X509Builder::new().unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .issuer(true)
        .build(&context.x509v3_context(Some(&ca.cert), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    for pair in revoked {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(pair.cert.serial_number()).unwrap();
        r.set_revocation_date(&Asn1Time::from_unix(now - 86_400).unwrap()).unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    b.build().unwrap().to_der().unwrap()
}

/// DER tag-length-value (lengths below 64 KiB).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match u8::try_from(len) {
        Ok(l) if l < 0x80 => out.push(l),
        Ok(l) => out.extend([0x81, l]),
        Err(_) => out.extend([0x82, (len >> 8) as u8, (len & 0xff) as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// The `cRLDistributionPoints` extension naming one URL (RFC 5280 §4.2.1.13).
fn crl_distribution_point(url: &str) -> X509Extension {
    // SEQUENCE OF DistributionPoint { [0] DistributionPointName { [0] fullName { [6] URI } } }
    let der = tlv(0x30, &tlv(0x30, &tlv(0xa0, &tlv(0xa0, &tlv(0x86, url.as_bytes())))));
    let oid = Asn1Object::from_str("2.5.29.31").unwrap();
    X509Extension::new_from_der(&oid, false, &Asn1OctetString::new_from_bytes(&der).unwrap())
        .unwrap()
}

fn issue_with(ca: &Pair, cn: &str, server: bool, crl_point: Option<&str>) -> Pair {
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = key();
    let mut b = builder(cn, serial, &key);
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
    b.append_extension(
        KeyUsage::new().critical().digital_signature().key_encipherment().build().unwrap(),
    )
    .unwrap();
    if server {
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(Some(&ca.cert), None))
            .unwrap();
        b.append_extension(san).unwrap();
    } else {
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap();
    }
    if let Some(url) = crl_point {
        b.append_extension(crl_distribution_point(url)).unwrap();
    }
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    Pair { cert: b.build(), key }
}
