//! Reader limits and writer escaping.

use super::{AnyElement, Reader, Writer, XmlElement};
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

fn read_any(doc: &str) -> Result<AnyElement, crate::DecodeError> {
    let mut r = Reader::new(doc)?;
    let root = r.root()?;
    let e = AnyElement::read_element(&mut r, &root)?;
    r.finish()?;
    Ok(e)
}

#[test]
fn any_element_reads_property_shapes() {
    let doc = "<Win32_X>\r\n <Name>a &amp; b&#x41;&lt;</Name><Cap><![CDATA[<c>]]>d</Cap>\
               <Line>x\r\ny\rz</Line><Empty/><Blank></Blank><Attr k=\"v&amp;\">t</Attr>\
               <NAME>é€</NAME><Nest>1<In>2</In> 3</Nest><!-- c --><Only>&amp;</Only></Win32_X>";
    let e = read_any(doc).unwrap();
    let mut attr = AnyElement::new("Attr").with_attribute("k", "v&");
    attr.text = "t".into();
    let mut nest = AnyElement::new("Nest").with_property("In", "2");
    nest.text = "1 3".into();
    let mut expected = AnyElement::new("Win32_X")
        .with_property("Name", "a & bA<")
        .with_property("Cap", "<c>d")
        .with_property("Line", "x\ny\nz")
        .with_property("Empty", "")
        .with_property("Blank", "");
    expected.children.push(attr);
    expected = expected.with_property("NAME", "é€");
    expected.children.push(nest);
    expected = expected.with_property("Only", "&");
    assert_eq!(e, expected);
    assert_eq!(e.property("Line"), Some("x\ny\nz"));
}

#[test]
fn any_element_keeps_long_text_and_errors_with_paths() {
    let long = "x&amp;".repeat(40);
    let e = read_any(&format!("<A><P>{long}</P><Q>{long}<![CDATA[]]></Q></A>")).unwrap();
    assert_eq!(e.property("P"), Some("x&".repeat(40).as_str()));
    assert_eq!(e.property("Q"), e.property("P"));
    let err = read_any("<A><P>ok</P><P>&bad;</P></A>").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownEntity("bad".into()));
    assert!(err.to_string().contains("P[2]"), "{err}");
    let err = read_any("<A><P>x</Q></A>").unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::Syntax(_)), "{err}");
}

#[test]
fn any_element_fast_path_agrees_on_edge_cases() {
    let e = read_any("<C>\n  <A>1</A>\n  <B></B>\t<D/> <E>&#65;&amp;</E>\n</C>").unwrap();
    let expected = AnyElement::new("C")
        .with_property("A", "1")
        .with_property("B", "")
        .with_property("D", "")
        .with_property("E", "A&");
    assert_eq!(e, expected);
    for bad in ["<C><A>x</a></C>", "<C><A>x&amp</A></C>", "<C><A>x</A"] {
        assert!(read_any(bad).is_err(), "{bad}");
    }
    assert_eq!(read_any("<C><A>x</A ></C>").unwrap().property("A"), Some("x"));
    let mut r = Reader::with_limits("<C><A>x</A></C>", 1, 1 << 20).unwrap();
    let root = r.root().unwrap();
    let e = AnyElement::read_element(&mut r, &root).unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::TooDeep { limit: 1 });
}

proptest::proptest! {
    /// Reading WMI-property-shaped children straight from the source gives what quick-xml's
    /// events give: a comment before each child makes the reader take the general path.
    #[test]
    fn any_element_fast_path_matches_events(
        children in proptest::collection::vec(
            ("[A-Za-z_][A-Za-z0-9_.:é-]{0,6}", "([a-z <>\"'\r\n]|&amp;|&lt;|&#65;|&bad;|&|]]>){0,8}",
             0..5u8),
            0..6,
        ),
        space in "[ \n\t]{0,2}",
    ) {
        let children: Vec<String> =
            children.iter().map(|(name, text, shape)| child_element(name, text, *shape)).collect();
        let (fast, slow) = with_and_without_comments("Class", &space, &children);
        let kind = |e: crate::DecodeError| e.kind().clone();
        same_outcome(read_any(&fast).map_err(kind), read_any(&slow).map_err(kind))?;
    }
}

/// A child element of one of five shapes: `<N>text</N>`, `<N/>`, an element inside, an end tag
/// in other case, an attribute.
fn child_element(name: &str, text: &str, shape: u8) -> String {
    match shape {
        0 => format!("<{name}>{text}</{name}>"),
        1 => format!("<{name}/>"),
        2 => format!("<{name}><In>{text}</In></{name}>"),
        3 => format!("<{name}>{text}</{}>", name.to_uppercase()),
        _ => format!("<{name} a='1'>{text}</{name}>"),
    }
}

/// A document `<root>` holding `children`, each after `space`, and the same document with a
/// comment in front of each child, which turns the readers' fast paths off.
fn with_and_without_comments(root: &str, space: &str, children: &[String]) -> (String, String) {
    let mut fast = format!("<{root}>");
    let mut slow = fast.clone();
    for child in children {
        fast.push_str(space);
        fast.push_str(child);
        slow.push_str(space);
        slow.push_str("<!---->");
        slow.push_str(child);
    }
    fast.push_str(&format!("</{root}>"));
    slow.push_str(&format!("</{root}>"));
    (fast, slow)
}

/// Equal results, or errors of the same kind (positions in syntax errors differ: the document
/// with comments is longer).
fn same_outcome<T: PartialEq + std::fmt::Debug>(
    fast: Result<T, DecodeErrorKind>,
    slow: Result<T, DecodeErrorKind>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    match (fast, slow) {
        (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
        (Err(a), Err(b)) => {
            proptest::prop_assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b));
        }
        (a, b) => proptest::prop_assert!(false, "{a:?} but {b:?}"),
    }
    Ok(())
}

/// Each child of the root of `doc` as (name, text), reading every third child's children
/// first (there are none when the child was read whole) and skipping every fourth.
fn child_texts(doc: &str) -> Result<Vec<(String, String)>, DecodeErrorKind> {
    let kind = |e: crate::DecodeError| e.kind().clone();
    let mut r = Reader::with_limits(doc, 3, 1 << 20).map_err(kind)?;
    let root = r.root().map_err(kind)?;
    let mut out = Vec::new();
    while let Some(child) = r.next_child(&root).map_err(kind)? {
        let name = child.name_str().into_owned();
        let text = match out.len() % 4 {
            2 => {
                let mut inner = Vec::new();
                while let Some(g) = r.next_child(&child).map_err(kind)? {
                    inner.push(r.text(&g).map_err(kind)?.into_owned());
                }
                inner.join("|")
            }
            3 => {
                r.skip(&child).map_err(kind)?;
                String::from("skipped")
            }
            _ => r.text(&child).map_err(kind)?.into_owned(),
        };
        out.push((name, text));
    }
    r.finish().map_err(kind)?;
    Ok(out)
}

#[test]
fn next_child_reads_simple_elements_whole() {
    let doc = "<R>\n <A>x</A><B/><C><D>1</D></C><E>y</E><F>a&amp;b</F><G k='v'>z</G><H></H>\
               <I><![CDATA[c]]></I><J>q</J></R>";
    let got = child_texts(doc).unwrap();
    let want = [
        ("A", "x"),
        ("B", ""),
        ("C", "1"),
        ("E", "skipped"),
        ("F", "a&b"),
        ("G", "z"),
        ("H", ""),
        ("I", "skipped"),
        ("J", "q"),
    ];
    let want: Vec<(String, String)> =
        want.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    assert_eq!(got, want);
    let e = child_texts("<R><A><B><C>deep</C></B></A></R>").unwrap_err();
    assert_eq!(e, DecodeErrorKind::TooDeep { limit: 3 });
}

proptest::proptest! {
    /// Typed decoders see the same children, texts and errors whether `next_child` reads a
    /// simple element whole or quick-xml reads it (a comment in front turns the former off).
    #[test]
    fn next_child_fast_path_matches_events(
        children in proptest::collection::vec(
            ("[A-Za-z_][A-Za-z0-9_é-]{0,4}", "([a-z <>\"\r\n]|&amp;|&#65;|&bad;|&){0,6}", 0..5u8),
            0..7,
        ),
    ) {
        let children: Vec<String> =
            children.iter().map(|(name, text, shape)| child_element(name, text, *shape)).collect();
        let (fast, slow) = with_and_without_comments("R", "", &children);
        same_outcome(child_texts(&fast), child_texts(&slow))?;
    }
}

/// All attributes of the root of `doc`, read the plain way or (with `plain` false) by
/// quick-xml's iterator: names and values, or the first error's kind.
fn root_attributes(doc: &str, plain: bool) -> Result<Vec<(String, String)>, DecodeErrorKind> {
    let mut r = Reader::new(doc).map_err(|e| e.kind().clone())?;
    let root = r.root().map_err(|e| e.kind().clone())?;
    let mut attrs = root.attrs();
    if !plain {
        attrs.plain = None;
    }
    let mut out = Vec::new();
    while let Some((k, v)) = attrs.next_attr(&r).map_err(|e| e.kind().clone())? {
        out.push((String::from_utf8_lossy(k).into_owned(), v.into_owned()));
    }
    Ok(out)
}

#[test]
fn plain_attributes_read_as_quick_xml_reads_them() {
    for doc in [
        "<A a=\"1\" b='2' c = \"x&amp;y\"\n\td=\"\"/>",
        "<A a=\"1\" a=\"2\"/>",
        "<A a=\"&bad;\"/>",
        "<A a=\"1\"b=\"2\"/>",
        "<A a=1/>",
        "<A a/>",
        "<A  />",
        "<A é=\"ü\" x:y=\"&#65;\"></A>",
    ] {
        let plain = root_attributes(doc, true);
        assert_eq!(plain, root_attributes(doc, false), "{doc}");
    }
    assert!(root_attributes("<A a=\"1\" a=\"2\"/>", true).is_err());
    assert_eq!(
        root_attributes("<A a=\"1\" b='2'/>", true).unwrap(),
        [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]
    );
}

proptest::proptest! {
    /// The plain attribute splitter agrees with quick-xml's attribute iterator.
    #[test]
    fn plain_attributes_match_quick_xml(
        parts in proptest::collection::vec(
            "( |\t|\n|a|b|é|:|=|\"|'|x|&amp;|&|<|>)", 0..24),
    ) {
        let doc = format!("<A {}/>", parts.concat());
        let fast = root_attributes(&doc, true);
        let slow = root_attributes(&doc, false);
        proptest::prop_assert_eq!(fast, slow, "{}", doc);
    }
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

proptest::proptest! {
    /// The word-at-a-time search (with its overlapping last word) finds exactly the first
    /// marked byte at or after `from`, for either table, any text and any start.
    #[test]
    fn find_special_agrees_with_a_byte_loop(
        s in "[a-z&<>\"'\t\r\n é€😀\u{1}\u{EF}\u{FFFE}]{0,40}",
        from in 0_usize..48,
    ) {
        let bytes = s.as_bytes();
        let from = from.min(bytes.len());
        for table in [&super::TEXT_SPECIAL, &super::ATTR_SPECIAL] {
            let naive = bytes[from..].iter().position(|&b| table[usize::from(b)]).map(|p| from + p);
            proptest::prop_assert_eq!(super::find_special(bytes, from, table), naive);
        }
    }
}

/// The escaping [`Writer::attr`] and [`Writer::simple`] must do, one character at a time:
/// the expected text, and the code of the first character XML cannot carry.
fn escape_by_char(s: &str, attribute: bool) -> (String, Option<u32>) {
    let mut out = String::new();
    let mut bad = None;
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            _ => {
                let code = u32::from(c);
                if (code < 0x20 && !matches!(c, '\t' | '\n')) || code == 0xFFFE || code == 0xFFFF {
                    bad.get_or_insert(code);
                }
                out.push(c);
            }
        }
    }
    (out, bad)
}

proptest::proptest! {
    /// The word-at-a-time escaper writes exactly what escaping character by character
    /// writes, and reports the first character XML cannot carry, for values of any length
    /// with markup, controls, U+FFFE/U+FFFF and other characters whose UTF-8 starts with 0xEF.
    #[test]
    fn escaping_agrees_with_a_character_loop(
        s in "[a-z&<>\"'\t\r\n é€😀\u{1}\u{1F}\u{EF}\u{FEFF}\u{FFFD}\u{FFFE}\u{FFFF}]{0,40}",
    ) {
        let (text, text_bad) = escape_by_char(&s, false);
        let mut w = Writer::new();
        w.simple("B", &s);
        let (out, error) = w.finish_keep();
        let expected = if text.is_empty() { "<B/>".to_owned() } else { format!("<B>{text}</B>") };
        proptest::prop_assert_eq!(out, expected);
        proptest::prop_assert_eq!(
            error,
            text_bad.map(|code| EncodeError::InvalidChar { element: "B".into(), code })
        );

        let (value, value_bad) = escape_by_char(&s, true);
        let mut w = Writer::new();
        w.start("A");
        w.attr("v", &s);
        w.end("A");
        let (out, error) = w.finish_keep();
        proptest::prop_assert_eq!(out, format!("<A v=\"{value}\"/>"));
        proptest::prop_assert_eq!(
            error,
            value_bad.map(|code| EncodeError::InvalidChar { element: "A".into(), code })
        );
    }
}

/// The first attribute value of the root of `doc`.
fn root_attr(doc: &str) -> Result<String, crate::DecodeError> {
    let mut r = Reader::new(doc)?;
    let root = r.root()?;
    let mut attrs = root.attrs();
    Ok(attrs.next_attr(&r)?.expect("an attribute").1.into_owned())
}

#[test]
fn refuses_characters_xml_does_not_allow() {
    let invalid = |e: crate::DecodeError| match e.kind() {
        DecodeErrorKind::InvalidChar { code } => (*code, e.offset()),
        other => panic!("{other:?}"),
    };
    // As themselves, anywhere in the document, at their offset.
    assert_eq!(invalid(first_child_text("<A><B>a\u{12}b</B></A>").unwrap_err()), (0x12, 7));
    assert_eq!(invalid(first_child_text("<A><B>\u{0}</B></A>").unwrap_err()), (0, 6));
    assert_eq!(invalid(root_attr("<A v=\"x\u{1F}\"/>").unwrap_err()), (0x1F, 7));
    assert_eq!(invalid(first_child_text("<A><B>\u{FFFE}</B></A>").unwrap_err()), (0xFFFE, 6));
    assert_eq!(invalid(first_child_text("<A>\u{FFFF}<B/></A>").unwrap_err()), (0xFFFF, 3));
    assert_eq!(invalid(Reader::new("<A\u{7}/>").map(|_| ()).unwrap_err()), (7, 2));
    // As character references, in text and in attribute values (quoted the plain way or not).
    let e = first_child_text("<A><B>&#x12;</B></A>").unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::InvalidChar { code: 0x12 });
    let e = root_attr("<A v=\"&#xFFFF;\"/>").unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::InvalidChar { code: 0xFFFF });
    let e = root_attr("<A v = '&#1;'/>").unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::InvalidChar { code: 1 });
    assert!(e.to_string().contains("U+0001 is not allowed in XML"), "{e}");
    // What XML allows: tab, line feed, carriage return, U+FFFD, and beyond the BMP.
    let ok = "\t\n\r\u{FFFD}\u{EFFF}\u{10000}\u{10FFFF}";
    assert_eq!(
        first_child_text(&format!("<A><B>{ok}&#9;&#xFFFD;</B></A>")).unwrap(),
        format!("\t\n\n\u{FFFD}\u{EFFF}\u{10000}\u{10FFFF}\t\u{FFFD}")
    );
    assert_eq!(root_attr("<A v=\"&#9;&#x10000;\"/>").unwrap(), "\t\u{10000}");
}

proptest::proptest! {
    /// The word-at-a-time scan finds what a character-by-character scan finds, at the same
    /// byte, wherever the characters sit relative to the eight-byte words.
    #[test]
    fn the_invalid_character_scan_agrees_with_a_character_loop(
        text in "([a-z<>&\"\t\n\r ]|[\u{0}-\u{1F}]|\u{FFFE}|\u{FFFF}|\u{FFFD}|\u{EFFF}|\u{F8FF}|\u{1F600}){0,40}",
    ) {
        let expected = text
            .char_indices()
            .find(|&(_, c)| !super::is_xml_char(c))
            .map(|(i, c)| (i, u32::from(c)));
        proptest::prop_assert_eq!(super::first_invalid_char(text.as_bytes()), expected);
    }
}

#[test]
fn any_content_with_a_name_xml_does_not_allow_is_refused() {
    let refused = |doc: &str, name: &str| match read_any(doc) {
        Err(e) => assert_eq!(e.kind(), &DecodeErrorKind::InvalidName(name.into()), "{doc}"),
        Ok(e) => panic!("{doc} read as {e:?}"),
    };
    // A property element (the fast path), an element with attributes and one with children.
    refused("<A><1x>v</1x></A>", "1x");
    refused("<A><-x a=\"1\">v</-x></A>", "-x");
    refused("<A><B><.x><C/></.x></B></A>", ".x");
    refused("<A><x 1a=\"v\"/></A>", "1a");
    refused("<A><x a=\"1\" \u{B7}b=\"2\"/></A>", "\u{B7}b");
    refused("<A><\u{AA}x/></A>", "\u{AA}x");
    // Names XML allows, beyond ASCII letters too.
    for name in ["x", "_1", ":x", "a-b.c:d", "\u{E9}t\u{E9}", "x\u{300}\u{B7}y", "\u{10000}z"] {
        let doc = format!("<A><{name} {name}=\"v\">t</{name}></A>");
        let e = read_any(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(e.children[0].name, name);
        assert_eq!(e.children[0].attributes[0].name, name);
    }
}

proptest::proptest! {
    /// The reader takes in `xs:any` content exactly the names the writer writes: what reads
    /// writes again, and a name the writer refuses does not read.
    #[test]
    fn reader_and_writer_agree_on_names(
        name in "[a-zA-Z0-9_:.\\-\u{B7}\u{AA}\u{C0}\u{D7}\u{300}\u{37E}\u{2070}\u{FFFD}]{1,4}",
        as_attribute in proptest::bool::ANY,
    ) {
        let doc = if as_attribute {
            format!("<A><x {name}=\"v\"/></A>")
        } else {
            format!("<A><{name}>v</{name}></A>")
        };
        let element = if as_attribute {
            AnyElement::new("x").with_attribute(name.as_str(), "v")
        } else {
            AnyElement::new(name.as_str()).with_property("p", "v")
        };
        let mut w = Writer::with_capacity(64);
        element.write_element(&element.name.clone(), &mut w);
        let writes = w.finish().is_ok();
        match read_any(&doc) {
            Ok(read) => {
                proptest::prop_assert!(writes, "{} read as {:?} but does not write", doc, read);
                let mut w = Writer::with_capacity(64);
                read.write_element("A", &mut w);
                proptest::prop_assert_eq!(w.finish().unwrap(), doc);
            }
            Err(e) if matches!(e.kind(), DecodeErrorKind::InvalidName(_)) => {
                proptest::prop_assert!(!writes, "{} is refused but writes", doc);
            }
            // quick-xml's own syntax checks refuse some of these names first.
            Err(_) => {}
        }
    }
}
