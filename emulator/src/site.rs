//! The site file: a TOML description of one ConfigMgr site, with the defaults of a stock site.
//!
//! Every setting has a default, so an empty file is a working site ([`SiteConfig::default`]):
//! site code `P01`, mixed mode, approval of trusted computers (the ConfigMgr default: "The
//! default site setting for approval in Configuration Manager 2007 is to automatically approve
//! trusted computers", source 003), no inventory from unapproved clients, automatic conflict
//! resolution ("Configuration Manager 2007 can automatically create a new client record for
//! the duplicate record", source 003), a client-settings policy and a software-updates policy,
//! one distribution point and one software update point on `localhost` in a boundary group
//! whose boundaries cover every address, no faults, and no Windows accounts (the `windowsauth`
//! vdir then accepts any `Authorization` header; with `[[windows_accounts]]` it verifies
//! NTLMv2 logons against them, see [`WindowsAccount`]). The MP behaviours of field notes §4
//! (M1–M20) sit behind [`Switches`], each defaulting to what a stock MP does (house style
//! HS-60).
//!
//! A list given in the file replaces the default list (write `policies = []` for a site
//! without policies).
//!
//! ```
//! use cmmp_emulator::site::{ApprovalPolicy, SiteConfig};
//!
//! let site = SiteConfig::from_toml(r#"
//! site_code = "LAB"
//! approval = "manual"
//!
//! [switches]
//! registration_pending = true
//! "#)?;
//! assert_eq!(site.site_code.as_str(), "LAB");
//! assert_eq!(site.approval, ApprovalPolicy::Manual);
//! assert!(site.switches.registration_pending);
//! assert_eq!(site.policies.len(), 2); // the defaults
//!
//! let bad = SiteConfig::from_toml("site_code = \"P01\"\nmode = \"secure\"\n").unwrap_err();
//! assert!(bad.to_string().starts_with("site.toml:2:"), "{bad}");
//! # Ok::<(), cmmp_emulator::Error>(())
//! ```

use core::fmt;
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::error::{ConfigError, Error};

/// The file name used in errors for text given to [`SiteConfig::from_toml`].
pub const DEFAULT_FILE_NAME: &str = "site.toml";

/// One site: identity, security settings, rules, switches, policies, site systems and faults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// The three-character site code (`SMS:<code>` in policy sources).
    pub site_code: SiteCode,
    /// Mixed (HTTP, self-signed certificates) or native (HTTPS, PKI) mode.
    pub mode: SiteMode,
    /// Which registrations are approved without an administrator.
    pub approval: ApprovalPolicy,
    /// Whether registered but unapproved clients may send inventory (hardware, software,
    /// file collection, IDMIF, metering). Discovery, state and status messages are accepted
    /// from them either way.
    pub allow_unapproved_inventory: bool,
    /// What a duplicate hardware ID does.
    pub conflict_resolution: ConflictResolution,
    /// The management point itself.
    pub management_point: ManagementPoint,
    /// MP behaviours of field notes §4, each with its stock default.
    pub switches: Switches,
    /// How inventory instances are keyed for delta reports.
    pub inventory: InventorySettings,
    /// Policy assignments and bodies.
    pub policies: Vec<PolicySpec>,
    /// Distribution points, by name.
    pub distribution_points: Vec<DistributionPoint>,
    /// Software update points (WSUS), by name.
    pub software_update_points: Vec<SoftwareUpdatePoint>,
    /// Boundary groups: which site systems serve which boundaries.
    pub boundary_groups: Vec<BoundaryGroup>,
    /// Boundaries: IP subnets and AD sites, each in one or more boundary groups.
    pub boundaries: Vec<Boundary>,
    /// Faults to inject, loaded into the site database when the site opens.
    pub faults: Vec<FaultSpec>,
    /// Windows accounts the `/ccm_system_windowsauth/` vdir verifies NTLMv2 logons against.
    /// Default: none, and then the vdir accepts any `Authorization` header (any credentials),
    /// as a lab MP that only checks that the client tried Windows authentication.
    pub windows_accounts: Vec<WindowsAccount>,
    /// IIS's "Extended Protection" of the `windowsauth` vdir: how an NTLM logon's channel
    /// binding is checked. Over the HTTPS listener it must name the listener's certificate
    /// (`accept`: when the client sends one; `required`: always); over plain HTTP a non-zero
    /// binding is refused unless `off`. Default: `accept`, as IIS's.
    pub extended_protection: ExtendedProtection,
}

/// IIS's "Extended Protection" setting for Windows authentication (`extended_protection`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtendedProtection {
    /// Channel bindings are not checked.
    Off,
    /// A channel binding the client sends must name this channel; clients that send none are
    /// let in.
    #[default]
    Accept,
    /// Over HTTPS every client must send the binding of this channel.
    Required,
}

impl ExtendedProtection {
    /// The transport's setting of the same name.
    #[must_use]
    pub fn ntlm(self) -> cmmp_transport::ntlm::ExtendedProtection {
        match self {
            Self::Off => cmmp_transport::ntlm::ExtendedProtection::Off,
            Self::Accept => cmmp_transport::ntlm::ExtendedProtection::Accept,
            Self::Required => cmmp_transport::ntlm::ExtendedProtection::Required,
        }
    }
}

/// A Windows account of the site's domain (`[[windows_accounts]]`), for NTLM logons on the
/// `windowsauth` vdir (M9). `Debug` redacts the password.
///
/// ```toml
/// [[windows_accounts]]
/// domain = "CORP"        # NetBIOS domain; compared case-insensitively; "" matches any
/// user = "sccm-naa"      # compared case-insensitively; machine accounts end in `$`
/// password = "Secret1!"
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsAccount {
    /// The NetBIOS domain; empty matches any domain the client names.
    #[serde(default)]
    pub domain: String,
    /// The user (or machine account) name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for WindowsAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowsAccount")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            site_code: SiteCode::default(),
            mode: SiteMode::Mixed,
            approval: ApprovalPolicy::Trusted,
            allow_unapproved_inventory: false,
            conflict_resolution: ConflictResolution::Automatic,
            management_point: ManagementPoint::default(),
            switches: Switches::default(),
            inventory: InventorySettings::default(),
            policies: default_policies(),
            distribution_points: vec![DistributionPoint {
                name: "dp01".to_owned(),
                host: Host::localhost(),
                https: false,
                smb_share: None,
                version: 9128,
            }],
            software_update_points: vec![SoftwareUpdatePoint {
                name: "sup01".to_owned(),
                host: Host::localhost(),
                http_port: 8530,
                https_port: 8531,
                ssl: false,
                version: 21,
            }],
            boundary_groups: vec![BoundaryGroup {
                name: "Default".to_owned(),
                id: 16_777_217,
                guid: None,
                distribution_points: vec!["dp01".to_owned()],
                software_update_points: vec!["sup01".to_owned()],
                fallback: true,
            }],
            boundaries: vec![Boundary {
                name: "Everything".to_owned(),
                subnets: vec![Subnet::ANY_V4, Subnet::ANY_V6],
                ad_sites: Vec::new(),
                groups: vec!["Default".to_owned()],
            }],
            faults: Vec::new(),
            windows_accounts: Vec::new(),
            extended_protection: ExtendedProtection::Accept,
        }
    }
}

impl SiteConfig {
    /// Parses and checks a site file given as text (errors name the file `site.toml`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with `file:line:col` for a syntax error, an unknown setting, a value
    /// of the wrong type or a broken rule (see [`SiteConfig::validate`]).
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Self::from_toml_named(DEFAULT_FILE_NAME, text)
    }

    /// As [`SiteConfig::from_toml`], naming the file `file` in errors.
    ///
    /// # Errors
    ///
    /// As [`SiteConfig::from_toml`].
    pub fn from_toml_named(file: &str, text: &str) -> Result<Self, Error> {
        let config: SiteConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            ConfigError::at(file, text, offset, e.message().trim_end().to_owned())
        })?;
        config.check(file, Some(text))?;
        Ok(config)
    }

    /// Reads and checks the site file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; otherwise as [`SiteConfig::from_toml`].
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::from_toml_named(&path.display().to_string(), &text)
    }

    /// Checks the rules a parsed file cannot express: names are unique and non-empty, every
    /// boundary group and site system referred to exists, policy and assignment IDs are unique
    /// and URL-safe, policy bodies are `Policy` (or `PolicyXML`) documents, a delay fault has
    /// a duration of at most [`MAX_FAULT_DELAY_MS`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for the first broken rule.
    pub fn validate(&self) -> Result<(), Error> {
        self.check(DEFAULT_FILE_NAME, None)
    }

    fn check(&self, file: &str, text: Option<&str>) -> Result<(), Error> {
        let fail = |path: String, value: &str, message: String| -> Error {
            let offset = text.and_then(|t| find_value(t, value));
            let full = format!("{path}: {message}");
            Error::Config(match text {
                Some(t) => ConfigError::at(file, t, offset, full),
                None => ConfigError::at(file, "", None, full),
            })
        };
        let mp = &self.management_point;
        if mp.http_port == Some(0) || mp.https_port == Some(0) {
            return Err(fail("management_point".to_owned(), "", "ports must not be 0".to_owned()));
        }
        let mut dps = BTreeSet::new();
        for (i, dp) in self.distribution_points.iter().enumerate() {
            check_name(&dp.name)
                .map_err(|m| fail(format!("distribution_points[{i}].name"), &dp.name, m))?;
            if !dps.insert(dp.name.as_str()) {
                let m = format!("distribution point {:?} is defined twice", dp.name);
                return Err(fail(format!("distribution_points[{i}].name"), &dp.name, m));
            }
            if let Some(share) = &dp.smb_share
                && (share.is_empty()
                    || !share.chars().all(|c| c.is_ascii_alphanumeric() || c == '$' || c == '_'))
            {
                let m = format!("share name {share:?} is not a plain share name");
                return Err(fail(format!("distribution_points[{i}].smb_share"), share, m));
            }
        }
        let mut sups = BTreeSet::new();
        for (i, sup) in self.software_update_points.iter().enumerate() {
            check_name(&sup.name)
                .map_err(|m| fail(format!("software_update_points[{i}].name"), &sup.name, m))?;
            if !sups.insert(sup.name.as_str()) {
                let m = format!("software update point {:?} is defined twice", sup.name);
                return Err(fail(format!("software_update_points[{i}].name"), &sup.name, m));
            }
            if sup.http_port == 0 || sup.https_port == 0 {
                let m = "ports must not be 0".to_owned();
                return Err(fail(format!("software_update_points[{i}]"), &sup.name, m));
            }
        }
        let mut groups = BTreeSet::new();
        let mut group_ids = BTreeSet::new();
        for (i, g) in self.boundary_groups.iter().enumerate() {
            check_name(&g.name)
                .map_err(|m| fail(format!("boundary_groups[{i}].name"), &g.name, m))?;
            if !groups.insert(g.name.as_str()) || !group_ids.insert(g.id) {
                let m = format!("boundary group {:?} (ID {}) is defined twice", g.name, g.id);
                return Err(fail(format!("boundary_groups[{i}]"), &g.name, m));
            }
            for dp in &g.distribution_points {
                if !dps.contains(dp.as_str()) {
                    let m = format!("unknown distribution point {dp:?}");
                    return Err(fail(format!("boundary_groups[{i}].distribution_points"), dp, m));
                }
            }
            for sup in &g.software_update_points {
                if !sups.contains(sup.as_str()) {
                    let m = format!("unknown software update point {sup:?}");
                    return Err(fail(
                        format!("boundary_groups[{i}].software_update_points"),
                        sup,
                        m,
                    ));
                }
            }
        }
        for (i, b) in self.boundaries.iter().enumerate() {
            for g in &b.groups {
                if !groups.contains(g.as_str()) {
                    let m = format!("unknown boundary group {g:?}");
                    return Err(fail(format!("boundaries[{i}].groups"), g, m));
                }
            }
        }
        let mut assignment_ids = BTreeSet::new();
        let mut policy_ids = BTreeSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            for (field, value) in [
                ("assignment_id", &p.assignment_id),
                ("policy_id", &p.policy_id),
                ("version", &p.version),
            ] {
                if !is_url_safe_id(value) {
                    let m = format!("{value:?} must be non-empty letters, digits, {{}}, -, _ or .");
                    return Err(fail(format!("policies[{i}].{field}"), value, m));
                }
            }
            if p.category.is_empty() {
                return Err(fail(
                    format!("policies[{i}].category"),
                    "",
                    "must not be empty".to_owned(),
                ));
            }
            if !assignment_ids.insert(p.assignment_id.as_str()) {
                let m = format!("assignment {:?} is defined twice", p.assignment_id);
                return Err(fail(format!("policies[{i}].assignment_id"), &p.assignment_id, m));
            }
            if !policy_ids.insert(p.policy_id.as_str()) {
                let m = format!("policy {:?} is defined twice", p.policy_id);
                return Err(fail(format!("policies[{i}].policy_id"), &p.policy_id, m));
            }
            match cmmp_model::xml::root_name(&p.body) {
                Ok(root) if root == "Policy" || root == "PolicyXML" => {}
                Ok(root) => {
                    let m = format!("the body's root is <{root}>, not <Policy>");
                    return Err(fail(format!("policies[{i}].body"), &p.policy_id, m));
                }
                Err(e) => {
                    let m = format!("the body is not an XML document: {e}");
                    return Err(fail(format!("policies[{i}].body"), &p.policy_id, m));
                }
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if f.endpoint.is_empty() {
                let m = "must name an endpoint or \"*\"".to_owned();
                return Err(fail(format!("faults[{i}].endpoint"), "", m));
            }
        }
        Ok(())
    }

    /// The `PolicySource` of this site's policies: `SMS:<site code>` (protocol §4.2.1).
    #[must_use]
    pub fn policy_source(&self) -> String {
        format!("SMS:{}", self.site_code)
    }
}

/// A three-character site code: letters and digits, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct SiteCode(String);

impl SiteCode {
    /// The code, upper-case.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SiteCode {
    /// `P01`, the conventional first primary site.
    fn default() -> Self {
        Self("P01".to_owned())
    }
}

impl FromStr for SiteCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_ascii_uppercase()))
        } else {
            Err(format!("site code {s:?} is not three letters or digits"))
        }
    }
}

impl TryFrom<String> for SiteCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for SiteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The site's security mode (source 002: "the site mode (native or mixed)").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteMode {
    /// HTTP with self-signed client certificates; approval applies ("Approval for Clients in
    /// Mixed Mode", source 003).
    #[default]
    Mixed,
    /// HTTPS with PKI certificates; approval does not apply (`ApprovalStatus` 2, "not
    /// applicable", protocol §4.1.2).
    Native,
}

impl SiteMode {
    /// The mode's name in the site file: `mixed` or `native`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SiteMode::Mixed => "mixed",
            SiteMode::Native => "native",
        }
    }
}

/// Which registrations are approved automatically (field notes M2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Every client waits for an administrator.
    Manual,
    /// "Automatically approve computers in trusted domains (recommended)": a registration
    /// that came through the Windows-authenticated virtual directory
    /// (`/ccm_system_windowsauth/request`) is approved; others wait for an administrator.
    #[default]
    Trusted,
    /// Every client is approved (not recommended).
    AutoAll,
}

/// What a duplicate hardware ID does (source 003, "Managing Client Identity").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictResolution {
    /// A new client record is created for the duplicate; the older record is marked obsolete.
    #[default]
    Automatic,
    /// The duplicate is parked as a conflicting record until an administrator merges it,
    /// makes it a new record or blocks it.
    Manual,
}

/// The management point's own identity and what location replies say about it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagementPoint {
    /// The intranet FQDN (`DefaultMP`, `IntranetName`).
    pub host: Host,
    /// The Internet FQDN, when the MP has one (`InternetName`).
    pub internet_host: Option<Host>,
    /// HTTP port (`IISPreferedPort`, `HTTPPort`). Unset: the port of the emulator's HTTP
    /// listener (see [`ManagementPoint::effective`]), 80 for a site served by none.
    pub http_port: Option<u16>,
    /// HTTPS port (`IISSSLPreferedPort`, `HTTPSPort`). Unset: the port of the emulator's
    /// HTTPS listener ([`crate::Emulator::serve_https`]), 443 for a site served by none.
    pub https_port: Option<u16>,
    /// Site version (`Version` of site replies), e.g. `5.00.9128.1000`.
    pub site_version: String,
    /// Build number (`BuildNumber`, and `Version` of MP location records).
    pub build_number: u32,
    /// `SecurityModeMaskEx` of `SiteInfoReply` (the value seen on a current mixed-mode site).
    pub security_mode_mask_ex: i32,
}

impl ManagementPoint {
    /// The HTTP and HTTPS ports location replies give: the site file's, else the listeners'
    /// ([`crate::Site::listening_on`] fills the unset ones), else 80 and 443.
    #[must_use]
    pub fn effective(&self) -> (u16, u16) {
        (self.http_port.unwrap_or(80), self.https_port.unwrap_or(443))
    }
}

impl Default for ManagementPoint {
    fn default() -> Self {
        Self {
            host: Host::localhost(),
            internet_host: None,
            http_port: None,
            https_port: None,
            site_version: "5.00.9128.1000".to_owned(),
            build_number: 9128,
            security_mode_mask_ex: 1728,
        }
    }
}

/// A host name checked the way the transport checks the ones it sends
/// ([`cmmp_transport::msg::HostName`]): no markup, spaces or SQL can hide in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Host(String);

impl Host {
    /// `localhost`.
    #[must_use]
    pub fn localhost() -> Self {
        Self("localhost".to_owned())
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Host {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        cmmp_transport::msg::HostName::new(s).map(|h| Self(h.as_str().to_owned())).map_err(|e| {
            format!("host name {:?} is not valid ({})", e.0, "letters, digits, - and . only")
        })
    }
}

impl TryFrom<String> for Host {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The MP behaviours of field notes §4, one switch each, defaulting to a stock MP (house style
/// HS-60). Behaviours without a switch are always on: M1 (policy requests must be signed), M3
/// (blocking), M4 (status codes), M6 (refusals become empty replies), M12 (inventory
/// sequencing), M19 (lenient decoding, in `cmmp-model`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Switches {
    /// M4 / registration loop: a new registration answers `Status` 1 (pending) and only the
    /// client's `Confirmation` answers `Status` 0. Stock: off (the MP registers at once).
    pub registration_pending: bool,
    /// M14: every client message must be signed, also the kinds a client may leave unsigned
    /// (state messages, metering, IDMIF). Stock: off (`Set-CMSite -RequireSigning` turns it on).
    pub require_signing: bool,
    /// M14: SHA-1 signatures are refused (`Set-CMSite -RequireSha256`). Stock: off.
    pub require_sha256: bool,
    /// M5: a registration whose signing certificate has expired or is not yet valid is refused
    /// ("Registration request body is invalid"). Stock: on.
    pub check_certificate_validity: bool,
    /// ISV proxy workflow step 3 (source 002): an ISV proxy (`AgentType` 4) registers only with
    /// a certificate an administrator imported first ([`crate::Site::import_isv_proxy`]).
    /// Stock: on. Off lets proxies register like any client (under the approval policy).
    pub require_imported_proxy_certificates: bool,
    /// M7: seconds after registration during which policy requests get an empty reply
    /// ("Policy isn't ready yet"; collection evaluation has not placed the device). Stock: 0.
    pub policy_ready_delay_secs: u64,
    /// M13: the largest message (bytes of the decoded payload) the server accepts; larger ones
    /// are refused (the loader's `BADMIFS`). Stock: 5,000,000 (`Max MIF Size`).
    pub max_message_bytes: u64,
    /// Redelivered Posts (same `Msg/ID`) are stored once and answered as duplicates (the
    /// issue's "stored once"). Field notes M20 say nothing documents this on a real MP; turn it
    /// off to process every delivery (state serial numbers and inventory versions still
    /// apply). Emulator default: on.
    pub dedupe_message_ids: bool,
    /// M17: hardware IDs ignored for client registration (duplicate SMBIOS GUIDs of a vendor):
    /// a registration carrying one is treated as having no hardware ID.
    pub ignored_hardware_ids: Vec<String>,
    /// M15: replies carry an `authenticate` hook signed by the MP (applied by the server).
    /// Stock: off (whether production MPs always sign is unconfirmed).
    pub sign_replies: bool,
    /// M16: a full `ReplyAssignments` carries a `Signature/Reference` per assignment
    /// (`AlgID` 32780, SHA-256 with RSA), signed with the MP's signing key when the site runs
    /// in an [`crate::Emulator`] (or has [`crate::Site::set_policy_signer`]). The signed bytes
    /// are an emulator choice, **\[UNCONFIRMED\]**: the UTF-16LE of the `PolicyAssignment`
    /// element as the reply writes it, no BOM, no NUL. Stock: on (real replies carry the
    /// block).
    pub sign_policy_assignments: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            registration_pending: false,
            require_signing: false,
            require_sha256: false,
            check_certificate_validity: true,
            require_imported_proxy_certificates: true,
            policy_ready_delay_secs: 0,
            max_message_bytes: 5_000_000,
            dedupe_message_ids: true,
            ignored_hardware_ids: Vec::new(),
            sign_replies: false,
            sign_policy_assignments: true,
        }
    }
}

/// How hardware inventory instances are keyed for delta reports.
///
/// A delta's `Instance/@Content` (`New`, `Updated`, `Deleted`) applies to the stored instance
/// with the same class and key. The key of a class listed in `keys` is the values of those
/// properties (an empty list: the class has one instance); any other class is keyed by all
/// its properties except the volatile ones, sorted by name (so an `Updated` instance of such a
/// class replaces nothing and is stored beside the old one until a full report).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySettings {
    /// Key properties per WMI class.
    pub keys: BTreeMap<String, Vec<String>>,
    /// Properties left out of whole-instance keys (they change between scans).
    pub volatile_properties: Vec<String>,
}

impl Default for InventorySettings {
    /// The key properties of the classes of the default hardware inventory (their `key`
    /// qualifiers in the WMI schema).
    fn default() -> Self {
        let keys: &[(&str, &[&str])] = &[
            ("SMS_InstalledSoftware", &["SoftwareCode"]),
            ("SMS_Processor", &["DeviceID"]),
            ("Win32_BIOS", &[]),
            ("Win32_ComputerSystem", &["Name"]),
            ("Win32_ComputerSystemProduct", &[]),
            ("Win32_DiskDrive", &["DeviceID"]),
            ("Win32_DiskPartition", &["DeviceID"]),
            ("Win32_LogicalDisk", &["DeviceID"]),
            ("Win32_NetworkAdapter", &["DeviceID"]),
            ("Win32_NetworkAdapterConfiguration", &["Index"]),
            ("Win32_OperatingSystem", &[]),
            ("Win32_PhysicalMemory", &["Tag"]),
            ("Win32_Processor", &["DeviceID"]),
            ("Win32_QuickFixEngineering", &["HotFixID"]),
            ("Win32_Service", &["Name"]),
            ("Win32Reg_AddRemovePrograms", &["ProdID"]),
            ("Win32Reg_AddRemovePrograms64", &["ProdID"]),
        ];
        Self {
            keys: keys
                .iter()
                .map(|(c, k)| ((*c).to_owned(), k.iter().map(|p| (*p).to_owned()).collect()))
                .collect(),
            volatile_properties: vec!["TimeStamp".to_owned()],
        }
    }
}

/// Machine or user policy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyScope {
    /// Machine policy (`Resource/@ResourceType="Machine"`).
    #[default]
    Machine,
    /// User policy.
    User,
}

impl PolicyScope {
    /// The `ResourceType` / `PolicyType` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyScope::Machine => "Machine",
            PolicyScope::User => "User",
        }
    }
}

/// `Policy/@PolicyFlags` bits (field notes M16, protocol §4.2.2).
pub mod policy_flags {
    /// TASKSEQUENCE.
    pub const TASK_SEQUENCE: u32 = 1;
    /// REQUIRESAUTH: the body download needs signed headers.
    pub const REQUIRES_AUTH: u32 = 2;
    /// SECRET: the body is CMS-encrypted to the client's encryption certificate and needs
    /// signed headers.
    pub const SECRET: u32 = 4;
    /// INTRANETONLY.
    pub const INTRANET_ONLY: u32 = 8;
    /// PERSISTWHOLEPOLICY.
    pub const PERSIST_WHOLE_POLICY: u32 = 16;
    /// AUTHORIZEDDYNAMICDOWNLOAD.
    pub const AUTHORIZED_DYNAMIC_DOWNLOAD: u32 = 32;
    /// COMPRESSED.
    pub const COMPRESSED: u32 = 64;
}

/// One policy assignment with its body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `PolicyAssignment/@PolicyAssignmentID`, e.g. `{3c0d2a5e-…}`.
    pub assignment_id: String,
    /// `Policy/@PolicyID`.
    pub policy_id: String,
    /// `Policy/@PolicyVersion`, e.g. `1.00`.
    pub version: String,
    /// `Policy/@PolicyCategory`, e.g. `NAAConfig`.
    pub category: String,
    /// Machine or user policy.
    #[serde(default)]
    pub scope: PolicyScope,
    /// `Policy/@PolicyFlags` (see [`policy_flags`]); 0 is not sent.
    #[serde(default)]
    pub flags: u32,
    /// Per-assignment readiness (field notes §4 "per policy assignment a ready-after time"):
    /// the assignment is left out of replies to clients registered less than this long ago.
    #[serde(default)]
    pub ready_after_secs: u64,
    /// The policy body: a `Policy` document (XML text).
    pub body: String,
}

impl PolicySpec {
    /// Whether the body is CMS-encrypted ([`policy_flags::SECRET`]).
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.flags & policy_flags::SECRET != 0
    }

    /// Whether the body download needs signed headers (`RequiresAuth` or `Secret`,
    /// protocol §3.7).
    #[must_use]
    pub fn needs_auth(&self) -> bool {
        self.flags & (policy_flags::REQUIRES_AUTH | policy_flags::SECRET) != 0
    }
}

/// A distribution point.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionPoint {
    /// The name boundary groups use.
    pub name: String,
    /// Its FQDN.
    pub host: Host,
    /// Content over HTTPS (`SSLState` 1) instead of HTTP.
    #[serde(default)]
    pub https: bool,
    /// An SMB share offering the content too, e.g. `SMSPKGE$`.
    #[serde(default)]
    pub smb_share: Option<String>,
    /// Site system build (`LocationRecord/Version`).
    #[serde(default = "default_build")]
    pub version: u32,
}

/// A software update point (source 004: WSUS with its port settings and SSL).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftwareUpdatePoint {
    /// The name boundary groups use.
    pub name: String,
    /// Its FQDN (`ServerName`).
    pub host: Host,
    /// WSUS HTTP port (8530 by default for WSUS 3.0 on its own web site).
    #[serde(default = "default_wsus_http")]
    pub http_port: u16,
    /// WSUS HTTPS port.
    #[serde(default = "default_wsus_https")]
    pub https_port: u16,
    /// The SUP requires SSL: clients get the HTTPS URL.
    #[serde(default)]
    pub ssl: bool,
    /// `LocationRecord/@Version`.
    #[serde(default = "default_sup_version")]
    pub version: u32,
}

impl SoftwareUpdatePoint {
    /// The `WSUSURL` clients get: `https://host:https_port` with SSL, else
    /// `http://host:http_port`.
    #[must_use]
    pub fn wsus_url(&self) -> String {
        if self.ssl {
            format!("https://{}:{}", self.host, self.https_port)
        } else {
            format!("http://{}:{}", self.host, self.http_port)
        }
    }
}

/// A boundary group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryGroup {
    /// The name boundaries use.
    pub name: String,
    /// `BoundaryGroup/@GroupID`.
    pub id: u32,
    /// `BoundaryGroup/@GroupGUID`.
    #[serde(default)]
    pub guid: Option<String>,
    /// Distribution points of the group, by name.
    #[serde(default)]
    pub distribution_points: Vec<String>,
    /// Software update points of the group, by name.
    #[serde(default)]
    pub software_update_points: Vec<String>,
    /// Serves clients in no boundary of any group (`Locality` `FALLBACK`).
    #[serde(default)]
    pub fallback: bool,
}

/// A boundary: IP subnets and AD sites.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    /// A name for people.
    pub name: String,
    /// IP subnets in CIDR notation, IPv4 or IPv6.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// AD site names (compared case-insensitively).
    #[serde(default)]
    pub ad_sites: Vec<String>,
    /// The boundary groups the boundary belongs to, by name.
    pub groups: Vec<String>,
}

/// An IP subnet in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// `0.0.0.0/0`.
    pub const ANY_V4: Subnet =
        Subnet { network: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), prefix: 0 };
    /// `::/0`.
    pub const ANY_V6: Subnet =
        Subnet { network: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), prefix: 0 };

    /// Whether `addr` is in the subnet (never across address families).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// The network address.
    #[must_use]
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a subnet in CIDR notation (e.g. 10.20.30.0/24)");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A fault to inject on an endpoint (applied by the server; field notes §2.2, M6–M9).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "RawFault", into = "RawFault")]
pub struct FaultSpec {
    /// `Msg/TargetEndpoint` (e.g. `MP_PolicyManager`, compared case-insensitively),
    /// [`POLICY_BODY_ENDPOINT`] for policy body downloads, or `*` for every endpoint.
    pub endpoint: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many requests it applies to; `None` for all of them.
    pub remaining: Option<u32>,
}

/// The endpoint name faults use for policy body downloads (GET `/SMS_MP/.sms_pol`).
pub const POLICY_BODY_ENDPOINT: &str = ".sms_pol";

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// HTTP 200 with an empty body (M6: "the Management Point replies with a 200 OK but no
    /// body").
    EmptyReply,
    /// HTTP 500 with an HTML page (M9).
    Html500,
    /// Answer normally after a delay, in milliseconds.
    Delay {
        /// The delay.
        ms: u64,
    },
    /// Close the connection without answering (M8: "in mixed mode the connection may drop").
    DropConnection,
    /// Answer a registration with `Status` 1, pending (M4).
    RegistrationPending,
    /// Answer a policy request with an empty 200 (M7, "policy not ready").
    PolicyNotReady,
}

impl FaultKind {
    /// The name used in site files and the database: `empty-reply`, `html-500`, `delay`,
    /// `drop-connection`, `registration-pending`, `policy-not-ready`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::EmptyReply => "empty-reply",
            FaultKind::Html500 => "html-500",
            FaultKind::Delay { .. } => "delay",
            FaultKind::DropConnection => "drop-connection",
            FaultKind::RegistrationPending => "registration-pending",
            FaultKind::PolicyNotReady => "policy-not-ready",
        }
    }

    /// The kind named `name`, with `delay_ms` for `delay`.
    ///
    /// # Errors
    ///
    /// A message for an unknown name, or `delay` without `delay_ms`.
    pub fn from_name(name: &str, delay_ms: Option<u64>) -> Result<Self, String> {
        Ok(match name {
            "empty-reply" => FaultKind::EmptyReply,
            "html-500" => FaultKind::Html500,
            "delay" => FaultKind::Delay {
                ms: delay_ms.ok_or_else(|| "a `delay` fault needs `delay_ms`".to_owned())?,
            },
            "drop-connection" => FaultKind::DropConnection,
            "registration-pending" => FaultKind::RegistrationPending,
            "policy-not-ready" => FaultKind::PolicyNotReady,
            other => {
                return Err(format!(
                    "unknown fault kind {other:?}: expected empty-reply, html-500, delay, \
                     drop-connection, registration-pending or policy-not-ready"
                ));
            }
        })
    }

    /// The delay of a `Delay` fault.
    #[must_use]
    pub fn delay_ms(self) -> Option<u64> {
        match self {
            FaultKind::Delay { ms } => Some(ms),
            _ => None,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Delay { ms } => write!(f, "delay {ms} ms"),
            other => f.write_str(other.name()),
        }
    }
}

/// The longest delay a fault may add (an hour). A longer one leaves the request, and its
/// connection, waiting for the rest of the emulator's life: no client test wants that.
pub const MAX_FAULT_DELAY_MS: u64 = 3_600_000;

/// A fault as written in the site file.
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    #[serde(default = "any_endpoint")]
    endpoint: String,
    kind: String,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    remaining: Option<u32>,
}

impl From<FaultSpec> for RawFault {
    fn from(f: FaultSpec) -> Self {
        let delay_ms = match f.kind {
            FaultKind::Delay { ms } => Some(ms),
            _ => None,
        };
        Self {
            endpoint: f.endpoint,
            kind: f.kind.name().to_owned(),
            delay_ms,
            remaining: f.remaining,
        }
    }
}

impl TryFrom<RawFault> for FaultSpec {
    type Error = String;
    fn try_from(raw: RawFault) -> Result<Self, Self::Error> {
        if raw.delay_ms.is_some() && raw.kind != "delay" {
            return Err(format!("`delay_ms` applies to `delay` faults, not {:?}", raw.kind));
        }
        if let Some(ms) = raw.delay_ms.filter(|ms| *ms > MAX_FAULT_DELAY_MS) {
            return Err(format!(
                "a `delay` fault waits at most {MAX_FAULT_DELAY_MS} ms (an hour), not {ms}: \
                 to answer never, use `drop-connection`"
            ));
        }
        Ok(FaultSpec {
            endpoint: raw.endpoint,
            kind: FaultKind::from_name(&raw.kind, raw.delay_ms)?,
            remaining: raw.remaining,
        })
    }
}

fn any_endpoint() -> String {
    "*".to_owned()
}

fn default_build() -> u32 {
    9128
}

fn default_wsus_http() -> u16 {
    8530
}

fn default_wsus_https() -> u16 {
    8531
}

fn default_sup_version() -> u32 {
    21
}

/// A name: non-empty, printable, at most 64 characters.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        Err(format!("name {name:?} must be 1 to 64 printable characters"))
    } else {
        Ok(())
    }
}

/// Policy and assignment IDs and versions go into `PolicyLocation` URLs.
fn is_url_safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'{' | b'}' | b'-' | b'_' | b'.'))
}

/// Byte offset of the first quoted occurrence of `value` in `text` (best effort for errors
/// found after parsing).
fn find_value(text: &str, value: &str) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    let quoted = format!("\"{value}\"");
    text.find(&quoted).or_else(|| text.find(&format!("'{value}'")))
}

/// The client-settings and software-updates policies of the default site.
fn default_policies() -> Vec<PolicySpec> {
    vec![
        PolicySpec {
            assignment_id: "{7B1E6C20-3A54-4F0D-9E21-5C8A0D4B1F01}".to_owned(),
            policy_id: "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A01}".to_owned(),
            version: "1.00".to_owned(),
            category: "ClientAgentConfig".to_owned(),
            scope: PolicyScope::Machine,
            flags: 0,
            ready_after_secs: 0,
            body: CLIENT_SETTINGS_BODY.to_owned(),
        },
        PolicySpec {
            assignment_id: "{7B1E6C20-3A54-4F0D-9E21-5C8A0D4B1F02}".to_owned(),
            policy_id: "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A02}".to_owned(),
            version: "1.00".to_owned(),
            category: "SoftwareUpdatesClientConfig".to_owned(),
            scope: PolicyScope::Machine,
            flags: 0,
            ready_after_secs: 0,
            body: SOFTWARE_UPDATES_BODY.to_owned(),
        },
    ]
}

/// Client settings: the client agent configuration (polling interval, site settings key).
const CLIENT_SETTINGS_BODY: &str = r#"<Policy PolicyID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A01}" PolicyVersion="1.00" PolicyType="Machine" PolicySource="SMS:P01" SchemaVersion="1.00"><PolicyRule PolicyRuleID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0B01}"><PolicyAction PolicyActionType="WMI-XML"><instance class="CCM_ClientAgentConfig"><property name="SiteSettingsKey" type="19"><value>1</value></property><property name="Enabled" type="11"><value>true</value></property><property name="PolicyRequestAssignmentTimeout" type="19"><value>60</value></property></instance></PolicyAction></PolicyRule></Policy>"#;

/// Software updates: "When the Software Updates Client Agent is enabled in Configuration
/// Manager, it sends a policy to the client computers that are assigned to the site. This
/// policy requests that the software updates components be enabled." (source 004)
const SOFTWARE_UPDATES_BODY: &str = r#"<Policy PolicyID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A02}" PolicyVersion="1.00" PolicyType="Machine" PolicySource="SMS:P01" SchemaVersion="1.00"><PolicyRule PolicyRuleID="{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0B02}"><PolicyAction PolicyActionType="WMI-XML"><instance class="CCM_SoftwareUpdatesClientConfig"><property name="SiteSettingsKey" type="19"><value>1</value></property><property name="ComponentName" type="8"><value>SmsSoftwareUpdate</value></property><property name="Enabled" type="11"><value>true</value></property></instance></PolicyAction></PolicyRule></Policy>"#;

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::{
        ApprovalPolicy, ConflictResolution, FaultKind, FaultSpec, MAX_FAULT_DELAY_MS,
        ManagementPoint, SiteConfig, SiteMode, Subnet,
    };

    #[test]
    fn an_empty_file_is_the_stock_site() {
        let site = SiteConfig::from_toml("").unwrap();
        assert_eq!(site, SiteConfig::default());
        assert_eq!(site.site_code.as_str(), "P01");
        assert_eq!(site.mode, SiteMode::Mixed);
        assert_eq!(site.approval, ApprovalPolicy::Trusted);
        assert!(!site.allow_unapproved_inventory);
        assert_eq!(site.conflict_resolution, ConflictResolution::Automatic);
        assert_eq!(site.policies.len(), 2);
        assert!(site.faults.is_empty());
        site.validate().unwrap();
    }

    #[test]
    fn every_setting_reads_from_toml() {
        let site = SiteConfig::from_toml(
            r#"
site_code = "lab"
mode = "native"
approval = "auto-all"
allow_unapproved_inventory = true
conflict_resolution = "manual"

[management_point]
host = "mp01.corp.example"
http_port = 8080

[switches]
require_sha256 = true
policy_ready_delay_secs = 30
sign_policy_assignments = false
ignored_hardware_ids = ["2:00000000000000000000000000000000"]

[inventory.keys]
Contoso_Widget = ["Serial"]

[[policies]]
assignment_id = "{A1}"
policy_id = "NAA"
version = "2.00"
category = "NAAConfig"
flags = 4
body = "<Policy PolicyID='NAA'/>"

[[distribution_points]]
name = "dp02"
host = "dp02.corp.example"
smb_share = "SMSPKGE$"

[[software_update_points]]
name = "sup02"
host = "sup02.corp.example"
ssl = true

[[boundary_groups]]
name = "Branch"
id = 7
distribution_points = ["dp02"]
software_update_points = ["sup02"]

[[boundaries]]
name = "Branch subnet"
subnets = ["10.40.0.0/16"]
ad_sites = ["Branch-Site"]
groups = ["Branch"]

[[faults]]
endpoint = "MP_PolicyManager"
kind = "delay"
delay_ms = 250
remaining = 2
"#,
        )
        .unwrap();
        assert_eq!(site.site_code.as_str(), "LAB");
        assert_eq!(site.mode, SiteMode::Native);
        assert_eq!(site.approval, ApprovalPolicy::AutoAll);
        assert_eq!(site.conflict_resolution, ConflictResolution::Manual);
        assert_eq!(site.management_point.http_port, Some(8080));
        assert_eq!(site.management_point.https_port, None);
        assert_eq!(site.management_point.effective(), (8080, 443));
        assert_eq!(ManagementPoint::default().effective(), (80, 443));
        assert!(site.switches.require_sha256);
        assert!(site.switches.check_certificate_validity);
        assert!(!site.switches.sign_policy_assignments);
        assert!(SiteConfig::default().switches.sign_policy_assignments);
        assert_eq!(site.policies.len(), 1);
        assert!(site.policies[0].is_secret());
        assert_eq!(site.software_update_points[0].wsus_url(), "https://sup02.corp.example:8531");
        assert_eq!(site.faults[0].kind, FaultKind::Delay { ms: 250 });
        assert_eq!(site.faults[0].remaining, Some(2));
        assert_eq!(site.inventory.keys["Contoso_Widget"], ["Serial"]);
    }

    /// A delay fault waits an hour at most, in a site file and through the admin surface
    /// (both read a fault the same way); a longer one would never be answered.
    #[test]
    fn a_delay_fault_waits_an_hour_at_most() {
        let file = |ms: u64| {
            SiteConfig::from_toml(&format!("[[faults]]\nkind = \"delay\"\ndelay_ms = {ms}\n"))
        };
        let hour = file(MAX_FAULT_DELAY_MS).unwrap();
        assert_eq!(hour.faults[0].kind, FaultKind::Delay { ms: 3_600_000 });
        let e = file(MAX_FAULT_DELAY_MS + 1).unwrap_err().to_string();
        assert!(e.contains("at most 3600000 ms") && e.contains("drop-connection"), "{e}");
        let admin = |ms: u64| {
            serde_json::from_str::<FaultSpec>(&format!(
                r#"{{"endpoint":"*","kind":"delay","delay_ms":{ms}}}"#
            ))
        };
        assert!(admin(MAX_FAULT_DELAY_MS).is_ok());
        let e = admin(u64::MAX).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn syntax_and_type_errors_point_at_the_line() {
        let e = SiteConfig::from_toml("site_code = \"P01\"\n\n[switches]\nrequire_sha256 = 3\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("site.toml:4:"), "{e}");
        let e = SiteConfig::from_toml("site_code = \"TOOLONG\"\n").unwrap_err();
        assert!(e.to_string().starts_with("site.toml:1:"), "{e}");
        let e = SiteConfig::from_toml("colour = \"blue\"\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = SiteConfig::from_toml(
            "[[boundaries]]\nname = \"x\"\nsubnets = [\"10.0.0.0/33\"]\ngroups = []\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("site.toml:3:"), "{e}");
        let e = SiteConfig::from_toml("[[faults]]\nkind = \"delay\"\n").unwrap_err();
        assert!(e.to_string().contains("delay_ms"), "{e}");
    }

    #[test]
    fn broken_references_name_the_setting_and_line() {
        let e = SiteConfig::from_toml(
            "[[boundary_groups]]\nname = \"G\"\nid = 1\ndistribution_points = [\"dp9\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "site.toml:4:24: boundary_groups[0].distribution_points: unknown distribution point \"dp9\""
        );
        let e = SiteConfig::from_toml(
            "[[policies]]\nassignment_id = \"a b\"\npolicy_id = \"P\"\nversion = \"1\"\ncategory = \"C\"\nbody = \"<Policy/>\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("policies[0].assignment_id"), "{e}");
        let e = SiteConfig::from_toml(
            "[[policies]]\nassignment_id = \"A\"\npolicy_id = \"P\"\nversion = \"1\"\ncategory = \"C\"\nbody = \"<Other/>\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not <Policy>"), "{e}");
    }

    #[test]
    fn subnets_match_by_prefix_and_family() {
        let s: Subnet = "10.20.30.0/24".parse().unwrap();
        assert!(s.contains("10.20.30.41".parse::<IpAddr>().unwrap()));
        assert!(!s.contains("10.20.31.1".parse::<IpAddr>().unwrap()));
        assert!(!s.contains("::1".parse::<IpAddr>().unwrap()));
        assert!(Subnet::ANY_V4.contains("192.0.2.1".parse::<IpAddr>().unwrap()));
        assert!(Subnet::ANY_V6.contains("fe80::1".parse::<IpAddr>().unwrap()));
        let host: Subnet = "10.1.2.3/32".parse().unwrap();
        assert!(host.contains("10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!("10.0.0.0".parse::<Subnet>().is_err());
        assert_eq!(s.to_string(), "10.20.30.0/24");
    }
}
