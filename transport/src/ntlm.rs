//! NTLM (NTLMv2) messages for HTTP `NTLM` and `Negotiate` authentication on the
//! `/ccm_system_windowsauth/` vdir (protocol §2.1; field notes M9; MS-NLMP).
//!
//! Pure functions over bytes (house style HS-51): the client builds the `NEGOTIATE` (type 1)
//! and `AUTHENTICATE` (type 3) messages and reads the `CHALLENGE` (type 2); the emulator
//! builds the challenge and verifies an `AUTHENTICATE` message against its accounts. Only
//! NTLMv2 responses are produced and accepted (no NTLMv1, no LM): every Windows since Vista
//! refuses the older ones by default (`LmCompatibilityLevel` 3 and up). Neither session
//! signing nor sealing is negotiated: HTTP authentication needs neither, so there is no
//! session key exchange.
//!
//! **Extended protection (field notes §5 item 8).** The client's `AUTHENTICATE` message
//! carries, inside the NTLMv2 blob that `NTProofStr` covers (MS-NLMP 3.1.5.1.2):
//! - `MsvAvChannelBindings`: the MD5 of the TLS channel's `tls-server-end-point` binding
//!   (RFC 5929 §4.1: a hash of the server certificate the client saw; see
//!   [`tls_channel_binding`]), or 16 zero bytes over plain HTTP. A server that checks it
//!   refuses a logon relayed from another TLS channel, which is the relay attack on
//!   `*_WindowsAuth` vdirs.
//! - `MsvAvTargetName`: the service the client meant, `HTTP/<mp>`.
//! - `MsvAvFlags` with the MIC bit, and the `MIC` field: an HMAC-MD5 under the session key
//!   over the three messages ([`mic`]), so the negotiated flags and the challenge cannot be
//!   changed on the way. Removing the MIC bit breaks `NTProofStr`.
//!
//! The server side ([`Authenticate::logon`]) checks the MIC when the client claims one, and
//! the channel binding as its [`ExtendedProtection`] setting says (IIS's "Extended
//! Protection" Off, Accept and Required).
//!
//! **Negotiate.** HTTP `Negotiate` (RFC 4559) wraps SPNEGO, which picks Kerberos when a KDC
//! can issue a ticket for `HTTP/<mp>` and NTLM otherwise. Windows accepts a raw NTLM message
//! in a `Negotiate` header, and that is what this crate sends and what the emulator answers.
//! **Kerberos is not implemented**: it needs a KDC (a domain controller) to obtain a service
//! ticket, a keytab or password-derived key on the MP's side, and clock and DNS
//! agreement, none of which exists on the loopback this crate is tested on. Prefer HTTPS with
//! mutual TLS over NTLM where a site allows it (field notes §5 item 8).
//!
//! **Crypto.** MD4 (for the NT hash) comes from the RustCrypto `md4` crate because OpenSSL 3
//! provides MD4 only in its legacy provider, which distributions do not load by default.
//! HMAC-MD5 comes from OpenSSL (MD5 is in its default provider), as do the random client
//! challenge and the constant-time comparison.
//!
//! # Examples
//!
//! ```
//! use cmmp_transport::ntlm::{self, Credentials};
//!
//! let creds = Credentials::new("Domain", "User", "Password");
//! let ntowf = ntlm::ntowf_v2(&creds);
//! assert_eq!(ntowf[..4], [0x0c, 0x86, 0x8a, 0x40]);
//! assert_eq!(&ntlm::negotiate()[..8], b"NTLMSSP\0");
//! ```

use core::fmt;

use md4::{Digest as _, Md4};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;

use crate::sign::SecretString;

/// The signature every NTLM message starts with.
const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// `NTLMSSP_NEGOTIATE_UNICODE`.
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
/// `NTLM_NEGOTIATE_OEM`.
const NEGOTIATE_OEM: u32 = 0x0000_0002;
/// `NTLMSSP_REQUEST_TARGET`.
const REQUEST_TARGET: u32 = 0x0000_0004;
/// `NTLMSSP_NEGOTIATE_NTLM`.
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
/// `NTLMSSP_NEGOTIATE_ALWAYS_SIGN`.
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
/// `NTLMSSP_TARGET_TYPE_DOMAIN`.
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
/// `NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY`.
const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
/// `NTLMSSP_NEGOTIATE_TARGET_INFO`.
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
/// `NTLMSSP_NEGOTIATE_VERSION`.
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
/// `NTLMSSP_NEGOTIATE_128`.
const NEGOTIATE_128: u32 = 0x2000_0000;
/// `NTLMSSP_NEGOTIATE_56`.
const NEGOTIATE_56: u32 = 0x8000_0000;

/// The flags of the client's `NEGOTIATE` message.
const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// The `VERSION` structure the client sends (MS-NLMP 2.2.2.10): Windows 10.0, build 20348,
/// `NTLMSSP_REVISION_W2K3`. Only informational, but Windows clients always send it, and the
/// `MIC` field follows it.
const VERSION: [u8; 8] = [10, 0, 0x7C, 0x4F, 0, 0, 0, 0x0F];

/// The AV pair IDs used here (MS-NLMP 2.2.2.1).
const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_TARGET_NAME: u16 = 9;
const AV_CHANNEL_BINDINGS: u16 = 10;

/// `MsvAvFlags` bit: the `AUTHENTICATE` message carries a `MIC`.
const AV_FLAG_MIC: u32 = 0x0000_0002;

/// Where the `MIC` sits in an `AUTHENTICATE` message: after the 64-byte header and the
/// 8-byte `Version`.
const MIC_AT: usize = 72;
/// Where the payload of the client's `AUTHENTICATE` message starts (header, version, MIC).
const AUTHENTICATE_HEADER: usize = MIC_AT + 16;

/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// A malformed or unacceptable NTLM message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NtlmError {
    /// Not an NTLM message of the expected type, or a field points outside the message.
    #[error("malformed NTLM {expected} message: {reason}")]
    Malformed {
        /// The message type expected (`CHALLENGE`, `AUTHENTICATE`, …).
        expected: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The `AUTHENTICATE` message carries no NTLMv2 response (NTLMv1 or anonymous).
    #[error("the NTLM response is not NTLMv2 (NTLMv1 and anonymous logons are refused)")]
    NotV2,
    /// The OpenSSL HMAC failed.
    #[error("HMAC-MD5: {0}")]
    Crypto(String),
    /// The server certificate cannot be read for the channel binding.
    #[error("the TLS channel binding cannot be computed: {0}")]
    ChannelBinding(String),
}

/// Why a server refused an `AUTHENTICATE` message ([`Authenticate::logon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogonError {
    /// Another user name, or a response that does not prove the password.
    #[error("the user is unknown or the NTLMv2 response does not prove the password")]
    BadResponse,
    /// The `MIC` does not cover the three messages as the server sent and received them.
    #[error("the MIC does not match the messages (tampered, or from another exchange)")]
    MicMismatch,
    /// The client sent no channel binding where the server requires one.
    #[error("no channel binding where extended protection is required")]
    ChannelBindingMissing,
    /// The channel binding names another TLS channel (a relayed logon).
    #[error("the channel binding names another channel (a relayed logon)")]
    ChannelBindingMismatch,
}

/// How a server treats the client's channel binding (IIS's "Extended Protection" setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtendedProtection {
    /// Not checked.
    Off,
    /// Checked when the client sends one (a non-zero `MsvAvChannelBindings`): it must name
    /// this channel. Clients that send none are let in, as IIS's "Accept" does.
    #[default]
    Accept,
    /// Over TLS, every client must send the binding of this channel.
    Required,
}

/// A Windows account: domain, user name and password. `Debug` redacts the password.
#[derive(Clone)]
pub struct Credentials {
    /// The domain (NetBIOS name, e.g. `CORP`), or empty for a local account.
    pub domain: String,
    /// The user name (`sccm-naa`, or a machine account `PC01$`).
    pub user: String,
    /// The password.
    password: std::sync::Arc<SecretString>,
}

impl Credentials {
    /// An account.
    pub fn new(domain: &str, user: &str, password: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            user: user.to_owned(),
            password: std::sync::Arc::new(SecretString::new(password.to_owned())),
        }
    }

    /// The password.
    pub fn password(&self) -> &str {
        self.password.expose()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// UTF-16LE bytes of `text`.
fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// HMAC-MD5 of the concatenated `parts` under `key`.
fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 16], NtlmError> {
    let crypto = |e: openssl::error::ErrorStack| NtlmError::Crypto(e.to_string());
    let pkey = PKey::hmac(key).map_err(crypto)?;
    let mut signer = openssl::sign::Signer::new(MessageDigest::md5(), &pkey).map_err(crypto)?;
    for part in parts {
        signer.update(part).map_err(crypto)?;
    }
    let mac = signer.sign_to_vec().map_err(crypto)?;
    mac.try_into().map_err(|_| NtlmError::Crypto("HMAC-MD5 is not 16 bytes".to_owned()))
}

/// `NTOWFv2` (MS-NLMP 3.3.2): `HMAC_MD5(MD4(UTF-16LE(password)), UTF-16LE(upper(user) +
/// domain))`, the key of NTLMv2 (and LMv2) responses.
pub fn ntowf_v2(creds: &Credentials) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(creds.password())).into();
    let identity = utf16le(&format!("{}{}", creds.user.to_uppercase(), creds.domain));
    // HMAC over an in-memory key cannot fail short of OpenSSL being unusable, in which case
    // the response simply does not verify.
    hmac_md5(&nt_hash, &[&identity]).unwrap_or_default()
}

/// The current time as a Windows FILETIME (100 ns since 1601).
pub fn filetime_now() -> u64 {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (since.as_secs() + FILETIME_UNIX_OFFSET) * 10_000_000 + u64::from(since.subsec_nanos() / 100)
}

/// The NTLMv2 responses of one logon (MS-NLMP 3.3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct V2Response {
    /// `LmChallengeResponse`: the LMv2 proof and the client challenge (24 bytes).
    pub lm: Vec<u8>,
    /// `NtChallengeResponse`: `NTProofStr` followed by the client blob (`temp`).
    pub nt: Vec<u8>,
    /// `SessionBaseKey`.
    pub session_base_key: [u8; 16],
}

impl fmt::Debug for V2Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V2Response").field("nt_len", &self.nt.len()).finish_non_exhaustive()
    }
}

/// Computes the NTLMv2 responses to `server_challenge` (MS-NLMP 3.3.2): `target_info` is the
/// `TargetInfo` of the challenge, sent back inside the blob; `time` a FILETIME.
///
/// # Errors
///
/// [`NtlmError::Crypto`] when OpenSSL cannot compute an HMAC.
pub fn v2_response(
    creds: &Credentials,
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: u64,
    target_info: &[u8],
) -> Result<V2Response, NtlmError> {
    let key = ntowf_v2(creds);
    let mut temp = Vec::with_capacity(32 + target_info.len());
    temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&time.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(&key, &[server_challenge, &temp])?;
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&temp);
    let mut lm = hmac_md5(&key, &[server_challenge, client_challenge])?.to_vec();
    lm.extend_from_slice(client_challenge);
    let session_base_key = hmac_md5(&key, &[&proof])?;
    Ok(V2Response { lm, nt, session_base_key })
}

/// The `NEGOTIATE` (type 1) message: Unicode, NTLM, extended session security, no domain or
/// workstation, and the client's `Version`. The `MIC` covers these exact bytes, so a client
/// passes the same bytes to [`authenticate`].
pub fn negotiate() -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&1_u32.to_le_bytes());
    out.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    // Empty domain and workstation buffers, their offsets at the end of the message.
    for _ in 0..2 {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&40_u32.to_le_bytes());
    }
    out.extend_from_slice(&VERSION);
    out
}

/// What the client binds its logon to (MS-NLMP 3.1.5.1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The MD5 channel binding hash of the TLS connection ([`tls_channel_binding`]); `None`
    /// over plain HTTP (16 zero bytes are sent).
    pub channel: Option<[u8; 16]>,
    /// The service principal name the client means, `HTTP/<mp host>`.
    pub target_name: Option<String>,
}

/// The `MsvAvChannelBindings` value of a TLS connection whose server presented the DER
/// certificate `server_cert`: the MD5 of a `gss_channel_bindings_struct` (RFC 2744 §3.11,
/// little-endian, no addresses) whose application data is `tls-server-end-point:` followed
/// by the certificate's hash (RFC 5929 §4.1). That hash uses the certificate signature's
/// digest, or SHA-256 when that is MD5 or SHA-1 or is not given by the algorithm (RSA-PSS).
///
/// # Errors
///
/// [`NtlmError::ChannelBinding`] when the certificate does not parse.
pub fn tls_channel_binding(server_cert: &[u8]) -> Result<[u8; 16], NtlmError> {
    use openssl::nid::Nid;
    let bad = |e: openssl::error::ErrorStack| NtlmError::ChannelBinding(e.to_string());
    let cert = openssl::x509::X509::from_der(server_cert).map_err(bad)?;
    let digest = cert
        .signature_algorithm()
        .object()
        .nid()
        .signature_algorithms()
        .map(|a| a.digest)
        .filter(|d| *d != Nid::MD5 && *d != Nid::SHA1)
        .and_then(MessageDigest::from_nid)
        .unwrap_or_else(MessageDigest::sha256);
    let hash = openssl::hash::hash(digest, server_cert).map_err(bad)?;
    let mut data = b"tls-server-end-point:".to_vec();
    data.extend_from_slice(&hash);
    // initiator_addrtype, initiator_address.length, acceptor_addrtype,
    // acceptor_address.length: all zero; then application_data.length and the data.
    let mut bindings = vec![0_u8; 16];
    bindings.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    bindings.extend_from_slice(&data);
    let md5 = openssl::hash::hash(MessageDigest::md5(), &bindings).map_err(bad)?;
    md5.as_ref().try_into().map_err(|_| NtlmError::ChannelBinding("MD5 is not 16 bytes".into()))
}

/// The `MIC` of an exchange (MS-NLMP 3.1.5.1.2): HMAC-MD5 under the exported session key
/// (here the `SessionBaseKey`: NTLMv2 without key exchange) over the `NEGOTIATE`,
/// `CHALLENGE` and `AUTHENTICATE` messages, the last with its `MIC` field zeroed.
///
/// # Errors
///
/// [`NtlmError::Crypto`] when OpenSSL cannot compute the HMAC;
/// [`NtlmError::Malformed`] when `authenticate` is too short to hold a `MIC`.
pub fn mic(
    session_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
) -> Result<[u8; 16], NtlmError> {
    let (head, tail) = authenticate
        .get(..MIC_AT)
        .zip(authenticate.get(AUTHENTICATE_HEADER..))
        .ok_or(NtlmError::Malformed { expected: "AUTHENTICATE", reason: "too short for a MIC" })?;
    hmac_md5(session_key, &[negotiate, challenge, head, &[0; 16], tail])
}

/// The target info the client sends back in its NTLMv2 blob: the challenge's AV pairs (a
/// server-sent `MsvAvFlags`, channel binding or target name left out), then `MsvAvFlags`
/// with the MIC bit, the channel binding, the target name, and `MsvAvEOL`.
fn client_target_info(challenge_info: &[u8], binding: &Binding) -> Vec<u8> {
    let mut flags = 0;
    let mut out = Vec::with_capacity(challenge_info.len() + 64);
    for (id, value) in av_pairs(challenge_info) {
        match id {
            AV_FLAGS => {
                flags = value.try_into().map(u32::from_le_bytes).unwrap_or(0);
            }
            AV_TARGET_NAME | AV_CHANNEL_BINDINGS => {}
            _ => push_av_pair(&mut out, id, value),
        }
    }
    push_av_pair(&mut out, AV_FLAGS, &(flags | AV_FLAG_MIC).to_le_bytes());
    push_av_pair(&mut out, AV_CHANNEL_BINDINGS, &binding.channel.unwrap_or([0; 16]));
    if let Some(name) = &binding.target_name {
        push_av_pair(&mut out, AV_TARGET_NAME, &utf16le(name));
    }
    push_av_pair(&mut out, AV_EOL, &[]);
    out
}

/// A `CHALLENGE` (type 2) message as read by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The negotiated flags.
    pub flags: u32,
    /// The server challenge.
    pub server_challenge: [u8; 8],
    /// `TargetInfo` (AV pairs), echoed in the NTLMv2 blob.
    pub target_info: Vec<u8>,
    /// The message as received: the `MIC` covers it.
    pub message: Vec<u8>,
}

impl Challenge {
    /// The `MsvAvTimestamp` of the target info, if any (the client must then use it as the
    /// blob's time, MS-NLMP 3.1.5.1.2).
    pub fn timestamp(&self) -> Option<u64> {
        av_pairs(&self.target_info)
            .find(|(id, _)| *id == AV_TIMESTAMP)
            .and_then(|(_, v)| v.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Iterates the AV pairs of a `TargetInfo` up to `MsvAvEOL`.
fn av_pairs(info: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = info;
    std::iter::from_fn(move || {
        let id = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
        let len = usize::from(u16::from_le_bytes(rest.get(2..4)?.try_into().ok()?));
        let value = rest.get(4..4 + len)?;
        rest = rest.get(4 + len..)?;
        (id != AV_EOL).then_some((id, value))
    })
}

/// Appends one AV pair (ID, length, value) to a `TargetInfo`.
fn push_av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(value);
}

/// A little-endian `u32` at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The field a security buffer (length, max length, offset) at `at` points to.
fn field(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let offset = usize::try_from(u32_at(bytes, at + 4)?).ok()?;
    bytes.get(offset..offset.checked_add(len)?)
}

/// Checks the signature and the message type.
fn check_type(bytes: &[u8], kind: u32, expected: &'static str) -> Result<(), NtlmError> {
    if bytes.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(NtlmError::Malformed { expected, reason: "no NTLMSSP signature" });
    }
    if u32_at(bytes, 8) != Some(kind) {
        return Err(NtlmError::Malformed { expected, reason: "another message type" });
    }
    Ok(())
}

/// Reads a `CHALLENGE` (type 2) message.
///
/// # Errors
///
/// [`NtlmError::Malformed`] for another message or a field outside the message.
pub fn parse_challenge(bytes: &[u8]) -> Result<Challenge, NtlmError> {
    const KIND: &str = "CHALLENGE";
    check_type(bytes, 2, KIND)?;
    let bad = |reason| NtlmError::Malformed { expected: KIND, reason };
    let flags = u32_at(bytes, 20).ok_or_else(|| bad("truncated"))?;
    let server_challenge =
        bytes.get(24..32).and_then(|c| c.try_into().ok()).ok_or_else(|| bad("truncated"))?;
    let target_info = if flags & NEGOTIATE_TARGET_INFO != 0 {
        field(bytes, 40).ok_or_else(|| bad("TargetInfo lies outside the message"))?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Challenge { flags, server_challenge, target_info, message: bytes.to_vec() })
}

/// Builds an `AUTHENTICATE` (type 3) message answering `challenge` with NTLMv2, from a fresh
/// random client challenge and the challenge's timestamp (or the current time). The blob
/// carries `binding` and the MIC flag, and the message its `MIC` over `negotiate` (the
/// bytes the client sent), the challenge as received, and itself.
///
/// # Errors
///
/// [`NtlmError::Crypto`] when the random source or HMAC fails; [`NtlmError::Malformed`] when
/// `challenge` does not hold the received message ([`Challenge::message`], which
/// [`parse_challenge`] fills): no server would accept a `MIC` without it.
pub fn authenticate(
    creds: &Credentials,
    negotiate: &[u8],
    challenge: &Challenge,
    binding: &Binding,
) -> Result<Vec<u8>, NtlmError> {
    if challenge.message.len() < 32 || !challenge.message.starts_with(SIGNATURE) {
        return Err(NtlmError::Malformed {
            expected: "CHALLENGE",
            reason: "the challenge does not hold the message as received, which the MIC covers",
        });
    }
    let mut client_challenge = [0_u8; 8];
    openssl::rand::rand_bytes(&mut client_challenge)
        .map_err(|e| NtlmError::Crypto(e.to_string()))?;
    let timestamp = challenge.timestamp();
    let mut response = v2_response(
        creds,
        &challenge.server_challenge,
        &client_challenge,
        timestamp.unwrap_or_else(filetime_now),
        &client_target_info(&challenge.target_info, binding),
    )?;
    if timestamp.is_some() {
        // MS-NLMP 3.1.5.1.2: with MsvAvTimestamp the client sends Z(24) as the LM response.
        response.lm = vec![0; 24];
    }
    let mut message = authenticate_message(creds, challenge.flags, &response);
    let mic = mic(&response.session_base_key, negotiate, &challenge.message, &message)?;
    message[MIC_AT..AUTHENTICATE_HEADER].copy_from_slice(&mic);
    Ok(message)
}

/// The `AUTHENTICATE` message bytes with the client's `Version` and a zero `MIC` field.
fn authenticate_message(
    creds: &Credentials,
    challenge_flags: u32,
    response: &V2Response,
) -> Vec<u8> {
    const HEADER: usize = AUTHENTICATE_HEADER;
    let domain = utf16le(&creds.domain);
    let user = utf16le(&creds.user);
    let workstation = Vec::new();
    let flags =
        (challenge_flags & CLIENT_FLAGS) | NEGOTIATE_UNICODE | NEGOTIATE_NTLM | NEGOTIATE_VERSION;
    let fields: [&[u8]; 5] = [&response.lm, &response.nt, &domain, &user, &workstation];
    let mut out = Vec::with_capacity(HEADER + fields.iter().map(|f| f.len()).sum::<usize>());
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&3_u32.to_le_bytes());
    let mut offset = HEADER;
    // Security buffers: LM, NT, domain, user, workstation, then the (empty) session key.
    for data in fields.iter().chain(std::iter::once(&&[][..])) {
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
        offset += data.len();
    }
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(&[0; 16]);
    for data in fields {
        out.extend_from_slice(data);
    }
    out
}

/// The server side: a `CHALLENGE` (type 2) message with `server_challenge`, the NetBIOS
/// `domain` and `computer` as target name and info, and the current time.
pub fn challenge(server_challenge: &[u8; 8], domain: &str, computer: &str) -> Vec<u8> {
    const HEADER: usize = 48;
    let target_name = utf16le(domain);
    let mut info = Vec::new();
    for (id, value) in [
        (AV_NB_DOMAIN_NAME, target_name.clone()),
        (AV_NB_COMPUTER_NAME, utf16le(computer)),
        (AV_TIMESTAMP, filetime_now().to_le_bytes().to_vec()),
        (AV_EOL, Vec::new()),
    ] {
        push_av_pair(&mut info, id, &value);
    }
    let flags = NEGOTIATE_UNICODE
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | NEGOTIATE_ALWAYS_SIGN
        | TARGET_TYPE_DOMAIN
        | NEGOTIATE_EXTENDED_SESSIONSECURITY
        | NEGOTIATE_TARGET_INFO
        | NEGOTIATE_128
        | NEGOTIATE_56;
    let buffer = |len: usize, offset: usize| {
        let len = u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes();
        let offset = u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes();
        [len[0], len[1], len[0], len[1], offset[0], offset[1], offset[2], offset[3]]
    };
    let mut out = Vec::with_capacity(HEADER + target_name.len() + info.len());
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&2_u32.to_le_bytes());
    out.extend_from_slice(&buffer(target_name.len(), HEADER));
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(server_challenge);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&buffer(info.len(), HEADER + target_name.len()));
    out.extend_from_slice(&target_name);
    out.extend_from_slice(&info);
    out
}

/// An `AUTHENTICATE` (type 3) message as read by the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The domain the client named.
    pub domain: String,
    /// The user name.
    pub user: String,
    /// The workstation name.
    pub workstation: String,
    /// `NtChallengeResponse`.
    nt: Vec<u8>,
    /// The message as received: the `MIC` covers it.
    message: Vec<u8>,
}

/// What the server knows of an exchange when the `AUTHENTICATE` message arrives.
#[derive(Debug, Clone, Copy)]
pub struct ServerSide<'a> {
    /// The `NEGOTIATE` message as received.
    pub negotiate: &'a [u8],
    /// The `CHALLENGE` message as sent (the server challenge is read from it).
    pub challenge: &'a [u8],
    /// The binding of the TLS connection the logon came over ([`tls_channel_binding`] of
    /// the server's own certificate); `None` over plain HTTP.
    pub channel_binding: Option<[u8; 16]>,
    /// How the client's channel binding is checked.
    pub protection: ExtendedProtection,
}

impl fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticate")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("workstation", &self.workstation)
            .finish_non_exhaustive()
    }
}

/// Whether `bytes` is a `NEGOTIATE` (type 1) message.
pub fn is_negotiate(bytes: &[u8]) -> bool {
    check_type(bytes, 1, "NEGOTIATE").is_ok()
}

/// Reads an `AUTHENTICATE` (type 3) message (Unicode strings).
///
/// # Errors
///
/// [`NtlmError::Malformed`] for another message or a field outside the message;
/// [`NtlmError::NotV2`] for a response shorter than an NTLMv2 one.
pub fn parse_authenticate(bytes: &[u8]) -> Result<Authenticate, NtlmError> {
    const KIND: &str = "AUTHENTICATE";
    check_type(bytes, 3, KIND)?;
    let bad = |reason| NtlmError::Malformed { expected: KIND, reason };
    let text = |at| -> Result<String, NtlmError> {
        let raw = field(bytes, at).ok_or_else(|| bad("a field lies outside the message"))?;
        if raw.len() % 2 != 0 {
            return Err(bad("a name is not UTF-16"));
        }
        let units = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(units).collect::<Result<String, _>>().map_err(|_| bad("bad UTF-16"))
    };
    let nt = field(bytes, 20).ok_or_else(|| bad("NtChallengeResponse lies outside"))?.to_vec();
    // NTProofStr (16) + blob header (28) at least; an NTLMv1 response is 24 bytes.
    if nt.len() < 16 + 28 || nt.get(16..18) != Some(&[1, 1]) {
        return Err(NtlmError::NotV2);
    }
    Ok(Authenticate {
        domain: text(28)?,
        user: text(36)?,
        workstation: text(44)?,
        nt,
        message: bytes.to_vec(),
    })
}

impl Authenticate {
    /// Whether the NTLMv2 response proves knowledge of `creds`' password for
    /// `server_challenge` (the user name must match `creds` case-insensitively; the domain as
    /// the client sent it goes into the key, as on Windows). The proof is compared in
    /// constant time.
    ///
    /// This checks the password alone; a server answering HTTP logons uses
    /// [`Authenticate::logon`], which also checks the `MIC` and the channel binding.
    pub fn verify(&self, creds: &Credentials, server_challenge: &[u8; 8]) -> bool {
        self.session_key(creds, server_challenge).is_some()
    }

    /// The `SessionBaseKey` when the NTLMv2 response proves `creds`' password.
    fn session_key(&self, creds: &Credentials, server_challenge: &[u8; 8]) -> Option<[u8; 16]> {
        if !self.user.eq_ignore_ascii_case(&creds.user) {
            return None;
        }
        let key = ntowf_v2(&Credentials {
            domain: self.domain.clone(),
            user: creds.user.clone(),
            password: std::sync::Arc::clone(&creds.password),
        });
        let (proof, temp) = (self.nt.get(..16)?, self.nt.get(16..)?);
        let expected = hmac_md5(&key, &[server_challenge, temp]).ok()?;
        openssl::memcmp::eq(&expected, proof).then(|| hmac_md5(&key, &[proof]).ok()).flatten()
    }

    /// The AV pairs of the client's NTLMv2 blob (after its 28-byte fixed part).
    fn client_info(&self) -> impl Iterator<Item = (u16, &[u8])> {
        av_pairs(self.nt.get(16 + 28..).unwrap_or_default())
    }

    /// The client's channel binding: `None` when absent or all zero ("no binding").
    pub fn channel_binding(&self) -> Option<[u8; 16]> {
        self.client_info()
            .find(|(id, _)| *id == AV_CHANNEL_BINDINGS)
            .and_then(|(_, v)| <[u8; 16]>::try_from(v).ok())
            .filter(|v| *v != [0; 16])
    }

    /// The service principal name the client named (`MsvAvTargetName`), if any.
    pub fn target_name(&self) -> Option<String> {
        let (_, raw) = self.client_info().find(|(id, _)| *id == AV_TARGET_NAME)?;
        let units = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(units).collect::<Result<String, _>>().ok()
    }

    /// Checks a logon as a server does (MS-NLMP 3.2.5.1.2): the NTLMv2 response must prove
    /// `creds`' password for the challenge in `server.challenge`; when the client's blob sets
    /// the MIC flag, the `MIC` must cover `server.negotiate`, `server.challenge` and this
    /// message; and the channel binding must pass `server.protection`:
    ///
    /// | protection | over TLS | over plain HTTP |
    /// |---|---|---|
    /// | `Off` | not checked | not checked |
    /// | `Accept` | a binding sent must name this channel | a binding sent is refused |
    /// | `Required` | a binding naming this channel is needed | a binding sent is refused |
    ///
    /// A binding over plain HTTP can only have been made for some TLS channel: the logon was
    /// relayed.
    ///
    /// # Errors
    ///
    /// The [`LogonError`] that applies, checked in the order above.
    pub fn logon(&self, creds: &Credentials, server: &ServerSide<'_>) -> Result<(), LogonError> {
        let server_challenge: [u8; 8] = server
            .challenge
            .get(24..32)
            .and_then(|c| c.try_into().ok())
            .ok_or(LogonError::BadResponse)?;
        let key = self.session_key(creds, &server_challenge).ok_or(LogonError::BadResponse)?;
        let flags = self
            .client_info()
            .find(|(id, _)| *id == AV_FLAGS)
            .and_then(|(_, v)| v.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        if flags & AV_FLAG_MIC != 0 {
            let expected = mic(&key, server.negotiate, server.challenge, &self.message)
                .map_err(|_| LogonError::MicMismatch)?;
            let sent = self.message.get(MIC_AT..AUTHENTICATE_HEADER);
            if !sent.is_some_and(|sent| openssl::memcmp::eq(&expected, sent)) {
                return Err(LogonError::MicMismatch);
            }
        }
        match (server.protection, server.channel_binding, self.channel_binding()) {
            (ExtendedProtection::Off, _, _) | (_, None, None) => Ok(()),
            (_, Some(expected), Some(sent)) if openssl::memcmp::eq(&expected, &sent) => Ok(()),
            (ExtendedProtection::Accept, Some(_), None) => Ok(()),
            (ExtendedProtection::Required, Some(_), None) => Err(LogonError::ChannelBindingMissing),
            (_, _, Some(_)) => Err(LogonError::ChannelBindingMismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        AV_FLAGS, Binding, Challenge, Credentials, ExtendedProtection, LogonError, ServerSide,
        authenticate, av_pairs, challenge, mic, negotiate, ntowf_v2, parse_authenticate,
        parse_challenge, tls_channel_binding, v2_response,
    };

    /// MS-NLMP 4.2.4: the NTLMv2 example's values.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// MS-NLMP 4.2.4.1.3: the AV pairs of the example (`MsvAvNbDomainName` "Domain",
    /// `MsvAvNbComputerName` "Server", `MsvAvEOL`).
    fn target_info() -> Vec<u8> {
        hex("02 00 0c 00 44 00 6f 00 6d 00 61 00 69 00 6e 00
             01 00 0c 00 53 00 65 00 72 00 76 00 65 00 72 00 00 00 00 00")
    }

    #[test]
    fn ntlmv2_matches_ms_nlmp_4_2_4() {
        let creds = Credentials::new("Domain", "User", "Password");
        assert_eq!(ntowf_v2(&creds).to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let r =
            v2_response(&creds, &SERVER_CHALLENGE, &CLIENT_CHALLENGE, 0, &target_info()).unwrap();
        // 4.2.4.2.1 LMv2 response.
        assert_eq!(r.lm, hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"));
        // 4.2.4.2.2 NTLMv2 response: NTProofStr, then temp (4.2.4.1.3).
        assert_eq!(r.nt[..16].to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        let mut temp = hex("0101 0000 00000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000");
        temp.extend(target_info());
        temp.extend([0; 4]);
        assert_eq!(r.nt[16..].to_vec(), temp);
        // 4.2.4.1.2 Session base key.
        assert_eq!(r.session_base_key.to_vec(), hex("8de40ccadbc14a82f15cb0ad0de95ca3"));
    }

    /// A server's view of an exchange: `negotiate` and `type2` as on the wire.
    fn server<'a>(
        negotiate: &'a [u8],
        type2: &'a [u8],
        channel: Option<[u8; 16]>,
        protection: ExtendedProtection,
    ) -> ServerSide<'a> {
        ServerSide { negotiate, challenge: type2, channel_binding: channel, protection }
    }

    #[test]
    fn client_and_server_agree_and_wrong_passwords_fail() {
        let type1 = negotiate();
        assert_eq!(type1.len(), 40);
        let server_challenge = [7_u8; 8];
        let type2 = challenge(&server_challenge, "CORP", "MP01");
        let parsed = parse_challenge(&type2).unwrap();
        assert_eq!(parsed.server_challenge, server_challenge);
        assert!(parsed.timestamp().is_some());
        let right = Credentials::new("corp", "sccm-naa", "Secret1!");
        let binding = Binding { channel: None, target_name: Some("HTTP/mp01.corp".to_owned()) };
        let type3 = authenticate(&right, &type1, &parsed, &binding).unwrap();
        let message = parse_authenticate(&type3).unwrap();
        assert_eq!((message.domain.as_str(), message.user.as_str()), ("corp", "sccm-naa"));
        assert_eq!(message.target_name().as_deref(), Some("HTTP/mp01.corp"));
        assert_eq!(message.channel_binding(), None);
        let account = Credentials::new("CORP", "SCCM-NAA", "Secret1!");
        assert!(message.verify(&account, &server_challenge));
        assert!(!message.verify(&account, &[8; 8]));
        let http = server(&type1, &type2, None, ExtendedProtection::Required);
        assert_eq!(message.logon(&account, &http), Ok(()));
        for wrong in [
            Credentials::new("CORP", "SCCM-NAA", "secret1!"),
            Credentials::new("CORP", "other", "Secret1!"),
        ] {
            assert!(!message.verify(&wrong, &server_challenge));
            assert_eq!(message.logon(&wrong, &http), Err(LogonError::BadResponse));
        }
        assert!(format!("{right:?}").contains("<redacted>"));
        assert!(!format!("{right:?}").contains("Secret1!"));
    }

    /// The certificates in `tests/ntlm/` (self-signed P-256, made with `openssl req -x509`
    /// and `-sha256`, `-sha384`, `-sha1`) and their bindings as computed with Python's
    /// `hashlib` from RFC 5929 §4.1 and RFC 2744 §3.11: MD5 of five little-endian zero-or-
    /// length words and `tls-server-end-point:` + the certificate's hash (SHA-256 for the
    /// SHA-1 certificate).
    #[test]
    fn tls_channel_bindings_match_an_independent_computation() {
        for (pem, expected) in [
            (
                include_str!("../tests/ntlm/server-ecdsa-sha256.pem"),
                "f70204b5cfecb35455570af345193fde",
            ),
            (
                include_str!("../tests/ntlm/server-ecdsa-sha384.pem"),
                "87d0b8d6e9ea8ffc8ae015cc9f4b07f0",
            ),
            (
                include_str!("../tests/ntlm/server-ecdsa-sha1.pem"),
                "0dac756e5ec8c2bae647e4bf3d8eb371",
            ),
        ] {
            let der = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
            assert_eq!(tls_channel_binding(&der).unwrap().to_vec(), hex(expected));
        }
        assert!(tls_channel_binding(b"not a certificate").is_err());
    }

    /// The MIC of fixed messages, as computed with Python's `hmac` (key: the session base key
    /// of MS-NLMP 4.2.4; the `AUTHENTICATE` bytes 72..88 zeroed before hashing).
    #[test]
    fn the_mic_matches_an_independent_computation() {
        let key: [u8; 16] = hex("8de40ccadbc14a82f15cb0ad0de95ca3").try_into().unwrap();
        let message = |kind: u8, body: Vec<u8>| {
            let mut m = b"NTLMSSP\0".to_vec();
            m.extend([kind, 0, 0, 0]);
            m.extend(body);
            m
        };
        let type1 = message(1, (0..28).collect());
        let type2 = message(2, (40..80).collect());
        let type3 = message(3, (0..100_u32).map(|i| u8::try_from(i * 7 % 256).unwrap()).collect());
        assert_eq!(
            mic(&key, &type1, &type2, &type3).unwrap().to_vec(),
            hex("0541ccfc4d6f19b5878ba477e7c6fe01")
        );
        assert!(mic(&key, &type1, &type2, &type3[..80]).is_err());
    }

    /// One logon of `sccm-naa` bound to `channel`: the messages as on the wire.
    fn bound_logon(channel: Option<[u8; 16]>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let type1 = negotiate();
        let type2 = challenge(&[3; 8], "CORP", "MP01");
        let parsed = parse_challenge(&type2).unwrap();
        let creds = Credentials::new("CORP", "sccm-naa", "Secret1!");
        let type3 =
            authenticate(&creds, &type1, &parsed, &Binding { channel, target_name: None }).unwrap();
        (type1, type2, type3)
    }

    #[test]
    fn the_mic_covers_all_three_messages() {
        let account = Credentials::new("CORP", "sccm-naa", "Secret1!");
        let (type1, type2, type3) = bound_logon(None);
        let off = ExtendedProtection::Off;
        let logon = |t1: &[u8], t2: &[u8], t3: &[u8]| {
            parse_authenticate(t3).unwrap().logon(&account, &server(t1, t2, None, off))
        };
        assert_eq!(logon(&type1, &type2, &type3), Ok(()));
        // A flag taken out of the NEGOTIATE or the CHALLENGE on the way (a downgrade).
        let mut t1 = type1.clone();
        t1[12] &= !0x01;
        assert_eq!(logon(&t1, &type2, &type3), Err(LogonError::MicMismatch));
        let mut t2 = type2.clone();
        t2[22] &= !0x08;
        assert_eq!(logon(&type1, &t2, &type3), Err(LogonError::MicMismatch));
        // The MIC itself changed, or the message's flags.
        let mut t3 = type3.clone();
        t3[80] ^= 1;
        assert_eq!(logon(&type1, &type2, &t3), Err(LogonError::MicMismatch));
        let mut t3 = type3.clone();
        t3[60] ^= 0x01;
        assert_eq!(logon(&type1, &type2, &t3), Err(LogonError::MicMismatch));
    }

    #[test]
    fn the_mic_flag_cannot_be_stripped() {
        let account = Credentials::new("CORP", "sccm-naa", "Secret1!");
        let (type1, type2, mut type3) = bound_logon(None);
        // Clear MsvAvFlags in the blob (after NTProofStr and the blob's fixed 28 bytes): the
        // NTLMv2 proof covers it.
        let nt_at = usize::try_from(u32::from_le_bytes(type3[24..28].try_into().unwrap())).unwrap();
        let mut at = nt_at + 16 + 28;
        let mut flags_at = None;
        for (id, value) in av_pairs(&type3[at..]) {
            if id == AV_FLAGS {
                flags_at = Some(at + 4);
            }
            at += 4 + value.len();
        }
        type3[flags_at.expect("the client sends MsvAvFlags")] = 0;
        let stripped = parse_authenticate(&type3).unwrap();
        let side = server(&type1, &type2, None, ExtendedProtection::Off);
        assert_eq!(stripped.logon(&account, &side), Err(LogonError::BadResponse));
    }

    #[test]
    fn channel_bindings_follow_the_extended_protection_setting() {
        use ExtendedProtection::{Accept, Off, Required};
        let account = Credentials::new("CORP", "sccm-naa", "Secret1!");
        let this = [0x11; 16];
        let other = [0x22; 16];
        for (sent, tls, protection, expected) in [
            (Some(this), Some(this), Required, Ok(())),
            (Some(this), Some(this), Accept, Ok(())),
            (Some(other), Some(this), Accept, Err(LogonError::ChannelBindingMismatch)),
            (Some(other), Some(this), Required, Err(LogonError::ChannelBindingMismatch)),
            (Some(other), Some(this), Off, Ok(())),
            (None, Some(this), Accept, Ok(())),
            (None, Some(this), Required, Err(LogonError::ChannelBindingMissing)),
            (None, Some(this), Off, Ok(())),
            (None, None, Required, Ok(())),
            // A binding made for some TLS channel, arriving over plain HTTP: relayed.
            (Some(other), None, Accept, Err(LogonError::ChannelBindingMismatch)),
            (Some(other), None, Required, Err(LogonError::ChannelBindingMismatch)),
            (Some(other), None, Off, Ok(())),
        ] {
            let (type1, type2, type3) = bound_logon(sent);
            let message = parse_authenticate(&type3).unwrap();
            assert_eq!(message.channel_binding(), sent);
            assert_eq!(
                message.logon(&account, &server(&type1, &type2, tls, protection)),
                expected,
                "sent {sent:?}, channel {tls:?}, {protection:?}"
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(parse_challenge(b"NTLMSSP\0\x02\0\0\0").is_err());
        assert!(parse_challenge(&negotiate()).is_err());
        let mut type3 = vec![0; 64];
        type3[..8].copy_from_slice(b"NTLMSSP\0");
        type3[8] = 3;
        assert!(parse_authenticate(&type3).is_err());
        type3[20] = 0xff;
        type3[24] = 0x40;
        assert!(parse_authenticate(&type3).is_err());
    }

    #[test]
    fn a_challenge_without_the_received_message_is_refused_before_signing() {
        let type2 = challenge(&[7; 8], "CORP", "MP");
        let parsed = parse_challenge(&type2).unwrap();
        let creds = Credentials::new("CORP", "PC01$", "secret");
        let binding = Binding { channel: None, target_name: None };
        assert!(authenticate(&creds, &negotiate(), &parsed, &binding).is_ok());
        let hand_built = Challenge { message: Vec::new(), ..parsed };
        let e = authenticate(&creds, &negotiate(), &hand_built, &binding).unwrap_err();
        assert!(e.to_string().contains("as received"), "{e}");
    }
}
