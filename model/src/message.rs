//! Messages, message kinds, and the Invoke/Post pairing at the type level.
//!
//! A body document ([`Message`]) says nothing about where it goes: the same `Report` root
//! travels to six endpoints and `MP_LocationManager` takes six roots. A **message kind**
//! ([`Endpoint`]) wraps one body type and carries the endpoint, the `FileType` property,
//! the signing rule and the payload layout as consts, and its delivery mode as a sealed
//! associated type. [`Invoke`] and [`Post`] are tied to that mode by supertrait equality,
//! so a kind is exactly one of them and a sender bound on `K: Invoke` rejects Post kinds at
//! compile time (and the other way round).

use std::marker::PhantomData;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::xml::{Reader, Start, Writer, XmlElement};

/// An XML document with a known root element. Generated body and reply types implement it.
pub trait Message: XmlElement {
    /// Root element name, e.g. `Report`.
    const ROOT: &'static str;

    /// Whether a document whose root element is `name` is read as this message.
    ///
    /// Exact match by default; reply types the protocol says to parse by content
    /// (`lenient_roots` in `schemas/endpoints.toml`) accept any root.
    fn accepts_root(name: &[u8]) -> bool {
        name == Self::ROOT.as_bytes()
    }
}

/// Encoding and decoding of whole documents, for every [`Message`].
pub trait MessageExt: Message {
    /// Writes the document in canonical form (no declaration, no whitespace).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when a value holds a character XML cannot carry.
    fn to_xml(&self) -> Result<String, EncodeError> {
        let mut w = Writer::with_capacity(1024);
        self.write_element(Self::ROOT, &mut w);
        w.finish()
    }

    /// Appends the document to `buffer` (reusing its allocation).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when a value holds a character XML cannot carry; `buffer` then holds
    /// what it held before.
    fn write_into(&self, buffer: &mut String) -> Result<(), EncodeError> {
        let before = buffer.len();
        let mut w = Writer::with_buffer(std::mem::take(buffer));
        self.write_element(Self::ROOT, &mut w);
        let result = w.finish_keep();
        match result {
            (out, None) => {
                *buffer = out;
                Ok(())
            }
            (mut out, Some(e)) => {
                out.truncate(before);
                *buffer = out;
                Err(e)
            }
        }
    }

    /// Decodes a document, with the reader's default limits.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] naming the element path where decoding failed.
    fn from_xml(text: &str) -> Result<Self, DecodeError> {
        let mut r = Reader::new(text)?;
        Self::read_document(&mut r)
    }

    /// Decodes a document from a reader positioned before the root element.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] naming the element path where decoding failed.
    fn read_document(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start: Start<'_> = r.root()?;
        if !Self::accepts_root(start.name()) {
            return Err(r.error(DecodeErrorKind::UnexpectedRoot {
                expected: Self::ROOT,
                found: start.name_str().into_owned(),
            }));
        }
        let value = Self::read_element(r, &start).map_err(|e| e.at(Self::ROOT, None))?;
        r.finish()?;
        Ok(value)
    }
}

impl<M: Message> MessageExt for M {}

/// Whether a kind is signed with the `clientauth` hook (protocol §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Never hook-signed (registration carries its own inline signature, §3.3).
    None,
    /// Signed when the sender has a registered identity (SDK `MessageClass` None).
    Optional,
    /// Always signed (SDK `SigningRequired`).
    Required,
}

/// How the body and attachments of a kind are laid out in the payload (protocol §2.5, §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The whole document is the body; no attachments.
    Body,
    /// The body is the document with an empty `ReportBody`; the full document is attached
    /// (UTF-16LE with a BOM) under `attachment`.
    HeaderAndAttachment {
        /// The attachment name, e.g. `{00000000-0000-0000-0000-000000000003}` for a DDR.
        attachment: &'static str,
    },
    /// The whole document is the body; each collected file is attached under its decimal
    /// `CollectedFile/@ID`.
    BodyAndFiles,
}

/// The two delivery modes; the value of [`Delivery::KIND`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// Synchronous request/reply (`ReplyMode` `Sync`).
    Invoke,
    /// Fire-and-forget (`ReplyMode` `Async`); the MP answers `NoReply`.
    Post,
}

mod sealed {
    pub trait Sealed {}
    impl<R> Sealed for super::Reply<R> {}
    impl Sealed for super::NoReply {}
}

/// The delivery mode of a kind. Sealed: [`Reply`] and [`NoReply`] are the only modes.
pub trait Delivery: sealed::Sealed {
    /// The mode as a value, for logs and routing.
    const KIND: DeliveryKind;
}

/// Delivery mode of Invoke kinds: a typed reply `R` comes back. Type-level only.
pub struct Reply<R>(PhantomData<fn() -> R>);

/// Delivery mode of Post kinds: no reply. Uninhabited, type-level only.
pub enum NoReply {}

impl<R> Delivery for Reply<R> {
    const KIND: DeliveryKind = DeliveryKind::Invoke;
}

impl Delivery for NoReply {
    const KIND: DeliveryKind = DeliveryKind::Post;
}

/// A message kind: a body document bound to one endpoint and its wire metadata.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a message kind",
    label = "no endpoint is attached to this type",
    note = "an XML document such as `Report` can go to several endpoints; send the kind that wraps it (`DdrReport`, `HinvReport`, ...)"
)]
pub trait Endpoint: Sized {
    /// The document sent as the body.
    type Body: Message;
    /// `Msg/TargetEndpoint`, e.g. `MP_LocationManager`.
    const ENDPOINT: &'static str;
    /// The `FileType` property of the `Msg` header; `MP_RelayEndpoint` dispatches on it.
    const FILE_TYPE: Option<&'static str> = None;
    /// Whether the kind is signed with the `clientauth` hook.
    const SIGNING: Signing;
    /// How body and attachments are laid out.
    const LAYOUT: Layout = Layout::Body;
    /// The kind's name, e.g. `DdrReport`.
    const NAME: &'static str;
    /// [`Reply<R>`] for Invoke kinds, [`NoReply`] for Post kinds.
    type Delivery: Delivery;
    /// The body document.
    fn body(&self) -> &Self::Body;
    /// Wraps a body document.
    fn from_body(body: Self::Body) -> Self;
}

/// A kind sent with Invoke: the MP answers with a typed reply.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an Invoke message kind",
    label = "this type has no typed reply",
    note = "Post kinds are fire-and-forget; send them with `post`",
    note = "a bare XML document is not a kind; wrap it in the kind that names its endpoint"
)]
pub trait Invoke: Endpoint<Delivery = Reply<<Self as Invoke>::Reply>> {
    /// The reply document.
    type Reply: Message;
}

/// A kind sent with Post: fire-and-forget.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Post message kind",
    label = "this type is not fire-and-forget",
    note = "Invoke kinds return a typed reply; send them with `invoke`",
    note = "a bare XML document is not a kind; wrap it in the kind that names its endpoint"
)]
pub trait Post: Endpoint<Delivery = NoReply> {}
