//! Reader limits and writer escaping.

use super::{Reader, Writer};
use crate::error::{DecodeErrorKind, EncodeError};

fn first_child_text(doc: &str) -> Result<String, crate::DecodeError> {
    let mut r = Reader::new(doc)?;
    let root = r.root()?;
    let child = r.next_child(&root)?.expect("a child");
    Ok(r.text(&child)?.into_owned())
}

#[test]
fn text_merges_references_and_cdata() {
    let t = first_child_text("<A><B>a &amp; b &#x41;<![CDATA[<c>]]></B></A>").unwrap();
    assert_eq!(t, "a & b A<c>");
}

#[test]
fn refuses_a_dtd() {
    let doc = "<!DOCTYPE A [<!ENTITY x \"xxxxxxxx\">]><A>&x;</A>";
    let e = Reader::new(doc).unwrap().root().unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::Dtd);
}

#[test]
fn refuses_unknown_entities() {
    let e = first_child_text("<A><B>&lol;</B></A>").unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::UnknownEntity("lol".into()));
}

#[test]
fn refuses_nesting_beyond_the_limit() {
    let doc = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    let mut r = Reader::with_limits(&doc, 10, 1 << 20).unwrap();
    let root = r.root().unwrap();
    let e = r.skip(&root).unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::TooDeep { limit: 10 });
}

#[test]
fn refuses_oversize_documents() {
    let e = Reader::with_limits("<a/>", 10, 3).err().unwrap();
    assert_eq!(e.kind(), &DecodeErrorKind::TooLarge { limit: 3 });
}

#[test]
fn refuses_trailing_elements_but_not_trailing_space() {
    let mut r = Reader::new("<a/> \n<!-- c -->").unwrap();
    r.root().unwrap();
    r.finish().unwrap();
    let mut r = Reader::new("<a/><b/>").unwrap();
    r.root().unwrap();
    assert_eq!(r.finish().unwrap_err().kind(), &DecodeErrorKind::TrailingContent);
}

#[test]
fn reports_mismatched_end_tags() {
    let e = first_child_text("<A><B>x</C></A>").unwrap_err();
    assert!(matches!(e.kind(), DecodeErrorKind::Syntax(_)), "{e}");
}

#[test]
fn writer_escapes_and_self_closes() {
    let mut w = Writer::new();
    w.start("A");
    w.attr("q", &"a\"<&>\t\n".to_owned());
    w.simple("B", &"x<y & z>\r".to_owned());
    w.simple("C", &String::new());
    w.start("D");
    w.end("D");
    w.end("A");
    assert_eq!(
        w.finish().unwrap(),
        "<A q=\"a&quot;&lt;&amp;&gt;&#9;&#10;\"><B>x&lt;y &amp; z&gt;&#13;</B><C/><D/></A>"
    );
}

#[test]
fn writer_refuses_characters_xml_cannot_carry() {
    let mut w = Writer::new();
    w.start("Outer");
    w.simple("Name", &"a\u{0}b".to_owned());
    w.end("Outer");
    assert_eq!(
        w.finish().unwrap_err(),
        EncodeError::InvalidChar { element: "Name".into(), code: 0 }
    );
    let mut w = Writer::new();
    w.simple("Name", &"\u{FFFE}".to_owned());
    assert_eq!(
        w.finish().unwrap_err(),
        EncodeError::InvalidChar { element: "Name".into(), code: 0xFFFE }
    );
}

#[test]
fn escaped_text_reads_back_unchanged() {
    let original = "a\"<&>\t\r\n b";
    let mut w = Writer::new();
    w.start("A");
    w.attr("v", &original.to_owned());
    w.simple("B", &original.to_owned());
    w.end("A");
    let doc = w.finish().unwrap();
    let mut r = Reader::new(&doc).unwrap();
    let root = r.root().unwrap();
    let mut attrs = root.attrs();
    let (_, v) = attrs.next_attr(&r).unwrap().unwrap();
    assert_eq!(v, original);
    let child = r.next_child(&root).unwrap().unwrap();
    assert_eq!(r.text(&child).unwrap(), original);
}

proptest::proptest! {
    /// The word-at-a-time escaper agrees with reading back, for text and attribute values
    /// of any length and any mix of markup and multi-byte characters.
    #[test]
    fn escaping_round_trips(s in "[a-z&<>\"'\t\r\n é€😀\u{EF}\u{FEFF}]{0,70}") {
        let mut w = Writer::new();
        w.start("A");
        w.attr("v", &s);
        w.simple("B", &s);
        w.end("A");
        let doc = w.finish().unwrap();
        let mut r = Reader::new(&doc).unwrap();
        let root = r.root().unwrap();
        let mut attrs = root.attrs();
        let (_, v) = attrs.next_attr(&r).unwrap().unwrap();
        proptest::prop_assert_eq!(&v, &s);
        let child = r.next_child(&root).unwrap().unwrap();
        proptest::prop_assert_eq!(r.text(&child).unwrap(), s.as_str());
    }
}
