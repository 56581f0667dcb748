//! Client-side helpers the emulator's test binaries share (`#[path]`-included, so each
//! binary uses what it needs).

#![allow(dead_code)]

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use cmmp_model::kinds::ClientRegistration;
use cmmp_model::registration::{ClientRegistrationRequest, RegistrationKind};
use cmmp_model::value::{IsoTime, MaybeSmsId, SmsId};
use cmmp_transport::cert::Identity;
use cmmp_transport::client::ClientIdentity;
use cmmp_transport::msg::HostName;
use cmmp_transport::register::{AgentType, Registration, RegistrationSigner, build_request};
use cmmp_transport::sign::{HashAlgorithm, SecretBytes, SigningKey};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// A site with trusted approval and one Windows account, `CORP\PC01$` with the password
/// `machine-secret`, for NTLM logons on the `windowsauth` vdir.
pub(crate) const WINDOWS_SITE: &str = r#"
approval = "trusted"

[[windows_accounts]]
domain = "CORP"
user = "PC01$"
password = "machine-secret"
"#;

/// The registration facts of the machine `name` of `corp.example`, with `extra` properties.
pub(crate) fn reg_info(name: &str, agent_type: AgentType, extra: &[(&str, &str)]) -> Registration {
    Registration {
        netbios_name: HostName::new(name).unwrap(),
        fqdn: HostName::new(&format!("{name}.corp.example")).unwrap(),
        locale_id: 1033,
        agent_identity: "cmmp-tests".to_owned(),
        agent_version: "5.00.9128.1000".parse().unwrap(),
        agent_type,
        internet_flag: 0,
        agent_edition: None,
        extra: extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

/// A client's own registration request (`AgentType` 1, signed with `identity`, SHA-256) for
/// the machine `name`, with `extra` properties.
pub(crate) fn own_registration(
    identity: &Identity,
    name: &str,
    extra: &[(&str, &str)],
) -> ClientRegistrationRequest {
    signed_by_itself(identity, &reg_info(name, AgentType::AdvancedClient, extra))
}

/// The registration request of `info`, signed with its own `identity` (SHA-256).
pub(crate) fn signed_by_itself(
    identity: &Identity,
    info: &Registration,
) -> ClientRegistrationRequest {
    build_request(
        info,
        identity,
        RegistrationSigner::Own,
        HashAlgorithm::Sha256,
        RegistrationKind::Registration,
        MaybeSmsId(None),
        IsoTime::now(),
    )
    .unwrap()
}

/// An ISV proxy's own registration (`AgentType` 4, machine `PROXY01`), signed with its key.
pub(crate) fn proxy_registration(proxy: &Identity) -> ClientRegistrationRequest {
    signed_by_itself(proxy, &reg_info("PROXY01", AgentType::IsvProxy, &[]))
}

/// The registration of the proxy client `name` (`AgentType` 8), signed by the registered
/// proxy `proxy_id` with the proxy's key.
pub(crate) fn proxied_registration(
    proxy: &Identity,
    proxy_id: SmsId,
    name: &str,
) -> ClientRegistrationRequest {
    build_request(
        &reg_info(name, AgentType::IsvProxyClient, &[]),
        proxy,
        RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id },
        HashAlgorithm::Sha256,
        RegistrationKind::Registration,
        MaybeSmsId(None),
        IsoTime::now(),
    )
    .unwrap()
}

/// [`own_registration`] without extra properties, as the message kind the client sends.
pub(crate) fn registration(identity: &Identity, name: &str) -> ClientRegistration {
    ClientRegistration(own_registration(identity, name, &[]))
}

/// Reads one response (head and `Content-Length` body); returns the head.
pub(crate) async fn response<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut raw = Vec::new();
    let mut byte = [0_u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "the connection closed early");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head
}

/// Sends `request` on `stream` and reads the answer's head.
pub(crate) async fn head_of<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    response(stream).await
}

/// A certificate and its key.
pub(crate) struct Pair {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
}

impl Pair {
    /// A CA (`issuer` `None`) or a clientAuth certificate issued by `issuer` (a PKI client
    /// certificate of native mode).
    pub(crate) fn new(cn: &str, issuer: Option<&Pair>) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(if issuer.is_some() { 2 } else { 1 }).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
        match issuer {
            None => {
                b.set_issuer_name(&name).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                let usage = KeyUsage::new().critical().key_cert_sign().build().unwrap();
                b.append_extension(usage).unwrap();
                b.sign(&key, MessageDigest::sha256()).unwrap();
            }
            Some(ca) => {
                b.set_issuer_name(ca.cert.subject_name()).unwrap();
                let usage = KeyUsage::new().critical().digital_signature().build().unwrap();
                b.append_extension(usage).unwrap();
                b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap();
                b.sign(&ca.key, MessageDigest::sha256()).unwrap();
            }
        }
        Pair { cert: b.build(), key }
    }

    /// The pair as a TLS client certificate.
    pub(crate) fn client_identity(&self) -> ClientIdentity {
        let key = SecretBytes::new(self.key.private_key_to_pkcs8().unwrap());
        ClientIdentity::from_der(vec![self.cert.to_der().unwrap()], key).unwrap()
    }

    /// The pair as a client's signing identity (one certificate for both roles).
    pub(crate) fn identity(&self) -> Identity {
        let key = SigningKey::from_pkey(self.key.clone()).unwrap();
        Identity::single(key, self.cert.clone()).unwrap()
    }
}

/// Panics anywhere in this test binary, the emulator's connection tasks included (tokio
/// would otherwise end a panicking task quietly and close its connection).
pub(crate) static PANICS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

pub(crate) fn assert_no_panic() {
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked (see above)");
}
