//! Hostile replies and requests against the pure codecs (field notes §5 item 1, style HS-54).
//!
//! Every input is built here in code; nothing large is stored. Each case names the error it must
//! produce, and none may panic.

use std::io::Write;
use std::time::{Duration, Instant};

use cmmp_transport::body::{self, BodyError, BomPolicy};
use cmmp_transport::multipart::{self, BOUNDARY, MultipartError, MultipartLimits};
use cmmp_transport::zlib::{self, InflateError, InflateLimits};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use pretty_assertions::assert_eq;
use proptest::collection::vec;
use proptest::prelude::{ProptestConfig, any, prop_assert, prop_assert_eq, prop_assume, proptest};
use proptest::strategy::{Just, Strategy, Union};
use proptest::test_runner::FileFailurePersistence;

/// The policy error page an MP returns instead of multipart (protocol §2.9).
const HTML_ERROR: &[u8] = b"<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";

/// A well-formed request or Sync reply: UTF-16 `Msg` header and a compressed body (§2.3, §2.7).
fn reply() -> Vec<u8> {
    let mut header = Vec::new();
    body::encode_header("<Msg><ID>{5DD100CD-DF1D-45F5-BA17-A327F43465F8}</ID></Msg>", &mut header);
    let mut payload = Vec::new();
    body::encode_body("<ReplyAssignments/>", &mut payload);
    payload.extend_from_slice(b"\r\n");
    let mut framed = Vec::new();
    multipart::frame(&header, &zlib::compress(&payload), &mut framed);
    framed
}

fn parse(input: &[u8]) -> Result<Vec<multipart::Part<'_>>, MultipartError> {
    multipart::parse(input, BOUNDARY, MultipartLimits::default())
}

#[test]
fn well_formed_reply_decodes_end_to_end() {
    let framed = reply();
    let parts = parse(&framed).unwrap();
    assert_eq!(parts.len(), 2);
    let header = body::decode_header(parts[0].body, BomPolicy::Required).unwrap();
    assert!(header.starts_with("<Msg><ID>"));
    let payload = zlib::inflate(parts[1].body, InflateLimits::default()).unwrap();
    let (text, crlf) = payload.split_at(payload.len() - 2);
    assert_eq!(crlf, b"\r\n");
    assert_eq!(body::decode_body(text).unwrap(), "<ReplyAssignments/>");
}

/// A zlib stream of `len` zeros, built in 1 MiB steps so the test itself stays small.
fn zero_bomb(len: usize) -> Vec<u8> {
    let zeros = vec![0_u8; 1 << 20];
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    for _ in 0..len / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&zeros[..len % zeros.len()]).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn zlib_bomb_1000_to_1_stops_on_ratio() {
    let bomb = zero_bomb(100_000_000);
    assert!(bomb.len() * 1000 <= 100_000_000, "ratio below 1000:1: {} bytes", bomb.len());
    let started = Instant::now();
    assert_eq!(
        zlib::inflate(&bomb, InflateLimits::default()),
        Err(InflateError::RatioExceeded { ratio_limit: InflateLimits::default().max_ratio })
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn zlib_bomb_inside_a_framed_reply_stops_on_ratio() {
    let mut framed = Vec::new();
    multipart::frame(
        b"\xFF\xFE<\0M\0s\0g\0/\0>\0",
        &zlib::compress(&vec![b'A'; 20_000_000]),
        &mut framed,
    );
    let parts = parse(&framed).unwrap();
    assert!(matches!(
        zlib::inflate(parts[1].body, InflateLimits::default()),
        Err(InflateError::RatioExceeded { .. })
    ));
}

#[test]
fn zlib_over_the_absolute_cap() {
    let limits = InflateLimits { max_output: 1 << 20, max_ratio: u32::MAX };
    let bomb = zlib::compress(&vec![0_u8; 2 << 20]);
    assert_eq!(zlib::inflate(&bomb, limits), Err(InflateError::TooLarge { limit: 1 << 20 }));
}

#[test]
fn zlib_truncated() {
    let packed = zlib::compress(b"<\0a\0/\0>\0\0\0\r\n");
    assert_eq!(
        zlib::inflate(&packed[..packed.len() - 3], InflateLimits::default()),
        Err(InflateError::Truncated)
    );
}

#[test]
fn zlib_fed_an_html_page() {
    assert!(matches!(
        zlib::inflate(HTML_ERROR, InflateLimits::default()),
        Err(InflateError::Corrupt(_))
    ));
}

#[test]
fn multipart_truncated() {
    let framed = reply();
    for len in [framed.len() - 1, framed.len() - 2, framed.len() - 28, framed.len() / 2, 40] {
        assert_eq!(parse(&framed[..len]), Err(MultipartError::Truncated), "length {len}");
    }
}

#[test]
fn payload_holding_a_delimiter_line_splits_early() {
    // Documented limit of every MIME parser (multipart module docs): the part ends early.
    let mut framed = Vec::new();
    let payload = format!("a\r\n--{BOUNDARY}\r\nct: x\r\n\r\nb");
    multipart::frame(b"h", payload.as_bytes(), &mut framed);
    let parts = parse(&framed).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!((parts[1].body, parts[2].body), (&b"a"[..], &b"b"[..]));
}

#[test]
fn multipart_wrong_boundary() {
    let framed = reply();
    let found = multipart::parse(&framed, "5f1c0e5f1c0e", MultipartLimits::default());
    assert_eq!(found, Err(MultipartError::BoundaryNotFound));
}

#[test]
fn multipart_oversize() {
    let framed = reply();
    let limits = MultipartLimits { max_size: 100, ..MultipartLimits::default() };
    assert_eq!(
        multipart::parse(&framed, BOUNDARY, limits),
        Err(MultipartError::TooLarge { len: framed.len(), limit: 100 })
    );
}

#[test]
fn html_error_page_instead_of_multipart() {
    assert_eq!(parse(HTML_ERROR), Err(MultipartError::BoundaryNotFound));
    assert_eq!(multipart::boundary_from_content_type("text/html"), None);
}

#[test]
fn empty_body() {
    assert_eq!(parse(b""), Err(MultipartError::Empty));
    assert_eq!(body::decode_body(b""), Err(BodyError::MissingNul));
    assert_eq!(zlib::inflate(b"", InflateLimits::default()), Err(InflateError::Truncated));
    assert!(!multipart::is_no_reply(b""));
}

#[test]
fn thousand_tiny_parts() {
    let mut flood = Vec::new();
    for _ in 0..1000 {
        flood.extend_from_slice(format!("--{BOUNDARY}\r\nct: x\r\n\r\n\r\n").as_bytes());
    }
    flood.extend_from_slice(format!("--{BOUNDARY}--").as_bytes());
    let limits = MultipartLimits::default();
    assert_eq!(parse(&flood), Err(MultipartError::TooManyParts { limit: limits.max_parts }));
    let generous = MultipartLimits { max_parts: 1000, ..limits };
    assert_eq!(multipart::parse(&flood, BOUNDARY, generous).map(|parts| parts.len()), Ok(1000));
}

#[test]
fn odd_length_utf16() {
    assert_eq!(body::decode_body(b"<\0a\0/\0>\0\0\0\0"), Err(BodyError::OddLength { len: 11 }));
    assert_eq!(body::decode_header(b"\xFF\xFE<\0", BomPolicy::Required), Ok("<".to_owned()));
    assert_eq!(
        body::decode_header(b"\xFF\xFE<\0M", BomPolicy::Required),
        Err(BodyError::OddLength { len: 5 })
    );
}

#[test]
fn surrogate_broken_utf16() {
    assert_eq!(
        body::decode_body(b"<\0\x00\xD8a\0\0\0"),
        Err(BodyError::UnpairedSurrogate { offset: 2 })
    );
    assert_eq!(
        body::decode_header(b"\xFF\xFE<\0\x00\xDC", BomPolicy::Required),
        Err(BodyError::UnpairedSurrogate { offset: 4 })
    );
}

#[test]
fn reply_body_with_peer_style_nul_hacks() {
    // What peers strip by hand (field notes §2.3) is an error here, each distinct.
    let cases: [(&[u8], BodyError); 4] = [
        (b"\xFF\xFE<\0a\0/\0>\0\0\0", BodyError::UnexpectedBom),
        (b"<\0a\0/\0>\0", BodyError::MissingNul),
        (b"<\0a\0/\0>\0\0\0\0\0", BodyError::ExtraNul { offset: 10 }),
        (b"<\0a\0/\0>\0\0\0j\0u\0n\0k\0", BodyError::TrailingBytes { offset: 10 }),
    ];
    for (input, error) in cases {
        assert_eq!(body::decode_body(input), Err(error));
    }
}

#[test]
fn header_part_without_bom_from_a_client() {
    let parts_body = b"<\0M\0s\0g\0/\0>\0";
    assert_eq!(body::decode_header(parts_body, BomPolicy::Required), Err(BodyError::MissingBom));
    assert_eq!(body::decode_header(parts_body, BomPolicy::Optional), Ok("<Msg/>".to_owned()));
}

/// Bytes rich in the tokens the multipart parser looks at; `delimiters` adds whole delimiters.
fn multipart_soup(delimiters: bool) -> impl Strategy<Value = Vec<u8>> {
    let mut tokens = vec![
        vec(any::<u8>(), 0..8).boxed(),
        Just(b"\r\n".to_vec()).boxed(),
        Just(b"\n".to_vec()).boxed(),
        Just(b"\r".to_vec()).boxed(),
        Just(b"--".to_vec()).boxed(),
        Just(b" \t".to_vec()).boxed(),
        Just(b"ct: x".to_vec()).boxed(),
        Just(BOUNDARY.as_bytes().to_vec()).boxed(),
        Just(format!("\n--{BOUNDARY}x").into_bytes()).boxed(),
        Just(format!("\n--{BOUNDARY}-").into_bytes()).boxed(),
    ];
    if delimiters {
        tokens.push(Just(format!("\r\n--{BOUNDARY}\r\n").into_bytes()).boxed());
        tokens.push(Just(format!("\r\n--{BOUNDARY}--").into_bytes()).boxed());
    }
    vec(Union::new(tokens), 0..40).prop_map(|tokens| tokens.concat())
}

/// Whether `bytes` holds a delimiter line (§2.3), which ends a part early in any MIME parser:
/// at a line start, `--` and the boundary, then `--`, or spaces and tabs up to a line end or
/// the end of the part.
fn holds_delimiter_line(bytes: &[u8]) -> bool {
    let dash_boundary = format!("--{BOUNDARY}");
    let starts = std::iter::once(0)
        .chain(bytes.iter().enumerate().filter(|&(_, &byte)| byte == b'\n').map(|(at, _)| at + 1));
    starts.filter_map(|at| bytes[at..].strip_prefix(dash_boundary.as_bytes())).any(|after| {
        let tail = after.iter().skip_while(|&&byte| byte == b' ' || byte == b'\t');
        after.starts_with(b"--") || matches!(tail.copied().next(), None | Some(b'\r' | b'\n'))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // About a third of the soup holds a delimiter line and is rejected; room for that at
        // any `PROPTEST_CASES`.
        max_global_rejects: u32::MAX,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_of_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
        let _ = multipart::parse(&bytes, "a", MultipartLimits::default());
    }

    #[test]
    fn parse_of_delimiter_soup_never_panics(
        bytes in multipart_soup(true),
        max_parts in 0_usize..4,
    ) {
        let limits = MultipartLimits { max_parts, ..MultipartLimits::default() };
        if let Ok(parts) = multipart::parse(&bytes, BOUNDARY, limits) {
            prop_assert!(parts.len() <= max_parts);
            for part in parts {
                prop_assert!(!part.headers.is_empty());
                let _ = multipart::is_no_reply(part.body);
            }
        }
    }

    /// Exact unless a part holds a line starting with `--` and the boundary (module docs).
    #[test]
    fn frame_then_parse_returns_both_parts(
        header in multipart_soup(false),
        payload in multipart_soup(false),
    ) {
        prop_assume!(!holds_delimiter_line(&header) && !holds_delimiter_line(&payload));
        let mut framed = Vec::new();
        multipart::frame(&header, &payload, &mut framed);
        let parts = parse(&framed).unwrap();
        prop_assert_eq!(parts.len(), 2);
        prop_assert_eq!(parts[0].content_type(), Some("text/plain; charset=UTF-16"));
        prop_assert_eq!(parts[0].body, &header[..]);
        prop_assert_eq!(parts[1].content_type(), Some("application/octet-stream"));
        prop_assert_eq!(parts[1].body, &payload[..]);
    }

    #[test]
    fn frame_then_parse_of_arbitrary_bytes(
        header in vec(any::<u8>(), 0..512),
        payload in vec(any::<u8>(), 0..512),
    ) {
        let mut framed = Vec::new();
        multipart::frame(&header, &payload, &mut framed);
        let parts = parse(&framed).unwrap();
        prop_assert_eq!(parts[0].body, &header[..]);
        prop_assert_eq!(parts[1].body, &payload[..]);
    }

    #[test]
    fn codecs_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        let _ = body::decode_body(&bytes);
        let _ = body::decode_header(&bytes, BomPolicy::Optional);
        let _ = zlib::inflate(&bytes, InflateLimits::default());
        let _ = multipart::is_no_reply(&bytes);
    }
}
