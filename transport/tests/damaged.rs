//! Damaged requests and replies.
//!
//! - Requests, as an MP receives them: every golden request of `tests/wire/`, and an
//!   uncompressed build of every kind (so that the damage reaches the UTF-16 and XML decoders
//!   rather than stopping at zlib), cut, overwritten, spliced, cleared or bit-flipped
//!   anywhere. Each gives a message or a typed error from `decode_request`.
//! - Sync replies, as a client receives them: every reply document of the corpus, signed by
//!   an MP whose certificate is pinned and compressed, or plain and unsigned, damaged the same
//!   ways. Each gives its typed reply or a typed error from `decode_sync`.
//!
//! None may panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use cmmp_model::kinds::{
    AssignedSite, ClientRegistration, ContentLocation, DdrReport, EnumerateMpLocation,
    FileCollection, HinvReport, IdmifCollection, LocalMpLocation, PolicyAssignments, SinvReport,
    SiteInformation, SoftwareMetering, StateMessages, StatusMessage, WsusLocation,
};
use cmmp_model::msg::Msg;
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{Endpoint, Invoke, MessageExt as _};
use cmmp_transport::cert::{Identity, generate_mixed_mode_single};
use cmmp_transport::msg::HostName;
use cmmp_transport::multipart::content_type;
use cmmp_transport::payload::Attachment;
use cmmp_transport::reply::{
    HttpReply, ReplyLimits, ReplySigner, ReplyVerifier, SyncContext, decode_sync, encode_sync_reply,
};
use cmmp_transport::sign::{HashAlgorithm, SigningKey};
use cmmp_transport::wire::{
    DecodeLimits, Fresh, Settings, Signer, build_request, decode_request, parse_http_request,
};
use proptest::collection::vec;
use proptest::prelude::{ProptestConfig, proptest};
use proptest::test_runner::FileFailurePersistence;

#[path = "../../tests/shared/damage.rs"]
mod damage;
use damage::{apply_all, damage};

fn manifest(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The bodies (after the HTTP head) of the golden requests, with their content types.
fn goldens() -> &'static [(String, Vec<u8>)] {
    static GOLDENS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    GOLDENS.get_or_init(|| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(manifest("tests/wire"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".request.bin"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 16, "one golden request per message kind");
        files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path).unwrap();
                let http = parse_http_request(&bytes).unwrap();
                let content_type = http.header("Content-Type").unwrap().to_owned();
                (content_type, http.body.to_vec())
            })
            .collect()
    })
}

fn body<K: Endpoint>(path: &str) -> K {
    let text = std::fs::read_to_string(manifest("../model/tests/documents").join(path)).unwrap();
    K::from_body(K::Body::from_xml(&text).unwrap())
}

/// The request body of `kind`, uncompressed (signed, as the golden requests are).
fn plain<K: Endpoint>(kind: &K, attachments: Vec<Attachment>) -> Vec<u8> {
    let key =
        SigningKey::from_pem(&std::fs::read(manifest("tests/wire/test-key.pem")).unwrap()).unwrap();
    let client: SmsId = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10".parse().unwrap();
    let signer = Signer::new(&key, client, HashAlgorithm::Sha256).unwrap();
    let mut settings =
        Settings::new(HostName::new("mp01.corp.example").unwrap(), HostName::new("WS01").unwrap());
    settings.compress = false;
    let fresh = Fresh {
        id: "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}".parse::<BracedGuid>().unwrap(),
        sent_time: "2025-01-31T10:00:00Z".parse::<IsoTime>().unwrap(),
    };
    build_request(&settings, kind, attachments, Some(&signer), fresh).unwrap().body
}

/// Uncompressed request bodies of every kind.
fn plains() -> &'static [Vec<u8>] {
    static PLAINS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PLAINS.get_or_init(|| {
        let files = vec![Attachment::new("1", b"[Settings]\r\nA=1\r\n".to_vec())];
        let mif = vec![Attachment::new("1", b"START COMPONENT\r\nEND COMPONENT\r\n".to_vec())];
        let all = vec![
            plain(&body::<ClientRegistration>("registration/request.xml"), vec![]),
            plain(&body::<PolicyAssignments>("policy/request-machine.xml"), vec![]),
            plain(&body::<ContentLocation>("location/content-request.xml"), vec![]),
            plain(&body::<WsusLocation>("location/wsus-request-lowercase.xml"), vec![]),
            plain(&body::<LocalMpLocation>("location/localmp-request.xml"), vec![]),
            plain(&body::<EnumerateMpLocation>("location/enumerate-mp-request.xml"), vec![]),
            plain(&body::<SiteInformation>("location/siteinfo-request.xml"), vec![]),
            plain(&body::<AssignedSite>("location/assignedsite-request.xml"), vec![]),
            plain(&body::<DdrReport>("ddr/full.xml"), vec![]),
            plain(&body::<HinvReport>("hinv/full.xml"), vec![]),
            plain(&body::<SinvReport>("sinv/full.xml"), vec![]),
            plain(&body::<SoftwareMetering>("metering/full.xml"), vec![]),
            plain(&body::<StateMessages>("state/app-and-heartbeat.xml"), vec![]),
            plain(&body::<StatusMessage>("status/ccmhttp-status.xml"), vec![]),
            plain(&body::<FileCollection>("filecoll/full.xml"), files),
            plain(&body::<IdmifCollection>("idmif/full.xml"), mif),
        ];
        for (i, request) in all.iter().enumerate() {
            decode_request(Some(&content_type()), request, DecodeLimits::default())
                .unwrap_or_else(|e| panic!("kind {i}: the undamaged request decodes: {e}"));
        }
        all
    })
}

/// How a reply document is decoded: `decode_sync` for the reply type of an Invoke kind.
type DecodeReply = fn(&HttpReply, &SyncContext<'_>) -> Result<(), cmmp_transport::Error>;

fn decode_reply<K: Invoke>(
    http: &HttpReply,
    ctx: &SyncContext<'_>,
) -> Result<(), cmmp_transport::Error> {
    decode_sync::<K::Reply>(http, ctx).map(|_| ())
}

/// The MP identity that signs the replies.
fn mp() -> &'static Identity {
    static MP: OnceLock<Identity> = OnceLock::new();
    MP.get_or_init(|| generate_mixed_mode_single("MP01", SystemTime::now()).unwrap())
}

fn verifier() -> &'static ReplyVerifier {
    static VERIFIER: OnceLock<ReplyVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        ReplyVerifier::from_certificate(mp().signing_cert())
            .unwrap()
            .with_hash(HashAlgorithm::Sha256)
            .with_site_code("P01")
            .require_signature(true)
    })
}

fn host() -> &'static HostName {
    static HOST: OnceLock<HostName> = OnceLock::new();
    HOST.get_or_init(|| HostName::new("mp01.corp.example").unwrap())
}

/// Every reply document of the corpus, framed twice: signed and compressed (decoded against
/// the pinned MP certificate), and plain and unsigned (decoded without one).
fn replies() -> &'static [(Vec<u8>, bool, DecodeReply)] {
    static REPLIES: OnceLock<Vec<(Vec<u8>, bool, DecodeReply)>> = OnceLock::new();
    REPLIES.get_or_init(|| {
        let documents: [(&str, DecodeReply); 14] = [
            ("registration/response-approved.xml", decode_reply::<ClientRegistration>),
            ("registration/response-not-approved.xml", decode_reply::<ClientRegistration>),
            ("registration/response-pending.xml", decode_reply::<ClientRegistration>),
            ("registration/response-2007-lowercase.xml", decode_reply::<ClientRegistration>),
            ("policy/reply-two-assignments.xml", decode_reply::<PolicyAssignments>),
            ("policy/reply-delta-conditions.xml", decode_reply::<PolicyAssignments>),
            ("location/content-reply.xml", decode_reply::<ContentLocation>),
            ("location/wsus-reply.xml", decode_reply::<WsusLocation>),
            ("location/localmp-reply.xml", decode_reply::<LocalMpLocation>),
            ("location/enumerate-mp-reply.xml", decode_reply::<EnumerateMpLocation>),
            ("location/siteinfo-reply.xml", decode_reply::<SiteInformation>),
            ("location/assignedsite-reply.xml", decode_reply::<AssignedSite>),
            ("policy/reply-two-assignments.canonical.xml", decode_reply::<PolicyAssignments>),
            ("location/content-reply.canonical.xml", decode_reply::<ContentLocation>),
        ];
        let header = std::fs::read_to_string(manifest(
            "../model/tests/documents/msg/reply-authenticate.xml",
        ))
        .unwrap();
        let header = Msg::from_xml(&header).unwrap();
        let signer = ReplySigner {
            key: mp().signing_key(),
            hash: HashAlgorithm::Sha256,
            sender_machines: "MP01;mp01.corp.example",
            site_code: "P01",
        };
        let mut all = Vec::new();
        for (path, decode) in documents {
            let text =
                std::fs::read_to_string(manifest("../model/tests/documents").join(path)).unwrap();
            let text = text.trim_end_matches(['\r', '\n']);
            for signed in [true, false] {
                let body =
                    encode_sync_reply(header.clone(), text, signed, signed.then_some(&signer))
                        .unwrap();
                let http = reply_of(body);
                decode(&http, &context(signed))
                    .unwrap_or_else(|e| panic!("{path} (signed: {signed}) decodes: {e}"));
                all.push((http.body, signed, decode));
            }
        }
        all
    })
}

fn reply_of(body: Vec<u8>) -> HttpReply {
    HttpReply { status: 200, headers: vec![("Content-Type".to_owned(), content_type())], body }
}

fn context(signed: bool) -> SyncContext<'static> {
    SyncContext {
        host_asked: host(),
        reply_compression: signed,
        verifier: signed.then(verifier),
        limits: ReplyLimits::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    /// A damaged golden (compressed, signed) request: a message or a typed error.
    #[test]
    fn damaged_golden_requests_never_panic(
        which in 0usize..16,
        damages in vec(damage(), 1..4),
    ) {
        let (content_type, body) = &goldens()[which];
        let bytes = apply_all(body.clone(), &damages);
        let _ = decode_request(Some(content_type), &bytes, DecodeLimits::default());
    }

    /// A damaged uncompressed request, whose damage reaches the UTF-16 and XML decoders: a
    /// message or a typed error.
    #[test]
    fn damaged_plain_requests_never_panic(
        which in 0usize..16,
        damages in vec(damage(), 1..4),
    ) {
        let bytes = apply_all(plains()[which].clone(), &damages);
        let _ = decode_request(Some(&content_type()), &bytes, DecodeLimits::default());
    }

    /// A damaged Sync reply: its typed reply or a typed error.
    #[test]
    fn damaged_replies_never_panic(
        which in 0usize..28,
        damages in vec(damage(), 1..4),
    ) {
        let (body, signed, decode) = &replies()[which];
        let http = reply_of(apply_all(body.clone(), &damages));
        let _ = decode(&http, &context(*signed));
    }
}
