//! Windows authentication on the `windowsauth` vdir, client ↔ emulator over loopback: the
//! NTLM handshake of `cmmp-transport` against the emulator's `[[windows_accounts]]` (M9,
//! MS-NLMP), and the trust that registrations through it earn (M2).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_model::kinds::ClientRegistration;
use cmmp_model::registration::RegistrationKind;
use cmmp_model::value::{IsoTime, MaybeSmsId};
use cmmp_transport::Error;
use cmmp_transport::cert::{Identity, generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig};
use cmmp_transport::msg::HostName;
use cmmp_transport::ntlm::Credentials;
use cmmp_transport::register::{AgentType, Registration, RegistrationSigner, build_request};
use cmmp_transport::sign::HashAlgorithm;
use cmmp_transport::wire::{Settings, Vdir};

const SITE: &str = r#"
approval = "trusted"

[[windows_accounts]]
domain = "CORP"
user = "PC01$"
password = "machine-secret"
"#;

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

fn registration(identity: &Identity) -> ClientRegistration {
    let info = Registration {
        netbios_name: HostName::new("PC01").unwrap(),
        fqdn: HostName::new("PC01.corp.example").unwrap(),
        locale_id: 1033,
        agent_identity: "cmmp-tests".to_owned(),
        agent_version: "5.00.9128.1000".parse().unwrap(),
        agent_type: AgentType::AdvancedClient,
        internet_flag: 0,
        agent_edition: None,
        extra: Vec::new(),
    };
    ClientRegistration(
        build_request(
            &info,
            identity,
            RegistrationSigner::Own,
            HashAlgorithm::Sha256,
            RegistrationKind::Registration,
            MaybeSmsId(None),
            IsoTime::now(),
        )
        .unwrap(),
    )
}

/// Registers a fresh client through the `windowsauth` vdir of `config`'s emulator with
/// `creds` and checks that it is registered and approved: trusted approval approves
/// registrations through Windows authentication (M2).
async fn registers_approved(config: SiteConfig, creds: Credentials) {
    let mp = emulator(config).await;
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let sent = client(&mp, Some(creds)).invoke(&registration(&identity), vec![], None).await;
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
            .invoke(&registration(&identity), vec![], None)
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
    let e = client(&mp, None).invoke(&registration(&identity), vec![], None).await.unwrap_err();
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
