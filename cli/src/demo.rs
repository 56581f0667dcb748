//! `cmmp demo`: the ISV proxy workflow of the source documents, end to end, against the
//! embedded emulator.
//!
//! 1. Start the emulator in-process on an ephemeral loopback port with a site database.
//! 2. Create an ISV proxy identity; the administrator imports its certificate; the proxy
//!    registers itself (AgentType 4) and receives its SMSID.
//! 3. The proxy registers N non-Windows clients (AgentType 8, signed with the proxy key,
//!    `Signature/@SMSID` = the proxy's SMSID); the administrator approves them (the stock
//!    site approves only trusted, domain-authenticated registrations).
//! 4. For every client the proxy sends, signed with its key and carrying the client's SMSID:
//!    a DDR, a full then a delta hardware inventory, a software inventory, a state message, a
//!    status message and a file collection with attachments; asks for machine policy and
//!    downloads the bodies (decrypting secret ones); asks for content and WSUS locations.
//! 5. Read the site database back, print a summary, and check it against what was sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use chrono::Utc;
use cmmp_emulator::site::{ApprovalPolicy, PolicyScope, PolicySpec};
use cmmp_emulator::{Emulator, Site, SiteConfig, Summary};
use cmmp_model::MessageExt;
use cmmp_model::kinds::{
    ContentLocation, DdrReport, FileCollection, HinvReport, PolicyAssignments, SinvReport,
    StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::report_common::{ReportHeader, ReportKind};
use cmmp_model::value::{SmsId, SmsTime};
use cmmp_transport::cert::{Identity, generate_mixed_mode};
use cmmp_transport::client::{Client, ClientConfig, PolicyAuth};
use cmmp_transport::msg::HostName;
use cmmp_transport::payload::Attachment;
use cmmp_transport::register::{AgentType, Backoff, Registration, RegistrationSigner};
use cmmp_transport::sign::{HashAlgorithm, TokenScheme};
use cmmp_transport::wire::{Settings, Signer};
use indicatif::ProgressBar;

use crate::{Error, register};

/// Options of `cmmp demo`.
#[derive(Debug, Clone)]
pub(crate) struct DemoOptions {
    pub(crate) clients: u32,
    pub(crate) db: Option<PathBuf>,
    pub(crate) keep: bool,
    pub(crate) progress: bool,
}

const DDR: &str = include_str!("../../model/tests/documents/ddr/full.xml");
const HINV: &str = include_str!("../../model/tests/documents/hinv/full.xml");
const SINV: &str = include_str!("../../model/tests/documents/sinv/full.xml");
const STATE: &str = include_str!("../../model/tests/documents/state/app-and-heartbeat.xml");
const STATUS: &str = include_str!("../../model/tests/documents/status/ccmhttp-status.xml");
const FILECOLL: &str = include_str!("../../model/tests/documents/filecoll/full.xml");
const POLICY: &str = include_str!("../../model/tests/documents/policy/request-machine.xml");
const CONTENT: &str = include_str!("../../model/tests/documents/location/content-request.xml");
const WSUS: &str = include_str!("../../model/tests/documents/location/wsus-request-lowercase.xml");

/// The demo's secret policy: a network access account (made-up credentials).
const NAA_BODY: &str = r#"<Policy PolicyID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A0A}" PolicyVersion="1.00" PolicyType="Machine" PolicySource="SMS:P01" SchemaVersion="1.00"><PolicyRule PolicyRuleID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0B0A}"><PolicyAction PolicyActionType="WMI-XML"><instance class="CCM_NetworkAccessAccount"><property name="NetworkAccessUsername" type="8"><value>CORP\svc-cmmp-demo</value></property><property name="NetworkAccessPassword" type="8"><value>demo-only-not-a-secret</value></property></instance></PolicyAction></PolicyRule></Policy>"#;

/// What the demo sent, to check the database against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sent {
    registered: i64,
    ddr: i64,
    hinv: i64,
    sinv: i64,
    state_messages: i64,
    status: i64,
    filecoll: i64,
    files: i64,
    policies: i64,
    decrypted: i64,
    locations: i64,
}

/// Runs the demo; returns the exit code (0 when the database matches what was sent).
pub(crate) async fn run(options: DemoOptions) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let dir = std::env::temp_dir().join(format!("cmmp-demo-{}", std::process::id()));
    let db = options.db.clone().unwrap_or_else(|| dir.join("site.db"));
    if let Some(parent) = db.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::Io(parent.display().to_string(), e))?;
    }
    let mut config = SiteConfig { approval: ApprovalPolicy::Trusted, ..SiteConfig::default() };
    // Besides the stock client-settings and software-updates policies, a secret one (the
    // network access account, flag 4): its body is CMS-encrypted to each client's
    // encryption certificate, here the proxy's, and the proxy decrypts it.
    config.policies.push(PolicySpec {
        assignment_id: "{7B1E6C20-3A54-4F0D-9E21-5C8A0D4B1F0A}".to_owned(),
        policy_id: "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A0A}".to_owned(),
        version: "1.00".to_owned(),
        category: "NAAConfig".to_owned(),
        scope: PolicyScope::Machine,
        flags: 4,
        ready_after_secs: 0,
        body: NAA_BODY.to_owned(),
    });
    let now = Utc::now();
    let site = Site::open(config, &db, now)?;
    let mp = generate_mixed_mode("MP01", SystemTime::now())?;
    let emulator = Emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), site, mp).await?;
    let addr = emulator.addr();
    println!("emulator listening on http://{addr} (site database {})", db.display());

    let proxy = generate_mixed_mode("cmmp ISV proxy", SystemTime::now())?;
    let mut settings = Settings::new(HostName::new("localhost")?, HostName::new("ISVPROXY")?);
    settings.timeout_ms = 60_000;
    let mut cc = ClientConfig::new(settings.clone());
    cc.port = Some(addr.port());
    cc.resolve = Some(addr);
    let client = Client::new(cc)?;

    // 2. The administrator imports the proxy certificate; the proxy registers itself.
    let imported = emulator.site().import_isv_proxy(proxy.signing_cert_der(), Utc::now())?;
    let proxy_reg = registration("ISVPROXY", AgentType::IsvProxy, None);
    let proxy_id = register(&client, &proxy_reg, &proxy, RegistrationSigner::Own).await?;
    println!("ISV proxy registered: {proxy_id} (imported as {imported})");
    emulator.site().approve(&proxy_id)?;

    // 3. The proxy registers its clients.
    let bar = progress(options.progress, u64::from(options.clients), "registering clients");
    let mut clients = Vec::new();
    for i in 0..options.clients {
        let name = format!("MAC-{i:05}");
        let reg = registration(&name, AgentType::IsvProxyClient, Some(i));
        let signer = RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id };
        let id = register(&client, &reg, &proxy, signer).await?;
        emulator.site().approve(&id)?;
        clients.push((id, name));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} clients registered through the proxy and approved by the administrator",
        clients.len()
    );

    // 4. Each client's messages, sent by the proxy.
    let mut sent = Sent { registered: i64::from(options.clients) + 1, ..Sent::default() };
    let bar = progress(options.progress, u64::from(options.clients), "sending messages");
    for (id, name) in &clients {
        let signer = Signer::new(proxy.signing_key(), *id, HashAlgorithm::Sha256)?;
        send_client(&client, &proxy, &signer, *id, name, &mut sent).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    // 5. Read the database back and check.
    let summary = emulator.site().summary()?;
    emulator.shutdown().await;
    let ok = report(&summary, &sent);
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if options.keep {
        println!("site database kept at {}", db.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        if options.db.is_some() {
            let _ = std::fs::remove_file(&db);
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn progress(enabled: bool, len: u64, message: &'static str) -> ProgressBar {
    if enabled { crate::progress(len, message) } else { ProgressBar::hidden() }
}

fn registration(name: &str, agent_type: AgentType, index: Option<u32>) -> Registration {
    let host =
        HostName::new(name).unwrap_or_else(|_| HostName::new("client").expect("a valid host name"));
    let hardware_id = index.map(|i| format!("2:{i:040X}"));
    let mut reg = register::registration(
        &host,
        Some("corp.example"),
        agent_type,
        Some(5),
        hardware_id.as_deref(),
    )
    .unwrap_or_else(|_| {
        register::registration(&host, None, agent_type, Some(5), None)
            .expect("a registration without a domain")
    });
    reg.agent_identity = "cmmp-demo".to_owned();
    reg
}

/// Registers with the pending → confirmation loop driven by the MP's answers.
async fn register(
    client: &Client,
    reg: &Registration,
    identity: &Identity,
    signer: RegistrationSigner<'_>,
) -> Result<SmsId, Error> {
    let (smsid, _) = register::run_flow(
        client,
        reg,
        identity,
        signer,
        HashAlgorithm::Sha256,
        Backoff::default(),
    )
    .await?;
    Ok(smsid)
}

fn header(template: &ReportHeader, id: SmsId, name: &str) -> ReportHeader {
    let mut h = template.clone();
    h.identification.machine.client_id.value = id;
    h.identification.machine.net_bios_name = name.to_owned();
    if let Ok(now) = SmsTime::from_utc(Utc::now()) {
        h.report_details.date = now;
    }
    h
}

async fn send_client(
    client: &Client,
    proxy: &Identity,
    signer: &Signer<'_>,
    id: SmsId,
    name: &str,
    sent: &mut Sent,
) -> Result<(), Error> {
    let s = Some(signer);

    let mut ddr = cmmp_model::ddr::Report::from_xml(DDR)?;
    ddr.report_header = header(&ddr.report_header, id, name);
    client.post(&DdrReport(ddr), vec![], s).await?;
    sent.ddr += 1;

    let mut hinv = cmmp_model::hinv::Report::from_xml(HINV)?;
    hinv.report_header = header(&hinv.report_header, id, name);
    hinv.report_header.report_details.report_type = ReportKind::Full;
    hinv.report_header.report_details.version = "1.0".to_owned();
    client.post(&HinvReport(hinv.clone()), vec![], s).await?;
    hinv.report_header.report_details.report_type = ReportKind::Delta;
    hinv.report_header.report_details.version = "1.1".to_owned();
    hinv.report_body.instance.truncate(1);
    client.post(&HinvReport(hinv), vec![], s).await?;
    sent.hinv += 2;

    let mut sinv = cmmp_model::sinv::Report::from_xml(SINV)?;
    sinv.report_header = header(&sinv.report_header, id, name);
    client.post(&SinvReport(sinv), vec![], s).await?;
    sent.sinv += 1;

    let mut state = cmmp_model::state::Report::from_xml(STATE)?;
    state.report_header = header(&state.report_header, id, name);
    sent.state_messages += i64::try_from(state.report_body.state_message.len()).unwrap_or(0);
    client.post(&StateMessages(state), vec![], s).await?;

    let mut status = cmmp_model::status::Status::from_xml(STATUS)?;
    for p in &mut status.properties.property {
        if p.name.eq_ignore_ascii_case("ClientID") {
            p.value = id.to_string();
        }
    }
    client.post(&StatusMessage(status), vec![], s).await?;
    sent.status += 1;

    let mut files = cmmp_model::filecoll::Report::from_xml(FILECOLL)?;
    files.report_header = header(&files.report_header, id, name);
    let attachments: Vec<Attachment> = files
        .report_body
        .collected_file
        .iter()
        .map(|f| {
            Attachment::new(
                f.id.to_string(),
                format!("[{name}]\r\nfile={}\r\n", f.name).into_bytes(),
            )
        })
        .collect();
    sent.files += i64::try_from(attachments.len()).unwrap_or(0);
    client.post(&FileCollection(files), attachments, s).await?;
    sent.filecoll += 1;

    let mut request = cmmp_model::policy::RequestAssignments::from_xml(POLICY)?;
    request.identification.machine.client_id = id;
    request.identification.machine.net_bios_name = Some(name.to_owned());
    let assignments = client.invoke(&PolicyAssignments(request), vec![], s).await?;
    for a in &assignments.reply.policy_assignment {
        let auth = PolicyAuth { identity: proxy, client_id: id, scheme: TokenScheme::ClientToken };
        let body = client.download_policy(&a.policy.policy_location.value, Some(auth)).await?;
        body.policy(client.limits())?;
        sent.policies += 1;
        sent.decrypted += i64::from(body.encryption.is_some());
    }

    let content = cmmp_model::location::ContentLocationRequest::from_xml(CONTENT)?;
    client.invoke(&ContentLocation(content), vec![], None).await?;
    let wsus = cmmp_model::location::WsusLocationRequest::from_xml(WSUS)?;
    client.invoke(&WsusLocation(wsus), vec![], None).await?;
    sent.locations += 2;
    Ok(())
}

/// Prints the summary table and checks it; `true` when everything matches.
fn report(summary: &Summary, sent: &Sent) -> bool {
    let stored = |kind: &str| -> i64 {
        summary
            .messages
            .iter()
            .filter(|(k, o, _)| k == kind && o == "stored")
            .map(|(_, _, n)| n)
            .sum()
    };
    let answered = |kind: &str| -> i64 {
        summary
            .messages
            .iter()
            .filter(|(k, o, _)| k == kind && o == "answered")
            .map(|(_, _, n)| n)
            .sum()
    };
    let rows: Vec<(&str, i64, i64)> = vec![
        ("clients registered", sent.registered, summary.registered),
        ("clients approved", sent.registered, summary.approved),
        ("DDRs stored", sent.ddr, stored("DdrReport")),
        ("hardware inventories stored", sent.hinv, stored("HinvReport")),
        ("software inventories stored", sent.sinv, stored("SinvReport")),
        ("state messages stored", sent.state_messages, summary.state_messages),
        ("status messages stored", sent.status, summary.status_messages),
        ("file collections stored", sent.filecoll, stored("FileCollection")),
        ("files collected", sent.files, summary.collected_files),
        ("policy requests answered", sent.ddr, answered("PolicyAssignments")),
        ("policy bodies served", sent.policies, answered("PolicyBody")),
        (
            "location requests answered",
            sent.locations,
            answered("ContentLocation") + answered("WsusLocation"),
        ),
    ];
    println!();
    println!("{:<30} {:>10} {:>10}  check", "", "sent", "in site DB");
    let mut ok = true;
    for (what, expected, found) in rows {
        let good = expected == found;
        ok &= good;
        println!("{what:<30} {expected:>10} {found:>10}  {}", if good { "ok" } else { "MISMATCH" });
    }
    println!("{:<30} {:>10} {:>10}", "inventory instances stored", "", summary.inventory_instances);
    // One secret policy per client, decrypted with the key it was encrypted to.
    let decrypted_ok = sent.decrypted == sent.ddr;
    ok &= decrypted_ok;
    println!(
        "{:<30} {:>10} {:>10}  {}",
        "secret policies decrypted",
        sent.ddr,
        sent.decrypted,
        if decrypted_ok { "ok" } else { "MISMATCH" }
    );
    println!();
    println!(
        "{}",
        if ok {
            "all checks passed"
        } else {
            "MISMATCH between what was sent and what the site stored"
        }
    );
    ok
}
