//! Client registration (protocol §3.3, §4.1): building signed `ClientRegistrationRequest`s for
//! a single client, an ISV proxy and the proxy's clients, and the registration loop as a state
//! machine driven by the MP's answers (field notes §2.5: no fixed sleeps).
//!
//! - A single client registers itself: its own certificates, signed with its own key.
//! - An ISV proxy registers itself with `AgentType` 4 and receives its SMSID.
//! - The proxy registers each client with `AgentType` 8, the proxy's certificate, signed with
//!   the proxy's key, and `Signature/@SMSID` = the proxy's SMSID (source document "ISV proxy
//!   workflow"; protocol §3.3, §4.1.1).
//!
//! The inline signature covers the exact UTF-16LE bytes of the `<Data>…</Data>` element as it
//! appears in the message; the canonical writer makes the standalone serialisation and the
//! embedded one identical, and a test checks it.

use std::time::Duration;

use cmmp_model::registration::{
    AgentInformation, CertificateEncoding, ClientRegistrationRequest, ClientRegistrationResponse,
    DiscoveryProperties, DiscoveryProperty, RegistrationCertificate, RegistrationCertificates,
    RegistrationData, RegistrationKind, RegistrationSignature,
};
use cmmp_model::value::{AgentVersion, HexBytes, IsoTime, MaybeSmsId, SmsId};
use cmmp_model::xml::{Writer, XmlElement};

use crate::cert::{Identity, KeyType};
use crate::error::Error;
use crate::msg::HostName;
use crate::sign::{HashAlgorithm, SigningKey, from_hex, registration_signature};

/// `AgentInformation/@AgentType` (SDK `AgentType`; protocol §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentType {
    /// 0: the ConfigMgr client.
    AdvancedClient,
    /// 1: OSD boot media.
    OsdCd,
    /// 2: a device client.
    Device,
    /// 4: an ISV proxy registering itself.
    IsvProxy,
    /// 8: a client registered by an ISV proxy.
    IsvProxyClient,
    /// Any other value.
    Other(i32),
}

impl AgentType {
    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            AgentType::AdvancedClient => 0,
            AgentType::OsdCd => 1,
            AgentType::Device => 2,
            AgentType::IsvProxy => 4,
            AgentType::IsvProxyClient => 8,
            AgentType::Other(v) => v,
        }
    }
}

/// What a registration says about the machine (protocol §4.1.1 discovery properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `Netbios Name`.
    pub netbios_name: HostName,
    /// `FQ Name`.
    pub fqdn: HostName,
    /// `Locale ID` (LCID, e.g. 1033).
    pub locale_id: u32,
    /// `AgentInformation/@AgentIdentity`, e.g. `cmmp`.
    pub agent_identity: String,
    /// `AgentInformation/@AgentVersion`.
    pub agent_version: AgentVersion,
    /// `AgentInformation/@AgentType`.
    pub agent_type: AgentType,
    /// `InternetFlag`: 0 none, 1 Internet-enabled, 2 Internet-always.
    pub internet_flag: u32,
    /// `Agent Edition` (`ClientEdition`: 5 Mac, 13 Unix, …), when set.
    pub agent_edition: Option<u32>,
    /// Further discovery properties, in order.
    pub extra: Vec<(String, String)>,
}

/// Who signs a registration.
#[derive(Debug, Clone, Copy)]
pub enum RegistrationSigner<'k> {
    /// The registering identity signs with its own key (single client, or the proxy itself).
    Own,
    /// An ISV proxy signs on behalf of a client: its key, and its SMSID in `Signature/@SMSID`.
    Proxy {
        /// The proxy's signing key.
        key: &'k SigningKey,
        /// The proxy's SMSID.
        proxy_id: SmsId,
    },
}

/// Builds a signed registration request (protocol §3.3, §6.1).
///
/// `identity` supplies the certificates registered for the client (for a proxy's client:
/// the proxy's identity, whose key signs its messages). `smsid` is empty for a first
/// registration and the issued SMSID for a confirmation.
///
/// # Errors
///
/// [`Error::Encode`] or [`Error::Sign`].
pub fn build_request(
    registration: &Registration,
    identity: &Identity,
    signer: RegistrationSigner<'_>,
    hash: HashAlgorithm,
    kind: RegistrationKind,
    smsid: MaybeSmsId,
    time_stamp: IsoTime,
) -> Result<ClientRegistrationRequest, Error> {
    let cert = |der: &[u8], key_type: KeyType| {
        RegistrationCertificate::new(
            CertificateEncoding::HexBinary,
            i32::from(key_type.value()),
            HexBytes(der.to_vec()),
        )
    };
    let mut certificates = RegistrationCertificates::new(cert(
        identity.signing_cert_der(),
        identity.signing_key_type(),
    ));
    certificates.encryption =
        Some(cert(identity.encryption_cert_der(), identity.encryption_key_type()));
    let mut properties = vec![
        ("Netbios Name".to_owned(), registration.netbios_name.to_string()),
        ("FQ Name".to_owned(), registration.fqdn.to_string()),
        ("Locale ID".to_owned(), registration.locale_id.to_string()),
        ("InternetFlag".to_owned(), registration.internet_flag.to_string()),
    ];
    if let Some(edition) = registration.agent_edition {
        properties.push(("Agent Edition".to_owned(), edition.to_string()));
    }
    properties.extend(registration.extra.iter().cloned());
    let discovery = DiscoveryProperties {
        property: properties.into_iter().map(|(n, v)| DiscoveryProperty::new(n, v)).collect(),
    };
    let agent = AgentInformation::new(
        registration.agent_identity.clone(),
        registration.agent_version,
        registration.agent_type.code(),
    );
    let mut data = RegistrationData::new(smsid, kind, time_stamp, agent, certificates, discovery);
    data.hash_algorithm = hash.oid().map(str::to_owned);

    let data_xml = data_xml(&data)?;
    let (key, signature_smsid) = match signer {
        RegistrationSigner::Own => (identity.signing_key(), None),
        RegistrationSigner::Proxy { key, proxy_id } => (key, Some(proxy_id)),
    };
    let hex = registration_signature(key, hash, &data_xml)?;
    // `registration_signature` writes upper-case hex of the signature bytes: it parses.
    let bytes = from_hex(&hex).expect("hex written by hex_upper parses");
    let mut signature = RegistrationSignature::new(HexBytes(bytes));
    signature.smsid = signature_smsid;
    Ok(ClientRegistrationRequest::new(data, signature))
}

/// The exact `<Data …>…</Data>` text the inline signature covers.
///
/// # Errors
///
/// [`Error::Encode`] when a value holds a character XML cannot carry.
pub fn data_xml(data: &RegistrationData) -> Result<String, Error> {
    let mut w = Writer::new();
    data.write_element("Data", &mut w);
    Ok(w.finish()?)
}

/// Approval of a registered client (`ApprovalStatus`, protocol §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// 1: approved.
    Approved,
    /// 0: pending approval.
    Pending,
    /// −1: unknown or not approved.
    NotApproved,
    /// 2: not applicable (e.g. the site approves everyone).
    NotApplicable,
    /// The attribute is absent (older MPs) or holds another value.
    Unknown(Option<i32>),
}

impl Approval {
    /// Reads `ApprovalStatus`.
    pub fn of(response: &ClientRegistrationResponse) -> Self {
        match response.approval_status {
            Some(1) => Approval::Approved,
            Some(0) => Approval::Pending,
            Some(-1) => Approval::NotApproved,
            Some(2) => Approval::NotApplicable,
            other => Approval::Unknown(other),
        }
    }

    /// Whether the client may expect policy: approved, not applicable, or not stated.
    pub fn allows_policy(self) -> bool {
        matches!(self, Approval::Approved | Approval::NotApplicable | Approval::Unknown(None))
    }
}

/// A bounded back-off: the delays between confirmations, the last one repeated, and a cap
/// on the number of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Delays before the 2nd, 3rd, … request; the last repeats.
    pub delays: Vec<Duration>,
    /// Requests at most, the first included.
    pub max_requests: u32,
}

impl Default for Backoff {
    /// 1, 2, 4, 8, 15 s then every 15 s, for at most 24 requests (about five minutes, the
    /// time SharpSCCM gives the SDK's `RegisterClient`).
    fn default() -> Self {
        Self {
            delays: [1, 2, 4, 8, 15].into_iter().map(Duration::from_secs).collect(),
            max_requests: 24,
        }
    }
}

impl Backoff {
    /// No waiting (tests, and an emulator that answers at once).
    pub fn immediate(max_requests: u32) -> Self {
        Self { delays: vec![Duration::ZERO], max_requests }
    }
}

/// The next thing the registration loop wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait `after`, then send a request of `kind` with `smsid` (build it fresh: new time
    /// stamp, new signature).
    Send {
        /// `Registration` or `Confirmation`.
        kind: RegistrationKind,
        /// Empty for a registration; the issued SMSID for a confirmation.
        smsid: MaybeSmsId,
        /// How long to wait first.
        after: Duration,
    },
    /// Registered: the SMSID and the approval the MP reported.
    Done {
        /// The client's SMSID.
        smsid: SmsId,
        /// The approval state.
        approval: Approval,
    },
}

/// The registration loop of the SDK's `RegisterClient` (protocol §4.1.3), as a state machine:
/// register; on `Status` 1 (pending) confirm with the issued SMSID until `Status` 0; on
/// `Status` 2 register again; `Status` 3 is final. Drive it with [`RegistrationFlow::start`]
/// and [`RegistrationFlow::answer`]; any transport (async or blocking) can.
#[derive(Debug, Clone)]
pub struct RegistrationFlow {
    backoff: Backoff,
    sent: u32,
    smsid: MaybeSmsId,
}

impl RegistrationFlow {
    /// A new flow with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Self { backoff, sent: 0, smsid: MaybeSmsId(None) }
    }

    /// The first request: a registration, now.
    pub fn start(&mut self) -> Step {
        self.sent = 1;
        Step::Send {
            kind: RegistrationKind::Registration,
            smsid: MaybeSmsId(None),
            after: Duration::ZERO,
        }
    }

    fn delay(&self) -> Duration {
        let i = usize::try_from(self.sent.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff.delays.get(i).or(self.backoff.delays.last()).copied().unwrap_or(Duration::ZERO)
    }

    fn again(&mut self, kind: RegistrationKind, last: Error) -> Result<Step, Error> {
        if self.sent >= self.backoff.max_requests {
            return Err(last);
        }
        let after = self.delay();
        self.sent += 1;
        Ok(Step::Send { kind, smsid: self.smsid, after })
    }

    /// Takes the MP's answer to the last request and says what to do next.
    ///
    /// # Errors
    ///
    /// [`Error::RegistrationRejected`] on `Status` 3 (or an unknown status);
    /// [`Error::RegistrationPending`] / [`Error::RegistrationRetry`] when the request budget
    /// is spent; [`Error::Decode`]-free: a `Status` 0 or 1 without an SMSID is
    /// [`Error::RegistrationRejected`] with that status.
    pub fn answer(&mut self, response: &ClientRegistrationResponse) -> Result<Step, Error> {
        match response.status {
            0 => match response.smsid.or(self.smsid.0) {
                Some(smsid) => Ok(Step::Done { smsid, approval: Approval::of(response) }),
                None => Err(Error::RegistrationRejected { status: 0 }),
            },
            1 => {
                let Some(smsid) = response.smsid else {
                    return Err(Error::RegistrationRejected { status: 1 });
                };
                self.smsid = MaybeSmsId(Some(smsid));
                self.again(
                    RegistrationKind::Confirmation,
                    Error::RegistrationPending { smsid: smsid.to_string() },
                )
            }
            2 => {
                self.smsid = MaybeSmsId(None);
                self.again(RegistrationKind::Registration, Error::RegistrationRetry)
            }
            status => Err(Error::RegistrationRejected { status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use cmmp_model::MessageExt;
    use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
    use cmmp_model::value::{IsoTime, MaybeSmsId, SmsId};

    use super::{
        AgentType, Approval, Backoff, Registration, RegistrationFlow, RegistrationSigner, Step,
        build_request, data_xml,
    };
    use crate::cert::generate_mixed_mode;
    use crate::msg::HostName;
    use crate::sign::{HashAlgorithm, verify_reversed};

    fn registration(agent_type: AgentType) -> Registration {
        Registration {
            netbios_name: HostName::new("MAC-07").unwrap(),
            fqdn: HostName::new("mac-07.corp.example").unwrap(),
            locale_id: 1033,
            agent_identity: "cmmp".to_owned(),
            agent_version: "5.00.9128.1000".parse().unwrap(),
            agent_type,
            internet_flag: 0,
            agent_edition: Some(5),
            extra: vec![],
        }
    }

    fn response(
        status: i32,
        smsid: Option<&str>,
        approval: Option<i32>,
    ) -> ClientRegistrationResponse {
        let mut r = ClientRegistrationResponse::new(
            RegistrationKind::Registration,
            "2025-01-31T10:00:00Z".parse().unwrap(),
            status,
        );
        r.smsid = smsid.map(|s| s.parse().unwrap());
        r.approval_status = approval;
        r
    }

    const ID: &str = "GUID:1AF488D8-7AD2-4D3B-9A5C-0123456789AB";

    #[test]
    fn the_signature_covers_the_data_element_exactly_as_embedded() {
        let proxy = generate_mixed_mode("ISV Proxy", SystemTime::now()).unwrap();
        let proxy_id: SmsId = "GUID:0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".parse().unwrap();
        let req = build_request(
            &registration(AgentType::IsvProxyClient),
            &proxy,
            RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id },
            HashAlgorithm::Sha256,
            RegistrationKind::Registration,
            MaybeSmsId(None),
            IsoTime::now(),
        )
        .unwrap();
        let whole = req.to_xml().unwrap();
        let data = data_xml(&req.data).unwrap();
        assert!(whole.starts_with(&format!(
            "<ClientRegistrationRequest>{data}<Signature SMSID=\"{proxy_id}\">"
        )));
        assert!(data.contains("AgentType=\"8\""));
        assert!(data.contains("HashAlgorithm=\"1.2.840.113549.1.1.11\""));
        let utf16: Vec<u8> = data.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let public = proxy.signing_key().public_key().unwrap();
        verify_reversed(&public, HashAlgorithm::Sha256, &utf16, &req.signature.signature_value.0)
            .unwrap();
    }

    #[test]
    fn pending_then_confirmed() {
        let mut flow = RegistrationFlow::new(Backoff::immediate(5));
        assert!(matches!(flow.start(), Step::Send { kind: RegistrationKind::Registration, .. }));
        let step = flow.answer(&response(1, Some(ID), Some(0))).unwrap();
        let Step::Send { kind, smsid, after } = step else { panic!("{step:?}") };
        assert_eq!(kind, RegistrationKind::Confirmation);
        assert_eq!(smsid.0.unwrap().to_string(), ID);
        assert_eq!(after, Duration::ZERO);
        let done = flow.answer(&response(0, Some(ID), Some(1))).unwrap();
        assert_eq!(done, Step::Done { smsid: ID.parse().unwrap(), approval: Approval::Approved });
    }

    #[test]
    fn gives_up_after_the_budget_and_names_the_state() {
        let mut flow = RegistrationFlow::new(Backoff {
            delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            max_requests: 3,
        });
        flow.start();
        let Step::Send { after, .. } = flow.answer(&response(1, Some(ID), None)).unwrap() else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(1));
        let Step::Send { after, .. } = flow.answer(&response(1, Some(ID), None)).unwrap() else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(2));
        let e = flow.answer(&response(1, Some(ID), None)).unwrap_err();
        assert!(matches!(e, crate::Error::RegistrationPending { .. }), "{e}");
    }

    #[test]
    fn rejection_and_retry() {
        let mut flow = RegistrationFlow::new(Backoff::immediate(2));
        flow.start();
        assert!(matches!(
            flow.answer(&response(2, None, None)).unwrap(),
            Step::Send { kind: RegistrationKind::Registration, .. }
        ));
        assert!(matches!(
            flow.answer(&response(3, None, None)).unwrap_err(),
            crate::Error::RegistrationRejected { status: 3 }
        ));
    }

    #[test]
    fn approval_values() {
        assert_eq!(Approval::of(&response(0, Some(ID), Some(-1))), Approval::NotApproved);
        assert!(!Approval::NotApproved.allows_policy());
        assert!(Approval::Unknown(None).allows_policy());
    }
}
