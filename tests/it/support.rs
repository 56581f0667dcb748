//! What every end-to-end test needs: an emulator on 127.0.0.1 port 0 serving an in-memory (or
//! file) site, a `cmmp-transport` client pointed at it, the admin JSON surface, identities,
//! registration helpers (single clients, an ISV proxy and its clients) and the sample documents
//! of `model/tests/documents`, rewritten for a client's SMSID.
//!
//! Each test body runs through [`run`]: its own runtime on a thread with a large stack. No
//! helper sleeps (house style HS-83): the emulator acknowledges a message only after the site
//! committed it, so what a reply says is already in the database; the only waits are the
//! client's own bounded timeouts and [`DEADLINE`] on admin reads.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::site::ApprovalPolicy;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_model::kinds::{
    ClientRegistration, DdrReport, FileCollection, HinvReport, IdmifCollection, PolicyAssignments,
    SinvReport, SoftwareMetering, StateMessages, StatusMessage,
};
use cmmp_model::policy::{AssignmentRequestKind, RequestAssignments};
use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
use cmmp_model::value::{IsoTime, MaybeSmsId, SmsId};
use cmmp_model::{Endpoint, MessageExt};
use cmmp_transport::Error;
use cmmp_transport::cert::{Identity, generate_mixed_mode, generate_mixed_mode_single};
use cmmp_transport::client::{Client, ClientConfig};
use cmmp_transport::msg::HostName;
use cmmp_transport::register::{AgentType, Registration, RegistrationSigner, build_request};
use cmmp_transport::sign::{HashAlgorithm, SigningKey};
use cmmp_transport::wire::{Settings, Signer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The MP's name: the site's `management_point.host` default, what the emulator signs replies
/// as, and the `Host` every client request carries (the address comes from `resolve`).
pub(crate) const MP_HOST: &str = "localhost";

/// The client ID in the sample documents, replaced by a registered client's SMSID.
pub(crate) const SAMPLE_ID: &str = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10";

/// Bound on an admin exchange.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

// ---- the MP ----------------------------------------------------------------------------------

/// A running emulator and the way to reach it.
pub(crate) struct Mp {
    emulator: Emulator,
}

impl Mp {
    /// An emulator serving `config` on an in-memory site.
    pub(crate) async fn start(config: SiteConfig) -> Self {
        let site = Site::in_memory(config, Utc::now()).expect("site");
        Self::serve(site).await
    }

    /// An emulator serving the site database at `path`.
    pub(crate) async fn open(config: SiteConfig, path: &Path) -> Self {
        let site = Site::open(config, path, Utc::now()).expect("site file");
        Self::serve(site).await
    }

    async fn serve(site: Site) -> Self {
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
        let emulator = Emulator::start(listen, site, mp_identity()).await.expect("emulator");
        assert!(emulator.addr().ip().is_loopback());
        assert_ne!(emulator.addr().port(), 0);
        Self { emulator }
    }

    /// A stock site: trusted-computer approval, automatic conflict resolution.
    pub(crate) async fn stock() -> Self {
        Self::start(SiteConfig::default()).await
    }

    /// A site that approves every client.
    pub(crate) async fn auto() -> Self {
        Self::start(auto_config()).await
    }

    /// The emulator (its site for library reads, its identity).
    pub(crate) fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops the emulator.
    pub(crate) async fn shutdown(self) {
        self.emulator.shutdown().await;
    }

    /// Message settings of a machine named `source`, for this MP.
    pub(crate) fn settings(&self, source: &str) -> Settings {
        Settings::new(host(MP_HOST), host(source))
    }

    /// A client configuration for `settings`: this MP's port, its address resolved, short
    /// timeouts.
    pub(crate) fn config_for(&self, settings: Settings) -> ClientConfig {
        let mut config = ClientConfig::new(settings);
        config.port = Some(self.emulator.addr().port());
        config.resolve = Some(self.emulator.addr());
        config.connect_timeout = Duration::from_secs(5);
        config.timeout = Duration::from_secs(20);
        config
    }

    /// A client configuration for a machine named `source`.
    pub(crate) fn config(&self, source: &str) -> ClientConfig {
        self.config_for(self.settings(source))
    }

    /// A client on machine `WS01`.
    pub(crate) fn client(&self) -> Client {
        self.client_as("WS01")
    }

    /// A client on machine `source`.
    pub(crate) fn client_as(&self, source: &str) -> Client {
        Client::new(self.config(source)).expect("client")
    }

    /// A client whose configuration `f` adjusts.
    pub(crate) fn client_with(&self, f: impl FnOnce(&mut ClientConfig)) -> Client {
        let mut config = self.config("WS01");
        f(&mut config);
        Client::new(config).expect("client")
    }

    // ---- the admin JSON surface ----

    /// One admin exchange: the status and the JSON body.
    pub(crate) async fn admin(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, body) = http(self.emulator.addr(), method, path, body).await;
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
        (status, json)
    }

    /// `GET` an admin path that must answer 200.
    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, json) = self.admin("GET", path, b"").await;
        assert_eq!(status, 200, "GET {path}: {json}");
        json
    }

    /// `POST` to an admin path that must answer 200.
    pub(crate) async fn post(&self, path: &str, body: &[u8]) -> Value {
        let (status, json) = self.admin("POST", path, body).await;
        assert_eq!(status, 200, "POST {path}: {json}");
        json
    }

    /// Approves a client through the admin surface.
    pub(crate) async fn approve(&self, smsid: &SmsId) {
        let json = self.post(&format!("/cmmp-admin/clients/{smsid}/approve"), b"").await;
        assert_eq!(json["approved"], smsid.to_string());
    }

    /// Blocks a client through the admin surface.
    pub(crate) async fn block(&self, smsid: &SmsId) {
        let json = self.post(&format!("/cmmp-admin/clients/{smsid}/block"), b"").await;
        assert_eq!(json["blocked"], smsid.to_string());
    }

    /// Injects a fault through the admin surface: `{"endpoint", "kind", …}`.
    pub(crate) async fn fault(&self, fault: Value) -> i64 {
        let json = self.post("/cmmp-admin/faults", fault.to_string().as_bytes()).await;
        json["id"].as_i64().expect("fault id")
    }

    /// A client's record (`client` of `GET /cmmp-admin/clients/{smsid}`).
    pub(crate) async fn record(&self, smsid: &SmsId) -> Value {
        self.get(&format!("/cmmp-admin/clients/{smsid}")).await["client"].clone()
    }

    /// A client's messages, newest first.
    pub(crate) async fn messages(&self, smsid: &SmsId) -> Vec<Value> {
        array(self.get(&format!("/cmmp-admin/clients/{smsid}/messages?limit=1000")).await)
    }

    /// `(kind, outcome, reason)` of the client's latest message.
    pub(crate) async fn last(&self, smsid: &SmsId) -> (String, String, Option<String>) {
        let messages = self.messages(smsid).await;
        let m = messages.first().expect("a message");
        (text(&m["kind"]), text(&m["outcome"]), m["reason"].as_str().map(str::to_owned))
    }

    /// A client's inventory instances.
    pub(crate) async fn inventory(&self, smsid: &SmsId) -> Vec<Value> {
        array(self.get(&format!("/cmmp-admin/clients/{smsid}/inventory")).await)
    }

    // ---- registration ----

    /// Registers a fresh single client named `name` and checks `Status` 0.
    pub(crate) async fn enrol(&self, name: &str) -> Enrolled {
        self.enrol_as(identity(name), name, &[]).await
    }

    /// Registers `identity` as machine `name` with extra discovery properties.
    pub(crate) async fn enrol_as(
        &self,
        identity: Arc<Identity>,
        name: &str,
        extra: &[(&str, &str)],
    ) -> Enrolled {
        let request = Reg { extra, ..Reg::new(&identity, name) }.build();
        let reply = register(&self.client_as(name), request).await.expect("registration");
        assert_eq!(reply.status, 0, "{reply:?}");
        Enrolled { name: name.to_owned(), identity, smsid: reply.smsid.expect("SMSID") }
    }

    /// Imports an ISV proxy's certificate through the admin surface, registers the proxy
    /// (`AgentType` 4), and checks it got the SMSID the import issued.
    pub(crate) async fn enrol_proxy(&self, name: &str) -> Enrolled {
        let identity = identity(name);
        let smsid = self.import_proxy(&identity).await;
        let request = Reg { agent_type: AgentType::IsvProxy, ..Reg::new(&identity, name) }.build();
        let reply = register(&self.client_as(name), request).await.expect("proxy registration");
        assert_eq!((reply.status, reply.smsid), (0, Some(smsid)), "{reply:?}");
        Enrolled { name: name.to_owned(), identity, smsid }
    }

    /// `POST /cmmp-admin/proxies` with the certificate as hex; returns the proxy's SMSID.
    pub(crate) async fn import_proxy(&self, identity: &Identity) -> SmsId {
        let hex = cmmp_transport::sign::hex_upper(identity.signing_cert_der());
        let json = self.post("/cmmp-admin/proxies", hex.as_bytes()).await;
        json["smsid"].as_str().expect("smsid").parse().expect("an SMSID")
    }

    /// Registers `names` as clients of `proxy` (`AgentType` 8, signed by the proxy). Their
    /// messages are signed with the proxy's key too, so each carries the proxy's identity.
    pub(crate) async fn enrol_proxy_clients(
        &self,
        proxy: &Enrolled,
        names: &[&str],
    ) -> Vec<Enrolled> {
        let mut out = Vec::new();
        for name in names {
            let request = Reg::proxied(&proxy.identity, proxy.smsid, name).build();
            let reply = register(&self.client_as(&proxy.name), request).await.expect("proxied");
            assert_eq!(reply.status, 0, "{reply:?}");
            out.push(Enrolled {
                name: (*name).to_owned(),
                identity: Arc::clone(&proxy.identity),
                smsid: reply.smsid.expect("SMSID"),
            });
        }
        out
    }
}

/// A site that approves every client.
pub(crate) fn auto_config() -> SiteConfig {
    SiteConfig { approval: ApprovalPolicy::AutoAll, ..SiteConfig::default() }
}

/// A registered client: its name, the identity that signs for it (an ISV proxy's for a
/// proxied client) and its SMSID.
pub(crate) struct Enrolled {
    pub(crate) name: String,
    pub(crate) identity: Arc<Identity>,
    pub(crate) smsid: SmsId,
}

impl Enrolled {
    /// Signs messages about this client with its identity's key.
    pub(crate) fn signer(&self) -> Signer<'_> {
        Signer::new(self.identity.signing_key(), self.smsid, HashAlgorithm::Sha256).expect("signer")
    }

    /// Signs messages about this client with another key (a forgery).
    pub(crate) fn forged_signer<'k>(&self, key: &'k SigningKey) -> Signer<'k> {
        Signer::new(key, self.smsid, HashAlgorithm::Sha256).expect("signer")
    }
}

/// A registration request being built: a single client's first registration by default.
pub(crate) struct Reg<'a> {
    pub(crate) identity: &'a Identity,
    pub(crate) name: &'a str,
    pub(crate) agent_type: AgentType,
    pub(crate) signer: RegistrationSigner<'a>,
    pub(crate) kind: RegistrationKind,
    pub(crate) smsid: Option<SmsId>,
    pub(crate) extra: &'a [(&'a str, &'a str)],
    pub(crate) hash: HashAlgorithm,
}

impl<'a> Reg<'a> {
    /// `identity` registering itself as machine `name`.
    pub(crate) fn new(identity: &'a Identity, name: &'a str) -> Self {
        Self {
            identity,
            name,
            agent_type: AgentType::AdvancedClient,
            signer: RegistrationSigner::Own,
            kind: RegistrationKind::Registration,
            smsid: None,
            extra: &[],
            hash: HashAlgorithm::Sha256,
        }
    }

    /// A client `name` registered by the ISV proxy `proxy` (SMSID `proxy_id`).
    pub(crate) fn proxied(proxy: &'a Identity, proxy_id: SmsId, name: &'a str) -> Self {
        Self {
            agent_type: AgentType::IsvProxyClient,
            signer: RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id },
            ..Self::new(proxy, name)
        }
    }

    /// A confirmation of `smsid`.
    pub(crate) fn confirm(self, smsid: SmsId) -> Self {
        Self { kind: RegistrationKind::Confirmation, smsid: Some(smsid), ..self }
    }

    /// The signed request.
    pub(crate) fn build(&self) -> ClientRegistration {
        let info = Registration {
            netbios_name: host(self.name),
            fqdn: host(&format!("{}.corp.example", self.name)),
            locale_id: 1033,
            agent_identity: "cmmp-tests".to_owned(),
            agent_version: "5.00.9128.1000".parse().expect("version"),
            agent_type: self.agent_type,
            internet_flag: 0,
            agent_edition: None,
            extra: self.extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
        ClientRegistration(
            build_request(
                &info,
                self.identity,
                self.signer,
                self.hash,
                self.kind.clone(),
                MaybeSmsId(self.smsid),
                IsoTime::now(),
            )
            .expect("registration request"),
        )
    }
}

/// Sends a registration and returns the MP's response.
pub(crate) async fn register(
    client: &Client,
    request: ClientRegistration,
) -> Result<ClientRegistrationResponse, Error> {
    client.invoke(&request, vec![], None).await.map(|r| r.reply)
}

// ---- identities ------------------------------------------------------------------------------

/// The MP's identity (separate signing and encryption certificates), generated once per test
/// binary; each emulator gets its own copy.
pub(crate) fn mp_identity() -> Identity {
    static MP: OnceLock<Identity> = OnceLock::new();
    let id = MP.get_or_init(|| {
        generate_mixed_mode("SMS Issuing", SystemTime::now()).expect("MP identity")
    });
    Identity::new(
        id.signing_key().clone(),
        id.signing_cert().clone(),
        id.encryption_key().clone(),
        id.encryption_cert().clone(),
    )
    .expect("MP identity copy")
}

/// A one-certificate identity (what third-party clients register) for machine `name`,
/// generated on first use and shared by the tests of this binary: RSA key generation is the
/// slow part of the suite. Different names are different keys; each test site is its own, so
/// two tests using one name never meet.
pub(crate) fn identity(name: &str) -> Arc<Identity> {
    pooled(name, || generate_mixed_mode_single("ConfigMgr Client", SystemTime::now()))
}

/// A two-certificate identity (signing and encryption, as the real client has) for `name`.
pub(crate) fn identity_pair(name: &str) -> Arc<Identity> {
    pooled(&format!("{name} (pair)"), || generate_mixed_mode("ConfigMgr Client", SystemTime::now()))
}

fn pooled(
    key: &str,
    make: impl FnOnce() -> Result<Identity, cmmp_transport::cert::CertError>,
) -> Arc<Identity> {
    static POOL: OnceLock<Mutex<BTreeMap<String, Arc<Identity>>>> = OnceLock::new();
    let pool = POOL.get_or_init(Mutex::default);
    if let Some(found) = pool.lock().expect("pool").get(key) {
        return Arc::clone(found);
    }
    // Generated outside the lock so tests do not queue behind each other's key generation.
    let fresh = Arc::new(make().expect("identity"));
    Arc::clone(pool.lock().expect("pool").entry(key.to_owned()).or_insert(fresh))
}

pub(crate) fn host(name: &str) -> HostName {
    HostName::new(name).expect("host name")
}

// ---- documents -------------------------------------------------------------------------------

/// A sample document of `model/tests/documents`.
pub(crate) fn doc(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/documents").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A kind whose body is the sample document `path`, about `smsid`.
pub(crate) fn sample<K: Endpoint>(path: &str, smsid: &SmsId) -> K {
    from_text(&doc(path).replace(SAMPLE_ID, &smsid.to_string()))
}

/// A kind from its body text.
pub(crate) fn from_text<K: Endpoint>(text: &str) -> K {
    K::from_body(K::Body::from_xml(text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// The sample hardware inventory (six instances) as a `report_type` report of `version`.
pub(crate) fn hinv(smsid: &SmsId, report_type: &str, version: &str) -> HinvReport {
    from_text(&report_as(&doc("hinv/full.xml"), smsid, report_type, version))
}

/// A hardware inventory report of `(Content, DeviceID, FreeSpace)` logical disks.
pub(crate) fn hinv_disks(
    smsid: &SmsId,
    report_type: &str,
    version: &str,
    disks: &[(&str, &str, &str)],
) -> HinvReport {
    let instances: String = disks
        .iter()
        .map(|(content, id, free)| {
            format!(
                "<Instance Content=\"{content}\" Namespace=\"\\\\WS01\\root\\cimv2\" \
                 Class=\"Win32_LogicalDisk\" ParentClass=\"Win32_LogicalDisk\"><Win32_LogicalDisk>\
                 <DeviceID>{id}</DeviceID><FreeSpace>{free}</FreeSpace></Win32_LogicalDisk></Instance>"
            )
        })
        .collect();
    let sample = doc("hinv/full.xml");
    let head = &sample[..sample.find("<ReportBody>").expect("ReportBody")];
    let text = format!("{head}<ReportBody>{instances}</ReportBody></Report>");
    from_text(&report_as(&text, smsid, report_type, version))
}

fn report_as(text: &str, smsid: &SmsId, report_type: &str, version: &str) -> String {
    text.replace(SAMPLE_ID, &smsid.to_string())
        .replace(
            "<ReportType>Delta</ReportType>",
            &format!("<ReportType>{report_type}</ReportType>"),
        )
        .replace("<Version>1.0</Version>", &format!("<Version>{version}</Version>"))
}

/// The sample DDR (eleven instances) with the SMBIOS UUID `uuid`.
pub(crate) fn ddr(smsid: &SmsId, uuid: &str) -> DdrReport {
    from_text(
        &doc("ddr/full.xml")
            .replace(SAMPLE_ID, &smsid.to_string())
            .replace("4C4C4544-0042-3510-8052-B4C04F4E3432", uuid),
    )
}

/// The sample software inventory: `notepad.exe` and `inhouse-sync.exe`.
pub(crate) fn sinv(smsid: &SmsId) -> SinvReport {
    sample("sinv/full.xml", smsid)
}

/// The sample file collection: files `1` (`setupact.log`) and `2` (`hosts`).
pub(crate) fn file_collection(smsid: &SmsId) -> FileCollection {
    sample("filecoll/full.xml", smsid)
}

/// The sample IDMIF collection: file `1` (`lab-analyzer.mif`).
pub(crate) fn idmif(smsid: &SmsId) -> IdmifCollection {
    sample("idmif/full.xml", smsid)
}

/// The sample software metering report: three usage records.
pub(crate) fn metering(smsid: &SmsId) -> SoftwareMetering {
    sample("metering/full.xml", smsid)
}

/// The sample status message (`CCM_CcmHttp_Status`).
pub(crate) fn status(smsid: &SmsId) -> StatusMessage {
    sample("status/ccmhttp-status.xml", smsid)
}

/// A state message report with one message per serial number.
pub(crate) fn state(smsid: &SmsId, serials: &[u32]) -> StateMessages {
    from_text(&state_text(smsid, serials))
}

/// The text of [`state`].
pub(crate) fn state_text(smsid: &SmsId, serials: &[u32]) -> String {
    let messages: String = serials
        .iter()
        .map(|s| {
            format!(
                "<StateMessage MessageTime=\"20250131101530.010000+000\" SerialNumber=\"{s}\">\
                 <Topic ID=\"{{00000000-0000-0000-0000-00000000000{}}}\" Type=\"701\" IDType=\"0\"/>\
                 <State ID=\"0\" Criticality=\"0\"/><UserParameters Flags=\"0\" Count=\"0\"/></StateMessage>",
                s % 10
            )
        })
        .collect();
    let sample = doc("state/app-and-heartbeat.xml");
    let head = &sample[..sample.find("<ReportBody>").expect("ReportBody")];
    format!("{head}<ReportBody>{messages}</ReportBody></Report>")
        .replace(SAMPLE_ID, &smsid.to_string())
}

/// A machine policy assignment request.
pub(crate) fn policy_request(
    smsid: &SmsId,
    name: &str,
    request_type: AssignmentRequestKind,
    cookie: &str,
) -> PolicyAssignments {
    let kind = match request_type {
        AssignmentRequestKind::OnUpdate => "OnUpdate",
        _ => "Always",
    };
    let text = format!(
        "<RequestAssignments SchemaVersion=\"1.00\" ACK=\"false\" RequestType=\"{kind}\">\
         <Identification><Machine><ClientID>{smsid}</ClientID><FQDN>{name}.corp.example</FQDN>\
         <NetBIOSName>{name}</NetBIOSName><SID/></Machine><User/></Identification>\
         <PolicySource>SMS:P01</PolicySource><Resource ResourceType=\"Machine\"/>\
         <ServerCookie>{cookie}</ServerCookie></RequestAssignments>"
    );
    PolicyAssignments(RequestAssignments::from_xml(&text).expect("policy request"))
}

/// `client`'s machine policy request, signed by it.
pub(crate) async fn request_policy(
    client: &Client,
    who: &Enrolled,
) -> Result<cmmp_model::policy::ReplyAssignments, Error> {
    let request = policy_request(&who.smsid, &who.name, AssignmentRequestKind::Always, "");
    client.invoke(&request, vec![], Some(&who.signer())).await.map(|r| r.reply)
}

// ---- running a test --------------------------------------------------------------------------

/// The stack of a test's thread: an exchange's poll chain in a debug build (the client's and
/// the emulator's connection tasks, which run on the same thread) takes about 1 MiB, and every
/// `.await` of a long test body adds its own copy of the future it awaits; the 2 MiB of a
/// libtest thread is too tight.
const TEST_STACK: usize = 16 * 1024 * 1024;

/// Runs a test body on a current-thread tokio runtime of its own (the emulator's tasks and the
/// client share it), on a thread with [`TEST_STACK`] of stack; a panic in the body fails the
/// test. The body is `Send`, so a site lock held across an `.await` (a deadlock with the
/// emulator) does not compile.
pub(crate) fn run(test: impl Future<Output = ()> + Send + 'static) {
    on_big_stack(move || {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(test);
    });
}

/// Runs `f` on a thread with [`TEST_STACK`] of stack (the blocking client's exchanges run on
/// the calling thread).
pub(crate) fn on_big_stack(f: impl FnOnce() + Send + 'static) {
    let name = std::thread::current().name().unwrap_or("test").to_owned();
    let worker = std::thread::Builder::new()
        .name(name)
        .stack_size(TEST_STACK)
        .spawn(f)
        .expect("a test thread");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}

// ---- JSON and HTTP ---------------------------------------------------------------------------

/// The elements of a JSON array.
pub(crate) fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// A JSON string's text.
pub(crate) fn text(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("expected a JSON string, got {value}")).to_owned()
}

/// The bytes of a JSON array of numbers (how the admin surface writes file contents).
pub(crate) fn bytes(value: &Value) -> Vec<u8> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected bytes, got {value}"))
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).expect("a byte"))
        .collect()
}

/// One HTTP/1.1 exchange over a new connection, read to its end (the emulator closes every
/// connection after its answer): the status and the body.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {MP_HOST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let (status, _, body) = raw_exchange(addr, &request).await;
    (status, body)
}

/// Writes `request` as it is to a new connection and reads the whole answer: status, head
/// lines and body.
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        // No more requests: an HTTP/1.1 request without `Connection: close` would otherwise
        // keep the connection (and `read_to_end`) open.
        stream.shutdown().await.expect("half-close");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        answer
    };
    let answer = tokio::time::timeout(DEADLINE, work).await.expect("an answer within the deadline");
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head, answer[end + 4..].to_vec())
}
