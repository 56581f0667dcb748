//! The emulator's HTTPS listener, client ↔ emulator over loopback TLS: native-mode clients
//! with a TLS client certificate, the 403 without one (and the altauth vdirs that serve
//! certless clients), client certificates of another CA, and NTLM logons bound to the
//! listener's certificate (`extended_protection`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::tls::generate_tls_certificate;
use cmmp_emulator::{Emulator, HttpsConfig, Site, SiteConfig};
use cmmp_transport::Error;
use cmmp_transport::cert::{generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig, ClientIdentity, Roots, Scheme};
use cmmp_transport::msg::HostName;
use cmmp_transport::ntlm::{self, Credentials};
use cmmp_transport::wire::{Settings, Vdir};
use openssl::x509::X509;

#[path = "shared/helpers.rs"]
mod shared;
use shared::{Pair, WINDOWS_SITE as WINDOWS, head_of, registration};

/// The emulator's TLS certificate, the client CA and a client certificate it issued.
struct Lab {
    server: X509,
    https: HttpsConfig,
    client: Pair,
}

fn lab(ask_for_client_certificates: bool) -> Lab {
    let (server, key) = generate_tls_certificate(&["localhost", "127.0.0.1"], SystemTime::now())
        .expect("a TLS certificate");
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let https =
        HttpsConfig::from_pem(listen, &server.to_pem().unwrap(), key.to_pem().unwrap().expose())
            .unwrap();
    let ca = Pair::new("cmmp test client CA", None);
    let client = Pair::new("WS01", Some(&ca));
    let https = if ask_for_client_certificates {
        https.with_client_roots_pem(&ca.cert.to_pem().unwrap()).unwrap()
    } else {
        https
    };
    assert_eq!(https.asks_for_client_certificates(), ask_for_client_certificates);
    Lab { server, https, client }
}

async fn emulator(config: SiteConfig, lab: &Lab) -> Emulator {
    let site = Site::in_memory(config, Utc::now()).unwrap();
    let identity = generate_mixed_mode("SMS Issuing", SystemTime::now()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut mp = Emulator::start(listen, site, identity).await.unwrap();
    let addr = mp.serve_https(&lab.https).await.unwrap();
    assert_eq!(mp.https_addr(), Some(addr));
    assert_ne!(addr, mp.addr());
    mp
}

/// A native-mode client of `mp`'s HTTPS listener, trusting the lab's server certificate.
fn client(mp: &Emulator, lab: &Lab, vdir: Vdir, tls_identity: Option<ClientIdentity>) -> Client {
    Client::new(client_config(mp, lab, vdir, tls_identity)).unwrap()
}

fn client_config(
    mp: &Emulator,
    lab: &Lab,
    vdir: Vdir,
    tls_identity: Option<ClientIdentity>,
) -> ClientConfig {
    let host = |n: &str| HostName::new(n).unwrap();
    let mut settings = Settings::new(host("localhost"), host("WS01"));
    settings.vdir = vdir;
    settings.native_mode = true;
    let mut config = ClientConfig::new(settings);
    config.scheme = Scheme::Https;
    config.port = mp.https_addr().map(|a| a.port());
    config.roots = Roots::Custom(vec![lab.server.to_der().unwrap()]);
    config.client_identity = tls_identity;
    config.connect_timeout = Duration::from_secs(5);
    config.timeout = Duration::from_secs(20);
    config
}

fn native() -> SiteConfig {
    SiteConfig::from_toml("mode = \"native\"\n").unwrap()
}

#[tokio::test]
async fn a_native_mode_client_with_a_certificate_registers_and_reads_the_mp_over_https() {
    let lab = lab(true);
    let mp = emulator(native(), &lab).await;
    let https = client(&mp, &lab, Vdir::Default, Some(lab.client.client_identity()));
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let reply = https.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap().reply;
    // Native mode: registered, approval does not apply (ApprovalStatus 2).
    assert_eq!((reply.status, reply.approval_status), (0, Some(2)));
    let list = https.mp_list().await.unwrap();
    assert!(!list.mp.is_empty());
    assert_eq!(mp.site().clients().unwrap().len(), 1);
    // The site file sets no ports: location replies name the two listeners'.
    let ports = mp.site().config().management_point.effective();
    assert_eq!(ports, (mp.addr().port(), mp.https_addr().unwrap().port()));
}

#[tokio::test]
async fn without_a_client_certificate_the_default_vdir_is_403_and_altauth_serves() {
    let lab = lab(true);
    let mp = emulator(native(), &lab).await;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let certless = client(&mp, &lab, Vdir::Default, None);
    let e = certless.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Http { status: 403, title: Some(t) } if t.contains("Client certificate required")),
        "{e}"
    );
    let e = certless.mp_list().await.unwrap_err();
    assert!(matches!(&e, Error::Http { status: 403, .. }), "{e}");
    assert!(mp.site().clients().unwrap().is_empty(), "nothing was stored");
    // The altauth vdir serves certless clients (v2403+, §3.4).
    let altauth = client(&mp, &lab, Vdir::AltAuth, None);
    let reply = altauth.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap().reply;
    assert_eq!(reply.status, 0);
    assert_eq!(mp.site().clients().unwrap().len(), 1);
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_fails_the_handshake() {
    let lab = lab(true);
    let mp = emulator(native(), &lab).await;
    let rogue_ca = Pair::new("rogue CA", None);
    let rogue = Pair::new("WS01", Some(&rogue_ca));
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let e = client(&mp, &lab, Vdir::Default, Some(rogue.client_identity()))
        .invoke(&registration(&identity, "WS01"), vec![], None)
        .await
        .unwrap_err();
    // TLS 1.3: the client learns of the refusal from the server's alert, on its first read.
    assert!(matches!(&e, Error::Tls { .. } | Error::Network { .. }), "{e:?}");
    assert!(mp.site().clients().unwrap().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn without_client_roots_no_certificate_is_asked_for() {
    let lab = lab(false);
    let mp = emulator(SiteConfig::default(), &lab).await;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let https = client(&mp, &lab, Vdir::Default, None);
    let reply = https.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap().reply;
    assert_eq!(reply.status, 0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_listener_does_not_send() {
    let ours = lab(false);
    let mp = emulator(SiteConfig::default(), &ours).await;
    let mut other = lab(false);
    other.server = generate_tls_certificate(&["localhost"], SystemTime::now()).unwrap().0;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let e = client(&mp, &other, Vdir::Default, None)
        .invoke(&registration(&identity, "WS01"), vec![], None)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Tls { .. }), "{e:?}");
    assert!(mp.site().clients().unwrap().is_empty());
}

#[tokio::test]
async fn the_client_s_ntlm_logon_over_https_is_bound_to_the_listener_s_certificate() {
    let lab = lab(false);
    let config =
        SiteConfig::from_toml(&format!("extended_protection = \"required\"\n{WINDOWS}")).unwrap();
    assert_eq!(config.extended_protection, cmmp_emulator::site::ExtendedProtection::Required);
    let mp = emulator(config, &lab).await;
    let mut config = client_config(&mp, &lab, Vdir::WindowsAuth, None);
    config.windows_credentials = Some(Credentials::new("CORP", "PC01$", "machine-secret"));
    let https = Client::new(config).unwrap();
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let reply = https.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap().reply;
    // Trusted approval: approved through Windows authentication.
    assert_eq!((reply.status, reply.approval_status), (0, Some(1)));
}

/// One NTLM handshake over a new TLS connection to `mp`'s HTTPS listener, with `channel` as
/// the client's channel binding; the status line of the answer to the `AUTHENTICATE` leg.
async fn bound_handshake(mp: &Emulator, lab: &Lab, channel: Option<[u8; 16]>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(lab.server.to_der().unwrap())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(mp.https_addr().unwrap()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let post = |auth: &str| {
        format!(
            "CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: NTLM {auth}\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        )
    };
    let negotiate = ntlm::negotiate();
    let second = head_of(&mut stream, &post(&openssl::base64::encode_block(&negotiate))).await;
    let token = second
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: NTLM "))
        .expect("an NTLM challenge");
    let challenge =
        ntlm::parse_challenge(&openssl::base64::decode_block(token.trim()).unwrap()).unwrap();
    let creds = Credentials::new("CORP", "PC01$", "machine-secret");
    let binding = ntlm::Binding { channel, target_name: Some("HTTP/localhost".to_owned()) };
    let type3 = ntlm::authenticate(&creds, &negotiate, &challenge, &binding).unwrap();
    let last = head_of(&mut stream, &post(&openssl::base64::encode_block(&type3))).await;
    last.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn extended_protection_checks_the_binding_of_the_listener_s_certificate() {
    let lab = lab(false);
    let ours = ntlm::tls_channel_binding(lab.https.certificate_der()).unwrap();
    let foreign = Some([0x5A; 16]);
    let ok = "HTTP/1.1 200 OK";
    for (setting, none, bound, relayed) in [
        ("off", ok, ok, ok),
        ("accept", ok, ok, "HTTP/1.1 401 Unauthorized"),
        ("required", "HTTP/1.1 401 Unauthorized", ok, "HTTP/1.1 401 Unauthorized"),
    ] {
        let toml = format!("extended_protection = \"{setting}\"\n{WINDOWS}");
        let mp = emulator(SiteConfig::from_toml(&toml).unwrap(), &lab).await;
        assert_eq!(bound_handshake(&mp, &lab, None).await, none, "{setting}, no binding");
        assert_eq!(bound_handshake(&mp, &lab, Some(ours)).await, bound, "{setting}, bound");
        assert_eq!(bound_handshake(&mp, &lab, foreign).await, relayed, "{setting}, relayed");
    }
    assert!(SiteConfig::from_toml("extended_protection = \"sometimes\"\n").is_err());
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_dropped_and_the_listener_keeps_serving() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let lab = lab(false);
    let mp = emulator(SiteConfig::default(), &lab).await;
    let mut stream = tokio::net::TcpStream::connect(mp.https_addr().unwrap()).await.unwrap();
    stream.write_all(b"GET /SMS_MP/.sms_aut?MPLIST HTTP/1.1\r\nHost: mp\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer));
    // A TLS alert at most, never an HTTP answer.
    let _ = read.await.expect("the listener closes the connection");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let https = client(&mp, &lab, Vdir::Default, None);
    assert_eq!(
        https.invoke(&registration(&identity, "WS01"), vec![], None).await.unwrap().reply.status,
        0
    );
}
