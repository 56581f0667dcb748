//! XML reading and writing support that generated message code calls.
//!
//! This is the only module that names quick-xml. External types it lets through:
//! none in signatures — [`Start`] wraps `quick_xml::events::BytesStart`.
//!
//! - [`Reader`] is a pull reader over UTF-8 text with the limits of a hostile-input parser:
//!   no DTD, no entities beyond the five predefined ones and character references, a nesting
//!   limit and a size limit. Decoders built on it are lenient the way a management point is:
//!   unknown attributes and elements are skipped, children come in any order.
//! - [`Writer`] writes canonical XML: no declaration, no whitespace, `<X/>` for empty
//!   elements, every text and attribute value escaped. It never fails while writing; a
//!   character XML cannot carry is recorded and reported by [`Writer::finish`].

mod any;

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};

pub use self::any::{AnyAttribute, AnyElement, SmolStr};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::value::XmlValue;

/// Default nesting limit of a [`Reader`].
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default size limit of a [`Reader`], in bytes of UTF-8 text.
pub const DEFAULT_MAX_SIZE: usize = 256 * 1024 * 1024;

/// A complex XML type: written under, and read from, an element of any name.
///
/// Generated for every complex type; roots additionally implement [`crate::Message`].
pub trait XmlElement: Sized {
    /// Writes `self` as the element `name`.
    fn write_element(&self, name: &str, w: &mut Writer);
    /// Reads `self` from the element that `start` opened, up to and including its end tag.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the path below `start` where decoding failed.
    fn read_element(r: &mut Reader<'_>, start: &Start<'_>) -> Result<Self, DecodeError>;
}

/// An `xs:choice`: each alternative knows the element it is written as.
pub trait XmlChoice {
    /// Writes the chosen alternative as its element.
    fn write_choice(&self, w: &mut Writer);
}

/// A start tag (or empty-element tag) handed to a decoder.
#[derive(Debug)]
pub struct Start<'a> {
    tag: BytesStart<'a>,
    empty: bool,
    /// For an element [`Reader::next_child`] read whole from the source: the byte range of its
    /// text in the document (its content and end tag are consumed already).
    text: Option<(usize, usize)>,
}

impl<'a> Start<'a> {
    /// The element name as written (namespace-less documents: prefix included, if any).
    pub fn name(&self) -> &[u8] {
        self.tag.name().into_inner()
    }

    /// The element name as a string (lossy for invalid UTF-8, which the reader never yields).
    pub fn name_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.name())
    }

    /// Whether this is an empty-element tag (`<X/>`): there is no content and no end tag.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether the element was read whole with its text (see [`Reader::next_child`]).
    fn is_read(&self) -> bool {
        self.text.is_some()
    }

    /// Whether the tag has any attributes (a cheap check before iterating).
    pub fn has_attrs(&self) -> bool {
        self.tag.attributes_raw().iter().any(|b| !b.is_ascii_whitespace())
    }

    /// The attributes of the tag.
    pub fn attrs(&self) -> Attrs<'_> {
        Attrs {
            inner: self.tag.attributes(),
            plain: Some(self.tag.attributes_raw()),
            seen: [&[]; MAX_PLAIN_ATTRS],
            read: 0,
        }
    }
}

/// An attribute: its name as written and its unescaped value.
pub type Attribute<'t> = (&'t [u8], Cow<'t, str>);

/// Iterator over the attributes of a [`Start`].
pub struct Attrs<'t> {
    inner: quick_xml::events::attributes::Attributes<'t>,
    /// The attributes not yet read while they are plain (see [`split_attribute`]): they are
    /// split here without quick-xml's iterator, which allocates for its duplicate check. At the
    /// first one that is not (or a repeated name), quick-xml's iterator takes over after the
    /// ones read, and reports any error.
    plain: Option<&'t [u8]>,
    /// Names of the attributes read the plain way.
    seen: [&'t [u8]; MAX_PLAIN_ATTRS],
    read: usize,
}

/// Attributes read the plain way before quick-xml's iterator takes over.
const MAX_PLAIN_ATTRS: usize = 16;

impl<'t> Attrs<'t> {
    /// The next attribute as `(name, unescaped value)`.
    ///
    /// # Errors
    ///
    /// Malformed attributes (duplicates, missing quotes) and unknown entity references.
    pub fn next_attr(&mut self, r: &Reader<'t>) -> Result<Option<Attribute<'t>>, DecodeError> {
        if let Some(rest) = self.plain {
            match split_attribute(rest) {
                Some(None) => return Ok(None),
                Some(Some((key, raw, rest)))
                    if self.read < MAX_PLAIN_ATTRS && !self.seen[..self.read].contains(&key) =>
                {
                    if let Some(raw) = r.source_str(raw) {
                        self.plain = Some(rest);
                        self.seen[self.read] = key;
                        self.read += 1;
                        return Ok(Some((key, r.unescape(raw)?)));
                    }
                }
                _ => {}
            }
            self.plain = None;
            for _ in 0..self.read {
                // Read already, without error; quick-xml notes the names for its check.
                let _ = self.inner.next();
            }
        }
        let Some(attr) = self.inner.next() else {
            return Ok(None);
        };
        let attr = attr.map_err(|e| r.error(DecodeErrorKind::Syntax(e.to_string())))?;
        let value = match r.source_str(&attr.value) {
            Some(raw) => r.unescape(raw)?,
            None => {
                let value = attr
                    .decode_and_unescape_value(r.inner.decoder())
                    .map_err(|e| r.xml_error(&e))?;
                r.check_resolved(value)?
            }
        };
        Ok(Some((attr.key.into_inner(), value)))
    }
}

/// Splits the first plain attribute off `raw` as `(name, raw value, rest)`; `Some(None)` when
/// only whitespace is left and `None` when the text is not plain. Plain is `name="value"` or
/// `name='value'` after whitespace, with a name of [`NAME_BYTES`] and optional whitespace
/// around `=`.
#[allow(clippy::type_complexity)]
fn split_attribute(raw: &[u8]) -> Option<Option<(&[u8], &[u8], &[u8])>> {
    let skip_space = |b: &[u8], i: usize| {
        b[i..]
            .iter()
            .position(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(b.len(), |p| i + p)
    };
    let start = skip_space(raw, 0);
    if start == raw.len() {
        return Some(None);
    }
    if start == 0 {
        // Attributes follow whitespace (the tag name ends at the first whitespace).
        return None;
    }
    let key_len = raw[start..].iter().position(|&b| !NAME_BYTES[usize::from(b)])?;
    if key_len == 0 {
        return None;
    }
    let key = &raw[start..start + key_len];
    let eq = skip_space(raw, start + key_len);
    if raw.get(eq) != Some(&b'=') {
        return None;
    }
    let open = skip_space(raw, eq + 1);
    let quote = *raw.get(open).filter(|&&q| q == b'"' || q == b'\'')?;
    let len = raw[open + 1..].iter().position(|&b| b == quote)?;
    let value = &raw[open + 1..open + 1 + len];
    let rest = &raw[open + 2 + len..];
    if rest.first().is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        return None;
    }
    Some(Some((key, value, rest)))
}

/// Whether `name` is an XML name (XML 1.0 fifth edition, §2.3 `Name`). [`AnyElement`] reads
/// no other, and [`Writer`] writes no other from it.
pub(crate) fn is_xml_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_ascii() {
        return bytes.first().is_some_and(|&b| b.is_ascii_alphabetic() || matches!(b, b'_' | b':'))
            && bytes.iter().all(|&b| ASCII_NAME_BYTES[usize::from(b)]);
    }
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

/// `NameStartChar` (§2.3).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// `NameChar` (§2.3).
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// ASCII bytes allowed after the first character of an XML name.
static ASCII_NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' || c == b':';
        b += 1;
    }
    t
};

/// Whether XML 1.0 allows `c` (§2.2 `Char`; a `char` is never a surrogate).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\0'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// The byte offset and code point of the first character of the UTF-8 text `bytes` that XML
/// 1.0 does not allow: a C0 control other than tab, line feed and carriage return, or U+FFFE
/// or U+FFFF (`EF BF BE`, `EF BF BF`).
///
/// Eight bytes at a time: a word with no byte under `0x20` and no `0xEF` is skipped whole.
fn first_invalid_char(bytes: &[u8]) -> Option<(usize, u32)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let check = |at: usize| -> Option<(usize, u32)> {
        let b = bytes[at];
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return Some((at, u32::from(b)));
        }
        if b == 0xEF && bytes.get(at + 1) == Some(&0xBF) {
            match bytes.get(at + 2) {
                Some(0xBE) => return Some((at, 0xFFFE)),
                Some(0xBF) => return Some((at, 0xFFFF)),
                _ => {}
            }
        }
        None
    };
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte under 0x20, or a byte equal to 0xEF (zero after the XOR): exact as to
        // whether the word holds one (the borrow only marks bytes above a marked one).
        let low = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let ef = w ^ (ONES * 0xEF);
        let ef = ef.wrapping_sub(ONES) & !ef & HIGHS;
        if low | ef != 0
            && let Some(found) = (at..at + 8).find_map(check)
        {
            return Some(found);
        }
        at += 8;
    }
    (at..bytes.len()).find_map(check)
}

/// A pull reader over a UTF-8 XML document, with hostile-input limits.
pub struct Reader<'a> {
    /// The document; events borrow from it, so their text needs no second UTF-8 check.
    src: &'a str,
    inner: quick_xml::Reader<&'a [u8]>,
    depth: usize,
    max_depth: usize,
    /// Joins the pieces of a text run that is not one borrowed piece (see [`Run`]).
    scratch: String,
    /// The last event ended a tag (start, end or empty-element), so quick-xml's unread input
    /// starts at content: [`Reader::simple_child`] may read from it.
    at_content: bool,
}

impl<'a> Reader<'a> {
    /// Creates a reader with the default limits.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::TooLarge`] when `text` exceeds [`DEFAULT_MAX_SIZE`].
    pub fn new(text: &'a str) -> Result<Self, DecodeError> {
        Self::with_limits(text, DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE)
    }

    /// Creates a reader with the given nesting and size limits.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::TooLarge`] when `text` exceeds `max_size`.
    pub fn with_limits(
        text: &'a str,
        max_depth: usize,
        max_size: usize,
    ) -> Result<Self, DecodeError> {
        if text.len() > max_size {
            return Err(DecodeError::new(DecodeErrorKind::TooLarge { limit: max_size }, 0));
        }
        if let Some((offset, code)) = first_invalid_char(text.as_bytes()) {
            let offset = u64::try_from(offset).unwrap_or(u64::MAX);
            return Err(DecodeError::new(DecodeErrorKind::InvalidChar { code }, offset));
        }
        let mut inner = quick_xml::Reader::from_str(text);
        let config = inner.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Ok(Self {
            src: text,
            inner,
            depth: 0,
            max_depth,
            scratch: String::new(),
            at_content: false,
        })
    }

    /// `bytes` as a slice of the document, when it is one (every event of a reader over `&str`
    /// borrows from it): the document is valid UTF-8 and events end at ASCII markup, so no
    /// UTF-8 check is needed. `None` for bytes from elsewhere.
    fn source_str(&self, bytes: &[u8]) -> Option<&'a str> {
        let start = bytes.as_ptr().addr().checked_sub(self.src.as_ptr().addr())?;
        self.src.get(start..start.checked_add(bytes.len())?)
    }

    /// The content of a text or CDATA event: borrowed from the document when it needs no
    /// line-end normalisation, else as `decode` (quick-xml's XML 1.0 content) gives it.
    fn content(
        &self,
        raw: &[u8],
        decode: impl FnOnce() -> Result<Cow<'a, str>, quick_xml::encoding::EncodingError>,
    ) -> Result<Cow<'a, str>, DecodeError> {
        if let Some(s) = self.source_str(raw)
            && !raw.contains(&b'\r')
        {
            return Ok(Cow::Borrowed(s));
        }
        decode().map_err(|e| self.error(DecodeErrorKind::Syntax(e.to_string())))
    }

    /// Appends `piece` to the text run `run`.
    fn push_piece(&mut self, run: &mut Run<'a>, piece: Cow<'a, str>) {
        match (&*run, piece) {
            (Run::Empty, Cow::Borrowed(s)) => *run = Run::One(s),
            (Run::Empty, Cow::Owned(s)) => {
                self.scratch.clear();
                self.scratch.push_str(&s);
                *run = Run::Scratch;
            }
            (Run::One(prev), piece) => {
                self.scratch.clear();
                self.scratch.push_str(prev);
                self.scratch.push_str(&piece);
                *run = Run::Scratch;
            }
            (Run::Scratch, piece) => self.scratch.push_str(&piece),
        }
    }

    /// Appends a character (a resolved reference) to the text run `run`.
    fn push_char(&mut self, run: &mut Run<'a>, c: char) {
        match *run {
            Run::Empty => self.scratch.clear(),
            Run::One(prev) => {
                self.scratch.clear();
                self.scratch.push_str(prev);
            }
            Run::Scratch => {}
        }
        self.scratch.push(c);
        *run = Run::Scratch;
    }

    /// The text of the run `run`.
    fn run_str<'s>(&'s self, run: &Run<'a>) -> &'s str {
        match *run {
            Run::Empty => "",
            Run::One(s) => s,
            Run::Scratch => &self.scratch,
        }
    }

    /// Builds an error of `kind` at the current position.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.inner.buffer_position())
    }

    fn xml_error(&self, e: &quick_xml::Error) -> DecodeError {
        if let quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
            _,
            name,
        )) = e
        {
            return self.error(DecodeErrorKind::UnknownEntity(name.clone()));
        }
        self.error(DecodeErrorKind::Syntax(e.to_string()))
    }

    /// Resolves the references in an attribute value (borrowed when there are none).
    fn unescape(&self, raw: &'a str) -> Result<Cow<'a, str>, DecodeError> {
        if !raw.as_bytes().contains(&b'&') {
            return Ok(Cow::Borrowed(raw));
        }
        let value = quick_xml::escape::unescape(raw)
            .map_err(|e| self.xml_error(&quick_xml::Error::Escape(e)))?;
        self.check_resolved(value)
    }

    /// `value`, an attribute value whose references were resolved, unless a character
    /// reference in it named a character XML does not allow (the document's own characters
    /// were checked when the reader was made).
    fn check_resolved(&self, value: Cow<'a, str>) -> Result<Cow<'a, str>, DecodeError> {
        match value.chars().find(|&c| !is_xml_char(c)) {
            Some(c) => Err(self.error(DecodeErrorKind::InvalidChar { code: u32::from(c) })),
            None => Ok(value),
        }
    }

    /// The error for a missing required element `name`.
    pub fn missing_element(&self, name: &'static str) -> DecodeError {
        self.error(DecodeErrorKind::MissingElement(name))
    }

    /// The error for a missing required attribute `name`.
    pub fn missing_attribute(&self, name: &'static str) -> DecodeError {
        self.error(DecodeErrorKind::MissingAttribute(name)).at_attr(name)
    }

    /// The error for a second occurrence of the single element `name`.
    pub fn duplicate(&self, name: &'static str) -> DecodeError {
        self.error(DecodeErrorKind::DuplicateElement(name))
    }

    /// Parses a lexical value.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::Value`] when `text` does not parse as `T`.
    pub fn value<T: XmlValue>(&self, text: &str) -> Result<T, DecodeError> {
        T::parse_xml(text).map_err(|e| self.error(DecodeErrorKind::Value(e)))
    }

    fn next_event(&mut self) -> Result<Event<'a>, DecodeError> {
        let ev = self.inner.read_event().map_err(|e| self.xml_error(&e))?;
        self.at_content = matches!(ev, Event::Start(_) | Event::End(_) | Event::Empty(_));
        match &ev {
            Event::DocType(_) => return Err(self.error(DecodeErrorKind::Dtd)),
            Event::Start(_) => {
                self.depth += 1;
                if self.depth > self.max_depth {
                    return Err(self.error(DecodeErrorKind::TooDeep { limit: self.max_depth }));
                }
            }
            Event::End(_) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Ok(ev)
    }

    /// Reads up to the root element and returns its start tag.
    ///
    /// # Errors
    ///
    /// Malformed XML, a DTD, text before the root, or no root at all.
    pub fn root(&mut self) -> Result<Start<'a>, DecodeError> {
        loop {
            match self.next_event()? {
                Event::Start(tag) => return Ok(Start { tag, empty: false, text: None }),
                Event::Empty(tag) => return Ok(Start { tag, empty: true, text: None }),
                Event::Eof => return Err(self.error(DecodeErrorKind::NoRoot)),
                Event::Text(t) if is_xml_space(&t) => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                _ => {
                    return Err(
                        self.error(DecodeErrorKind::Syntax("text before the root element".into()))
                    );
                }
            }
        }
    }

    /// Checks that nothing but whitespace, comments and processing instructions follows the
    /// root element.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::TrailingContent`] or malformed XML.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        loop {
            match self.next_event()? {
                Event::Eof => return Ok(()),
                Event::Text(t) if is_xml_space(&t) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => return Err(self.error(DecodeErrorKind::TrailingContent)),
            }
        }
    }

    /// The next child element of the element `parent` opened, or `None` at its end tag.
    ///
    /// Text between child elements is ignored (pretty-printed documents are accepted). A child
    /// `<Name>text</Name>` with no attributes and no references is read whole from the source
    /// (`Reader::simple_child`); [`Reader::text`] and [`Reader::skip`] then return at once.
    ///
    /// # Errors
    ///
    /// Malformed XML, a DTD, or the nesting limit.
    pub fn next_child(&mut self, parent: &Start<'_>) -> Result<Option<Start<'a>>, DecodeError> {
        if parent.empty || parent.text.is_some() {
            return Ok(None);
        }
        if let Some((name, run)) = self.simple_child(false) {
            let text = match run {
                Run::One(t) => {
                    let at = t.as_ptr().addr() - self.src.as_ptr().addr();
                    (at, at + t.len())
                }
                Run::Empty | Run::Scratch => (0, 0),
            };
            let tag = BytesStart::from_content(name, name.len());
            return Ok(Some(Start { tag, empty: false, text: Some(text) }));
        }
        loop {
            match self.next_event()? {
                Event::Start(tag) => return Ok(Some(Start { tag, empty: false, text: None })),
                Event::Empty(tag) => return Ok(Some(Start { tag, empty: true, text: None })),
                Event::End(_) => return Ok(None),
                Event::Eof => {
                    return Err(
                        self.error(DecodeErrorKind::Syntax("unexpected end of document".into()))
                    );
                }
                Event::GeneralRef(r) => {
                    self.check_ref(&r)?;
                }
                _ => {}
            }
        }
    }

    fn check_ref(&self, r: &quick_xml::events::BytesRef<'_>) -> Result<Option<char>, DecodeError> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) if !is_xml_char(c) => {
                    Err(self.error(DecodeErrorKind::InvalidChar { code: u32::from(c) }))
                }
                Ok(Some(c)) => Ok(Some(c)),
                Ok(None) | Err(_) => {
                    Err(self.error(DecodeErrorKind::Syntax("invalid character reference".into())))
                }
            };
        }
        let name = r.decode().map_err(|e| self.error(DecodeErrorKind::Syntax(e.to_string())))?;
        match quick_xml::escape::resolve_predefined_entity(&name) {
            Some(s) => Ok(s.chars().next()),
            None => Err(self.error(DecodeErrorKind::UnknownEntity(name.into_owned()))),
        }
    }

    /// Reads the text content of the element `start` opened, up to its end tag.
    ///
    /// CDATA sections and references are merged into the text; child elements are skipped.
    ///
    /// # Errors
    ///
    /// Malformed XML, unknown entities, or the nesting limit.
    pub fn text(&mut self, start: &Start<'_>) -> Result<Cow<'a, str>, DecodeError> {
        if start.empty {
            return Ok(Cow::Borrowed(""));
        }
        if let Some((from, to)) = start.text {
            return Ok(Cow::Borrowed(&self.src[from..to]));
        }
        let mut run = Run::Empty;
        while let Some(child) = self.next_node(&mut run)? {
            self.skip(&child)?;
        }
        Ok(match run {
            Run::Empty => Cow::Borrowed(""),
            Run::One(s) => Cow::Borrowed(s),
            Run::Scratch => Cow::Owned(self.scratch.clone()),
        })
    }

    /// Reads the text content of the element `start` opened and parses it as `T`.
    ///
    /// # Errors
    ///
    /// As [`Reader::text`], or [`DecodeErrorKind::Value`] when the text does not parse.
    pub fn read_value<T: XmlValue>(&mut self, start: &Start<'_>) -> Result<T, DecodeError> {
        let text = self.text(start)?;
        self.value(&text)
    }

    /// Skips the content and end tag of the element `start` opened.
    ///
    /// # Errors
    ///
    /// Malformed XML or the nesting limit.
    pub fn skip(&mut self, start: &Start<'_>) -> Result<(), DecodeError> {
        if start.empty || start.text.is_some() {
            return Ok(());
        }
        self.skip_to_depth(self.depth - 1)
    }

    fn skip_to_depth(&mut self, target: usize) -> Result<(), DecodeError> {
        while self.depth > target {
            match self.next_event()? {
                Event::Eof => {
                    return Err(
                        self.error(DecodeErrorKind::Syntax("unexpected end of document".into()))
                    );
                }
                Event::GeneralRef(r) => {
                    self.check_ref(&r)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads mixed content (for [`AnyElement`]): appends text, CDATA and references to `run`
    /// and returns the next child element, or `None` at the end tag.
    fn next_node(&mut self, run: &mut Run<'a>) -> Result<Option<Start<'a>>, DecodeError> {
        loop {
            match self.next_event()? {
                Event::Start(tag) => return Ok(Some(Start { tag, empty: false, text: None })),
                Event::Empty(tag) => return Ok(Some(Start { tag, empty: true, text: None })),
                Event::Text(t) => {
                    let piece = self.content(&t, || t.xml10_content())?;
                    self.push_piece(run, piece);
                }
                Event::CData(c) => {
                    let piece = self.content(&c, || c.xml10_content())?;
                    self.push_piece(run, piece);
                }
                Event::GeneralRef(r) => {
                    if let Some(c) = self.check_ref(&r)? {
                        self.push_char(run, c);
                    }
                }
                Event::End(_) => return Ok(None),
                Event::Eof => {
                    return Err(
                        self.error(DecodeErrorKind::Syntax("unexpected end of document".into()))
                    );
                }
                _ => {}
            }
        }
    }

    /// Reads the next child element straight from the source when it has the shape of a WMI
    /// property: `<Name>text</Name>` or `<Name/>`, optionally after whitespace, with no
    /// attributes, no markup in the text, no carriage returns and only the five predefined
    /// entities. Returns its name and text, or `None` having read nothing (quick-xml then reads
    /// it the general way and reports any error).
    ///
    /// The element is consumed whole, so quick-xml's state (open elements, position) stays
    /// that of a reader between two sibling elements. Call only with an empty text run. With
    /// `entities` false, text with references is left to quick-xml too (the run is then never
    /// [`Run::Scratch`]).
    fn simple_child(&mut self, entities: bool) -> Option<(&'a str, Run<'a>)> {
        if !self.at_content || self.depth >= self.max_depth {
            return None;
        }
        let rest: &'a [u8] = self.inner.get_ref();
        let open = rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))?;
        if rest[open] != b'<' {
            return None;
        }
        let name_start = open + 1;
        let name_len = rest[name_start..].iter().position(|&b| !NAME_BYTES[usize::from(b)])?;
        if name_len == 0 {
            return None;
        }
        let name_end = name_start + name_len;
        let name = &rest[name_start..name_end];
        let (run, end) = match rest[name_end] {
            b'>' => {
                let text_start = name_end + 1;
                // Entities are resolved into the scratch buffer from `last` on.
                let mut last = text_start;
                let mut decoded = false;
                let mut i = text_start;
                loop {
                    i = find_special(rest, i, &CONTENT_STOP)?;
                    if rest[i] == b'<' {
                        break;
                    }
                    if rest[i] == b'\r' {
                        return None;
                    }
                    if !entities {
                        return None;
                    }
                    let (c, len) = predefined_entity(&rest[i + 1..])?;
                    if !decoded {
                        self.scratch.clear();
                        decoded = true;
                    }
                    self.scratch.push_str(self.source_str(&rest[last..i])?);
                    self.scratch.push(c);
                    i += 1 + len;
                    last = i;
                }
                let close = &rest[i + 1..];
                if close.first() != Some(&b'/')
                    || close.get(1..=name_len) != Some(name)
                    || close.get(name_len + 1) != Some(&b'>')
                {
                    return None;
                }
                let tail = self.source_str(&rest[last..i])?;
                let run = if decoded {
                    self.scratch.push_str(tail);
                    Run::Scratch
                } else if tail.is_empty() {
                    Run::Empty
                } else {
                    Run::One(tail)
                };
                (run, i + name_len + 3)
            }
            b'/' if rest.get(name_end + 1) == Some(&b'>') => (Run::Empty, name_end + 2),
            _ => return None,
        };
        let name = self.source_str(name)?;
        std::io::BufRead::consume(&mut self.inner.stream(), end);
        self.at_content = true;
        Some((name, run))
    }

    /// The name of `start` as a string (borrowed from the document).
    fn name_of(&self, start: &Start<'_>) -> Cow<'a, str> {
        match self.source_str(start.name()) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(start.name_str().into_owned()),
        }
    }
}

/// A run of text pieces: empty, one piece borrowed from the document, or joined in the
/// reader's scratch buffer (no allocation per run once the buffer has grown).
#[derive(Clone, Copy)]
enum Run<'a> {
    Empty,
    One(&'a str),
    Scratch,
}

/// Bytes of an element name that [`Reader::simple_child`] accepts: ASCII letters, digits,
/// `_ - . :` and any byte of a multi-byte character.
static NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':') || c >= 0x80;
        b += 1;
    }
    t
};

/// Bytes that end a stretch of plain text for [`Reader::simple_child`]: markup, a reference,
/// and a carriage return (line ends are left to quick-xml).
static CONTENT_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'<' as usize] = true;
    t[b'&' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

/// The character and length of a predefined entity reference after its `&` (`amp;` …).
fn predefined_entity(after_amp: &[u8]) -> Option<(char, usize)> {
    [("lt;", '<'), ("gt;", '>'), ("amp;", '&'), ("quot;", '"'), ("apos;", '\'')]
        .into_iter()
        .find(|(name, _)| after_amp.starts_with(name.as_bytes()))
        .map(|(name, c)| (c, name.len()))
}

fn is_xml_space(t: &[u8]) -> bool {
    t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether the name `found` in a document matches the schema name `expected`: exactly, or
/// ignoring ASCII case, as the management point and the SDK match names (`Ack` for `ACK`).
#[inline]
pub fn name_eq(found: &[u8], expected: &[u8]) -> bool {
    found == expected || found.eq_ignore_ascii_case(expected)
}

/// The candidate sharing the longest (ASCII case-insensitive) prefix with `found`; the first
/// such on a tie. Picks among reply types that are parsed by content
/// (`SiteInformationReply` → `SiteInfoReply`).
pub fn closest_name<'c>(found: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let score = |c: &str| {
        found.bytes().zip(c.bytes()).take_while(|(a, b)| a.eq_ignore_ascii_case(b)).count()
    };
    let mut best: Option<(&'c str, usize)> = None;
    for &c in candidates {
        let s = score(c);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((c, s));
        }
    }
    best.map(|(c, _)| c)
}

/// Reads the root element name of `text` without decoding the document.
///
/// # Errors
///
/// Malformed XML before the root, a DTD, or no root element.
pub fn root_name(text: &str) -> Result<String, DecodeError> {
    let mut r = Reader::new(text)?;
    let start = r.root()?;
    Ok(start.name_str().into_owned())
}

/// A canonical XML writer into a `String`.
///
/// Writing is infallible; [`Writer::finish`] reports a character XML 1.0 cannot carry.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    scratch: String,
    /// A start tag is open (`<X a="1"`) and not yet closed with `>`.
    open: bool,
    /// Byte offset of the innermost start tag's name in `out` (for error messages).
    last_start: usize,
    error: Option<EncodeError>,
    /// Names of `xs:any` children already found to be XML names, per parent element name
    /// and by position among their siblings: the instances of a WMI class repeat its
    /// property names in order, so [`AnyElement`] compares with these
    /// before checking a name.
    pub(crate) known_names: any::KnownNames,
}

impl Writer {
    /// Creates an empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a writer whose buffer holds `capacity` bytes before growing.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { out: String::with_capacity(capacity), ..Self::default() }
    }

    /// Writes into an existing buffer (its content is kept), to reuse allocations.
    pub fn with_buffer(out: String) -> Self {
        Self { out, ..Self::default() }
    }

    /// The XML written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// Returns the document.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidChar`] when a value held a character XML 1.0 cannot carry.
    pub fn finish(self) -> Result<String, EncodeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    /// Returns the buffer and the first recorded error, if any (the buffer is kept either way).
    pub fn finish_keep(self) -> (String, Option<EncodeError>) {
        (self.out, self.error)
    }

    fn close_start(&mut self) {
        if self.open {
            self.out.push('>');
            self.open = false;
        }
    }

    /// Opens the element `name`: writes `<name` and leaves the tag open for attributes.
    pub fn start(&mut self, name: &str) {
        self.close_start();
        self.out.push('<');
        self.last_start = self.out.len();
        self.out.push_str(name);
        self.open = true;
    }

    /// Writes the attribute `name="value"` into the open start tag.
    pub fn attr<V: XmlValue>(&mut self, name: &str, value: &V) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        if V::PLAIN {
            value.write_xml(&mut self.out);
        } else if let Some(s) = value.as_xml_str() {
            self.escape(s, &ATTR_SPECIAL);
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            value.write_xml(&mut scratch);
            self.escape(&scratch, &ATTR_SPECIAL);
            self.scratch = scratch;
        }
        self.out.push('"');
    }

    /// Writes escaped text content into the current element. Empty text writes nothing, so an
    /// element with empty text is written as `<X/>`.
    pub fn text<V: XmlValue>(&mut self, value: &V) {
        if V::PLAIN {
            let mark = self.out.len();
            let was_open = self.open;
            self.close_start();
            let content = self.out.len();
            value.write_xml(&mut self.out);
            if self.out.len() == content && was_open {
                // Nothing written: keep the start tag open so the element self-closes.
                self.out.truncate(mark);
                self.open = true;
            }
        } else if let Some(s) = value.as_xml_str() {
            if !s.is_empty() {
                self.close_start();
                self.escape(s, &TEXT_SPECIAL);
            }
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            value.write_xml(&mut scratch);
            if !scratch.is_empty() {
                self.close_start();
                self.escape(&scratch, &TEXT_SPECIAL);
            }
            self.scratch = scratch;
        }
    }

    /// Closes the element `name`: `/>` when it got no content, else `</name>`.
    pub fn end(&mut self, name: &str) {
        if self.open {
            self.out.push_str("/>");
            self.open = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
    }

    /// Writes `<name>value</name>` (or `<name/>` for an empty value).
    pub fn simple<V: XmlValue>(&mut self, name: &str, value: &V) {
        self.start(name);
        self.text(value);
        self.end(name);
    }

    /// Writes the element `name` with the text `text` and nothing else: the same bytes as
    /// [`Writer::simple`] (`<name>text</name>`, or `<name/>` for empty text), with one
    /// reservation for the whole element (the shape of each of the ~25,000 WMI properties of
    /// a 2 MB hardware inventory).
    pub(crate) fn leaf(&mut self, name: &str, text: &str) {
        self.close_start();
        // Escaping may need more; most values need none.
        self.out.reserve(2 * name.len() + text.len() + 5);
        self.out.push('<');
        self.last_start = self.out.len();
        self.out.push_str(name);
        if text.is_empty() {
            self.out.push_str("/>");
            return;
        }
        self.out.push('>');
        self.escape(text, &TEXT_SPECIAL);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Escapes `s` into the output, copying runs of ordinary bytes whole.
    ///
    /// Eight bytes at a time: a word that [`may_be_special`] clears is skipped whole, the
    /// bytes of one it flags are looked up in `special` in the same pass, so a value with
    /// several markup characters is scanned once. A text of eight bytes or more ends with its
    /// last eight bytes as one more word (overlapping bytes already scanned), instead of a
    /// byte loop over the last one to seven: most values are short, and that loop cost a
    /// mispredicted branch per value.
    #[inline(always)]
    fn escape(&mut self, s: &str, special: &[bool; 256]) {
        let bytes = s.as_bytes();
        let quote = special[usize::from(b'"')];
        let mut last = 0;
        let mut i = 0;
        while i + 8 <= bytes.len() {
            let word: [u8; 8] = bytes[i..i + 8].try_into().expect("eight bytes");
            if may_be_special(word, quote) {
                for (j, &b) in word.iter().enumerate() {
                    if special[usize::from(b)] {
                        last = self.escape_at(s, last, i + j);
                    }
                }
            }
            i += 8;
        }
        if i < bytes.len() {
            // The bytes before `i` are done: a flag in the overlapping word counts only from `i`.
            let tail_may_be_special = bytes.len() < 8 || {
                let word: [u8; 8] = bytes[bytes.len() - 8..].try_into().expect("eight bytes");
                may_be_special(word, quote)
            };
            if tail_may_be_special {
                for (j, &b) in bytes.iter().enumerate().skip(i) {
                    if special[usize::from(b)] {
                        last = self.escape_at(s, last, j);
                    }
                }
            }
        }
        self.out.push_str(&s[last..]);
    }

    /// Handles the marked byte `s[at]`: writes `s[last..at]` and the byte's reference and
    /// returns where the next run starts, or records a character XML cannot carry (the byte
    /// stays in its run). `at` is not before `last`.
    fn escape_at(&mut self, s: &str, last: usize, at: usize) -> usize {
        let bytes = s.as_bytes();
        let b = bytes[at];
        let rep: &str = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\r' => "&#13;",
            b'\t' => "&#9;",
            b'\n' => "&#10;",
            0xEF => {
                // U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML characters.
                if bytes.get(at + 1) == Some(&0xBF)
                    && matches!(bytes.get(at + 2), Some(0xBE | 0xBF))
                {
                    let code = if bytes[at + 2] == 0xBE { 0xFFFE } else { 0xFFFF };
                    self.invalid_char(code);
                }
                return last;
            }
            _ => {
                self.invalid_char(u32::from(b));
                return last;
            }
        };
        self.out.push_str(&s[last..at]);
        self.out.push_str(rep);
        at + 1
    }

    /// Records an error found while writing; [`Writer::finish`] returns the first one.
    pub fn fail(&mut self, error: EncodeError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    fn invalid_char(&mut self, code: u32) {
        if self.error.is_none() {
            let rest = &self.out[self.last_start..];
            let end = rest.find([' ', '>', '/']).unwrap_or(rest.len());
            self.error = Some(EncodeError::InvalidChar { element: rest[..end].to_owned(), code });
        }
    }
}

/// The index of the first byte at or after `from` that `special` marks, scanning eight
/// bytes at a time and looking closer only at words that may hold one.
///
/// A text of eight bytes or more ends with one more word, the last eight bytes (overlapping
/// bytes already scanned), instead of a byte-by-byte loop over the last one to seven: most
/// values are short, and that loop cost a mispredicted branch per value.
fn find_special(bytes: &[u8], from: usize, special: &[bool; 256]) -> Option<usize> {
    let quote = special[usize::from(b'"')];
    let mut i = from;
    while i + 8 <= bytes.len() {
        let word: [u8; 8] = bytes[i..i + 8].try_into().expect("eight bytes");
        if may_be_special(word, quote)
            && let Some(p) = word.iter().position(|&b| special[usize::from(b)])
        {
            return Some(i + p);
        }
        i += 8;
    }
    if i == bytes.len() {
        return None;
    }
    if bytes.len() >= 8 {
        // The bytes before `i` in this word are not special (or before `from`): only a flag
        // in `bytes[i..]` counts, and the closer look starts at `i`.
        let word: [u8; 8] = bytes[bytes.len() - 8..].try_into().expect("eight bytes");
        if !may_be_special(word, quote) {
            return None;
        }
    }
    bytes[i..].iter().position(|&b| special[usize::from(b)]).map(|p| i + p)
}

/// Whether `word` may hold a byte that [`TEXT_SPECIAL`] (or, with `quote`, [`ATTR_SPECIAL`])
/// marks: a byte below 0x20 (tab and LF included: the table decides), markup or 0xEF. Never
/// false for a word that holds one.
fn may_be_special(word: [u8; 8], quote: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
    let has = |x: u64, v: u8| has_zero(x ^ (ONES * u64::from(v)));
    let x = u64::from_le_bytes(word);
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let flagged = below_space
        | has(x, b'&')
        | has(x, b'<')
        | has(x, b'>')
        | has(x, 0xEF)
        | if quote { has(x, b'"') } else { 0 };
    flagged != 0
}

/// Bytes that need attention in text content: markup, CR (kept as `&#13;` so it survives
/// line-end normalisation), C0 controls XML cannot carry, and 0xEF (lead byte of U+FFFE/F).
static TEXT_SPECIAL: [bool; 256] = special_bytes(false);
/// As [`TEXT_SPECIAL`], plus `"`, tab and LF (attribute values normalise those).
static ATTR_SPECIAL: [bool; 256] = special_bytes(true);

const fn special_bytes(attribute: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    if !attribute {
        t[b'\t' as usize] = false;
        t[b'\n' as usize] = false;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'"' as usize] = attribute;
    t[0xEF] = true;
    t
}

#[cfg(test)]
mod tests;
