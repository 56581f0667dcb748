//! The site rules: what a ConfigMgr site does with each message, as pure logic over the
//! [`Store`]. No HTTP here: the server decodes a request, asks the [`Site`], and answers with
//! the reply or with what a real MP answers to a refusal ([`Refusal::mp_answer`]).
//!
//! Every operation runs in one database transaction, and returns only after it commits: a
//! message is acknowledged only once it is stored ("nothing received is lost"). Refusals are
//! recorded in the message log (with their reason code) in that transaction too. Inside
//! [`Site::group`] (group commit, what the server uses) an operation is a savepoint of the
//! group's transaction instead, and is acknowledged only once the whole group has committed.
//!
//! # Documented decisions
//!
//! **Registration `Status` and `ApprovalStatus`** (field notes M4; protocol §4.1.2):
//!
//! | Situation | `Status` | `SMSID` | `ApprovalStatus` |
//! |---|---|---|---|
//! | registered, approved | 0 | yes | 1 |
//! | registered, not approved (manual approval, or `trusted` without Windows authentication) | 0 | yes | −1 |
//! | registered, native mode (approval does not apply) | 0 | yes | 2 |
//! | registration pending (`registration_pending` switch or fault, until the confirmation) | 1 | yes | 0 |
//! | parked as a conflicting record (manual conflict resolution) | 1 | yes | 0 |
//! | a confirmation for an SMSID the site does not know | 2 (register again) | no | — |
//! | blocked record, a hardware ID of a blocked record, an ISV proxy certificate not imported | 3 (rejected) | no | — |
//!
//! A not-yet-approved client is *registered* (`Status` 0: the SDK's loop ends) but gets −1,
//! the value Metasploit reports as "Client registration not approved by SCCM server" against
//! a default (`trusted`) site (field notes §2.2, M4 \[MSF\]); 0 is kept for the pending answers,
//! as in the sample `response-pending.xml`. An administrator's [`Site::approve`] turns −1
//! into 1 on the next registration or confirmation. A registration the site cannot trust at
//! all (bad signature, undecodable or expired certificate, SHA-1 when SHA-256 is required, a
//! proxy signature without a registered proxy) is a [`Refusal`]: an empty 200 (M5, M6).
//!
//! **Client identity**: a re-registration is recognised by its signing certificate (for an
//! ISV proxy's clients, which share the proxy's certificate: by the proposed SMSID and the
//! proxy). The hardware ID is the `HardwareID1` discovery property (unless listed in the
//! `ignored_hardware_ids` switch, M17), else `SMBIOS:<UUID>` from the first DDR's
//! `Win32_ComputerSystemProduct/UUID`. A new record whose hardware ID an active record already
//! has is a duplicate: with automatic resolution the new record is created and the older one
//! marked obsolete ("create a new client record for the duplicate record", source 003); with
//! manual resolution the new record is parked as a conflicting record (registration answers
//! `Status` 1 until an administrator resolves it with [`Resolution::Merge`], [`Resolution::New`]
//! or [`Resolution::Block`]); a duplicate of a *blocked* record is rejected (M3: "a blocked
//! client could rejoin the site with a new self-signed certificate **and** hardware ID").
//!
//! **Certificate reset** (field notes M18: "Switching to HTTPS-only … deletes self-signed
//! records; clients must register again"): the database records the mode it was opened with,
//! and an open that moves it from `mixed` to `native` deletes every client record whose
//! signing certificate is self-signed ([`Site::certificate_reset`] names them). Their next
//! message is an unknown client's (an empty 200, M6) until they register again. Which
//! certificates a real site keeps, and whether a switch to ConfigMgr-generated certificates
//! (which the emulator does not model) does the same, is **\[UNCONFIRMED\]** beyond that
//! sentence.
//!
//! **Approval** ("Only clients that are approved will be sent policies", source 003): policy
//! assignments and bodies need approval; hardware and software inventory, file collection,
//! IDMIF and metering need it unless `allow_unapproved_inventory`; discovery, state and status
//! messages are accepted from registered unapproved clients (an administrator approves from the
//! discovery data, and state messages are what "identify computers that have failed").
//!
//! **Blocking** ("Blocked clients are rejected by Configuration Manager so that they cannot
//! communicate with site systems to download policy, upload inventory data, or send state or
//! status messages", source 003): refused on every endpoint, location requests included when
//! their `SourceID` names the blocked client.
//!
//! **Inventory** (field notes §3, M12): per client and inventory action the last accepted
//! `Version` `major.minor` is stored. A full report replaces the action's instances and sets
//! the version it carries; a delta must carry `major.(minor+1)` of the stored version, else it
//! is refused with [`Refusal::ResyncRequested`] and the resync stays requested (further deltas
//! are refused) until the next full report. Deltas apply `Instance/@Content` `New`/`Updated`
//! (insert or replace) and `Deleted` (remove) by class and key ([`crate::site::InventorySettings`]).
//! Discovery, file collection and IDMIF follow the same sequencing; state messages and
//! metering do not carry inventory versions.
//!
//! **Deduplication**: state messages by client and `SerialNumber` ("Every state message has a
//! unique serial number … the site server can keep track of whether it's missing any", field
//! notes §3); any Post by `Msg/ID` and sender when the `dedupe_message_ids` switch is on (the default; M20
//! says a real MP is not documented to do it): a redelivery is logged as `duplicate` and stores
//! nothing.
//!
//! **Policy** (protocol §4.2): `ServerCookie` is the time the site's policy set last changed
//! (`yyyy-MM-dd HH:mm:ss.fff`). `OnUpdate` with the current cookie gets `ReplyType="Delta"`
//! and no assignments; anything else gets `Full` with every assignment of the request's
//! resource type. `PolicyLocation` is `http://<mp>/SMS_MP/.sms_pol?<PolicyID>.<version with _
//! for .>` (the literal `<mp>` placeholder the client substitutes), `PolicyHash` and
//! `PolicyHashEx` are `SHA256:` and the upper-case hex SHA-256 of the body bytes as served in
//! plain text (UTF-16LE with a trailing NUL) \[inferred: what a client can check after
//! decryption\]. Secret bodies are CMS EnvelopedData to the client's registered encryption
//! certificate (its signing certificate when it sent none), plain bodies UTF-16LE with a NUL
//! (protocol §3.8, §4.2.3). A full reply carries a `Signature/Reference` per assignment (field
//! notes M16: `AlgID` 32780, `1.2.840.113549.1.1.11`, reversed upper-case hex), signed with
//! the MP's key over the UTF-16LE of the `PolicyAssignment` element as written
//! ([`assignment_xml`]); which bytes a real site signs is **\[UNCONFIRMED\]** (the
//! `sign_policy_assignments` switch leaves the block out).

use core::fmt;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use cmmp_model::kinds::{
    DdrReport, FileCollection, HinvReport, IdmifCollection, Inbound, SinvReport, SoftwareMetering,
    StateMessages, StatusMessage,
};
use cmmp_model::location::{
    AssignedSiteDetails, AssignedSiteReply, Capabilities, CapabilityProperty, ClientLocationInfo,
    ClientOperationalSettings, ContentLocationRecord, ContentLocationRecords, ContentLocationReply,
    ContentLocationRequest, ContentSite, ContentSites, EnumerateMpLocationReply,
    LocalMpLocationReply, LocalMpSite, LocalMpSites, LocationUrl, MpLocationRecord,
    MpLocationRecords, MpSite, NameRef, RelatedContentIds, ReplyBoundaryGroup, ReplyBoundaryGroups,
    SecurityConfiguration, SiteDetails, SiteInfoReply, ValueRef, WindowsTrust, WsusLocationRecord,
    WsusLocationRecords, WsusLocationReply, WsusSite, WsusSites,
};
use cmmp_model::msg::{HookName, HookPropertyName, Msg};
use cmmp_model::policy::{
    AssignedPolicy, AssignmentReference, AssignmentReplyKind, AssignmentRequestKind,
    AssignmentSignatures, PolicyAssignment, PolicyLocation, PolicyResource, ReplyAssignments,
    ReplyIdentification, ReplyMachine, ReplyUser, RequestAssignments, ResourceKind,
    SignatureAlgorithm,
};
use cmmp_model::registration::{
    ClientRegistrationRequest, ClientRegistrationResponse, RegistrationKind,
};
use cmmp_model::report_common::{
    ChangeKind, ReportDetails, ReportHeader, ReportHeaderContent, ReportKind,
};
use cmmp_model::value::{BracedGuid, HexBytes, IsoTime, SmsId};
use cmmp_model::xml::{AnyElement, Writer, XmlElement};
use cmmp_model::{DeliveryKind, Endpoint, MessageExt, Signing};
use cmmp_transport::cert::is_self_signed;
use cmmp_transport::msg::{hook_property, hooks};
use cmmp_transport::sign::{
    HashAlgorithm, SigningKey, from_hex, verify_reversed, verify_reversed_no_oid,
};
use cmmp_transport::wire::{DecodedRequest, Vdir};
use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;

use crate::error::Error;
use crate::key_memo::KeyMemo;
use crate::site::{
    ApprovalPolicy, BoundaryGroup, ConflictResolution, FaultKind, FaultSpec, POLICY_BODY_ENDPOINT,
    PolicyScope, PolicySpec, SiteConfig, SiteMode,
};
use crate::store::{
    ClientId, ClientRecord, CollectedFileRecord, ConflictId, ConflictRecord, DiscoveryRecord,
    FaultId, InventoryInstance, InventoryVersion, MessageOutcome, MessageRecord, MeteringRecord,
    NewClient, NewMessage, Source, StateMessageRecord, StatusMessageRecord, Store, StoredFault,
    StoredPolicy, Tx,
};

/// Why the site does not serve a request. The refusal is recorded (message log, reason
/// [`Refusal::code`]) before it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The SMSID is not registered (M6).
    UnknownClient,
    /// An administrator blocked the client (M3, source 003 "Client Blocking").
    Blocked,
    /// The client is not approved (source 003 "Approval for Clients in Mixed Mode").
    NotApproved,
    /// The registration has not completed (`Status` 1): "No policy requests or inventory
    /// while pending" (field notes §3).
    RegistrationPending,
    /// The record is parked as a conflicting record until an administrator resolves it.
    ConflictParked,
    /// A message that must be signed (`clientauth`) is not (M1, M14).
    Unsigned,
    /// A signature does not verify with the registered certificate (M6, M14).
    BadSignature {
        /// Which signature: `registration`, `PayloadSignature`, `policy token`.
        what: &'static str,
    },
    /// A SHA-1 signature while the site requires SHA-256 (M14).
    WeakHash,
    /// A certificate is undecodable, expired or not yet valid (M5).
    InvalidCertificate {
        /// What is wrong.
        reason: &'static str,
    },
    /// An ISV proxy client registration (`AgentType` 8) whose `Signature/@SMSID` does not name
    /// a registered ISV proxy, or a proxy signature on another agent type (protocol §3.3).
    UnknownProxy,
    /// The message names two different clients (`SourceID` and the body), or a confirmation
    /// comes with another certificate than the registration.
    IdentityMismatch,
    /// A delta inventory report is missing its predecessor or out of order; a full report is
    /// needed (M12: "Attempting to resync due to missed delta reports").
    ResyncRequested {
        /// The inventory action, e.g. `{00000000-0000-0000-0000-000000000001}`.
        action: String,
    },
    /// Policy is not ready for this client yet (M7).
    PolicyNotReady,
    /// A policy body that needs signed headers was requested without valid ones (M8).
    PolicyAuthRequired,
    /// No such policy (or not that version).
    UnknownPolicy,
    /// The message breaks a rule of its format (an unknown `Content`, a malformed version).
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The message is larger than the site takes (M13, the `max_message_bytes` switch).
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl Refusal {
    /// A stable code for logs and the message table, e.g. `blocked`, `resync-requested`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownClient => "unknown-client",
            Refusal::Blocked => "blocked",
            Refusal::NotApproved => "not-approved",
            Refusal::RegistrationPending => "registration-pending",
            Refusal::ConflictParked => "conflict-parked",
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature { .. } => "bad-signature",
            Refusal::WeakHash => "weak-hash",
            Refusal::InvalidCertificate { .. } => "invalid-certificate",
            Refusal::UnknownProxy => "unknown-proxy",
            Refusal::IdentityMismatch => "identity-mismatch",
            Refusal::ResyncRequested { .. } => "resync-requested",
            Refusal::PolicyNotReady => "policy-not-ready",
            Refusal::PolicyAuthRequired => "policy-auth-required",
            Refusal::UnknownPolicy => "unknown-policy",
            Refusal::Malformed { .. } => "malformed",
            Refusal::TooLarge { .. } => "too-large",
        }
    }

    /// What a real MP sends back for this refusal on a request of `delivery`:
    /// a Post is acknowledged anyway ([`MpAnswer::NoReply`]: the endpoint processes Posts
    /// asynchronously, field notes §3); a policy body download without valid signed headers
    /// gets the HTML `ERROR` page (M8); everything else an empty 200 (M6).
    #[must_use]
    pub fn mp_answer(&self, delivery: DeliveryKind) -> MpAnswer {
        match (self, delivery) {
            (Refusal::PolicyAuthRequired, _) => MpAnswer::HtmlError,
            (_, DeliveryKind::Post) => MpAnswer::NoReply,
            (_, DeliveryKind::Invoke) => MpAnswer::EmptyReply,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownClient => f.write_str("the client is not registered"),
            Refusal::Blocked => f.write_str("the client is blocked"),
            Refusal::NotApproved => f.write_str("the client is not approved"),
            Refusal::RegistrationPending => f.write_str("the client's registration is pending"),
            Refusal::ConflictParked => {
                f.write_str("the client record is parked as a conflicting record")
            }
            Refusal::Unsigned => f.write_str("the message must be signed"),
            Refusal::BadSignature { what } => {
                write!(f, "the {what} signature does not verify with the registered certificate")
            }
            Refusal::WeakHash => f.write_str("the site requires SHA-256 signatures"),
            Refusal::InvalidCertificate { reason } => write!(f, "certificate: {reason}"),
            Refusal::UnknownProxy => {
                f.write_str("the signature does not name a registered ISV proxy")
            }
            Refusal::IdentityMismatch => f.write_str("the message names another client"),
            Refusal::ResyncRequested { action } => {
                write!(f, "inventory {action} is out of sequence; a full report is requested")
            }
            Refusal::PolicyNotReady => f.write_str("policy is not ready for this client yet"),
            Refusal::PolicyAuthRequired => f.write_str("the policy body needs signed headers"),
            Refusal::UnknownPolicy => f.write_str("no such policy"),
            Refusal::Malformed { reason } => write!(f, "malformed message: {reason}"),
            Refusal::TooLarge { size, limit } => {
                write!(f, "the message has {size} bytes; the site takes at most {limit}")
            }
        }
    }
}

/// How a real MP answers a refused request (see [`Refusal::mp_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpAnswer {
    /// HTTP 200 with no body (M6).
    EmptyReply,
    /// HTTP 200 with the single `NoReply` part of an accepted Post (M11).
    NoReply,
    /// `<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>` (M8).
    HtmlError,
}

/// What happened to an accepted Post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and committed.
    Stored {
        /// The kind, e.g. `HinvReport`.
        kind: &'static str,
        /// Items stored: instances, state messages, files, usage records.
        items: u32,
        /// Items already stored before (state message serial numbers seen).
        duplicates: u32,
    },
    /// A redelivery of a stored message (same `Msg/ID`): nothing new was stored.
    Duplicate {
        /// When the message was first stored.
        first_stored: DateTime<Utc>,
    },
}

/// What the request arrived with, besides its body.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
    /// `Msg/ID`.
    pub message_id: Option<BracedGuid>,
    /// `Msg/SourceID`.
    pub source_id: Option<SmsId>,
    /// The virtual directory: `WindowsAuth` means the client authenticated with a domain
    /// machine account (trusted for approval, M2).
    pub vdir: Vdir,
    /// The body XML as received: the registration signature covers its `<Data>` element
    /// exactly as sent. Without it the canonical serialisation is verified.
    pub body_xml: Option<&'a str>,
    /// The XML the message was decoded from, as received (the full report of a
    /// header-and-attachment kind, else the body): stored as the client's discovery record.
    /// Without it the canonical serialisation is stored.
    pub report_xml: Option<&'a str>,
    /// The `clientauth` hook, when the message has one.
    pub client_auth: Option<ClientAuthProof<'a>>,
    /// Answer a registration with `Status` 1 (the `registration-pending` fault).
    pub force_registration_pending: bool,
}

impl<'a> Envelope<'a> {
    /// The envelope of a decoded request that came through `vdir`.
    #[must_use]
    pub fn from_request(request: &'a DecodedRequest, vdir: Vdir) -> Self {
        let client_auth =
            hooks(&request.header, &HookName::Clientauth).next().map(|hook| ClientAuthProof {
                payload_as_sent: &request.payload_as_sent,
                payload_signature: hook_property(hook, &HookPropertyName::PayloadSignature),
                hash_algorithm: hook_property(hook, &HookPropertyName::HashAlgorithm),
                verified_by: None,
            });
        Self {
            message_id: request.header.id,
            source_id: request.header.source_id,
            vdir,
            body_xml: Some(&request.body_xml),
            report_xml: Some(request.report_xml.as_deref().unwrap_or(&request.body_xml)),
            client_auth,
            force_registration_pending: false,
        }
    }
}

/// The parts of a `clientauth` hook the site checks (protocol §3.2).
#[derive(Debug, Clone, Copy)]
pub struct ClientAuthProof<'a> {
    /// The payload part exactly as sent (compressed if it was): what `PayloadSignature` covers.
    pub payload_as_sent: &'a [u8],
    /// `PayloadSignature` (hex, byte-reversed).
    pub payload_signature: Option<&'a str>,
    /// `HashAlgorithm` (absent: SHA-1).
    pub hash_algorithm: Option<&'a str>,
    /// A key that already verified `PayloadSignature` over `payload_as_sent` with this hash
    /// ([`Site::handle_verified`]); it saves the verification only when it is the registered
    /// certificate's key.
    pub verified_by: Option<&'a PKey<Public>>,
}

/// The reply to a location request (protocol §4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum LocationReply {
    /// `ContentLocationReply`.
    Content(ContentLocationReply),
    /// `WSUSLocationReply`.
    Wsus(WsusLocationReply),
    /// `LocalMPLocationReply`.
    LocalMp(LocalMpLocationReply),
    /// `EnumerateMPLocationReply`.
    EnumerateMp(EnumerateMpLocationReply),
    /// `SiteInfoReply`.
    SiteInfo(SiteInfoReply),
    /// `AssignedSiteReply`.
    AssignedSite(AssignedSiteReply),
}

impl LocationReply {
    /// The reply document.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when a value cannot be written.
    pub fn to_xml(&self) -> Result<String, Error> {
        Ok(match self {
            LocationReply::Content(r) => r.to_xml()?,
            LocationReply::Wsus(r) => r.to_xml()?,
            LocationReply::LocalMp(r) => r.to_xml()?,
            LocationReply::EnumerateMp(r) => r.to_xml()?,
            LocationReply::SiteInfo(r) => r.to_xml()?,
            LocationReply::AssignedSite(r) => r.to_xml()?,
        })
    }
}

/// A policy body download request (GET `/SMS_MP/.sms_pol?<PolicyID>.<version>`).
#[derive(Debug, Clone, Copy)]
pub struct PolicyBodyRequest<'a> {
    /// The policy ID.
    pub policy_id: &'a str,
    /// The version, when the URL carries one (`1_00` and `1.00` both accepted).
    pub version: Option<&'a str>,
    /// The request's HTTP header fields (the signed token headers of protocol §3.7).
    pub headers: &'a [(String, String)],
}

impl<'a> PolicyBodyRequest<'a> {
    /// Splits the query of a `.sms_pol` URL, `<PolicyID>.<version>`, e.g.
    /// `{f8a3…}.1_00` (URL-decode `%7B`/`%7D` first).
    #[must_use]
    pub fn from_query(query: &'a str, headers: &'a [(String, String)]) -> Self {
        match query.rsplit_once('.') {
            Some((id, version)) if !id.is_empty() => {
                Self { policy_id: id, version: Some(version), headers }
            }
            _ => Self { policy_id: query, version: None, headers },
        }
    }
}

/// A policy body as served.
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyBody {
    /// The bytes to send: DER CMS EnvelopedData for a secret policy, else UTF-16LE XML with
    /// a trailing NUL.
    pub bytes: Vec<u8>,
    /// Whether `bytes` is an envelope.
    pub encrypted: bool,
}

impl fmt::Debug for PolicyBody {
    /// Never shows the body (house style HS-64: policy may hold secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBody")
            .field("len", &self.bytes.len())
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// The site's answer to a decoded request ([`Site::handle`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// A registration reply.
    Registration(ClientRegistrationResponse),
    /// A policy assignment reply.
    Assignments(ReplyAssignments),
    /// A location reply.
    Location(LocationReply),
    /// A Post, stored (or recognised as a redelivery).
    Accepted(Outcome),
    /// Refused, and recorded; answer with [`Refusal::mp_answer`].
    Refused(Refusal),
}

/// How an administrator resolves a conflicting record (source 003, "How to Manage
/// Conflicting Records").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The existing record takes over the new registration (certificates, SMSID) and keeps its
    /// history; the parked record goes.
    Merge,
    /// The parked record becomes a client record of its own; the existing one is marked
    /// obsolete.
    New,
    /// The parked record is blocked.
    Block,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::Merge => "merge",
            Resolution::New => "new",
            Resolution::Block => "block",
        }
    }
}

/// A site: its configuration and its database.
#[derive(Debug)]
pub struct Site {
    config: SiteConfig,
    store: Store,
    /// Whether the faults table may hold a fault: when it does not, [`Site::fault_for`]
    /// answers without a savepoint and a query for every request. Set by every change to
    /// the faults, and read again after each group (a group's fault uses are rolled back
    /// with it when it fails).
    faults_in_force: bool,
    /// The SMSIDs of the client records this open deleted ([`Site::certificate_reset`]).
    certificate_reset: Vec<SmsId>,
    /// Signs policy assignments ([`Site::set_policy_signer`]).
    assignment_signer: AssignmentSigner,
}

/// The key that signs policy assignments (field notes M16), and the signatures it made.
#[derive(Debug, Default)]
struct AssignmentSigner {
    key: Option<SigningKey>,
    /// Signatures already made, by the assignment's XML (the same for every client until
    /// the policy changes; an RSA signature costs about a millisecond).
    signatures: BTreeMap<String, HexBytes>,
}

impl AssignmentSigner {
    /// Adds the `Signature` block of a reply with assignments: one `Reference` per
    /// assignment, over the UTF-16LE of its `PolicyAssignment` element as written
    /// (**\[UNCONFIRMED\]** bytes, see the `sign_policy_assignments` switch). Nothing without
    /// a key, when `enabled` is off or when there is no assignment.
    fn sign(&mut self, enabled: bool, reply: &mut ReplyAssignments) -> Result<(), Error> {
        let Some(key) = &self.key else { return Ok(()) };
        if !enabled || reply.policy_assignment.is_empty() {
            return Ok(());
        }
        if self.signatures.len() > MAX_ASSIGNMENT_SIGNATURES {
            self.signatures.clear();
        }
        let mut reference = Vec::with_capacity(reply.policy_assignment.len());
        for assignment in &reply.policy_assignment {
            let xml = assignment_xml(assignment)?;
            let value = match self.signatures.get(&xml) {
                Some(value) => value.clone(),
                None => {
                    let signature = key
                        .sign(HashAlgorithm::Sha256, &utf16le(&xml))
                        .map_err(|source| Error::Sign { what: "a policy assignment", source })?;
                    let value = HexBytes(signature);
                    self.signatures.insert(xml, value.clone());
                    value
                }
            };
            let algorithm = SignatureAlgorithm::new(
                ASSIGNMENT_SIGNATURE_ALG_ID.to_owned(),
                ASSIGNMENT_SIGNATURE_OID.to_owned(),
            );
            reference.push(AssignmentReference::new(
                assignment.policy_assignment_id.clone(),
                algorithm,
                value,
            ));
        }
        reply.signature = Some(AssignmentSignatures { reference });
        Ok(())
    }
}

/// A refusal or a failure inside a transaction (both work with `?`).
enum Denied {
    Refused(Refusal),
    Failed(Error),
}

impl From<Error> for Denied {
    fn from(e: Error) -> Self {
        Denied::Failed(e)
    }
}

impl From<Refusal> for Denied {
    fn from(r: Refusal) -> Self {
        Denied::Refused(r)
    }
}

/// What a rule needs the client to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Policy assignments and bodies: approval needed.
    Policy,
    /// Inventory: approval needed unless `allow_unapproved_inventory`.
    Inventory,
    /// Discovery, state and status messages: registered is enough.
    Report,
}

/// Deletes the client records whose signing certificate is self-signed (field notes M18) and
/// returns their SMSIDs. An open conflict that loses its parked record is resolved as
/// `certificate-reset` without one; one that loses only its existing record is resolved the
/// same way and leaves the parked record a client of its own, as [`Resolution::New`] does.
fn certificate_reset(tx: &Tx<'_>, now: DateTime<Utc>) -> Result<Vec<SmsId>, Error> {
    let gone: Vec<ClientRecord> = tx
        .clients()?
        .into_iter()
        .filter(|c| X509::from_der(&c.signing_cert).is_ok_and(|cert| is_self_signed(&cert)))
        .collect();
    let is_gone = |id: ClientId| gone.iter().any(|c| c.id == id);
    for conflict in tx.conflicts(true)? {
        let parked_gone = conflict.parked.is_some_and(is_gone);
        if parked_gone || is_gone(conflict.existing) {
            let parked = if parked_gone { None } else { conflict.parked };
            tx.resolve_conflict(conflict.id, "certificate-reset", parked, now)?;
        }
    }
    for c in &gone {
        tx.delete_client(c.id)?;
    }
    Ok(gone.into_iter().map(|c| c.smsid).collect())
}

impl Site {
    /// Opens the site database at `path` (created and migrated as needed) for `config`.
    ///
    /// The site file's policies replace the policies it loaded last time (a change moves the
    /// `ServerCookie`), and its faults replace the faults it set last time; policies and faults
    /// set through admin calls stay.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` breaks a rule; [`Error::Store`], [`Error::SchemaTooNew`].
    pub fn open(config: SiteConfig, path: &Path, now: DateTime<Utc>) -> Result<Self, Error> {
        config.validate()?;
        Self::start(config, Store::open(path)?, now)
    }

    /// A site on a private in-memory database.
    ///
    /// # Errors
    ///
    /// As [`Site::open`].
    pub fn in_memory(config: SiteConfig, now: DateTime<Utc>) -> Result<Self, Error> {
        config.validate()?;
        Self::start(config, Store::open_in_memory()?, now)
    }

    fn start(config: SiteConfig, mut store: Store, now: DateTime<Utc>) -> Result<Self, Error> {
        let certificate_reset = store.write(|tx| {
            let mut changed = false;
            for p in &config.policies {
                changed |= tx.upsert_policy(p, Source::File, now)?;
            }
            for stored in tx.policies()? {
                let in_file =
                    config.policies.iter().any(|p| p.assignment_id == stored.spec.assignment_id);
                if stored.source == Source::File && !in_file {
                    changed |= tx.delete_policy(&stored.spec.assignment_id)?;
                }
            }
            if changed || tx.policy_changed()?.is_none() {
                tx.set_policy_changed(now)?;
            }
            tx.delete_faults_from(Source::File)?;
            for f in &config.faults {
                tx.insert_fault(f, Source::File, now)?;
            }
            let was = tx.site_mode()?;
            let reset = if config.mode == SiteMode::Native
                && was.as_deref() == Some(SiteMode::Mixed.as_str())
            {
                certificate_reset(tx, now)?
            } else {
                Vec::new()
            };
            tx.set_site_mode(config.mode.as_str())?;
            Ok(reset)
        })?;
        let mut site = Self {
            config,
            store,
            faults_in_force: true,
            certificate_reset,
            assignment_signer: AssignmentSigner::default(),
        };
        site.refresh_faults();
        Ok(site)
    }

    /// Reads again whether any fault is in force; when the read fails, assumes one may be
    /// (every request then looks the faults up, as it would anyway).
    fn refresh_faults(&mut self) {
        self.faults_in_force = self.store.read(|tx| tx.faults()).map_or(true, |f| !f.is_empty());
    }

    /// Records the ports the site is served on: the management point's ports the site file
    /// leaves unset become these, so location replies name where the MP listens
    /// ([`crate::site::ManagementPoint::effective`]). [`crate::Emulator`] calls it for each
    /// listener.
    pub fn listening_on(&mut self, http: Option<u16>, https: Option<u16>) {
        let mp = &mut self.config.management_point;
        mp.http_port = mp.http_port.or(http);
        mp.https_port = mp.https_port.or(https);
    }

    /// Signs the assignments of full policy replies with `key` (field notes M16; the
    /// `sign_policy_assignments` switch). [`crate::Emulator::start`] sets the MP's signing key.
    pub fn set_policy_signer(&mut self, key: SigningKey) {
        self.assignment_signer = AssignmentSigner { key: Some(key), signatures: BTreeMap::new() };
    }

    /// The client records deleted when this open moved the site from mixed to native mode:
    /// those registered with a self-signed signing certificate (field notes M18, "Switching
    /// to HTTPS-only … deletes self-signed records; clients must register again"). Their
    /// messages and everything stored for them go with them; the message log keeps its rows
    /// without the client. Empty on every other open, and for a database that had not
    /// recorded its mode before.
    #[must_use]
    pub fn certificate_reset(&self) -> &[SmsId] {
        &self.certificate_reset
    }

    /// The site's configuration.
    #[must_use]
    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// The site's database.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles a decoded request: registration, policy assignments, location requests and
    /// Posts. Faults are the server's business: look them up first with [`Site::fault_for`]
    /// (a `registration-pending` fault is passed here as `force_registration_pending`).
    ///
    /// Returns after the transaction that recorded the request has committed.
    ///
    /// # Errors
    ///
    /// Store and encoding failures; refusals come back as [`Handled::Refused`].
    pub fn handle(
        &mut self,
        request: &DecodedRequest,
        vdir: Vdir,
        force_registration_pending: bool,
        now: DateTime<Utc>,
    ) -> Result<Handled, Error> {
        self.handle_verified(request, vdir, force_registration_pending, None, now)
    }

    /// [`Site::handle`] for a request whose `clientauth` `PayloadSignature` was already
    /// verified with `verified_by` (the listener does that on its decode threads): when that
    /// is the registered certificate's key, the RSA verification is not repeated; otherwise
    /// the signature is verified as usual. Answers are the same either way.
    ///
    /// # Errors
    ///
    /// As [`Site::handle`].
    pub fn handle_verified(
        &mut self,
        request: &DecodedRequest,
        vdir: Vdir,
        force_registration_pending: bool,
        verified_by: Option<&PKey<Public>>,
        now: DateTime<Utc>,
    ) -> Result<Handled, Error> {
        let mut env = Envelope::from_request(request, vdir);
        env.force_registration_pending = force_registration_pending;
        if let Some(proof) = &mut env.client_auth {
            proof.verified_by = verified_by;
        }
        let result = match &request.message {
            Inbound::ClientRegistration(k) => {
                self.register(&k.0, &env, now).map(Handled::Registration)
            }
            Inbound::PolicyAssignments(k) => {
                self.policy_assignments(&k.0, &env, now).map(Handled::Assignments)
            }
            m @ (Inbound::ContentLocation(_)
            | Inbound::WsusLocation(_)
            | Inbound::LocalMpLocation(_)
            | Inbound::EnumerateMpLocation(_)
            | Inbound::SiteInformation(_)
            | Inbound::AssignedSite(_)) => self.locate(m, &env, now).map(Handled::Location),
            m => self.accept(m, &request.attachments, &env, now).map(Handled::Accepted),
        };
        match result {
            Err(Error::Refused(r)) => Ok(Handled::Refused(r)),
            other => other,
        }
    }

    /// Runs several operations as one group that commits together (group commit): `f` calls
    /// any of the site's operations, and each keeps its own outcome (a failed one is rolled
    /// back alone, in its savepoint; a refusal is recorded as usual), but none is durable
    /// until the group's single transaction commits, which happens before this returns.
    ///
    /// `Ok` carries `f`'s value: whatever its operations returned is committed. `Err` means the
    /// group did not commit and nothing of it is stored, whatever the operations returned; a
    /// server answers none of them as accepted. A panic in `f` rolls the group back and
    /// resumes.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the transaction cannot begin or commit; [`Error::Invalid`] when
    /// called inside `f`.
    pub fn group<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Result<T, Error> {
        self.store.begin_group()?;
        let faults_before = self.faults_in_force;
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(value) => self.store.end_group(true).map(|()| value),
            Err(panic) => {
                let _ = self.store.end_group(false);
                if faults_before {
                    self.refresh_faults();
                }
                std::panic::resume_unwind(panic)
            }
        };
        // Faults used up (or kept, when the group rolled back) during the group.
        if faults_before || self.faults_in_force {
            self.refresh_faults();
        }
        result
    }

    // ---- registration --------------------------------------------------------------------

    /// Registers a client (protocol §4.1; the decisions are in the [module docs](self)).
    ///
    /// The inline signature is verified over the `<Data>` element exactly as received
    /// (`env.body_xml`) with the certificate in the request, or, for `AgentType` 8, with the
    /// registered ISV proxy named by `Signature/@SMSID` ("The ISV proxy uses its own
    /// certificate to sign the registration request on behalf of each client", source 002).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (recorded) for a registration the site cannot trust; store failures.
    pub fn register(
        &mut self,
        request: &ClientRegistrationRequest,
        env: &Envelope<'_>,
        now: DateTime<Utc>,
    ) -> Result<ClientRegistrationResponse, Error> {
        let config = &self.config;
        self.store
            .write(|tx| {
                let claimed = request.data.smsid.0;
                match register_in(tx, config, request, env, now) {
                    Ok((response, client, reason)) => {
                        log(
                            tx,
                            env,
                            "MP_ClientRegistration",
                            "ClientRegistration",
                            client,
                            claimed.or(response.smsid).as_ref(),
                            MessageOutcome::Answered,
                            Some(reason),
                            now,
                        )?;
                        Ok(Ok(response))
                    }
                    Err(Denied::Refused(r)) => {
                        log(
                            tx,
                            env,
                            "MP_ClientRegistration",
                            "ClientRegistration",
                            None,
                            claimed.as_ref(),
                            MessageOutcome::Refused,
                            Some(r.code()),
                            now,
                        )?;
                        Ok(Err(r))
                    }
                    Err(Denied::Failed(e)) => Err(e),
                }
            })?
            .map_err(Error::Refused)
    }

    // ---- posts ---------------------------------------------------------------------------

    /// Accepts a Post: DDR, hardware and software inventory, file collection, state messages,
    /// metering, IDMIF, status messages.
    ///
    /// `attachments` are the request's attachments by name (collected files are matched by
    /// their decimal `CollectedFile/@ID`). The sender is `env.source_id`, else the report's
    /// `ClientID` (a status message's `ClientID` property).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (recorded) when the site does not take the message;
    /// [`Error::WrongKind`] for a kind that is not a Post; store and encoding failures.
    pub fn accept(
        &mut self,
        inbound: &Inbound,
        attachments: &[(String, Vec<u8>)],
        env: &Envelope<'_>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let Some(meta) = post_meta(inbound) else {
            return Err(Error::WrongKind { operation: "Site::accept", kind: inbound.kind_name() });
        };
        let config = &self.config;
        self.store
            .write(|tx| {
                let message_id = env.message_id.map(|m| m.to_string());
                let claimed = env.source_id.or(meta.client).map(|s| s.to_string());
                if config.switches.dedupe_message_ids
                    && let Some(id) = &message_id
                    && let Some(first_stored) = tx.message_stored(id, claimed.as_deref())?
                {
                    let smsid = env.source_id.or(meta.client);
                    let client = match &smsid {
                        Some(s) => tx.client_by_smsid(s)?.map(|c| c.id),
                        None => None,
                    };
                    log(
                        tx,
                        env,
                        meta.endpoint,
                        meta.kind,
                        client,
                        smsid.as_ref(),
                        MessageOutcome::Duplicate,
                        None,
                        now,
                    )?;
                    return Ok(Ok(Outcome::Duplicate { first_stored }));
                }
                let mut client_id = None;
                match accept_in(tx, config, inbound, &meta, attachments, env, now, &mut client_id) {
                    Ok(outcome) => Ok(Ok(outcome)),
                    Err(Denied::Refused(r)) => {
                        let smsid = env.source_id.or(meta.client);
                        log(
                            tx,
                            env,
                            meta.endpoint,
                            meta.kind,
                            client_id,
                            smsid.as_ref(),
                            MessageOutcome::Refused,
                            Some(r.code()),
                            now,
                        )?;
                        Ok(Err(r))
                    }
                    Err(Denied::Failed(e)) => Err(e),
                }
            })?
            .map_err(Error::Refused)
    }

    // ---- policy --------------------------------------------------------------------------

    /// Answers a policy assignment request (protocol §4.2).
    ///
    /// The request must be signed by the registered client (M1: `MP_PolicyManager` is
    /// `ClientSigned`), and the client registered, approved, not blocked, not parked, and past
    /// the `policy_ready_delay_secs` switch (M7).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (recorded); store failures.
    pub fn policy_assignments(
        &mut self,
        request: &RequestAssignments,
        env: &Envelope<'_>,
        now: DateTime<Utc>,
    ) -> Result<ReplyAssignments, Error> {
        let config = &self.config;
        let signer = &mut self.assignment_signer;
        self.store
            .write(|tx| {
                // Logged under the sender (the header's `SourceID`, which signs it), as Posts
                // are; the client the body names when there is none.
                let sender = env.source_id.unwrap_or(request.identification.machine.client_id);
                let mut client_id = None;
                match assignments_in(tx, config, request, env, now, &mut client_id) {
                    Ok(mut reply) => {
                        // Signed before the answer is logged: a failure rolls the log back.
                        signer.sign(config.switches.sign_policy_assignments, &mut reply)?;
                        let reason = format!(
                            "{} {} assignments",
                            reply.reply_type.as_str(),
                            reply.policy_assignment.len()
                        );
                        log(
                            tx,
                            env,
                            "MP_PolicyManager",
                            "PolicyAssignments",
                            client_id,
                            Some(&sender),
                            MessageOutcome::Answered,
                            Some(&reason),
                            now,
                        )?;
                        Ok(Ok(reply))
                    }
                    Err(Denied::Refused(r)) => {
                        log(
                            tx,
                            env,
                            "MP_PolicyManager",
                            "PolicyAssignments",
                            client_id,
                            Some(&sender),
                            MessageOutcome::Refused,
                            Some(r.code()),
                            now,
                        )?;
                        Ok(Err(r))
                    }
                    Err(Denied::Failed(e)) => Err(e),
                }
            })?
            .map_err(Error::Refused)
    }

    /// Serves a policy body (protocol §4.2.3, §3.7, §3.8).
    ///
    /// A policy flagged `RequiresAuth` or `Secret` needs valid signed token headers (any of
    /// the three schemes of §3.7, signed with the client's registered signing key, SHA-256);
    /// without them the answer is [`Refusal::PolicyAuthRequired`] (M8), and the client they
    /// identify must be allowed policy (registered, approved, not parked). Plain policies are
    /// served without headers, as to an anonymous GET; a blocked client is refused either way.
    /// Secret bodies come back CMS-encrypted to the client's encryption certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (recorded); [`Error::Cms`] when the envelope cannot be built; store
    /// failures.
    pub fn policy_body(
        &mut self,
        request: &PolicyBodyRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<PolicyBody, Error> {
        let config = &self.config;
        self.store
            .write(|tx| {
                let mut client = None;
                let env = Envelope::default();
                match policy_body_in(tx, config, request, now, &mut client) {
                    Ok(body) => {
                        log(
                            tx,
                            &env,
                            POLICY_BODY_ENDPOINT,
                            "PolicyBody",
                            client.as_ref().map(|c: &ClientRecord| c.id),
                            client.as_ref().map(|c| &c.smsid),
                            MessageOutcome::Answered,
                            Some(request.policy_id),
                            now,
                        )?;
                        Ok(Ok(body))
                    }
                    Err(Denied::Refused(r)) => {
                        log(
                            tx,
                            &env,
                            POLICY_BODY_ENDPOINT,
                            "PolicyBody",
                            client.as_ref().map(|c| c.id),
                            client.as_ref().map(|c| &c.smsid),
                            MessageOutcome::Refused,
                            Some(r.code()),
                            now,
                        )?;
                        Ok(Err(r))
                    }
                    Err(Denied::Failed(e)) => Err(e),
                }
            })?
            .map_err(Error::Refused)
    }

    /// The current `ServerCookie`: when the site's policy set last changed.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn server_cookie(&self) -> Result<String, Error> {
        self.store.read(|tx| Ok(tx.policy_changed()?.map(cookie).unwrap_or_default()))
    }

    // ---- locations -----------------------------------------------------------------------

    /// Answers a location request (protocol §4.3): distribution points and software update
    /// points chosen by boundaries (IP subnets, AD sites) from the site file, the site's MP,
    /// the site information and the assigned site.
    ///
    /// Distribution points of the boundary groups whose boundaries contain one of the client's
    /// addresses or its AD site come with `Locality` `LOCAL`, those of fallback groups after
    /// them with `FALLBACK`. Every distribution point is taken to hold all content. A WSUS
    /// location lists the local groups' software update points, or the fallback groups' when
    /// no local group has one.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (recorded) for a blocked `SourceID` or a malformed package ID;
    /// [`Error::WrongKind`] for a kind that is not a location request; store failures.
    pub fn locate(
        &mut self,
        inbound: &Inbound,
        env: &Envelope<'_>,
        now: DateTime<Utc>,
    ) -> Result<LocationReply, Error> {
        let kind = inbound.kind_name();
        if !matches!(
            inbound,
            Inbound::ContentLocation(_)
                | Inbound::WsusLocation(_)
                | Inbound::LocalMpLocation(_)
                | Inbound::EnumerateMpLocation(_)
                | Inbound::SiteInformation(_)
                | Inbound::AssignedSite(_)
        ) {
            return Err(Error::WrongKind { operation: "Site::locate", kind });
        }
        let config = &self.config;
        self.store
            .write(|tx| {
                let client = match &env.source_id {
                    Some(s) => tx.client_by_smsid(s)?,
                    None => None,
                };
                let result = match &client {
                    Some(c) if c.blocked => Err(Refusal::Blocked),
                    _ => locate_in(config, inbound, now),
                };
                let id = client.as_ref().map(|c| c.id);
                match result {
                    Ok(reply) => {
                        log(
                            tx,
                            env,
                            "MP_LocationManager",
                            kind,
                            id,
                            env.source_id.as_ref(),
                            MessageOutcome::Answered,
                            None,
                            now,
                        )?;
                        Ok(Ok(reply))
                    }
                    Err(r) => {
                        log(
                            tx,
                            env,
                            "MP_LocationManager",
                            kind,
                            id,
                            env.source_id.as_ref(),
                            MessageOutcome::Refused,
                            Some(r.code()),
                            now,
                        )?;
                        Ok(Err(r))
                    }
                }
            })?
            .map_err(Error::Refused)
    }

    // ---- what the server refuses before decoding ------------------------------------------

    /// Checks a message's size against the `max_message_bytes` switch (M13: the inventory
    /// loader moves larger files to `BADMIFS`) before the server decodes it; a message too large
    /// is recorded as refused.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] with [`Refusal::TooLarge`] (recorded); store failures.
    pub fn check_size(
        &mut self,
        endpoint: &str,
        size: u64,
        message_id: Option<BracedGuid>,
        source_id: Option<SmsId>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let limit = self.config.switches.max_message_bytes;
        if size <= limit {
            return Ok(());
        }
        let refusal = Refusal::TooLarge { size, limit };
        let env = Envelope { message_id, source_id, ..Envelope::default() };
        self.store.write(|tx| {
            let client = match source_id {
                Some(id) => tx.client_by_smsid(&id)?.map(|c| c.id),
                None => None,
            };
            log(
                tx,
                &env,
                endpoint,
                "unknown",
                client,
                source_id.as_ref(),
                MessageOutcome::Refused,
                Some(refusal.code()),
                now,
            )
        })?;
        Err(Error::Refused(refusal))
    }

    /// Records a request the server could not decode (framing, UTF-16, XML, unknown kind), so
    /// the message log shows everything received. `reason` is the server's short description.
    /// `header` is the request's `Msg` header when it reads
    /// ([`cmmp_transport::wire::peek_header`]): the row then names its endpoint, `Msg/ID` and
    /// the SMSID of its `SourceID` (as named, unverified, like other refusals; no client record),
    /// so the sender's own log shows it.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn record_undecodable(
        &mut self,
        header: Option<&Msg>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.record_unhandled(header, "undecodable", MessageOutcome::Refused, reason, now)
    }

    /// Records a request whose handling failed inside the emulator (a store error, say), with
    /// outcome [`MessageOutcome::Failed`] and the error as its reason. The request is answered
    /// HTTP 500 and nothing else of it was kept, so the client sends it again; the row is
    /// what shows why. Like [`Site::record_undecodable`], it names the endpoint, `Msg/ID` and
    /// `SourceID` from `header` (as named, unverified, no client record); `kind` is the kind
    /// the body decoded to.
    ///
    /// # Errors
    ///
    /// Store failures (then nothing is recorded either).
    pub fn record_failure(
        &mut self,
        header: &Msg,
        kind: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.record_unhandled(Some(header), kind, MessageOutcome::Failed, reason, now)
    }

    /// One log row for a request the site's rules did not handle, named from its header
    /// (when it reads) and with `reason` cut to 200 characters.
    fn record_unhandled(
        &mut self,
        header: Option<&Msg>,
        kind: &str,
        outcome: MessageOutcome,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let env = Envelope {
            message_id: header.and_then(|h| h.id),
            source_id: header.and_then(|h| h.source_id),
            ..Envelope::default()
        };
        let endpoint = header.map_or("CCM_POST", |h| h.target_endpoint.as_str());
        let reason: String = reason.chars().take(200).collect();
        self.store.write(|tx| {
            log(tx, &env, endpoint, kind, None, env.source_id.as_ref(), outcome, Some(&reason), now)
                .map(drop)
        })
    }

    // ---- faults --------------------------------------------------------------------------

    /// The fault to apply to a request for `endpoint` (`Msg/TargetEndpoint`, or
    /// [`POLICY_BODY_ENDPOINT`]), using up one of its remaining uses: the first stored fault
    /// for that endpoint or `*` with uses left.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn fault_for(&mut self, endpoint: &str) -> Result<Option<FaultKind>, Error> {
        if !self.faults_in_force {
            return Ok(None);
        }
        let found = self.store.write(|tx| tx.take_fault(endpoint))?;
        if !self.store.grouped() {
            self.refresh_faults();
        }
        Ok(found)
    }

    /// Adds a fault (admin).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty endpoint; store failures.
    pub fn add_fault(&mut self, fault: &FaultSpec, now: DateTime<Utc>) -> Result<FaultId, Error> {
        if fault.endpoint.is_empty() {
            return Err(Error::Invalid("a fault needs an endpoint or \"*\"".to_owned()));
        }
        let id = self.store.write(|tx| tx.insert_fault(fault, Source::Admin, now))?;
        self.faults_in_force = true;
        Ok(id)
    }

    /// The faults still in force.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn faults(&self) -> Result<Vec<StoredFault>, Error> {
        self.store.read(|tx| tx.faults())
    }

    /// Removes a fault; returns whether it existed.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn remove_fault(&mut self, id: FaultId) -> Result<bool, Error> {
        let removed = self.store.write(|tx| tx.delete_fault(id))?;
        self.refresh_faults();
        Ok(removed)
    }

    /// Removes every fault, from the site file and admin calls alike.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn clear_faults(&mut self) -> Result<(), Error> {
        self.store.write(|tx| tx.delete_all_faults())?;
        self.refresh_faults();
        Ok(())
    }

    // ---- admin: clients ------------------------------------------------------------------

    /// Every client record, oldest first.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        self.store.read(|tx| tx.clients())
    }

    /// The client record with `smsid`.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn client(&self, smsid: &SmsId) -> Result<Option<ClientRecord>, Error> {
        self.store.read(|tx| tx.client_by_smsid(smsid))
    }

    /// Approves a client: it gets policy from now on.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn approve(&mut self, smsid: &SmsId) -> Result<(), Error> {
        self.update_client(smsid, |c| c.approved = true)
    }

    /// Revokes a client's approval.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn unapprove(&mut self, smsid: &SmsId) -> Result<(), Error> {
        self.update_client(smsid, |c| c.approved = false)
    }

    /// Blocks a client: it is refused on every endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn block(&mut self, smsid: &SmsId) -> Result<(), Error> {
        self.update_client(smsid, |c| c.blocked = true)
    }

    /// Unblocks a client.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn unblock(&mut self, smsid: &SmsId) -> Result<(), Error> {
        self.update_client(smsid, |c| c.blocked = false)
    }

    fn update_client(
        &mut self,
        smsid: &SmsId,
        f: impl FnOnce(&mut ClientRecord),
    ) -> Result<(), Error> {
        self.store.write(|tx| {
            let mut c = known(tx, smsid)?;
            f(&mut c);
            tx.save_client(&c)
        })
    }

    /// Imports an ISV proxy certificate (DER), as an administrator does before the proxy
    /// registers ("When the certificate is imported, Configuration Manager generates an SMSID
    /// to identify the ISV proxy", source 002). Returns the proxy's SMSID; importing the same
    /// certificate again returns the same SMSID.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `certificate_der` is not an X.509 certificate; store failures.
    pub fn import_isv_proxy(
        &mut self,
        certificate_der: &[u8],
        now: DateTime<Utc>,
    ) -> Result<SmsId, Error> {
        X509::from_der(certificate_der)
            .map_err(|_| Error::Invalid("the ISV proxy certificate is not DER X.509".to_owned()))?;
        self.store.write(|tx| {
            if let Some(p) =
                tx.clients_by_signing_cert(certificate_der)?.into_iter().find(|c| c.imported_proxy)
            {
                return Ok(p.smsid);
            }
            let smsid = fresh_smsid(tx)?;
            tx.insert_client(&NewClient {
                smsid,
                signing_cert: certificate_der,
                encryption_cert: None,
                hash_algorithm: HashAlgorithm::Sha256.name(),
                hardware_id: None,
                agent_type: AGENT_ISV_PROXY,
                agent_identity: "imported ISV proxy certificate",
                agent_version: "",
                netbios_name: None,
                fqdn: None,
                proxy: None,
                approved: true,
                registered: false,
                imported_proxy: true,
                now,
            })?;
            Ok(smsid)
        })
    }

    /// The conflicting records, unresolved only or all.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn conflicts(&self, unresolved_only: bool) -> Result<Vec<ConflictRecord>, Error> {
        self.store.read(|tx| tx.conflicts(unresolved_only))
    }

    /// Resolves a conflicting record (see [`Resolution`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown conflict; [`Error::Invalid`] for one already
    /// resolved; store failures.
    pub fn resolve_conflict(
        &mut self,
        id: ConflictId,
        resolution: Resolution,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.store.write(|tx| {
            let conflict = tx
                .conflict(id)?
                .ok_or_else(|| Error::NotFound { what: "conflict", id: id.to_string() })?;
            if conflict.resolved.is_some() {
                return Err(Error::Invalid(format!("conflict {id} is already resolved")));
            }
            let parked_id = conflict.parked.ok_or_else(|| Error::NotFound {
                what: "parked client record of conflict",
                id: id.to_string(),
            })?;
            let mut parked = tx.client(parked_id)?.ok_or_else(|| Error::NotFound {
                what: "client record",
                id: parked_id.to_string(),
            })?;
            let existing = tx.client(conflict.existing)?;
            match resolution {
                Resolution::Merge => {
                    let mut existing = existing.ok_or_else(|| Error::NotFound {
                        what: "client record",
                        id: conflict.existing.to_string(),
                    })?;
                    tx.move_client_rows(parked.id, existing.id)?;
                    tx.delete_client(parked.id)?;
                    existing.smsid = parked.smsid;
                    existing.signing_cert = parked.signing_cert;
                    existing.encryption_cert = parked.encryption_cert;
                    existing.hash_algorithm = parked.hash_algorithm;
                    existing.agent_type = parked.agent_type;
                    existing.agent_identity = parked.agent_identity;
                    existing.agent_version = parked.agent_version;
                    existing.netbios_name = parked.netbios_name.or(existing.netbios_name);
                    existing.fqdn = parked.fqdn.or(existing.fqdn);
                    existing.proxy = parked.proxy;
                    existing.obsolete = false;
                    tx.save_client(&existing)?;
                    tx.resolve_conflict(id, resolution.as_str(), None, now)
                }
                Resolution::New => {
                    if let Some(mut e) = existing {
                        e.obsolete = true;
                        tx.save_client(&e)?;
                    }
                    tx.resolve_conflict(id, resolution.as_str(), Some(parked.id), now)
                }
                Resolution::Block => {
                    parked.blocked = true;
                    tx.save_client(&parked)?;
                    tx.resolve_conflict(id, resolution.as_str(), Some(parked.id), now)
                }
            }
        })
    }

    // ---- admin: what clients sent --------------------------------------------------------

    /// The client's inventory instances, by action, class and key.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn inventory(&self, smsid: &SmsId) -> Result<Vec<InventoryInstance>, Error> {
        self.store.read(|tx| tx.instances(known(tx, smsid)?.id))
    }

    /// The client's inventory versions and resync requests, by action.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn inventory_versions(&self, smsid: &SmsId) -> Result<Vec<InventoryVersion>, Error> {
        self.store.read(|tx| tx.inventory_versions(known(tx, smsid)?.id))
    }

    /// The client's latest discovery data.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn discovery(&self, smsid: &SmsId) -> Result<Option<DiscoveryRecord>, Error> {
        self.store.read(|tx| tx.discovery(known(tx, smsid)?.id))
    }

    /// The client's state messages, by serial number.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn state_messages(&self, smsid: &SmsId) -> Result<Vec<StateMessageRecord>, Error> {
        self.store.read(|tx| tx.state_messages(known(tx, smsid)?.id))
    }

    /// The client's status messages.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn status_messages(&self, smsid: &SmsId) -> Result<Vec<StatusMessageRecord>, Error> {
        self.store.read(|tx| tx.status_messages(known(tx, smsid)?.id))
    }

    /// The files collected from the client.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn collected_files(&self, smsid: &SmsId) -> Result<Vec<CollectedFileRecord>, Error> {
        self.store.read(|tx| tx.files(known(tx, smsid)?.id))
    }

    /// The client's software metering records.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub fn metering(&self, smsid: &SmsId) -> Result<Vec<MeteringRecord>, Error> {
        self.store.read(|tx| tx.metering(known(tx, smsid)?.id))
    }

    /// Counts over the whole site (clients, messages by kind and outcome, stored items).
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub fn summary(&self) -> Result<crate::store::Summary, Error> {
        self.store.read(|tx| tx.summary())
    }

    /// Stores state messages that arrived at the fallback status point (`/SMS_FSP/.sms_fsp`):
    /// unauthenticated, attributed to the registered client named in the report's `ClientID`,
    /// deduplicated by serial number like any state message.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a body that is not a state-message report;
    /// [`Error::Refused`] for an unknown or blocked client.
    pub fn fallback_state_messages(
        &mut self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        use cmmp_model::MessageExt;
        let report = cmmp_model::state::Report::from_xml(text)
            .map_err(|e| Error::Invalid(format!("not a state-message report: {e}")))?;
        let client = report.report_header.identification.machine.client_id.value;
        let inbound = Inbound::StateMessages(cmmp_model::kinds::StateMessages(report));
        let env = Envelope { source_id: Some(client), ..Envelope::default() };
        self.accept(&inbound, &[], &env, now)
    }

    /// The message log, newest first: one client's, or everyone's (`None`), at most `limit`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown client; store failures.
    pub fn messages(&self, smsid: Option<&SmsId>, limit: u32) -> Result<Vec<MessageRecord>, Error> {
        self.store.read(|tx| match smsid {
            // Messages naming the SMSID count too: a refused one may have no client record.
            Some(s) => {
                let client = tx.client_by_smsid(s)?.map(|c| c.id);
                tx.messages(Some((client, s.to_string())), limit)
            }
            None => tx.messages(None, limit),
        })
    }

    // ---- admin: policies -----------------------------------------------------------------

    /// The site's policy assignments.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn policies(&self) -> Result<Vec<StoredPolicy>, Error> {
        self.store.read(|tx| tx.policies())
    }

    /// Adds or replaces a policy assignment (admin); a change moves the `ServerCookie`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the policy breaks a site file rule; store failures.
    pub fn set_policy(&mut self, policy: &PolicySpec, now: DateTime<Utc>) -> Result<(), Error> {
        let check = SiteConfig { policies: vec![policy.clone()], ..SiteConfig::default() };
        check.validate()?;
        self.store.write(|tx| {
            if tx.upsert_policy(policy, Source::Admin, now)? {
                tx.set_policy_changed(now)?;
            }
            Ok(())
        })
    }

    /// Removes a policy assignment; returns whether it existed. A removal moves the
    /// `ServerCookie`, so clients get a full reply without it.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn remove_policy(
        &mut self,
        assignment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.store.write(|tx| {
            let removed = tx.delete_policy(assignment_id)?;
            if removed {
                tx.set_policy_changed(now)?;
            }
            Ok(removed)
        })
    }
}

// ---- registration ------------------------------------------------------------------------

/// `AgentType` 4: an ISV proxy registering itself.
const AGENT_ISV_PROXY: i32 = 4;
/// `AgentType` 8: a client registered by an ISV proxy.
const AGENT_ISV_PROXY_CLIENT: i32 = 8;

type Registered = (ClientRegistrationResponse, Option<ClientId>, &'static str);

fn register_in(
    tx: &Tx<'_>,
    config: &SiteConfig,
    request: &ClientRegistrationRequest,
    env: &Envelope<'_>,
    now: DateTime<Utc>,
) -> Result<Registered, Denied> {
    let data = &request.data;
    let reply = |status: i32, smsid: Option<SmsId>, approval: Option<i32>| {
        let mut r = ClientRegistrationResponse::new(
            data.request_type.clone(),
            IsoTime::from_datetime(now),
            status,
        );
        r.smsid = smsid;
        r.approval_status = approval;
        r
    };
    let confirmation = match &data.request_type {
        RegistrationKind::Registration => false,
        RegistrationKind::Confirmation => true,
        RegistrationKind::Other(t) => {
            return Err(Refusal::Malformed { reason: format!("RequestType {t:?}") }.into());
        }
    };
    let hash = HashAlgorithm::from_property(data.hash_algorithm.as_deref())
        .map_err(|_| Refusal::Malformed { reason: "unknown Data/@HashAlgorithm".to_owned() })?;
    if config.switches.require_sha256 && hash == HashAlgorithm::Sha1 {
        return Err(Refusal::WeakHash.into());
    }
    let signing_der = data.certificates.signing.value.as_bytes();
    let signing_cert = X509::from_der(signing_der).map_err(|_| Refusal::InvalidCertificate {
        reason: "the signing certificate is not DER X.509",
    })?;
    let encryption_der = data.certificates.encryption.as_ref().map(|c| c.value.as_bytes());
    if let Some(der) = encryption_der {
        X509::from_der(der).map_err(|_| Refusal::InvalidCertificate {
            reason: "the encryption certificate is not DER X.509",
        })?;
    }
    if config.switches.check_certificate_validity {
        check_validity(&signing_cert, now)?;
    }
    let agent_type = data.agent_information.agent_type;

    // The signature: over the <Data> element as received, with the request's certificate or
    // the registered proxy's.
    let signed = match env.body_xml.and_then(data_element) {
        Some(text) => text.to_owned(),
        None => cmmp_transport::register::data_xml(data).map_err(|_| Refusal::Malformed {
            reason: "the Data element cannot be written".to_owned(),
        })?,
    };
    let signed = utf16le(&signed);
    let signature = request.signature.signature_value.as_bytes();
    let proxy = match request.signature.smsid {
        Some(proxy_id) => {
            if agent_type != AGENT_ISV_PROXY_CLIENT {
                return Err(Refusal::UnknownProxy.into());
            }
            let proxy = tx
                .client_by_smsid(&proxy_id)?
                .filter(|p| p.agent_type == AGENT_ISV_PROXY && p.registered && p.conflict.is_none())
                .ok_or(Refusal::UnknownProxy)?;
            if proxy.blocked {
                return Err(Refusal::Blocked.into());
            }
            verify_with(&proxy.signing_cert, hash, &signed, signature, "registration")?;
            Some(proxy)
        }
        None => {
            if agent_type == AGENT_ISV_PROXY_CLIENT {
                return Err(Refusal::UnknownProxy.into());
            }
            verify_with(signing_der, hash, &signed, signature, "registration")?;
            None
        }
    };

    let property = |name: &str| {
        data.discovery_properties
            .property
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.trim())
            .filter(|v| !v.is_empty())
    };
    let netbios = property("Netbios Name");
    let fqdn = property("FQ Name");
    let hardware_id = property("HardwareID1").filter(|h| {
        !config.switches.ignored_hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(h))
    });
    let agent_version = data.agent_information.agent_version.to_string();
    let hash_name = hash.name();

    // An ISV proxy registers with the certificate an administrator imported (source 002).
    if agent_type == AGENT_ISV_PROXY && config.switches.require_imported_proxy_certificates {
        let imported =
            tx.clients_by_signing_cert(signing_der)?.into_iter().find(|c| c.imported_proxy);
        let Some(mut p) = imported else {
            return Ok((reply(3, None, None), None, "ISV proxy certificate not imported"));
        };
        if p.blocked {
            return Ok((reply(3, None, None), Some(p.id), "blocked"));
        }
        p.registered = true;
        p.registered_at = p.registered_at.or(Some(now));
        p.encryption_cert = encryption_der.map(<[u8]>::to_vec);
        p.hash_algorithm = hash_name.to_owned();
        data.agent_information.agent_identity.clone_into(&mut p.agent_identity);
        p.agent_version.clone_from(&agent_version);
        p.netbios_name = netbios.map(str::to_owned).or(p.netbios_name);
        p.fqdn = fqdn.map(str::to_owned).or(p.fqdn);
        p.approved = true;
        tx.save_client(&p)?;
        return Ok((
            reply(0, Some(p.smsid), Some(approval_status(config, &p))),
            Some(p.id),
            "ISV proxy registered",
        ));
    }

    // A record this registration continues.
    let proposed = data.smsid.0;
    let existing = if confirmation {
        let Some(id) = proposed else {
            return Ok((reply(2, None, None), None, "confirmation without SMSID"));
        };
        let Some(c) = tx.client_by_smsid(&id)? else {
            return Ok((reply(2, None, None), None, "confirmation for an unknown SMSID"));
        };
        let same = match &proxy {
            Some(p) => c.proxy == Some(p.id),
            None => c.proxy.is_none() && c.signing_cert == signing_der,
        };
        if !same {
            return Err(Refusal::IdentityMismatch.into());
        }
        Some(c)
    } else {
        match &proxy {
            Some(p) => match proposed {
                Some(id) => tx.client_by_smsid(&id)?.filter(|c| c.proxy == Some(p.id)),
                None => None,
            },
            None => tx.clients_by_signing_cert(signing_der)?.into_iter().next(),
        }
    };

    if let Some(mut c) = existing {
        if c.blocked {
            return Ok((reply(3, None, None), Some(c.id), "blocked"));
        }
        if c.conflict.is_some() {
            return Ok((reply(1, Some(c.smsid), Some(0)), Some(c.id), "conflict parked"));
        }
        data.agent_information.agent_identity.clone_into(&mut c.agent_identity);
        c.agent_version.clone_from(&agent_version);
        c.agent_type = agent_type;
        c.encryption_cert = encryption_der.map(<[u8]>::to_vec);
        hash_name.clone_into(&mut c.hash_algorithm);
        c.netbios_name = netbios.map(str::to_owned).or(c.netbios_name);
        c.fqdn = fqdn.map(str::to_owned).or(c.fqdn);
        if c.hardware_id.is_none() {
            c.hardware_id = hardware_id.map(str::to_owned);
        }
        let complete = !env.force_registration_pending
            && (c.registered || confirmation || !config.switches.registration_pending);
        if complete && !c.registered {
            c.registered = true;
            c.registered_at = Some(now);
        }
        tx.save_client(&c)?;
        return Ok(if complete {
            (reply(0, Some(c.smsid), Some(approval_status(config, &c))), Some(c.id), "registered")
        } else {
            (reply(1, Some(c.smsid), Some(0)), Some(c.id), "registration pending")
        });
    }
    if confirmation {
        // Unreachable in practice: a confirmation either found its record or returned.
        return Ok((reply(2, None, None), None, "confirmation for an unknown SMSID"));
    }

    // A new record.
    let duplicates: Vec<ClientRecord> = match hardware_id {
        Some(h) => tx
            .clients_by_hardware_id(h)?
            .into_iter()
            .filter(|d| !d.obsolete && d.conflict.is_none())
            .collect(),
        None => Vec::new(),
    };
    if duplicates.iter().any(|d| d.blocked) {
        return Ok((reply(3, None, None), None, "hardware ID of a blocked client"));
    }
    let smsid = match proposed {
        Some(id) if tx.client_by_smsid(&id)?.is_none() => id,
        _ => fresh_smsid(tx)?,
    };
    let approved = match (config.mode, config.approval) {
        (SiteMode::Native, _) | (_, ApprovalPolicy::AutoAll) => true,
        (_, ApprovalPolicy::Trusted) => env.vdir == Vdir::WindowsAuth,
        (_, ApprovalPolicy::Manual) => false,
    };
    let park = !duplicates.is_empty() && config.conflict_resolution == ConflictResolution::Manual;
    let registered =
        !park && !config.switches.registration_pending && !env.force_registration_pending;
    let id = tx.insert_client(&NewClient {
        smsid,
        signing_cert: signing_der,
        encryption_cert: encryption_der,
        hash_algorithm: hash_name,
        hardware_id,
        agent_type,
        agent_identity: &data.agent_information.agent_identity,
        agent_version: &agent_version,
        netbios_name: netbios,
        fqdn,
        proxy: proxy.as_ref().map(|p| p.id),
        approved,
        registered,
        imported_proxy: false,
        now,
    })?;
    if let (true, Some(first), Some(h)) = (park, duplicates.first(), hardware_id) {
        tx.insert_conflict(id, &smsid, first.id, h, now)?;
        return Ok((
            reply(1, Some(smsid), Some(0)),
            Some(id),
            "duplicate hardware ID: conflict parked",
        ));
    }
    for mut d in duplicates {
        d.obsolete = true;
        tx.save_client(&d)?;
    }
    let record = tx
        .client(id)?
        .ok_or_else(|| Error::NotFound { what: "client record", id: id.to_string() })?;
    Ok(if registered {
        (reply(0, Some(smsid), Some(approval_status(config, &record))), Some(id), "registered")
    } else {
        (reply(1, Some(smsid), Some(0)), Some(id), "registration pending")
    })
}

/// `ApprovalStatus` of a registered record (see the module docs).
fn approval_status(config: &SiteConfig, client: &ClientRecord) -> i32 {
    match (config.mode, client.approved) {
        (SiteMode::Native, _) => 2,
        (SiteMode::Mixed, true) => 1,
        (SiteMode::Mixed, false) => -1,
    }
}

/// M5: the certificate must be valid now.
fn check_validity(cert: &X509, now: DateTime<Utc>) -> Result<(), Refusal> {
    let invalid = |reason| Refusal::InvalidCertificate { reason };
    let now =
        Asn1Time::from_unix(now.timestamp()).map_err(|_| invalid("the time is out of range"))?;
    let after_start = cert
        .not_before()
        .compare(&now)
        .map_err(|_| invalid("the validity period is unreadable"))?;
    let before_end =
        cert.not_after().compare(&now).map_err(|_| invalid("the validity period is unreadable"))?;
    if after_start.is_gt() {
        return Err(invalid("the signing certificate is not valid yet"));
    }
    if before_end.is_lt() {
        return Err(invalid("the signing certificate has expired"));
    }
    Ok(())
}

/// The `<Data …>…</Data>` element of a registration body, exactly as received.
fn data_element(body: &str) -> Option<&str> {
    let mut from = 0;
    let start = loop {
        let i = body.get(from..)?.find("<Data")? + from;
        match body[i + 5..].chars().next() {
            Some(c) if c.is_whitespace() || c == '>' || c == '/' => break i,
            Some(_) => from = i + 5,
            None => return None,
        }
    };
    const END: &str = "</Data>";
    let end = body[start..].find(END)? + start + END.len();
    Some(&body[start..end])
}

/// Verifies a byte-reversed signature with the public key of the certificate `der`.
fn verify_with(
    der: &[u8],
    hash: HashAlgorithm,
    data: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), Refusal> {
    let public = certificate_key(der).map_err(|e| Refusal::InvalidCertificate {
        reason: match e {
            KeyFailure::Certificate => "the registered certificate is not DER X.509",
            KeyFailure::Key => "the certificate's key is unreadable",
        },
    })?;
    verify_reversed(&public, hash, data, signature).map_err(|_| Refusal::BadSignature { what })
}

/// Why a certificate gives no public key.
#[derive(Debug, Clone, Copy)]
enum KeyFailure {
    /// Not DER X.509.
    Certificate,
    /// The key in it is unreadable.
    Key,
}

/// The public key of the certificate `der`, remembered by the DER bytes ([`KeyMemo`]):
/// every signed message is checked against a registered certificate, and decoding the
/// certificate (OpenSSL 3's decoders) costs several times the RSA verification itself.
fn certificate_key(der: &[u8]) -> Result<PKey<Public>, KeyFailure> {
    static MEMO: KeyMemo = KeyMemo::new();
    MEMO.get_or_read(der, |der| {
        let cert = X509::from_der(der).map_err(|_| KeyFailure::Certificate)?;
        cert.public_key().map_err(|_| KeyFailure::Key)
    })
}

/// A new SMSID no record has: `GUID:` and a random version-4 GUID.
fn fresh_smsid(tx: &Tx<'_>) -> Result<SmsId, Error> {
    for _ in 0..16 {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes).map_err(Error::crypto("generating an SMSID"))?;
        bytes[6] = (bytes[6] & 0x0F) | 0x40;
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        let id = SmsId::from_bytes(bytes);
        if tx.client_by_smsid(&id)?.is_none() {
            return Ok(id);
        }
    }
    Err(Error::Invalid("no free SMSID after 16 random draws".to_owned()))
}

// ---- common checks -----------------------------------------------------------------------

/// Whether `client` may do what `purpose` needs.
fn admit(
    config: &SiteConfig,
    client: &ClientRecord,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if client.blocked {
        return Err(Refusal::Blocked);
    }
    if client.conflict.is_some() {
        return Err(Refusal::ConflictParked);
    }
    if !client.registered {
        return Err(Refusal::RegistrationPending);
    }
    match purpose {
        Purpose::Policy => {
            if !client.approved {
                return Err(Refusal::NotApproved);
            }
            let delay = config.switches.policy_ready_delay_secs;
            if delay > 0 && !ready(client, delay, now) {
                return Err(Refusal::PolicyNotReady);
            }
        }
        Purpose::Inventory => {
            if !client.approved && !config.allow_unapproved_inventory {
                return Err(Refusal::NotApproved);
            }
        }
        Purpose::Report => {}
    }
    Ok(())
}

/// Whether `secs` have passed since the client registered.
fn ready(client: &ClientRecord, secs: u64, now: DateTime<Utc>) -> bool {
    let since = client.registered_at.unwrap_or(client.created);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    (now - since).num_seconds() >= secs
}

/// Checks the `clientauth` hook against the registered signing certificate (for an ISV
/// proxy's client: the proxy's, "Each message is signed by using the ISV proxy certificate",
/// source 002). A client may leave `Optional` kinds unsigned unless the site requires signing
/// (M14); `Required` kinds must be signed (M1).
fn verify_client_auth(
    tx: &Tx<'_>,
    config: &SiteConfig,
    client: &ClientRecord,
    env: &Envelope<'_>,
    signing: Signing,
) -> Result<(), Denied> {
    let Some(proof) = env.client_auth else {
        return match signing {
            Signing::Required => Err(Refusal::Unsigned.into()),
            Signing::Optional if config.switches.require_signing => Err(Refusal::Unsigned.into()),
            _ => Ok(()),
        };
    };
    let hash = HashAlgorithm::from_property(proof.hash_algorithm)
        .map_err(|_| Refusal::BadSignature { what: "HashAlgorithm" })?;
    if config.switches.require_sha256 && hash == HashAlgorithm::Sha1 {
        return Err(Refusal::WeakHash.into());
    }
    let cert = match client.proxy {
        Some(p) => {
            let proxy = tx.proxy_signer(p)?.ok_or(Refusal::UnknownProxy)?;
            // A blocked ISV proxy no longer speaks for its clients.
            if proxy.blocked {
                return Err(Refusal::Blocked.into());
            }
            proxy.signing_cert
        }
        None => client.signing_cert.clone(),
    };
    // Verified already on a decode thread with the very key registered: the same check would
    // give the same answer.
    if let Some(key) = proof.verified_by
        && certificate_key(&cert).is_ok_and(|registered| registered.public_eq(key))
    {
        return Ok(());
    }
    let signature = proof
        .payload_signature
        .and_then(|s| from_hex(s).ok())
        .ok_or(Refusal::BadSignature { what: "PayloadSignature" })?;
    verify_with(&cert, hash, proof.payload_as_sent, &signature, "PayloadSignature")?;
    Ok(())
}

fn log(
    tx: &Tx<'_>,
    env: &Envelope<'_>,
    endpoint: &str,
    kind: &str,
    client: Option<ClientId>,
    smsid: Option<&SmsId>,
    outcome: MessageOutcome,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    let message_id = env.message_id.map(|m| m.to_string());
    let smsid = smsid.map(ToString::to_string);
    tx.insert_message(&NewMessage {
        message_id: message_id.as_deref(),
        endpoint,
        kind,
        client,
        smsid: smsid.as_deref(),
        now,
        outcome,
        reason,
    })
}

/// The client with `smsid`, or [`Error::NotFound`].
fn known(tx: &Tx<'_>, smsid: &SmsId) -> Result<ClientRecord, Error> {
    tx.client_by_smsid(smsid)?
        .ok_or_else(|| Error::NotFound { what: "client", id: smsid.to_string() })
}

// ---- posts -------------------------------------------------------------------------------

/// What the site needs to know about a Post kind.
struct PostMeta {
    endpoint: &'static str,
    kind: &'static str,
    signing: Signing,
    purpose: Purpose,
    /// The client the body names.
    client: Option<SmsId>,
}

fn post_meta(inbound: &Inbound) -> Option<PostMeta> {
    fn report<K: Endpoint>(purpose: Purpose, header: &ReportHeader) -> PostMeta {
        PostMeta {
            endpoint: K::ENDPOINT,
            kind: K::NAME,
            signing: K::SIGNING,
            purpose,
            client: Some(header.identification.machine.client_id.value),
        }
    }
    Some(match inbound {
        Inbound::DdrReport(k) => report::<DdrReport>(Purpose::Report, &k.0.report_header),
        Inbound::HinvReport(k) => report::<HinvReport>(Purpose::Inventory, &k.0.report_header),
        Inbound::SinvReport(k) => report::<SinvReport>(Purpose::Inventory, &k.0.report_header),
        Inbound::FileCollection(k) => {
            report::<FileCollection>(Purpose::Inventory, &k.0.report_header)
        }
        Inbound::StateMessages(k) => report::<StateMessages>(Purpose::Report, &k.0.report_header),
        Inbound::SoftwareMetering(k) => {
            report::<SoftwareMetering>(Purpose::Inventory, &k.0.report_header)
        }
        Inbound::IdmifCollection(k) => {
            report::<IdmifCollection>(Purpose::Inventory, &k.0.report_header)
        }
        Inbound::StatusMessage(k) => PostMeta {
            endpoint: StatusMessage::ENDPOINT,
            kind: StatusMessage::NAME,
            signing: StatusMessage::SIGNING,
            purpose: Purpose::Report,
            client: k
                .0
                .properties
                .property
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case("ClientID"))
                .and_then(|p| p.value.trim().parse().ok()),
        },
        _ => return None,
    })
}

/// Inventory action IDs (protocol §4.4).
const ACTION_HARDWARE: &str = "{00000000-0000-0000-0000-000000000001}";
const ACTION_SOFTWARE: &str = "{00000000-0000-0000-0000-000000000002}";
const ACTION_DISCOVERY: &str = "{00000000-0000-0000-0000-000000000003}";
const ACTION_FILE_COLLECTION: &str = "{00000000-0000-0000-0000-000000000010}";
const ACTION_IDMIF: &str = "{00000000-0000-0000-0000-000000000011}";

fn accept_in(
    tx: &Tx<'_>,
    config: &SiteConfig,
    inbound: &Inbound,
    meta: &PostMeta,
    attachments: &[(String, Vec<u8>)],
    env: &Envelope<'_>,
    now: DateTime<Utc>,
    client_id: &mut Option<ClientId>,
) -> Result<Outcome, Denied> {
    if let (Some(a), Some(b)) = (env.source_id, meta.client)
        && a != b
    {
        return Err(Refusal::IdentityMismatch.into());
    }
    let smsid = env.source_id.or(meta.client).ok_or(Refusal::UnknownClient)?;
    let mut client = tx.client_by_smsid(&smsid)?.ok_or(Refusal::UnknownClient)?;
    *client_id = Some(client.id);
    verify_client_auth(tx, config, &client, env, meta.signing)?;
    admit(config, &client, meta.purpose, now)?;

    // Sequencing first: a refused report writes nothing but the resync request.
    let sequenced = match inbound {
        Inbound::DdrReport(k) => {
            Some(sequence(tx, &client, &k.0.report_header, ACTION_DISCOVERY, now)?)
        }
        Inbound::HinvReport(k) => {
            Some(sequence(tx, &client, &k.0.report_header, ACTION_HARDWARE, now)?)
        }
        Inbound::SinvReport(k) => {
            Some(sequence(tx, &client, &k.0.report_header, ACTION_SOFTWARE, now)?)
        }
        Inbound::FileCollection(k) => {
            Some(sequence(tx, &client, &k.0.report_header, ACTION_FILE_COLLECTION, now)?)
        }
        Inbound::IdmifCollection(k) => {
            Some(sequence(tx, &client, &k.0.report_header, ACTION_IDMIF, now)?)
        }
        _ => None,
    };
    // Validate delta contents before writing.
    let check_content = |content: &ChangeKind| match content {
        ChangeKind::Other(c) => {
            Err(Refusal::Malformed { reason: format!("Instance/@Content {c:?}") })
        }
        _ => Ok(()),
    };
    match inbound {
        Inbound::HinvReport(k) => {
            for i in &k.0.report_body.instance {
                check_content(&i.content)?;
            }
        }
        Inbound::SinvReport(k) => {
            for i in &k.0.report_body.instance {
                check_content(&i.content)?;
            }
        }
        _ => {}
    }

    let row = log(
        tx,
        env,
        meta.endpoint,
        meta.kind,
        Some(client.id),
        Some(&smsid),
        MessageOutcome::Stored,
        None,
        now,
    )?;
    let mut items = 0u32;
    let mut duplicates = 0u32;
    match inbound {
        Inbound::DdrReport(k) => {
            items = store_discovery(tx, config, &mut client, &k.0, env.report_xml, now)?;
        }
        Inbound::HinvReport(k) => {
            let Some(seq) = &sequenced else { return Err(not_sequenced()) };
            if seq.full {
                tx.clear_instances(client.id, &seq.action)?;
            }
            for inst in &k.0.report_body.instance {
                let key = hinv_key(config, &inst.class, &inst.any);
                items += apply_instance(
                    tx,
                    &client,
                    seq,
                    &inst.content,
                    &inst.class,
                    &key,
                    &inst.namespace,
                    element_xml(inst, "Instance")?,
                    now,
                )?;
            }
        }
        Inbound::SinvReport(k) => {
            let Some(seq) = &sequenced else { return Err(not_sequenced()) };
            if seq.full {
                tx.clear_instances(client.id, &seq.action)?;
            }
            for inst in &k.0.report_body.instance {
                let f = &inst.file_system_file;
                let key = format!("{}{}", f.path, f.name).to_lowercase();
                items += apply_instance(
                    tx,
                    &client,
                    seq,
                    &inst.content,
                    &inst.class,
                    &key,
                    &inst.namespace,
                    element_xml(inst, "Instance")?,
                    now,
                )?;
            }
        }
        Inbound::FileCollection(k) => {
            items = store_files(
                tx,
                &client,
                "filecoll",
                &k.0.report_body.collected_file,
                attachments,
                row,
                now,
            )?;
        }
        Inbound::IdmifCollection(k) => {
            items = store_files(
                tx,
                &client,
                "idmif",
                &k.0.report_body.collected_file,
                attachments,
                row,
                now,
            )?;
        }
        Inbound::StateMessages(k) => {
            for m in &k.0.report_body.state_message {
                let record = StateMessageRecord {
                    client: client.id,
                    serial: m.serial_number,
                    message_time: m.message_time.to_string(),
                    topic_id: m.topic.id.clone(),
                    topic_type: m.topic.r#type,
                    state_id: m.state.id,
                    xml: element_xml(m, "StateMessage")?,
                    received: now,
                };
                if tx.insert_state(&record, row)? {
                    items += 1;
                } else {
                    duplicates += 1;
                }
            }
        }
        Inbound::SoftwareMetering(k) => {
            for p in &k.0.report_body.product_info {
                let file = &p.software_file_info;
                for h in &file.historical_meter_data {
                    tx.insert_metering(
                        &MeteringRecord {
                            client: client.id,
                            product_name: p.product_name.clone(),
                            file_name: file.file_name.clone(),
                            metered_data_id: h.metered_data_id.clone(),
                            start_time: h.start_time.to_string(),
                            end_time: h.end_time.as_ref().map(ToString::to_string),
                            user_name: h.user_name.clone(),
                            status: h.status,
                            received: now,
                        },
                        row,
                    )?;
                    items += 1;
                }
            }
        }
        Inbound::StatusMessage(k) => {
            tx.insert_status(
                &StatusMessageRecord {
                    client: Some(client.id),
                    status_type: k.0.r#type.clone(),
                    xml: k.0.to_xml().map_err(Error::from)?,
                    received: now,
                },
                row,
            )?;
            items = 1;
        }
        _ => {}
    }
    if let Some(seq) = &sequenced {
        tx.set_inventory_version(client.id, &seq.action, seq.version, now)?;
    }
    tx.touch_client(client.id, now)?;
    Ok(Outcome::Stored { kind: meta.kind, items, duplicates })
}

/// An inventory report reached storage without sequencing (a bug, not a client error).
fn not_sequenced() -> Denied {
    Error::Invalid("an inventory report was not sequenced".to_owned()).into()
}

/// A report that passed sequencing.
struct Sequenced {
    action: String,
    full: bool,
    version: (u32, u32),
}

/// M12: a full report is always taken; a delta only as the successor of the stored version,
/// and not while a resync is requested.
fn sequence(
    tx: &Tx<'_>,
    client: &ClientRecord,
    header: &ReportHeader,
    default_action: &str,
    now: DateTime<Utc>,
) -> Result<Sequenced, Denied> {
    let action = match &header.content {
        Some(ReportHeaderContent::InventoryAction(a)) => a.inventory_action_id.to_string(),
        Some(ReportHeaderContent::FileCollectionAction(a)) => {
            format!("{}/{}", a.inventory_action_id, a.file_collection_action_id)
        }
        None => default_action.to_owned(),
    };
    let details: &ReportDetails = &header.report_details;
    let version = parse_version(&details.version);
    match &details.report_type {
        ReportKind::Full => {
            let version = version.ok_or_else(|| Refusal::Malformed {
                reason: format!("Version {:?} is not major.minor", details.version),
            })?;
            Ok(Sequenced { action, full: true, version })
        }
        ReportKind::Delta => {
            let stored = tx.inventory_version(client.id, &action)?;
            let next = match (&stored, version) {
                (
                    Some(InventoryVersion {
                        version: Some((major, minor)),
                        resync_requested: None,
                        ..
                    }),
                    Some(v),
                ) => minor.checked_add(1).is_some_and(|m| v == (*major, m)),
                _ => false,
            };
            match (next, version) {
                (true, Some(version)) => Ok(Sequenced { action, full: false, version }),
                _ => {
                    tx.request_resync(client.id, &action, now)?;
                    Err(Refusal::ResyncRequested { action }.into())
                }
            }
        }
        ReportKind::Other(t) => {
            Err(Refusal::Malformed { reason: format!("ReportType {t:?}") }.into())
        }
    }
}

/// `major.minor` ("2.25 … the 25th delta report", field notes §3).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Applies one instance of a full or delta report; returns 1 when something was written.
fn apply_instance(
    tx: &Tx<'_>,
    client: &ClientRecord,
    seq: &Sequenced,
    content: &ChangeKind,
    class: &str,
    key: &str,
    namespace: &str,
    xml: String,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    if matches!(content, ChangeKind::Deleted) {
        if seq.full {
            return Ok(0);
        }
        return Ok(u32::from(tx.delete_instance(client.id, &seq.action, class, key)?));
    }
    tx.upsert_instance(&InventoryInstance {
        client: client.id,
        action: seq.action.clone(),
        class: class.to_owned(),
        key: key.to_owned(),
        namespace: namespace.to_owned(),
        xml,
        updated: now,
    })?;
    Ok(1)
}

/// The key of a hardware inventory instance (see [`crate::site::InventorySettings`]).
fn hinv_key(config: &SiteConfig, class: &str, element: &AnyElement) -> String {
    let values =
        |name: &str| element.elements(name).map(|e| e.text.as_str()).collect::<Vec<_>>().join(",");
    match config.inventory.keys.get(class) {
        Some(keys) => {
            keys.iter().map(|k| format!("{k}={}", values(k))).collect::<Vec<_>>().join(";")
        }
        None => {
            let volatile = &config.inventory.volatile_properties;
            let mut names: Vec<&str> = element
                .children
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !volatile.iter().any(|v| v == n))
                .collect();
            names.sort_unstable();
            names.dedup();
            names.iter().map(|n| format!("{n}={}", values(n))).collect::<Vec<_>>().join(";")
        }
    }
}

/// The XML of one element of a report.
fn element_xml<T: XmlElement>(value: &T, name: &str) -> Result<String, Error> {
    let mut w = Writer::new();
    value.write_element(name, &mut w);
    Ok(w.finish()?)
}

/// Stores a DDR's discovery data and derives the hardware ID from it.
fn store_discovery(
    tx: &Tx<'_>,
    config: &SiteConfig,
    client: &mut ClientRecord,
    report: &cmmp_model::ddr::Report,
    received: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    use cmmp_model::ddr::InstanceContent;
    let mut d = DiscoveryRecord {
        client: client.id,
        netbios_name: Some(report.report_header.identification.machine.net_bios_name.clone())
            .filter(|n| !n.is_empty()),
        domain: None,
        ad_site: None,
        hardware_uuid: None,
        ip_addresses: Vec::new(),
        report_xml: match received {
            Some(text) => text.to_owned(),
            None => report.to_xml()?,
        },
        updated: now,
    };
    for inst in &report.report_body.instance {
        match &inst.content_2 {
            InstanceContent::CcmSystem(s) => {
                if let Some(n) = &s.name {
                    d.netbios_name = Some(n.clone());
                }
            }
            InstanceContent::CcmComputerSystem(s) => d.domain.clone_from(&s.domain),
            InstanceContent::CcmAdSiteInfo(s) => d.ad_site.clone_from(&s.ad_site_name),
            InstanceContent::Win32ComputerSystemProduct(p) => {
                d.hardware_uuid =
                    p.uuid.as_ref().map(|u| u.trim().to_uppercase()).filter(|u| !u.is_empty());
            }
            InstanceContent::Win32NetworkAdapterConfiguration(n) => {
                d.ip_addresses.extend(n.ip_address.iter().cloned());
            }
            _ => {}
        }
    }
    tx.upsert_discovery(&d)?;
    if client.hardware_id.is_none()
        && let Some(uuid) = &d.hardware_uuid
        && !config.switches.ignored_hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(uuid))
    {
        let hwid = format!("SMBIOS:{uuid}");
        let duplicates: Vec<ClientRecord> = tx
            .clients_by_hardware_id(&hwid)?
            .into_iter()
            .filter(|o| o.id != client.id && !o.obsolete && o.conflict.is_none())
            .collect();
        tx.set_hardware_id(client.id, &hwid)?;
        client.hardware_id = Some(hwid.clone());
        if let Some(first) = duplicates.first() {
            match config.conflict_resolution {
                ConflictResolution::Manual => {
                    tx.insert_conflict(client.id, &client.smsid, first.id, &hwid, now)?;
                }
                ConflictResolution::Automatic => {
                    for mut o in duplicates {
                        o.obsolete = true;
                        tx.save_client(&o)?;
                    }
                }
            }
        }
    }
    u32::try_from(report.report_body.instance.len())
        .map_err(|_| Error::Invalid("too many instances".to_owned()))
}

/// Stores collected files with their attachments (named by the decimal file ID).
fn store_files(
    tx: &Tx<'_>,
    client: &ClientRecord,
    collection: &str,
    files: &[cmmp_model::report_common::CollectedFile],
    attachments: &[(String, Vec<u8>)],
    row: i64,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    let mut n = 0;
    for f in files {
        let id = f.id.to_string();
        let content = attachments.iter().find(|(name, _)| *name == id).map(|(_, b)| b.clone());
        tx.insert_file(
            &CollectedFileRecord {
                client: client.id,
                collection: collection.to_owned(),
                file_id: f.id,
                name: f.name.clone(),
                path: f.path.clone(),
                size: f.size,
                last_write_date: f.last_write_date.to_string(),
                content,
                received: now,
            },
            row,
        )?;
        n += 1;
    }
    Ok(n)
}

// ---- policy ------------------------------------------------------------------------------

fn assignments_in(
    tx: &Tx<'_>,
    config: &SiteConfig,
    request: &RequestAssignments,
    env: &Envelope<'_>,
    now: DateTime<Utc>,
    client_id: &mut Option<ClientId>,
) -> Result<ReplyAssignments, Denied> {
    let machine = &request.identification.machine;
    let claimed = machine.client_id;
    if env.source_id.is_some_and(|s| s != claimed) {
        return Err(Refusal::IdentityMismatch.into());
    }
    let client = tx.client_by_smsid(&claimed)?.ok_or(Refusal::UnknownClient)?;
    *client_id = Some(client.id);
    verify_client_auth(tx, config, &client, env, Signing::Required)?;
    admit(config, &client, Purpose::Policy, now)?;

    let scope = match request.resource.resource_type {
        ResourceKind::User => PolicyScope::User,
        _ => PolicyScope::Machine,
    };
    let current = tx.policy_changed()?.map(cookie).unwrap_or_default();
    let delta = request.request_type == AssignmentRequestKind::OnUpdate
        && !current.is_empty()
        && request.server_cookie.trim() == current;
    let mut reply_machine = ReplyMachine::new(claimed);
    reply_machine.net_bios_name.clone_from(&machine.net_bios_name);
    reply_machine.fqdn.clone_from(&machine.fqdn);
    reply_machine.sid = Some(machine.sid.clone().unwrap_or_default());
    let mut identification = ReplyIdentification::new(reply_machine);
    if scope == PolicyScope::User {
        let user = &request.identification.user;
        identification.user =
            Some(ReplyUser { nt4_user_name: user.nt4_user_name.clone(), sid: user.sid.clone() });
    }
    let mut reply = ReplyAssignments::new(
        "1.00".to_owned(),
        if delta { AssignmentReplyKind::Delta } else { AssignmentReplyKind::Full },
        identification,
        config.policy_source(),
        PolicyResource::new(request.resource.resource_type.clone()),
        current,
    );
    if !delta {
        for stored in tx.policies()? {
            let p = &stored.spec;
            if p.scope != scope
                || (p.ready_after_secs > 0 && !ready(&client, p.ready_after_secs, now))
            {
                continue;
            }
            let hash = format!("SHA256:{}", policy_hash(&p.body)?);
            let mut location = PolicyLocation::new(policy_url(p));
            location.policy_hash = Some(hash.clone());
            location.policy_hash_ex = Some(hash);
            let mut policy = AssignedPolicy::new(
                p.policy_id.clone(),
                p.version.clone(),
                p.category.clone(),
                location,
            );
            policy.policy_type = Some(p.scope.as_str().to_owned());
            policy.policy_flags = (p.flags != 0).then_some(p.flags);
            reply.policy_assignment.push(PolicyAssignment::new(p.assignment_id.clone(), policy));
        }
    }
    tx.touch_client(client.id, now)?;
    Ok(reply)
}

/// `SignatureAlgorithm/@AlgID` of an assignment signature: `CALG_SHA_256` (field notes M16).
pub const ASSIGNMENT_SIGNATURE_ALG_ID: &str = "32780";
/// `SignatureAlgorithm` text of an assignment signature: sha256WithRSAEncryption (M16).
pub const ASSIGNMENT_SIGNATURE_OID: &str = "1.2.840.113549.1.1.11";
/// Assignment signatures a site keeps before it starts over.
const MAX_ASSIGNMENT_SIGNATURES: usize = 4096;

/// The `PolicyAssignment` element as a reply writes it: the bytes (in UTF-16LE) that the
/// emulator signs for field notes M16.
///
/// # Errors
///
/// [`Error::Encode`] when the assignment holds a character XML cannot carry.
pub fn assignment_xml(assignment: &PolicyAssignment) -> Result<String, Error> {
    let mut w = Writer::new();
    assignment.write_element("PolicyAssignment", &mut w);
    w.finish().map_err(Error::from)
}

/// `http://<mp>/SMS_MP/.sms_pol?<PolicyID>.<version, '.' as '_'>` (protocol §4.2.2).
fn policy_url(p: &PolicySpec) -> String {
    format!("http://<mp>/SMS_MP/.sms_pol?{}.{}", p.policy_id, p.version.replace('.', "_"))
}

/// `yyyy-MM-dd HH:mm:ss.fff` (protocol §4.2.1).
fn cookie(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Upper-case hex SHA-256 of the body as served in plain text.
fn policy_hash(body: &str) -> Result<String, Error> {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &utf16le_nul(body))
        .map_err(Error::crypto("hashing a policy body"))?;
    Ok(cmmp_transport::sign::hex_upper(&digest))
}

fn policy_body_in(
    tx: &Tx<'_>,
    config: &SiteConfig,
    request: &PolicyBodyRequest<'_>,
    now: DateTime<Utc>,
    client: &mut Option<ClientRecord>,
) -> Result<PolicyBody, Denied> {
    let stored = tx.policy_by_id(request.policy_id)?.ok_or(Refusal::UnknownPolicy)?;
    let spec = &stored.spec;
    if let Some(v) = request.version
        && v.replace('_', ".") != spec.version
    {
        return Err(Refusal::UnknownPolicy.into());
    }
    *client = authenticate_token(tx, request.headers)?;
    // A plain policy is served to anyone, as to an anonymous GET; a blocked client is refused
    // everywhere; a policy that needs signed headers needs a client allowed policy.
    match client.as_ref() {
        Some(c) if c.blocked => return Err(Refusal::Blocked.into()),
        Some(c) if spec.needs_auth() => admit(config, c, Purpose::Policy, now)?,
        Some(_) => {}
        None if spec.needs_auth() => return Err(Refusal::PolicyAuthRequired.into()),
        None => {}
    }
    let plain = utf16le_nul(&spec.body);
    if !spec.is_secret() {
        return Ok(PolicyBody { bytes: plain, encrypted: false });
    }
    let Some(c) = client.as_ref() else { return Err(Refusal::PolicyAuthRequired.into()) };
    let der = c.encryption_cert.as_deref().unwrap_or(&c.signing_cert);
    let cert = X509::from_der(der).map_err(|_| Refusal::InvalidCertificate {
        reason: "the registered encryption certificate is not DER X.509",
    })?;
    let bytes = cmmp_transport::cms::encrypt_to(&[cert], &plain).map_err(Error::from)?;
    Ok(PolicyBody { bytes, encrypted: true })
}

/// The client the policy download headers authenticate (protocol §3.7, all three schemes),
/// `None` without token headers.
fn authenticate_token(
    tx: &Tx<'_>,
    headers: &[(String, String)],
) -> Result<Option<ClientRecord>, Denied> {
    let header = |name: &str| {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    };
    let bad = || Denied::Refused(Refusal::BadSignature { what: "policy token" });
    let hash = HashAlgorithm::Sha256;
    if let (Some(token), Some(sig)) = (header("ClientToken"), header("ClientTokenSignature")) {
        // Scheme 1 `GUID:<id>;<ts>;2` (with DigestInfo), scheme 3 `{<id>};<ts>` (without).
        let id = token.split(';').next().unwrap_or_default();
        let id = id.trim_start_matches('{').trim_end_matches('}');
        let smsid: SmsId = id.parse().map_err(|_| bad())?;
        let client = tx.client_by_smsid(&smsid)?.ok_or(Refusal::UnknownClient)?;
        let cert = signing_cert_of(tx, &client)?;
        let signature = from_hex(sig).map_err(|_| bad())?;
        let data = utf16le_nul(token);
        let public = public_key(&cert)?;
        let ok = verify_reversed(&public, hash, &data, &signature).is_ok()
            || verify_reversed_no_oid(&public, hash, &data, &signature).is_ok();
        return if ok { Ok(Some(client)) } else { Err(bad()) };
    }
    if let (Some(id), Some(id_sig), Some(ts), Some(ts_sig)) = (
        header("CCMClientID"),
        header("CCMClientIDSignature"),
        header("CCMClientTimestamp"),
        header("CCMClientTimestampSignature"),
    ) {
        // Scheme 2: each value signed without DigestInfo.
        let smsid: SmsId = id.parse().map_err(|_| bad())?;
        let client = tx.client_by_smsid(&smsid)?.ok_or(Refusal::UnknownClient)?;
        let public = public_key(&signing_cert_of(tx, &client)?)?;
        for (value, sig) in [(id, id_sig), (ts, ts_sig)] {
            let signature = from_hex(sig).map_err(|_| bad())?;
            verify_reversed_no_oid(&public, hash, &utf16le_nul(value), &signature)
                .map_err(|_| bad())?;
        }
        return Ok(Some(client));
    }
    Ok(None)
}

/// The certificate that signs for `client`: its own, or its ISV proxy's.
fn signing_cert_of(tx: &Tx<'_>, client: &ClientRecord) -> Result<Vec<u8>, Denied> {
    match client.proxy {
        Some(p) => Ok(tx.proxy_signer(p)?.map(|p| p.signing_cert).ok_or(Refusal::UnknownProxy)?),
        None => Ok(client.signing_cert.clone()),
    }
}

fn public_key(der: &[u8]) -> Result<PKey<Public>, Refusal> {
    certificate_key(der).map_err(|_| Refusal::InvalidCertificate {
        reason: "the registered certificate is unreadable",
    })
}

// ---- locations ---------------------------------------------------------------------------

fn locate_in(
    config: &SiteConfig,
    inbound: &Inbound,
    now: DateTime<Utc>,
) -> Result<LocationReply, Refusal> {
    Ok(match inbound {
        Inbound::ContentLocation(k) => LocationReply::Content(content_location(config, &k.0, now)?),
        Inbound::WsusLocation(k) => {
            let (local, fallback) = groups_for(config, Some(&k.0.client_location_info));
            let mut sups = sups_of(config, &local);
            if sups.is_empty() {
                sups = sups_of(config, &fallback);
            }
            let mut site = WsusSite::new(MpSite::new(config.site_code.to_string()));
            site.location_records = Some(WsusLocationRecords {
                location_record: sups
                    .into_iter()
                    .map(|s| {
                        let mut r = WsusLocationRecord::new(s.wsus_url());
                        r.server_name = Some(s.host.to_string());
                        r.version = Some(s.version);
                        r
                    })
                    .collect(),
            });
            LocationReply::Wsus(WsusLocationReply::new(
                "1.00".to_owned(),
                WsusSites { site: vec![site] },
            ))
        }
        Inbound::LocalMpLocation(_) => {
            let mut reply = LocalMpLocationReply::new(LocalMpSites {
                site: vec![LocalMpSite::new(mp_site(config))],
            });
            reply.schema_version = Some("1.00".to_owned());
            LocationReply::LocalMp(reply)
        }
        Inbound::EnumerateMpLocation(_) => {
            let mp = &config.management_point;
            let record = MpLocationRecord {
                intranet_name: Some(ValueRef::new(mp.host.to_string())),
                internet_name: mp.internet_host.as_ref().map(|h| ValueRef::new(h.to_string())),
                version: Some(mp.build_number),
                capabilities: Some(ssl_capabilities(config.mode == SiteMode::Native)),
                windows: Some(WindowsTrust::new(0)),
            };
            LocationReply::EnumerateMp(EnumerateMpLocationReply {
                schema_version: Some("1.00".to_owned()),
                mp_site: Some(mp_site(config)),
                location_records: Some(MpLocationRecords { location_record: vec![record] }),
            })
        }
        Inbound::SiteInformation(k) => {
            let ours = k.0.site_code.name.trim().eq_ignore_ascii_case(config.site_code.as_str());
            LocationReply::SiteInfo(SiteInfoReply {
                schema_version: Some("1.00".to_owned()),
                site: ours.then(|| site_details(config)),
            })
        }
        Inbound::AssignedSite(k) => {
            let (local, fallback) = groups_for(config, Some(&k.0.client_location_info));
            let served = !local.is_empty() || !fallback.is_empty();
            let mp = &config.management_point;
            LocationReply::AssignedSite(AssignedSiteReply {
                schema_version: Some("1.00".to_owned()),
                site: served.then(|| AssignedSiteDetails {
                    site_code: Some(config.site_code.to_string()),
                    version: Some(mp.site_version.clone()),
                    build_number: Some(mp.build_number),
                    default_mp: Some(mp.host.to_string()),
                    capabilities: Some(ssl_capabilities(config.mode == SiteMode::Native)),
                }),
            })
        }
        _ => return Err(Refusal::Malformed { reason: "not a location request".to_owned() }),
    })
}

fn content_location(
    config: &SiteConfig,
    request: &ContentLocationRequest,
    now: DateTime<Utc>,
) -> Result<ContentLocationReply, Refusal> {
    let (local, fallback) = groups_for(config, Some(&request.client_location_info));
    let content = match &request.package {
        Some(p) => {
            let id = p.id.trim();
            if id.is_empty()
                || !id.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'-' | b'.' | b':' | b'{' | b'}')
                })
            {
                return Err(Refusal::Malformed { reason: "Package/@ID".to_owned() });
            }
            Some(match id.strip_prefix("UID:") {
                Some(uid) => format!("{uid}.{}", p.version),
                None => id.to_owned(),
            })
        }
        None => None,
    };
    let mut records = Vec::new();
    let mut seen = Vec::new();
    for (groups, locality) in [(&local, "LOCAL"), (&fallback, "FALLBACK")] {
        for g in groups.iter() {
            for name in &g.distribution_points {
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
                let (Some(dp), Some(content)) =
                    (config.distribution_points.iter().find(|d| &d.name == name), &content)
                else {
                    continue;
                };
                let scheme = if dp.https { "https" } else { "http" };
                let mut url =
                    LocationUrl::new(format!("{scheme}://{}/SMS_DP_SMSPKG$/{content}", dp.host));
                url.signature =
                    Some(format!("{scheme}://{}/SMS_DP_SMSSIG$/{content}.tar", dp.host));
                let mut record = ContentLocationRecord::default();
                record.url.push(url);
                if let Some(share) = &dp.smb_share {
                    record
                        .smb_path
                        .push(NameRef::new(format!("\\\\{}\\{share}\\{content}", dp.host)));
                }
                record.metric = Some(ValueRef::new(String::new()));
                record.version = Some(dp.version);
                record.capabilities = Some(ssl_capabilities(dp.https));
                record.server_remote_name = Some(dp.host.to_string());
                record.dp_type = Some("SERVER".to_owned());
                record.windows = Some(WindowsTrust::new(0));
                record.locality = Some(locality.to_owned());
                records.push(record);
            }
        }
    }
    let mut site = ContentSite::new(mp_site(config));
    site.location_records = Some(ContentLocationRecords { location_record: records });
    let mut reply = ContentLocationReply::new("1.00".to_owned(), ContentSites { site: vec![site] });
    reply.boundary_groups = Some(ReplyBoundaryGroups {
        boundary_group_list_retrieve_time: Some(now.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()),
        boundary_group: local
            .iter()
            .map(|g| {
                let mut b = ReplyBoundaryGroup::new(g.id);
                b.group_guid.clone_from(&g.guid);
                b
            })
            .collect(),
    });
    reply.related_content_i_ds = Some(RelatedContentIds::default());
    Ok(reply)
}

/// The boundary groups serving a client: those of the boundaries containing one of its
/// addresses or its AD site, and the fallback groups not among them.
fn groups_for<'c>(
    config: &'c SiteConfig,
    info: Option<&ClientLocationInfo>,
) -> (Vec<&'c BoundaryGroup>, Vec<&'c BoundaryGroup>) {
    let addresses: Vec<IpAddr> = info
        .and_then(|i| i.ip_addresses.as_ref())
        .map(|a| a.ip_address.iter().filter_map(|ip| ip.address.trim().parse().ok()).collect())
        .unwrap_or_default();
    let ad_site = info.and_then(|i| i.ad_site.as_ref()).map(|s| s.name.trim());
    let mut local: Vec<&BoundaryGroup> = Vec::new();
    for b in &config.boundaries {
        let by_ip = b.subnets.iter().any(|s| addresses.iter().any(|a| s.contains(*a)));
        let by_site =
            ad_site.is_some_and(|site| b.ad_sites.iter().any(|s| s.eq_ignore_ascii_case(site)));
        if !(by_ip || by_site) {
            continue;
        }
        for name in &b.groups {
            if let Some(g) = config.boundary_groups.iter().find(|g| &g.name == name)
                && !local.iter().any(|l| l.name == g.name)
            {
                local.push(g);
            }
        }
    }
    let fallback = config
        .boundary_groups
        .iter()
        .filter(|g| g.fallback && !local.iter().any(|l| l.name == g.name))
        .collect();
    (local, fallback)
}

fn sups_of<'c>(
    config: &'c SiteConfig,
    groups: &[&BoundaryGroup],
) -> Vec<&'c crate::site::SoftwareUpdatePoint> {
    let mut out: Vec<&crate::site::SoftwareUpdatePoint> = Vec::new();
    for g in groups {
        for name in &g.software_update_points {
            if let Some(s) = config.software_update_points.iter().find(|s| &s.name == name)
                && !out.iter().any(|o| o.name == s.name)
            {
                out.push(s);
            }
        }
    }
    out
}

fn mp_site(config: &SiteConfig) -> MpSite {
    let mut site = MpSite::new(config.site_code.to_string());
    site.master_site_code = Some(config.site_code.to_string());
    site.site_locality = Some("LOCAL".to_owned());
    let (http, https) = config.management_point.effective();
    site.iis_prefered_port = Some(http);
    site.iisssl_prefered_port = Some(https);
    site
}

fn ssl_capabilities(ssl: bool) -> Capabilities {
    Capabilities {
        schema_version: Some("1.0".to_owned()),
        property: vec![CapabilityProperty::new(
            "SSLState".to_owned(),
            if ssl { "1" } else { "0" }.to_owned(),
        )],
    }
}

fn site_details(config: &SiteConfig) -> SiteDetails {
    let mp = &config.management_point;
    let (http, https) = mp.effective();
    let native = config.mode == SiteMode::Native;
    SiteDetails {
        site_code: Some(config.site_code.to_string()),
        version: Some(mp.site_version.clone()),
        build_number: Some(mp.build_number),
        default_mp: Some(mp.host.to_string()),
        capabilities: Some(ssl_capabilities(native)),
        client_operational_settings: Some(ClientOperationalSettings {
            version: Some("1".to_owned()),
            security_configuration: Some(SecurityConfiguration {
                security_mode_mask: Some(i32::from(native)),
                security_mode_mask_ex: Some(mp.security_mode_mask_ex),
                http_port: Some(http),
                https_port: Some(https),
                certificate_store_name: Some(String::new()),
                certificate_selection_criteria: Some(String::new()),
                certificate_select_first_flag: Some(1),
                site_signing_cert: None,
            }),
        }),
    }
}

// ---- text --------------------------------------------------------------------------------

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16le_nul(text: &str) -> Vec<u8> {
    let mut out = utf16le(text);
    out.extend_from_slice(&[0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::{PolicyBodyRequest, data_element, parse_version};

    #[test]
    fn the_data_element_is_cut_exactly() {
        let body = "<ClientRegistrationRequest><Data SMSID=\"\"><X/></Data><Signature/></ClientRegistrationRequest>";
        assert_eq!(data_element(body), Some("<Data SMSID=\"\"><X/></Data>"));
        assert_eq!(data_element("<DataX/><Data><a/></Data>"), Some("<Data><a/></Data>"));
        assert_eq!(data_element("<Data>"), None);
        assert_eq!(data_element("<Data"), None);
    }

    #[test]
    fn versions_are_major_dot_minor() {
        assert_eq!(parse_version("2.25"), Some((2, 25)));
        assert_eq!(parse_version(" 1.0 "), Some((1, 0)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("a.b"), None);
    }

    #[test]
    fn policy_queries_split_at_the_last_dot() {
        let q = PolicyBodyRequest::from_query("{f8a3c1e2-5b6d}.1_00", &[]);
        assert_eq!((q.policy_id, q.version), ("{f8a3c1e2-5b6d}", Some("1_00")));
        let q = PolicyBodyRequest::from_query("P0100003", &[]);
        assert_eq!((q.policy_id, q.version), ("P0100003", None));
    }
}
