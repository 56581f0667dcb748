//! Load benchmark of the emulator (issue 4): signed DDR posts per second, 50 KB hardware
//! inventory posts per second, and the time to ingest one day of a 25,000-client site, all
//! over loopback HTTP against an [`Emulator`] on a WAL site database in a temporary file.
//!
//! Not a timed test: a plain `main` that prints a results table (criterion's repeated
//! sampling does not fit a run that fills a database).
//!
//! Shape of the run:
//!
//! - **Site**: `SiteConfig::default()` with `approval = AutoAll` (so inventory is accepted
//!   without an administrator), a site file on disk (`site.db` in a fresh temporary
//!   directory, WAL), every other switch stock (signatures verified, `Msg/ID` deduplication on).
//! - **Clients**: one ISV proxy (certificate imported, then registered over HTTP) and N proxy
//!   clients (`AgentType` 8), each registered over HTTP with a registration the proxy signs
//!   (`RegistrationSigner::Proxy`), proposing its SMSID. The proxy's key signs every message
//!   of every client (`clientauth`, SHA-256, RSA-2048), which is how an ISV proxy speaks for
//!   its clients (source 002) and what lets one key sign for 25,000 machines.
//! - **Requests** are built before any timer starts, with `wire::build_request` and a fresh
//!   `Msg/ID` each (zlib, UTF-16LE, `PayloadSignature`, multipart), on every core. The timed
//!   part is only the MP side and loopback HTTP: `transport::client::Client::send` of the
//!   prepared request from several concurrent tokio tasks (one TCP connection per request,
//!   as the emulator answers `Connection: close`), until every reply is read.
//! - Every phase checks afterwards, from the site's own counts, that each message was
//!   stored (no refusal, no duplicate), so a fast refusal path cannot pass for throughput.
//!
//! Phases (counts at full scale):
//!
//! 1. **DDR**: 25,000 signed DDRs (one per client, each a `Full` discovery report of the
//!    corpus shape, ~3.9 KB of XML, with the client's own SMSID, name and SMBIOS UUID).
//! 2. **HINV 50 KB**: 2,000 signed `Full` hardware inventory reports of ~50 KB of XML
//!    (136 WMI instances each), 4 per client for 500 further clients.
//! 3. **Day**: 25,000 DDRs + 25,000 hardware inventory deltas + 250,000 state messages,
//!    shuffled together (fixed seed). Each client's full hardware inventory (the corpus
//!    report as `Full` 1.0) is sent *before* the timer, so each day delta (`Delta` 1.1, the
//!    corpus delta: 6 instances) is in sequence. State messages are batched 5 per report
//!    (`CMMP_LOAD_STATE_BATCH`), 2 reports per client: a client queues state messages and
//!    sends what is pending on its state reporting cycle (15 minutes by default), so a
//!    day's 10 messages arrive in a few reports rather than 10.
//!
//! Settings (environment): `CMMP_LOAD_SCALE` (default 1.0; `--quick` means 0.02) scales
//! every count; `CMMP_LOAD_CONNECTIONS` (default 32) concurrent senders;
//! `CMMP_LOAD_STATE_BATCH` (default 5) state messages per report; `CMMP_LOAD_KEEP=1` keeps
//! the site database; `CMMP_LOAD_KEEP_ALIVE=0` sends every request on a new connection
//! (default: kept-alive connections, `ClientConfig::keep_alive`, as WinHTTP clients do);
//! `CMMP_LOAD_HTTPS=1` sends everything to the emulator's HTTPS listener instead
//! (`Emulator::serve_https`, a generated certificate, TLS without client certificates).
//!
//! Run with `cargo bench -p cmmp-emulator --bench load` (results in `BENCHMARKS.md`), or
//! `cargo bench -p cmmp-emulator --bench load -- --quick` for a run of a few seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use cmmp_emulator::site::ApprovalPolicy;
use cmmp_emulator::tls::generate_tls_certificate;
use cmmp_emulator::{Emulator, HttpsConfig, Site, SiteConfig, Summary};
use cmmp_model::kinds::{ClientRegistration, DdrReport, HinvReport, StateMessages};
use cmmp_model::registration::RegistrationKind;
use cmmp_model::value::{IsoTime, MaybeSmsId, SmsId};
use cmmp_model::{Endpoint, MessageExt};
use cmmp_transport::cert::{Identity, generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig, Roots, Scheme};
use cmmp_transport::msg::HostName;
use cmmp_transport::register::{AgentType, Registration, RegistrationSigner, build_request};
use cmmp_transport::sign::HashAlgorithm;
use cmmp_transport::wire::{self, Fresh, Request, Settings, Signer};

/// The client ID in the corpus documents, replaced per client.
const CORPUS_ID: &str = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10";
/// The SMBIOS UUID in the corpus DDR, replaced per client.
const CORPUS_UUID: &str = "4C4C4544-0042-3510-8052-B4C04F4E3432";
/// The corpus machine name, replaced per client.
const CORPUS_NAME: &str = "WS01";
/// The size of the large hardware inventory report's XML.
const HINV_TARGET_BYTES: usize = 50 * 1024;
/// Large hardware inventory reports per client in phase 2.
const HINV_PER_CLIENT: usize = 4;
/// State messages per client per day.
const STATE_PER_CLIENT: usize = 10;

const DDR_GOAL_PER_SEC: f64 = 5_000.0;
const DAY_GOAL_SECS: f64 = 120.0;

struct Options {
    scale: f64,
    connections: usize,
    state_batch: usize,
    keep: bool,
    keep_alive: bool,
    https: bool,
}

impl Options {
    fn read() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let quick = std::env::args().any(|a| a == "--quick");
        let scale = env("CMMP_LOAD_SCALE")
            .map(|v| v.parse::<f64>().expect("CMMP_LOAD_SCALE is a number"))
            .unwrap_or(if quick { 0.02 } else { 1.0 });
        assert!(scale > 0.0 && scale <= 10.0, "CMMP_LOAD_SCALE is in (0, 10]");
        let connections = env("CMMP_LOAD_CONNECTIONS")
            .map(|v| v.parse().expect("CMMP_LOAD_CONNECTIONS is a count"))
            .unwrap_or(32);
        let state_batch: usize = env("CMMP_LOAD_STATE_BATCH")
            .map(|v| v.parse().expect("CMMP_LOAD_STATE_BATCH is a count"))
            .unwrap_or(5);
        assert!(
            (1..=STATE_PER_CLIENT).contains(&state_batch),
            "CMMP_LOAD_STATE_BATCH is 1..={STATE_PER_CLIENT}"
        );
        let keep = env("CMMP_LOAD_KEEP").is_some_and(|v| v == "1");
        let keep_alive = env("CMMP_LOAD_KEEP_ALIVE").is_none_or(|v| v != "0");
        let https = env("CMMP_LOAD_HTTPS").is_some_and(|v| v == "1");
        Self { scale, connections: connections.max(1), state_batch, keep, keep_alive, https }
    }

    fn count(&self, full: usize) -> usize {
        ((full as f64 * self.scale).round() as usize).max(2)
    }
}

/// The allocator the `cmmp` binary uses too (see `cli/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let options = Options::read();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(run(&options));
}

// ---- the run -------------------------------------------------------------------------------

async fn run(options: &Options) {
    let day_clients = options.count(25_000);
    let hinv_posts = options.count(2_000);
    let hinv_clients = hinv_posts.div_ceil(HINV_PER_CLIENT);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "cmmp-emulator load: scale {}, {day_clients} day clients, {hinv_clients} HINV clients, \
         {} {} {} connections, {} state messages per report, {cores} cores, load average {}",
        options.scale,
        options.connections,
        if options.keep_alive { "kept-alive" } else { "one-request" },
        if options.https { "HTTPS" } else { "HTTP" },
        options.state_batch,
        load_average()
    );

    // The site: a temporary directory, a WAL database file.
    let dir = std::env::temp_dir().join(format!("cmmp-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let db = dir.join("site.db");
    let config = SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() };
    let site = Site::open(config, &db, Utc::now()).expect("the site opens");
    assert_eq!(site.store().journal_mode().expect("journal mode"), "wal");
    let mp = generate_mixed_mode("mp01.corp.example", SystemTime::now()).expect("an MP identity");
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut emulator = Emulator::start(listen, site, mp).await.expect("the emulator starts");
    let client = if options.https {
        let names = ["mp01.corp.example"];
        let (cert, key) = generate_tls_certificate(&names, SystemTime::now()).expect("a TLS cert");
        let key = key.to_pem().expect("the key as PEM");
        let config = HttpsConfig::from_pem(listen, &cert.to_pem().expect("PEM"), key.expose())
            .expect("the HTTPS listener's settings");
        let addr = emulator.serve_https(&config).await.expect("the HTTPS listener starts");
        https_client(addr, options.keep_alive, cert.to_der().expect("DER"))
    } else {
        http_client(emulator.addr(), options.keep_alive)
    };

    // The ISV proxy: imported by the administrator, then registered over HTTP.
    let proxy = Arc::new(
        generate_mixed_mode_single("ConfigMgr ISV Proxy", SystemTime::now()).expect("a key"),
    );
    let proxy_id = emulator
        .site()
        .import_isv_proxy(proxy.signing_cert_der(), Utc::now())
        .expect("the proxy certificate imports");
    let proxy_registration = build_request(
        &registration_info("PROXY01", AgentType::IsvProxy),
        &proxy,
        RegistrationSigner::Own,
        HashAlgorithm::Sha256,
        RegistrationKind::Registration,
        MaybeSmsId(None),
        IsoTime::now(),
    )
    .expect("the proxy registration builds");
    let request = wire::build_request(
        &settings(),
        &ClientRegistration(proxy_registration),
        vec![],
        None,
        Fresh::now().expect("fresh"),
    )
    .expect("the proxy registration request builds");
    let reply = client.send(&request).await.expect("the proxy registers");
    assert_eq!(reply.status, 200);
    let registered = emulator.site().client(&proxy_id).expect("read").expect("the proxy");
    assert!(registered.registered, "the proxy's registration completed");

    // Every request, built before any timer starts.
    let started = Instant::now();
    let templates = Templates::new();
    let day = parallel(day_clients, cores, |i| {
        DayClient::build(&templates, &proxy, proxy_id, i, options.state_batch)
    });
    let large = parallel(hinv_clients, cores, |i| {
        LargeClient::build(&templates, &proxy, proxy_id, day_clients + i)
    });
    let built = started.elapsed();
    let large_bytes: usize = large.iter().map(|c| c.report_xml_bytes).sum::<usize>() / hinv_clients;
    println!(
        "built {} requests in {:.1} s (large HINV report: {large_bytes} bytes of XML, {} bytes \
         on the wire)",
        day.iter().map(DayClient::requests).sum::<usize>()
            + large.iter().map(|c| 1 + c.reports.len()).sum::<usize>(),
        built.as_secs_f64(),
        large[0].reports[0].body.len()
    );

    let mut results = Vec::new();
    let mut before = summary(&emulator);

    // Registrations and each day client's full inventory: set-up, reported for information.
    let registrations: Vec<&Request> =
        day.iter().map(|c| &c.registration).chain(large.iter().map(|c| &c.registration)).collect();
    let run = send_all(&client, &registrations, options.connections).await;
    let after = summary(&emulator);
    assert_eq!(after.registered - before.registered, registrations.len() as i64);
    check(&before, &after, "ClientRegistration", "answered", registrations.len());
    results.push(Row::new("set-up: proxy-client registrations", &run, None));
    before = after;

    let fulls: Vec<&Request> = day.iter().map(|c| &c.hinv_full).collect();
    let run = send_all(&client, &fulls, options.connections).await;
    let after = summary(&emulator);
    check(&before, &after, HinvReport::NAME, "stored", fulls.len());
    results.push(Row::new("set-up: full HINV (6 instances) per client", &run, None));
    before = after;

    // 1. Signed DDRs.
    let ddrs: Vec<&Request> = day.iter().map(|c| &c.ddr).collect();
    let run = send_all(&client, &ddrs, options.connections).await;
    let after = summary(&emulator);
    check(&before, &after, DdrReport::NAME, "stored", ddrs.len());
    let rate = run.rate();
    results.push(Row::new(
        "1. signed DDR posts",
        &run,
        Some((format!("≥ {DDR_GOAL_PER_SEC:.0}/s"), rate >= DDR_GOAL_PER_SEC)),
    ));
    before = after;

    // 2. 50 KB hardware inventory reports.
    let reports: Vec<&Request> = large.iter().flat_map(|c| &c.reports).take(hinv_posts).collect();
    let run = send_all(&client, &reports, options.connections).await;
    let after = summary(&emulator);
    check(&before, &after, HinvReport::NAME, "stored", reports.len());
    results.push(Row::new("2. 50 KB HINV posts (Full)", &run, None));
    before = after;

    // 3. One day.
    let mut mix: Vec<&Request> = Vec::new();
    for c in &day {
        mix.push(&c.day_ddr);
        mix.push(&c.day_delta);
        mix.extend(&c.day_states);
    }
    shuffle(&mut mix, 0x0005_EED0_FDA7);
    let run = send_all(&client, &mix, options.connections).await;
    let after = summary(&emulator);
    check(&before, &after, DdrReport::NAME, "stored", day_clients);
    check(&before, &after, HinvReport::NAME, "stored", day_clients);
    check(
        &before,
        &after,
        StateMessages::NAME,
        "stored",
        day.iter().map(|c| c.day_states.len()).sum(),
    );
    let states = after.state_messages - before.state_messages;
    assert_eq!(states, (day_clients * STATE_PER_CLIENT) as i64, "every state message stored");
    let secs = run.wall.as_secs_f64();
    let full_day = secs / options.scale;
    results.push(Row::new(
        &format!("3. one day: {day_clients} DDR + {day_clients} HINV delta + {states} state msgs"),
        &run,
        Some((format!("< {DAY_GOAL_SECS:.0} s (full scale)"), full_day < DAY_GOAL_SECS)),
    ));

    // No refusals anywhere.
    let refused: i64 = after
        .messages
        .iter()
        .filter(|(_, o, _)| o != "stored" && o != "answered")
        .map(|m| m.2)
        .sum();
    assert_eq!(refused, 0, "no refused or duplicate messages: {:?}", after.messages);

    print_results(&results, options.scale);
    let db_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
    let wal_bytes = std::fs::metadata(dir.join("site.db-wal")).map_or(0, |m| m.len());
    println!(
        "\nsite database: {:.1} MiB (+ {:.1} MiB WAL); {} clients, {} inventory instances, {} \
         state messages, {} messages logged",
        db_bytes as f64 / 1048576.0,
        wal_bytes as f64 / 1048576.0,
        after.clients,
        after.inventory_instances,
        after.state_messages,
        after.messages.iter().map(|m| m.2).sum::<i64>()
    );
    println!("load average at the end: {}", load_average());
    emulator.shutdown().await;
    if options.keep {
        println!("kept {}", db.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The sender's message settings (proxy machine as `SourceHost`, SDK defaults).
fn settings() -> Settings {
    Settings::new(
        HostName::new("mp01.corp.example").expect("a host name"),
        HostName::new("PROXY01").expect("a host name"),
    )
}

fn http_client(addr: SocketAddr, keep_alive: bool) -> Client {
    let mut config = ClientConfig::new(settings());
    config.scheme = Scheme::Http;
    config.port = Some(addr.port());
    config.resolve = Some(addr);
    config.keep_alive = keep_alive;
    Client::new(config).expect("an HTTP client")
}

fn https_client(addr: SocketAddr, keep_alive: bool, root: Vec<u8>) -> Client {
    let mut config = ClientConfig::new(settings());
    config.scheme = Scheme::Https;
    config.port = Some(addr.port());
    config.resolve = Some(addr);
    config.roots = Roots::Custom(vec![root]);
    config.keep_alive = keep_alive;
    Client::new(config).expect("an HTTPS client")
}

fn summary(emulator: &Emulator) -> Summary {
    emulator.site().summary().expect("the site summary")
}

/// Asserts that exactly `expected` more messages of `kind` ended as `outcome`.
fn check(before: &Summary, after: &Summary, kind: &str, outcome: &str, expected: usize) {
    let count = |s: &Summary| {
        s.messages.iter().filter(|(k, o, _)| k == kind && o == outcome).map(|m| m.2).sum::<i64>()
    };
    assert_eq!(
        count(after) - count(before),
        expected as i64,
        "{kind} {outcome}: {:?}",
        after.messages
    );
}

// ---- requests ------------------------------------------------------------------------------

/// The corpus documents the requests are made from.
struct Templates {
    ddr: String,
    hinv: String,
    state_head: String,
    large_body: String,
}

impl Templates {
    fn new() -> Self {
        let ddr = corpus("ddr/full.xml");
        let hinv = corpus("hinv/full.xml");
        let state = corpus("state/app-and-heartbeat.xml");
        let state_head = state[..state.find("<ReportBody>").expect("a body")].to_owned();
        let head_len = hinv.find("<ReportBody>").expect("a body");
        let large_body = large_hinv_body(HINV_TARGET_BYTES.saturating_sub(head_len + 30));
        Self { ddr, hinv, state_head, large_body }
    }

    fn ddr(&self, smsid: &SmsId, name: &str, uuid: &str) -> DdrReport {
        let text = self
            .ddr
            .replace(CORPUS_ID, &smsid.to_string())
            .replace(CORPUS_UUID, uuid)
            .replace(CORPUS_NAME, name);
        DdrReport(cmmp_model::ddr::Report::from_xml(&text).expect("the DDR decodes"))
    }

    fn hinv(&self, smsid: &SmsId, name: &str, report_type: &str, version: &str) -> HinvReport {
        HinvReport(
            cmmp_model::hinv::Report::from_xml(&self.hinv_text(
                smsid,
                name,
                report_type,
                version,
                None,
            ))
            .expect("the HINV report decodes"),
        )
    }

    fn hinv_text(
        &self,
        smsid: &SmsId,
        name: &str,
        report_type: &str,
        version: &str,
        body: Option<&str>,
    ) -> String {
        let mut text = match body {
            Some(b) => {
                let head = &self.hinv[..self.hinv.find("<ReportBody>").expect("a body")];
                format!("{head}<ReportBody>{b}</ReportBody></Report>")
            }
            None => self.hinv.clone(),
        };
        text = text
            .replace(CORPUS_ID, &smsid.to_string())
            .replace(CORPUS_NAME, name)
            .replace(
                "<ReportType>Delta</ReportType>",
                &format!("<ReportType>{report_type}</ReportType>"),
            )
            .replace("<Version>1.0</Version>", &format!("<Version>{version}</Version>"));
        text
    }

    /// A state message report with `serials`, as a client's state system sends them.
    fn states(&self, smsid: &SmsId, name: &str, serials: &[u32]) -> StateMessages {
        let messages: String = serials
            .iter()
            .map(|s| {
                let topic = 0x1000_0000_u32 + s;
                format!(
                    "<StateMessage MessageTime=\"20250131{:02}1530.010000+000\" SerialNumber=\"{s}\">\
                     <Topic ID=\"{topic:08x}-7e2a-4b9d-9c41-5d0f1d6e2b8c\" Type=\"500\" IDType=\"3\"/>\
                     <State ID=\"{}\" Criticality=\"0\"/><UserParameters Flags=\"0\" Count=\"1\">\
                     <Param>{{7E1D5C3B-2A49-4F68-8E07-D6C5B4A39281}}</Param></UserParameters>\
                     </StateMessage>",
                    s % 24,
                    s % 4
                )
            })
            .collect();
        let text = format!("{}<ReportBody>{messages}</ReportBody></Report>", self.state_head)
            .replace(CORPUS_ID, &smsid.to_string())
            .replace(CORPUS_NAME, name);
        StateMessages(cmmp_model::state::Report::from_xml(&text).expect("the state report decodes"))
    }
}

fn corpus(relative: &str) -> String {
    let path = format!("{}/../model/tests/documents/{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim_end_matches(['\r', '\n']).to_owned()
}

/// One day client's requests.
struct DayClient {
    registration: Request,
    hinv_full: Request,
    ddr: Request,
    day_ddr: Request,
    day_delta: Request,
    day_states: Vec<Request>,
}

impl DayClient {
    fn build(
        t: &Templates,
        proxy: &Identity,
        proxy_id: SmsId,
        index: usize,
        state_batch: usize,
    ) -> Self {
        let (smsid, name) = client_names(index);
        let uuid = format!("4C4C4544-{:04X}-{:04X}-8052-B4C04F4E3432", index >> 16, index & 0xFFFF);
        let registration = register(proxy, proxy_id, smsid, &name);
        let signer =
            Signer::new(proxy.signing_key(), smsid, HashAlgorithm::Sha256).expect("signer");
        let hinv_full = post(&t.hinv(&smsid, &name, "Full", "1.0"), &signer);
        let ddr = post(&t.ddr(&smsid, &name, &uuid), &signer);
        let day_ddr = post(&t.ddr(&smsid, &name, &uuid), &signer);
        let day_delta = post(&t.hinv(&smsid, &name, "Delta", "1.1"), &signer);
        let serials: Vec<u32> = (1..=STATE_PER_CLIENT as u32).collect();
        let day_states = serials
            .chunks(state_batch)
            .map(|chunk| post(&t.states(&smsid, &name, chunk), &signer))
            .collect();
        Self { registration, hinv_full, ddr, day_ddr, day_delta, day_states }
    }

    fn requests(&self) -> usize {
        5 + self.day_states.len()
    }
}

/// A client of the 50 KB inventory phase.
struct LargeClient {
    registration: Request,
    reports: Vec<Request>,
    report_xml_bytes: usize,
}

impl LargeClient {
    fn build(t: &Templates, proxy: &Identity, proxy_id: SmsId, index: usize) -> Self {
        let (smsid, name) = client_names(index);
        let registration = register(proxy, proxy_id, smsid, &name);
        let signer =
            Signer::new(proxy.signing_key(), smsid, HashAlgorithm::Sha256).expect("signer");
        let mut report_xml_bytes = 0;
        let reports = (1..=HINV_PER_CLIENT)
            .map(|v| {
                let text =
                    t.hinv_text(&smsid, &name, "Full", &format!("{v}.0"), Some(&t.large_body));
                report_xml_bytes = text.len();
                let report =
                    cmmp_model::hinv::Report::from_xml(&text).expect("the large report decodes");
                post(&HinvReport(report), &signer)
            })
            .collect();
        Self { registration, reports, report_xml_bytes }
    }
}

/// Client `index`'s SMSID (a version-4 GUID made from the index) and NetBIOS name.
fn client_names(index: usize) -> (SmsId, String) {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(b"LOAD");
    bytes[8..16].copy_from_slice(&(index as u64).to_be_bytes());
    bytes[6] = 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    (SmsId::from_bytes(bytes), format!("WS{index:05}"))
}

fn registration_info(name: &str, agent_type: AgentType) -> Registration {
    Registration {
        netbios_name: HostName::new(name).expect("a name"),
        fqdn: HostName::new(&format!("{name}.corp.example")).expect("a name"),
        locale_id: 1033,
        agent_identity: "cmmp-load".to_owned(),
        agent_version: "5.00.9128.1000".parse().expect("a version"),
        agent_type,
        internet_flag: 0,
        agent_edition: None,
        extra: Vec::new(),
    }
}

/// A proxy client's registration, signed by the proxy, proposing `smsid`.
fn register(proxy: &Identity, proxy_id: SmsId, smsid: SmsId, name: &str) -> Request {
    let body = build_request(
        &registration_info(name, AgentType::IsvProxyClient),
        proxy,
        RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id },
        HashAlgorithm::Sha256,
        RegistrationKind::Registration,
        MaybeSmsId(Some(smsid)),
        IsoTime::now(),
    )
    .expect("the registration builds");
    wire::build_request(&settings(), &ClientRegistration(body), vec![], None, fresh())
        .expect("the registration request builds")
}

fn post<K: Endpoint>(kind: &K, signer: &Signer<'_>) -> Request {
    wire::build_request(&settings(), kind, vec![], Some(signer), fresh()).expect("the post builds")
}

fn fresh() -> Fresh {
    Fresh::now().expect("a fresh ID")
}

/// The body of a ~`target`-byte hardware inventory report: WMI instances of six classes,
/// keys unique within the report, values with characters that need escaping.
fn large_hinv_body(target: usize) -> String {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = String::with_capacity(target + 1024);
    let mut i = 0usize;
    while out.len() < target {
        let (class, namespace, properties) = wmi_instance(i, &mut rng);
        out.push_str(&format!(
            "<Instance Content=\"New\" Namespace=\"\\\\{CORPUS_NAME}\\{namespace}\" Class=\"{class}\" \
             ParentClass=\"{class}\"><{class}>"
        ));
        for (name, value) in properties {
            out.push_str(&format!("<{name}>{value}</{name}>"));
        }
        out.push_str(&format!("</{class}></Instance>"));
        i += 1;
    }
    out
}

type WmiInstance = (&'static str, &'static str, Vec<(&'static str, String)>);

fn wmi_instance(i: usize, rng: &mut Rng) -> WmiInstance {
    const PUBLISHERS: [&str; 4] =
        ["Contoso Ltd.", "Fabrikam, Inc.", "Tailspin Toys &amp; Co.", "Litware &lt;Labs&gt;"];
    const STATES: [&str; 3] = ["Running", "Stopped", "Paused"];
    match i % 6 {
        0 | 1 => (
            "Win32_Service",
            "root\\cimv2",
            vec![
                ("Name", format!("Svc{i:05}")),
                ("DisplayName", format!("Contoso Service {i}")),
                ("PathName", format!("\"C:\\Program Files\\Contoso\\svc{i}.exe\" -k netsvcs")),
                ("StartMode", "Auto".to_owned()),
                ("State", rng.pick(&STATES).to_owned()),
                ("Status", "OK".to_owned()),
            ],
        ),
        2 | 3 => (
            "SMS_InstalledSoftware",
            "root\\cimv2\\sms",
            vec![
                ("ARPDisplayName", format!("{} App {i}", rng.pick(&PUBLISHERS))),
                ("InstallDate", format!("2024{:02}{:02}", 1 + i % 12, 1 + i % 28)),
                ("ProductVersion", format!("{}.{}.{}", i % 20, i % 10, rng.below(1000))),
                ("Publisher", rng.pick(&PUBLISHERS).to_owned()),
                ("SoftwareCode", format!("{{8a1b2c3d-4e5f-4061-a2b3-{i:012x}}}")),
            ],
        ),
        4 => (
            "Win32_QuickFixEngineering",
            "root\\cimv2",
            vec![
                ("Description", "Security Update".to_owned()),
                ("HotFixID", format!("KB{}", 5_000_000 + i)),
                ("InstalledBy", "NT AUTHORITY\\SYSTEM".to_owned()),
                ("InstalledOn", format!("{}/{}/2024", 1 + i % 12, 1 + i % 28)),
            ],
        ),
        _ => (
            "Win32_PnPEntity",
            "root\\cimv2",
            vec![
                ("Caption", format!("Intel(R) PCI Express Root Port #{}", i % 16)),
                (
                    "DeviceID",
                    format!("PCI\\VEN_8086&amp;DEV_{i:04X}\\3&amp;11583659&amp;0&amp;{i}"),
                ),
                ("Manufacturer", "Intel".to_owned()),
                ("Status", "OK".to_owned()),
            ],
        ),
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = Rng(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// `f(0..n)` on `threads` threads, in order.
fn parallel<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return mine;
                        }
                        mine.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a builder thread")).collect()
    });
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, t)| t).collect()
}

// ---- sending -------------------------------------------------------------------------------

/// One timed phase.
struct Run {
    requests: usize,
    wire_bytes: usize,
    wall: Duration,
    cpu: Duration,
    /// Per-request latency, sorted.
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Sends every request from `connections` concurrent tasks; each reply must be a 200 with a
/// body (an empty 200 is how an MP refuses an Invoke; the site's counts catch refused Posts).
async fn send_all(client: &Client, requests: &[&Request], connections: usize) -> Run {
    // A marker on stderr for tools that profile one phase (perf -t, per-thread CPU).
    eprintln!("sending {} requests", requests.len());
    let requests: Arc<Vec<Request>> = Arc::new(requests.iter().map(|r| (*r).clone()).collect());
    let wire_bytes = requests.iter().map(|r| r.body.len()).sum();
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = client.clone();
            let requests = Arc::clone(&requests);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else { return latencies };
                    let sent = Instant::now();
                    let reply = client.send(request).await.expect("the emulator answers");
                    latencies.push(sent.elapsed());
                    assert_eq!(reply.status, 200, "HTTP status of request {i}");
                    assert!(!reply.body.is_empty(), "request {i} got an empty reply (refused)");
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests.len());
    for t in tasks {
        latencies.extend(t.await.expect("a sender task"));
    }
    let wall = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    latencies.sort_unstable();
    Run { requests: requests.len(), wire_bytes, wall, cpu, latencies }
}

/// The machine's 1-, 5- and 15-minute load averages (`/proc/loadavg`): other work on a shared
/// machine shows here.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The process's user + system CPU time (`/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

// ---- the table -----------------------------------------------------------------------------

struct Row {
    what: String,
    requests: usize,
    wire_mib: f64,
    secs: f64,
    rate: f64,
    cpu: f64,
    p50_ms: f64,
    p99_ms: f64,
    goal: Option<(String, bool)>,
}

impl Row {
    fn new(what: &str, run: &Run, goal: Option<(String, bool)>) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Self {
            what: what.to_owned(),
            requests: run.requests,
            wire_mib: run.wire_bytes as f64 / 1048576.0,
            secs: run.wall.as_secs_f64(),
            rate: run.rate(),
            cpu: run.cpu.as_secs_f64() / run.wall.as_secs_f64(),
            p50_ms: ms(run.percentile(0.5)),
            p99_ms: ms(run.percentile(0.99)),
            goal,
        }
    }
}

fn print_results(rows: &[Row], scale: f64) {
    println!();
    println!(
        "| Phase | Requests | Body MiB | Wall s | Requests/s | CPU cores busy | p50 ms | p99 ms | Goal | Met? |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        let (goal, met) = match &r.goal {
            Some((g, m)) => (g.clone(), if *m { "**yes**" } else { "**no**" }.to_owned()),
            None => (String::new(), String::new()),
        };
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} | {goal} | {met} |",
            r.what, r.requests, r.wire_mib, r.secs, r.rate, r.cpu, r.p50_ms, r.p99_ms
        );
    }
    if scale != 1.0 {
        println!(
            "\n(scale {scale}: the day's time at full scale is estimated as wall / scale; \
             report only full-scale runs)"
        );
    }
}
