//! A minimal, bounded BER/DER reader: just enough to name the algorithms of a CMS
//! EnvelopedData and to find its recipients, so that errors can say what failed.
//!
//! Definite and indefinite lengths are read (OpenSSL accepts both); tags are single-byte.
//! Nesting depth is capped, and no input makes it panic.

/// Universal and context tags used by CMS and X.509.
pub(super) mod tag {
    /// INTEGER.
    pub(crate) const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub(crate) const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER.
    pub(crate) const OID: u8 = 0x06;
    /// SEQUENCE.
    pub(crate) const SEQUENCE: u8 = 0x30;
    /// SET.
    pub(crate) const SET: u8 = 0x31;
    /// `[0]` constructed.
    pub(crate) const CONTEXT_0: u8 = 0xA0;
    /// `[1]` constructed.
    pub(crate) const CONTEXT_1: u8 = 0xA1;
    /// `[0]` primitive (IMPLICIT).
    pub(crate) const CONTEXT_0_PRIMITIVE: u8 = 0x80;
}

/// Why a structure was rejected.
pub(super) type DerError = &'static str;

/// One element: tag, contents and the whole encoding.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tlv<'a> {
    /// The identifier octet.
    pub(super) tag: u8,
    /// The contents (for an indefinite length, without the end-of-contents octets).
    pub(super) content: &'a [u8],
    /// The whole encoding, identifier to end.
    pub(super) raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the contents of a constructed element.
    pub(super) fn children(&self) -> Reader<'a> {
        Reader { input: self.content }
    }
}

/// Reads elements one after another.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reader<'a> {
    /// What is left.
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Whether nothing is left.
    pub(super) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// The tag of the next element, if any.
    pub(super) fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    /// Reads the next element.
    pub(super) fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let (tlv, rest) = parse(self.input, 0)?;
        self.input = rest;
        Ok(tlv)
    }

    /// Reads the next element and checks its tag.
    pub(super) fn expect(&mut self, tag: u8, what: DerError) -> Result<Tlv<'a>, DerError> {
        let tlv = self.read()?;
        if tlv.tag == tag { Ok(tlv) } else { Err(what) }
    }

    /// Reads the next element when it has `tag`.
    pub(super) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) { self.read().map(Some) } else { Ok(None) }
    }
}

/// Parses one element at the start of `input`, returning it and the rest.
fn parse(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), DerError> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep");
    }
    let (&tag, after_tag) = input.split_first().ok_or("truncated element")?;
    if tag & 0x1F == 0x1F {
        return Err("multi-byte tag");
    }
    let (&first, mut rest) = after_tag.split_first().ok_or("truncated length")?;
    if first == 0x80 {
        // Indefinite length: constructed only, contents end at the end-of-contents octets.
        if tag & 0x20 == 0 {
            return Err("indefinite length on a primitive element");
        }
        let start = rest;
        loop {
            if rest.starts_with(&[0, 0]) {
                // `rest` is a suffix of `start`, itself a suffix of `input`, and holds the two
                // end-of-contents octets: every index below is in bounds.
                let content_len = start.len() - rest.len();
                let raw_len = input.len() - rest.len() + 2;
                let tlv = Tlv { tag, content: &start[..content_len], raw: &input[..raw_len] };
                return Ok((tlv, &rest[2..]));
            }
            let (_, next) = parse(rest, depth + 1)?;
            rest = next;
        }
    }
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count > 4 {
            return Err("length too large");
        }
        let (bytes, after) = rest.split_at_checked(count).ok_or("truncated length")?;
        rest = after;
        bytes.iter().fold(0usize, |len, &byte| len << 8 | usize::from(byte))
    };
    let (content, after) =
        rest.split_at_checked(len).ok_or("length beyond the end of the input")?;
    // `after` is a suffix of `input`.
    let raw_len = input.len() - after.len();
    Ok((Tlv { tag, content, raw: &input[..raw_len] }, after))
}

/// The dotted form of an OBJECT IDENTIFIER's contents.
pub(super) fn oid_string(content: &[u8]) -> Result<String, DerError> {
    if content.is_empty() || content.len() > MAX_OID_BYTES {
        return Err("bad object identifier length");
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &byte in content {
        if value > u64::MAX >> 7 {
            return Err("object identifier arc too large");
        }
        value = value << 7 | u64::from(byte & 0x7F);
        pending = byte & 0x80 != 0;
        if !pending {
            if arcs.is_empty() {
                let (first, second) = match value {
                    0..40 => (0, value),
                    40..80 => (1, value - 40),
                    _ => (2, value - 80),
                };
                arcs.extend([first, second]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if pending {
        return Err("truncated object identifier");
    }
    let dotted: Vec<String> = arcs.iter().map(u64::to_string).collect();
    Ok(dotted.join("."))
}

/// Reads an `AlgorithmIdentifier` (`SEQUENCE { OID, parameters ANY OPTIONAL }`).
pub(super) fn algorithm<'a>(
    tlv: &Tlv<'a>,
    what: DerError,
) -> Result<(String, Option<Tlv<'a>>), DerError> {
    if tlv.tag != tag::SEQUENCE {
        return Err(what);
    }
    let mut fields = tlv.children();
    let oid = oid_string(fields.expect(tag::OID, what)?.content)?;
    let params = if fields.is_empty() { None } else { Some(fields.read()?) };
    Ok((oid, params))
}

/// How deep elements may nest.
const MAX_DEPTH: usize = 32;

/// The longest OBJECT IDENTIFIER accepted.
const MAX_OID_BYTES: usize = 64;

#[cfg(test)]
mod tests {
    use super::{Reader, oid_string, tag};

    #[test]
    fn oids_in_dotted_form() {
        assert_eq!(
            oid_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x03, 0x07]).unwrap(),
            "1.2.840.113549.3.7"
        );
        assert_eq!(oid_string(&[0x2B, 0x0E, 0x03, 0x02, 0x1A]).unwrap(), "1.3.14.3.2.26");
        assert_eq!(oid_string(&[0x88, 0x37, 0x03]).unwrap(), "2.999.3");
        assert!(oid_string(&[0x2A, 0x86]).is_err());
        assert!(oid_string(&[]).is_err());
        assert!(oid_string(&[0xFF; 20]).is_err());
    }

    #[test]
    fn definite_and_indefinite_lengths() {
        let definite = [0x30, 0x03, 0x02, 0x01, 0x05, 0xFF];
        let mut reader = Reader::new(&definite);
        let seq = reader.expect(tag::SEQUENCE, "seq").unwrap();
        assert_eq!(seq.raw.len(), 5);
        assert_eq!(seq.children().expect(tag::INTEGER, "int").unwrap().content, [5]);
        assert_eq!(reader.peek_tag(), Some(0xFF));

        let indefinite = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00, 0x05, 0x00];
        let mut reader = Reader::new(&indefinite);
        let seq = reader.read().unwrap();
        assert_eq!(seq.content, [0x02, 0x01, 0x05]);
        assert_eq!(seq.raw.len(), 7);
        assert_eq!(reader.expect(0x05, "null").unwrap().content, []);
        assert!(reader.is_empty());
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x1F, 0x01, 0x00],
            &[0x30, 0x80, 0x02, 0x01],
        ] {
            assert!(Reader::new(input).read().is_err(), "{input:02X?}");
        }
        let deep: Vec<u8> = core::iter::repeat_n([0x30, 0x80], 100).flatten().collect();
        assert!(Reader::new(&deep).read().is_err());
    }
}
