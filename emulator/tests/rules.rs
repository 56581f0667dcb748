//! The site rules, end to end over the wire codec: requests are built and signed by
//! `cmmp-transport` exactly as a client sends them, decoded as the MP reads them, and handed to
//! the [`Site`]. One test per rule, named after the behaviour (house style HS-60, HS-80).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use cmmp_emulator::behaviour::PolicyBodyRequest;
use cmmp_emulator::site::{
    ApprovalPolicy, Boundary, BoundaryGroup, ConflictResolution, DistributionPoint, Host,
    PolicyScope, PolicySpec, SiteMode, SoftwareUpdatePoint, policy_flags,
};
use cmmp_emulator::store::MessageOutcome;
use cmmp_emulator::{
    Envelope, FaultKind, FaultSpec, Handled, LocationReply, MpAnswer, Outcome, Refusal, Resolution,
    Site, SiteConfig,
};
use cmmp_model::kinds::{
    AssignedSite, ClientRegistration, ContentLocation, DdrReport, EnumerateMpLocation,
    FileCollection, HinvReport, Inbound, LocalMpLocation, PolicyAssignments, SiteInformation,
    SoftwareMetering, StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::policy::{AssignmentReplyKind, AssignmentRequestKind, RequestAssignments};
use cmmp_model::registration::{
    ClientRegistrationRequest, ClientRegistrationResponse, RegistrationKind,
};
use cmmp_model::value::{IsoTime, MaybeSmsId, SmsId};
use cmmp_model::{DeliveryKind, Endpoint, MessageExt};
use cmmp_transport::cert::{Identity, generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::msg::HostName;
use cmmp_transport::payload::Attachment;
use cmmp_transport::register::{
    AgentType, Backoff, RegistrationFlow, RegistrationSigner, Step, build_request,
};
use cmmp_transport::sign::{HashAlgorithm, TokenScheme, policy_token_headers};
use cmmp_transport::wire::{self, DecodeLimits, DecodedRequest, Fresh, Settings, Signer, Vdir};

#[path = "shared/helpers.rs"]
mod shared;
#[path = "../../tests/shared/temp_dir.rs"]
mod temp_dir;
use shared::{
    Pair, own_registration as registration, proxied_registration, proxy_registration, reg_info,
};
use temp_dir::TempDir;

// ---- the lab ---------------------------------------------------------------------------------

/// A site and a clock.
struct Lab {
    site: Site,
    now: DateTime<Utc>,
}

impl Lab {
    fn new(config: SiteConfig) -> Self {
        let now = Utc::now();
        Self { site: Site::in_memory(config, now).unwrap(), now }
    }

    fn stock() -> Self {
        Self::new(SiteConfig::default())
    }

    fn auto_all() -> Self {
        Self::new(SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() })
    }

    fn later(&mut self, secs: i64) {
        self.now += TimeDelta::seconds(secs);
    }

    fn handle(&mut self, decoded: &DecodedRequest, vdir: Vdir) -> Handled {
        self.site.handle(decoded, vdir, false, self.now).unwrap()
    }

    /// Sends a registration request through the wire codec.
    fn register_raw(&mut self, req: &ClientRegistrationRequest, vdir: Vdir) -> Handled {
        let decoded = encode(&ClientRegistration(req.clone()), vec![], None);
        self.handle(&decoded, vdir)
    }

    fn register(
        &mut self,
        req: &ClientRegistrationRequest,
        vdir: Vdir,
    ) -> ClientRegistrationResponse {
        match self.register_raw(req, vdir) {
            Handled::Registration(r) => r,
            other => panic!("expected a registration reply, got {other:?}"),
        }
    }

    /// Registers a fresh single client (`AgentType` 0) and returns it with its SMSID.
    fn enrol(&mut self, name: &str, vdir: Vdir) -> Client {
        let identity = identity(name);
        let response = self.register(&registration(&identity, name, &[]), vdir);
        assert_eq!(response.status, 0, "{response:?}");
        Client { identity, smsid: response.smsid.unwrap(), name: name.to_owned() }
    }

    fn post<K: Endpoint>(
        &mut self,
        client: &Client,
        kind: &K,
        attachments: Vec<Attachment>,
    ) -> Handled {
        let signer = client.signer();
        let decoded = encode(kind, attachments, Some(&signer));
        self.handle(&decoded, Vdir::Default)
    }

    fn policy(
        &mut self,
        client: &Client,
        request_type: AssignmentRequestKind,
        cookie: &str,
    ) -> Handled {
        let kind =
            PolicyAssignments(policy_request(&client.smsid, &client.name, request_type, cookie));
        self.post(client, &kind, vec![])
    }

    fn refusals(&self, smsid: &SmsId) -> Vec<String> {
        self.site
            .messages(Some(smsid), 100)
            .unwrap()
            .into_iter()
            .filter(|m| m.outcome == MessageOutcome::Refused)
            .filter_map(|m| m.reason)
            .collect()
    }
}

struct Client {
    identity: Arc<Identity>,
    smsid: SmsId,
    name: String,
}

impl Client {
    fn signer(&self) -> Signer<'_> {
        Signer::new(self.identity.signing_key(), self.smsid, HashAlgorithm::Sha256).unwrap()
    }
}

/// A self-signed identity for a machine name. RSA key generation is the slow part of these
/// tests, so six identities are generated once per test binary and shared: the names used
/// together in one test map to different identities (one site never sees two machines share a
/// key unless a test says so).
fn identity(name: &str) -> Arc<Identity> {
    static POOL: OnceLock<Mutex<BTreeMap<&'static str, Arc<Identity>>>> = OnceLock::new();
    let slot = match name {
        "WS01" | "ANON" | "N" | "A" | "AUTO-OLD" | "BLK-1" => "1",
        "OTHER" | "DOM" | "B" | "AUTO-NEW" | "BLK-2" | "WS01-REINSTALLED" => "2",
        "C" | "BLK-3" => "3",
        "D" => "4",
        "PROXY01" => "5",
        "IMPOSTOR" | "THIEF" | "GHOST" => "6",
        other => panic!("no identity slot for {other}"),
    };
    let pool = POOL.get_or_init(Mutex::default);
    if let Some(found) = pool.lock().unwrap().get(slot) {
        return Arc::clone(found);
    }
    let fresh =
        Arc::new(generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()).unwrap());
    Arc::clone(pool.lock().unwrap().entry(slot).or_insert(fresh))
}

fn confirmation(identity: &Identity, name: &str, smsid: SmsId) -> ClientRegistrationRequest {
    build_request(
        &reg_info(name, AgentType::AdvancedClient, &[]),
        identity,
        RegistrationSigner::Own,
        HashAlgorithm::Sha256,
        RegistrationKind::Confirmation,
        MaybeSmsId(Some(smsid)),
        IsoTime::now(),
    )
    .unwrap()
}

/// Builds the exact request bytes a client sends, and decodes them as the MP does.
fn encode<K: Endpoint>(
    kind: &K,
    attachments: Vec<Attachment>,
    signer: Option<&Signer<'_>>,
) -> DecodedRequest {
    let settings =
        Settings::new(HostName::new("mp01.corp.example").unwrap(), HostName::new("WS01").unwrap());
    let request =
        wire::build_request(&settings, kind, attachments, signer, Fresh::now().unwrap()).unwrap();
    let content_type = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v.as_str());
    wire::decode_request(content_type, &request.body, DecodeLimits::default()).unwrap()
}

fn policy_request(
    smsid: &SmsId,
    name: &str,
    request_type: AssignmentRequestKind,
    cookie: &str,
) -> RequestAssignments {
    let kind = match request_type {
        AssignmentRequestKind::OnUpdate => "OnUpdate",
        _ => "Always",
    };
    let text = format!(
        "<RequestAssignments SchemaVersion=\"1.00\" ACK=\"false\" RequestType=\"{kind}\"><Identification><Machine>\
         <ClientID>{smsid}</ClientID><FQDN>{name}.corp.example</FQDN><NetBIOSName>{name}</NetBIOSName><SID/></Machine>\
         <User/></Identification><PolicySource>SMS:P01</PolicySource><Resource ResourceType=\"Machine\"/>\
         <ServerCookie>{cookie}</ServerCookie></RequestAssignments>"
    );
    RequestAssignments::from_xml(&text).unwrap()
}

const SAMPLE_ID: &str = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10";

fn hinv(smsid: &SmsId, report_type: &str, version: &str) -> HinvReport {
    let text = include_str!("../../model/tests/documents/hinv/full.xml")
        .replace(SAMPLE_ID, &smsid.to_string())
        .replace(
            "<ReportType>Delta</ReportType>",
            &format!("<ReportType>{report_type}</ReportType>"),
        )
        .replace("<Version>1.0</Version>", &format!("<Version>{version}</Version>"));
    HinvReport(cmmp_model::hinv::Report::from_xml(&text).unwrap())
}

/// A hardware inventory report with the given `(Content, DeviceID, FreeSpace)` disks.
fn hinv_disks(
    smsid: &SmsId,
    report_type: &str,
    version: &str,
    disks: &[(&str, &str, &str)],
) -> HinvReport {
    let instances: String = disks
        .iter()
        .map(|(content, id, free)| {
            format!(
                "<Instance Content=\"{content}\" Namespace=\"\\\\WS01\\root\\cimv2\" Class=\"Win32_LogicalDisk\" \
                 ParentClass=\"Win32_LogicalDisk\"><Win32_LogicalDisk><DeviceID>{id}</DeviceID>\
                 <FreeSpace>{free}</FreeSpace></Win32_LogicalDisk></Instance>"
            )
        })
        .collect();
    let sample = include_str!("../../model/tests/documents/hinv/full.xml");
    let head = &sample[..sample.find("<ReportBody>").unwrap()];
    let text = format!("{head}<ReportBody>{instances}</ReportBody></Report>")
        .replace(SAMPLE_ID, &smsid.to_string())
        .replace(
            "<ReportType>Delta</ReportType>",
            &format!("<ReportType>{report_type}</ReportType>"),
        )
        .replace("<Version>1.0</Version>", &format!("<Version>{version}</Version>"));
    HinvReport(cmmp_model::hinv::Report::from_xml(&text).unwrap())
}

fn ddr(smsid: &SmsId, uuid: &str) -> DdrReport {
    let text = include_str!("../../model/tests/documents/ddr/full.xml")
        .replace(SAMPLE_ID, &smsid.to_string())
        .replace("4C4C4544-0042-3510-8052-B4C04F4E3432", uuid);
    DdrReport(cmmp_model::ddr::Report::from_xml(&text).unwrap())
}

fn state(smsid: &SmsId, serials: &[u32]) -> StateMessages {
    let messages: String = serials
        .iter()
        .map(|s| {
            format!(
                "<StateMessage MessageTime=\"20250131101530.010000+000\" SerialNumber=\"{s}\"><Topic ID=\"x'); DROP TABLE clients; --\" \
                 Type=\"701\" IDType=\"0\"/><State ID=\"0\" Criticality=\"0\"/><UserParameters Flags=\"0\" Count=\"0\"/></StateMessage>"
            )
        })
        .collect();
    let sample = include_str!("../../model/tests/documents/state/app-and-heartbeat.xml");
    let head = &sample[..sample.find("<ReportBody>").unwrap()];
    let text = format!("{head}<ReportBody>{messages}</ReportBody></Report>")
        .replace(SAMPLE_ID, &smsid.to_string());
    StateMessages(cmmp_model::state::Report::from_xml(&text).unwrap())
}

fn stored(h: Handled) -> (u32, u32) {
    match h {
        Handled::Accepted(Outcome::Stored { items, duplicates, .. }) => (items, duplicates),
        other => panic!("expected a stored Post, got {other:?}"),
    }
}

fn refused(h: Handled) -> Refusal {
    match h {
        Handled::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assignments(h: Handled) -> cmmp_model::policy::ReplyAssignments {
    match h {
        Handled::Assignments(r) => r,
        other => panic!("expected policy assignments, got {other:?}"),
    }
}

// ---- registration ----------------------------------------------------------------------------

#[test]
fn registration_assigns_an_uppercase_guid_smsid() {
    let mut lab = Lab::auto_all();
    let id = identity("WS01");
    let r = lab.register(&registration(&id, "WS01", &[]), Vdir::Default);
    assert_eq!((r.status, r.approval_status), (0, Some(1)));
    let smsid = r.smsid.unwrap().to_string();
    assert!(smsid.starts_with("GUID:"), "{smsid}");
    assert_eq!(smsid, smsid.to_uppercase());
    assert_eq!(r.response_type, RegistrationKind::Registration);
    // The same certificate registering again is the same client.
    let again = lab.register(&registration(&id, "WS01", &[]), Vdir::Default);
    assert_eq!(again.smsid, r.smsid);
    assert_eq!(lab.site.clients().unwrap().len(), 1);
}

#[test]
fn a_proposed_smsid_is_kept_when_free_and_replaced_when_taken() {
    let mut lab = Lab::auto_all();
    let proposed: SmsId = "GUID:0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".parse().unwrap();
    let propose = |identity: &Identity, name: &str| {
        build_request(
            &reg_info(name, AgentType::AdvancedClient, &[]),
            identity,
            RegistrationSigner::Own,
            HashAlgorithm::Sha256,
            RegistrationKind::Registration,
            MaybeSmsId(Some(proposed)),
            IsoTime::now(),
        )
        .unwrap()
    };
    let a = identity("A");
    let first = lab.register(&propose(&a, "A"), Vdir::Default);
    assert_eq!(first.smsid, Some(proposed));
    let b = identity("B");
    let second = lab.register(&propose(&b, "B"), Vdir::Default);
    assert_eq!(second.status, 0);
    assert_ne!(second.smsid, Some(proposed), "a taken SMSID is never issued twice");
}

#[test]
fn trusted_approval_approves_windowsauth_registrations_only() {
    let mut lab = Lab::stock();
    let anonymous = identity("ANON");
    let r = lab.register(&registration(&anonymous, "ANON", &[]), Vdir::Default);
    // Registered (the loop ends) but not approved (M2, M4).
    assert_eq!((r.status, r.approval_status), (0, Some(-1)));
    let domain = identity("DOM");
    let r = lab.register(&registration(&domain, "DOM", &[]), Vdir::WindowsAuth);
    assert_eq!((r.status, r.approval_status), (0, Some(1)));
}

#[test]
fn manual_approval_waits_for_an_admin() {
    let mut lab =
        Lab::new(SiteConfig { approval: ApprovalPolicy::Manual, ..SiteConfig::default() });
    let c = lab.enrol("WS01", Vdir::WindowsAuth);
    assert!(
        !lab.site.client(&c.smsid).unwrap().unwrap().approved,
        "manual: even windowsauth waits"
    );
    let r = refused(lab.policy(&c, AssignmentRequestKind::Always, ""));
    assert_eq!(r, Refusal::NotApproved);
    assert_eq!(r.mp_answer(DeliveryKind::Invoke), MpAnswer::EmptyReply);
    lab.site.approve(&c.smsid).unwrap();
    let reply = assignments(lab.policy(&c, AssignmentRequestKind::Always, ""));
    assert_eq!(reply.policy_assignment.len(), 2);
    let again = lab.register(&registration(&c.identity, "WS01", &[]), Vdir::Default);
    assert_eq!(again.approval_status, Some(1));
    lab.site.unapprove(&c.smsid).unwrap();
    assert_eq!(refused(lab.policy(&c, AssignmentRequestKind::Always, "")), Refusal::NotApproved);
}

#[test]
fn auto_all_approves_everyone_and_native_mode_reports_not_applicable() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    assert!(lab.site.client(&c.smsid).unwrap().unwrap().approved);
    let mut native = Lab::new(SiteConfig {
        mode: SiteMode::Native,
        approval: ApprovalPolicy::Manual,
        ..SiteConfig::default()
    });
    let id = identity("N");
    let r = native.register(&registration(&id, "N", &[]), Vdir::Default);
    assert_eq!((r.status, r.approval_status), (0, Some(2)));
}

#[test]
fn registration_pending_switch_answers_pending_until_confirmation() {
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.registration_pending = true;
    let mut lab = Lab::new(config);
    let id = identity("WS01");
    let first = lab.register(&registration(&id, "WS01", &[]), Vdir::Default);
    assert_eq!((first.status, first.approval_status), (1, Some(0)));
    let smsid = first.smsid.unwrap();
    // No policy or inventory while pending (field notes §3).
    let pending = Client { identity: id, smsid, name: "WS01".to_owned() };
    assert_eq!(
        refused(lab.policy(&pending, AssignmentRequestKind::Always, "")),
        Refusal::RegistrationPending
    );
    assert_eq!(
        refused(lab.post(&pending, &hinv(&smsid, "Full", "1.0"), vec![])),
        Refusal::RegistrationPending
    );
    // The transport's registration loop drives the site to completion.
    let mut flow = RegistrationFlow::new(Backoff::immediate(5));
    let mut step = flow.start();
    let mut sent = 0;
    let done = loop {
        match step {
            Step::Send { kind, smsid, .. } => {
                sent += 1;
                let req = build_request(
                    &reg_info("WS01", AgentType::AdvancedClient, &[]),
                    &pending.identity,
                    RegistrationSigner::Own,
                    HashAlgorithm::Sha256,
                    kind,
                    smsid,
                    IsoTime::now(),
                )
                .unwrap();
                let r = lab.register(&req, Vdir::Default);
                step = flow.answer(&r).unwrap();
            }
            Step::Done { smsid, approval } => break (smsid, approval),
        }
    };
    assert_eq!(done.0, smsid);
    assert_eq!(sent, 2, "registration (pending), then confirmation (registered)");
    assert_eq!(stored(lab.post(&pending, &hinv(&smsid, "Full", "1.0"), vec![])).1, 0);
}

#[test]
fn registration_pending_fault_forces_status_1_once() {
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.faults.push(FaultSpec {
        endpoint: "MP_ClientRegistration".to_owned(),
        kind: FaultKind::RegistrationPending,
        remaining: Some(1),
    });
    let mut lab = Lab::new(config);
    let id = identity("WS01");
    let decoded = encode(&ClientRegistration(registration(&id, "WS01", &[])), vec![], None);
    let fault = lab.site.fault_for(&decoded.header.target_endpoint).unwrap();
    assert_eq!(fault, Some(FaultKind::RegistrationPending));
    let now = lab.now;
    let Handled::Registration(r) = lab.site.handle(&decoded, Vdir::Default, true, now).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.status, 1);
    assert_eq!(lab.site.fault_for("MP_ClientRegistration").unwrap(), None, "used up");
    let confirmed = lab.register(&confirmation(&id, "WS01", r.smsid.unwrap()), Vdir::Default);
    assert_eq!((confirmed.status, confirmed.response_type), (0, RegistrationKind::Confirmation));
}

#[test]
fn confirmation_for_an_unknown_smsid_asks_to_register_again() {
    let mut lab = Lab::auto_all();
    let id = identity("WS01");
    let unknown: SmsId = "GUID:11111111-2222-4333-8444-555555555555".parse().unwrap();
    let r = lab.register(&confirmation(&id, "WS01", unknown), Vdir::Default);
    assert_eq!((r.status, r.smsid, r.approval_status), (2, None, None));
}

#[test]
fn forged_registration_signature_is_refused() {
    let mut lab = Lab::auto_all();
    let id = identity("WS01");
    let mut req = registration(&id, "WS01", &[]);
    // Changed after signing: the signature no longer covers the Data element.
    req.data.discovery_properties.property[0].value = "EVIL".to_owned();
    let r = refused(lab.register_raw(&req, Vdir::Default));
    assert_eq!(r, Refusal::BadSignature { what: "registration" });
    // Another key signing for this certificate.
    let other = identity("OTHER");
    let mut req = registration(&id, "WS01", &[]);
    req.signature = registration(&other, "WS01", &[]).signature;
    assert_eq!(
        refused(lab.register_raw(&req, Vdir::Default)),
        Refusal::BadSignature { what: "registration" }
    );
    assert!(lab.site.clients().unwrap().is_empty());
    let log = lab.site.messages(None, 10).unwrap();
    assert!(
        log.iter().all(|m| m.outcome == MessageOutcome::Refused
            && m.reason.as_deref() == Some("bad-signature"))
    );
}

#[test]
fn expired_certificate_registration_is_refused() {
    let mut lab = Lab::auto_all();
    let two_years_ago = SystemTime::now() - StdDuration::from_secs(2 * 366 * 24 * 3600);
    let old = generate_mixed_mode_single("ConfigMgr Client", two_years_ago).unwrap();
    let r = refused(lab.register_raw(&registration(&old, "OLD", &[]), Vdir::Default));
    assert_eq!(r, Refusal::InvalidCertificate { reason: "the signing certificate has expired" });
    let mut lenient = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    lenient.switches.check_certificate_validity = false;
    let mut lab = Lab::new(lenient);
    assert_eq!(lab.register(&registration(&old, "OLD", &[]), Vdir::Default).status, 0);
}

#[test]
fn sha1_registration_is_refused_when_sha256_is_required() {
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.require_sha256 = true;
    let mut lab = Lab::new(config);
    let id = identity("WS01");
    let req = build_request(
        &reg_info("WS01", AgentType::AdvancedClient, &[]),
        &id,
        RegistrationSigner::Own,
        HashAlgorithm::Sha1,
        RegistrationKind::Registration,
        MaybeSmsId(None),
        IsoTime::now(),
    )
    .unwrap();
    assert_eq!(refused(lab.register_raw(&req, Vdir::Default)), Refusal::WeakHash);
    assert_eq!(lab.register(&registration(&id, "WS01", &[]), Vdir::Default).status, 0);
}

// ---- ISV proxy -------------------------------------------------------------------------------

#[test]
fn isv_proxy_registers_with_an_imported_certificate() {
    let mut lab = Lab::stock();
    let proxy = identity("PROXY01");
    let r = lab.register(&proxy_registration(&proxy), Vdir::Default);
    assert_eq!((r.status, r.smsid), (3, None), "not imported: rejected");
    let imported = lab.site.import_isv_proxy(proxy.signing_cert_der(), lab.now).unwrap();
    assert_eq!(lab.site.import_isv_proxy(proxy.signing_cert_der(), lab.now).unwrap(), imported);
    let r = lab.register(&proxy_registration(&proxy), Vdir::Default);
    assert_eq!((r.status, r.smsid, r.approval_status), (0, Some(imported), Some(1)));
}

#[test]
fn proxy_signed_registration_needs_a_registered_proxy() {
    let mut lab = Lab::auto_all();
    let proxy = identity("PROXY01");
    let stranger: SmsId = "GUID:0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".parse().unwrap();
    // Signature/@SMSID names nobody.
    assert_eq!(
        refused(lab.register_raw(&proxied_registration(&proxy, stranger, "MAC-07"), Vdir::Default)),
        Refusal::UnknownProxy
    );
    // Imported but not yet registered through the MP interfaces: not a registered proxy.
    let proxy_id = lab.site.import_isv_proxy(proxy.signing_cert_der(), lab.now).unwrap();
    assert_eq!(
        refused(lab.register_raw(&proxied_registration(&proxy, proxy_id, "MAC-07"), Vdir::Default)),
        Refusal::UnknownProxy
    );
    assert_eq!(lab.register(&proxy_registration(&proxy), Vdir::Default).status, 0);
    // A proxy client without the proxy's signature.
    let mut unsigned = proxied_registration(&proxy, proxy_id, "MAC-07");
    unsigned.signature.smsid = None;
    assert_eq!(refused(lab.register_raw(&unsigned, Vdir::Default)), Refusal::UnknownProxy);
    // Signed by another key under the proxy's SMSID.
    let impostor = identity("IMPOSTOR");
    let forged = build_request(
        &reg_info("MAC-07", AgentType::IsvProxyClient, &[]),
        &proxy,
        RegistrationSigner::Proxy { key: impostor.signing_key(), proxy_id },
        HashAlgorithm::Sha256,
        RegistrationKind::Registration,
        MaybeSmsId(None),
        IsoTime::now(),
    )
    .unwrap();
    assert_eq!(
        refused(lab.register_raw(&forged, Vdir::Default)),
        Refusal::BadSignature { what: "registration" }
    );
    // The real thing.
    let r = lab.register(&proxied_registration(&proxy, proxy_id, "MAC-07"), Vdir::Default);
    assert_eq!(r.status, 0);
    let smsid = r.smsid.unwrap();
    let record = lab.site.client(&smsid).unwrap().unwrap();
    assert_eq!(record.agent_type, 8);
    assert_eq!(record.proxy, Some(lab.site.client(&proxy_id).unwrap().unwrap().id));
    // The proxy signs the client's messages with its own key (source 002).
    let client = Client { identity: proxy, smsid, name: "MAC-07".to_owned() };
    assert_eq!(
        assignments(lab.policy(&client, AssignmentRequestKind::Always, "")).policy_assignment.len(),
        2
    );
    // Two proxied clients share the proxy's certificate but are two records.
    let second =
        lab.register(&proxied_registration(&client.identity, proxy_id, "MAC-08"), Vdir::Default);
    assert_ne!(second.smsid, Some(smsid));
}

// ---- blocking and identity --------------------------------------------------------------------

#[test]
fn blocked_client_is_refused_everywhere() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    lab.site.block(&c.smsid).unwrap();
    assert_eq!(refused(lab.policy(&c, AssignmentRequestKind::Always, "")), Refusal::Blocked);
    let r = refused(lab.post(&c, &hinv(&c.smsid, "Full", "1.0"), vec![]));
    assert_eq!(r, Refusal::Blocked);
    assert_eq!(r.mp_answer(DeliveryKind::Post), MpAnswer::NoReply);
    assert_eq!(refused(lab.post(&c, &state(&c.smsid, &[1]), vec![])), Refusal::Blocked);
    assert_eq!(
        refused(lab.post(&c, &ddr(&c.smsid, "4C4C4544-0000-0000-0000-000000000001"), vec![])),
        Refusal::Blocked
    );
    let status_text = include_str!("../../model/tests/documents/status/ccmhttp-status.xml")
        .replace(SAMPLE_ID, &c.smsid.to_string());
    let status = StatusMessage(cmmp_model::status::Status::from_xml(&status_text).unwrap());
    assert_eq!(refused(lab.post(&c, &status, vec![])), Refusal::Blocked);
    // Registration answers Status 3, rejected.
    let r = lab.register(&registration(&c.identity, "WS01", &[]), Vdir::Default);
    assert_eq!((r.status, r.smsid), (3, None));
    // Policy bodies, even with valid signed headers.
    let headers = token(&c);
    let policy_id = lab.site.config().policies[0].policy_id.clone();
    let e = lab
        .site
        .policy_body(
            &PolicyBodyRequest { policy_id: &policy_id, version: None, headers: &headers },
            lab.now,
        )
        .unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::Blocked));
    // Location requests that name it.
    let content = ContentLocation(
        cmmp_model::location::ContentLocationRequest::from_xml(include_str!(
            "../../model/tests/documents/location/content-request.xml"
        ))
        .unwrap(),
    );
    let env = Envelope { source_id: Some(c.smsid), ..Envelope::default() };
    let e = lab.site.locate(&Inbound::ContentLocation(content.clone()), &env, lab.now).unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::Blocked));
    // Without a SourceID a location request is anonymous (M1: `MP_LocationManager` is `All`).
    assert!(matches!(lab.post(&c, &content, vec![]), Handled::Location(_)));
    assert!(lab.refusals(&c.smsid).iter().all(|r| r == "blocked"));
    lab.site.unblock(&c.smsid).unwrap();
    assert!(matches!(lab.policy(&c, AssignmentRequestKind::Always, ""), Handled::Assignments(_)));
}

#[test]
fn a_new_certificate_with_a_blocked_hardware_id_is_rejected() {
    let mut lab = Lab::auto_all();
    let hw = [("HardwareID1", "2:3B6E0A1F")];
    let first = identity("BLK-1");
    let r = lab.register(&registration(&first, "WS01", &hw), Vdir::Default);
    lab.site.block(&r.smsid.unwrap()).unwrap();
    let second = identity("BLK-2");
    assert_eq!(lab.register(&registration(&second, "WS01", &hw), Vdir::Default).status, 3);
    // M3: a new certificate and a new hardware ID rejoin.
    let third = identity("BLK-3");
    assert_eq!(
        lab.register(&registration(&third, "WS01", &[("HardwareID1", "2:FFFF")]), Vdir::Default)
            .status,
        0
    );
}

#[test]
fn automatic_conflict_resolution_creates_a_new_record() {
    let mut lab = Lab::auto_all();
    assert_eq!(lab.site.config().conflict_resolution, ConflictResolution::Automatic);
    let hw = [("HardwareID1", "2:3B6E0A1F")];
    let old = lab.register(&registration(&identity("AUTO-OLD"), "WS01", &hw), Vdir::Default);
    let new = lab.register(&registration(&identity("AUTO-NEW"), "WS01", &hw), Vdir::Default);
    assert_eq!(new.status, 0);
    assert_ne!(old.smsid, new.smsid);
    let clients = lab.site.clients().unwrap();
    assert_eq!(clients.len(), 2);
    assert!(clients[0].obsolete && !clients[1].obsolete);
    assert!(lab.site.conflicts(false).unwrap().is_empty());
}

#[test]
fn manual_conflict_resolution_parks_the_record() {
    let mut lab = Lab::new(SiteConfig {
        approval: ApprovalPolicy::AutoAll,
        conflict_resolution: ConflictResolution::Manual,
        ..SiteConfig::default()
    });
    let hw = [("HardwareID1", "2:3B6E0A1F")];
    let old = lab.enrol("WS01", Vdir::Default);
    lab.register(&registration(&old.identity, "WS01", &hw), Vdir::Default);
    assert_eq!(stored(lab.post(&old, &hinv(&old.smsid, "Full", "1.0"), vec![])).0, 6);
    // The machine comes back with a new certificate (reinstalled): parked.
    let new_id = identity("WS01-REINSTALLED");
    let parked = lab.register(&registration(&new_id, "WS01", &hw), Vdir::Default);
    assert_eq!((parked.status, parked.approval_status), (1, Some(0)));
    let parked_smsid = parked.smsid.unwrap();
    let conflicts = lab.site.conflicts(true).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].hardware_id, "2:3B6E0A1F");
    let client = Client { identity: new_id, smsid: parked_smsid, name: "WS01".to_owned() };
    assert_eq!(
        refused(lab.policy(&client, AssignmentRequestKind::Always, "")),
        Refusal::ConflictParked
    );
    // Confirmations stay pending until an administrator decides.
    assert_eq!(
        lab.register(&confirmation(&client.identity, "WS01", parked_smsid), Vdir::Default).status,
        1
    );
    lab.site.resolve_conflict(conflicts[0].id, Resolution::Merge, lab.now).unwrap();
    let done = lab.register(&confirmation(&client.identity, "WS01", parked_smsid), Vdir::Default);
    assert_eq!((done.status, done.smsid), (0, Some(parked_smsid)));
    // Merged: one record, the old history, the new certificate and SMSID.
    let clients = lab.site.clients().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].smsid, parked_smsid);
    assert_eq!(clients[0].signing_cert, client.identity.signing_cert_der());
    assert_eq!(lab.site.inventory(&parked_smsid).unwrap().len(), 6);
    assert!(lab.site.conflicts(true).unwrap().is_empty());
    assert!(matches!(
        lab.policy(&client, AssignmentRequestKind::Always, ""),
        Handled::Assignments(_)
    ));
    let e = lab.site.resolve_conflict(conflicts[0].id, Resolution::New, lab.now).unwrap_err();
    assert!(e.to_string().contains("already resolved"), "{e}");
}

#[test]
fn conflicts_resolve_as_a_new_record_or_blocked() {
    let mut lab = Lab::new(SiteConfig {
        approval: ApprovalPolicy::AutoAll,
        conflict_resolution: ConflictResolution::Manual,
        ..SiteConfig::default()
    });
    let hw = [("HardwareID1", "2:AA")];
    let old = lab.register(&registration(&identity("A"), "A", &hw), Vdir::Default).smsid.unwrap();
    let b = identity("B");
    let parked = lab.register(&registration(&b, "B", &hw), Vdir::Default).smsid.unwrap();
    let id = lab.site.conflicts(true).unwrap()[0].id;
    lab.site.resolve_conflict(id, Resolution::New, lab.now).unwrap();
    assert_eq!(lab.register(&confirmation(&b, "B", parked), Vdir::Default).status, 0);
    assert!(lab.site.client(&old).unwrap().unwrap().obsolete);
    // A third copy, blocked by the administrator.
    let c = identity("C");
    let hw2 = [("HardwareID1", "2:BB")];
    lab.register(&registration(&identity("D"), "D", &hw2), Vdir::Default);
    let parked = lab.register(&registration(&c, "C", &hw2), Vdir::Default).smsid.unwrap();
    let id = lab.site.conflicts(true).unwrap()[0].id;
    lab.site.resolve_conflict(id, Resolution::Block, lab.now).unwrap();
    assert_eq!(lab.register(&confirmation(&c, "C", parked), Vdir::Default).status, 3);
}

/// Field notes M18: an open that moves the site from mixed to native mode deletes the records
/// registered with self-signed certificates, and they must register again. A PKI record
/// stays; a conflict that loses its existing record leaves the parked one a client of its own.
#[test]
fn switching_to_native_mode_deletes_self_signed_records() {
    let dir = TempDir::new("certificate-reset");
    let db = dir.join("site.db");
    let mixed = SiteConfig {
        approval: ApprovalPolicy::AutoAll,
        conflict_resolution: ConflictResolution::Manual,
        ..SiteConfig::default()
    };
    let native = SiteConfig { mode: SiteMode::Native, ..mixed.clone() };
    let open = |config: &SiteConfig| {
        let now = Utc::now();
        Lab { site: Site::open(config.clone(), &db, now).unwrap(), now }
    };
    let ca = Pair::new("cmmp test client CA", None);
    let pki = Arc::new(Pair::new("PKI01", Some(&ca)).identity());
    let hw = [("HardwareID1", "2:CC")];

    let mut lab = open(&mixed);
    assert!(lab.site.certificate_reset().is_empty());
    let a = lab.enrol("A", Vdir::Default);
    assert_eq!(stored(lab.post(&a, &state(&a.smsid, &[1]), vec![])), (1, 0));
    let b = lab.register(&registration(&identity("B"), "B", &hw), Vdir::Default).smsid.unwrap();
    // The PKI machine reports B's hardware ID: parked against B.
    let parked = lab.register(&registration(&pki, "PKI01", &hw), Vdir::Default);
    assert_eq!(parked.status, 1);
    let p =
        Client { identity: Arc::clone(&pki), smsid: parked.smsid.unwrap(), name: "PKI01".into() };
    // Two self-signed records with one hardware ID: D is parked against C.
    let hw2 = [("HardwareID1", "2:DD")];
    let c = lab.register(&registration(&identity("C"), "C", &hw2), Vdir::Default).smsid.unwrap();
    let d = lab.register(&registration(&identity("D"), "D", &hw2), Vdir::Default);
    assert_eq!(d.status, 1);
    let d = d.smsid.unwrap();
    drop(lab);

    // Mixed again: nothing changes.
    let lab = open(&mixed);
    assert!(lab.site.certificate_reset().is_empty());
    assert_eq!(lab.site.clients().unwrap().len(), 5);
    drop(lab);

    let mut lab = open(&native);
    assert_eq!(lab.site.certificate_reset(), [a.smsid, b, c, d]);
    let clients = lab.site.clients().unwrap();
    assert_eq!(clients.iter().map(|c| c.smsid).collect::<Vec<_>>(), [p.smsid]);
    let conflicts = lab.site.conflicts(false).unwrap();
    let how = |k: &cmmp_emulator::store::ConflictRecord| {
        (k.parked, k.resolved.as_ref().map(|(_, how)| how.clone()))
    };
    let reset = Some("certificate-reset".to_owned());
    // PKI01 stays, a client of its own; D went with C.
    assert_eq!(
        conflicts.iter().map(how).collect::<Vec<_>>(),
        [(Some(clients[0].id), reset.clone()), (None, reset)]
    );
    assert_eq!(lab.register(&confirmation(&pki, "PKI01", p.smsid), Vdir::Default).status, 0);
    assert!(matches!(lab.policy(&p, AssignmentRequestKind::Always, ""), Handled::Assignments(_)));
    // A is unknown now; the message log keeps what it sent before, without the record.
    assert_eq!(refused(lab.post(&a, &state(&a.smsid, &[2]), vec![])), Refusal::UnknownClient);
    let log = lab.site.messages(Some(&a.smsid), 10).unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|m| m.client.is_none()));
    assert_eq!(log.iter().filter(|m| m.outcome == MessageOutcome::Stored).count(), 1);
    // It registers again, self-signed as before, and is served.
    let again = lab.enrol("A", Vdir::Default);
    assert_eq!(stored(lab.post(&again, &state(&again.smsid, &[2]), vec![])), (1, 0));
    drop(lab);

    // Native again: no switch, no reset. Mixed and back: the new record goes too.
    assert!(open(&native).site.certificate_reset().is_empty());
    assert!(open(&mixed).site.certificate_reset().is_empty());
    let lab = open(&native);
    assert_eq!(lab.site.certificate_reset(), [again.smsid]);
    assert_eq!(lab.site.clients().unwrap().len(), 1);
    drop(lab);

    // A database that never recorded its mode (an older one) is not reset by a native open.
    open(&mixed).enrol("A", Vdir::Default);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM site_state WHERE name = 'site_mode'", []).unwrap();
    drop(conn);
    let lab = open(&native);
    assert!(lab.site.certificate_reset().is_empty());
    assert_eq!(lab.site.clients().unwrap().len(), 2);
}

#[test]
fn hardware_id_comes_from_the_ddr_when_registration_has_none() {
    let mut lab = Lab::new(SiteConfig {
        approval: ApprovalPolicy::AutoAll,
        conflict_resolution: ConflictResolution::Manual,
        ..SiteConfig::default()
    });
    let a = lab.enrol("A", Vdir::Default);
    assert_eq!(lab.site.client(&a.smsid).unwrap().unwrap().hardware_id, None);
    let uuid = "4C4C4544-0042-3510-8052-B4C04F4E3432";
    assert_eq!(stored(lab.post(&a, &ddr(&a.smsid, uuid), vec![])).0, 11);
    assert_eq!(
        lab.site.client(&a.smsid).unwrap().unwrap().hardware_id.as_deref(),
        Some("SMBIOS:4C4C4544-0042-3510-8052-B4C04F4E3432")
    );
    let discovery = lab.site.discovery(&a.smsid).unwrap().unwrap();
    // The full report as it came in the attachment, not the header-only body.
    assert_eq!(discovery.report_xml, ddr(&a.smsid, uuid).0.to_xml().unwrap());
    assert!(discovery.report_xml.contains("<Instance "), "{}", discovery.report_xml);
    assert_eq!(discovery.ad_site.as_deref(), Some("Default-First-Site-Name"));
    assert_eq!(discovery.ip_addresses[0], "10.20.30.41");
    // A second client reporting the same SMBIOS UUID is parked.
    let b = lab.enrol("B", Vdir::Default);
    stored(lab.post(&b, &ddr(&b.smsid, uuid), vec![]));
    assert!(lab.site.client(&b.smsid).unwrap().unwrap().conflict.is_some());
    assert_eq!(refused(lab.post(&b, &state(&b.smsid, &[1]), vec![])), Refusal::ConflictParked);
}

#[test]
fn ignored_hardware_ids_do_not_conflict() {
    let mut config = SiteConfig {
        approval: ApprovalPolicy::AutoAll,
        conflict_resolution: ConflictResolution::Manual,
        ..SiteConfig::default()
    };
    config.switches.ignored_hardware_ids = vec!["2:00000000".to_owned()];
    let mut lab = Lab::new(config);
    let hw = [("HardwareID1", "2:00000000")];
    assert_eq!(lab.register(&registration(&identity("A"), "A", &hw), Vdir::Default).status, 0);
    assert_eq!(lab.register(&registration(&identity("B"), "B", &hw), Vdir::Default).status, 0);
    assert!(lab.site.conflicts(false).unwrap().is_empty());
}

// ---- Posts -----------------------------------------------------------------------------------

#[test]
fn unapproved_clients_send_inventory_only_if_the_site_allows() {
    let mut lab =
        Lab::new(SiteConfig { approval: ApprovalPolicy::Manual, ..SiteConfig::default() });
    let c = lab.enrol("WS01", Vdir::Default);
    assert_eq!(refused(lab.post(&c, &hinv(&c.smsid, "Full", "1.0"), vec![])), Refusal::NotApproved);
    // Discovery and state messages are taken from registered unapproved clients.
    stored(lab.post(&c, &ddr(&c.smsid, "4C4C4544-0000-0000-0000-00000000000A"), vec![]));
    stored(lab.post(&c, &state(&c.smsid, &[1]), vec![]));
    let mut lab = Lab::new(SiteConfig {
        approval: ApprovalPolicy::Manual,
        allow_unapproved_inventory: true,
        ..SiteConfig::default()
    });
    let c = lab.enrol("WS01", Vdir::Default);
    assert_eq!(stored(lab.post(&c, &hinv(&c.smsid, "Full", "1.0"), vec![])).0, 6);
    assert_eq!(refused(lab.policy(&c, AssignmentRequestKind::Always, "")), Refusal::NotApproved);
}

#[test]
fn full_inventory_replaces_and_delta_applies() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let full = hinv_disks(
        &c.smsid,
        "Full",
        "1.0",
        &[("New", "C:", "100"), ("New", "D:", "200"), ("New", "E:", "300")],
    );
    assert_eq!(stored(lab.post(&c, &full, vec![])).0, 3);
    let delta = hinv_disks(
        &c.smsid,
        "Delta",
        "1.1",
        &[("Updated", "C:", "99"), ("Deleted", "D:", ""), ("New", "F:", "400")],
    );
    stored(lab.post(&c, &delta, vec![]));
    let inv = lab.site.inventory(&c.smsid).unwrap();
    let keys: Vec<&str> = inv.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["DeviceID=C:", "DeviceID=E:", "DeviceID=F:"]);
    assert!(inv[0].xml.contains("<FreeSpace>99</FreeSpace>"), "{}", inv[0].xml);
    // A new full report replaces everything.
    stored(lab.post(&c, &hinv_disks(&c.smsid, "Full", "2.0", &[("New", "Z:", "1")]), vec![]));
    let inv = lab.site.inventory(&c.smsid).unwrap();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].key, "DeviceID=Z:");
    let versions = lab.site.inventory_versions(&c.smsid).unwrap();
    assert_eq!(versions[0].version, Some((2, 0)));
    assert_eq!(versions[0].action, "{00000000-0000-0000-0000-000000000001}");
}

#[test]
fn delta_out_of_sequence_requests_resync() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    stored(lab.post(&c, &hinv(&c.smsid, "Full", "1.0"), vec![]));
    stored(lab.post(&c, &hinv(&c.smsid, "Delta", "1.1"), vec![]));
    // 1.2 is missing.
    let r = refused(lab.post(&c, &hinv(&c.smsid, "Delta", "1.3"), vec![]));
    assert_eq!(
        r,
        Refusal::ResyncRequested { action: "{00000000-0000-0000-0000-000000000001}".to_owned() }
    );
    let v = &lab.site.inventory_versions(&c.smsid).unwrap()[0];
    assert_eq!(v.version, Some((1, 1)));
    assert!(v.resync_requested.is_some());
    // Until a full report arrives, even the missing delta is refused.
    assert!(matches!(
        refused(lab.post(&c, &hinv(&c.smsid, "Delta", "1.2"), vec![])),
        Refusal::ResyncRequested { .. }
    ));
    stored(lab.post(&c, &hinv(&c.smsid, "Full", "2.0"), vec![]));
    let v = &lab.site.inventory_versions(&c.smsid).unwrap()[0];
    assert_eq!((v.version, v.resync_requested), (Some((2, 0)), None));
    stored(lab.post(&c, &hinv(&c.smsid, "Delta", "2.1"), vec![]));
    assert!(lab.refusals(&c.smsid).iter().all(|r| r == "resync-requested"));
}

#[test]
fn delta_without_a_full_report_requests_resync() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    assert!(matches!(
        refused(lab.post(&c, &hinv(&c.smsid, "Delta", "1.1"), vec![])),
        Refusal::ResyncRequested { .. }
    ));
    assert!(lab.site.inventory(&c.smsid).unwrap().is_empty());
    // A malformed full report is refused as such.
    assert!(matches!(
        refused(lab.post(&c, &hinv(&c.smsid, "Full", "one"), vec![])),
        Refusal::Malformed { .. }
    ));
}

#[test]
fn state_messages_dedupe_by_serial() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    assert_eq!(stored(lab.post(&c, &state(&c.smsid, &[7, 8]), vec![])), (2, 0));
    assert_eq!(stored(lab.post(&c, &state(&c.smsid, &[8, 9]), vec![])), (1, 1));
    let serials: Vec<u32> =
        lab.site.state_messages(&c.smsid).unwrap().iter().map(|s| s.serial).collect();
    assert_eq!(serials, [7, 8, 9]);
    // Text that looks like SQL is data (HS-61): the topic ID is stored verbatim.
    assert_eq!(
        lab.site.state_messages(&c.smsid).unwrap()[0].topic_id,
        "x'); DROP TABLE clients; --"
    );
    assert_eq!(lab.site.clients().unwrap().len(), 1);
}

#[test]
fn redelivered_post_is_stored_once() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let signer = c.signer();
    let decoded = encode(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&signer));
    assert_eq!(stored(lab.handle(&decoded, Vdir::Default)).0, 6);
    lab.later(60);
    let again = lab.handle(&decoded, Vdir::Default);
    assert!(matches!(again, Handled::Accepted(Outcome::Duplicate { .. })), "{again:?}");
    assert_eq!(lab.site.inventory(&c.smsid).unwrap().len(), 6);
    let log = lab.site.messages(Some(&c.smsid), 10).unwrap();
    let outcomes: Vec<MessageOutcome> = log.iter().take(2).map(|m| m.outcome).collect();
    assert_eq!(outcomes, [MessageOutcome::Duplicate, MessageOutcome::Stored]);
    assert_eq!(log[0].message_id, log[1].message_id);

    // M20 literally: with the switch off every delivery is processed; the serial numbers of
    // state messages still make the redelivery harmless.
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.dedupe_message_ids = false;
    let mut lab = Lab::new(config);
    let c = lab.enrol("WS01", Vdir::Default);
    let signer = c.signer();
    let decoded = encode(&state(&c.smsid, &[1, 2]), vec![], Some(&signer));
    assert_eq!(stored(lab.handle(&decoded, Vdir::Default)), (2, 0));
    assert_eq!(stored(lab.handle(&decoded, Vdir::Default)), (0, 2));
}

#[test]
fn unknown_client_is_refused_and_logged() {
    let mut lab = Lab::auto_all();
    let ghost = Client {
        identity: identity("GHOST"),
        smsid: "GUID:99999999-2222-4333-8444-555555555555".parse().unwrap(),
        name: "GHOST".to_owned(),
    };
    let r = refused(lab.post(&ghost, &state(&ghost.smsid, &[1]), vec![]));
    assert_eq!(
        (r.clone(), r.mp_answer(DeliveryKind::Post)),
        (Refusal::UnknownClient, MpAnswer::NoReply)
    );
    let r = refused(lab.policy(&ghost, AssignmentRequestKind::Always, ""));
    assert_eq!(
        (r.clone(), r.mp_answer(DeliveryKind::Invoke)),
        (Refusal::UnknownClient, MpAnswer::EmptyReply)
    );
    let log = lab.site.messages(None, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|m| m.reason.as_deref() == Some("unknown-client") && m.client.is_none())
    );
    assert_eq!(log[0].smsid.as_deref(), Some("GUID:99999999-2222-4333-8444-555555555555"));
    // The admin's view of one SMSID includes what was refused for it, record or not.
    assert_eq!(lab.site.messages(Some(&ghost.smsid), 10).unwrap().len(), 2);
    let other: SmsId = "GUID:99999999-2222-4333-8444-555555555556".parse().unwrap();
    assert!(lab.site.messages(Some(&other), 10).unwrap().is_empty());
}

/// The listener verifies `PayloadSignature` on its decode threads and hands the key to
/// `Site::handle_verified`; only the registered key may spare the committer the check.
#[test]
fn a_key_verified_elsewhere_counts_only_when_it_is_the_registered_one() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let thief = identity("THIEF");
    let forged = Signer::new(thief.signing_key(), c.smsid, HashAlgorithm::Sha256).unwrap();
    let decoded = encode(&state(&c.smsid, &[1]), vec![], Some(&forged));
    // The thief's key did verify the thief's signature, but it is not the registered key.
    let thief_key = thief.signing_key().public_key().unwrap();
    let handled = lab
        .site
        .handle_verified(&decoded, Vdir::Default, false, Some(&thief_key), lab.now)
        .unwrap();
    assert_eq!(refused(handled), Refusal::BadSignature { what: "PayloadSignature" });
    // The registered key, with a genuine signature: stored, as without the hint.
    let own = c.identity.signing_key().public_key().unwrap();
    let decoded = encode(&state(&c.smsid, &[2]), vec![], Some(&c.signer()));
    let handled =
        lab.site.handle_verified(&decoded, Vdir::Default, false, Some(&own), lab.now).unwrap();
    assert_eq!(stored(handled), (1, 0));
}

#[test]
fn messages_must_carry_the_registered_clients_signature() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    // M1: policy requests must be signed.
    let request = policy_request(&c.smsid, "WS01", AssignmentRequestKind::Always, "");
    let env = Envelope { source_id: Some(c.smsid), ..Envelope::default() };
    let e = lab.site.policy_assignments(&request, &env, lab.now).unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::Unsigned));
    // Signed with a key the client did not register.
    let thief = Client { identity: identity("THIEF"), smsid: c.smsid, name: "WS01".to_owned() };
    assert_eq!(
        refused(lab.policy(&thief, AssignmentRequestKind::Always, "")),
        Refusal::BadSignature { what: "PayloadSignature" }
    );
    assert_eq!(
        refused(lab.post(&thief, &hinv(&c.smsid, "Full", "1.0"), vec![])),
        Refusal::BadSignature { what: "PayloadSignature" }
    );
    // State messages may come unsigned unless the site requires signing (M14).
    let decoded = encode(&state(&c.smsid, &[1]), vec![], None);
    stored(lab.handle(&decoded, Vdir::Default));
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.require_signing = true;
    let mut strict = Lab::new(config);
    let c = strict.enrol("WS01", Vdir::Default);
    let decoded = encode(&state(&c.smsid, &[1]), vec![], None);
    assert_eq!(refused(strict.handle(&decoded, Vdir::Default)), Refusal::Unsigned);
}

#[test]
fn a_message_naming_two_clients_is_refused() {
    let mut lab = Lab::auto_all();
    let a = lab.enrol("A", Vdir::Default);
    let b = lab.enrol("B", Vdir::Default);
    // Signed as A (SourceID A), body about B.
    assert_eq!(
        refused(lab.post(&a, &hinv(&b.smsid, "Full", "1.0"), vec![])),
        Refusal::IdentityMismatch
    );
    assert!(lab.site.inventory(&b.smsid).unwrap().is_empty());
}

#[test]
fn file_collection_stores_attachments_by_id() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let text = include_str!("../../model/tests/documents/filecoll/full.xml")
        .replace(SAMPLE_ID, &c.smsid.to_string());
    let kind = FileCollection(cmmp_model::filecoll::Report::from_xml(&text).unwrap());
    let files = vec![
        Attachment::new("1", b"setup log".to_vec()),
        Attachment::new("2", b"127.0.0.1 localhost".to_vec()),
    ];
    assert_eq!(stored(lab.post(&c, &kind, files)).0, 2);
    let files = lab.site.collected_files(&c.smsid).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        (files[0].name.as_str(), files[0].content.as_deref()),
        ("setupact.log", Some(&b"setup log"[..]))
    );
    assert_eq!(files[1].content.as_deref(), Some(&b"127.0.0.1 localhost"[..]));
    let versions = lab.site.inventory_versions(&c.smsid).unwrap();
    assert_eq!(
        versions[0].action,
        "{00000000-0000-0000-0000-000000000010}/{4D5E6F70-8192-4A3B-9C4D-5E6F708192A3}"
    );
}

#[test]
fn status_and_metering_messages_are_stored() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let text = include_str!("../../model/tests/documents/status/ccmhttp-status.xml")
        .replace(SAMPLE_ID, &c.smsid.to_string());
    let status = StatusMessage(cmmp_model::status::Status::from_xml(&text).unwrap());
    assert_eq!(stored(lab.post(&c, &status, vec![])).0, 1);
    assert_eq!(lab.site.status_messages(&c.smsid).unwrap()[0].status_type, "CCM_CcmHttp_Status");
    let text = include_str!("../../model/tests/documents/metering/full.xml")
        .replace(SAMPLE_ID, &c.smsid.to_string());
    let metering = SoftwareMetering(cmmp_model::metering::Report::from_xml(&text).unwrap());
    let (items, _) = stored(lab.post(&c, &metering, vec![]));
    assert!(items >= 3);
    let rows = lab.site.metering(&c.smsid).unwrap();
    assert_eq!(rows[0].file_name, "WINWORD.EXE");
    assert_eq!(rows[1].end_time, None);
}

// ---- policy ----------------------------------------------------------------------------------

#[test]
fn policy_assignments_full_then_delta_with_the_current_cookie() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let full = assignments(lab.policy(&c, AssignmentRequestKind::Always, ""));
    assert_eq!(full.reply_type, AssignmentReplyKind::Full);
    assert_eq!(full.policy_source, "SMS:P01");
    assert_eq!(full.identification.machine.client_id, c.smsid);
    let cookie = full.server_cookie.clone();
    assert_eq!(cookie.len(), "2025-01-31 10:05:13.447".len(), "{cookie}");
    assert_eq!(cookie, lab.site.server_cookie().unwrap());
    let first = &full.policy_assignment[0].policy;
    let spec = &lab.site.config().policies[0];
    assert_eq!(
        first.policy_location.value,
        format!("http://<mp>/SMS_MP/.sms_pol?{}.1_00", spec.policy_id)
    );
    assert!(first.policy_location.policy_hash.as_deref().unwrap().starts_with("SHA256:"));
    let categories: Vec<&str> =
        full.policy_assignment.iter().map(|a| a.policy.policy_category.as_str()).collect();
    assert_eq!(categories, ["ClientAgentConfig", "SoftwareUpdatesClientConfig"]);
    // Nothing new since the cookie.
    let delta = assignments(lab.policy(&c, AssignmentRequestKind::OnUpdate, &cookie));
    assert_eq!(delta.reply_type, AssignmentReplyKind::Delta);
    assert!(delta.policy_assignment.is_empty());
    assert_eq!(delta.server_cookie, cookie);
    // A stale cookie gets everything.
    let stale =
        assignments(lab.policy(&c, AssignmentRequestKind::OnUpdate, "2001-01-01 00:00:00.000"));
    assert_eq!(stale.reply_type, AssignmentReplyKind::Full);
}

/// Field notes M16: a full reply carries one `Signature/Reference` per assignment, in order,
/// `AlgID` 32780 with the SHA-256-with-RSA OID, signed with the MP's key over the UTF-16LE of
/// the assignment as written (the emulator's \[UNCONFIRMED\] choice of bytes). A delta reply
/// has nothing to sign; the switch and a site without a signer leave the block out.
#[test]
fn full_policy_replies_sign_each_assignment() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    assert!(assignments(lab.policy(&c, AssignmentRequestKind::Always, "")).signature.is_none());
    let mp = generate_mixed_mode_single("MP01", SystemTime::now()).unwrap();
    lab.site.set_policy_signer(mp.signing_key().clone());
    let public = mp.signing_cert().public_key().unwrap();
    let full = assignments(lab.policy(&c, AssignmentRequestKind::Always, ""));
    let references = &full.signature.as_ref().expect("a Signature block").reference;
    assert_eq!(references.len(), full.policy_assignment.len());
    for (reference, assignment) in references.iter().zip(&full.policy_assignment) {
        assert_eq!(reference.policy_assignment_id, assignment.policy_assignment_id);
        let algorithm = &reference.signature_algorithm;
        assert_eq!(
            (algorithm.alg_id.as_str(), algorithm.value.as_str()),
            ("32780", "1.2.840.113549.1.1.11")
        );
        let xml = cmmp_emulator::behaviour::assignment_xml(assignment).unwrap();
        assert!(xml.starts_with("<PolicyAssignment PolicyAssignmentID="), "{xml}");
        let signed: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
        cmmp_transport::sign::verify_reversed(
            &public,
            HashAlgorithm::Sha256,
            &signed,
            &reference.signature_value.0,
        )
        .unwrap();
        // Not a signature of anything else: another assignment's bytes do not verify.
        let other = cmmp_emulator::behaviour::assignment_xml(&full.policy_assignment[0]).unwrap();
        if other != xml {
            let other: Vec<u8> = other.encode_utf16().flat_map(u16::to_le_bytes).collect();
            assert!(
                cmmp_transport::sign::verify_reversed(
                    &public,
                    HashAlgorithm::Sha256,
                    &other,
                    &reference.signature_value.0
                )
                .is_err()
            );
        }
    }
    // The block is written between ServerCookie and the assignments, and reads back.
    let text = full.to_xml().unwrap();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("no {s} in {text}"));
    assert!(
        at("</ServerCookie>") < at("<Signature>") && at("</Signature>") < at("<PolicyAssignment ")
    );
    assert_eq!(cmmp_model::policy::ReplyAssignments::from_xml(&text).unwrap(), full);
    // The same assignments are signed the same way for the next client (kept, not signed again).
    let d = lab.enrol("OTHER", Vdir::Default);
    let again = assignments(lab.policy(&d, AssignmentRequestKind::Always, ""));
    assert_eq!(again.signature, full.signature);
    // A delta has no assignments and no block.
    let delta = assignments(lab.policy(&c, AssignmentRequestKind::OnUpdate, &full.server_cookie));
    assert!(delta.policy_assignment.is_empty() && delta.signature.is_none());

    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.sign_policy_assignments = false;
    let mut lab = Lab::new(config);
    lab.site.set_policy_signer(mp.signing_key().clone());
    let c = lab.enrol("WS01", Vdir::Default);
    let reply = assignments(lab.policy(&c, AssignmentRequestKind::Always, ""));
    assert!(!reply.policy_assignment.is_empty() && reply.signature.is_none());
}

#[test]
fn policy_change_moves_the_server_cookie() {
    let mut lab = Lab::auto_all();
    let c = lab.enrol("WS01", Vdir::Default);
    let cookie = assignments(lab.policy(&c, AssignmentRequestKind::Always, "")).server_cookie;
    lab.later(5);
    let mut extra = lab.site.config().policies[0].clone();
    extra.assignment_id = "{EXTRA}".to_owned();
    extra.policy_id = "EXTRA".to_owned();
    lab.site.set_policy(&extra, lab.now).unwrap();
    let reply = assignments(lab.policy(&c, AssignmentRequestKind::OnUpdate, &cookie));
    assert_eq!(reply.reply_type, AssignmentReplyKind::Full);
    assert_eq!(reply.policy_assignment.len(), 3);
    assert_ne!(reply.server_cookie, cookie);
    lab.later(5);
    assert!(lab.site.remove_policy("{EXTRA}", lab.now).unwrap());
    assert_eq!(
        assignments(lab.policy(&c, AssignmentRequestKind::Always, "")).policy_assignment.len(),
        2
    );
}

fn token(c: &Client) -> Vec<(String, String)> {
    policy_token_headers(
        c.identity.signing_key(),
        TokenScheme::ClientToken,
        &c.smsid,
        IsoTime::now(),
    )
    .unwrap()
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

const NAA_BODY: &str = "<Policy PolicyID=\"NAA1\" PolicyVersion=\"1.00\" PolicyType=\"Machine\" PolicySource=\"SMS:P01\" SchemaVersion=\"1.00\"><PolicyRule PolicyRuleID=\"{R}\"><PolicyAction PolicyActionType=\"WMI-XML\"><instance class=\"CCM_NetworkAccessAccount\"><property name=\"NetworkAccessPassword\" type=\"8\" secret=\"1\"><value>s3cret</value></property></instance></PolicyAction></PolicyRule></Policy>";

#[test]
fn secret_policy_body_is_encrypted_to_the_encryption_certificate() {
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.policies.push(PolicySpec {
        assignment_id: "{NAA-ASSIGNMENT}".to_owned(),
        policy_id: "NAA1".to_owned(),
        version: "1.00".to_owned(),
        category: "NAAConfig".to_owned(),
        scope: PolicyScope::Machine,
        flags: policy_flags::SECRET,
        ready_after_secs: 0,
        body: NAA_BODY.to_owned(),
    });
    let mut lab = Lab::new(config);
    // A client with separate signing and encryption certificates, as the real client has.
    let id = generate_mixed_mode("ConfigMgr Client", SystemTime::now()).unwrap();
    let smsid = lab.register(&registration(&id, "WS01", &[]), Vdir::Default).smsid.unwrap();
    let c = Client { identity: Arc::new(id), smsid, name: "WS01".to_owned() };
    let reply = assignments(lab.policy(&c, AssignmentRequestKind::Always, ""));
    let naa = reply.policy_assignment.iter().find(|a| a.policy.policy_id == "NAA1").unwrap();
    assert_eq!(naa.policy.policy_flags, Some(4));
    let query = naa.policy.policy_location.value.split_once('?').unwrap().1.to_owned();
    assert_eq!(query, "NAA1.1_00");
    // M8: without signed headers, the HTML error page.
    let e = lab.site.policy_body(&PolicyBodyRequest::from_query(&query, &[]), lab.now).unwrap_err();
    let r = e.refusal().unwrap().clone();
    assert_eq!(
        (r.clone(), r.mp_answer(DeliveryKind::Invoke)),
        (Refusal::PolicyAuthRequired, MpAnswer::HtmlError)
    );
    // With them: an envelope only the encryption key opens.
    let headers = token(&c);
    let body =
        lab.site.policy_body(&PolicyBodyRequest::from_query(&query, &headers), lab.now).unwrap();
    assert!(body.encrypted);
    assert!(!format!("{body:?}").contains("s3cret"));
    let plain = cmmp_transport::cms::decrypt_enveloped(
        &body.bytes,
        c.identity.encryption_key().pkey(),
        c.identity.encryption_cert(),
    )
    .unwrap();
    let text = cmmp_transport::cms::policy_plaintext(plain.expose()).unwrap();
    assert_eq!(text.expose(), NAA_BODY);
    // The signing key does not open it.
    assert!(
        cmmp_transport::cms::decrypt_enveloped(
            &body.bytes,
            c.identity.signing_key().pkey(),
            c.identity.signing_cert()
        )
        .is_err()
    );
    // PolicyHash covers the plain text as served.
    let hash = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), plain.expose()).unwrap();
    assert_eq!(
        naa.policy.policy_location.policy_hash.as_deref(),
        Some(format!("SHA256:{}", cmmp_transport::sign::hex_upper(&hash)).as_str())
    );
    // Headers signed with another key are refused.
    let thief = Client { identity: identity("THIEF"), smsid, name: "WS01".to_owned() };
    let e = lab
        .site
        .policy_body(&PolicyBodyRequest::from_query(&query, &token(&thief)), lab.now)
        .unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::BadSignature { what: "policy token" }));
}

#[test]
fn plain_policy_body_is_utf16_with_a_nul() {
    let mut lab = Lab::auto_all();
    let spec = lab.site.config().policies[1].clone();
    let body = lab
        .site
        .policy_body(
            &PolicyBodyRequest { policy_id: &spec.policy_id, version: Some("1_00"), headers: &[] },
            lab.now,
        )
        .unwrap();
    assert!(!body.encrypted);
    let mut expected: Vec<u8> = spec.body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    expected.extend_from_slice(&[0, 0]);
    assert_eq!(body.bytes, expected);
    let e = lab
        .site
        .policy_body(
            &PolicyBodyRequest { policy_id: &spec.policy_id, version: Some("9_00"), headers: &[] },
            lab.now,
        )
        .unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::UnknownPolicy));
}

#[test]
fn policy_not_ready_until_the_delay_passes() {
    let mut config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    config.switches.policy_ready_delay_secs = 180;
    config.policies[1].ready_after_secs = 600;
    let mut lab = Lab::new(config);
    let c = lab.enrol("WS01", Vdir::Default);
    assert_eq!(refused(lab.policy(&c, AssignmentRequestKind::Always, "")), Refusal::PolicyNotReady);
    lab.later(180);
    assert_eq!(
        assignments(lab.policy(&c, AssignmentRequestKind::Always, "")).policy_assignment.len(),
        1
    );
    lab.later(420);
    assert_eq!(
        assignments(lab.policy(&c, AssignmentRequestKind::Always, "")).policy_assignment.len(),
        2
    );
}

// ---- locations -------------------------------------------------------------------------------

fn branch_site() -> SiteConfig {
    let mut config = SiteConfig::default();
    config.distribution_points.push(DistributionPoint {
        name: "dp02".to_owned(),
        host: "dp02.corp.example".parse::<Host>().unwrap(),
        https: true,
        smb_share: Some("SMSPKGE$".to_owned()),
        version: 9128,
    });
    config.software_update_points.push(SoftwareUpdatePoint {
        name: "sup02".to_owned(),
        host: "sup02.corp.example".parse().unwrap(),
        http_port: 8530,
        https_port: 8531,
        ssl: true,
        version: 30,
    });
    config.boundary_groups.push(BoundaryGroup {
        name: "Branch".to_owned(),
        id: 7,
        guid: Some("a3f1c2d4-5e6b-4c7d-8e9f-0a1b2c3d4e5f".to_owned()),
        distribution_points: vec!["dp02".to_owned()],
        software_update_points: vec!["sup02".to_owned()],
        fallback: false,
    });
    // The default group serves only as fallback now.
    config.boundaries = vec![Boundary {
        name: "Branch subnet".to_owned(),
        subnets: vec!["10.40.0.0/16".parse().unwrap()],
        ad_sites: vec!["Branch-Site".to_owned()],
        groups: vec!["Branch".to_owned()],
    }];
    config.validate().unwrap();
    config
}

fn content_request(ip: &str, ad_site: &str) -> ContentLocation {
    let text = include_str!("../../model/tests/documents/location/content-request.xml")
        .replace("10.20.30.41", ip)
        .replace("Default-First-Site-Name", ad_site);
    ContentLocation(cmmp_model::location::ContentLocationRequest::from_xml(&text).unwrap())
}

fn location(h: Handled) -> LocationReply {
    match h {
        Handled::Location(r) => r,
        other => panic!("expected a location reply, got {other:?}"),
    }
}

#[test]
fn content_location_follows_subnet_and_ad_site_boundaries() {
    let mut lab = Lab::new(branch_site());
    // In the branch subnet: the branch DP is local, the default DP the fallback.
    let decoded = encode(&content_request("10.40.1.5", "Elsewhere"), vec![], None);
    let LocationReply::Content(reply) = location(lab.handle(&decoded, Vdir::Default)) else {
        panic!()
    };
    let records = &reply.sites.site[0].location_records.as_ref().unwrap().location_record;
    let summary: Vec<(&str, &str)> =
        records.iter().map(|r| (r.url[0].name.as_str(), r.locality.as_deref().unwrap())).collect();
    assert_eq!(
        summary,
        [
            (
                "https://dp02.corp.example/SMS_DP_SMSPKG$/Content_9f2b7c1e-3d4a-4b5c-8e6f-7a8b9c0d1e2f.1",
                "LOCAL"
            ),
            (
                "http://localhost/SMS_DP_SMSPKG$/Content_9f2b7c1e-3d4a-4b5c-8e6f-7a8b9c0d1e2f.1",
                "FALLBACK"
            ),
        ]
    );
    assert_eq!(
        records[0].smb_path[0].name,
        "\\\\dp02.corp.example\\SMSPKGE$\\Content_9f2b7c1e-3d4a-4b5c-8e6f-7a8b9c0d1e2f.1"
    );
    assert_eq!(reply.boundary_groups.as_ref().unwrap().boundary_group[0].group_id, 7);
    assert_eq!(reply.sites.site[0].mp_site.site_code, "P01");
    // By AD site alone.
    let decoded = encode(&content_request("192.0.2.1", "branch-site"), vec![], None);
    let LocationReply::Content(reply) = location(lab.handle(&decoded, Vdir::Default)) else {
        panic!()
    };
    assert_eq!(
        reply.sites.site[0].location_records.as_ref().unwrap().location_record[0]
            .locality
            .as_deref(),
        Some("LOCAL")
    );
    // Elsewhere: fallback only.
    let decoded = encode(&content_request("192.0.2.1", "Elsewhere"), vec![], None);
    let LocationReply::Content(reply) = location(lab.handle(&decoded, Vdir::Default)) else {
        panic!()
    };
    let records = &reply.sites.site[0].location_records.as_ref().unwrap().location_record;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].locality.as_deref(), Some("FALLBACK"));
    reply.to_xml().unwrap();
}

#[test]
fn wsus_location_gives_the_sup_url_for_the_boundary() {
    let mut lab = Lab::new(branch_site());
    let wsus = |ip: &str| {
        let text = format!(
            "<WSUSLocationRequest SchemaVersion=\"1.00\"><Content ID=\"{{2D6A8E3F-1B4C-4D5E-8F7A-9B0C1D2E3F4A}}\" Version=\"21\"/>\
             <AssignedSite SiteCode=\"P01\"/><ClientLocationInfo OnInternet=\"0\"><ADSite Name=\"X\"/><IPAddresses>\
             <IPAddress SubnetAddress=\"\" Address=\"{ip}\"/></IPAddresses></ClientLocationInfo></WSUSLocationRequest>"
        );
        WsusLocation(cmmp_model::location::WsusLocationRequest::from_xml(&text).unwrap())
    };
    let decoded = encode(&wsus("10.40.9.9"), vec![], None);
    let LocationReply::Wsus(reply) = location(lab.handle(&decoded, Vdir::Default)) else {
        panic!()
    };
    let record = &reply.sites.site[0].location_records.as_ref().unwrap().location_record[0];
    assert_eq!(record.wsusurl, "https://sup02.corp.example:8531");
    assert_eq!(
        (record.server_name.as_deref(), record.version),
        (Some("sup02.corp.example"), Some(30))
    );
    let decoded = encode(&wsus("192.0.2.7"), vec![], None);
    let LocationReply::Wsus(reply) = location(lab.handle(&decoded, Vdir::Default)) else {
        panic!()
    };
    let record = &reply.sites.site[0].location_records.as_ref().unwrap().location_record[0];
    assert_eq!(record.wsusurl, "http://localhost:8530");
}

#[test]
fn site_mp_and_assignment_requests_describe_the_site() {
    let mut lab = Lab::stock();
    let doc = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../model/tests/documents/location/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let local = LocalMpLocation(
        cmmp_model::location::LocalMpLocationRequest::from_xml(&doc("localmp-request.xml"))
            .unwrap(),
    );
    let LocationReply::LocalMp(r) =
        location(lab.handle(&encode(&local, vec![], None), Vdir::Default))
    else {
        panic!()
    };
    assert_eq!(r.sites.site[0].mp_site.iis_prefered_port, Some(80));
    let enumerate = EnumerateMpLocation(
        cmmp_model::location::EnumerateMpLocationRequest::from_xml(&doc(
            "enumerate-mp-request.xml",
        ))
        .unwrap(),
    );
    let LocationReply::EnumerateMp(r) =
        location(lab.handle(&encode(&enumerate, vec![], None), Vdir::Default))
    else {
        panic!()
    };
    let rec = &r.location_records.unwrap().location_record[0];
    assert_eq!(rec.intranet_name.as_ref().unwrap().value, "localhost");
    let info = SiteInformation(
        cmmp_model::location::SiteInformationRequest::from_xml(&doc("siteinfo-request.xml"))
            .unwrap(),
    );
    let LocationReply::SiteInfo(r) =
        location(lab.handle(&encode(&info, vec![], None), Vdir::Default))
    else {
        panic!()
    };
    let site = r.site.unwrap();
    assert_eq!(site.site_code.as_deref(), Some("P01"));
    let security = site.client_operational_settings.unwrap().security_configuration.unwrap();
    assert_eq!(
        (security.http_port, security.https_port, security.security_mode_mask),
        (Some(80), Some(443), Some(0))
    );
    let assigned = AssignedSite(
        cmmp_model::location::AssignedSiteRequest::from_xml(&doc("assignedsite-request.xml"))
            .unwrap(),
    );
    let reply = location(lab.handle(&encode(&assigned, vec![], None), Vdir::Default));
    let LocationReply::AssignedSite(r) = &reply else { panic!() };
    assert_eq!(r.site.as_ref().unwrap().default_mp.as_deref(), Some("localhost"));
    assert!(reply.to_xml().unwrap().starts_with("<AssignedSiteReply"));
    // Another site's information: no site in the reply.
    let other = SiteInformation(cmmp_model::location::SiteInformationRequest::from_xml("<SiteInformationRequest SchemaVersion=\"1.00\"><SiteCode Name=\"XYZ\"/></SiteInformationRequest>").unwrap());
    let LocationReply::SiteInfo(r) =
        location(lab.handle(&encode(&other, vec![], None), Vdir::Default))
    else {
        panic!()
    };
    assert!(r.site.is_none());
}

// ---- faults and persistence ------------------------------------------------------------------

#[test]
fn faults_are_used_up_per_endpoint() {
    let config = SiteConfig {
        faults: vec![
            FaultSpec {
                endpoint: "MP_PolicyManager".to_owned(),
                kind: FaultKind::EmptyReply,
                remaining: Some(2),
            },
            FaultSpec {
                endpoint: "*".to_owned(),
                kind: FaultKind::Delay { ms: 250 },
                remaining: Some(1),
            },
        ],
        ..SiteConfig::default()
    };
    let mut lab = Lab::new(config);
    assert_eq!(lab.site.fault_for("mp_policymanager").unwrap(), Some(FaultKind::EmptyReply));
    assert_eq!(lab.site.fault_for("MP_PolicyManager").unwrap(), Some(FaultKind::EmptyReply));
    assert_eq!(lab.site.fault_for("MP_PolicyManager").unwrap(), Some(FaultKind::Delay { ms: 250 }));
    assert_eq!(lab.site.fault_for("MP_PolicyManager").unwrap(), None);
    let id = lab
        .site
        .add_fault(
            &FaultSpec {
                endpoint: ".sms_pol".to_owned(),
                kind: FaultKind::DropConnection,
                remaining: None,
            },
            lab.now,
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(lab.site.fault_for(".sms_pol").unwrap(), Some(FaultKind::DropConnection));
    }
    assert_eq!(lab.site.faults().unwrap().len(), 1);
    assert!(lab.site.remove_fault(id).unwrap());
    assert_eq!(lab.site.fault_for(".sms_pol").unwrap(), None);
    lab.site
        .add_fault(
            &FaultSpec { endpoint: "*".to_owned(), kind: FaultKind::Html500, remaining: None },
            lab.now,
        )
        .unwrap();
    lab.site.clear_faults().unwrap();
    assert!(lab.site.faults().unwrap().is_empty());
}

/// Faults used inside groups (the server's committer): used up by a group that commits,
/// kept by one that rolls back, and found again after the site had none.
#[test]
fn faults_used_in_groups_follow_the_groups_outcome() {
    let mut lab = Lab::new(SiteConfig::default());
    let spec = |remaining| FaultSpec {
        endpoint: "MP_DdrEndpoint".to_owned(),
        kind: FaultKind::EmptyReply,
        remaining: Some(remaining),
    };
    assert_eq!(lab.site.fault_for("MP_DdrEndpoint").unwrap(), None);
    lab.site.add_fault(&spec(1), lab.now).unwrap();
    // A group that panics rolls its fault use back: the fault is still there.
    let rolled_back = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.site.group(|site| {
            assert_eq!(site.fault_for("MP_DdrEndpoint").unwrap(), Some(FaultKind::EmptyReply));
            panic!("the group fails");
        })
    }));
    assert!(rolled_back.is_err());
    let used = lab
        .site
        .group(|site| {
            (site.fault_for("MP_DdrEndpoint").unwrap(), site.fault_for("MP_DdrEndpoint").unwrap())
        })
        .unwrap();
    assert_eq!(used, (Some(FaultKind::EmptyReply), None));
    assert!(lab.site.faults().unwrap().is_empty());
    assert_eq!(lab.site.group(|site| site.fault_for("MP_DdrEndpoint").unwrap()).unwrap(), None);
    // Added again after the site had none: found inside the next group.
    lab.site.add_fault(&spec(2), lab.now).unwrap();
    assert_eq!(
        lab.site.group(|site| site.fault_for("mp_ddrendpoint").unwrap()).unwrap(),
        Some(FaultKind::EmptyReply)
    );
    assert_eq!(lab.site.faults().unwrap()[0].spec.remaining, Some(1));
}

#[test]
fn a_site_file_database_keeps_clients_and_reloads_file_faults() {
    let dir = TempDir::new("emulator-rules");
    let path = dir.join("P01.db");
    let config = SiteConfig::from_toml(
        "approval = \"auto-all\"\n[[faults]]\nendpoint = \"MP_LocationManager\"\nkind = \"html-500\"\n",
    )
    .unwrap();
    let now = Utc::now();
    let (smsid, cookie) = {
        let mut site = Site::open(config.clone(), &path, now).unwrap();
        assert_eq!(site.store().journal_mode().unwrap(), "wal");
        let id = identity("WS01");
        let env = cmmp_emulator::Envelope::default();
        let r = site.register(&registration(&id, "WS01", &[]), &env, now).unwrap();
        site.add_fault(
            &FaultSpec {
                endpoint: "*".to_owned(),
                kind: FaultKind::EmptyReply,
                remaining: Some(1),
            },
            now,
        )
        .unwrap();
        (r.smsid.unwrap(), site.server_cookie().unwrap())
    };
    let site = Site::open(config, &path, now + TimeDelta::seconds(10)).unwrap();
    assert!(site.client(&smsid).unwrap().is_some());
    let faults = site.faults().unwrap();
    assert_eq!(faults.len(), 2, "the file's fault once, the admin's kept: {faults:?}");
    assert_eq!(site.server_cookie().unwrap(), cookie, "unchanged policies keep the cookie");
    drop(site);
}

#[test]
fn oversized_and_undecodable_messages_are_recorded() {
    let mut config = SiteConfig::default();
    config.switches.max_message_bytes = 1000;
    let mut lab = Lab::new(config);
    lab.site.check_size("MP_HinvEndpoint", 1000, None, None, lab.now).unwrap();
    let e = lab.site.check_size("MP_HinvEndpoint", 1001, None, None, lab.now).unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::TooLarge { size: 1001, limit: 1000 }));
    lab.site.record_undecodable(None, "odd UTF-16 byte count", lab.now).unwrap();
    let log = lab.site.messages(None, 10).unwrap();
    let reasons: Vec<&str> = log.iter().filter_map(|m| m.reason.as_deref()).collect();
    assert_eq!(reasons, ["odd UTF-16 byte count", "too-large"]);
    assert_eq!((log[0].endpoint.as_str(), log[0].smsid.as_deref()), ("CCM_POST", None));
    // With a header that reads, the row names its endpoint, ID and sender, and the sender's
    // own log shows it (there is no client record for that SMSID).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/tests/documents/msg/ddr-post.xml");
    let header = cmmp_model::msg::Msg::from_xml(&std::fs::read_to_string(path).unwrap()).unwrap();
    lab.site.record_undecodable(Some(&header), "unpaired surrogate", lab.now).unwrap();
    let named: SmsId = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10".parse().unwrap();
    let row = &lab.site.messages(Some(&named), 10).unwrap()[0];
    assert_eq!(
        (
            row.endpoint.as_str(),
            row.kind.as_str(),
            row.message_id.as_deref(),
            row.smsid.as_deref(),
            row.client,
            row.outcome,
            row.reason.as_deref()
        ),
        (
            "MP_DdrEndpoint",
            "undecodable",
            Some("{0B7E5D43-9C21-4A8F-B6E0-5F4D3C2B1A09}"),
            Some("GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10"),
            None,
            MessageOutcome::Refused,
            Some("unpaired surrogate")
        )
    );
}

#[test]
fn a_blocked_proxy_no_longer_speaks_for_its_clients() {
    let mut lab = Lab::auto_all();
    let proxy = identity("PROXY01");
    let proxy_id = lab.site.import_isv_proxy(proxy.signing_cert_der(), lab.now).unwrap();
    assert_eq!(lab.register(&proxy_registration(&proxy), Vdir::Default).status, 0);
    let smsid = lab
        .register(&proxied_registration(&proxy, proxy_id, "MAC-07"), Vdir::Default)
        .smsid
        .unwrap();
    let client = Client { identity: proxy, smsid, name: "MAC-07".to_owned() };
    stored(lab.post(&client, &state(&smsid, &[1]), vec![]));
    lab.site.block(&proxy_id).unwrap();
    assert_eq!(refused(lab.post(&client, &state(&smsid, &[2]), vec![])), Refusal::Blocked);
    let again = proxied_registration(&client.identity, proxy_id, "MAC-09");
    assert_eq!(refused(lab.register_raw(&again, Vdir::Default)), Refusal::Blocked);
}

#[test]
fn secret_policy_needs_an_approved_client() {
    let mut config = SiteConfig { approval: ApprovalPolicy::Manual, ..SiteConfig::default() };
    config.policies[0].flags = policy_flags::SECRET;
    let mut lab = Lab::new(config);
    let c = lab.enrol("WS01", Vdir::Default);
    let policy_id = lab.site.config().policies[0].policy_id.clone();
    let headers = token(&c);
    let request = PolicyBodyRequest { policy_id: &policy_id, version: None, headers: &headers };
    let e = lab.site.policy_body(&request, lab.now).unwrap_err();
    assert_eq!(e.refusal(), Some(&Refusal::NotApproved));
    lab.site.approve(&c.smsid).unwrap();
    assert!(lab.site.policy_body(&request, lab.now).unwrap().encrypted);
}

#[test]
fn odd_site_files_are_errors_not_panics() {
    for text in [
        "[",
        "site_code = 1",
        "[[policies]]",
        "[switches]\nmax_message_bytes = -1",
        "\u{feff}x=",
        "a.b.c = [[]]",
    ] {
        assert!(SiteConfig::from_toml(text).is_err(), "{text:?}");
    }
}
