//! Damaged message bodies from a registered, correctly signing client: the corpus document of
//! every kind but registration, cut, overwritten, spliced, cleared or bit-flipped anywhere in
//! its XML text before it is signed, so that the emulator's signature check passes and the
//! damage reaches its decoders and site rules. Each message gets an answer (a reply, an empty
//! 200 or a `NoReply`), one row in the message log, and no panic, and the next case finds the
//! emulator serving.

use std::net::SocketAddr;
use std::sync::{Mutex, Once, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::site::ApprovalPolicy;
use cmmp_emulator::store::MessageOutcome;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_model::kinds::{
    AssignedSite, ClientRegistration, ContentLocation, DdrReport, EnumerateMpLocation,
    FileCollection, HinvReport, IdmifCollection, LocalMpLocation, PolicyAssignments, SinvReport,
    SiteInformation, SoftwareMetering, StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::value::SmsId;
use cmmp_model::{Endpoint, MessageExt as _};
use cmmp_transport::Error;
use cmmp_transport::cert::{Identity, generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig};
use cmmp_transport::msg::HostName;
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::sign::HashAlgorithm;
use cmmp_transport::wire::{Settings, Signer};
use proptest::collection::vec;
use proptest::prelude::{ProptestConfig, any, prop_assert, prop_assert_eq, proptest};
use proptest::test_runner::FileFailurePersistence;

#[path = "../../tests/shared/damage.rs"]
mod damage;
use damage::{damage, damage_text};

#[path = "shared/helpers.rs"]
mod shared;
#[path = "../../tests/shared/temp_dir.rs"]
mod temp_dir;
use shared::{
    assert_no_panic, count_panics, proxied_registration, proxy_registration, registration,
};
use temp_dir::TempDir;

/// The client ID the corpus documents name, replaced by the registered client's.
const CORPUS_CLIENT: &str = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10";

/// A kind's endpoint, `FileType` property, corpus document and whether it is an Invoke.
struct Kind {
    endpoint: &'static str,
    file_type: Option<&'static str>,
    document: &'static str,
    invoke: bool,
}

fn kind<K: Endpoint>(document: &'static str, invoke: bool) -> Kind {
    Kind { endpoint: K::ENDPOINT, file_type: K::FILE_TYPE, document, invoke }
}

fn kinds() -> Vec<Kind> {
    vec![
        kind::<DdrReport>("ddr/full.xml", false),
        kind::<HinvReport>("hinv/full.xml", false),
        kind::<SinvReport>("sinv/full.xml", false),
        kind::<SoftwareMetering>("metering/full.xml", false),
        kind::<StateMessages>("state/app-and-heartbeat.xml", false),
        kind::<StatusMessage>("status/ccmhttp-status.xml", false),
        kind::<FileCollection>("filecoll/full.xml", false),
        kind::<IdmifCollection>("idmif/full.xml", false),
        kind::<PolicyAssignments>("policy/request-machine.xml", true),
        kind::<ContentLocation>("location/content-request.xml", true),
        kind::<WsusLocation>("location/wsus-request-lowercase.xml", true),
        kind::<LocalMpLocation>("location/localmp-request.xml", true),
        kind::<EnumerateMpLocation>("location/enumerate-mp-request.xml", true),
        kind::<SiteInformation>("location/siteinfo-request.xml", true),
        kind::<AssignedSite>("location/assignedsite-request.xml", true),
    ]
}

/// One runtime, emulator, registered client and its corpus texts for every case.
struct World {
    runtime: tokio::runtime::Runtime,
    mp: Emulator,
    client: Client,
    identity: Identity,
    smsid: SmsId,
    kinds: Vec<(Kind, String)>,
}

/// The world the property test's cases share: a client that signs for itself, or an ISV
/// proxy's client whose messages the proxy signs (source 002).
fn world(proxied: bool) -> &'static World {
    static OWN: OnceLock<World> = OnceLock::new();
    static PROXIED: OnceLock<World> = OnceLock::new();
    if proxied { PROXIED.get_or_init(new_proxied_world) } else { OWN.get_or_init(new_world) }
}

fn new_world() -> World {
    new_world_of(|on, identity| {
        let sent =
            on.runtime.block_on(on.client.invoke(&registration(identity, "WS01"), vec![], None));
        sent.unwrap().reply.smsid.expect("an SMSID")
    })
}

/// A world whose signer is an ISV proxy (imported, then registered) and whose client is one
/// the proxy registered.
fn new_proxied_world() -> World {
    new_world_of(|on, proxy| {
        let proxy_id = on.mp.site().import_isv_proxy(proxy.signing_cert_der(), Utc::now()).unwrap();
        let register = |request| {
            let sent =
                on.runtime.block_on(on.client.invoke(&ClientRegistration(request), vec![], None));
            sent.unwrap().reply
        };
        assert_eq!(register(proxy_registration(proxy)).status, 0, "the proxy registers");
        let reply = register(proxied_registration(proxy, proxy_id, "MAC-01"));
        reply.smsid.expect("an SMSID for the proxy's client")
    })
}

/// What registration needs of a world being made.
struct Lab<'a> {
    runtime: &'a tokio::runtime::Runtime,
    mp: &'a Emulator,
    client: &'a Client,
}

/// The site of a world: inventory taken without an administrator.
fn site_config() -> SiteConfig {
    SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() }
}

/// An in-memory site and a client; `register` registers the client with the signing
/// identity and returns the SMSID its messages name.
fn new_world_of(register: impl FnOnce(&Lab<'_>, &Identity) -> SmsId) -> World {
    new_world_on(Site::in_memory(site_config(), Utc::now()).unwrap(), register)
}

/// As [`new_world_of`], on `site`.
fn new_world_on(site: Site, register: impl FnOnce(&Lab<'_>, &Identity) -> SmsId) -> World {
    count_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mp_identity = generate_mixed_mode("MP01", SystemTime::now()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mp = runtime.block_on(Emulator::start(listen, site, mp_identity)).unwrap();
    let host = |n: &str| HostName::new(n).unwrap();
    let mut config = ClientConfig::new(Settings::new(host("127.0.0.1"), host("WS01")));
    config.port = Some(mp.addr().port());
    config.connect_timeout = Duration::from_secs(5);
    config.timeout = Duration::from_secs(20);
    let client = Client::new(config).unwrap();
    let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
    let smsid = register(&Lab { runtime: &runtime, mp: &mp, client: &client }, &identity);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/documents");
    let kinds = kinds()
        .into_iter()
        .map(|k| {
            let text = std::fs::read_to_string(dir.join(k.document)).unwrap();
            // The inventory as a full report, so that the site stores its instances
            // (a delta with no full report before it only gets a resync request).
            let text = text
                .trim_end_matches(['\r', '\n'])
                .replace(CORPUS_CLIENT, &smsid.to_string())
                .replace("<ReportType>Delta</ReportType>", "<ReportType>Full</ReportType>");
            (k, text)
        })
        .collect();
    World { runtime, mp, client, identity, smsid, kinds }
}

/// The rows of the site's message log naming `smsid`.
fn logged(mp: &Emulator, smsid: &SmsId) -> usize {
    mp.site().messages(Some(smsid), u32::MAX).unwrap().len()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_bodies_are_answered_and_logged(
        which in 0usize..15,
        damages in vec(damage(), 1..4),
        seed in any::<u8>(),
        proxied in any::<bool>(),
    ) {
        let w = world(proxied);
        let (kind, text) = &w.kinds[which];
        let body = damage_text(text, &damages);
        let before = logged(&w.mp, &w.smsid);
        let outcome = send(w, which, &body, seed % 2 == 0);
        // An answer: a reply the client reads (the emulator writes nothing it cannot), or what
        // an MP answers a message it will not take.
        prop_assert!(
            matches!(outcome, Ok(()) | Err(Error::EmptyReply)),
            "{} answered {outcome:?} to {body:?}",
            kind.endpoint
        );
        // One row, naming the client even when the body did not decode (its header did).
        prop_assert_eq!(logged(&w.mp, &w.smsid), before + 1, "one log row for {:?}", body);
        assert_no_panic();
    }
}

/// Sends `body` to the endpoint of `w.kinds[which]`, signed by the registered client, and
/// compressed when `compress` is set.
fn send(w: &World, which: usize, body: &str, compress: bool) -> Result<(), Error> {
    let (kind, _) = &w.kinds[which];
    let mut message = RawMessage::new();
    message.set_target_endpoint(kind.endpoint).unwrap();
    if let Some(ft) = kind.file_type {
        message.set_property("FileType", ft);
    }
    message.set_body_from_string(body);
    message.set_client_id(w.smsid);
    let mut flags = SecurityFlags::MIXED_MODE | SecurityFlags::SIGN_MESSAGE;
    if compress {
        flags = flags | SecurityFlags::COMPRESS_MESSAGE;
    }
    message.set_security_flags(flags);
    let signer = Signer::new(w.identity.signing_key(), w.smsid, HashAlgorithm::Sha256).unwrap();
    w.runtime.block_on(async {
        if kind.invoke {
            w.client.invoke_raw(&message, Some(&signer)).await.map(|_| ())
        } else {
            w.client.post_raw(&message, Some(&signer)).await.map(|_| ())
        }
    })
}

/// Messages a decoder could take but the emulator's writer could not store again (a
/// character or a name XML does not allow): refused with the reason, like any undecodable
/// body, rather than failed with HTTP 500 (which a client retries for ever). The undamaged
/// message is still stored afterwards.
#[test]
fn characters_and_names_xml_does_not_allow_are_refused() {
    // A site of its own, so that its client's last row is this test's.
    let w = &new_world();
    let hinv = 1;
    let state = 4;
    let cases = [
        (
            state,
            w.kinds[state].1.replacen("Application_0A1B", "Application_0A1B\u{12}", 1),
            "U+0012",
        ),
        (state, w.kinds[state].1.replacen("alice", "al&#x1;ice", 1), "U+0001"),
        (state, w.kinds[state].1.replacen("pending", "pending\u{FFFF}", 1), "U+FFFF"),
        (
            hinv,
            w.kinds[hinv].1.replacen("<Win32_", "<1Win32_", 1).replacen("</Win32_", "</1Win32_", 1),
            "is not an XML name",
        ),
    ];
    for (which, body, reason) in cases {
        assert_ne!(body, w.kinds[which].1, "the case changes the document");
        let outcome = send(w, which, &body, true);
        assert!(matches!(outcome, Err(Error::EmptyReply)), "{outcome:?} for {body}");
        let last = &w.mp.site().messages(Some(&w.smsid), 1).unwrap()[0];
        assert_eq!(last.outcome, MessageOutcome::Refused, "{last:?}");
        let why = last.reason.as_deref().unwrap_or_default();
        assert!(why.contains(reason), "{why}");
    }
    for (which, kind) in [(hinv, "HinvReport"), (state, "StateMessages")] {
        send(w, which, &w.kinds[which].1.clone(), true).unwrap();
        let last = &w.mp.site().messages(Some(&w.smsid), 1).unwrap()[0];
        assert_eq!((last.kind.as_str(), last.outcome), (kind, MessageOutcome::Stored), "{last:?}");
    }
    assert_no_panic();
}

/// A policy request whose body names another client than its header's `SourceID` (a
/// damaged GUID that is still a GUID, say) is refused, and logged under its sender, as Posts
/// are: the sender's own log shows it. It was logged under the SMSID the body named.
#[test]
fn a_policy_request_naming_another_client_is_logged_under_its_sender() {
    let w = &new_world();
    let policy = 8;
    assert_eq!(w.kinds[policy].0.endpoint, "MP_PolicyManager");
    let other = "GUID:00000000-0000-0000-0000-000000000001";
    let body = w.kinds[policy].1.replace(&w.smsid.to_string(), other);
    assert_ne!(body, w.kinds[policy].1, "the case changes the document");
    let before = logged(&w.mp, &w.smsid);
    let outcome = send(w, policy, &body, true);
    assert!(matches!(outcome, Ok(()) | Err(Error::EmptyReply)), "{outcome:?}");
    assert_eq!(logged(&w.mp, &w.smsid), before + 1, "one row in the sender's log");
    let last = &w.mp.site().messages(Some(&w.smsid), 1).unwrap()[0];
    assert_eq!(
        (last.kind.as_str(), last.outcome, last.reason.as_deref()),
        ("PolicyAssignments", MessageOutcome::Refused, Some("identity-mismatch")),
        "{last:?}"
    );
    assert_no_panic();
}

/// A failure inside the emulator while it handles a message (here its database lost a table
/// under it) is answered HTTP 500, so that the client sends the message again, and the
/// message is logged as failed, with the error, under its sender. The emulator goes on
/// serving: other kinds are still stored.
#[test]
fn a_failure_while_handling_is_answered_500_and_logged_as_failed() {
    let dir = TempDir::new("handling-failure");
    let path = dir.join("P01.db");
    let site = Site::open(site_config(), &path, Utc::now()).unwrap();
    let w = new_world_on(site, |on, identity| {
        let sent =
            on.runtime.block_on(on.client.invoke(&registration(identity, "WS01"), vec![], None));
        sent.unwrap().reply.smsid.expect("an SMSID")
    });
    capture_warnings();
    let sabotage = rusqlite::Connection::open(&path).unwrap();
    sabotage.busy_timeout(Duration::from_secs(5)).unwrap();
    sabotage.execute_batch("DROP TABLE discovery").unwrap();
    let (ddr, state) = (0, 4);
    let outcome = send(&w, ddr, &w.kinds[ddr].1.clone(), true);
    assert!(matches!(outcome, Err(Error::Http { status: 500, .. })), "{outcome:?}");
    let last = &w.mp.site().messages(Some(&w.smsid), 1).unwrap()[0];
    assert_eq!(
        (last.endpoint.as_str(), last.kind.as_str(), last.outcome),
        ("MP_DdrEndpoint", "DdrReport", MessageOutcome::Failed),
        "{last:?}"
    );
    let why = last.reason.as_deref().unwrap_or_default();
    assert!(why.contains("no such table: discovery"), "{why}");
    // And a warning says so, with the sender and the error.
    let events = String::from_utf8(WARNINGS.lock().unwrap().clone()).unwrap();
    let smsid = w.smsid.to_string();
    let line = events.lines().find(|l| l.contains(&smsid)).unwrap_or_else(|| panic!("{events}"));
    for part in ["WARN", "handling failed", "MP_DdrEndpoint", "no such table: discovery"] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    send(&w, state, &w.kinds[state].1.clone(), true).unwrap();
    let last = &w.mp.site().messages(Some(&w.smsid), 1).unwrap()[0];
    assert_eq!((last.kind.as_str(), last.outcome), ("StateMessages", MessageOutcome::Stored));
    assert_no_panic();
}

/// The warnings and errors the emulator's events wrote in this test binary.
static WARNINGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Collects the emulator's warnings and errors into [`WARNINGS`] (once per test binary).
fn capture_warnings() {
    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            WARNINGS.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .with_writer(|| Sink)
            .finish();
        assert!(tracing::subscriber::set_global_default(subscriber).is_ok(), "the first one");
    });
}

/// A world of its own for damaged registrations (they name no registered client, so their
/// rows are counted over the whole log), with a registration request signed by a second
/// machine's key.
fn registration_world() -> &'static (World, String) {
    static WORLD: OnceLock<(World, String)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let identity = generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap();
        let text = registration(&identity, "WS02").0.to_xml().unwrap();
        (new_world(), text)
    })
}

/// The rows of the whole message log.
fn all_logged(mp: &Emulator) -> i64 {
    mp.site().summary().unwrap().messages.iter().map(|(_, _, n)| n).sum()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    /// A damaged registration (its inline signature covers the `<Data>` element as sent, so
    /// most damage breaks it): a reply or a refusal, one log row, no panic.
    #[test]
    fn damaged_registrations_are_answered_and_logged(damages in vec(damage(), 1..4)) {
        let (w, text) = registration_world();
        let body = damage_text(text, &damages);
        let mut message = RawMessage::new();
        message.set_target_endpoint("MP_ClientRegistration").unwrap();
        message.set_body_from_string(&body);
        message.set_security_flags(SecurityFlags::MIXED_MODE | SecurityFlags::COMPRESS_MESSAGE);
        let before = all_logged(&w.mp);
        let outcome = w.runtime.block_on(w.client.invoke_raw(&message, None)).map(|_| ());
        prop_assert!(
            matches!(outcome, Ok(()) | Err(Error::EmptyReply)),
            "answered {outcome:?} to {body:?}"
        );
        prop_assert_eq!(all_logged(&w.mp), before + 1, "one log row for {:?}", body);
        assert_no_panic();
    }
}
