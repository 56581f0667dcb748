//! The HTTP client against a loopback test MP (127.0.0.1, port 0): Invoke and Post, vdir
//! selection, the `.sms_aut` GETs, policy downloads, reply signatures, HTTPS with custom roots
//! and mutual TLS, proxies, timeouts, the blocking facade, and every hostile reply class,
//! each of which must come back as its typed error, never a panic (house style HS-54, HS-83).
//!
//! Certificates and keys are generated here (`exchange/pki.rs`); no test sleeps: waits are
//! the client's own bounded timeouts.

mod exchange {
    pub(crate) mod mp;
    pub(crate) mod pki;
}

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use cmmp_model::kinds::{ContentLocation, Inbound, StateMessages};
use cmmp_model::location::ContentLocationReply;
use cmmp_model::mpinfo::{MpCertificate, MpCertificates, MpList, MpLocation, Mpkeyinformation};
use cmmp_model::msg::Msg;
use cmmp_model::policy::Policy;
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{DecodeErrorKind, Endpoint, MessageExt};
use cmmp_transport::body::{encode_body, encode_header};
use cmmp_transport::cert::{self, Identity};
use cmmp_transport::client::{
    Client, ClientConfig, ClientIdentity, CrlCheck, PolicyAuth, Roots, Scheme, blocking,
};
use cmmp_transport::msg::HostName;
use cmmp_transport::ntlm::{self, Credentials};
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::reply::{self, ReplyLimits, ReplySignature, ReplySigner, ReplyVerifier};
use cmmp_transport::sign::{self, HashAlgorithm, TokenScheme};
use cmmp_transport::wire::{self, DecodeLimits, Fresh, Settings, Vdir};
use cmmp_transport::zlib::InflateError;
use cmmp_transport::{Error, cms, multipart, zlib};
use exchange::mp::{Answer, TestMp, TestProxy, chunked_ok, multipart_ok, ok, response};
use exchange::pki::{crl, pki, server_config, server_with_crl_point};
use pretty_assertions::assert_eq;

// ---------------------------------------------------------------------------------------------
// Helpers

fn doc(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/documents")
        .join(path);
    std::fs::read_to_string(p).unwrap()
}

fn kind<K: Endpoint>(path: &str) -> K {
    K::from_body(K::Body::from_xml(&doc(path)).unwrap())
}

fn content_location() -> ContentLocation {
    kind("location/content-request.xml")
}

/// The canonical content location reply, as text.
fn content_reply() -> String {
    ContentLocationReply::from_xml(&doc("location/content-reply.xml")).unwrap().to_xml().unwrap()
}

fn settings(mp: &str) -> Settings {
    Settings::new(HostName::new(mp).unwrap(), HostName::new("WS01").unwrap())
}

/// A config for the test MP: 127.0.0.1 on its port, short timeouts.
fn config(mp: &TestMp) -> ClientConfig {
    let mut c = ClientConfig::new(settings("127.0.0.1"));
    c.port = Some(mp.port());
    c.connect_timeout = Duration::from_secs(5);
    c.timeout = Duration::from_secs(20);
    c
}

fn client(mp: &TestMp) -> Client {
    Client::new(config(mp)).unwrap()
}

/// An HTTPS config trusting the test CA.
fn tls_config(mp: &TestMp) -> ClientConfig {
    let mut c = config(mp);
    c.scheme = Scheme::Https;
    c.roots = Roots::Custom(vec![pki().ca.der()]);
    c
}

fn reply_header() -> Msg {
    Msg::new("SccmMessaging".to_owned())
}

/// A 200 multipart Sync reply carrying `xml`.
fn sync_reply(xml: &str, compress: bool, signer: Option<&ReplySigner<'_>>) -> Answer {
    multipart_ok(&reply::encode_sync_reply(reply_header(), xml, compress, signer).unwrap())
}

/// The MP's signing identity (a self-signed certificate).
fn mp_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| cert::generate_mixed_mode_single("MP01", SystemTime::now()).unwrap())
}

/// The client's identity (two certificates, as the real client).
fn client_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| cert::generate_mixed_mode("ConfigMgr Client", SystemTime::now()).unwrap())
}

fn signer<'k>(key: &'k Identity, machines: &'k str, site: &'k str) -> ReplySigner<'k> {
    ReplySigner {
        key: key.signing_key(),
        hash: HashAlgorithm::Sha256,
        sender_machines: machines,
        site_code: site,
    }
}

fn pinned() -> ReplyVerifier {
    ReplyVerifier::from_certificate(mp_identity().signing_cert()).unwrap().with_site_code("P01")
}

fn client_id() -> SmsId {
    "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10".parse().unwrap()
}

/// Invokes the content location kind against an MP answering with `answer`.
async fn invoke_with(
    answer: impl Fn() -> Answer + Send + Sync + 'static,
    adjust: impl FnOnce(&mut ClientConfig),
) -> Result<cmmp_transport::reply::Received<ContentLocationReply>, Error> {
    let mp = TestMp::http(move |_| answer());
    let mut c = config(&mp);
    adjust(&mut c);
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await
}

/// Whether a recorded request is a Post (`ReplyMode` `Async`).
fn is_post(request: &exchange::mp::Recorded) -> bool {
    wire::decode_request(request.header("Content-Type"), &request.body, DecodeLimits::default())
        .is_ok_and(|d| d.header.reply_mode == Some(cmmp_model::msg::ReplyModeValue::Async))
}

/// A framed two-part reply from raw parts.
fn framed(header_xml: &str, body_part: &[u8]) -> Vec<u8> {
    let mut header = Vec::new();
    encode_header(header_xml, &mut header);
    let mut out = Vec::new();
    multipart::frame(&header, body_part, &mut out);
    out
}

fn utf16_body(xml: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_body(xml, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Invoke and Post

#[tokio::test]
async fn invoke_sends_ccm_post_and_decodes_a_compressed_reply() {
    let xml = content_reply();
    let answer = xml.clone();
    let mp = TestMp::http(move |_| sync_reply(&answer, true, None));
    let received = client(&mp).invoke(&content_location(), vec![], None).await.unwrap();
    assert_eq!(received.reply, ContentLocationReply::from_xml(&xml).unwrap());
    assert_eq!(received.body_xml, xml);
    assert_eq!(received.signature, ReplySignature::Absent);
    assert_eq!(received.header.target_endpoint, "SccmMessaging");

    let request = mp.only_request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("CCM_POST", "/ccm_system/request")
    );
    let decoded = wire::decode_request(
        request.header("Content-Type"),
        &request.body,
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded.header.target_endpoint, "MP_LocationManager");
    assert!(
        matches!(decoded.message, Inbound::ContentLocation(ref m) if m.0 == content_location().0)
    );
}

#[tokio::test]
async fn invoke_decodes_an_uncompressed_reply() {
    let xml = content_reply();
    let answer = xml.clone();
    let received = invoke_with(move || sync_reply(&answer, false, None), |_| {}).await.unwrap();
    assert_eq!(received.body_xml, xml);
}

#[tokio::test]
async fn the_bytes_on_the_wire_are_the_built_request() {
    let mp = TestMp::http(|_| sync_reply(&content_reply(), true, None));
    let client = client(&mp);
    let fresh = Fresh {
        id: "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}".parse::<BracedGuid>().unwrap(),
        sent_time: "2025-01-31T10:00:00Z".parse::<IsoTime>().unwrap(),
    };
    let request =
        wire::build_request(client.settings(), &content_location(), vec![], None, fresh).unwrap();
    let http = client.send(&request).await.unwrap();
    assert_eq!(http.status, 200);
    assert_eq!(http.header("server"), Some("Microsoft-IIS/10.0"));
    assert!(mp.only_request().raw == request.to_bytes(), "the client altered the request bytes");
}

#[tokio::test]
async fn post_returns_the_sent_message_id_as_tracking_id() {
    let mp = TestMp::http(|_| multipart_ok(&reply::encode_no_reply()));
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    let tracking = client(&mp).post(&report, vec![], None).await.unwrap();
    let request = mp.only_request();
    let decoded = wire::decode_request(
        request.header("Content-Type"),
        &request.body,
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded.header.id, Some(tracking.0));
    assert_eq!(tracking.to_string(), tracking.0.to_string());
}

#[tokio::test]
async fn post_accepts_a_bare_noreply_text() {
    let mp = TestMp::http(|_| ok("text/plain", b"NoReply\r\n"));
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    client(&mp).post(&report, vec![], None).await.unwrap();
}

#[tokio::test]
async fn vdir_selects_the_request_path() {
    for (vdir, path) in [
        (Vdir::Default, "/ccm_system/request"),
        (Vdir::WindowsAuth, "/ccm_system_windowsauth/request"),
        (Vdir::AltAuth, "/ccm_system_altauth/request"),
    ] {
        let mp = TestMp::http(|_| sync_reply(&content_reply(), true, None));
        let mut c = config(&mp);
        c.settings.vdir = vdir;
        Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
        assert_eq!(mp.only_request().target, path, "{vdir:?}");
    }
}

#[tokio::test]
async fn raw_messages_invoke_and_post() {
    let xml = content_reply();
    let answer = xml.clone();
    let mp = TestMp::http(move |r| {
        if is_post(r) {
            multipart_ok(&reply::encode_no_reply())
        } else {
            sync_reply(&answer, true, None)
        }
    });
    let client = client(&mp);
    let mut message = RawMessage::new();
    message.set_target_endpoint("MP_LocationManager").unwrap();
    message.set_body_from_string(&content_location().0.to_xml().unwrap());
    message.set_security_flags(SecurityFlags::COMPRESS_MESSAGE);
    let reply = client.invoke_raw(&message, None).await.unwrap();
    assert_eq!(reply.body_xml, xml);

    let mut post = RawMessage::new();
    post.set_target_endpoint("MP_RelayEndpoint").unwrap();
    post.set_property("FileType", "SMX");
    post.set_body_from_string(&doc("state/app-and-heartbeat.xml"));
    let tracking = client.post_raw(&post, None).await.unwrap();
    let last = mp.requests().pop().unwrap();
    let decoded =
        wire::decode_request(last.header("Content-Type"), &last.body, DecodeLimits::default())
            .unwrap();
    assert_eq!(decoded.header.id, Some(tracking.0));

    message.set_verify_server_signature(true);
    let e = client.invoke_raw(&message, None).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Reply signatures (§3.5, M15)

#[tokio::test]
async fn signed_replies_verify_against_the_pinned_certificate() {
    for compress in [true, false] {
        let xml = content_reply();
        let received = invoke_with(
            move || {
                sync_reply(&xml, compress, Some(&signer(mp_identity(), "MP01;127.0.0.1", "P01")))
            },
            |c| c.reply_verifier = Some(pinned()),
        )
        .await
        .unwrap();
        assert_eq!(received.signature, ReplySignature::Verified, "compress {compress}");
    }
}

#[tokio::test]
async fn a_signature_by_another_key_is_rejected() {
    let e = invoke_with(
        || sync_reply(&content_reply(), true, Some(&signer(client_identity(), "127.0.0.1", "P01"))),
        |c| c.reply_verifier = Some(pinned()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::BadReplySignature { .. }), "{e}");
}

#[tokio::test]
async fn a_signature_over_other_bytes_is_rejected() {
    let signed = reply::encode_sync_reply(
        reply_header(),
        "<ContentLocationReply/>",
        true,
        Some(&signer(mp_identity(), "127.0.0.1", "P01")),
    )
    .unwrap();
    let parts = multipart::parse(&signed, multipart::BOUNDARY, Default::default()).unwrap();
    let other = zlib::compress(&utf16_body(&content_reply()));
    let mut header = parts[0].body.to_vec();
    header.drain(..2);
    let header_text: String =
        char::decode_utf16(header.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])))
            .map(Result::unwrap)
            .collect();
    let tampered = framed(&header_text, &other);
    let e = invoke_with(move || multipart_ok(&tampered), |c| c.reply_verifier = Some(pinned()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadReplySignature { .. }), "{e}");
}

#[tokio::test]
async fn auth_sender_machine_must_name_the_host_asked() {
    let e = invoke_with(
        || {
            sync_reply(
                &content_reply(),
                true,
                Some(&signer(mp_identity(), "MP02;mp02.corp.example", "P01")),
            )
        },
        |c| c.reply_verifier = Some(pinned()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::BadReplySignature { reason } if reason.contains("AuthSenderMachine")),
        "{e}"
    );
}

#[tokio::test]
async fn mp_site_code_must_match_the_expected_site() {
    let e = invoke_with(
        || sync_reply(&content_reply(), true, Some(&signer(mp_identity(), "127.0.0.1", "X99"))),
        |c| c.reply_verifier = Some(pinned()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::BadReplySignature { reason } if reason.contains("MPSiteCode")),
        "{e}"
    );
}

#[tokio::test]
async fn unsigned_replies_pass_unless_a_signature_is_required() {
    let received = invoke_with(
        || sync_reply(&content_reply(), true, None),
        |c| {
            c.reply_verifier = Some(pinned());
        },
    )
    .await
    .unwrap();
    assert_eq!(received.signature, ReplySignature::Absent);
    let e = invoke_with(
        || sync_reply(&content_reply(), true, None),
        |c| {
            c.reply_verifier = Some(pinned().require_signature(true));
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::BadReplySignature { .. }), "{e}");
}

#[tokio::test]
async fn signed_replies_without_a_pin_are_unchecked() {
    let received = invoke_with(
        || sync_reply(&content_reply(), true, Some(&signer(client_identity(), "x", "Y"))),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(received.signature, ReplySignature::Unchecked);
}

#[tokio::test]
async fn the_mp_certificate_is_pinned_from_mpkeyinformationex() {
    let cert_hex = sign::hex_upper(mp_identity().signing_cert_der());
    let info = format!(
        "<MPKEYINFORMATION><SITECODE>P01</SITECODE><MACHINENAME>MP01</MACHINENAME><FQDN>127.0.0.1</FQDN><MPCERTIFICATE>{cert_hex}</MPCERTIFICATE></MPKEYINFORMATION>"
    );
    let mp = TestMp::http(move |r| {
        if r.method == "GET" {
            ok("text/xml", info.as_bytes())
        } else {
            sync_reply(
                &content_reply(),
                true,
                Some(&signer(mp_identity(), "MP01;127.0.0.1", "P01")),
            )
        }
    });
    let mut client = client(&mp);
    let info = client.mp_key_information().await.unwrap();
    client.set_reply_verifier(Some(ReplyVerifier::from_key_information(&info).unwrap()));
    assert_eq!(client.reply_verifier().unwrap().site_code(), Some("P01"));
    let received = client.invoke(&content_location(), vec![], None).await.unwrap();
    assert_eq!(received.signature, ReplySignature::Verified);
}

// ---------------------------------------------------------------------------------------------
// GET endpoints (§2.10)

#[tokio::test]
async fn sms_aut_gets_decode_the_mp_documents() {
    let mp = TestMp::http(|r| {
        let file = match r.target.as_str() {
            "/SMS_MP/.sms_aut?MPLIST" => "mpinfo/mplist.xml",
            "/SMS_MP/.sms_aut?MPLIST1&S11" => {
                return chunked_ok("text/xml", doc("mpinfo/mplist1.xml").as_bytes(), 17);
            }
            "/SMS_MP/.sms_aut?MPCERT" => "mpinfo/mpcert.xml",
            "/SMS_MP/.sms_aut?MPCERT2" => "mpinfo/mpcert2.xml",
            "/SMS_MP/.sms_aut?MPKEYINFORMATIONEX" => "mpinfo/mpkeyinformationex.xml",
            "/SMS_MP/.sms_aut?MPLOCATION&ir=192.0.2.10&ip=192.0.2.0" => "mpinfo/mplocation.xml",
            _ => {
                return Answer::Bytes(response(
                    404,
                    "Not Found",
                    Some("text/html"),
                    b"<html><head><title>404 - File or directory not found.</title></head></html>",
                ));
            }
        };
        ok("text/xml; charset=utf-8", doc(file).as_bytes())
    });
    let client = client(&mp);
    assert_eq!(
        client.mp_list().await.unwrap(),
        MpList::from_xml(&doc("mpinfo/mplist.xml")).unwrap()
    );
    assert_eq!(
        client.mp_list_of_site("S11").await.unwrap(),
        MpList::from_xml(&doc("mpinfo/mplist1.xml")).unwrap()
    );
    assert_eq!(
        client.mp_certificate().await.unwrap(),
        MpCertificate::from_xml(&doc("mpinfo/mpcert.xml")).unwrap()
    );
    assert_eq!(
        client.mp_certificates().await.unwrap(),
        MpCertificates::from_xml(&doc("mpinfo/mpcert2.xml")).unwrap()
    );
    assert_eq!(
        client.mp_key_information().await.unwrap(),
        Mpkeyinformation::from_xml(&doc("mpinfo/mpkeyinformationex.xml")).unwrap()
    );
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let subnet = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0));
    assert_eq!(
        client.mp_location(address, subnet).await.unwrap(),
        MpLocation::from_xml(&doc("mpinfo/mplocation.xml")).unwrap()
    );
    let e = client.sms_aut::<MpList>("MPLIST2").await.unwrap_err();
    assert!(
        matches!(&e, Error::Http { status: 404, title: Some(t) } if t == "404 - File or directory not found."),
        "{e}"
    );
    assert!(matches!(client.mp_list_of_site("S1'").await, Err(Error::Config(_))));
    assert!(matches!(client.sms_aut::<MpList>("MPLIST\r\nX: y").await, Err(Error::Config(_))));
    let get = &mp.requests()[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.header("Host"), Some(format!("127.0.0.1:{}", mp.port()).as_str()));
    assert_eq!(get.header("User-Agent"), Some(wire::USER_AGENT));
}

#[tokio::test]
async fn get_replies_in_utf16_are_accepted() {
    let xml = doc("mpinfo/mplist.xml");
    let mut with_bom = vec![0xFF, 0xFE];
    with_bom.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let mp = TestMp::http(move |_| ok("text/xml; charset=utf-16", &with_bom));
    assert_eq!(client(&mp).mp_list().await.unwrap(), MpList::from_xml(&xml).unwrap());
}

#[tokio::test]
async fn get_replies_that_are_not_text_are_typed_errors() {
    let mp = TestMp::http(|_| ok("text/xml", b"<MPList>\xFF\xFE\xFD</MPList>"));
    let e = client(&mp).mp_list().await.unwrap_err();
    assert!(matches!(e, Error::NotUtf8 { offset: 8 }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Policy bodies (§3.7, §3.8, §4.2.3)

const POLICY_LOCATION: &str =
    "http://<mp>/SMS_MP/.sms_pol?{5c2e8a41-9d3b-4f6e-a1c7-0b8d2e4f6a13}.2_00";

fn policy_xml() -> String {
    Policy::from_xml(&doc("policy/body-naaconfig.xml")).unwrap().to_xml().unwrap()
}

fn auth(scheme: TokenScheme) -> PolicyAuth<'static> {
    PolicyAuth { identity: client_identity(), client_id: client_id(), scheme }
}

#[tokio::test]
async fn plain_policy_bodies_download_and_decode() {
    let xml = policy_xml();
    let body = utf16_body(&xml);
    let mp = TestMp::http(move |_| ok("application/octet-stream", &body));
    let client = client(&mp);
    let download = client.download_policy(POLICY_LOCATION, None).await.unwrap();
    assert_eq!(download.text.expose(), xml);
    assert_eq!((download.encryption.is_none(), download.compressed), (true, false));
    assert_eq!(download.policy(client.limits()).unwrap(), Policy::from_xml(&xml).unwrap());
    let request = mp.only_request();
    assert_eq!(request.target, "/SMS_MP/.sms_pol?%7B5c2e8a41-9d3b-4f6e-a1c7-0b8d2e4f6a13%7D.2_00");
    assert_eq!(request.header("ClientToken"), None);
}

#[tokio::test]
async fn policy_downloads_send_the_token_headers_of_each_scheme() {
    let body = utf16_body(&policy_xml());
    let mp = TestMp::http(move |_| ok("application/octet-stream", &body));
    let client = client(&mp);
    client.download_policy(POLICY_LOCATION, Some(auth(TokenScheme::ClientToken))).await.unwrap();
    client
        .download_policy(POLICY_LOCATION, Some(auth(TokenScheme::CcmClientHeaders)))
        .await
        .unwrap();
    let requests = mp.requests();

    // Scheme 1: ClientToken GUID:<id>;<ts>;2, signed (with DigestInfo) over UTF-16LE + NUL.
    let token = requests[0].header("ClientToken").unwrap();
    assert!(
        token.starts_with("GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10;") && token.ends_with(";2")
    );
    let signature = sign::from_hex(requests[0].header("ClientTokenSignature").unwrap()).unwrap();
    let mut signed: Vec<u8> = token.encode_utf16().flat_map(u16::to_le_bytes).collect();
    signed.extend_from_slice(&[0, 0]);
    let public = client_identity().signing_key().public_key().unwrap();
    sign::verify_reversed(&public, HashAlgorithm::Sha256, &signed, &signature).unwrap();
    // Header names go out exactly as written.
    let raw = String::from_utf8_lossy(&requests[0].raw).into_owned();
    assert!(raw.contains("\r\nClientToken: GUID:") && raw.contains("\r\nClientTokenSignature: "));

    // Scheme 2: the four CCMClient headers.
    for name in
        ["CCMClientID", "CCMClientIDSignature", "CCMClientTimestamp", "CCMClientTimestampSignature"]
    {
        assert!(requests[1].header(name).is_some(), "{name}");
    }
}

#[tokio::test]
async fn secret_policy_bodies_are_decrypted_with_the_encryption_key() {
    let xml = policy_xml();
    let envelope =
        cms::encrypt_to(&[client_identity().encryption_cert().clone()], &utf16_body(&xml)).unwrap();
    let served = envelope.clone();
    let mp = TestMp::http(move |_| ok("application/octet-stream", &served));
    let client = client(&mp);
    let download =
        client.download_policy(POLICY_LOCATION, Some(auth(TokenScheme::default()))).await.unwrap();
    assert_eq!(download.text.expose(), xml);
    assert!(download.encryption.is_some());
    let e = client.download_policy(POLICY_LOCATION, None).await.unwrap_err();
    assert!(matches!(e, Error::PolicyEncrypted), "{e}");
    // The wrong identity: a typed CMS error naming the certificate role.
    let other = PolicyAuth {
        identity: mp_identity(),
        client_id: client_id(),
        scheme: TokenScheme::default(),
    };
    let e = client.download_policy(POLICY_LOCATION, Some(other)).await.unwrap_err();
    assert!(matches!(e, Error::Cms(_)), "{e}");
}

#[tokio::test]
async fn compressed_policy_xml_is_inflated() {
    let xml = policy_xml();
    let hex = sign::hex_upper(&zlib::compress(&utf16_body(&xml)));
    let wrapper = format!("<PolicyXML Compression=\"zlib\" Version=\"7.00\">{hex}</PolicyXML>");
    let body = utf16_body(&wrapper);
    let mp = TestMp::http(move |_| ok("application/octet-stream", &body));
    let download = client(&mp).download_policy(POLICY_LOCATION, None).await.unwrap();
    assert!(download.compressed);
    assert_eq!(download.text.expose(), xml);
}

#[tokio::test]
async fn a_refused_secret_policy_is_the_error_page() {
    let mp = TestMp::http(|_| {
        ok("text/html", b"<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>")
    });
    let e = client(&mp).download_policy(POLICY_LOCATION, None).await.unwrap_err();
    assert!(matches!(&e, Error::HtmlPage { title } if title == "ERROR"), "{e}");
}

#[tokio::test]
async fn policy_locations_on_other_hosts_are_refused_before_sending() {
    let mp = TestMp::http(|_| ok("text/plain", b"x"));
    let e = client(&mp)
        .download_policy("http://rogue.example/SMS_MP/.sms_pol?x", None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PolicyLocation { .. }), "{e}");
    assert!(mp.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Hostile replies: each a typed error, none a panic (field notes §5 item 1, HS-54)

mod hostile {
    //! One test per reply class a hostile or broken MP can send.

    use std::time::Duration;

    use cmmp_transport::client::Client;
    use cmmp_transport::reply;

    use super::exchange::mp::TestMp;
    use super::{
        Answer, DecodeErrorKind, Error, InflateError, ReplyLimits, StateMessages, client, config,
        framed, invoke_with, kind, multipart_ok, ok, reply_header, response,
    };

    #[tokio::test]
    async fn zlib_bomb_stops_on_the_ratio_cap() {
        // U+4141 is `41 41` in UTF-16LE: 8 MiB of one byte value, which deflates about
        // 1000:1 (ASCII text, with its zero high bytes, stays near 200:1 at level 6).
        let text = "\u{4141}".repeat(4 << 20);
        let bomb = reply::encode_sync_reply(reply_header(), &text, true, None).unwrap();
        let e = invoke_with(move || multipart_ok(&bomb), |_| {}).await.unwrap_err();
        assert!(
            matches!(e, Error::Inflate(InflateError::RatioExceeded { ratio_limit: 400 })),
            "{e}"
        );
    }

    #[tokio::test]
    async fn zlib_bomb_stops_on_the_size_cap() {
        let bomb =
            reply::encode_sync_reply(reply_header(), &"A".repeat(1 << 20), true, None).unwrap();
        let e = invoke_with(
            move || multipart_ok(&bomb),
            |c| {
                c.limits.inflate.max_output = 64 * 1024;
                c.limits.inflate.max_ratio = 100_000;
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Inflate(InflateError::TooLarge { limit: 65536 })), "{e}");
    }

    #[tokio::test]
    async fn html_500_carries_status_and_title() {
        let page = b"<!DOCTYPE html><html><head><title>500 - Internal server error.</title></head><body/></html>";
        let e = invoke_with(
            move || Answer::Bytes(response(500, "Internal Server Error", Some("text/html"), page)),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::Http { status: 500, title: Some(t) } if t == "500 - Internal server error."),
            "{e}"
        );
        assert_eq!(e.to_string(), "the MP answered HTTP 500 (500 - Internal server error.)");
    }

    #[tokio::test]
    async fn html_page_in_a_200_is_named() {
        let e = invoke_with(|| ok("text/html", b"<html><title>Maintenance</title></html>"), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::HtmlPage { title } if title == "Maintenance"), "{e}");
    }

    #[tokio::test]
    async fn empty_200_says_what_it_may_mean() {
        let e = invoke_with(|| ok("text/plain", b""), |_| {}).await.unwrap_err();
        assert!(matches!(e, Error::EmptyReply), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("client ID") && text.contains("signature") && text.contains("not ready"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn sync_replies_need_exactly_two_parts() {
        let e = invoke_with(|| multipart_ok(&reply::encode_no_reply()), |_| {}).await.unwrap_err();
        assert!(matches!(e, Error::Parts { expected: 2, found: 1 }), "{e}");
        let mut three = reply::encode_sync_reply(reply_header(), "<A/>", false, None).unwrap();
        let close = format!("--{}--", cmmp_transport::multipart::BOUNDARY);
        three.truncate(three.len() - close.len());
        three.extend_from_slice(
            format!(
                "--{}\r\ncontent-type: text/plain\r\n\r\nextra\r\n{close}",
                cmmp_transport::multipart::BOUNDARY
            )
            .as_bytes(),
        );
        let e = invoke_with(move || multipart_ok(&three), |_| {}).await.unwrap_err();
        assert!(matches!(e, Error::Parts { expected: 2, found: 3 }), "{e}");
    }

    #[tokio::test]
    async fn posts_need_exactly_noreply() {
        let report: StateMessages = kind("state/app-and-heartbeat.xml");
        let mp = TestMp::http(|_| {
            multipart_ok(&reply::encode_sync_reply(reply_header(), "<A/>", false, None).unwrap())
        });
        let e = client(&mp).post(&report, vec![], None).await.unwrap_err();
        assert!(matches!(e, Error::Parts { expected: 1, found: 2 }), "{e}");
        let mp = TestMp::http(|_| ok("text/plain", b"Accepted"));
        let e = client(&mp).post(&report, vec![], None).await.unwrap_err();
        assert!(matches!(e, Error::UnexpectedReply), "{e}");
    }

    #[tokio::test]
    async fn odd_utf16_body_is_malformed_utf16() {
        let reply = framed("<Msg><TargetEndpoint>x</TargetEndpoint></Msg>", b"<\0A\0/\0>\0\0");
        let e = invoke_with(move || multipart_ok(&reply), |_| {}).await.unwrap_err();
        assert!(
            matches!(e, Error::Body(cmmp_transport::body::BodyError::OddLength { len: 9 })),
            "{e}"
        );
        assert!(e.to_string().starts_with("malformed UTF-16"), "{e}");
    }

    #[tokio::test]
    async fn body_without_its_nul_is_malformed_utf16() {
        let reply = framed("<Msg><TargetEndpoint>x</TargetEndpoint></Msg>", b"<\0A\0/\0>\0");
        let e = invoke_with(move || multipart_ok(&reply), |_| {}).await.unwrap_err();
        assert!(matches!(e, Error::Body(cmmp_transport::body::BodyError::MissingNul)), "{e}");
    }

    #[tokio::test]
    async fn deep_xml_hits_the_depth_limit() {
        let deep = format!(
            "<ContentLocationReply>{}{}</ContentLocationReply>",
            "<a>".repeat(200),
            "</a>".repeat(200)
        );
        let e =
            invoke_with(move || super::sync_reply(&deep, true, None), |_| {}).await.unwrap_err();
        assert!(
            matches!(&e, Error::Decode(d) if matches!(d.kind(), DecodeErrorKind::TooDeep { limit: 64 })),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_dtd_is_refused() {
        let dtd = "<!DOCTYPE ContentLocationReply [<!ENTITY a \"aaaa\">]><ContentLocationReply>&a;</ContentLocationReply>";
        let e = invoke_with(move || super::sync_reply(dtd, true, None), |_| {}).await.unwrap_err();
        assert!(matches!(&e, Error::Decode(d) if matches!(d.kind(), DecodeErrorKind::Dtd)), "{e}");
    }

    #[tokio::test]
    async fn decode_errors_name_the_element_path() {
        let bad = r#"<ClientRegistrationResponse ResponseType="Registration" TimeStamp="2025-01-31T10:00:02Z" Status="zero" ApprovalStatus="1"/>"#;
        let mp = TestMp::http(move |_| super::sync_reply(bad, true, None));
        let registration: cmmp_model::kinds::ClientRegistration = kind("registration/request.xml");
        let e = client(&mp).invoke(&registration, vec![], None).await.unwrap_err();
        let Error::Decode(d) = &e else { panic!("{e}") };
        assert_eq!(d.path(), "ClientRegistrationResponse/@Status");
        assert!(e.to_string().starts_with("ClientRegistrationResponse/@Status: "), "{e}");
    }

    #[tokio::test]
    async fn bodies_over_the_cap_stop_reading() {
        let big = vec![b'x'; 64 * 1024];
        let small_cap = |c: &mut cmmp_transport::client::ClientConfig| c.limits.max_body = 4096;
        let sized = big.clone();
        let e = invoke_with(move || ok("application/octet-stream", &sized), small_cap)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ReplyTooLarge { limit: 4096 }), "{e}");
        let chunked = big.clone();
        let e = invoke_with(
            move || super::chunked_ok("application/octet-stream", &chunked, 1000),
            small_cap,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::ReplyTooLarge { limit: 4096 }), "{e}");
        let mut to_end = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        to_end.extend_from_slice(&big);
        let e = invoke_with(move || Answer::Bytes(to_end.clone()), small_cap).await.unwrap_err();
        assert!(matches!(e, Error::ReplyTooLarge { limit: 4096 }), "{e}");
    }

    #[tokio::test]
    async fn a_silent_mp_times_out() {
        let e = invoke_with(|| Answer::Hang, |c| c.timeout = Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Timeout { after, .. } if *after == Duration::from_millis(300)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_and_garbage_are_network_errors() {
        let e = invoke_with(|| Answer::Bytes(Vec::new()), |_| {}).await.unwrap_err();
        assert!(
            matches!(&e, Error::Network { message, .. } if message.contains("without answering")),
            "{e}"
        );
        let e = invoke_with(|| Answer::Bytes(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Network { .. }), "{e}");
        let e = invoke_with(
            || Answer::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec()),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::Network { message, .. } if message.contains("5 of 100")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_stalled_tls_handshake_hits_the_connect_timeout() {
        // The plain-HTTP test MP waits for a request head that a TLS client never sends.
        let mp = TestMp::http(|_| Answer::Hang);
        let mut c = super::tls_config(&mp);
        c.connect_timeout = Duration::from_millis(300);
        let e = Client::new(c).unwrap().mp_list().await.unwrap_err();
        assert!(
            matches!(&e, Error::Timeout { context, after }
                if context.starts_with("connect to https://127.0.0.1:")
                    && *after == Duration::from_millis(300)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_mp_is_a_network_error() {
        // Bind, learn the port, close: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mp = TestMp::http(|_| Answer::Hang);
        let mut c = config(&mp);
        c.port = Some(port);
        let e = Client::new(c).unwrap().mp_list().await.unwrap_err();
        assert!(
            matches!(&e, Error::Network { context, .. } if context.starts_with("connect to http://127.0.0.1:")),
            "{e}"
        );
    }

    #[test]
    fn limits_default_to_64_mib_and_the_model_depth() {
        let limits = ReplyLimits::default();
        assert_eq!((limits.max_body, limits.max_xml_depth), (64 << 20, 64));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTPS and mutual TLS (field notes §5 item 4, M9)

#[tokio::test]
async fn https_with_custom_roots() {
    let mp = TestMp::https(server_config(&pki().server, None), |_| {
        sync_reply(&content_reply(), true, None)
    });
    let client = Client::new(tls_config(&mp)).unwrap();
    assert!(client.base_url().starts_with("https://127.0.0.1:"));
    client.invoke(&content_location(), vec![], None).await.unwrap();
    // The DNS name of the certificate, with the address given out of band.
    let mut c = tls_config(&mp);
    c.settings = settings("localhost");
    c.resolve = Some(mp.addr);
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
}

#[tokio::test]
async fn the_system_roots_reject_a_test_ca_server_by_default() {
    let mp = TestMp::https(server_config(&pki().server, None), |_| {
        sync_reply(&content_reply(), true, None)
    });
    let mut c = tls_config(&mp);
    c.roots = Roots::default();
    let e = Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap_err();
    assert!(matches!(&e, Error::Tls { message, .. } if message.contains("UnknownIssuer")), "{e}");
}

#[tokio::test]
async fn a_server_from_another_ca_is_rejected() {
    let mp = TestMp::https(server_config(&pki().rogue_server, None), |_| {
        sync_reply(&content_reply(), true, None)
    });
    let e = Client::new(tls_config(&mp)).unwrap().mp_list().await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_rejected() {
    let mp = TestMp::https(server_config(&pki().server, None), |_| {
        sync_reply(&content_reply(), true, None)
    });
    let mut c = tls_config(&mp);
    c.settings = settings("mp01.corp.example");
    c.resolve = Some(mp.addr);
    let e = Client::new(c).unwrap().mp_list().await.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { message, .. } if message.contains("not valid for name")),
        "{e}"
    );
}

/// An HTTPS-only MP: 403 without a client certificate (M9).
fn https_only_mp(required: bool) -> TestMp {
    TestMp::https(server_config(&pki().server, Some(required)), |r| {
        if r.client_cert {
            sync_reply(&content_reply(), true, None)
        } else {
            Answer::Bytes(response(
                403,
                "Forbidden",
                Some("text/html"),
                b"<html><head><title>403 - Forbidden: Access is denied.</title></head></html>",
            ))
        }
    })
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let mp = https_only_mp(false);
    let mut c = tls_config(&mp);
    let pair = &pki().client;
    c.client_identity = Some(
        ClientIdentity::from_der(vec![pair.der()], sign::SecretBytes::new(pair.key_der())).unwrap(),
    );
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
    assert!(mp.only_request().client_cert);

    // The same through cert::Identity (PKI material loaded from PEM).
    let identity = Identity::from_pem(
        &pair.cert.to_pem().unwrap(),
        &pair.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let mut c = tls_config(&mp);
    c.client_identity = Some(ClientIdentity::from_identity(&identity).unwrap());
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
}

#[tokio::test]
async fn without_a_client_certificate_an_https_only_mp_answers_403() {
    let mp = https_only_mp(false);
    let e = Client::new(tls_config(&mp))
        .unwrap()
        .invoke(&content_location(), vec![], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Http { status: 403, title: Some(t) } if t.starts_with("403 - Forbidden")),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_fails_the_tls_exchange() {
    let mp = https_only_mp(true);
    let e = Client::new(tls_config(&mp))
        .unwrap()
        .invoke(&content_location(), vec![], None)
        .await
        .unwrap_err();
    // In TLS 1.3 the server refuses the certificate after the client's handshake is done: the
    // client reads the alert (a TLS error) unless the server's reset to the request it no
    // longer reads overtakes the alert (a network error naming the reset).
    let reset = matches!(&e, Error::Network { message, .. } if message.contains("reset"));
    assert!(matches!(e, Error::Tls { .. }) || reset, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Revocation (CRL) checking of the MP's TLS certificate (§5.4 ENABLE_CRL_CHECKING)

/// An HTTPS test MP with `pair` as its certificate, answering a content location reply.
fn https_mp(pair: &exchange::pki::Pair) -> TestMp {
    TestMp::https(server_config(pair, None), |_| sync_reply(&content_reply(), true, None))
}

/// Invokes a content location request with `check` against `mp`.
async fn invoke_checked(mp: &TestMp, check: Option<CrlCheck>) -> Result<(), Error> {
    let mut c = tls_config(mp);
    c.crl_check = check;
    Client::new(c)?.invoke(&content_location(), vec![], None).await.map(|_| ())
}

#[tokio::test]
async fn a_crl_that_does_not_list_the_server_lets_the_exchange_through() {
    let mp = https_mp(&pki().server);
    let current = crl(&pki().ca, &[&pki().client], 7);
    invoke_checked(&mp, Some(CrlCheck::with_crls(vec![current.clone()]))).await.unwrap();
    // PEM works as well as DER.
    let pem = openssl::x509::X509Crl::from_der(&current).unwrap().to_pem().unwrap();
    invoke_checked(&mp, Some(CrlCheck::with_crls(vec![pem]))).await.unwrap();
    // Checking off: no CRL needed.
    invoke_checked(&mp, None).await.unwrap();
}

#[tokio::test]
async fn a_revoked_server_certificate_is_refused_before_the_request() {
    let mp = https_mp(&pki().server);
    let revoking = crl(&pki().ca, &[&pki().server], 7);
    let e = invoke_checked(&mp, Some(CrlCheck::with_crls(vec![revoking]))).await.unwrap_err();
    assert!(matches!(&e, Error::Revoked { .. }), "{e}");
    assert!(e.to_string().contains("revoked"), "{e}");
    assert!(mp.requests().is_empty(), "nothing is sent to a revoked server");
}

#[tokio::test]
async fn an_unknown_revocation_status_is_an_error_unless_allowed() {
    let mp = https_mp(&pki().server);
    let unavailable = |e: &Error, needle: &str| matches!(e, Error::CrlUnavailable { reason, .. } if reason.contains(needle));
    // No CRL configured, fetching off.
    let off = CrlCheck { fetch: false, ..CrlCheck::default() };
    let e = invoke_checked(&mp, Some(off.clone())).await.unwrap_err();
    assert!(unavailable(&e, "fetching is off"), "{e}");
    // Fetching on, but the certificate names no distribution point.
    let e = invoke_checked(&mp, Some(CrlCheck::default())).await.unwrap_err();
    assert!(unavailable(&e, "no http:// CRL distribution point"), "{e}");
    // A CRL of another CA says nothing about this certificate.
    let other = CrlCheck::with_crls(vec![crl(&pki().rogue_ca, &[], 7)]);
    let e = invoke_checked(&mp, Some(other)).await.unwrap_err();
    assert!(matches!(e, Error::CrlUnavailable { .. }), "{e}");
    // A stale CRL (past its nextUpdate) does not count.
    let stale = CrlCheck::with_crls(vec![crl(&pki().ca, &[], -1)]);
    let e = invoke_checked(&mp, Some(stale)).await.unwrap_err();
    assert!(matches!(e, Error::CrlUnavailable { .. }), "{e}");
    // Unless unknown status is allowed.
    invoke_checked(&mp, Some(CrlCheck { allow_unknown: true, ..off })).await.unwrap();
    assert!(e.to_string().contains("revocation status unknown"), "{e}");
}

#[tokio::test]
async fn crls_are_fetched_from_the_distribution_point() {
    // The CRL the distribution point publishes, set once the server certificate exists.
    let published = std::sync::Arc::new(std::sync::Mutex::new(crl(&pki().ca, &[], 7)));
    let serving = std::sync::Arc::clone(&published);
    let crl_point =
        TestMp::http(move |_| ok("application/pkix-crl", &serving.lock().unwrap().clone()));
    let url = format!("http://127.0.0.1:{}/pki/ca.crl", crl_point.port());
    let server = server_with_crl_point(&url);
    let mp = https_mp(&server);
    let mut c = tls_config(&mp);
    c.crl_check = Some(CrlCheck::default());
    let client = Client::new(c).unwrap();
    client.invoke(&content_location(), vec![], None).await.unwrap();
    let fetched = crl_point.only_request();
    assert_eq!((fetched.method.as_str(), fetched.target.as_str()), ("GET", "/pki/ca.crl"));
    // Kept until its nextUpdate: the next exchange fetches nothing.
    client.invoke(&content_location(), vec![], None).await.unwrap();
    assert_eq!(crl_point.requests().len(), 1);

    // The point now lists the server: a new client fetches it and refuses the server.
    *published.lock().unwrap() = crl(&pki().ca, &[&server], 7);
    let e = invoke_checked(&mp, Some(CrlCheck::default())).await.unwrap_err();
    assert!(matches!(e, Error::Revoked { .. }), "{e}");
    assert_eq!(crl_point.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_distribution_point_is_crl_unavailable() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mp = https_mp(&server_with_crl_point(&format!("http://127.0.0.1:{port}/ca.crl")));
    let e = invoke_checked(&mp, Some(CrlCheck::default())).await.unwrap_err();
    assert!(
        matches!(&e, Error::CrlUnavailable { reason, .. } if reason.contains("fetching failed")),
        "{e}"
    );
}

#[tokio::test]
async fn the_raw_crl_flag_turns_checking_on() {
    let mp = https_mp(&pki().server);
    let client = Client::new(tls_config(&mp)).unwrap();
    let mut message = RawMessage::new();
    message.set_target_endpoint("MP_LocationManager").unwrap();
    message.set_body_from_string(&content_location().0.to_xml().unwrap());
    client.invoke_raw(&message, None).await.unwrap();
    message.set_security_flags(SecurityFlags::NATIVE_MODE | SecurityFlags::ENABLE_CRL_CHECKING);
    let e = client.invoke_raw(&message, None).await.unwrap_err();
    assert!(matches!(e, Error::CrlUnavailable { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Windows authentication (NTLM) on the windowsauth vdir (M9); the handshake against the
// emulator is tested in cmmp-emulator's tests/windowsauth.rs.

#[tokio::test]
async fn a_401_without_ntlm_or_negotiate_is_authentication_failed() {
    let mp = TestMp::http(|_| {
        Answer::Bytes(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"mp\"\r\n\
              Content-Length: 0\r\n\r\n"
                .to_vec(),
        )
    });
    let mut c = config(&mp);
    c.settings.vdir = Vdir::WindowsAuth;
    c.windows_credentials = Some(Credentials::new("CORP", "sccm-naa", "Secret1!"));
    let e = Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap_err();
    assert!(
        matches!(&e, Error::AuthenticationFailed { user, reason }
            if user == "CORP\\sccm-naa" && reason.contains("neither NTLM nor Negotiate")),
        "{e}"
    );
    // The first leg goes without credentials, asking to keep the connection.
    let sent = mp.only_request();
    assert_eq!(
        (sent.header("Authorization"), sent.header("Connection")),
        (None, Some("keep-alive"))
    );
}

/// An HTTPS test MP running the server side of NTLM with `protection`, for logons bound to
/// the TLS channel whose server certificate is `channel_cert` (its own for an honest MP; any
/// other stands for a relay that terminates the client's TLS and logs on elsewhere).
fn ntlm_https_mp(channel_cert: &[u8], protection: ntlm::ExtendedProtection) -> TestMp {
    let channel = ntlm::tls_channel_binding(channel_cert).unwrap();
    let handshake: std::sync::Mutex<Option<(Vec<u8>, Vec<u8>)>> = std::sync::Mutex::new(None);
    let unauthorized = |offer: &str| {
        format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {offer}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    TestMp::https(server_config(&pki().server, None), move |r| {
        let Some(token) = r.header("Authorization").and_then(|v| v.strip_prefix("NTLM ")) else {
            return Answer::KeepOpen(unauthorized("NTLM"));
        };
        let message = openssl::base64::decode_block(token).unwrap();
        if ntlm::is_negotiate(&message) {
            let type2 = ntlm::challenge(&[9; 8], "CORP", "MP01");
            let offer = format!("NTLM {}", openssl::base64::encode_block(&type2));
            *handshake.lock().unwrap() = Some((message, type2));
            return Answer::KeepOpen(unauthorized(&offer));
        }
        let (type1, type2) = handshake.lock().unwrap().take().expect("a handshake under way");
        let side = ntlm::ServerSide {
            negotiate: &type1,
            challenge: &type2,
            channel_binding: Some(channel),
            protection,
        };
        let account = Credentials::new("CORP", "sccm-naa", "Secret1!");
        match ntlm::parse_authenticate(&message).unwrap().logon(&account, &side) {
            Ok(()) => sync_reply(&content_reply(), true, None),
            Err(_) => Answer::Bytes(response(401, "Unauthorized", None, b"")),
        }
    })
}

/// A windowsauth client of `mp` over HTTPS.
fn ntlm_https_client(mp: &TestMp) -> Client {
    let mut c = tls_config(mp);
    c.settings.vdir = Vdir::WindowsAuth;
    c.windows_credentials = Some(Credentials::new("CORP", "sccm-naa", "Secret1!"));
    Client::new(c).unwrap()
}

#[tokio::test]
async fn ntlm_over_https_binds_the_logon_to_the_tls_channel() {
    let mp = ntlm_https_mp(&pki().server.der(), ntlm::ExtendedProtection::Required);
    ntlm_https_client(&mp).invoke(&content_location(), vec![], None).await.unwrap();
    let requests = mp.requests();
    assert_eq!(requests.len(), 3, "without credentials, NEGOTIATE, AUTHENTICATE");
    let token = requests[2].header("Authorization").unwrap().strip_prefix("NTLM ").unwrap();
    let sent = ntlm::parse_authenticate(&openssl::base64::decode_block(token).unwrap()).unwrap();
    assert_eq!(
        sent.channel_binding(),
        Some(ntlm::tls_channel_binding(&pki().server.der()).unwrap())
    );
    assert_eq!(sent.target_name().as_deref(), Some("HTTP/127.0.0.1"));
}

#[tokio::test]
async fn an_ntlm_logon_relayed_to_another_tls_channel_is_refused() {
    for protection in [ntlm::ExtendedProtection::Accept, ntlm::ExtendedProtection::Required] {
        let mp = ntlm_https_mp(&pki().rogue_server.der(), protection);
        let e = ntlm_https_client(&mp).invoke(&content_location(), vec![], None).await.unwrap_err();
        assert!(matches!(&e, Error::AuthenticationFailed { .. }), "{protection:?}: {e}");
    }
}

#[test]
fn unusable_configurations_are_refused() {
    let mut c = ClientConfig::new(settings("127.0.0.1"));
    c.client_identity = Some(
        ClientIdentity::from_der(
            vec![pki().client.der()],
            sign::SecretBytes::new(pki().client.key_der()),
        )
        .unwrap(),
    );
    assert!(matches!(Client::new(c.clone()), Err(Error::Config(_))), "mTLS over http");
    c.client_identity = None;
    c.scheme = Scheme::Https;
    c.roots = Roots::Custom(vec![b"not a certificate".to_vec()]);
    assert!(matches!(Client::new(c.clone()), Err(Error::Config(_))), "bad root");
    c.roots = Roots::Custom(Vec::new());
    assert!(matches!(Client::new(c.clone()), Err(Error::Config(_))), "no root at all");
    c.scheme = Scheme::Http;
    c.crl_check = Some(CrlCheck::default());
    assert!(matches!(Client::new(c.clone()), Err(Error::Config(_))), "CRL check over http");
    c.crl_check = None;
    c.proxy = Some("socks5://proxy:1080".to_owned());
    assert!(matches!(Client::new(c), Err(Error::Config(_))), "proxy scheme");
    assert!(matches!(
        ClientIdentity::from_der(Vec::new(), sign::SecretBytes::new(Vec::new())),
        Err(Error::Config(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Proxies

#[tokio::test]
async fn http_goes_through_the_proxy_in_absolute_form() {
    let mp = TestMp::http(|_| sync_reply(&content_reply(), true, None));
    let proxy = TestProxy::start();
    let mut c = config(&mp);
    c.proxy = Some(format!("http://user:p%40ss@127.0.0.1:{}", proxy.addr.port()));
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "CCM_POST");
    assert_eq!(seen[0].target, format!("http://127.0.0.1:{}/ccm_system/request", mp.port()));
    assert_eq!(seen[0].authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));
    assert_eq!(mp.only_request().target, "/ccm_system/request");
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    let mp = TestMp::https(server_config(&pki().server, None), |_| {
        sync_reply(&content_reply(), true, None)
    });
    let proxy = TestProxy::start();
    let mut c = tls_config(&mp);
    c.proxy = Some(format!("http://127.0.0.1:{}", proxy.addr.port()));
    Client::new(c).unwrap().invoke(&content_location(), vec![], None).await.unwrap();
    let seen = proxy.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.clone()),
        ("CONNECT", format!("127.0.0.1:{}", mp.port()))
    );
    assert_eq!(seen[0].authorization, None);
}

// ---------------------------------------------------------------------------------------------
// The blocking facade

#[test]
fn the_blocking_client_runs_the_same_exchanges() {
    let xml = content_reply();
    let answer = xml.clone();
    let mp = TestMp::http(move |r| {
        if r.method == "GET" {
            ok("text/xml", doc("mpinfo/mplist.xml").as_bytes())
        } else if is_post(r) {
            multipart_ok(&reply::encode_no_reply())
        } else {
            sync_reply(&answer, true, None)
        }
    });
    let client = blocking::Client::new(config(&mp)).unwrap();
    assert_eq!(client.invoke(&content_location(), vec![], None).unwrap().body_xml, xml);
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    client.post(&report, vec![], None).unwrap();
    assert_eq!(client.mp_list().unwrap(), MpList::from_xml(&doc("mpinfo/mplist.xml")).unwrap());
}

#[tokio::test]
async fn the_blocking_client_refuses_to_block_an_async_runtime() {
    let mp = TestMp::http(|_| Answer::Hang);
    let client = blocking::Client::new(config(&mp)).unwrap();
    assert!(matches!(client.mp_list(), Err(Error::Config(_))));
    drop(client);
}

#[test]
fn the_async_calls_are_send() {
    fn send<T: Send>(_: T) {}
    let client = Client::new(ClientConfig::new(settings("127.0.0.1"))).unwrap();
    let kind = content_location();
    send(client.invoke(&kind, vec![], None));
    send(client.mp_list());
    send(client.download_policy(POLICY_LOCATION, Some(auth(TokenScheme::default()))));
}

// ---------------------------------------------------------------------------------------------
// Kept-alive connections (`ClientConfig::keep_alive`)

/// How the keep-alive test server ends each answer.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// `Connection: keep-alive`, and the next request is read on the connection.
    KeepAlive,
    /// No `Connection` field, then the connection is dropped (an MP's idle timeout).
    DropSilently,
}

/// A server answering every `CCM_POST` with `NoReply`; counts connections and records each
/// request's `Connection` field.
async fn keep_alive_mp(
    ending: Ending,
) -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (accepted.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let log = log.clone();
            tokio::spawn(async move {
                while let Some(request) = exchange::mp::read_request(&mut tcp).await {
                    let connection = request.header("Connection").unwrap_or("-").to_owned();
                    log.lock().unwrap().push(connection);
                    let body = reply::encode_no_reply();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
                        multipart::content_type(),
                        body.len(),
                        if ending == Ending::KeepAlive { "Connection: keep-alive\r\n" } else { "" }
                    );
                    let _ = tcp.write_all(head.as_bytes()).await;
                    let _ = tcp.write_all(&body).await;
                    if ending == Ending::DropSilently {
                        break;
                    }
                }
            });
        }
    });
    (port, accepted, seen)
}

fn keep_alive_client(port: u16, keep_alive: bool) -> Client {
    let mut c = ClientConfig::new(settings("127.0.0.1"));
    c.port = Some(port);
    c.timeout = Duration::from_secs(20);
    c.keep_alive = keep_alive;
    Client::new(c).unwrap()
}

#[tokio::test]
async fn kept_alive_connections_carry_many_exchanges() {
    use std::sync::atomic::Ordering;
    let (port, accepted, seen) = keep_alive_mp(Ending::KeepAlive).await;
    let client = keep_alive_client(port, true);
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    for _ in 0..5 {
        client.post(&report, vec![], None).await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for five posts");
    assert_eq!(*seen.lock().unwrap(), vec!["keep-alive"; 5]);
    // A clone shares the idle connections.
    client.clone().post(&report, vec![], None).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_keep_alive_each_exchange_is_its_own_connection() {
    use std::sync::atomic::Ordering;
    let (port, accepted, seen) = keep_alive_mp(Ending::KeepAlive).await;
    let client = keep_alive_client(port, false);
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    for _ in 0..3 {
        client.post(&report, vec![], None).await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(*seen.lock().unwrap(), vec!["close"; 3]);
}

#[tokio::test]
async fn a_connection_the_mp_dropped_while_idle_is_replaced() {
    use std::sync::atomic::Ordering;
    let (port, accepted, seen) = keep_alive_mp(Ending::DropSilently).await;
    let client = keep_alive_client(port, true);
    let report: StateMessages = kind("state/app-and-heartbeat.xml");
    for _ in 0..3 {
        client.post(&report, vec![], None).await.unwrap();
    }
    // Each post after the first finds its pooled connection closed and sends again on a new
    // one: every request reached the MP once on a live connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[path = "../../tests/shared/damage.rs"]
mod damage;

mod damaged_over_http {
    //! Whole HTTP answers of an MP, damaged anywhere (status line, header fields, chunk
    //! sizes, the multipart reply): each invoke ends with the typed reply or a typed error,
    //! in time and without a panic.

    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use cmmp_transport::client::Client;
    use cmmp_transport::reply;
    use proptest::collection::vec;
    use proptest::prelude::{ProptestConfig, prop, proptest};
    use proptest::test_runner::FileFailurePersistence;

    use super::damage::{apply_all, damage};

    use super::exchange::mp::{Answer, TestMp, chunked_ok, multipart_ok};
    use super::{config, content_location, content_reply, reply_header};

    /// The answers to damage: the content location reply, compressed or not, with a
    /// `Content-Length` or chunked.
    fn answers() -> &'static [Vec<u8>] {
        static ANSWERS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        ANSWERS.get_or_init(|| {
            let mut all = Vec::new();
            for compress in [true, false] {
                let body =
                    reply::encode_sync_reply(reply_header(), &content_reply(), compress, None)
                        .unwrap();
                for answer in [
                    multipart_ok(&body),
                    chunked_ok(&cmmp_transport::multipart::content_type(), &body, 97),
                ] {
                    let Answer::Bytes(bytes) = answer else { unreachable!("bytes") };
                    all.push(bytes);
                }
            }
            all
        })
    }

    /// One runtime, test MP and client for every case; the MP sends the bytes of the case.
    struct World {
        runtime: tokio::runtime::Runtime,
        next: Arc<Mutex<Vec<u8>>>,
        _mp: TestMp,
        client: Client,
    }

    fn world() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let next = Arc::new(Mutex::new(Vec::new()));
            let sent = Arc::clone(&next);
            let _guard = runtime.enter();
            let mp = TestMp::http(move |_| Answer::Bytes(sent.lock().unwrap().clone()));
            let mut c = config(&mp);
            c.timeout = Duration::from_secs(5);
            let client = Client::new(c).unwrap();
            World { runtime, next, _mp: mp, client }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
            ..ProptestConfig::default()
        })]

        #[test]
        fn damaged_answers_end_in_the_reply_or_a_typed_error(
            which in 0usize..4,
            damages in vec(damage(), 1..4),
            keep in prop::bool::ANY,
        ) {
            let w = world();
            let bytes = if keep { answers()[which].clone() } else { apply_all(answers()[which].clone(), &damages) };
            *w.next.lock().unwrap() = bytes;
            let outcome = w.runtime.block_on(w.client.invoke(&content_location(), vec![], None));
            match outcome {
                Ok(received) => proptest::prop_assert!(!received.body_xml.is_empty()),
                // A hang would be a timeout: the test MP always closes after its bytes.
                Err(cmmp_transport::Error::Timeout { .. }) => {
                    proptest::prop_assert!(false, "timed out");
                }
                Err(_) => proptest::prop_assert!(!keep, "the undamaged answer failed"),
            }
        }
    }
}
