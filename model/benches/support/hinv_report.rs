//! The ~2 MB hardware inventory report the benchmarks of `cmmp-model` (`codec.rs`) and
//! `cmmp-transport` (`transport/benches/pipeline.rs`) measure: the corpus report's header, then
//! [`HINV_INSTANCES`] instances of six WMI classes, built with a fixed-seed generator so every
//! run and both benches see the same bytes. Included by both with `#[path]`.

use cmmp_model::hinv::{Instance, Report, ReportBody};
use cmmp_model::report_common::{ChangeKind, ReportHeader};
use cmmp_model::xml::AnyElement;

/// Number of WMI class instances in the large report (about 2 MB of XML).
pub(crate) const HINV_INSTANCES: usize = 3_600;

/// The report: `header` (the corpus report's), then the generated instances.
pub(crate) fn report(header: ReportHeader) -> Report {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let instance = (0..HINV_INSTANCES)
        .map(|i| {
            let any = wmi_class(i, &mut rng);
            let class = any.name.to_string();
            let content = if i % 7 == 0 { ChangeKind::New } else { ChangeKind::Updated };
            let namespace = if class.starts_with("SMS_") {
                "\\\\WS01\\root\\cimv2\\sms"
            } else {
                "\\\\WS01\\root\\cimv2"
            };
            Instance::new(content, namespace.to_owned(), class.clone(), class, any)
        })
        .collect();
    Report::new(header, ReportBody { instance })
}

/// A small deterministic generator (xorshift64*), so the report is the same on every run.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).expect("a short list");
        items[usize::try_from(self.below(len)).expect("an index")]
    }
}

const PUBLISHERS: [&str; 6] = [
    "Contoso Ltd.",
    "Fabrikam, Inc.",
    "Tailspin Toys & Co.",
    "Northwind Traders",
    "Woodgrove Bank",
    "Litware <Labs>",
];
const PRODUCTS: [&str; 8] = [
    "Tools & Utilities",
    "Office Add-in",
    "VPN Client",
    "Runtime (x64)",
    "Print Driver <Universal>",
    "Endpoint Agent",
    "PDF Reader",
    "Visual C++ Redistributable",
];
const SERVICE_STATES: [&str; 3] = ["Running", "Stopped", "Paused"];
const START_MODES: [&str; 3] = ["Auto", "Manual", "Disabled"];
const ACCOUNTS: [&str; 4] =
    ["LocalSystem", "NT AUTHORITY\\LocalService", "NT AUTHORITY\\NetworkService", "CORP\\svc_app"];

/// The WMI class element of instance `i`, properties in the baseline model's field order.
fn wmi_class(i: usize, rng: &mut Rng) -> AnyElement {
    match i % 10 {
        0..=2 => {
            let n = rng.below(100_000);
            AnyElement::new("Win32_Service")
                .with_property("Name", format!("Svc{n:05}"))
                .with_property("DisplayName", format!("{} Service {n}", rng.pick(&PRODUCTS)))
                .with_property(
                    "Description",
                    format!(
                        "Provides R&D telemetry for {} <component {n}>; stop it only if told to.",
                        rng.pick(&PUBLISHERS)
                    ),
                )
                .with_property(
                    "PathName",
                    format!("\"C:\\Program Files\\Contoso\\svc{n}.exe\" -k netsvcs -p"),
                )
                .with_property("ServiceType", "Own Process")
                .with_property("StartMode", rng.pick(&START_MODES))
                .with_property("StartName", rng.pick(&ACCOUNTS))
                .with_property("State", rng.pick(&SERVICE_STATES))
                .with_property("Status", "OK")
        }
        3..=5 => {
            let n = rng.below(1_000_000);
            let publisher = rng.pick(&PUBLISHERS);
            let product = format!("{publisher} {} {}", rng.pick(&PRODUCTS), n % 97);
            AnyElement::new("SMS_InstalledSoftware")
                .with_property("ARPDisplayName", product.clone())
                .with_property("InstallDate", format!("2024{:02}{:02}", 1 + n % 12, 1 + n % 28))
                .with_property("InstalledLocation", format!("C:\\Program Files\\App{n}\\"))
                .with_property("ProductName", product)
                .with_property("ProductVersion", format!("{}.{}.{}", n % 20, n % 10, n % 1000))
                .with_property("Publisher", publisher)
                .with_property(
                    "SoftwareCode",
                    format!("{{8a1b2c3d-4e5f-4061-a2b3-{:012x}}}", rng.below(1 << 48)),
                )
                .with_property(
                    "UninstallString",
                    format!("MsiExec.exe /X{{8a1b2c3d-4e5f-4061-a2b3-{n:012}}} /qn"),
                )
        }
        6 | 7 => {
            let n = rng.below(65_536);
            AnyElement::new("Win32_PnPEntity")
                .with_property("Caption", format!("Intel(R) PCI Express Root Port #{}", n % 16))
                .with_property("ClassGuid", "{4d36e97d-e325-11ce-bfc1-08002be10318}")
                .with_property(
                    "DeviceID",
                    format!("PCI\\VEN_8086&DEV_{n:04X}&SUBSYS_880D103C&REV_01\\3&11583659&0&{n}"),
                )
                .with_property("Manufacturer", "Intel")
                .with_property("Name", format!("Intel(R) PCI Express Root Port #{}", n % 16))
                .with_property("PNPClass", "System")
                .with_property("Status", "OK")
        }
        8 if i % 20 == 8 => {
            let letter = char::from(b'C' + u8::try_from(rng.below(20)).expect("a letter"));
            AnyElement::new("Win32_LogicalDisk")
                .with_property("DeviceID", format!("{letter}:"))
                .with_property("DriveType", "3")
                .with_property("FileSystem", "NTFS")
                .with_property("FreeSpace", rng.below(1 << 40).to_string())
                .with_property("Size", rng.below(1 << 41).to_string())
                .with_property("VolumeName", format!("Data <{letter}> & Backup"))
        }
        8 => {
            let n = rng.below(250) + 2;
            AnyElement::new("Win32_NetworkAdapterConfiguration")
                .with_property("DefaultIPGateway", "10.20.30.1")
                .with_property("Description", format!("Intel(R) Ethernet Connection I219-LM #{n}"))
                .with_property("DHCPEnabled", "1")
                .with_property("Index", n.to_string())
                .with_property("IPAddress", format!("10.20.30.{n}"))
                .with_property("IPAddress", format!("fe80::1c2d:3e4f:5a6b:{n:x}"))
                .with_property("IPSubnet", "255.255.255.0")
                .with_property("IPSubnet", "64")
                .with_property("MACAddress", format!("00:15:5D:01:{:02X}:{:02X}", n % 256, n / 7))
        }
        _ => {
            let n = 5_000_000 + rng.below(100_000);
            AnyElement::new("Win32_QuickFixEngineering")
                .with_property("Caption", format!("http://support.microsoft.com/?kbid={n}"))
                .with_property("Description", "Security Update")
                .with_property("HotFixID", format!("KB{n}"))
                .with_property("InstalledBy", "NT AUTHORITY\\SYSTEM")
                .with_property("InstalledOn", format!("{}/{}/2024", 1 + n % 12, 1 + n % 28))
        }
    }
}
