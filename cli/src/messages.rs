//! Message kinds by name, input files (JSON or XML) to typed messages, and typed messages to
//! the request bytes `send` transmits and `wire encode` writes.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use cmmp_model::kinds::{
    AssignedSite, ClientRegistration, ContentLocation, DdrReport, EnumerateMpLocation,
    FileCollection, HinvReport, IdmifCollection, LocalMpLocation, PolicyAssignments, SinvReport,
    SiteInformation, SoftwareMetering, StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::report_common::{ReportHeader, ReportHeaderContent};
use cmmp_model::value::{SmsId, SmsTime};
use cmmp_model::{Endpoint, MessageExt};
use cmmp_transport::payload::Attachment;
use cmmp_transport::wire::{self, Fresh, Request, Settings, Signer};

use crate::Error;

/// Every message kind, by the names the CLI accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    /// Discovery data record (`MP_DdrEndpoint`).
    Ddr,
    /// Hardware inventory (`MP_HinvEndpoint`).
    Hinv,
    /// Software inventory (`MP_SinvEndpoint`).
    Sinv,
    /// File collection, files as attachments (`MP_SinvCollFileEndpoint`).
    Filecoll,
    /// A status message (`StatusReceiver`).
    Status,
    /// State messages (`MP_RelayEndpoint`, FileType 2).
    State,
    /// Software metering usage (`MP_RelayEndpoint`, FileType 9).
    Metering,
    /// IDMIF collection, MIF files as attachments (`MP_RelayEndpoint`).
    Idmif,
    /// `ClientRegistrationRequest` (`MP_ClientRegistration`).
    Registration,
    /// `RequestAssignments` (`MP_PolicyManager`).
    Policy,
    /// `ContentLocationRequest` (`MP_LocationManager`).
    Content,
    /// `WSUSLocationRequest` (`MP_LocationManager`).
    Wsus,
    /// `LocalMPLocationRequest` (`MP_LocationManager`).
    LocalMp,
    /// `EnumerateMPLocationRequest` (`MP_LocationManager`).
    EnumerateMp,
    /// `SiteInformationRequest` (`MP_LocationManager`).
    SiteInfo,
    /// `AssignedSiteRequest` (`MP_LocationManager`).
    AssignedSite,
}

/// The Post kinds `cmmp send` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PostKind {
    /// Discovery data record.
    Ddr,
    /// Hardware inventory (Full or Delta, as the report says).
    Hinv,
    /// Software inventory.
    Sinv,
    /// File collection; give the collected files with `--attach ID=PATH`.
    Filecoll,
    /// A status message.
    Status,
    /// State messages.
    State,
    /// Software metering usage.
    Metering,
    /// IDMIF collection; give the MIF files with `--attach ID=PATH`.
    Idmif,
}

impl From<PostKind> for Kind {
    fn from(k: PostKind) -> Self {
        match k {
            PostKind::Ddr => Kind::Ddr,
            PostKind::Hinv => Kind::Hinv,
            PostKind::Sinv => Kind::Sinv,
            PostKind::Filecoll => Kind::Filecoll,
            PostKind::Status => Kind::Status,
            PostKind::State => Kind::State,
            PostKind::Metering => Kind::Metering,
            PostKind::Idmif => Kind::Idmif,
        }
    }
}

impl Kind {
    /// The Rust type name of the kind (`DdrReport`, …).
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Ddr => DdrReport::NAME,
            Kind::Hinv => HinvReport::NAME,
            Kind::Sinv => SinvReport::NAME,
            Kind::Filecoll => FileCollection::NAME,
            Kind::Status => StatusMessage::NAME,
            Kind::State => StateMessages::NAME,
            Kind::Metering => SoftwareMetering::NAME,
            Kind::Idmif => IdmifCollection::NAME,
            Kind::Registration => ClientRegistration::NAME,
            Kind::Policy => PolicyAssignments::NAME,
            Kind::Content => ContentLocation::NAME,
            Kind::Wsus => WsusLocation::NAME,
            Kind::LocalMp => LocalMpLocation::NAME,
            Kind::EnumerateMp => EnumerateMpLocation::NAME,
            Kind::SiteInfo => SiteInformation::NAME,
            Kind::AssignedSite => AssignedSite::NAME,
        }
    }
}

/// An input file: its text and whether it is JSON (serde of the generated types) or XML.
#[derive(Debug)]
pub(crate) struct Input {
    path: PathBuf,
    text: String,
    json: bool,
}

impl Input {
    /// Reads `path`; JSON when the name ends in `.json` or the text starts with `{`.
    pub(crate) fn read(path: &Path) -> Result<Self, Error> {
        let bytes = crate::target::read(path)?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Input {
            path: path.display().to_string(),
            message: format!(
                "not UTF-8 text (invalid byte at offset {}); save the document as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let text = text.strip_prefix('\u{FEFF}').map(str::to_owned).unwrap_or(text);
        let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
            || text.trim_start().starts_with('{');
        Ok(Self { path: path.to_owned(), text, json })
    }

    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::Input { path: self.path.display().to_string(), message: message.to_string() }
    }

    /// The typed body of kind `K`.
    fn body<K: Endpoint>(&self) -> Result<K::Body, Error>
    where
        K::Body: serde::de::DeserializeOwned,
    {
        if self.json {
            serde_json::from_str(&self.text)
                .map_err(|e| self.fail(format!("not a {} as JSON: {e}", K::NAME)))
        } else {
            K::Body::from_xml(&self.text)
                .map_err(|e| self.fail(format!("not a {} document: {e}", K::NAME)))
        }
    }
}

/// Parses `ID=PATH` (or a bare `PATH`, named by its file name) of `--attach`.
pub(crate) fn attachment(spec: &str) -> Result<Attachment, Error> {
    let (name, path) = match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            (name.to_owned(), PathBuf::from(path))
        }
        _ => {
            let path = PathBuf::from(spec);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::Usage(format!("--attach {spec:?}: give ID=PATH or PATH")))?;
            (name, path)
        }
    };
    Ok(Attachment::new(name, crate::target::read(&path)?))
}

/// `InventoryActionID` of discovery, hardware and software inventory reports.
const DISCOVERY: &str = "{00000000-0000-0000-0000-000000000003}";
const HARDWARE: &str = "{00000000-0000-0000-0000-000000000001}";
const SOFTWARE: &str = "{00000000-0000-0000-0000-000000000002}";

/// What `build` needs besides the kind and the input.
pub(crate) struct Build<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) signer: Option<&'a Signer<'a>>,
    pub(crate) fresh: Fresh,
    /// The client the message is sent for (`SourceID`): the document's client ID must match
    /// it (the MP refuses a report for another client), or is set to it with `stamp`.
    pub(crate) client: Option<SmsId>,
    /// Set the document's client ID (and a report's `Date`) to `client` and now.
    pub(crate) stamp: bool,
}

/// The client ID a document names differs from the one it is sent for.
fn mismatch(input: &Input, found: &SmsId, client: &SmsId) -> Error {
    input.fail(format!(
        "the document is for client {found}, but it is sent for {client}; the MP refuses a \
         report whose ClientID is not its sender's (identity mismatch). Fix the document, or \
         pass --stamp to set its ClientID (and Date) to {client}"
    ))
}

/// Builds the request for `kind` from `input`: exactly the bytes `send` transmits.
pub(crate) fn build(kind: Kind, input: &Input, b: Build<'_>) -> Result<Request, Error> {
    match kind {
        Kind::Ddr => {
            report::<DdrReport>(input, b, |r| &mut r.report_header, "Inventory Data", DISCOVERY)
        }
        Kind::Hinv => {
            report::<HinvReport>(input, b, |r| &mut r.report_header, "Inventory Data", HARDWARE)
        }
        Kind::Sinv => {
            report::<SinvReport>(input, b, |r| &mut r.report_header, "Inventory Data", SOFTWARE)
        }
        Kind::Filecoll => {
            report::<FileCollection>(input, b, |r| &mut r.report_header, "FILECOLL", "")
        }
        Kind::State => {
            report::<StateMessages>(input, b, |r| &mut r.report_header, "State Message Data", "")
        }
        Kind::Metering => report::<SoftwareMetering>(
            input,
            b,
            |r| &mut r.report_header,
            "Software Metering Data",
            "",
        ),
        Kind::Idmif => report::<IdmifCollection>(input, b, |r| &mut r.report_header, "IDMIF", ""),
        Kind::Status => status(input, b),
        Kind::Registration => typed::<ClientRegistration>(input, b),
        Kind::Policy => typed::<PolicyAssignments>(input, b),
        Kind::Content => typed::<ContentLocation>(input, b),
        Kind::Wsus => typed::<WsusLocation>(input, b),
        Kind::LocalMp => typed::<LocalMpLocation>(input, b),
        Kind::EnumerateMp => typed::<EnumerateMpLocation>(input, b),
        Kind::SiteInfo => typed::<SiteInformation>(input, b),
        Kind::AssignedSite => typed::<AssignedSite>(input, b),
    }
}

fn typed<K: Endpoint>(input: &Input, b: Build<'_>) -> Result<Request, Error>
where
    K::Body: serde::de::DeserializeOwned,
{
    let kind = K::from_body(input.body::<K>()?);
    Ok(wire::build_request(b.settings, &kind, b.attachments, b.signer, b.fresh)?)
}

/// A `Report` kind: several kinds share the root, so the header must say which report it is
/// (`ReportContent`, and for inventory the `InventoryActionID`), or the MP files it wrongly.
fn report<K: Endpoint>(
    input: &Input,
    b: Build<'_>,
    header: fn(&mut K::Body) -> &mut ReportHeader,
    content: &str,
    action: &str,
) -> Result<Request, Error>
where
    K::Body: serde::de::DeserializeOwned,
{
    let mut body = input.body::<K>()?;
    let h = header(&mut body);
    let found = h.report_details.report_content.trim();
    let found_action = match &h.content {
        Some(ReportHeaderContent::InventoryAction(a)) => Some(a.inventory_action_id.to_string()),
        Some(ReportHeaderContent::FileCollectionAction(_)) | None => None,
    };
    let action_ok = action.is_empty()
        || found_action.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(action));
    if !found.eq_ignore_ascii_case(content) || !action_ok {
        let guess = match (found.to_ascii_lowercase().as_str(), found_action.as_deref()) {
            (_, Some(a)) if a.eq_ignore_ascii_case(DISCOVERY) => " It looks like a DDR (ddr).",
            (_, Some(a)) if a.eq_ignore_ascii_case(HARDWARE) => {
                " It looks like a hardware inventory (hinv)."
            }
            (_, Some(a)) if a.eq_ignore_ascii_case(SOFTWARE) => {
                " It looks like a software inventory (sinv)."
            }
            ("filecoll", _) => " It looks like a file collection (filecoll).",
            ("idmif", _) => " It looks like an IDMIF collection (idmif).",
            ("state message data", _) => " It looks like state messages (state).",
            ("software metering data", _) => " It looks like software metering (metering).",
            _ => "",
        };
        return Err(input.fail(format!(
            "this report is not a {}: its ReportContent is {found:?}{}; a {} has ReportContent \
             {content:?}{}.{guess}",
            K::NAME,
            found_action.map(|a| format!(" with InventoryActionID {a}")).unwrap_or_default(),
            K::NAME,
            if action.is_empty() {
                String::new()
            } else {
                format!(" and InventoryActionID {action}")
            },
        )));
    }
    if let Some(client) = b.client {
        let named = &mut h.identification.machine.client_id.value;
        if b.stamp {
            *named = client;
            if let Ok(now) = SmsTime::from_utc(chrono::Utc::now()) {
                h.report_details.date = now;
            }
        } else if *named != client {
            return Err(mismatch(input, named, &client));
        }
    }
    let kind = K::from_body(body);
    Ok(wire::build_request(b.settings, &kind, b.attachments, b.signer, b.fresh)?)
}

/// A status message names its client in the `ClientID` property.
fn status(input: &Input, b: Build<'_>) -> Result<Request, Error> {
    let mut body = input.body::<StatusMessage>()?;
    if let Some(client) = b.client {
        for p in &mut body.properties.property {
            if p.name.eq_ignore_ascii_case("ClientID") {
                if b.stamp {
                    p.value = client.to_string();
                } else if let Ok(found) = p.value.trim().parse::<SmsId>()
                    && found != client
                {
                    return Err(mismatch(input, &found, &client));
                }
            }
        }
    }
    let kind = StatusMessage::from_body(body);
    Ok(wire::build_request(b.settings, &kind, b.attachments, b.signer, b.fresh)?)
}
