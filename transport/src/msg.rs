//! The `Msg` header of a request, built from typed fields (protocol §2.4, §2.6, §3.2).
//!
//! Every field a caller influences is typed: `SourceID` is an [`SmsId`], `ID` a
//! [`BracedGuid`], host names are [`HostName`]s, the endpoint and `FileType` come from the
//! kind's consts. No caller text reaches a header field unvalidated (CVE-2024-43468), and
//! the writer escapes everything anyway.

use std::fmt;

use cmmp_model::DeliveryKind;
use cmmp_model::msg::{
    AttachmentRange, BodyRange, CompressionKind, Hook, HookName, HookProperty, HookPropertyName,
    Hooks, HooksContent, Msg, MsgProperty, Payload as PayloadElement, PayloadKind, RangeKind,
    ReplyModeValue,
};
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};

use crate::payload::Payload;

/// A DNS host name or NetBIOS name: ASCII letters, digits, `-`, `_` and `.`, 1–255 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

/// A host name with characters a host name cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host name (ASCII letters, digits, `-`, `_` and `.`, 1 to 255 bytes)")]
pub struct HostNameError(pub String);

impl HostName {
    /// Validates a host name.
    ///
    /// # Errors
    ///
    /// [`HostNameError`] for an empty, overlong or otherwise invalid name.
    pub fn new(name: &str) -> Result<Self, HostNameError> {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(HostNameError(name.chars().take(64).collect()))
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for HostName {
    type Err = HostNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The `clientauth` hook's properties (protocol §3.2), computed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// `AuthSenderMachine`: the sender's NetBIOS name.
    pub sender: HostName,
    /// `PublicKey`: upper-hex PUBLICKEYBLOB.
    pub public_key: String,
    /// `ClientIDSignature`.
    pub client_id_signature: String,
    /// `PayloadSignature` over the payload as sent.
    pub payload_signature: String,
    /// `ClientCapabilities`: `SSL` in native (HTTPS) mode, else `NonSSL`.
    pub ssl: bool,
    /// `HashAlgorithm` OID; `None` for SHA-1 (the property is then omitted).
    pub hash_oid: Option<&'static str>,
}

/// Everything the header needs besides the kind.
#[derive(Debug, Clone)]
pub struct HeaderFields<'a> {
    /// `ID`: fresh per message.
    pub id: BracedGuid,
    /// `SourceID`: the client the message is about; `None` for registration.
    pub source_id: Option<SmsId>,
    /// `SourceHost`.
    pub source_host: &'a HostName,
    /// `TargetHost`: the MP.
    pub target_host: &'a HostName,
    /// `SentTime`: now.
    pub sent_time: IsoTime,
    /// `Timeout` in milliseconds (on the wire it is ms, §2.4).
    pub timeout_ms: u32,
    /// `Priority`.
    pub priority: i32,
    /// The payload is zlib-compressed (`Hook3 zlib-compress`).
    pub compressed: bool,
    /// Ask the MP to compress the reply (`ReplyCompression`).
    pub reply_compression: bool,
    /// The `clientauth` hook, when the message is signed.
    pub client_auth: Option<ClientAuth>,
}

/// What the header says about the message itself: where it goes and how.
#[derive(Debug, Clone, Copy)]
pub struct MessageSpec<'a> {
    /// `TargetEndpoint` (also `TargetAddress` `mp:<endpoint>`).
    pub endpoint: &'a str,
    /// `Property` elements (`FileType`, …), in order.
    pub properties: &'a [(String, String)],
    /// Invoke (`ReplyMode` `Sync`) or Post (`Async`).
    pub delivery: DeliveryKind,
    /// The payload is CMS-encrypted to the MP (`Hook2 encrypt`, §3.6).
    pub encrypted: bool,
}

/// Builds the `Msg` header of a message whose payload is `payload` (protocol §2.4 order is
/// the writer's; hooks in SDK order: `clientauth`, `zlib-compress`, `encrypt`, §2.6).
pub fn request_header(spec: &MessageSpec<'_>, fields: &HeaderFields<'_>, payload: &Payload) -> Msg {
    let endpoint = spec.endpoint;
    let mut msg = Msg::new(endpoint.to_owned());
    msg.schema_version = Some("1.1".to_owned());
    msg.reply_compression =
        Some(if fields.reply_compression { CompressionKind::Zlib } else { CompressionKind::None });
    msg.id = Some(fields.id);
    msg.source_id = fields.source_id;
    msg.source_host = Some(fields.source_host.to_string());
    msg.target_address = Some(format!("mp:{endpoint}"));
    msg.reply_to = Some(format!("direct:{}:SccmMessaging", fields.source_host));
    msg.priority = Some(fields.priority);
    msg.timeout = Some(fields.timeout_ms);
    msg.sent_time = Some(fields.sent_time);
    msg.body = Some(BodyRange::new(RangeKind::ByteRange, 0, payload.body_len));
    msg.attachment = payload
        .ranges
        .iter()
        .map(|(name, offset, length)| {
            AttachmentRange::new(RangeKind::ByteRange, name.clone(), *offset, *length)
        })
        .collect();
    for (name, value) in spec.properties {
        msg.property.push(MsgProperty::new(name.clone(), value.clone()));
    }
    let mut hooks = Vec::new();
    if let Some(auth) = &fields.client_auth {
        let mut hook = Hook::new(HookName::Clientauth);
        let mut prop = |name: HookPropertyName, value: &str| {
            hook.property.push(HookProperty::new(name, value.to_owned()));
        };
        prop(HookPropertyName::AuthSenderMachine, auth.sender.as_str());
        prop(HookPropertyName::PublicKey, &auth.public_key);
        prop(HookPropertyName::ClientIdSignature, &auth.client_id_signature);
        prop(HookPropertyName::PayloadSignature, &auth.payload_signature);
        prop(HookPropertyName::ClientCapabilities, if auth.ssl { "SSL" } else { "NonSSL" });
        if let Some(oid) = auth.hash_oid {
            prop(HookPropertyName::HashAlgorithm, oid);
        }
        hooks.push(HooksContent::Hook2(Box::new(hook)));
    }
    if fields.compressed {
        hooks.push(HooksContent::Hook3(Box::new(Hook::new(HookName::ZlibCompress))));
    }
    if spec.encrypted {
        hooks.push(HooksContent::Hook2(Box::new(Hook::new(HookName::Encrypt))));
    }
    msg.hooks = Some(Hooks { content: hooks });
    msg.payload = Some(PayloadElement::new(PayloadKind::Inline));
    msg.target_host = Some(fields.target_host.to_string());
    msg.reply_mode = Some(match spec.delivery {
        DeliveryKind::Invoke => ReplyModeValue::Sync,
        DeliveryKind::Post => ReplyModeValue::Async,
    });
    msg.protocol = Some("http".to_owned());
    msg
}

/// The hooks of `msg` named `name` (matched case-insensitively, as the SDK does, §2.6).
pub fn hooks<'m>(msg: &'m Msg, name: &'m HookName) -> impl Iterator<Item = &'m Hook> + 'm {
    msg.hooks.iter().flat_map(|h| h.content.iter()).filter_map(move |c| {
        let hook = match c {
            HooksContent::Hook(h) | HooksContent::Hook2(h) | HooksContent::Hook3(h) => h,
        };
        hook.name.as_str().eq_ignore_ascii_case(name.as_str()).then_some(hook.as_ref())
    })
}

/// The value of property `name` of `hook`.
pub fn hook_property<'h>(hook: &'h Hook, name: &HookPropertyName) -> Option<&'h str> {
    hook.property
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name.as_str()))
        .map(|p| p.value.as_str())
}

/// The `FileType` property of a header (case-insensitive name).
pub fn file_type(msg: &Msg) -> Option<&str> {
    msg.property.iter().find(|p| p.name.eq_ignore_ascii_case("FileType")).map(|p| p.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::HostName;

    #[test]
    fn host_names_refuse_markup_and_sql() {
        assert!(HostName::new("mp01.corp.example").is_ok());
        assert!(HostName::new("WS01").is_ok());
        assert!(HostName::new("").is_err());
        assert!(HostName::new("a b").is_err());
        assert!(HostName::new("x'; DROP TABLE --").is_err());
        assert!(HostName::new("<x>").is_err());
    }
}
