//! Windows authentication on the `windowsauth` vdir, client ↔ emulator over loopback: the
//! NTLM handshake of `cmmp-transport` against the emulator's `[[windows_accounts]]` (M9,
//! MS-NLMP), and the trust that registrations through it earn (M2).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_transport::Error;
use cmmp_transport::cert::{generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig};
use cmmp_transport::msg::HostName;
use cmmp_transport::ntlm::Credentials;
use cmmp_transport::wire::{Settings, Vdir};

#[path = "shared/helpers.rs"]
mod shared;
use shared::{WINDOWS_SITE as SITE, head_of, registration};

async fn emulator(config: SiteConfig) -> Emulator {
    let site = Site::in_memory(config, Utc::now()).unwrap();
    let identity = generate_mixed_mode("SMS Issuing", SystemTime::now()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(listen, site, identity).await.unwrap()
}

fn client(mp: &Emulator, credentials: Option<Credentials>) -> Client {
    let host = |n: &str| HostName::new(n).unwrap();
    let mut settings = Settings::new(host("127.0.0.1"), host("PC01"));
    settings.vdir = Vdir::WindowsAuth;
    let mut config = ClientConfig::new(settings);
    config.port = Some(mp.addr().port());
    config.connect_timeout = Duration::from_secs(5);
    config.timeout = Duration::from_secs(20);
    config.windows_credentials = credentials;
    Client::new(config).unwrap()
}

/// Registers a fresh client through the `windowsauth` vdir of `config`'s emulator with
/// `creds` and checks that it is registered and approved: trusted approval approves
/// registrations through Windows authentication (M2).
async fn registers_approved(config: SiteConfig, creds: Credentials) {
    let mp = emulator(config).await;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let sent =
        client(&mp, Some(creds)).invoke(&registration(&identity, "PC01"), vec![], None).await;
    let reply = sent.unwrap().reply;
    assert_eq!((reply.status, reply.approval_status), (0, Some(1)));
}

#[tokio::test]
async fn ntlm_with_the_right_password_registers_a_trusted_client() {
    let creds = Credentials::new("corp", "pc01$", "machine-secret");
    registers_approved(SiteConfig::from_toml(SITE).unwrap(), creds).await;
}

#[tokio::test]
async fn ntlm_with_a_wrong_password_is_authentication_failed() {
    let mp = emulator(SiteConfig::from_toml(SITE).unwrap()).await;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    for creds in [
        Credentials::new("CORP", "PC01$", "wrong"),
        Credentials::new("CORP", "PC02$", "machine-secret"),
        Credentials::new("OTHER", "PC01$", "machine-secret"),
    ] {
        let e = client(&mp, Some(creds))
            .invoke(&registration(&identity, "PC01"), vec![], None)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::AuthenticationFailed { reason, .. } if reason.contains("refused the credentials")),
            "{e}"
        );
        assert!(e.to_string().starts_with("authentication failed for "), "{e}");
        assert!(!format!("{e:?}").contains("machine-secret"));
    }
    // Without credentials: the MP's 401 (M9), nothing stored.
    let e =
        client(&mp, None).invoke(&registration(&identity, "PC01"), vec![], None).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 401, .. }), "{e}");
}

#[tokio::test]
async fn without_windows_accounts_any_credentials_are_accepted() {
    registers_approved(SiteConfig::default(), Credentials::new("ANY", "someone", "x")).await;
}

#[test]
fn site_files_list_windows_accounts_and_redact_their_passwords() {
    let site = SiteConfig::from_toml(SITE).unwrap();
    assert_eq!(site.windows_accounts.len(), 1);
    assert_eq!(site.windows_accounts[0].user, "PC01$");
    let debug = format!("{site:?}");
    assert!(!debug.contains("machine-secret"), "{debug}");
    assert!(SiteConfig::default().windows_accounts.is_empty());
    assert!(SiteConfig::from_toml("[[windows_accounts]]\nuser = \"u\"\n").is_err());
}

#[tokio::test]
async fn negotiate_is_answered_with_an_ntlm_challenge_on_a_kept_connection() {
    let mp = emulator(SiteConfig::from_toml(SITE).unwrap()).await;
    let mut stream = tokio::net::TcpStream::connect(mp.addr()).await.unwrap();
    let post = |auth: &str| {
        format!(
            "CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp\r\n{auth}\
             Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        )
    };
    let first = head_of(&mut stream, &post("")).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    assert!(first.contains("WWW-Authenticate: Negotiate\r\n"), "{first}");
    assert!(first.contains("WWW-Authenticate: NTLM\r\n"), "{first}");
    assert!(first.contains("Connection: keep-alive"), "{first}");
    let negotiate = openssl::base64::encode_block(&cmmp_transport::ntlm::negotiate());
    let second =
        head_of(&mut stream, &post(&format!("Authorization: Negotiate {negotiate}\r\n"))).await;
    // A CHALLENGE message (base64 of "NTLMSSP\0" + type 2) in the scheme the client used.
    assert!(second.contains("WWW-Authenticate: Negotiate TlRMTVNTUAACAAAA"), "{second}");
    // A Kerberos token is refused when the site has accounts, and the connection closes.
    let third = head_of(&mut stream, &post("Authorization: Negotiate YIIHGwYGKwYBBQUC\r\n")).await;
    assert!(third.starts_with("HTTP/1.1 401") && third.contains("Connection: close"), "{third}");
}

/// The `CHALLENGE` message of a 401's `WWW-Authenticate: NTLM …` header.
fn challenge_in(head: &str) -> Vec<u8> {
    let token = head
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: NTLM "))
        .expect("an NTLM challenge");
    openssl::base64::decode_block(token.trim()).unwrap()
}

/// One handshake on a new connection: `sent` is the `NEGOTIATE` message the emulator
/// receives, `signed` the one the client's `MIC` covers, `channel` the client's channel
/// binding. Returns the status line of the answer to the `AUTHENTICATE` leg.
async fn handshake(mp: &Emulator, sent: &[u8], signed: &[u8], channel: Option<[u8; 16]>) -> String {
    use cmmp_transport::ntlm;
    let mut stream = tokio::net::TcpStream::connect(mp.addr()).await.unwrap();
    let post = |auth: &str| {
        format!(
            "CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp\r\n\
             Authorization: NTLM {auth}\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        )
    };
    let second = head_of(&mut stream, &post(&openssl::base64::encode_block(sent))).await;
    let challenge = ntlm::parse_challenge(&challenge_in(&second)).unwrap();
    let creds = Credentials::new("CORP", "PC01$", "machine-secret");
    let binding = ntlm::Binding { channel, target_name: Some("HTTP/mp".to_owned()) };
    let type3 = ntlm::authenticate(&creds, signed, &challenge, &binding).unwrap();
    let last = head_of(&mut stream, &post(&openssl::base64::encode_block(&type3))).await;
    last.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_tampered_negotiation_or_a_foreign_channel_binding_is_refused() {
    let mp = emulator(SiteConfig::from_toml(SITE).unwrap()).await;
    let negotiate = cmmp_transport::ntlm::negotiate();
    // The handshake as sent: authenticated (an empty body then gets the empty 200).
    assert_eq!(handshake(&mp, &negotiate, &negotiate, None).await, "HTTP/1.1 200 OK");
    // A NEGOTIATE changed on the way (its flags): the MIC does not cover what arrived.
    let mut downgraded = negotiate.clone();
    downgraded[14] &= !0x08;
    let status = handshake(&mp, &downgraded, &negotiate, None).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    // A logon bound to some TLS channel, arriving over this plain-HTTP listener: relayed.
    let status = handshake(&mp, &negotiate, &negotiate, Some([0x5A; 16])).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
}
