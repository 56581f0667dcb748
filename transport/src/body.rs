//! UTF-16LE text of message bodies and `Msg` header parts (protocol §2.3, §2.5, §2.7, §8).
//!
//! A body is UTF-16LE without a byte-order mark and ends in exactly one UTF-16 NUL (`00 00`);
//! a header part starts with the `FF FE` byte-order mark and has no NUL. Decoding is strict
//! (field notes §2.3, §5 item 2; house style HS-52): an odd byte count, an unpaired surrogate, a
//! misplaced or missing BOM, a missing, extra or embedded NUL and bytes after the terminator are
//! each a distinct [`BodyError`] carrying the byte offset where it was found. Nothing is ever
//! truncated or replaced silently.
//!
//! Encoding widens ASCII blocks directly and encodes other characters with `str::encode_utf16`.
//! Decoding uses `encoding_rs` (field notes §6.4): a well-formed body goes through its UTF-16LE
//! decoder straight from the bytes, and anything else takes a strict path with
//! `encoding_rs::mem` that locates the error. No encoding_rs type appears in this module's API.

use encoding_rs::mem::{convert_utf16_to_str, utf16_valid_up_to};
use thiserror::Error;

/// Appends `xml` as a message body: UTF-16LE without a BOM, then one UTF-16 NUL (§2.5).
///
/// The NUL is counted in `Body/@Length`. `xml` must not contain U+0000 nor start with U+FEFF;
/// XML text never does (XML 1.0 §2.2 excludes `#x0`, and a leading U+FEFF is a byte-order
/// mark). Such text is encoded as given, and [`decode_body`] then rejects it.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// cmmp_transport::body::encode_body("<a/>", &mut out);
/// assert_eq!(out, b"<\0a\0/\0>\0\0\0");
/// ```
pub fn encode_body(xml: &str, out: &mut Vec<u8>) {
    push_utf16le(xml, out);
    out.extend_from_slice(&[0, 0]);
}

/// Decodes a message body: UTF-16LE, no BOM, exactly one trailing UTF-16 NUL (§2.5, §2.7).
///
/// Returns the text without its NUL. Checks run in this order, and the first failure is
/// returned: odd length, BOM, NUL placement, surrogates.
///
/// # Errors
///
/// [`BodyError::OddLength`], [`BodyError::UnexpectedBom`], [`BodyError::MissingNul`],
/// [`BodyError::ExtraNul`], [`BodyError::EmbeddedNul`], [`BodyError::TrailingBytes`] or
/// [`BodyError::UnpairedSurrogate`], each as documented on the variant.
///
/// # Examples
///
/// ```
/// use cmmp_transport::body::{BodyError, decode_body};
///
/// assert_eq!(decode_body(b"<\0a\0/\0>\0\0\0").unwrap(), "<a/>");
/// assert_eq!(decode_body(b"<\0a\0/\0>\0"), Err(BodyError::MissingNul));
/// ```
pub fn decode_body(bytes: &[u8]) -> Result<String, BodyError> {
    decode_body_limited(bytes, usize::MAX)
}

/// Decodes a message body like [`decode_body`], refusing input longer than `limit` bytes.
///
/// The length is checked before anything is allocated (field notes §5 item 9).
///
/// # Errors
///
/// [`BodyError::TooLarge`] when `bytes.len() > limit`, else the errors of [`decode_body`].
pub fn decode_body_limited(bytes: &[u8], limit: usize) -> Result<String, BodyError> {
    if bytes.len() > limit {
        return Err(BodyError::TooLarge { len: bytes.len(), limit });
    }
    if let Some(text) = decode_well_formed_body(bytes) {
        return Ok(text);
    }
    // Something is wrong: the strict path below finds what, and where.
    let units = utf16le_units(bytes)?;
    if units.first() == Some(&BOM_UNIT) {
        return Err(BodyError::UnexpectedBom);
    }
    decode_units(units, 0, Terminator::Required)
}

/// Appends `xml` as a `Msg` header part: the `FF FE` BOM, then UTF-16LE, no NUL (§2.3).
///
/// This is the `header_part` argument of [`crate::multipart::frame`].
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// cmmp_transport::body::encode_header("<Msg/>", &mut out);
/// assert_eq!(out, b"\xFF\xFE<\0M\0s\0g\0/\0>\0");
/// ```
pub fn encode_header(xml: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&BOM);
    push_utf16le(xml, out);
}

/// Decodes a `Msg` header part: UTF-16LE after a `FF FE` BOM whose presence `policy` decides.
///
/// The client requires the BOM it sends itself (§2.3); reply headers and peers' request
/// headers vary, and the SDK's reply parser strips a BOM "if present" (§2.3, §2.7), hence
/// [`BomPolicy::Optional`]. Headers carry no NUL, but one final UTF-16 NUL is tolerated and
/// dropped, since peers that NUL-terminate every UTF-16 string exist (field notes §2.3); any
/// other NUL is an error. A U+FEFF after the BOM is text and is kept.
///
/// # Errors
///
/// [`BodyError::OddLength`], [`BodyError::MissingBom`] (with [`BomPolicy::Required`]),
/// [`BodyError::ExtraNul`], [`BodyError::EmbeddedNul`] or [`BodyError::UnpairedSurrogate`].
pub fn decode_header(bytes: &[u8], policy: BomPolicy) -> Result<String, BodyError> {
    match decode_well_formed_header(bytes, policy) {
        Some(text) => Ok(text),
        // Something is wrong: the strict path finds what, and where.
        None => decode_header_strict(bytes, policy),
    }
}

/// [`decode_header`] code unit by code unit, naming what is wrong and where.
fn decode_header_strict(bytes: &[u8], policy: BomPolicy) -> Result<String, BodyError> {
    let mut units = utf16le_units(bytes)?;
    let bom_len = if units.first() == Some(&BOM_UNIT) {
        units.remove(0);
        BOM.len()
    } else if policy == BomPolicy::Required {
        return Err(BodyError::MissingBom);
    } else {
        0
    };
    decode_units(units, bom_len, Terminator::Optional)
}

/// Whether a header part must start with the `FF FE` byte-order mark (§2.3, §2.7).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum BomPolicy {
    /// The BOM may be absent; when present it is stripped.
    Optional,
    /// The BOM must be present, as in every header the client sends.
    Required,
}

/// Why UTF-16LE bytes are not a well-formed body or header part (field notes §2.3, §5 item 2).
///
/// Offsets count bytes from the start of the input, the BOM included.
#[derive(Clone, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum BodyError {
    /// A UTF-16 NUL inside the text, at `offset`, with more text after it.
    #[error("UTF-16 NUL inside the text at byte {offset}")]
    EmbeddedNul {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// More than one UTF-16 NUL at the end; `offset` is the first NUL past the one allowed.
    #[error("extra UTF-16 NUL at byte {offset}: exactly one terminates a body")]
    ExtraNul {
        /// Byte offset of the first superfluous NUL.
        offset: usize,
    },
    /// A header part without the `FF FE` BOM where [`BomPolicy::Required`] asks for one.
    #[error("header part does not start with the UTF-16LE BOM FF FE")]
    MissingBom,
    /// A body that does not end in a UTF-16 NUL and contains none (an empty body included).
    #[error("body does not end in a UTF-16 NUL")]
    MissingNul,
    /// An odd number of bytes, which no UTF-16 text has.
    #[error("odd length {len}: UTF-16 text has an even number of bytes")]
    OddLength {
        /// Length of the input in bytes.
        len: usize,
    },
    /// Input longer than the caller's limit; nothing was decoded.
    #[error("body of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit passed by the caller.
        limit: usize,
    },
    /// Bytes after the NUL that terminates a body; `offset` is the first of them.
    #[error("bytes after the body's NUL terminator at byte {offset}")]
    TrailingBytes {
        /// Byte offset of the first byte after the terminator.
        offset: usize,
    },
    /// A body starting with the `FF FE` BOM, which bodies do not carry (§2.5).
    #[error("body starts with a BOM (FF FE); bodies are UTF-16LE without one")]
    UnexpectedBom,
    /// A high surrogate not followed by a low one, or a low surrogate not preceded by a high.
    #[error("unpaired UTF-16 surrogate at byte {offset}")]
    UnpairedSurrogate {
        /// Byte offset of the unpaired surrogate.
        offset: usize,
    },
}

/// Whether the text must end in one UTF-16 NUL (bodies) or may (headers).
#[derive(Clone, Copy, Eq, PartialEq)]
enum Terminator {
    Optional,
    Required,
}

/// Appends `s` as UTF-16LE.
///
/// One pass: blocks of ASCII, almost all of an XML document, are widened in registers and
/// appended whole; other characters are encoded one by one.
fn push_utf16le(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() * 2);
    let mut rest = s;
    while !rest.is_empty() {
        let (blocks, _) = rest.as_bytes().as_chunks::<WIDEN_BLOCK>();
        let ascii_blocks = blocks.iter().take_while(|block| block.is_ascii()).count();
        widen_blocks(&blocks[..ascii_blocks], out);
        let widened = ascii_blocks * WIDEN_BLOCK;
        // Then characters one by one up to the next whole block: at least one block's worth,
        // or to the end. A block boundary need not be a character boundary, so go past it.
        let (_, tail) = rest.split_at(widened);
        let mut end = WIDEN_BLOCK.min(tail.len());
        while !tail.is_char_boundary(end) {
            end += 1;
        }
        let (chars, tail) = tail.split_at(end);
        for unit in chars.encode_utf16() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        rest = tail;
    }
}

/// Appends blocks of ASCII bytes as UTF-16LE: each byte, then a zero byte.
///
/// Written as a zero extension to `u16` and then bytes, which the compiler turns into vector
/// unpacks; a loop storing bytes with a stride of two stayed one byte at a time. Not inlined,
/// so that the ASCII check of the caller does not change how this loop is compiled (inlined
/// into it, the widening went back to one 16-bit unit at a time).
#[inline(never)]
fn widen_blocks(blocks: &[[u8; WIDEN_BLOCK]], out: &mut Vec<u8>) {
    out.reserve(blocks.len() * 2 * WIDEN_BLOCK);
    for block in blocks {
        let mut units = [0_u16; WIDEN_BLOCK];
        for (unit, &byte) in units.iter_mut().zip(block) {
            *unit = u16::from(byte);
        }
        let mut wide = [0_u8; 2 * WIDEN_BLOCK];
        let (pairs, _) = wide.as_chunks_mut::<2>();
        for (pair, unit) in pairs.iter_mut().zip(units) {
            *pair = unit.to_le_bytes();
        }
        out.extend_from_slice(&wide);
    }
}

/// Bytes widened per block by [`push_utf16le`].
const WIDEN_BLOCK: usize = 32;

/// The text of a body that passes every check of [`decode_body`], straight from the bytes
/// without a code-unit copy; `None` for any other input.
///
/// Even length, no leading BOM, valid UTF-16 (no unpaired surrogate), and exactly one NUL,
/// at the end: this accepts exactly what the strict path accepts, and returns the same text.
fn decode_well_formed_body(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) || bytes.starts_with(&BOM) {
        return None;
    }
    let mut text = encoding_rs::UTF_16LE
        .decode_without_bom_handling_and_without_replacement(bytes)?
        .into_owned();
    (text.pop() == Some('\0') && !text.contains('\0')).then_some(text)
}

/// The text of a header part that passes every check of [`decode_header`], straight from
/// the bytes without a code-unit copy; `None` for any other input.
///
/// Even length, the BOM as `policy` wants it (stripped), valid UTF-16, and no NUL but at most
/// one at the very end (dropped): exactly what the strict path accepts, with the same text.
fn decode_well_formed_header(bytes: &[u8], policy: BomPolicy) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let rest = match bytes.strip_prefix(&BOM) {
        Some(rest) => rest,
        None if policy == BomPolicy::Required => return None,
        None => bytes,
    };
    let mut text = encoding_rs::UTF_16LE
        .decode_without_bom_handling_and_without_replacement(rest)?
        .into_owned();
    if text.ends_with('\0') {
        text.pop();
    }
    (!text.contains('\0')).then_some(text)
}

/// Splits `bytes` into little-endian code units.
fn utf16le_units(bytes: &[u8]) -> Result<Vec<u16>, BodyError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(BodyError::OddLength { len: bytes.len() });
    }
    Ok(bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect())
}

/// Checks NUL placement and surrogates of `units` (BOM already removed) and transcodes them.
///
/// `base` is the byte offset of `units[0]` in the caller's input.
fn decode_units(
    mut units: Vec<u16>,
    base: usize,
    terminator: Terminator,
) -> Result<String, BodyError> {
    let at = |index: usize| base + index * 2;
    let text_len = match units.iter().position(|&unit| unit == 0) {
        None if terminator == Terminator::Required => return Err(BodyError::MissingNul),
        None => units.len(),
        Some(first) if first + 1 == units.len() => first,
        Some(first) if units[first..].iter().all(|&unit| unit == 0) => {
            return Err(BodyError::ExtraNul { offset: at(first + 1) });
        }
        Some(first) if terminator == Terminator::Required && units.last() != Some(&0) => {
            return Err(BodyError::TrailingBytes { offset: at(first + 1) });
        }
        Some(first) => return Err(BodyError::EmbeddedNul { offset: at(first) }),
    };
    units.truncate(text_len);
    let valid = utf16_valid_up_to(&units);
    if valid < units.len() {
        return Err(BodyError::UnpairedSurrogate { offset: at(valid) });
    }
    // convert_utf16_to_str needs three bytes of room per code unit.
    let mut text = "\0".repeat(units.len() * 3);
    let written = convert_utf16_to_str(&units, &mut text);
    text.truncate(written);
    text.shrink_to_fit();
    Ok(text)
}

/// The UTF-16LE byte-order mark.
const BOM: [u8; 2] = [0xFF, 0xFE];

/// The byte-order mark as a code unit.
const BOM_UNIT: u16 = 0xFEFF;

#[cfg(test)]
mod tests;
