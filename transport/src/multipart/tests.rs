use pretty_assertions::assert_eq;
use proptest::collection::vec;
use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};

use super::{
    BOUNDARY, MultipartError, MultipartLimits, Part, boundary_from_content_type, content_type,
    frame, is_no_reply, parse,
};

fn parse_default(body: &[u8]) -> Result<Vec<Part<'_>>, MultipartError> {
    parse(body, BOUNDARY, MultipartLimits::default())
}

#[test]
fn content_type_names_the_constant_boundary() {
    assert_eq!(content_type(), "multipart/mixed; boundary=\"aAbBcCdDv1234567890VxXyYzZ\"");
}

#[test]
fn frames_the_exact_bytes_of_section_2_3() {
    let mut out = Vec::new();
    frame(b"\xFF\xFEH\0", b"P\0\0\0\r\n", &mut out);
    let expected: &[u8] = b"--aAbBcCdDv1234567890VxXyYzZ\r\n\
        content-type: text/plain; charset=UTF-16\r\n\
        \r\n\
        \xFF\xFEH\0\
        \r\n\
        --aAbBcCdDv1234567890VxXyYzZ\r\n\
        content-type: application/octet-stream\r\n\
        \r\n\
        P\0\0\0\r\n\
        \r\n\
        --aAbBcCdDv1234567890VxXyYzZ--";
    assert_eq!(out, expected);
}

#[test]
fn frame_appends_to_existing_bytes() {
    let mut out = b"x".to_vec();
    frame(b"", b"", &mut out);
    assert!(out.starts_with(b"x--aAbB"));
    assert!(out.ends_with(b"\r\n\r\n\r\n--aAbBcCdDv1234567890VxXyYzZ--"));
}

#[test]
fn parses_a_framed_body_back() {
    let mut body = Vec::new();
    frame(b"\xFF\xFE<\0M\0s\0g\0/\0>\0", b"\x78\x9C\x03\x00", &mut body);
    let parts = parse_default(&body).unwrap();
    assert_eq!(
        parts,
        [
            Part {
                headers: vec![("content-type", "text/plain; charset=UTF-16")],
                body: b"\xFF\xFE<\0M\0s\0g\0/\0>\0",
            },
            Part {
                headers: vec![("content-type", "application/octet-stream")],
                body: b"\x78\x9C\x03\x00",
            },
        ]
    );
}

#[test]
fn looks_headers_up_case_insensitively() {
    let body = b"--b\r\nContent-Type:  text/plain \r\nX-Empty:\r\n\r\nx\r\n--b--";
    let parts = parse(body, "b", MultipartLimits::default()).unwrap();
    assert_eq!(parts[0].content_type(), Some("text/plain"));
    assert_eq!(parts[0].header("CONTENT-TYPE"), Some("text/plain"));
    assert_eq!(parts[0].header("x-empty"), Some(""));
    assert_eq!(parts[0].header("content-disposition"), None);
}

#[test]
fn parses_a_python_peer_request() {
    // requests_toolbelt MultipartEncoder: random boundary, form-data parts (§2.2).
    let body = b"--5f1c0e\r\n\
        Content-Disposition: form-data; name=\"Msg\"\r\n\
        Content-Type: text/plain; charset=UTF-16\r\n\r\n\
        \xFF\xFEM\0\r\n\
        --5f1c0e\r\n\
        Content-Disposition: form-data; name=\"RequestAssignments\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n\
        x\0\0\0\r\n\r\n\
        --5f1c0e--\r\n";
    let parts = parse(body, "5f1c0e", MultipartLimits::default()).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].header("content-disposition"), Some("form-data; name=\"Msg\""));
    assert_eq!(parts[0].body, b"\xFF\xFEM\0");
    assert_eq!(parts[1].body, b"x\0\0\0\r\n");
}

#[test]
fn tolerates_bare_lf_preamble_epilogue_and_padding() {
    let body =
        b"preamble\nmore\n--b \t\nct: a\n\nfirst\n--b\r\nct: b\r\n\r\nsecond\r\n--b--\r\nepilogue";
    let parts = parse(body, "b", MultipartLimits::default()).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].header("ct"), parts[0].body), (Some("a"), &b"first"[..]));
    assert_eq!((parts[1].header("ct"), parts[1].body), (Some("b"), &b"second"[..]));
}

#[test]
fn keeps_delimiter_lookalikes_inside_a_part() {
    let body = b"--b\r\nct: a\r\n\r\nx --b\r\n--bc\r\n--b-\r\n\r\n--b--";
    let parts = parse(body, "b", MultipartLimits::default()).unwrap();
    assert_eq!(parts[0].body, b"x --b\r\n--bc\r\n--b-\r\n");
}

#[test]
fn keeps_bytes_before_the_final_line_end() {
    let body = b"--b\r\nct: a\r\n\r\nx\r\r\n--b--";
    assert_eq!(parse(body, "b", MultipartLimits::default()).unwrap()[0].body, b"x\r");
}

#[test]
fn accepts_parts_with_empty_bodies() {
    // With and without the blank line after the header block.
    for body in [
        &b"--b\r\nct: a\r\n\r\n\r\n--b--"[..],
        b"--b\r\nct: a\r\n\r\n--b--",
        b"--b\r\nct: a\r\n--b--",
    ] {
        let parts = parse(body, "b", MultipartLimits::default()).unwrap();
        assert_eq!(parts, [Part { headers: vec![("ct", "a")], body: b"" }]);
    }
}

#[test]
fn accepts_a_close_delimiter_alone_as_no_parts() {
    assert_eq!(parse(b"--b--", "b", MultipartLimits::default()), Ok(Vec::new()));
}

#[test]
fn parses_a_no_reply_answer() {
    let body = b"--b\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n\
        \xFF\xFEN\0o\0R\0e\0p\0l\0y\0\0\0\r\n--b--";
    let parts = parse(body, "b", MultipartLimits::default()).unwrap();
    assert_eq!(parts.len(), 1);
    assert!(is_no_reply(parts[0].body));
}

/// Each malformed body gives its own error.
mod errors {
    use pretty_assertions::assert_eq;

    use super::{MultipartError, MultipartLimits, frame, parse, parse_default};

    #[test]
    fn empty_body() {
        assert_eq!(parse_default(b""), Err(MultipartError::Empty));
    }

    #[test]
    fn html_error_page() {
        let page = b"<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";
        assert_eq!(parse_default(page), Err(MultipartError::BoundaryNotFound));
    }

    #[test]
    fn wrong_boundary() {
        let mut body = Vec::new();
        frame(b"h", b"p", &mut body);
        assert_eq!(
            parse(&body, "other", MultipartLimits::default()),
            Err(MultipartError::BoundaryNotFound)
        );
        // A prefix of the real boundary is not the boundary either.
        assert_eq!(
            parse(&body, "aAbB", MultipartLimits::default()),
            Err(MultipartError::BoundaryNotFound)
        );
    }

    #[test]
    fn boundary_not_at_a_line_start() {
        assert_eq!(
            parse(b"x--b\r\nct: a\r\n\r\n--b--", "c", MultipartLimits::default()),
            Err(MultipartError::BoundaryNotFound)
        );
        assert_eq!(
            parse(b"x--b\r\n", "b", MultipartLimits::default()),
            Err(MultipartError::BoundaryNotFound)
        );
    }

    #[test]
    fn invalid_boundary() {
        for boundary in ["", "a\r\nb", "a\n"] {
            assert_eq!(
                parse(b"--a--", boundary, MultipartLimits::default()),
                Err(MultipartError::InvalidBoundary)
            );
        }
    }

    #[test]
    fn missing_close_delimiter() {
        let mut body = Vec::new();
        frame(b"h", b"p", &mut body);
        for cut in [2, 4, 6, 7, 30, body.len() / 2] {
            let truncated = &body[..body.len() - cut];
            assert_eq!(parse_default(truncated), Err(MultipartError::Truncated), "cut {cut}");
        }
        assert_eq!(parse(b"--b", "b", MultipartLimits::default()), Err(MultipartError::Truncated));
        assert_eq!(
            parse(b"--b\r", "b", MultipartLimits::default()),
            Err(MultipartError::Truncated)
        );
        assert_eq!(
            parse(b"--b\r\n", "b", MultipartLimits::default()),
            Err(MultipartError::Truncated)
        );
        assert_eq!(
            parse(b"--b\r\nct: a\r\n\r\nx\r\n--b-", "b", MultipartLimits::default()),
            Err(MultipartError::Truncated)
        );
    }

    #[test]
    fn part_without_headers() {
        let cases: [&[u8]; 4] = [
            b"--b\r\n\r\nbody\r\n--b--",
            b"--b\r\n<Msg xmlns:x=\"y\"/>\r\n\r\n--b--",
            b"--b\r\n--b--",
            b"--b\r\nct: a\r\n\r\nx\r\n--b\r\n\r\n\r\n--b--",
        ];
        for (case, index) in cases.into_iter().zip([0, 0, 0, 1]) {
            assert_eq!(
                parse(case, "b", MultipartLimits::default()),
                Err(MultipartError::MissingPartHeaders { index })
            );
        }
    }

    #[test]
    fn malformed_header_line() {
        let body = b"--b\r\nct: a\r\nno colon here\r\n\r\nx\r\n--b--";
        assert_eq!(
            parse(body, "b", MultipartLimits::default()),
            Err(MultipartError::MalformedHeader { index: 0, offset: 12 })
        );
        let body = b"--b\r\nct: a\r\n\xFF: x\r\n\r\n--b--";
        assert_eq!(
            parse(body, "b", MultipartLimits::default()),
            Err(MultipartError::MalformedHeader { index: 0, offset: 12 })
        );
    }

    #[test]
    fn too_large_before_parsing() {
        let limits = MultipartLimits { max_size: 4, ..MultipartLimits::default() };
        assert_eq!(
            parse(b"--b--", "b", limits),
            Err(MultipartError::TooLarge { len: 5, limit: 4 })
        );
        let limits = MultipartLimits { max_size: 5, ..MultipartLimits::default() };
        assert_eq!(parse(b"--b--", "b", limits), Ok(Vec::new()));
    }

    #[test]
    fn too_many_parts() {
        let body =
            b"--b\r\nct: a\r\n\r\n1\r\n--b\r\nct: a\r\n\r\n2\r\n--b\r\nct: a\r\n\r\n3\r\n--b--";
        let limits = MultipartLimits { max_parts: 2, ..MultipartLimits::default() };
        assert_eq!(parse(body, "b", limits), Err(MultipartError::TooManyParts { limit: 2 }));
        let limits = MultipartLimits { max_parts: 3, ..MultipartLimits::default() };
        assert_eq!(parse(body, "b", limits).map(|parts| parts.len()), Ok(3));
    }
}

/// `Content-Type` parameters as MPs and peers write them.
mod boundary_parameter {
    use pretty_assertions::assert_eq;

    use super::{BOUNDARY, boundary_from_content_type, content_type};

    #[test]
    fn reads_the_canonical_value() {
        assert_eq!(boundary_from_content_type(&content_type()), Some(BOUNDARY));
    }

    #[test]
    fn reads_bare_and_quoted_values_in_any_case() {
        let cases = [
            ("multipart/mixed; boundary=abc", Some("abc")),
            ("multipart/mixed;boundary=abc ", Some("abc")),
            ("multipart/mixed; Boundary=\"a b;c\"", Some("a b;c")),
            ("multipart/mixed; charset=x; BOUNDARY = abc; q=1", Some("abc")),
            ("multipart/mixed; x=\"boundary=no\"; boundary=yes", Some("yes")),
            ("multipart/mixed; flag; boundary=abc", Some("abc")),
            ("multipart/mixed;; boundary=abc", Some("abc")),
            ("multipart/mixed; x=\"a\\\"b\"; boundary=abc", Some("abc")),
        ];
        for (value, expected) in cases {
            assert_eq!(boundary_from_content_type(value), expected, "{value}");
        }
    }

    #[test]
    fn refuses_missing_empty_or_broken_values() {
        let cases = [
            "multipart/mixed",
            "text/html; charset=utf-8",
            "multipart/mixed; boundary=",
            "multipart/mixed; boundary=\"\"",
            "multipart/mixed; boundary=\"abc",
            "multipart/mixed; boundary=\"a\\bc\"",
            "multipart/mixed; myboundary=abc",
            "",
        ];
        for value in cases {
            assert_eq!(boundary_from_content_type(value), None, "{value}");
        }
    }
}

/// The Post acknowledgement in the framings a real MP might use (§2.8).
mod no_reply {
    use super::is_no_reply;

    #[test]
    fn accepts_lenient_framings() {
        let cases: [&[u8]; 9] = [
            b"NoReply",
            b"NoReply\r\n",
            b"  NoReply\0",
            b"\xEF\xBB\xBFNoReply",
            b"N\0o\0R\0e\0p\0l\0y\0",
            b"N\0o\0R\0e\0p\0l\0y\0\0\0",
            b"\xFF\xFEN\0o\0R\0e\0p\0l\0y\0\0\0\r\0\n\0",
            b"\xFE\xFF\0N\0o\0R\0e\0p\0l\0y",
            b"\xFF\xFEN\0o\0R\0e\0p\0l\0y\0\0\0\n",
        ];
        for case in cases {
            assert!(is_no_reply(case), "{case:?}");
        }
    }

    #[test]
    fn refuses_other_text() {
        let cases: [&[u8]; 9] = [
            b"",
            b"noreply",
            b"NOREPLY",
            b"No Reply",
            b"NoReplyX",
            b"<Msg/>",
            b"\xFF\xFEN\0o\0R\0e\0p\0l\0y\0X",
            b"\xFF\xFE\x00\xD8",
            b"\xFFNoReply",
        ];
        for case in cases {
            assert!(!is_no_reply(case), "{case:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_then_parse_is_exact(
        header in vec(any::<u8>(), 0..256),
        payload in vec(any::<u8>(), 0..256),
    ) {
        let mut body = Vec::new();
        frame(&header, &payload, &mut body);
        let parts = parse_default(&body).unwrap();
        prop_assert_eq!(parts.len(), 2);
        prop_assert_eq!(parts[0].body, &header[..]);
        prop_assert_eq!(parts[1].body, &payload[..]);
    }

    // A name starting with `--b` would be a delimiter line of boundary `b`, so names start
    // with a letter.
    #[test]
    fn bounded_headers_parse(name in "[A-Za-z][A-Za-z-]{0,19}", value in "[ -~]{0,40}") {
        let body = format!("--b\r\n{name}:{value}\r\n\r\nx\r\n--b--");
        let parts = parse(body.as_bytes(), "b", MultipartLimits::default()).unwrap();
        prop_assert_eq!(parts[0].header(&name), Some(value.trim_matches([' ', '\t'])));
    }

    #[test]
    fn arbitrary_content_types_never_panic(value in any::<String>()) {
        let _ = boundary_from_content_type(&value);
    }

    #[test]
    fn arbitrary_no_reply_bodies_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        let _ = is_no_reply(&bytes);
    }

    #[test]
    fn quoted_boundary_round_trips(
        boundary in "[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]",
    ) {
        let value = format!("multipart/mixed; boundary=\"{boundary}\"");
        prop_assert_eq!(boundary_from_content_type(&value), Some(boundary.as_str()));
    }

    #[test]
    fn bare_boundary_round_trips(boundary in "[0-9A-Za-z'()+_,./:=?-]{1,70}") {
        let value = format!("multipart/mixed; boundary={boundary}");
        prop_assert_eq!(boundary_from_content_type(&value), Some(boundary.as_str()));
    }
}
