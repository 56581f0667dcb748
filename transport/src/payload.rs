//! The payload buffer: body, NUL, attachments, CRLF, and the byte ranges that describe it
//! (protocol §2.5, §6.3, §8 step 1).
//!
//! ```text
//! [ body as UTF-16LE, no BOM ][00 00][ attachment 1 ] … [ attachment n ][0D 0A]
//! Body/@Offset = 0, Body/@Length = |body| + 2; attachment i starts where i−1 ended.
//! ```
//!
//! Ranges are computed from the buffer that is built, never from literals (field notes §2.4:
//! peers hard-code `Length="728"`).

use cmmp_model::Layout;

use crate::body::encode_body;

/// A named attachment, in the order it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The attachment name (`Attachment/@Name`).
    pub name: String,
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Attachment {
    /// An attachment from bytes.
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self { name: name.into(), bytes: bytes.into() }
    }
}

/// An uncompressed payload and its byte ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The whole buffer: body, NUL, attachments, CRLF.
    pub bytes: Vec<u8>,
    /// `Body/@Length`: the UTF-16LE body including its NUL.
    pub body_len: u32,
    /// `(name, offset, length)` per attachment.
    pub ranges: Vec<(String, u32, u32)>,
}

/// A payload that cannot be built or taken apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Two attachments share a name (the 2007 API replaces; cmmp refuses to guess).
    #[error("two attachments are named `{0}`; attachment names are unique per message")]
    DuplicateAttachment(String),
    /// The payload would not fit the 32-bit ranges of the header.
    #[error("the payload is larger than the 4 GiB the header's byte ranges can describe")]
    TooLarge,
    /// A byte range of the header lies outside the payload.
    #[error("{what} range {offset}+{length} lies outside the {size}-byte payload")]
    RangeOutside {
        /// `Body` or the attachment's name.
        what: String,
        /// The range's offset.
        offset: u64,
        /// The range's length.
        length: u64,
        /// The payload size.
        size: usize,
    },
    /// The report has no `ReportBody` to empty for a header-only body.
    #[error("the document is not a report ending in ReportBody; it cannot be sent header-only")]
    NotAReport,
}

/// Builds the payload for `body_xml` and `attachments` (protocol §2.5).
///
/// # Errors
///
/// [`PayloadError::DuplicateAttachment`] or [`PayloadError::TooLarge`].
pub fn build(body_xml: &str, attachments: &[Attachment]) -> Result<Payload, PayloadError> {
    let mut bytes = Vec::with_capacity(body_xml.len() * 2 + 2 + attachments_len(attachments) + 2);
    encode_body(body_xml, &mut bytes);
    let body_len = u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)?;
    append_attachments(bytes, body_len, Vec::new(), attachments)
}

/// Builds the payload from body bytes that are already encoded (UTF-16LE with its NUL, or
/// whatever a raw message was given) and `attachments`.
///
/// # Errors
///
/// [`PayloadError::DuplicateAttachment`] or [`PayloadError::TooLarge`].
pub fn build_from_body_bytes(
    body: &[u8],
    attachments: &[Attachment],
) -> Result<Payload, PayloadError> {
    let mut bytes = Vec::with_capacity(body.len() + attachments_len(attachments) + 2);
    bytes.extend_from_slice(body);
    let body_len = u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)?;
    append_attachments(bytes, body_len, Vec::new(), attachments)
}

/// Builds the payload of a kind with `layout` from its document and the caller's
/// `attachments`: the same bytes as [`build`] of what [`layout_parts`] returns, written into
/// one buffer (a 2 MB report is not encoded into an attachment of its own first).
///
/// # Errors
///
/// [`PayloadError::NotAReport`], [`PayloadError::DuplicateAttachment`] or
/// [`PayloadError::TooLarge`].
pub fn build_for_layout(
    layout: Layout,
    document_xml: &str,
    attachments: &[Attachment],
) -> Result<Payload, PayloadError> {
    let Layout::HeaderAndAttachment { attachment } = layout else {
        return build(document_xml, attachments);
    };
    let body = header_only(document_xml)?;
    // UTF-16 never has more code units than UTF-8 has bytes.
    let mut bytes = Vec::with_capacity(
        (body.len() + document_xml.len()) * 2 + 4 + attachments_len(attachments) + 2,
    );
    encode_body(&body, &mut bytes);
    let body_len = u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)?;
    let offset = body_len;
    // `FF FE` + UTF-16LE, no NUL: the same form as a header part.
    crate::body::encode_header(document_xml, &mut bytes);
    let length = u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)? - offset;
    append_attachments(bytes, body_len, vec![(attachment.to_owned(), offset, length)], attachments)
}

/// The total size of `attachments`.
fn attachments_len(attachments: &[Attachment]) -> usize {
    attachments.iter().map(|a| a.bytes.len()).sum()
}

/// Appends `attachments` and the final CRLF to `bytes` (the body and the attachments of
/// `ranges`, already written) and returns the payload.
fn append_attachments(
    mut bytes: Vec<u8>,
    body_len: u32,
    mut ranges: Vec<(String, u32, u32)>,
    attachments: &[Attachment],
) -> Result<Payload, PayloadError> {
    ranges.reserve(attachments.len());
    bytes.reserve(attachments_len(attachments) + 2);
    for a in attachments {
        if ranges.iter().any(|(n, _, _)| *n == a.name) {
            return Err(PayloadError::DuplicateAttachment(a.name.clone()));
        }
        let offset = u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)?;
        let length = u32::try_from(a.bytes.len()).map_err(|_| PayloadError::TooLarge)?;
        bytes.extend_from_slice(&a.bytes);
        ranges.push((a.name.clone(), offset, length));
    }
    bytes.extend_from_slice(b"\r\n");
    u32::try_from(bytes.len()).map_err(|_| PayloadError::TooLarge)?;
    Ok(Payload { bytes, body_len, ranges })
}

/// A payload taken apart by its byte ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'p> {
    /// The body bytes (UTF-16LE with its NUL).
    pub body: &'p [u8],
    /// Each attachment's name and bytes, in header order.
    pub attachments: Vec<(String, &'p [u8])>,
}

/// Takes a payload apart by the ranges of its header: the body bytes and each attachment.
///
/// # Errors
///
/// [`PayloadError::RangeOutside`] when a range does not lie inside `payload`.
pub fn split<'p>(
    payload: &'p [u8],
    body: (u64, u64),
    attachments: &[(String, u64, u64)],
) -> Result<Split<'p>, PayloadError> {
    let slice = |what: &str, offset: u64, length: u64| -> Result<&'p [u8], PayloadError> {
        let outside = || PayloadError::RangeOutside {
            what: what.to_owned(),
            offset,
            length,
            size: payload.len(),
        };
        let start = usize::try_from(offset).map_err(|_| outside())?;
        let end = start
            .checked_add(usize::try_from(length).map_err(|_| outside())?)
            .ok_or_else(outside)?;
        payload.get(start..end).ok_or_else(outside)
    };
    let body_bytes = slice("Body", body.0, body.1)?;
    let mut out = Vec::with_capacity(attachments.len());
    for (name, offset, length) in attachments {
        out.push((name.clone(), slice(name, *offset, *length)?));
    }
    Ok(Split { body: body_bytes, attachments: out })
}

/// The header-only form of a canonical report: the same document with an empty
/// `<ReportBody/>` (the body of DDR, HINV, SINV and metering messages, protocol §4.5).
///
/// # Errors
///
/// [`PayloadError::NotAReport`] when `report_xml` does not end in `ReportBody` + `</Report>`.
pub fn header_only(report_xml: &str) -> Result<String, PayloadError> {
    let head = report_head(report_xml).ok_or(PayloadError::NotAReport)?;
    Ok(format!("{head}{EMPTY_BODY}"))
}

/// Whether `body` is exactly [`header_only`] of `report_xml`, without building it (a
/// management point reading a header-and-attachment kind checks this on every report).
pub fn is_header_only_of(body: &str, report_xml: &str) -> bool {
    report_head(report_xml).is_some_and(|head| {
        body.len() == head.len() + EMPTY_BODY.len()
            && body.starts_with(head)
            && body.ends_with(EMPTY_BODY)
    })
}

/// What [`header_only`] puts after the report's head.
const EMPTY_BODY: &str = "<ReportBody/></Report>";

/// Everything before the `ReportBody` element of a report that ends with it, or `None`.
fn report_head(report_xml: &str) -> Option<&str> {
    let end = report_xml.strip_suffix("</Report>")?;
    // The first `<ReportBody` is the element: markup in the header before it has none, and
    // text escapes `<`. Searching from the front does not scan a 2 MB body.
    let at = end.find("<ReportBody")?;
    let tail = &end[at..];
    (tail == "<ReportBody/>"
        || (tail.starts_with("<ReportBody>") && tail.ends_with("</ReportBody>")))
    .then(|| &end[..at])
}

/// The body XML and the derived attachments of a kind with `layout` (house style HS-55).
///
/// `HeaderAndAttachment` sends the header-only report as the body and attaches the full
/// report as `FF FE` + UTF-16LE under the layout's name (the managed SDK's form, §4.5);
/// caller attachments follow. Other layouts send the document as the body with the caller's
/// attachments (`BodyAndFiles`: files named by their decimal `CollectedFile/@ID`).
///
/// # Errors
///
/// [`PayloadError::NotAReport`] for a header-and-attachment kind whose body is no report.
pub fn layout_parts(
    layout: Layout,
    document_xml: String,
    attachments: Vec<Attachment>,
) -> Result<(String, Vec<Attachment>), PayloadError> {
    match layout {
        Layout::HeaderAndAttachment { attachment } => {
            let body = header_only(&document_xml)?;
            // `FF FE` + UTF-16LE, no NUL: the same form as a header part.
            let mut full = Vec::with_capacity(document_xml.len() * 2 + 2);
            crate::body::encode_header(&document_xml, &mut full);
            let mut all = Vec::with_capacity(attachments.len() + 1);
            all.push(Attachment::new(attachment, full));
            all.extend(attachments);
            Ok((body, all))
        }
        Layout::Body | Layout::BodyAndFiles => Ok((document_xml, attachments)),
    }
}

#[cfg(test)]
mod tests {
    use cmmp_model::Layout;

    use super::{
        Attachment, PayloadError, build, build_for_layout, header_only, is_header_only_of,
        layout_parts, split,
    };

    #[test]
    fn ranges_come_from_the_buffer() {
        let p = build(
            "<A/>",
            &[Attachment::new("1", b"xyz".to_vec()), Attachment::new("2", Vec::new())],
        )
        .unwrap();
        // "<A/>" is 4 UTF-16 units = 8 bytes, + NUL = 10.
        assert_eq!(p.body_len, 10);
        assert_eq!(p.ranges, vec![("1".to_owned(), 10, 3), ("2".to_owned(), 13, 0)]);
        assert_eq!(&p.bytes[8..10], &[0, 0]);
        assert_eq!(&p.bytes[10..13], b"xyz");
        assert_eq!(&p.bytes[13..], b"\r\n");
        let parts = split(&p.bytes, (0, 10), &[("1".to_owned(), 10, 3)]).unwrap();
        assert_eq!(parts.body.len(), 10);
        assert_eq!(parts.attachments[0].1, b"xyz");
    }

    #[test]
    fn refuses_duplicate_names_and_outside_ranges() {
        let a = Attachment::new("1", vec![1]);
        assert_eq!(
            build("<A/>", &[a.clone(), a]).unwrap_err(),
            PayloadError::DuplicateAttachment("1".into())
        );
        assert!(matches!(
            split(b"abc", (0, 4), &[]).unwrap_err(),
            PayloadError::RangeOutside { .. }
        ));
        assert!(matches!(
            split(b"abc", (u64::MAX, 2), &[]).unwrap_err(),
            PayloadError::RangeOutside { .. }
        ));
    }

    #[test]
    fn header_only_empties_the_report_body() {
        assert_eq!(
            header_only("<Report><ReportHeader/><ReportBody><Instance/></ReportBody></Report>")
                .unwrap(),
            "<Report><ReportHeader/><ReportBody/></Report>"
        );
        assert_eq!(
            header_only("<Report><ReportBody/></Report>").unwrap(),
            "<Report><ReportBody/></Report>"
        );
        assert_eq!(header_only("<Status/>").unwrap_err(), PayloadError::NotAReport);
    }

    #[test]
    fn is_header_only_of_agrees_with_header_only() {
        let full =
            "<Report><ReportHeader><A>1</A></ReportHeader><ReportBody><I/></ReportBody></Report>";
        let body = header_only(full).unwrap();
        assert!(is_header_only_of(&body, full));
        // One character different anywhere, or the full report itself: not its header.
        assert!(!is_header_only_of(&body.replace('1', "2"), full));
        assert!(!is_header_only_of(
            &body.replace("<ReportBody/>", "<ReportBody></ReportBody>"),
            full
        ));
        assert!(!is_header_only_of(&format!("{body} "), full));
        assert!(!is_header_only_of(&body[1..], full));
        assert!(!is_header_only_of(full, full));
        assert!(!is_header_only_of(&body, "<Status/>"));
        assert!(!is_header_only_of("", ""));
    }

    #[test]
    fn a_layout_payload_is_the_same_in_one_buffer() {
        let report = "<Report><ReportHeader/><ReportBody><I N=\"é😀\"/></ReportBody></Report>";
        let extra = vec![Attachment::new("1", b"xyz".to_vec())];
        for layout in [
            Layout::Body,
            Layout::BodyAndFiles,
            Layout::HeaderAndAttachment { attachment: "Report" },
        ] {
            let (body, all) = layout_parts(layout, report.to_owned(), extra.clone()).unwrap();
            assert_eq!(build_for_layout(layout, report, &extra), build(&body, &all));
        }
        let clash = vec![Attachment::new("Report", Vec::new())];
        let layout = Layout::HeaderAndAttachment { attachment: "Report" };
        assert_eq!(
            build_for_layout(layout, report, &clash).unwrap_err(),
            PayloadError::DuplicateAttachment("Report".into())
        );
        assert_eq!(build_for_layout(layout, "<Status/>", &[]), Err(PayloadError::NotAReport));
    }

    proptest::proptest! {
        /// Ranges computed by `build` take the buffer apart again, for any body text and any
        /// attachments: body first, attachments back to back, CRLF last.
        #[test]
        fn build_then_split_recovers_everything(
            body in "[^\u{0}\u{FEFF}]{0,64}",
            atts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..6),
        ) {
            let attachments: Vec<Attachment> =
                atts.iter().enumerate().map(|(i, b)| Attachment::new(i.to_string(), b.clone())).collect();
            let p = build(&body, &attachments).unwrap();
            proptest::prop_assert_eq!(&p.bytes[p.bytes.len() - 2..], b"\r\n");
            let ranges: Vec<(String, u64, u64)> =
                p.ranges.iter().map(|(n, o, l)| (n.clone(), u64::from(*o), u64::from(*l))).collect();
            let parts = split(&p.bytes, (0, u64::from(p.body_len)), &ranges).unwrap();
            proptest::prop_assert_eq!(crate::body::decode_body(parts.body).unwrap(), body);
            for ((name, bytes), a) in parts.attachments.iter().zip(&attachments) {
                proptest::prop_assert_eq!(name, &a.name);
                proptest::prop_assert_eq!(*bytes, a.bytes.as_slice());
            }
            let end = ranges.last().map_or(u64::from(p.body_len), |(_, o, l)| o + l);
            proptest::prop_assert_eq!(end as usize + 2, p.bytes.len());
        }
    }
}
