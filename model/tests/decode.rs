//! Decoder behaviour: errors name the element path; input is read leniently the way a
//! management point reads it; inbound messages dispatch on (endpoint, FileType, root).

use cmmp_model::kinds::{DdrReport, Inbound, StateMessages};
use cmmp_model::msg::{Msg, ReplyModeValue};
use cmmp_model::registration::ClientRegistrationResponse;
use cmmp_model::{DecodeErrorKind, EncodeError, MessageExt, state};

fn sample(schema: &str, name: &str) -> String {
    let path = format!("{}/tests/documents/{schema}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn nth_replace(text: &str, from: &str, to: &str, n: usize) -> String {
    let pos = text.match_indices(from).nth(n).expect("occurrence").0;
    format!("{}{to}{}", &text[..pos], &text[pos + from.len()..])
}

#[test]
fn a_bad_attribute_value_names_its_path_with_positions() {
    let text = sample("state", "app-and-heartbeat.xml");
    let bad = nth_replace(&text, "SerialNumber=\"", "SerialNumber=\"x", 1);
    let e = state::Report::from_xml(&bad).unwrap_err();
    assert_eq!(e.path(), "Report/ReportBody/StateMessage[2]/@SerialNumber");
    assert!(matches!(e.kind(), DecodeErrorKind::Value(_)), "{e}");
    assert!(e.offset() > 0);
}

#[test]
fn a_missing_element_names_its_parent() {
    let text = sample("state", "app-and-heartbeat.xml");
    let start = text.find("<ReportDetails>").unwrap();
    let end = text.find("</ReportDetails>").unwrap() + "</ReportDetails>".len();
    let bad = format!("{}{}", &text[..start], &text[end..]);
    let e = state::Report::from_xml(&bad).unwrap_err();
    assert_eq!(e.path(), "Report/ReportHeader");
    assert_eq!(e.kind(), &DecodeErrorKind::MissingElement("ReportDetails"));
}

#[test]
fn a_repeated_single_element_is_an_error() {
    let text = sample("msg", "registration.xml");
    let twice = text.replacen(
        "<TargetEndpoint>",
        "<TargetEndpoint>MP_X</TargetEndpoint><TargetEndpoint>",
        1,
    );
    let e = Msg::from_xml(&twice).unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::DuplicateElement("TargetEndpoint"));
    assert_eq!(e.path(), "Msg");
}

#[test]
fn a_repeated_attribute_is_malformed_xml() {
    let text = "<ClientRegistrationResponse ResponseType=\"Registration\" TimeStamp=\"2025-01-31T10:00:00Z\" Status=\"0\" Status=\"1\"/>";
    let e = ClientRegistrationResponse::from_xml(text).unwrap_err();
    assert!(matches!(e.kind(), DecodeErrorKind::Syntax(_)), "{e}");
}

#[test]
fn the_wrong_root_is_named() {
    let e = ClientRegistrationResponse::from_xml("<Other/>").unwrap_err();
    assert_eq!(
        e.kind(),
        &DecodeErrorKind::UnexpectedRoot {
            expected: "ClientRegistrationResponse",
            found: "Other".into()
        }
    );
}

#[test]
fn unknown_attributes_and_elements_are_skipped_and_order_is_free() {
    let text = "<ClientRegistrationResponse Extra=\"1\" Status=\"1\" SMSID=\"GUID:1af488d8-7ad2-4d3b-9a5c-0123456789ab\" TimeStamp=\"2025-01-31T10:00:00Z\" ResponseType=\"Registration\"><Unknown><Deep/></Unknown></ClientRegistrationResponse>";
    let r = ClientRegistrationResponse::from_xml(text).unwrap();
    assert_eq!(r.status, 1);
    assert_eq!(
        r.to_xml().unwrap(),
        "<ClientRegistrationResponse ResponseType=\"Registration\" TimeStamp=\"2025-01-31T10:00:00Z\" Status=\"1\" SMSID=\"GUID:1AF488D8-7AD2-4D3B-9A5C-0123456789AB\"/>"
    );
}

#[test]
fn enumerations_are_open_and_case_folded() {
    let text = sample("msg", "registration.xml");
    let asynchronous = text.replace("<ReplyMode>Sync</ReplyMode>", "<ReplyMode>ASync</ReplyMode>");
    assert_eq!(Msg::from_xml(&asynchronous).unwrap().reply_mode, Some(ReplyModeValue::Async));
    let odd = text.replace("<ReplyMode>Sync</ReplyMode>", "<ReplyMode>Carrier Pigeon</ReplyMode>");
    let msg = Msg::from_xml(&odd).unwrap();
    assert_eq!(msg.reply_mode, Some(ReplyModeValue::Other("Carrier Pigeon".into())));
    assert!(msg.to_xml().unwrap().contains("<ReplyMode>Carrier Pigeon</ReplyMode>"));
}

#[test]
fn inbound_dispatch_uses_endpoint_file_type_and_root() {
    let ddr = sample("ddr", "full.xml");
    let state = sample("state", "app-and-heartbeat.xml");
    // Endpoint names match case-insensitively (the SDK spells it MP_DDREndpoint).
    let m = Inbound::decode("MP_DDREndpoint", None, &ddr).unwrap();
    assert!(matches!(m, Inbound::DdrReport(DdrReport(_))));
    assert_eq!(m.kind_name(), "DdrReport");
    let m = Inbound::decode("MP_RelayEndpoint", Some("smx"), &state).unwrap();
    assert!(matches!(m, Inbound::StateMessages(StateMessages(_))));
    let e = Inbound::decode("MP_RelayEndpoint", Some("NOPE"), &state).unwrap_err();
    assert!(matches!(e.kind(), DecodeErrorKind::UnknownKind { .. }), "{e}");
}

#[test]
fn text_xml_cannot_carry_is_refused_on_encode() {
    let text = sample("state", "app-and-heartbeat.xml");
    let mut report = state::Report::from_xml(&text).unwrap();
    report.report_header.identification.machine.net_bios_name = "WS\u{1}01".into();
    assert_eq!(
        report.to_xml().unwrap_err(),
        EncodeError::InvalidChar { element: "NetBIOSName".into(), code: 1 }
    );
    let mut buf = "kept".to_owned();
    assert!(report.write_into(&mut buf).is_err());
    assert_eq!(buf, "kept", "a failed write leaves the buffer as it was");
}

#[test]
fn hostile_documents_get_typed_errors() {
    let bomb = "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><ClientRegistrationResponse ResponseType=\"&b;\"/>";
    assert_eq!(
        ClientRegistrationResponse::from_xml(bomb).unwrap_err().kind(),
        &DecodeErrorKind::Dtd
    );
    let deep = format!("<Msg>{}{}</Msg>", "<Hooks>".repeat(200), "</Hooks>".repeat(200));
    assert!(matches!(Msg::from_xml(&deep).unwrap_err().kind(), DecodeErrorKind::TooDeep { .. }));
    let entity = "<ClientRegistrationResponse ResponseType=\"&xxe;\"/>";
    assert_eq!(
        ClientRegistrationResponse::from_xml(entity).unwrap_err().kind(),
        &DecodeErrorKind::UnknownEntity("xxe".into())
    );
    assert_eq!(
        ClientRegistrationResponse::from_xml("").unwrap_err().kind(),
        &DecodeErrorKind::NoRoot
    );
}
