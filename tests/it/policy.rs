//! Policy over the wire: assignments (full, then delta by `ServerCookie`), plain body
//! downloads, secret bodies decrypted with the client's encryption key under each token
//! scheme, and the refusals of body downloads.

use chrono::{TimeDelta, Utc};
use cmmp_emulator::site::{PolicyScope, PolicySpec, policy_flags};
use cmmp_model::policy::{AssignmentReplyKind, AssignmentRequestKind, ReplyAssignments};
use cmmp_transport::Error;
use cmmp_transport::client::PolicyAuth;
use cmmp_transport::reply::{ReplyLimits, policy_needs_auth};
use cmmp_transport::sign::TokenScheme;

use crate::support::{Enrolled, Mp, auto_config, identity, identity_pair, policy_request, run};

const NAA_BODY: &str = "<Policy PolicyID=\"NAA1\" PolicyVersion=\"1.00\" PolicyType=\"Machine\" \
    PolicySource=\"SMS:P01\" SchemaVersion=\"1.00\"><PolicyRule PolicyRuleID=\"{R}\"><PolicyAction \
    PolicyActionType=\"WMI-XML\"><instance class=\"CCM_NetworkAccessAccount\"><property \
    name=\"NetworkAccessPassword\" type=\"8\" secret=\"1\"><value>s3cret</value></property>\
    </instance></PolicyAction></PolicyRule></Policy>";

fn naa_policy() -> PolicySpec {
    PolicySpec {
        assignment_id: "{NAA-ASSIGNMENT}".to_owned(),
        policy_id: "NAA1".to_owned(),
        version: "1.00".to_owned(),
        category: "NAAConfig".to_owned(),
        scope: PolicyScope::Machine,
        flags: policy_flags::SECRET,
        ready_after_secs: 0,
        body: NAA_BODY.to_owned(),
    }
}

/// An emulator with the stock policies and the secret NAA policy, and a client with separate
/// signing and encryption certificates (as the real client has).
async fn secret_site() -> (Mp, Enrolled) {
    let mut config = auto_config();
    config.policies.push(naa_policy());
    let mp = Mp::start(config).await;
    let c = mp.enrol_as(identity_pair("WS01"), "WS01", &[]).await;
    (mp, c)
}

async fn ask(mp: &Mp, c: &Enrolled, kind: AssignmentRequestKind, cookie: &str) -> ReplyAssignments {
    let request = policy_request(&c.smsid, &c.name, kind, cookie);
    mp.client().invoke(&request, vec![], Some(&c.signer())).await.unwrap().reply
}

fn location_of<'r>(reply: &'r ReplyAssignments, policy_id: &str) -> &'r str {
    let assignment = reply
        .policy_assignment
        .iter()
        .find(|a| a.policy.policy_id == policy_id)
        .unwrap_or_else(|| panic!("no assignment of {policy_id}"));
    &assignment.policy.policy_location.value
}

#[test]
fn assignments_come_full_then_as_an_empty_delta_for_the_current_cookie() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let full = ask(&mp, &c, AssignmentRequestKind::Always, "").await;
        assert_eq!(full.reply_type, AssignmentReplyKind::Full);
        assert_eq!(full.policy_source, "SMS:P01");
        assert_eq!(full.identification.machine.client_id, c.smsid);
        let categories: Vec<&str> =
            full.policy_assignment.iter().map(|a| a.policy.policy_category.as_str()).collect();
        assert_eq!(categories, ["ClientAgentConfig", "SoftwareUpdatesClientConfig"]);
        let spec = mp.emulator().site().config().policies[0].clone();
        let location = &full.policy_assignment[0].policy.policy_location;
        assert_eq!(location.value, format!("http://<mp>/SMS_MP/.sms_pol?{}.1_00", spec.policy_id));
        assert!(location.policy_hash.as_deref().unwrap().starts_with("SHA256:"));
        let cookie = full.server_cookie.clone();
        assert_eq!(cookie, mp.emulator().site().server_cookie().unwrap());

        // Field notes M16: each assignment is signed with the key of the certificate MPCERT
        // returns, over the UTF-16LE of the assignment as written (the emulator's choice).
        let cert = mp.client().mp_certificate().await.unwrap();
        let mp_identity = mp.emulator().identity();
        assert_eq!(cert.certificate.as_bytes(), mp_identity.signing_cert_der());
        let public = mp_identity.signing_cert().public_key().unwrap();
        let references = &full.signature.as_ref().expect("a Signature block").reference;
        assert_eq!(references.len(), 2);
        for (reference, assignment) in references.iter().zip(&full.policy_assignment) {
            assert_eq!(reference.policy_assignment_id, assignment.policy_assignment_id);
            let xml = cmmp_emulator::behaviour::assignment_xml(assignment).unwrap();
            let signed: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
            cmmp_transport::sign::verify_reversed(
                &public,
                cmmp_transport::sign::HashAlgorithm::Sha256,
                &signed,
                reference.signature_value.as_bytes(),
            )
            .unwrap();
        }

        let delta = ask(&mp, &c, AssignmentRequestKind::OnUpdate, &cookie).await;
        assert_eq!(delta.reply_type, AssignmentReplyKind::Delta);
        assert!(delta.policy_assignment.is_empty());
        assert!(delta.signature.is_none());
        let stale = ask(&mp, &c, AssignmentRequestKind::OnUpdate, "2001-01-01 00:00:00.000").await;
        assert_eq!(
            (stale.reply_type, stale.policy_assignment.len()),
            (AssignmentReplyKind::Full, 2)
        );

        let reasons: Vec<String> = mp
            .messages(&c.smsid)
            .await
            .iter()
            .take(3)
            .map(|m| crate::support::text(&m["reason"]))
            .collect();
        assert_eq!(reasons, ["Full 2 assignments", "Delta 0 assignments", "Full 2 assignments"]);
    });
}

#[test]
fn a_policy_change_moves_the_cookie_and_a_late_assignment_waits() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let cookie = ask(&mp, &c, AssignmentRequestKind::Always, "").await.server_cookie;
        let mut extra = naa_policy();
        extra.flags = 0;
        let mut late = naa_policy();
        late.assignment_id = "{LATE}".to_owned();
        late.policy_id = "LATE1".to_owned();
        late.ready_after_secs = 3600;
        {
            let mut site = mp.emulator().site();
            let later = Utc::now() + TimeDelta::seconds(1);
            site.set_policy(&extra, later).unwrap();
            site.set_policy(&late, later).unwrap();
        }
        let reply = ask(&mp, &c, AssignmentRequestKind::OnUpdate, &cookie).await;
        assert_eq!(reply.reply_type, AssignmentReplyKind::Full);
        assert_ne!(reply.server_cookie, cookie);
        let ids: Vec<&str> =
            reply.policy_assignment.iter().map(|a| a.policy.policy_id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.contains(&"NAA1") && !ids.contains(&"LATE1"), "{ids:?}");
    });
}

#[test]
fn a_plain_policy_body_downloads_without_signed_headers() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let reply = ask(&mp, &c, AssignmentRequestKind::Always, "").await;
        let client = mp.client();
        let specs = mp.emulator().site().config().policies.clone();
        for (assignment, spec) in reply.policy_assignment.iter().zip(specs) {
            assert!(!policy_needs_auth(assignment.policy.policy_flags));
            let download = client
                .download_policy(&assignment.policy.policy_location.value, None)
                .await
                .unwrap();
            assert_eq!(download.text.expose(), spec.body);
            assert!(download.encryption.is_none() && !download.compressed);
            let policy = download.policy(&ReplyLimits::default()).unwrap();
            assert_eq!(policy.policy_id, spec.policy_id);
        }
        let log = crate::support::array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(
            (&log[0]["endpoint"], &log[0]["outcome"]),
            (&".sms_pol".into(), &"answered".into())
        );
    });
}

#[test]
fn a_secret_policy_body_is_decrypted_with_the_clients_encryption_key() {
    run(async {
        let (mp, c) = secret_site().await;
        let reply = ask(&mp, &c, AssignmentRequestKind::Always, "").await;
        let naa = reply.policy_assignment.iter().find(|a| a.policy.policy_id == "NAA1").unwrap();
        assert_eq!(naa.policy.policy_flags, Some(policy_flags::SECRET));
        assert!(policy_needs_auth(naa.policy.policy_flags));
        let location = location_of(&reply, "NAA1");
        assert_eq!(location, "http://<mp>/SMS_MP/.sms_pol?NAA1.1_00");
        let client = mp.client();
        // M8: without signed headers, the HTML ERROR page.
        let e = client.download_policy(location, None).await.unwrap_err();
        assert!(matches!(&e, Error::HtmlPage { title } if title == "ERROR"), "{e}");
        // Every token scheme of §3.7 authenticates the download.
        for scheme in [
            TokenScheme::ClientToken,
            TokenScheme::CcmClientHeaders,
            TokenScheme::BracedClientToken,
        ] {
            let auth = PolicyAuth { identity: &c.identity, client_id: c.smsid, scheme };
            let download = client.download_policy(location, Some(auth)).await.unwrap();
            assert_eq!(download.text.expose(), NAA_BODY, "{scheme:?}");
            assert!(download.encryption.is_some(), "{scheme:?}: came as CMS EnvelopedData");
            assert!(!format!("{download:?}").contains("s3cret"), "never in Debug (HS-64)");
        }
        let messages = mp.messages(&c.smsid).await;
        assert!(messages.iter().take(3).all(|m| m["endpoint"] == ".sms_pol"
            && m["outcome"] == "answered"
            && m["reason"] == "NAA1"));
    });
}

#[test]
fn a_secret_policy_is_refused_to_headers_signed_by_another_key() {
    run(async {
        let (mp, c) = secret_site().await;
        let thief = identity("THIEF");
        let auth =
            PolicyAuth { identity: &thief, client_id: c.smsid, scheme: TokenScheme::ClientToken };
        let e = mp.client().download_policy("/SMS_MP/.sms_pol?NAA1.1_00", Some(auth)).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        let log = crate::support::array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(
            (&log[0]["outcome"], &log[0]["reason"]),
            (&"refused".into(), &"bad-signature".into())
        );
    });
}

#[test]
fn an_unknown_policy_or_version_is_not_found() {
    run(async {
        let mp = Mp::auto().await;
        let client = mp.client();
        let e = client.download_policy("http://<mp>/SMS_MP/.sms_pol?NOPE.1_00", None).await;
        assert!(
            matches!(&e, Err(Error::Http { status: 404, title: Some(t) }) if t == "ERROR"),
            "{e:?}"
        );
        let id = mp.emulator().site().config().policies[0].policy_id.clone();
        let e = client.download_policy(&format!("/SMS_MP/.sms_pol?{id}.9_00"), None).await;
        assert!(matches!(e, Err(Error::Http { status: 404, .. })), "{e:?}");
        let log = crate::support::array(mp.get("/cmmp-admin/messages").await);
        assert!(log.iter().all(|m| m["reason"] == "unknown-policy"));
    });
}
