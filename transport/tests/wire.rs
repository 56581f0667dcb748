//! Golden wire transcripts: the full HTTP request (request line, headers, multipart body) for
//! every message kind, built with a fixed test key, fixed message ID and fixed clock, compared
//! byte for byte with `transport/tests/wire/<kind>.request.bin`; decoding each back recovers
//! the typed message, and the signature verifies. `UPDATE_GOLDEN=1` re-blesses.

use std::path::{Path, PathBuf};

use cmmp_model::DeliveryKind;
use cmmp_model::kinds::{
    AssignedSite, ClientRegistration, ContentLocation, DdrReport, EnumerateMpLocation,
    FileCollection, HinvReport, IdmifCollection, Inbound, LocalMpLocation, PolicyAssignments,
    SinvReport, SiteInformation, SoftwareMetering, StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{Endpoint, MessageExt};
use cmmp_transport::body::{BomPolicy, decode_header, encode_header};
use cmmp_transport::msg::{HostName, file_type};
use cmmp_transport::multipart::content_type;
use cmmp_transport::payload::Attachment;
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::sign::{HashAlgorithm, SigningKey, verify_reversed};
use cmmp_transport::wire::{
    DecodeLimits, DecodedRequest, Fresh, Request, Settings, Signer, build_request,
    client_auth_signatures, decode_request, parse_http_request,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wire")
}

fn doc(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/documents").join(path);
    std::fs::read_to_string(p).unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_pem(&std::fs::read(dir().join("test-key.pem")).unwrap()).unwrap()
}

fn settings() -> Settings {
    Settings::new(HostName::new("mp01.corp.example").unwrap(), HostName::new("WS01").unwrap())
}

fn fresh() -> Fresh {
    Fresh {
        id: "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}".parse::<BracedGuid>().unwrap(),
        sent_time: "2025-01-31T10:00:00Z".parse::<IsoTime>().unwrap(),
    }
}

fn client() -> SmsId {
    "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10".parse().unwrap()
}

/// Builds, compares with the golden file, decodes back, verifies the signature.
fn check<K: Endpoint>(
    kind: K,
    attachments: Vec<Attachment>,
    expect: impl Fn(&Inbound, &K) -> bool,
) {
    let key = key();
    let signer = Signer::new(&key, client(), HashAlgorithm::Sha256).unwrap();
    let request = build_request(&settings(), &kind, attachments, Some(&signer), fresh()).unwrap();
    let bytes = request.to_bytes();
    let golden = dir().join(format!("{}.request.bin", K::NAME));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &bytes).unwrap();
    } else {
        let expected = std::fs::read(&golden).unwrap_or_default();
        assert!(
            expected == bytes,
            "{} differs from {}; bless with UPDATE_GOLDEN=1",
            K::NAME,
            golden.display()
        );
    }

    let http = parse_http_request(&bytes).unwrap();
    assert_eq!(http.method, "CCM_POST");
    assert_eq!(http.path, "/ccm_system/request");
    assert_eq!(http.header("content-length"), Some(http.body.len().to_string().as_str()));
    let decoded =
        decode_request(http.header("Content-Type"), http.body, DecodeLimits::default()).unwrap();
    assert_eq!(decoded.header.target_endpoint, K::ENDPOINT);
    assert!(expect(&decoded.message, &kind), "{}: decoded message differs", K::NAME);
    assert_eq!(
        (&decoded.message, decoded.report_xml.as_deref()),
        (&by_the_rule(&decoded).0, by_the_rule(&decoded).1.as_deref()),
        "{}: not what the body and its attachments give",
        K::NAME
    );
    if client_auth_signatures(&decoded.header).is_some() {
        assert_payload_signed_by(&key, &decoded);
    } else {
        assert_eq!(K::SIGNING, cmmp_model::Signing::None, "{} must be signed", K::NAME);
    }
}

macro_rules! decoded_as {
    ($variant:ident) => {
        |m: &Inbound, k: &$variant| matches!(m, Inbound::$variant(d) if d.0 == k.0)
    };
}

/// The request's `PayloadSignature` verifies with `key` over the payload as sent (SHA-256).
fn assert_payload_signed_by(key: &SigningKey, decoded: &DecodedRequest) {
    let (sig, _) = client_auth_signatures(&decoded.header).unwrap();
    let sig = sig.parse::<cmmp_model::value::HexBytes>().unwrap().0;
    verify_reversed(
        &key.public_key().unwrap(),
        HashAlgorithm::Sha256,
        &decoded.payload_as_sent,
        &sig,
    )
    .unwrap();
}

/// The message and report text of a decoded request's parts by the rule of §4.5, decoded
/// in full: the body's kind, replaced by the first BOM-prefixed attachment that decodes to
/// the same kind. `decode_request` skips decoding a header-only body; this does not.
fn by_the_rule(decoded: &DecodedRequest) -> (Inbound, Option<String>) {
    let endpoint = &decoded.header.target_endpoint;
    let ft = file_type(&decoded.header);
    let body = Inbound::decode(endpoint, ft, &decoded.body_xml).unwrap();
    for (_, bytes) in &decoded.attachments {
        if bytes.starts_with(&[0xFF, 0xFE])
            && let Ok(text) = decode_header(bytes, BomPolicy::Required)
            && let Ok(full) = Inbound::decode(endpoint, ft, &text)
            && full.kind_name() == body.kind_name()
        {
            return (full, Some(text));
        }
    }
    (body, None)
}

/// Decodes a built request's body as an MP would, with cmmp's multipart content type.
fn decode(request: &Request) -> Result<DecodedRequest, cmmp_transport::Error> {
    decode_request(Some(&content_type()), &request.body, DecodeLimits::default())
}

fn body<K: Endpoint>(path: &str) -> K {
    K::from_body(K::Body::from_xml(&doc(path)).unwrap())
}

#[test]
fn invoke_kinds() {
    check(
        body::<ClientRegistration>("registration/request.xml"),
        vec![],
        decoded_as!(ClientRegistration),
    );
    check(
        body::<PolicyAssignments>("policy/request-machine.xml"),
        vec![],
        decoded_as!(PolicyAssignments),
    );
    check(
        body::<ContentLocation>("location/content-request.xml"),
        vec![],
        decoded_as!(ContentLocation),
    );
    check(
        body::<WsusLocation>("location/wsus-request-lowercase.xml"),
        vec![],
        decoded_as!(WsusLocation),
    );
    check(
        body::<LocalMpLocation>("location/localmp-request.xml"),
        vec![],
        decoded_as!(LocalMpLocation),
    );
    check(
        body::<EnumerateMpLocation>("location/enumerate-mp-request.xml"),
        vec![],
        decoded_as!(EnumerateMpLocation),
    );
    check(
        body::<SiteInformation>("location/siteinfo-request.xml"),
        vec![],
        decoded_as!(SiteInformation),
    );
    check(
        body::<AssignedSite>("location/assignedsite-request.xml"),
        vec![],
        decoded_as!(AssignedSite),
    );
}

#[test]
fn post_kinds() {
    check(body::<DdrReport>("ddr/full.xml"), vec![], decoded_as!(DdrReport));
    check(body::<HinvReport>("hinv/full.xml"), vec![], decoded_as!(HinvReport));
    check(body::<SinvReport>("sinv/full.xml"), vec![], decoded_as!(SinvReport));
    check(body::<SoftwareMetering>("metering/full.xml"), vec![], decoded_as!(SoftwareMetering));
    check(body::<StateMessages>("state/app-and-heartbeat.xml"), vec![], decoded_as!(StateMessages));
    check(body::<StatusMessage>("status/ccmhttp-status.xml"), vec![], decoded_as!(StatusMessage));
    let files = vec![
        Attachment::new("1", b"[Settings]\r\nA=1\r\n".to_vec()),
        Attachment::new("2", vec![0u8, 1, 2, 255]),
    ];
    check(body::<FileCollection>("filecoll/full.xml"), files, decoded_as!(FileCollection));
    let mif = vec![Attachment::new(
        "1",
        b"START COMPONENT\r\nNAME = \"WORKSTATION\"\r\nEND COMPONENT\r\n".to_vec(),
    )];
    check(body::<IdmifCollection>("idmif/full.xml"), mif, decoded_as!(IdmifCollection));
}

#[test]
fn header_and_attachment_kinds_send_a_header_only_body() {
    let key = key();
    let signer = Signer::new(&key, client(), HashAlgorithm::Sha256).unwrap();
    let ddr = body::<DdrReport>("ddr/full.xml");
    let request = build_request(&settings(), &ddr, vec![], Some(&signer), fresh()).unwrap();
    let decoded = decode(&request).unwrap();
    assert!(decoded.body_xml.ends_with("<ReportBody/></Report>"), "{}", decoded.body_xml);
    assert_eq!(decoded.message.layout(), DdrReport::LAYOUT);
    assert_eq!(decoded.attachments.len(), 1);
    assert_eq!(decoded.attachments[0].0, "{00000000-0000-0000-0000-000000000003}");
    assert_eq!(&decoded.attachments[0].1[..2], &[0xFF, 0xFE]);
    // Byte ranges: the attachment starts where the body (with its NUL) ends.
    let range = decoded.header.body.as_ref().unwrap();
    assert_eq!(decoded.header.attachment[0].offset, range.length);
    assert_eq!(range.length as usize, decoded.body_xml.encode_utf16().count() * 2 + 2);
    // The full report's text is kept as it came in the attachment (here: cmmp's encoding).
    let attachment = &decoded.attachments[0].1;
    let units: Vec<u16> =
        attachment[2..].chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
    let text = String::from_utf16(&units).unwrap();
    assert_eq!(decoded.report_xml.as_deref(), Some(text.as_str()));
    assert_eq!(decoded.report_xml, Some(doc("ddr/full.xml").trim_end().to_owned()));

    // The same parts sent through the raw API, with bodies other than the header-only form
    // of the attachment: the body is decoded for itself, as before.
    let full = doc("ddr/full.xml").trim_end().to_owned();
    let header_only = cmmp_transport::payload::header_only(&full).unwrap();
    let raw = |body: &str| {
        let mut message = RawMessage::new();
        message.set_target_endpoint("MP_DdrEndpoint").unwrap();
        message.set_body_from_string(body);
        let mut attachment = Vec::new();
        encode_header(&full, &mut attachment);
        message.set_attachment_from_buffer("{00000000-0000-0000-0000-000000000003}", attachment);
        message.set_security_flags(SecurityFlags::SIGN_MESSAGE | SecurityFlags::COMPRESS_MESSAGE);
        let request = message.to_request(DeliveryKind::Post, &settings(), Some(&signer), fresh());
        decode(&request.unwrap())
    };
    let reference = decode(&request).unwrap();
    // Byte for byte the form `build_request` sends: the same message and report text.
    let same = raw(&header_only).unwrap();
    assert_eq!(
        (same.message, same.report_xml),
        (reference.message.clone(), reference.report_xml.clone())
    );
    // Another spelling of the empty body, a whole report as the body: still the attachment's
    // report, by the rule.
    for body in [header_only.replace("<ReportBody/>", "<ReportBody></ReportBody>"), full.clone()] {
        let other = raw(&body).unwrap();
        assert_eq!(other.message, reference.message);
        assert_eq!(other.report_xml, reference.report_xml);
        assert_eq!(other.message, by_the_rule(&other).0);
    }
    // A body that does not decode fails the request, whatever the attachment holds.
    let broken = header_only.replacen("<ReportHeader>", "<ReportHeader><Oops>", 1);
    assert!(matches!(raw(&broken), Err(cmmp_transport::Error::Decode(_))), "{:?}", raw(&broken));
    assert!(raw("<Report>").is_err());

    // A body-only kind has no separate report text.
    let state = body::<StateMessages>("state/app-and-heartbeat.xml");
    let request = build_request(&settings(), &state, vec![], Some(&signer), fresh()).unwrap();
    let decoded = decode(&request).unwrap();
    assert_eq!(decoded.report_xml, None);
    assert_eq!(decoded.message.layout(), cmmp_model::Layout::Body);
}

#[test]
fn a_kind_that_must_be_signed_is_refused_without_a_signer() {
    let ddr = body::<DdrReport>("ddr/full.xml");
    let e = build_request(&settings(), &ddr, vec![], None, fresh()).unwrap_err();
    assert!(e.to_string().contains("DdrReport"), "{e}");
}

#[test]
fn fresh_ids_differ() {
    let a = Fresh::now().unwrap();
    let b = Fresh::now().unwrap();
    assert_ne!(a.id, b.id);
}

#[test]
fn encrypted_payloads_decrypt_with_the_mp_key_and_still_verify() {
    use cmmp_transport::cert::generate_mixed_mode;
    use cmmp_transport::wire::decode_request_with_key;

    let mp = generate_mixed_mode("MP01", std::time::SystemTime::now()).unwrap();
    let mut settings = settings();
    settings.encrypt = true;
    settings.mp_encryption = Some(vec![mp.encryption_cert().clone()]);
    let key = key();
    let signer = Signer::new(&key, client(), HashAlgorithm::Sha256).unwrap();
    let state = body::<StateMessages>("state/app-and-heartbeat.xml");
    let request = build_request(&settings, &state, vec![], Some(&signer), fresh()).unwrap();
    let refused = decode(&request).unwrap_err();
    assert!(refused.to_string().contains("encrypted"), "{refused}");
    let mp_key = (mp.encryption_key(), mp.encryption_cert());
    let decoded = decode_request_with_key(
        Some(&content_type()),
        &request.body,
        DecodeLimits::default(),
        Some(mp_key),
    )
    .unwrap();
    assert!(matches!(&decoded.message, Inbound::StateMessages(d) if d.0 == state.0));
    assert_payload_signed_by(&key, &decoded);
}

#[test]
fn a_faster_compression_level_still_decodes_and_verifies() {
    let key = key();
    let signer = Signer::new(&key, client(), HashAlgorithm::Sha256).unwrap();
    let ddr = body::<DdrReport>("ddr/full.xml");
    let mut fast = settings();
    fast.compression_level = 1;
    let default = build_request(&settings(), &ddr, vec![], Some(&signer), fresh()).unwrap();
    let request = build_request(&fast, &ddr, vec![], Some(&signer), fresh()).unwrap();
    assert_ne!(request.body, default.body, "level 1 deflates differently");
    let decoded = decode(&request).unwrap();
    assert_eq!(&decoded.payload_as_sent[..2], &[0x78, 0x01]);
    assert!(matches!(&decoded.message, Inbound::DdrReport(d) if d.0 == ddr.0));
    assert_payload_signed_by(&key, &decoded);
}
