//! Framing that other implementations send, which an MP accepts and so must the emulator:
//! the Python peers' alphabetical `Msg` element order, an uncompressed body (no `Hook3`),
//! `ReplyMode` spelled `ASync` (sccmhunter), `form-data` multipart parts under a random
//! boundary, lower-case GUIDs (the managed SDK), a policy request spelled `Ack` with its
//! elements reordered, and a payload encrypted to the MP. Most requests are built and signed
//! by `cmmp-transport`, then reshaped by hand (only the `Msg` header and the framing change:
//! the signature covers the payload) and sent with `Client::send` or over a raw TCP
//! connection. The `Ack` request's body is written by hand and sent, signed, through the raw
//! API, which sends a body as written.

use cmmp_model::MessageExt;
use cmmp_model::msg::HookName;
use cmmp_model::policy::{AssignmentRequestKind, ReplyAssignments};
use cmmp_model::registration::ClientRegistrationResponse;
use cmmp_transport::body::{self, BomPolicy};
use cmmp_transport::client::Client;
use cmmp_transport::multipart::{self, MultipartLimits};
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::reply::{self, HttpReply, ReplyLimits, SyncContext};
use cmmp_transport::wire::{self, Fresh, Request, Settings};

use crate::support::{
    Enrolled, MP_HOST, Mp, Reg, ddr, doc, hinv, host, identity, policy_request, raw_exchange, run,
    state, text,
};

// ---- reshaping built requests ----------------------------------------------------------------

/// The `Msg` header text and the payload part (as sent) of a built request.
fn split(request: &Request) -> (String, Vec<u8>) {
    let parts = multipart::parse(&request.body, multipart::BOUNDARY, MultipartLimits::default())
        .expect("a built request is multipart");
    let header = body::decode_header(parts[0].body, BomPolicy::Required).expect("header");
    (header, parts[1].body.to_vec())
}

/// `request` with another body and `Content-Type`, `Content-Length` following.
fn with_body(request: &Request, body: Vec<u8>, content_type: &str) -> Request {
    let headers = request
        .headers
        .iter()
        .map(|(name, value)| match *name {
            "Content-Length" => (*name, body.len().to_string()),
            "Content-Type" => (*name, content_type.to_owned()),
            _ => (*name, value.clone()),
        })
        .collect();
    Request { method: request.method, path: request.path, headers, body }
}

/// `request` with its `Msg` header replaced by `header` (canonical framing kept).
fn with_header(request: &Request, header: &str) -> Request {
    let (_, payload) = split(request);
    let mut header_part = Vec::new();
    body::encode_header(header, &mut header_part);
    let mut framed = Vec::new();
    multipart::frame(&header_part, &payload, &mut framed);
    with_body(request, framed, &multipart::content_type())
}

/// The top-level child elements of `<Msg …>…</Msg>`, as text, and the opening tag.
fn children(header: &str) -> (&str, Vec<&str>) {
    let open_end = header.find('>').expect("<Msg>") + 1;
    let close = header.rfind("</Msg>").expect("</Msg>");
    let inner = &header[open_end..close];
    let mut out = Vec::new();
    let (mut depth, mut start, mut at) = (0usize, 0usize, 0usize);
    while let Some(lt) = inner[at..].find('<') {
        let tag_start = at + lt;
        let tag_end = tag_start + inner[tag_start..].find('>').expect("tag end");
        let tag = &inner[tag_start..=tag_end];
        if tag.starts_with("</") {
            depth -= 1;
        } else {
            if depth == 0 {
                start = tag_start;
            }
            if !tag.ends_with("/>") {
                depth += 1;
            }
        }
        if depth == 0 {
            out.push(&inner[start..=tag_end]);
        }
        at = tag_end + 1;
    }
    (&header[..open_end], out)
}

/// An element's name.
fn name(element: &str) -> &str {
    let rest = &element[1..];
    &rest[..rest.find([' ', '>', '/']).unwrap_or(rest.len())]
}

/// The element order of the Python peers' header (`msg/lenient/python-alphabetical.xml`).
fn python_order() -> Vec<String> {
    let sample = doc("msg/lenient/python-alphabetical.xml");
    children(sample.trim()).1.into_iter().map(|e| name(e).to_owned()).collect()
}

/// `header` with its elements in the Python peers' order (elements they do not send, such as
/// `Attachment` and `Property`, last) and their all-zero `CorrelationID`.
fn python_header(header: &str) -> String {
    let order = python_order();
    let (open, mut elements) = children(header);
    let zero = "<CorrelationID>{00000000-0000-0000-0000-000000000000}</CorrelationID>";
    if !elements.iter().any(|e| name(e) == "CorrelationID") {
        elements.push(zero);
    }
    elements.sort_by_key(|e| order.iter().position(|o| o == name(e)).unwrap_or(usize::MAX));
    format!("{open}{}</Msg>", elements.concat())
}

fn sync_context(settings: &Settings) -> SyncContext<'_> {
    SyncContext {
        host_asked: &settings.mp,
        reply_compression: settings.reply_compression,
        verifier: None,
        limits: ReplyLimits::default(),
    }
}

fn signed_policy_request(settings: &Settings, c: &Enrolled) -> Request {
    let kind = policy_request(&c.smsid, &c.name, AssignmentRequestKind::Always, "");
    wire::build_request(settings, &kind, vec![], Some(&c.signer()), Fresh::now().unwrap()).unwrap()
}

// ---- the variants ----------------------------------------------------------------------------

#[test]
fn a_header_in_the_python_peers_alphabetical_order_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let settings = mp.settings("WS01");
        let client = mp.client();

        // An Invoke: the policy request of the sample, element for element.
        let request = signed_policy_request(&settings, &c);
        let header = python_header(&split(&request).0);
        let sent: Vec<String> =
            children(&header).1.into_iter().map(|e| name(e).to_owned()).collect();
        assert_eq!(sent, python_order());
        assert!(header.contains("<Body Type=\"ByteRange\""), "{header}");
        let http = client.send(&with_header(&request, &header)).await.unwrap();
        let reply =
            reply::decode_sync::<ReplyAssignments>(&http, &sync_context(&settings)).unwrap();
        assert_eq!(reply.reply.policy_assignment.len(), 2);

        // A Post with an attachment (the full DDR).
        let kind = ddr(&c.smsid, "4C4C4544-0042-3510-8052-B4C04F4E3432");
        let request =
            wire::build_request(&settings, &kind, vec![], Some(&c.signer()), Fresh::now().unwrap())
                .unwrap();
        let header = python_header(&split(&request).0);
        let (_, elements) = children(&header);
        assert_eq!(name(elements[0]), "Body");
        assert_eq!(name(elements[elements.len() - 1]), "Attachment", "{header}");
        let http = client.send(&with_header(&request, &header)).await.unwrap();
        reply::decode_post(&http, &ReplyLimits::default()).unwrap();
        assert_eq!(mp.last(&c.smsid).await, ("DdrReport".into(), "stored".into(), None));
        let shown = mp.get(&format!("/cmmp-admin/clients/{}", c.smsid)).await;
        assert_eq!(shown["discovery"]["ad_site"], "Default-First-Site-Name");
    });
}

#[test]
fn an_uncompressed_body_and_reply_are_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let mut settings = mp.settings("WS01");
        settings.compress = false;
        settings.reply_compression = false;
        // The header has no Hook3 and asks for no compression.
        let probe = signed_policy_request(&settings, &c);
        let (header, payload) = split(&probe);
        assert!(
            !header.contains("zlib-compress") && header.contains("ReplyCompression=\"none\""),
            "{header}"
        );
        assert!(payload.starts_with(b"<\0"), "the UTF-16LE body itself, not a zlib stream");

        let client = Client::new(mp.config_for(settings)).unwrap();
        let reply = client
            .invoke(
                &policy_request(&c.smsid, "WS01", AssignmentRequestKind::Always, ""),
                vec![],
                Some(&c.signer()),
            )
            .await
            .unwrap();
        assert_eq!(reply.reply.policy_assignment.len(), 2);
        let zlib = cmmp_transport::msg::hooks(&reply.header, &HookName::ZlibCompress).count();
        assert_eq!(zlib, 0, "an uncompressed reply");
        client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await.unwrap();
        assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
        client.post(&state(&c.smsid, &[1]), vec![], None).await.unwrap();
        assert_eq!(mp.last(&c.smsid).await.1, "stored");
    });
}

#[test]
fn replymode_async_with_sccmhunters_attachment_name_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let settings = mp.settings("WS01");
        let kind = ddr(&c.smsid, "4C4C4544-0042-3510-8052-B4C04F4E3432");
        let fresh = Fresh::now().unwrap();
        let request =
            wire::build_request(&settings, &kind, vec![], Some(&c.signer()), fresh).unwrap();
        let (header, _) = split(&request);
        assert!(header.contains("<ReplyMode>Async</ReplyMode>"), "{header}");
        let header =
            header.replace("<ReplyMode>Async</ReplyMode>", "<ReplyMode>ASync</ReplyMode>").replace(
                "Name=\"{00000000-0000-0000-0000-000000000003}\"",
                "Name=\"403838f7-69bb-43d5-8362-28a5755b97b5\"",
            );
        assert!(header.contains("403838f7"), "{header}");
        let http = mp.client().send(&with_header(&request, &header)).await.unwrap();
        reply::decode_post(&http, &ReplyLimits::default()).unwrap();
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(
            (&messages[0]["kind"], &messages[0]["outcome"]),
            (&"DdrReport".into(), &"stored".into())
        );
        assert_eq!(messages[0]["message_id"], fresh.id.to_string());
        let shown = mp.get(&format!("/cmmp-admin/clients/{}", c.smsid)).await;
        assert_eq!(shown["client"]["hardware_id"], "SMBIOS:4C4C4544-0042-3510-8052-B4C04F4E3432");
    });
}

/// A boundary that is not the SDK's: 32 hex digits of a fresh GUID.
fn random_boundary() -> String {
    Fresh::now().unwrap().id.to_string().chars().filter(char::is_ascii_hexdigit).collect()
}

/// A `multipart/form-data` body as Python's `requests_toolbelt` writes it: `Content-Disposition`
/// parts named `Msg` and `RequestData`, the header without a BOM, a CRLF after the close
/// delimiter.
fn form_data(request: &Request, boundary: &str) -> Vec<u8> {
    let (header, payload) = split(request);
    let header_utf16: Vec<u8> = header.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"Msg\"\r\n\
             Content-Type: text/plain; charset=UTF-16\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&header_utf16);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"RequestData\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&payload);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn a_form_data_multipart_with_a_random_boundary_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let settings = mp.settings("WS01");
        let id = identity("WS01");
        let boundary = random_boundary();
        assert_eq!(boundary.len(), 32);
        assert_ne!(boundary, multipart::BOUNDARY);
        let content_type = format!("multipart/form-data; boundary={boundary}");

        // An Invoke through the client.
        let built = wire::build_request(
            &settings,
            &Reg::new(&id, "WS01").build(),
            vec![],
            None,
            Fresh::now().unwrap(),
        )
        .unwrap();
        let request = with_body(&built, form_data(&built, &boundary), &content_type);
        let http = mp.client().send(&request).await.unwrap();
        let reply =
            reply::decode_sync::<ClientRegistrationResponse>(&http, &sync_context(&settings))
                .unwrap();
        assert_eq!(reply.reply.status, 0);
        let c =
            Enrolled { name: "WS01".to_owned(), identity: id, smsid: reply.reply.smsid.unwrap() };

        // A Post over a raw TCP connection, header names in lower case.
        let built = wire::build_request(
            &settings,
            &state(&c.smsid, &[5, 6]),
            vec![],
            Some(&c.signer()),
            Fresh::now().unwrap(),
        )
        .unwrap();
        let body = form_data(&built, &boundary);
        let mut bytes = format!(
            "CCM_POST /ccm_system/request HTTP/1.1\r\nhost: {MP_HOST}\r\n\
             content-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        let (status, head, answer) = raw_exchange(mp.emulator().addr(), &bytes).await;
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        reply::decode_post(&HttpReply { status, headers, body: answer }, &ReplyLimits::default())
            .unwrap();
        let stored = crate::support::array(
            mp.get(&format!("/cmmp-admin/clients/{}/state-messages", c.smsid)).await,
        );
        assert_eq!(stored.len(), 2);
    });
}

#[test]
fn a_header_with_lower_case_guids_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let settings = mp.settings("WS01");
        let fresh = Fresh::now().unwrap();
        let request = wire::build_request(
            &settings,
            &hinv(&c.smsid, "Full", "1.0"),
            vec![],
            Some(&c.signer()),
            fresh,
        )
        .unwrap();
        let (header, _) = split(&request);
        let (upper_id, upper_source) = (fresh.id.to_string(), c.smsid.to_string());
        let lower_source = format!("GUID:{}", upper_source["GUID:".len()..].to_lowercase());
        let header = header
            .replace(&upper_id, &upper_id.to_lowercase())
            .replace(&upper_source, &lower_source);
        assert!(header.contains(&lower_source), "{header}");
        let http = mp.client().send(&with_header(&request, &header)).await.unwrap();
        reply::decode_post(&http, &ReplyLimits::default()).unwrap();
        assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
        // Read as the same message ID: a redelivery in upper case is a duplicate.
        mp.client().send(&request).await.unwrap();
        let outcomes: Vec<String> =
            mp.messages(&c.smsid).await.iter().take(2).map(|m| text(&m["outcome"])).collect();
        assert_eq!(outcomes, ["duplicate", "stored"]);
    });
}

/// A policy request as the documentation and PXEThief spell it (`Ack`, not the SDK's `ACK`),
/// its elements in another order (protocol §9), sent as written through the raw API and
/// signed by the client: answered like the SDK's spelling.
#[test]
fn a_policy_request_with_ack_and_its_elements_reordered_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let text = format!(
            "<RequestAssignments SchemaVersion=\"1.00\" RequestType=\"Always\" Ack=\"false\">\
             <ServerCookie/><Resource ResourceType=\"Machine\"/><PolicySource>SMS:P01</PolicySource>\
             <Identification><Machine><NetBIOSName>WS01</NetBIOSName><ClientID>{}</ClientID>\
             <FQDN>WS01.corp.example</FQDN><SID/></Machine><User/></Identification>\
             </RequestAssignments>",
            c.smsid
        );
        let mut message = RawMessage::new();
        message.set_target_endpoint("MP_PolicyManager").unwrap();
        message.set_body_from_string(&text);
        message.set_client_id(c.smsid);
        message.set_security_flags(SecurityFlags::SIGN_MESSAGE | SecurityFlags::COMPRESS_MESSAGE);
        assert!(message.body_to_string().unwrap().contains(" Ack=\"false\"><ServerCookie/>"));
        let reply = mp.client().invoke_raw(&message, Some(&c.signer())).await.unwrap();
        let assignments = ReplyAssignments::from_xml(&reply.body_xml).unwrap();
        assert_eq!(assignments.policy_assignment.len(), 2);
        let last = mp.last(&c.smsid).await;
        assert_eq!((last.0.as_str(), last.1.as_str()), ("PolicyAssignments", "answered"));
    });
}

#[test]
fn a_payload_encrypted_to_the_mps_certificate_is_accepted() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let certs = mp.client().mp_certificates().await.unwrap();
        let encryption = mp.emulator().identity().encryption_cert().clone();
        assert_eq!(
            certs.certificate2.unwrap().value.as_bytes(),
            mp.emulator().identity().encryption_cert_der()
        );
        let mut settings = Settings::new(host(MP_HOST), host("WS01"));
        settings.encrypt = true;
        settings.mp_encryption = Some(vec![encryption]);
        let probe = signed_policy_request(&settings, &c);
        assert!(split(&probe).0.contains("Name=\"encrypt\""));
        let client = Client::new(mp.config_for(settings)).unwrap();
        let reply = client
            .invoke(
                &policy_request(&c.smsid, "WS01", AssignmentRequestKind::Always, ""),
                vec![],
                Some(&c.signer()),
            )
            .await
            .unwrap();
        assert_eq!(reply.reply.policy_assignment.len(), 2);
        client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await.unwrap();
        assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
    });
}
