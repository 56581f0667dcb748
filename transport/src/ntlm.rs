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
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// `MsvAvEOL`, `MsvAvNbComputerName`, `MsvAvNbDomainName`, `MsvAvTimestamp` (MS-NLMP 2.2.2.1).
const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_TIMESTAMP: u16 = 7;

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
/// workstation.
pub fn negotiate() -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&1_u32.to_le_bytes());
    out.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    out.extend_from_slice(&[0; 16]);
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
    Ok(Challenge { flags, server_challenge, target_info })
}

/// Builds an `AUTHENTICATE` (type 3) message answering `challenge` with NTLMv2, from a fresh
/// random client challenge and the challenge's timestamp (or the current time).
///
/// # Errors
///
/// [`NtlmError::Crypto`] when the random source or HMAC fails.
pub fn authenticate(creds: &Credentials, challenge: &Challenge) -> Result<Vec<u8>, NtlmError> {
    let mut client_challenge = [0_u8; 8];
    openssl::rand::rand_bytes(&mut client_challenge)
        .map_err(|e| NtlmError::Crypto(e.to_string()))?;
    let timestamp = challenge.timestamp();
    let mut response = v2_response(
        creds,
        &challenge.server_challenge,
        &client_challenge,
        timestamp.unwrap_or_else(filetime_now),
        &challenge.target_info,
    )?;
    if timestamp.is_some() {
        // MS-NLMP 3.1.5.1.2: with MsvAvTimestamp the client sends Z(24) as the LM response.
        response.lm = vec![0; 24];
    }
    Ok(authenticate_message(creds, challenge.flags, &response))
}

/// The `AUTHENTICATE` message bytes (no version, no MIC: the challenge's target info is sent
/// back unchanged, without `MsvAvFlags`).
fn authenticate_message(
    creds: &Credentials,
    challenge_flags: u32,
    response: &V2Response,
) -> Vec<u8> {
    const HEADER: usize = 64;
    let domain = utf16le(&creds.domain);
    let user = utf16le(&creds.user);
    let workstation = Vec::new();
    let flags = (challenge_flags & CLIENT_FLAGS) | NEGOTIATE_UNICODE | NEGOTIATE_NTLM;
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
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
        info.extend_from_slice(&value);
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
    Ok(Authenticate { domain: text(28)?, user: text(36)?, workstation: text(44)?, nt })
}

impl Authenticate {
    /// Whether the NTLMv2 response proves knowledge of `creds`' password for
    /// `server_challenge` (the user name must match `creds` case-insensitively; the domain as
    /// the client sent it goes into the key, as on Windows). The proof is compared in
    /// constant time.
    pub fn verify(&self, creds: &Credentials, server_challenge: &[u8; 8]) -> bool {
        if !self.user.eq_ignore_ascii_case(&creds.user) {
            return false;
        }
        let key = ntowf_v2(&Credentials {
            domain: self.domain.clone(),
            user: creds.user.clone(),
            password: std::sync::Arc::clone(&creds.password),
        });
        let (Some(proof), Some(temp)) = (self.nt.get(..16), self.nt.get(16..)) else {
            return false;
        };
        match hmac_md5(&key, &[server_challenge, temp]) {
            Ok(expected) => openssl::memcmp::eq(&expected, proof),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Credentials, authenticate, challenge, negotiate, ntowf_v2, parse_authenticate,
        parse_challenge, v2_response,
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

    #[test]
    fn client_and_server_agree_and_wrong_passwords_fail() {
        assert_eq!(negotiate().len(), 32);
        let server_challenge = [7_u8; 8];
        let type2 = challenge(&server_challenge, "CORP", "MP01");
        let parsed = parse_challenge(&type2).unwrap();
        assert_eq!(parsed.server_challenge, server_challenge);
        assert!(parsed.timestamp().is_some());
        let right = Credentials::new("corp", "sccm-naa", "Secret1!");
        let type3 = authenticate(&right, &parsed).unwrap();
        let message = parse_authenticate(&type3).unwrap();
        assert_eq!((message.domain.as_str(), message.user.as_str()), ("corp", "sccm-naa"));
        let account = Credentials::new("CORP", "SCCM-NAA", "Secret1!");
        assert!(message.verify(&account, &server_challenge));
        assert!(!message.verify(&account, &[8; 8]));
        assert!(
            !message.verify(&Credentials::new("CORP", "SCCM-NAA", "secret1!"), &server_challenge)
        );
        assert!(!message.verify(&Credentials::new("CORP", "other", "Secret1!"), &server_challenge));
        assert!(format!("{right:?}").contains("<redacted>"));
        assert!(!format!("{right:?}").contains("Secret1!"));
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
}
