//! Hostile HTTP on the emulator's listener: malformed, oversized and truncated requests each
//! get their status (or a closed connection), never a panic, and the emulator keeps serving.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use cmmp_emulator::store::MessageOutcome;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_transport::cert::generate_mixed_mode;
use proptest::prelude::{ProptestConfig, any, prop, proptest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[path = "shared/helpers.rs"]
mod shared;
use shared::{assert_no_panic, count_panics};

async fn emulator() -> Emulator {
    count_panics();
    let site = Site::in_memory(SiteConfig::default(), Utc::now()).unwrap();
    let identity = generate_mixed_mode("MP01", SystemTime::now()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(listen, site, identity).await.unwrap()
}

/// Sends `bytes`, half-closes (so a kept-alive connection ends after its answer), and reads
/// until the emulator closes the connection: everything it answered.
async fn exchange(mp: &Emulator, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(mp.addr()).await.unwrap();
    // The emulator may answer and close before it has read everything: a failed write is
    // part of the exchange, not of the test.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer));
    let _ = read.await.expect("the emulator answers or closes within 20 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The emulator still serves: a plain GET of MPLIST is a 200.
async fn still_serving(mp: &Emulator) {
    let get = b"GET /SMS_MP/.sms_aut?MPLIST HTTP/1.1\r\nHost: mp\r\nConnection: close\r\n\r\n";
    let answer = exchange(mp, get).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn each_malformed_request_gets_its_status() {
    let mp = emulator().await;
    let big_head = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(70 * 1024));
    let many_headers: String = (0..80).map(|i| format!("X-{i}: y\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not HTTP", b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        ("a head over 64 KiB", big_head.into_bytes(), "HTTP/1.1 431 "),
        (
            "more than 64 header fields",
            format!("GET / HTTP/1.1\r\n{many_headers}\r\n").into_bytes(),
            "HTTP/1.1 400 ",
        ),
        (
            "chunked transfer encoding",
            b"CCM_POST /ccm_system/request HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 411 ",
        ),
        (
            "a length that is not a number",
            b"CCM_POST /ccm_system/request HTTP/1.1\r\nContent-Length: ten\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "a length over the site's limit",
            b"CCM_POST /ccm_system/request HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 413 ",
        ),
        (
            "a body cut short",
            b"CCM_POST /ccm_system/request HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "a body that is not a message",
            b"CCM_POST /ccm_system/request HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            "HTTP/1.1 200 OK",
        ),
        (
            "GET on a CCM_POST vdir",
            b"GET /ccm_system/request HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 405 ",
        ),
        ("an unknown path", b"GET /nothing HTTP/1.1\r\n\r\n".to_vec(), "HTTP/1.1 404 "),
        (
            "header bytes that are not UTF-8",
            b"GET /SMS_MP/.sms_aut?MPLIST HTTP/1.1\r\nX: \xff\xfe\r\nConnection: close\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 200 OK",
        ),
    ];
    for (what, bytes, status) in cases {
        let answer = exchange(&mp, &bytes).await;
        assert!(answer.starts_with(status), "{what}: {answer:?}");
    }
    // The undecodable body was recorded with its reason, as a real MP logs it.
    let log = mp.site().messages(None, 10).unwrap();
    assert!(
        log.iter().any(|m| m.outcome == MessageOutcome::Refused && m.reason.is_some()),
        "{log:?}"
    );
    still_serving(&mp).await;
    assert_no_panic();
}

#[tokio::test]
async fn a_connection_closed_before_its_head_ends_gets_no_answer() {
    let mp = emulator().await;
    assert_eq!(exchange(&mp, b"").await, "");
    let answer = exchange(&mp, b"GET /SMS_MP/.sms_aut?MPLIST HTTP/1.1\r\nHost:").await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    still_serving(&mp).await;
    assert_no_panic();
}

/// A known admin path asked with a method it does not take: 405 with `Allow`; an unknown path
/// 404.
#[tokio::test]
async fn admin_paths_answer_405_with_allow_for_other_methods() {
    let mp = emulator().await;
    let ask = |method: &str, path: &str| {
        format!(
            "{method} /cmmp-admin/{path} HTTP/1.1\r\nHost: mp\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    for (method, path, allow) in [
        ("POST", "summary", "GET"),
        ("PUT", "faults", "GET, POST, DELETE"),
        ("GET", "proxies", "POST"),
        ("DELETE", "clients/GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10", "GET"),
        ("GET", "clients/GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10/approve", "POST"),
        ("GET", "conflicts/1/resolve", "POST"),
    ] {
        let answer = exchange(&mp, ask(method, path).as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 405 "), "{method} {path}: {answer}");
        assert!(answer.contains(&format!("\r\nAllow: {allow}\r\n")), "{method} {path}: {answer}");
    }
    for path in ["nothing", "clients/GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10/nothing"] {
        let answer = exchange(&mp, ask("GET", path).as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{path}: {answer}");
    }
    assert_no_panic();
}

/// A runtime and an emulator on it, for the cases of a property test.
fn runtime_and_emulator() -> (tokio::runtime::Runtime, Emulator) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mp = runtime.block_on(emulator());
    (runtime, mp)
}

/// A runtime and an emulator that every case of one property test shares.
type Lab = (tokio::runtime::Runtime, Emulator);

/// Each property test's lab, made on first use. One per test: the admin cases add faults (a
/// delay for `*` among them) and proxies, which must not reach another test's requests
/// while the tests run in parallel.
static BYTES_LAB: OnceLock<Lab> = OnceLock::new();
static ADMIN_LAB: OnceLock<Lab> = OnceLock::new();
static GETS_LAB: OnceLock<Lab> = OnceLock::new();

fn lab(cell: &'static OnceLock<Lab>) -> &'static Lab {
    cell.get_or_init(runtime_and_emulator)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any bytes: the emulator answers with a status line or closes, and keeps serving.
    #[test]
    fn arbitrary_bytes_never_stop_the_emulator(
        head in prop::sample::select(vec![
            "", "GET / HTTP/1.1\r\n", "CCM_POST /ccm_system/request HTTP/1.1\r\n",
            "CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nAuthorization: NTLM ",
            "POST /SMS_FSP/.sms_fsp HTTP/1.0\r\nContent-Length: 12\r\n\r\n",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (runtime, mp) = lab(&BYTES_LAB);
        runtime.block_on(async {
            let mut bytes = head.as_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            let answer = exchange(mp, &bytes).await;
            assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 "), "{answer:?}");
            still_serving(mp).await;
        });
        assert_no_panic();
    }
}

/// Pieces of admin paths: the real ones, and what a mistyped or hostile one holds.
const ADMIN_SEGMENTS: &[&str] = &[
    "clients",
    "messages",
    "conflicts",
    "faults",
    "summary",
    "proxies",
    "resolve",
    "approve",
    "unapprove",
    "block",
    "unblock",
    "inventory",
    "state-messages",
    "status-messages",
    "files",
    "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10",
    "GUID:",
    "1",
    "-1",
    "99999999999999999999",
    "..",
    "%00",
    "%2F",
    "\u{e9}",
    "",
];

/// Bodies: fault specifications right and wrong, hex, and JSON of other shapes.
const ADMIN_BODIES: &[&str] = &[
    "",
    "{}",
    "[]",
    "null",
    r#"{"endpoint":"MP_DdrEndpoint","kind":"html-500","remaining":1}"#,
    r#"{"endpoint":"*","kind":"delay","delay_ms":18446744073709551615}"#,
    r#"{"endpoint":"MP_DdrEndpoint","kind":"no-such-kind"}"#,
    r#"{"endpoint":1,"kind":[]}"#,
    r#"{"endpoint":"MP_DdrEndpoint","kind":"empty-200","remaining":-5}"#,
    "30820122300D06092A864886F70D01010105000382010F00",
    "not hex, not DER",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any admin request: a JSON answer with a client-error status when it is wrong (never a
    /// 500, which would mean the emulator failed), and the emulator keeps serving.
    #[test]
    fn admin_requests_get_json_and_a_status_that_fits(
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT"]),
        // Mostly the shape of a real path (a collection, an ID, an action), sometimes not.
        top in prop::sample::select(vec![
            "clients", "messages", "conflicts", "faults", "summary", "proxies",
        ]),
        id in prop::sample::select(vec![
            "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10", "GUID:", "1", "-1", "99999999999999999999",
            "%00", "x",
        ]),
        action in prop::sample::select(vec![
            "", "resolve", "approve", "unapprove", "block", "unblock", "inventory",
            "state-messages", "status-messages", "files", "messages", "..",
        ]),
        shaped in prop::sample::select(vec![0u8, 1, 2, 2, 3]),
        junk in prop::collection::vec(prop::sample::select(ADMIN_SEGMENTS.to_vec()), 0..4),
        query in prop::sample::select(vec![
            "", "?limit=0", "?limit=-1", "?limit=4294967296", "?limit=x", "?action=merge",
            "?action=new", "?action=block", "?action=", "?action=merge&limit=1",
        ]),
        body in prop::sample::select(ADMIN_BODIES.to_vec()),
        raw in prop::collection::vec(any::<u8>(), 0..64),
        use_raw in any::<bool>(),
    ) {
        let (runtime, mp) = lab(&ADMIN_LAB);
        let body: &[u8] = if use_raw { &raw } else { body.as_bytes() };
        let segments = match shaped {
            0 => junk,
            1 => vec![top],
            2 => vec![top, id, action],
            _ => vec![top, id],
        };
        let path = format!("/cmmp-admin/{}{query}", segments.join("/"));
        let mut bytes = format!(
            "{method} {path} HTTP/1.1\r\nHost: mp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        runtime.block_on(async {
            let answer = exchange(mp, &bytes).await;
            let status: u16 = answer
                .strip_prefix("HTTP/1.1 ")
                .and_then(|a| a.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{path}: {answer:?}"));
            assert!(matches!(status, 200 | 400 | 404 | 405), "{method} {path}: {answer}");
            let json = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert!(serde_json::from_str::<serde_json::Value>(json).is_ok(), "{method} {path}: {answer}");
            still_serving(mp).await;
        });
        assert_no_panic();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `.sms_aut` and `.sms_pol` with any query and any token headers, and the fallback status
    /// point with any body: an answer that is not a 500 (the site did not fail), and the
    /// emulator keeps serving.
    #[test]
    fn gets_and_fallback_status_posts_never_fail_the_site(
        target in prop::sample::select(vec![
            "/SMS_MP/.sms_aut?", "/SMS_MP/.sms_pol?", "/SMS_MP_AltAuth/.sms_pol?",
            "/SMS_MP_WindowsAuth/.sms_pol?", "/SMS_FSP/.sms_fsp",
        ]),
        query in prop::sample::select(vec![
            "", "MPLIST", "MPLIST1&P01", "MPLIST2&P01", "MPCERT", "MPCERT2", "MPKEYINFORMATIONEX",
            "MPLOCATION&ir=10.0.0.1&ip=10.0.0.0", "MPLOCATION&ir=x&ip=", "SITESIGNCERT",
            // The stock site's two policies, as `PolicyLocation` names them, and near misses.
            "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A01}.1_00",
            "%7BC1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A02%7D.1_00",
            "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A02}.2_00", "{C1A5E0D2-8B3F-4E6A-9D17-2F4B6C8E0A02}",
            "{5E0A1B2C-0000-4000-8000-00000000000A}.1.00", "NAA01.2.00", ".", "%", "%zz",
            "%00", "a.b.c.d", "99999999999999999999.1",
        ]),
        tail in "[A-Za-z0-9&=%.{}-]{0,24}",
        with_tail in any::<bool>(),
        token in prop::sample::select(vec![
            "", "ClientToken: GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10;2025-01-31T10:00:00Z\r\n",
            "ClientToken: x\r\nClientTokenSignature: ZZ\r\n",
            "ClientToken: GUID:;\r\nClientTokenSignature: 00\r\n",
            "ClientTokenSignature: 0123456789ABCDEF\r\n",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let (runtime, mp) = lab(&GETS_LAB);
        let (method, body): (&str, &[u8]) =
            if target.ends_with(".sms_fsp") { ("POST", &body) } else { ("GET", b"") };
        let tail = if with_tail { tail.as_str() } else { "" };
        let query = if target.ends_with('?') { format!("{query}{tail}") } else { String::new() };
        let mut bytes = format!(
            "{method} {target}{query} HTTP/1.1\r\nHost: mp\r\n{token}Content-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        runtime.block_on(async {
            let answer = exchange(mp, &bytes).await;
            assert!(answer.starts_with("HTTP/1.1 "), "{target}{query}: {answer:?}");
            assert!(!answer.starts_with("HTTP/1.1 500"), "{target}{query}: {answer}");
            still_serving(mp).await;
        });
        assert_no_panic();
    }
}
