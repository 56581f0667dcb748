//! Hostile HTTP on the emulator's listener: malformed, oversized and truncated requests each
//! get their status (or a closed connection), never a panic, and the emulator keeps serving.

use std::net::SocketAddr;
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

/// One runtime and emulator for every case of the property test.
fn shared() -> &'static (tokio::runtime::Runtime, Emulator) {
    static SHARED: std::sync::OnceLock<(tokio::runtime::Runtime, Emulator)> =
        std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let mp = runtime.block_on(emulator());
        (runtime, mp)
    })
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
        let (runtime, mp) = shared();
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
