//! Codec throughput of `cmmp-model` against a serde derive + quick-xml baseline (issue 2).
//!
//! Two workloads, each encoded and decoded by both models in the same run:
//!
//! - `hinv_2mb`: one hardware inventory report of about 2 MB (about 3,600 `Instance`s of six
//!   WMI classes with 5–9 properties each, some values holding `&`, `<`, `>` and quotes), built
//!   deterministically and written by cmmp to get the input text.
//! - `small_10k`: 10,000 small documents cycling through six corpus documents of four message
//!   types (`model/tests/documents`): a state message report, two `ClientRegistrationResponse`s,
//!   a `WSUSLocationRequest` and a `Status`.
//!
//! The baseline ([`baseline`]) is a hand-written model of the same documents with
//! `#[derive(Serialize, Deserialize)]`, read with `quick_xml::de::from_str` and written with
//! `quick_xml::se::to_writer`. Before measuring, [`check_equivalence`] asserts for every input
//! document that the baseline reads it and writes it back byte for byte, that cmmp writes it
//! back byte for byte, and that cmmp decodes the baseline's output to the same value as the
//! input.
//!
//! Run with `cargo bench -p cmmp-model --bench codec`; results are in `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use cmmp_model::hinv::Report as HinvReport;
use cmmp_model::location::WsusLocationRequest;
use cmmp_model::registration::ClientRegistrationResponse;
use cmmp_model::state::Report as StateReport;
use cmmp_model::status::Status;
use cmmp_model::{Message, MessageExt};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};

#[path = "support/hinv_report.rs"]
mod hinv_report;
use hinv_report::HINV_INSTANCES;
/// Number of documents in the small-message workload.
const SMALL_COUNT: usize = 10_000;
/// Corpus documents of the small-message workload, cycled to [`SMALL_COUNT`].
const SMALL_DOCUMENTS: [(Kind, &str); 6] = [
    (Kind::State, "state/app-and-heartbeat.xml"),
    (Kind::Registration, "registration/response-approved.xml"),
    (Kind::Wsus, "location/wsus-request-lowercase.canonical.xml"),
    (Kind::Status, "status/ccmhttp-status.xml"),
    (Kind::State, "state/update-compliance.canonical.xml"),
    (Kind::Registration, "registration/response-pending.xml"),
];

/// The message type of a small document.
#[derive(Clone, Copy, Debug)]
enum Kind {
    State,
    Registration,
    Wsus,
    Status,
}

/// A small document decoded by cmmp.
enum CmmpSmall {
    State(Box<StateReport>),
    Registration(Box<ClientRegistrationResponse>),
    Wsus(Box<WsusLocationRequest>),
    Status(Box<Status>),
}

/// A small document decoded by the baseline.
enum BaselineSmall {
    State(Box<baseline::StateReport>),
    Registration(Box<baseline::ClientRegistrationResponse>),
    Wsus(Box<baseline::WsusLocationRequest>),
    Status(Box<baseline::Status>),
}

fn cmmp_decode_small(kind: Kind, text: &str) -> CmmpSmall {
    fn decode<M: Message>(text: &str) -> Box<M> {
        Box::new(M::from_xml(text).expect("cmmp decodes the document"))
    }
    match kind {
        Kind::State => CmmpSmall::State(decode(text)),
        Kind::Registration => CmmpSmall::Registration(decode(text)),
        Kind::Wsus => CmmpSmall::Wsus(decode(text)),
        Kind::Status => CmmpSmall::Status(decode(text)),
    }
}

fn cmmp_encode_small(message: &CmmpSmall, out: &mut String) {
    match message {
        CmmpSmall::State(m) => m.write_into(out),
        CmmpSmall::Registration(m) => m.write_into(out),
        CmmpSmall::Wsus(m) => m.write_into(out),
        CmmpSmall::Status(m) => m.write_into(out),
    }
    .expect("cmmp encodes the document");
}

fn baseline_decode_small(kind: Kind, text: &str) -> BaselineSmall {
    fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Box<T> {
        Box::new(quick_xml::de::from_str(text).expect("the baseline decodes the document"))
    }
    match kind {
        Kind::State => BaselineSmall::State(decode(text)),
        Kind::Registration => BaselineSmall::Registration(decode(text)),
        Kind::Wsus => BaselineSmall::Wsus(decode(text)),
        Kind::Status => BaselineSmall::Status(decode(text)),
    }
}

fn baseline_encode_small(message: &BaselineSmall, out: &mut String) {
    match message {
        BaselineSmall::State(m) => quick_xml::se::to_writer(out, m.as_ref()),
        BaselineSmall::Registration(m) => quick_xml::se::to_writer(out, m.as_ref()),
        BaselineSmall::Wsus(m) => quick_xml::se::to_writer(out, m.as_ref()),
        BaselineSmall::Status(m) => quick_xml::se::to_writer(out, m.as_ref()),
    }
    .expect("the baseline encodes the document");
}

fn read_document(relative: &str) -> String {
    let path = format!("{}/tests/documents/{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim_end_matches(['\r', '\n']).to_owned()
}

/// The ~2 MB hardware inventory report, written by cmmp.
fn hinv_input() -> String {
    let header = HinvReport::from_xml(&read_document("hinv/full.xml"))
        .expect("the corpus report decodes")
        .report_header;
    hinv_report::report(header).to_xml().expect("the report encodes")
}

/// The 10,000 small documents, cycling through [`SMALL_DOCUMENTS`].
fn small_inputs() -> Vec<(Kind, String)> {
    let corpus: Vec<(Kind, String)> =
        SMALL_DOCUMENTS.iter().map(|&(kind, path)| (kind, read_document(path))).collect();
    corpus.iter().cycle().take(SMALL_COUNT).cloned().collect()
}

/// Asserts that both models read `text` and write it back byte for byte, and that cmmp reads
/// the baseline's output to the same value as `text`.
fn check_one<M, B>(text: &str)
where
    M: Message + PartialEq + std::fmt::Debug,
    B: serde::Serialize + serde::de::DeserializeOwned,
{
    let ours = M::from_xml(text).expect("cmmp decodes the input");
    assert_eq!(ours.to_xml().expect("cmmp encodes"), text, "cmmp round trip of {}", M::ROOT);
    let theirs: B = quick_xml::de::from_str(text).expect("the baseline decodes the input");
    let written = quick_xml::se::to_string(&theirs).expect("the baseline encodes");
    let reread = M::from_xml(&written).expect("cmmp decodes the baseline's output");
    assert!(reread == ours, "the baseline changed the data of {}", M::ROOT);
    assert_eq!(written, text, "baseline round trip of {}", M::ROOT);
}

/// Checks every input document once (see [`check_one`]).
fn check_equivalence(hinv: &str) {
    check_one::<HinvReport, baseline::HinvReport>(hinv);
    for &(kind, path) in &SMALL_DOCUMENTS {
        let text = read_document(path);
        match kind {
            Kind::State => check_one::<StateReport, baseline::StateReport>(&text),
            Kind::Registration => {
                check_one::<ClientRegistrationResponse, baseline::ClientRegistrationResponse>(
                    &text,
                );
            }
            Kind::Wsus => check_one::<WsusLocationRequest, baseline::WsusLocationRequest>(&text),
            Kind::Status => check_one::<Status, baseline::Status>(&text),
        }
    }
}

fn configure<'c>(c: &'c mut Criterion, name: &str, bytes: usize) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Bytes(u64::try_from(bytes).expect("a size")));
    group
}

fn hinv_2mb(c: &mut Criterion) {
    let text = hinv_input();
    check_equivalence(&text);
    println!("hinv_2mb: {} bytes, {HINV_INSTANCES} instances", text.len());
    let ours = HinvReport::from_xml(&text).expect("cmmp decodes the input");
    let theirs: baseline::HinvReport =
        quick_xml::de::from_str(&text).expect("the baseline decodes the input");
    let mut out = String::with_capacity(text.len());

    let mut group = configure(c, "hinv_2mb", text.len());
    group.bench_function("encode/cmmp", |b| {
        b.iter(|| {
            out.clear();
            black_box(&ours).write_into(&mut out).expect("cmmp encodes");
            black_box(out.len())
        });
    });
    group.bench_function("encode/serde_baseline", |b| {
        b.iter(|| {
            out.clear();
            quick_xml::se::to_writer(&mut out, black_box(&theirs)).expect("the baseline encodes");
            black_box(out.len())
        });
    });
    group.bench_function("decode/cmmp", |b| {
        b.iter(|| HinvReport::from_xml(black_box(&text)).expect("cmmp decodes"));
    });
    group.bench_function("decode/serde_baseline", |b| {
        b.iter(|| {
            quick_xml::de::from_str::<baseline::HinvReport>(black_box(&text))
                .expect("the baseline decodes")
        });
    });
    group.finish();
}

fn small_10k(c: &mut Criterion) {
    let inputs = small_inputs();
    let bytes: usize = inputs.iter().map(|(_, text)| text.len()).sum();
    println!("small_10k: {bytes} bytes in {} documents", inputs.len());
    let ours: Vec<CmmpSmall> =
        inputs.iter().map(|(kind, text)| cmmp_decode_small(*kind, text)).collect();
    let theirs: Vec<BaselineSmall> =
        inputs.iter().map(|(kind, text)| baseline_decode_small(*kind, text)).collect();
    let mut out = String::with_capacity(4096);

    let mut group = configure(c, "small_10k", bytes);
    group.bench_function("encode/cmmp", |b| {
        b.iter(|| {
            let mut total = 0;
            for message in black_box(&ours) {
                out.clear();
                cmmp_encode_small(message, &mut out);
                total += out.len();
            }
            total
        });
    });
    group.bench_function("encode/serde_baseline", |b| {
        b.iter(|| {
            let mut total = 0;
            for message in black_box(&theirs) {
                out.clear();
                baseline_encode_small(message, &mut out);
                total += out.len();
            }
            total
        });
    });
    group.bench_function("decode/cmmp", |b| {
        b.iter(|| {
            for (kind, text) in black_box(&inputs) {
                black_box(cmmp_decode_small(*kind, text));
            }
        });
    });
    group.bench_function("decode/serde_baseline", |b| {
        b.iter(|| {
            for (kind, text) in black_box(&inputs) {
                black_box(baseline_decode_small(*kind, text));
            }
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    hinv_2mb(&mut c);
    small_10k(&mut c);
    c.final_summary();
}

/// The baseline: the same documents modelled by hand with serde derive, for quick-xml's serde
/// support. Attributes are `@Name` fields, text content `$text`, and the WMI class element of
/// a hardware inventory `Instance` a `$value` enum with one variant per class. Simple values
/// stay strings or integers (cmmp parses GUIDs, SMS IDs, times and versions into types).
mod baseline {
    use serde::{Deserialize, Serialize};

    // ---- Report header (report-common.xsd), shared by the HINV and state reports ----

    #[derive(Serialize, Deserialize)]
    struct ClientId {
        #[serde(rename = "@IDFlag", default, skip_serializing_if = "Option::is_none")]
        id_flag: Option<i32>,
        #[serde(rename = "@IDType", default, skip_serializing_if = "Option::is_none")]
        id_type: Option<i32>,
        #[serde(rename = "$text")]
        value: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Machine {
        client_installed: i32,
        client_type: i32,
        #[serde(rename = "ClientID")]
        client_id: ClientId,
        client_version: String,
        #[serde(rename = "NetBIOSName")]
        net_bios_name: String,
        code_page: i32,
        #[serde(rename = "SystemDefaultLCID")]
        system_default_lcid: i32,
        #[serde(default)]
        priority: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Identification {
        machine: Machine,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ReportDetails {
        report_content: String,
        report_type: String,
        date: String,
        version: String,
        format: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct InventoryAction {
        #[serde(rename = "@ActionType")]
        action_type: String,
        #[serde(rename = "InventoryActionID")]
        inventory_action_id: String,
        description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inventory_action_last_update_time: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ReportHeader {
        identification: Identification,
        report_details: ReportDetails,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inventory_action: Option<InventoryAction>,
    }

    // ---- Hardware inventory (hinv.xsd) ----

    /// `Report` with a hardware inventory body.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Report", rename_all = "PascalCase")]
    pub(super) struct HinvReport {
        report_header: ReportHeader,
        report_body: HinvBody,
    }

    #[derive(Serialize, Deserialize)]
    struct HinvBody {
        #[serde(rename = "Instance", default)]
        instance: Vec<Instance>,
    }

    #[derive(Serialize, Deserialize)]
    struct Instance {
        #[serde(rename = "@Content")]
        content: String,
        #[serde(rename = "@Namespace")]
        namespace: String,
        #[serde(rename = "@Class")]
        class: String,
        #[serde(rename = "@ParentClass")]
        parent_class: String,
        #[serde(rename = "$value")]
        any: WmiClass,
    }

    /// The WMI class element: its name is the variant.
    #[derive(Serialize, Deserialize)]
    enum WmiClass {
        #[serde(rename = "Win32_Service")]
        Service(Service),
        #[serde(rename = "SMS_InstalledSoftware")]
        InstalledSoftware(InstalledSoftware),
        #[serde(rename = "Win32_PnPEntity")]
        PnpEntity(PnpEntity),
        #[serde(rename = "Win32_LogicalDisk")]
        LogicalDisk(LogicalDisk),
        #[serde(rename = "Win32_NetworkAdapterConfiguration")]
        NetworkAdapterConfiguration(NetworkAdapterConfiguration),
        #[serde(rename = "Win32_QuickFixEngineering")]
        QuickFixEngineering(QuickFixEngineering),
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Service {
        name: String,
        display_name: String,
        description: String,
        path_name: String,
        service_type: String,
        start_mode: String,
        start_name: String,
        state: String,
        status: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct InstalledSoftware {
        #[serde(rename = "ARPDisplayName")]
        arp_display_name: String,
        install_date: String,
        installed_location: String,
        product_name: String,
        product_version: String,
        publisher: String,
        software_code: String,
        uninstall_string: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct PnpEntity {
        caption: String,
        class_guid: String,
        #[serde(rename = "DeviceID")]
        device_id: String,
        manufacturer: String,
        name: String,
        #[serde(rename = "PNPClass")]
        pnp_class: String,
        status: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct LogicalDisk {
        #[serde(rename = "DeviceID")]
        device_id: String,
        drive_type: String,
        file_system: String,
        free_space: String,
        size: String,
        volume_name: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct NetworkAdapterConfiguration {
        #[serde(rename = "DefaultIPGateway")]
        default_ip_gateway: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(rename = "DHCPEnabled")]
        dhcp_enabled: String,
        index: String,
        #[serde(rename = "IPAddress", default)]
        ip_address: Vec<String>,
        #[serde(rename = "IPSubnet", default)]
        ip_subnet: Vec<String>,
        #[serde(rename = "MACAddress")]
        mac_address: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct QuickFixEngineering {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(rename = "HotFixID")]
        hot_fix_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        installed_by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        installed_on: Option<String>,
    }

    // ---- State message report (state.xsd) ----

    /// `Report` with a state message body.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Report", rename_all = "PascalCase")]
    pub(super) struct StateReport {
        report_header: ReportHeader,
        report_body: StateBody,
    }

    #[derive(Serialize, Deserialize)]
    struct StateBody {
        #[serde(rename = "StateMessage", default)]
        state_message: Vec<StateMessage>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct StateMessage {
        #[serde(rename = "@MessageTime")]
        message_time: String,
        #[serde(rename = "@SerialNumber")]
        serial_number: u32,
        topic: Topic,
        state: State,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state_details: Option<StateDetails>,
        user_parameters: UserParameters,
    }

    #[derive(Serialize, Deserialize)]
    struct Topic {
        #[serde(rename = "@ID")]
        id: String,
        #[serde(rename = "@Type")]
        kind: i32,
        #[serde(rename = "@IDType")]
        id_type: i32,
        #[serde(rename = "@User", default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(rename = "@UserSID", default, skip_serializing_if = "Option::is_none")]
        user_sid: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    struct State {
        #[serde(rename = "@ID")]
        id: i32,
        #[serde(rename = "@Criticality")]
        criticality: i32,
    }

    #[derive(Serialize, Deserialize)]
    struct StateDetails {
        #[serde(rename = "@Type")]
        kind: i32,
        #[serde(rename = "$text", default)]
        value: String,
    }

    #[derive(Serialize, Deserialize)]
    struct UserParameters {
        #[serde(rename = "@Flags")]
        flags: i32,
        #[serde(rename = "@Count")]
        count: i32,
        #[serde(rename = "Param", default)]
        param: Vec<String>,
    }

    // ---- Client registration response (registration.xsd) ----

    /// `ClientRegistrationResponse`.
    #[derive(Serialize, Deserialize)]
    pub(super) struct ClientRegistrationResponse {
        #[serde(rename = "@ResponseType")]
        response_type: String,
        #[serde(rename = "@TimeStamp")]
        time_stamp: String,
        #[serde(rename = "@Status")]
        status: i32,
        #[serde(rename = "@SMSID", default, skip_serializing_if = "Option::is_none")]
        smsid: Option<String>,
        #[serde(rename = "@ApprovalStatus", default, skip_serializing_if = "Option::is_none")]
        approval_status: Option<i32>,
    }

    // ---- WSUS location request (location.xsd) ----

    /// `WSUSLocationRequest`.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "WSUSLocationRequest", rename_all = "PascalCase")]
    pub(super) struct WsusLocationRequest {
        #[serde(rename = "@SchemaVersion")]
        schema_version: String,
        content: WsusContent,
        assigned_site: AssignedSite,
        client_location_info: ClientLocationInfo,
    }

    #[derive(Serialize, Deserialize)]
    struct WsusContent {
        #[serde(rename = "@ID")]
        id: String,
        #[serde(rename = "@Version")]
        version: i32,
    }

    #[derive(Serialize, Deserialize)]
    struct AssignedSite {
        #[serde(rename = "@SiteCode")]
        site_code: String,
    }

    #[derive(Serialize, Deserialize)]
    struct ClientLocationInfo {
        #[serde(rename = "@OnInternet", default, skip_serializing_if = "Option::is_none")]
        on_internet: Option<i32>,
        #[serde(rename = "ADSite")]
        ad_site: NameAttribute,
        #[serde(rename = "Forest")]
        forest: NameAttribute,
        #[serde(rename = "Domain")]
        domain: NameAttribute,
        #[serde(rename = "IPAddresses")]
        ip_addresses: IpAddresses,
    }

    #[derive(Serialize, Deserialize)]
    struct NameAttribute {
        #[serde(rename = "@Name")]
        name: String,
    }

    #[derive(Serialize, Deserialize)]
    struct IpAddresses {
        #[serde(rename = "IPAddress", default)]
        ip_address: Vec<IpAddress>,
    }

    #[derive(Serialize, Deserialize)]
    struct IpAddress {
        #[serde(rename = "@SubnetAddress", default, skip_serializing_if = "Option::is_none")]
        subnet_address: Option<String>,
        #[serde(rename = "@Address")]
        address: String,
    }

    // ---- Status message (status.xsd) ----

    /// `Status`.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Status {
        #[serde(rename = "@SchemaVersion")]
        schema_version: String,
        #[serde(rename = "@CodePage")]
        code_page: i32,
        #[serde(rename = "@LocaleID")]
        locale_id: i32,
        #[serde(rename = "Type")]
        kind: String,
        properties: Properties,
        qualifiers: Qualifiers,
    }

    #[derive(Serialize, Deserialize)]
    struct Properties {
        #[serde(rename = "Property", default)]
        property: Vec<NamedText>,
    }

    #[derive(Serialize, Deserialize)]
    struct Qualifiers {
        #[serde(rename = "Qualifier", default)]
        qualifier: Vec<NamedText>,
    }

    #[derive(Serialize, Deserialize)]
    struct NamedText {
        #[serde(rename = "@Name")]
        name: String,
        #[serde(rename = "$text", default)]
        value: String,
    }
}
