//! Property tests: arbitrary typed messages round-trip through the writer and the decoder,
//! and no input makes a decoder panic.

use cmmp_model::kinds::Document;
use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
use cmmp_model::state::{Report as StateReport, StateDetails, StateMessage, Topic, UserParameters};
use cmmp_model::status::{NamedText, Status, StatusProperties, StatusQualifiers};
use cmmp_model::value::{IsoTime, SmsId, SmsTime};
use cmmp_model::xml::AnyElement;
use cmmp_model::{MessageExt, hinv};
use proptest::prelude::*;

/// Any string XML 1.0 can carry: everything but C0 controls other than tab, LF and CR, and
/// U+FFFE/U+FFFF. Leading, trailing and repeated whitespace included.
fn xml_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\u{0}-\u{8}\u{B}\u{C}\u{E}-\u{1F}\u{FFFE}\u{FFFF}]{0,40}")
        .unwrap()
}

fn xml_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z_][A-Za-z0-9_.-]{0,20}").unwrap()
}

fn iso_time() -> impl Strategy<Value = IsoTime> {
    (0i64..4_102_444_800)
        .prop_map(|s| IsoTime::from_datetime(chrono::DateTime::from_timestamp(s, 0).unwrap()))
}

fn sms_time() -> impl Strategy<Value = SmsTime> {
    (0i64..4_102_444_800, 0u32..1_000_000).prop_map(|(s, us)| {
        SmsTime::from_utc(chrono::DateTime::from_timestamp(s, us * 1000).unwrap()).unwrap()
    })
}

fn sample(schema: &str, name: &str) -> String {
    let path = format!("{}/tests/documents/{schema}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

prop_compose! {
    fn registration_response()(
        status in any::<i32>(),
        approval in proptest::option::of(any::<i32>()),
        id in proptest::option::of(any::<[u8; 16]>()),
        time in iso_time(),
        confirmation in any::<bool>(),
    ) -> ClientRegistrationResponse {
        let kind = if confirmation { RegistrationKind::Confirmation } else { RegistrationKind::Registration };
        let mut r = ClientRegistrationResponse::new(kind, time, status);
        r.smsid = id.map(SmsId::from_bytes);
        r.approval_status = approval;
        r
    }
}

prop_compose! {
    fn state_message()(
        time in sms_time(),
        serial in any::<u32>(),
        topic in xml_text(),
        user in proptest::option::of(xml_text()),
        ids in (any::<i32>(), any::<i32>(), any::<i32>()),
        details in proptest::option::of(xml_text()),
        params in proptest::collection::vec(xml_text(), 0..5),
    ) -> StateMessage {
        let mut t = Topic::new(topic, ids.0, ids.1);
        t.user = user;
        let mut up = UserParameters::new(0, i32::try_from(params.len()).unwrap());
        up.param = params;
        let mut m = StateMessage::new(time, serial, t, cmmp_model::state::State::new(ids.2, 0), up);
        m.state_details = details.map(|d| StateDetails::new(2, d));
        m
    }
}

prop_compose! {
    fn wmi_instance()(
        class in xml_name(),
        props in proptest::collection::vec((xml_name(), xml_text()), 0..8),
    ) -> AnyElement {
        let mut e = AnyElement::new(class);
        for (n, v) in props {
            e = e.with_property(n, v);
        }
        e
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn registration_responses_round_trip(msg in registration_response()) {
        let xml = msg.to_xml().unwrap();
        prop_assert_eq!(ClientRegistrationResponse::from_xml(&xml).unwrap(), msg);
    }

    #[test]
    fn state_reports_round_trip(messages in proptest::collection::vec(state_message(), 0..6)) {
        let mut report = StateReport::from_xml(&sample("state", "app-and-heartbeat.xml")).unwrap();
        report.report_body.state_message = messages;
        let xml = report.to_xml().unwrap();
        prop_assert_eq!(StateReport::from_xml(&xml).unwrap(), report);
    }

    #[test]
    fn status_messages_round_trip(
        ty in xml_text(),
        props in proptest::collection::vec((xml_text(), xml_text()), 0..6),
        page in any::<i32>(),
    ) {
        let properties = StatusProperties {
            property: props.iter().map(|(n, v)| NamedText::new(n.clone(), v.clone())).collect(),
        };
        let status = Status::new("1.00".to_owned(), page, 1033, ty, properties, StatusQualifiers::default());
        let xml = status.to_xml().unwrap();
        prop_assert_eq!(Status::from_xml(&xml).unwrap(), status);
    }

    #[test]
    fn hardware_inventory_instances_round_trip(classes in proptest::collection::vec(wmi_instance(), 0..6)) {
        let mut report = hinv::Report::from_xml(&sample("hinv", "full.xml")).unwrap();
        let template = report.report_body.instance[0].clone();
        report.report_body.instance = classes
            .into_iter()
            .map(|class| hinv::Instance { class: class.name.to_string(), parent_class: class.name.to_string(), any: class, ..template.clone() })
            .collect();
        let xml = report.to_xml().unwrap();
        prop_assert_eq!(hinv::Report::from_xml(&xml).unwrap(), report);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in "\\PC{0,200}", which in 0usize..Document::ROOTS.len()) {
        let _ = Document::decode(Document::ROOTS[which].0, &text);
    }

    #[test]
    fn decoding_damaged_samples_never_panics(cut in 0usize..2000, len in 0usize..40, which in 0usize..4) {
        let (schema, name) = [("msg", "registration.xml"), ("ddr", "full.xml"), ("policy", "reply-two-assignments.xml"), ("location", "content-reply.xml")][which];
        let text = sample(schema, name);
        let mut bytes = text.into_bytes();
        let start = cut.min(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.drain(start..end);
        if let Ok(damaged) = String::from_utf8(bytes) {
            let _ = Document::decode(schema, &damaged);
        }
    }
}
