//! `multipart/mixed` framing of requests and replies (protocol §2.2, §2.3, §2.7, §2.8).
//!
//! [`frame`] writes the canonical two-part body byte for byte as the SDK and every peer do
//! (§2.3). [`parse`] reads replies for the client and requests for the emulator, so it is as
//! lenient as an MP (§2.2): any boundary, any part headers (`Content-Disposition: form-data`
//! from Python peers, a `text/plain` second part from mprecon), a preamble and an epilogue,
//! bare LF line ends and transport padding after a delimiter. It is strict where leniency
//! would hide a broken reply (house style HS-54): a missing close delimiter, a part without
//! headers, a header line that is not `name: value` and every limit are typed errors.
//! Parts borrow from the input; nothing is copied.
//!
//! A part body that contains a line starting with `--` and the boundary ends the part early,
//! as in every MIME parser; a 26-character boundary makes that vanishingly unlikely for
//! compressed payloads, and UTF-16LE text cannot spell the ASCII boundary at all.

use thiserror::Error;

/// The boundary the SDK and every peer send (SDK `MPPostData.MimeBaseBoundary`, §2.2).
pub const BOUNDARY: &str = "aAbBcCdDv1234567890VxXyYzZ";

/// The `Content-Type` header value of a request framed by [`frame`] (§2.2).
///
/// # Examples
///
/// ```
/// assert_eq!(
///     cmmp_transport::multipart::content_type(),
///     r#"multipart/mixed; boundary="aAbBcCdDv1234567890VxXyYzZ""#,
/// );
/// ```
pub fn content_type() -> String {
    format!("multipart/mixed; boundary=\"{BOUNDARY}\"")
}

/// Appends the two-part request body of §2.3 around `header_part` and `payload`.
///
/// `header_part` is the `Msg` header as [`crate::body::encode_header`] writes it (BOM, UTF-16LE,
/// no NUL); `payload` is the payload buffer of §2.5, compressed or not. The body ends with the
/// close delimiter and no CRLF, as the SDK and the peers send it.
///
/// # Examples
///
/// ```
/// use cmmp_transport::multipart::{BOUNDARY, MultipartLimits, frame, parse};
///
/// let mut body = Vec::new();
/// frame(b"\xFF\xFE<\0M\0s\0g\0/\0>\0", b"payload\r\n", &mut body);
/// let parts = parse(&body, BOUNDARY, MultipartLimits::default()).unwrap();
/// assert_eq!(parts[1].content_type(), Some("application/octet-stream"));
/// assert_eq!(parts[1].body, b"payload\r\n");
/// ```
pub fn frame(header_part: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(header_part.len() + payload.len() + 3 * BOUNDARY.len() + 128);
    push_delimiter_line(out);
    out.extend_from_slice(b"content-type: text/plain; charset=UTF-16\r\n\r\n");
    out.extend_from_slice(header_part);
    out.extend_from_slice(b"\r\n");
    push_delimiter_line(out);
    out.extend_from_slice(b"content-type: application/octet-stream\r\n\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"--");
}

/// Returns the `boundary` parameter of a `Content-Type` header value (§2.2, §2.7).
///
/// The parameter name matches case-insensitively; the value may be quoted or bare. Returns
/// `None` when there is no such parameter, when it is empty, or when a quoted value is not
/// closed or holds a backslash escape (which no valid boundary needs, RFC 2046 §5.1.1). The
/// media type itself is not checked.
///
/// # Examples
///
/// ```
/// use cmmp_transport::multipart::boundary_from_content_type;
///
/// assert_eq!(boundary_from_content_type(r#"multipart/mixed; boundary="ab c""#), Some("ab c"));
/// assert_eq!(boundary_from_content_type("multipart/form-data; BOUNDARY=x1"), Some("x1"));
/// assert_eq!(boundary_from_content_type("text/html"), None);
/// ```
pub fn boundary_from_content_type(value: &str) -> Option<&str> {
    let mut rest = value.split_once(';')?.1;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return None;
        }
        let name_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let (name, after_name) = rest.split_at(name_end);
        let (param, clean, after_value) = match after_name.strip_prefix('=') {
            None => ("", true, after_name),
            Some(value) => parameter_value(value.trim_start_matches([' ', '\t']))?,
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            return (clean && !param.is_empty()).then_some(param);
        }
        rest = after_value.find(';').map_or("", |at| &after_value[at..]);
    }
}

/// Splits a `multipart` body into its parts (§2.7; requests for the emulator, §2.2, §2.3).
///
/// Bytes before the first delimiter (a preamble) and after the close delimiter (an epilogue)
/// are ignored. Delimiter lines may end in CRLF or a bare LF and carry trailing spaces or tabs.
/// Each part's body excludes the line end before the next delimiter. A part may end after its
/// header block, giving an empty body.
///
/// # Errors
///
/// - [`MultipartError::TooLarge`] when `body` is longer than `limits.max_size`;
/// - [`MultipartError::Empty`] for an empty body (an MP's empty 200 reply, §2.9);
/// - [`MultipartError::InvalidBoundary`] when `boundary` is empty or holds CR or LF;
/// - [`MultipartError::BoundaryNotFound`] when no line starts with `--` and the boundary, as
///   with an HTML error page (§2.9);
/// - [`MultipartError::TooManyParts`] when a part past `limits.max_parts` starts;
/// - [`MultipartError::MissingPartHeaders`] for a part without header lines;
/// - [`MultipartError::MalformedHeader`] for a later header line that is not `name: value`;
/// - [`MultipartError::Truncated`] when the body ends before the close delimiter.
pub fn parse<'a>(
    body: &'a [u8],
    boundary: &str,
    limits: MultipartLimits,
) -> Result<Vec<Part<'a>>, MultipartError> {
    if body.len() > limits.max_size {
        return Err(MultipartError::TooLarge { len: body.len(), limit: limits.max_size });
    }
    if body.is_empty() {
        return Err(MultipartError::Empty);
    }
    if boundary.is_empty() || boundary.contains(['\r', '\n']) {
        return Err(MultipartError::InvalidBoundary);
    }
    let dash_boundary = format!("--{boundary}");
    let dash_boundary = dash_boundary.as_bytes();
    let mut delimiter =
        find_delimiter(body, 0, dash_boundary).ok_or(MultipartError::BoundaryNotFound)?;
    let mut parts = Vec::new();
    loop {
        let content_start = match delimiter.kind {
            DelimiterKind::Close => return Ok(parts),
            DelimiterKind::Unterminated => return Err(MultipartError::Truncated),
            DelimiterKind::Open { content_start } => content_start,
        };
        if parts.len() >= limits.max_parts {
            return Err(MultipartError::TooManyParts { limit: limits.max_parts });
        }
        let next =
            find_delimiter(body, content_start, dash_boundary).ok_or(MultipartError::Truncated)?;
        // The line end before the next delimiter belongs to it (RFC 2046 §5.1.1), unless it is
        // the one that ended the previous delimiter line.
        let mut content_end = next.start.saturating_sub(1).max(content_start);
        if content_end > content_start && body.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
        let content = body.get(content_start..content_end).unwrap_or_default();
        parts.push(parse_part(content, content_start, parts.len())?);
        delimiter = next;
    }
}

/// Whether a reply part is the `NoReply` that acknowledges a Post (async) message (§2.8).
///
/// The framing a real MP uses is unconfirmed, so this is lenient: a UTF-8 or UTF-16 BOM is
/// dropped; the bytes are read as UTF-16LE after an `FF FE` BOM or when every odd-indexed byte
/// is zero, as UTF-16BE after `FE FF`, else as UTF-8; then NULs are removed and surrounding
/// whitespace trimmed, and the rest must equal `NoReply` exactly (case-sensitive, as the
/// SDK's `HttpSender.NoReplyResponse` comparison).
///
/// # Examples
///
/// ```
/// use cmmp_transport::multipart::is_no_reply;
///
/// assert!(is_no_reply(b"NoReply"));
/// assert!(is_no_reply(b"\xFF\xFEN\0o\0R\0e\0p\0l\0y\0\0\0"));
/// assert!(!is_no_reply(b"noreply"));
/// ```
pub fn is_no_reply(part_body: &[u8]) -> bool {
    let bytes = part_body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(part_body);
    let text = if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        utf16_lossless(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        utf16_lossless(rest, u16::from_be_bytes)
    } else if bytes.len() >= 2 && bytes.iter().skip(1).step_by(2).all(|&byte| byte == 0) {
        utf16_lossless(bytes, u16::from_le_bytes)
    } else {
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    };
    text.is_some_and(|text| {
        let text: String = text.chars().filter(|&c| c != '\0' && c != '\u{FEFF}').collect();
        text.trim() == NO_REPLY
    })
}

/// One part of a `multipart` body, borrowed from the input (§2.3, §2.7).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Part<'a> {
    /// Header fields in order, names and values trimmed of spaces and tabs.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The content after the header block, without the line end before the next delimiter.
    pub body: &'a [u8],
}

impl<'a> Part<'a> {
    /// Returns the value of the first header field named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value)
    }

    /// Returns the value of the part's `Content-Type` header, parameters included (§2.3).
    pub fn content_type(&self) -> Option<&'a str> {
        self.header("content-type")
    }
}

/// Bounds on what [`parse`] accepts (field notes §5 items 1 and 9).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct MultipartLimits {
    /// Largest number of parts.
    pub max_parts: usize,
    /// Largest body, in bytes.
    pub max_size: usize,
}

impl Default for MultipartLimits {
    /// 16 parts and 64 MiB.
    ///
    /// A request or a Sync reply has two parts and a Post reply one (§2.8); 16 leaves room for
    /// lenient peers and refuses part floods. 64 MiB matches the inflate cap of
    /// [`crate::zlib::InflateLimits`], since an uncompressed payload travels as it is.
    fn default() -> Self {
        Self { max_parts: 16, max_size: 64 * 1024 * 1024 }
    }
}

/// Why a body is not a usable `multipart` body (§2.7, §2.9; house style HS-54).
#[derive(Clone, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum MultipartError {
    /// No line starts with `--` and the boundary: not multipart, or another boundary.
    #[error("no multipart delimiter with the expected boundary")]
    BoundaryNotFound,
    /// The body is empty.
    #[error("empty body")]
    Empty,
    /// The boundary to look for is empty or contains CR or LF.
    #[error("invalid multipart boundary")]
    InvalidBoundary,
    /// A header line after the first of part `index` is not `name: value`.
    #[error("malformed header line in part {index} at byte {offset}")]
    MalformedHeader {
        /// Zero-based index of the part.
        index: usize,
        /// Byte offset of the line in the body.
        offset: usize,
    },
    /// Part `index` has no header fields: its first line is empty or not `name: value`.
    #[error("part {index} has no header block")]
    MissingPartHeaders {
        /// Zero-based index of the part.
        index: usize,
    },
    /// The body is longer than the limit; nothing was parsed.
    #[error("multipart body of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the body in bytes.
        len: usize,
        /// The `max_size` in force.
        limit: usize,
    },
    /// More parts than the limit.
    #[error("more than {limit} multipart parts")]
    TooManyParts {
        /// The `max_parts` in force.
        limit: usize,
    },
    /// The body ends before the close delimiter (`--` after the boundary).
    #[error("multipart body ends before its close delimiter")]
    Truncated,
}

/// A delimiter line found in the body.
struct Delimiter {
    /// Offset of its leading `--`.
    start: usize,
    kind: DelimiterKind,
}

/// What follows `--boundary` on a delimiter line.
enum DelimiterKind {
    /// `--`: the close delimiter.
    Close,
    /// A line end: a part follows from `content_start`.
    Open { content_start: usize },
    /// The end of the body.
    Unterminated,
}

/// Appends `--BOUNDARY` and CRLF.
fn push_delimiter_line(out: &mut Vec<u8>) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Finds the first delimiter line at or after `from`, which is 0 or just after an LF.
fn find_delimiter(body: &[u8], from: usize, dash_boundary: &[u8]) -> Option<Delimiter> {
    let mut line = from;
    loop {
        let rest = body.get(line..)?;
        if let Some(after) = rest.strip_prefix(dash_boundary) {
            let padding = after.iter().take_while(|&&byte| byte == b' ' || byte == b'\t').count();
            let tail = after.get(padding..).unwrap_or_default();
            let content_start = line + dash_boundary.len() + padding;
            let kind = if after.starts_with(b"--") {
                Some(DelimiterKind::Close)
            } else if tail.is_empty() || tail == b"\r" {
                Some(DelimiterKind::Unterminated)
            } else if tail.starts_with(b"\r\n") {
                Some(DelimiterKind::Open { content_start: content_start + 2 })
            } else if tail.starts_with(b"\n") {
                Some(DelimiterKind::Open { content_start: content_start + 1 })
            } else {
                None
            };
            if let Some(kind) = kind {
                return Some(Delimiter { start: line, kind });
            }
        }
        line += memchr::memchr(b'\n', rest)? + 1;
    }
}

/// Splits one part's content, which starts at byte `base` of the body, into headers and body.
fn parse_part(content: &[u8], base: usize, index: usize) -> Result<Part<'_>, MultipartError> {
    let mut headers = Vec::new();
    let mut pos = 0;
    while let Some(rest) = content.get(pos..).filter(|rest| !rest.is_empty()) {
        let (line, next) = match rest.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&rest[..end], pos + end + 1),
            None => (rest, content.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if headers.is_empty() {
                return Err(MultipartError::MissingPartHeaders { index });
            }
            let body = content.get(next..).unwrap_or_default();
            return Ok(Part { headers, body });
        }
        match header_field(line) {
            Some(field) => headers.push(field),
            None if headers.is_empty() => return Err(MultipartError::MissingPartHeaders { index }),
            None => return Err(MultipartError::MalformedHeader { index, offset: base + pos }),
        }
        pos = next;
    }
    if headers.is_empty() {
        return Err(MultipartError::MissingPartHeaders { index });
    }
    Ok(Part { headers, body: &[] })
}

/// Parses `name: value`; the name is printable ASCII without spaces (RFC 5322 §2.2).
fn header_field(line: &[u8]) -> Option<(&str, &str)> {
    let (name, value) = std::str::from_utf8(line).ok()?.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(|byte| byte.is_ascii_graphic()) {
        return None;
    }
    Some((name, value.trim_matches([' ', '\t'])))
}

/// Reads a parameter value, quoted or bare, from the start of `text`.
///
/// Returns the value (between the quotes when quoted), whether it is free of backslash
/// escapes, and the text after it; `None` when a quoted value is not closed.
fn parameter_value(text: &str) -> Option<(&str, bool, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(';').unwrap_or(text.len());
        let (bare, after) = text.split_at(end);
        return Some((bare.trim_end(), true, after));
    };
    let mut escaped = false;
    let mut clean = true;
    for (at, c) in quoted.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => {
                escaped = true;
                clean = false;
            }
            '"' => return Some((&quoted[..at], clean, &quoted[at + 1..])),
            _ => {}
        }
    }
    None
}

/// Decodes UTF-16 in either byte order, or `None` on an unpaired surrogate.
///
/// A final odd byte is dropped when it is zero or ASCII whitespace, as a trailing ASCII line
/// end or NUL would leave it; any other odd byte makes the text undecodable.
fn utf16_lossless(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    let pairs = bytes.chunks_exact(2);
    if let [last] = pairs.remainder()
        && *last != 0
        && !last.is_ascii_whitespace()
    {
        return None;
    }
    char::decode_utf16(pairs.map(|pair| unit([pair[0], pair[1]]))).collect::<Result<_, _>>().ok()
}

/// The text of a Post acknowledgement (SDK `HttpSender.NoReplyResponse`, §2.8).
const NO_REPLY: &str = "NoReply";

#[cfg(test)]
mod tests;
