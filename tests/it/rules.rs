//! The site's rules as a client meets them over the wire: approval modes, policy only when
//! approved, blocking on every endpoint, duplicate hardware IDs (automatic and manual
//! resolution), inventory resync, state message and redelivery deduplication, forged
//! signatures, proxy-signed registration, and injected faults. A refused Invoke is an empty
//! 200 ([`Error::EmptyReply`]); a refused Post is acknowledged like any other, so its fate is
//! read back from the message log.

use std::time::{Duration, Instant};

use cmmp_emulator::SiteConfig;
use cmmp_emulator::site::{ApprovalPolicy, ConflictResolution, SiteMode};
use cmmp_model::kinds::ClientRegistration;
use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
use cmmp_model::value::SmsId;
use cmmp_transport::Error;
use cmmp_transport::client::PolicyAuth;
use cmmp_transport::payload::Attachment;
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::register::{Backoff, RegistrationFlow, Step};
use cmmp_transport::reply::{self, ReplyLimits, SyncContext};
use cmmp_transport::sign::TokenScheme;
use cmmp_transport::wire::{self, Fresh, Vdir};
use serde_json::json;

use crate::support::{
    Enrolled, Mp, Reg, array, auto_config, ddr, doc, file_collection, hinv, http, identity, idmif,
    metering, register, request_policy, run, sinv, state, state_text, status, text,
};

/// A `Negotiate` token that is not NTLM (the start of a Kerberos SPNEGO token): a site without
/// `[[windows_accounts]]` accepts any `Authorization` header but an NTLM handshake (M9).
const NEGOTIATE: &str = "Negotiate YIIHGwYGKwYBBQUCoIIHDzCCBwugMDAuBgkqhkiC9xIBAgI=";

/// Sends a registration to `/ccm_system_windowsauth/request`, with an `Authorization` header
/// when given (the client has no NTLM: the header is added to the built request).
async fn register_windowsauth(
    mp: &Mp,
    request: &ClientRegistration,
    authorization: Option<&str>,
) -> Result<ClientRegistrationResponse, Error> {
    let mut settings = mp.settings("WS01");
    settings.vdir = Vdir::WindowsAuth;
    let mut built = wire::build_request(&settings, request, vec![], None, Fresh::now()?)?;
    assert_eq!(built.path, "/ccm_system_windowsauth/request");
    if let Some(value) = authorization {
        built.headers.insert(2, ("Authorization", value.to_owned()));
    }
    let http = mp.client().send(&built).await?;
    let ctx = SyncContext {
        host_asked: &settings.mp,
        reply_compression: settings.reply_compression,
        verifier: None,
        limits: ReplyLimits::default(),
    };
    reply::decode_sync::<ClientRegistrationResponse>(&http, &ctx).map(|r| r.reply)
}

/// A site information request built by hand, naming `client` in `SourceID` when given (the
/// typed location kinds are unsigned and so name no client).
fn site_information(client: Option<SmsId>) -> RawMessage {
    let mut message = RawMessage::new();
    message.set_target_endpoint("MP_LocationManager").expect("endpoint");
    message.set_body_from_string(&doc("location/siteinfo-request.xml"));
    if let Some(smsid) = client {
        message.set_client_id(smsid);
    }
    message.set_security_flags(SecurityFlags::MIXED_MODE | SecurityFlags::COMPRESS_MESSAGE);
    message
}

/// The refusal reasons in a client's log, oldest first.
async fn refusals(mp: &Mp, smsid: &SmsId) -> Vec<String> {
    let mut out: Vec<String> = mp
        .messages(smsid)
        .await
        .iter()
        .filter(|m| m["outcome"] == "refused")
        .map(|m| text(&m["reason"]))
        .collect();
    out.reverse();
    out
}

// ---- approval --------------------------------------------------------------------------------

#[test]
fn trusted_approval_approves_windowsauth_registrations_only() {
    run(async {
        let mp = Mp::stock().await;
        let anonymous = register(&mp.client(), Reg::new(&identity("ANON"), "ANON").build()).await;
        assert_eq!(anonymous.unwrap().approval_status, Some(-1));
        let domain = Reg::new(&identity("DOM"), "DOM").build();
        // Windows authentication without credentials: 401 before the site sees anything.
        let e = register_windowsauth(&mp, &domain, None).await.unwrap_err();
        assert!(
            matches!(&e, Error::Http { status: 401, title: Some(t) } if t == "401 - Unauthorized"),
            "{e}"
        );
        // The typed client on that vdir without Windows credentials.
        let mut settings = mp.settings("DOM");
        settings.vdir = Vdir::WindowsAuth;
        let plain = cmmp_transport::client::Client::new(mp.config_for(settings)).unwrap();
        assert!(matches!(
            register(&plain, domain.clone()).await,
            Err(Error::Http { status: 401, .. })
        ));
        assert_eq!(array(mp.get("/cmmp-admin/clients").await).len(), 1);
        // With an Authorization header: trusted, approved.
        let reply = register_windowsauth(&mp, &domain, Some(NEGOTIATE)).await.unwrap();
        assert_eq!((reply.status, reply.approval_status), (0, Some(1)));
        assert_eq!(mp.record(&reply.smsid.unwrap()).await["approved"], true);
    });
}

#[test]
fn manual_approval_waits_for_an_admin_even_through_windowsauth() {
    run(async {
        let mp =
            Mp::start(SiteConfig { approval: ApprovalPolicy::Manual, ..SiteConfig::default() })
                .await;
        let id = identity("WS01");
        let reply =
            register_windowsauth(&mp, &Reg::new(&id, "WS01").build(), Some(NEGOTIATE)).await;
        let reply = reply.unwrap();
        assert_eq!((reply.status, reply.approval_status), (0, Some(-1)));
        let smsid = reply.smsid.unwrap();
        mp.approve(&smsid).await;
        let again = register(&mp.client(), Reg::new(&id, "WS01").build()).await.unwrap();
        assert_eq!(again.approval_status, Some(1), "approval shows on the next registration");
        let json = mp.post(&format!("/cmmp-admin/clients/{smsid}/unapprove"), b"").await;
        assert_eq!(json["unapproved"], smsid.to_string());
        let again = register(&mp.client(), Reg::new(&id, "WS01").build()).await.unwrap();
        assert_eq!(again.approval_status, Some(-1));
    });
}

#[test]
fn auto_approval_approves_everyone_and_native_mode_is_not_applicable() {
    run(async {
        let mp = Mp::auto().await;
        let reply = register(&mp.client(), Reg::new(&identity("WS01"), "WS01").build()).await;
        assert_eq!(reply.unwrap().approval_status, Some(1));
        let native = Mp::start(SiteConfig {
            mode: SiteMode::Native,
            approval: ApprovalPolicy::Manual,
            ..SiteConfig::default()
        })
        .await;
        let reply = register(&native.client(), Reg::new(&identity("WS01"), "WS01").build()).await;
        let reply = reply.unwrap();
        assert_eq!((reply.status, reply.approval_status), (0, Some(2)));
    });
}

#[test]
fn policy_is_withheld_until_an_admin_approves() {
    run(async {
        let mut config = SiteConfig { approval: ApprovalPolicy::Manual, ..SiteConfig::default() };
        config.policies[0].flags = cmmp_emulator::site::policy_flags::SECRET;
        let mp = Mp::start(config).await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let e = request_policy(&client, &c).await.unwrap_err();
        assert!(matches!(e, Error::EmptyReply), "{e}");
        let location = format!(
            "/SMS_MP/.sms_pol?{}.1_00",
            mp.emulator().site().config().policies[0].policy_id
        );
        let auth = PolicyAuth {
            identity: &c.identity,
            client_id: c.smsid,
            scheme: TokenScheme::ClientToken,
        };
        let e = client.download_policy(&location, Some(auth)).await.unwrap_err();
        assert!(matches!(e, Error::EmptyReply), "{e}");
        // Inventory waits for approval too; discovery and state messages do not.
        client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await.unwrap();
        client.post(&state(&c.smsid, &[1]), vec![], Some(&c.signer())).await.unwrap();
        assert_eq!(refusals(&mp, &c.smsid).await, ["not-approved"; 3]);
        assert_eq!(mp.last(&c.smsid).await.1, "stored");

        mp.approve(&c.smsid).await;
        let reply = request_policy(&client, &c).await.unwrap();
        assert_eq!(reply.policy_assignment.len(), 2);
        let secret = client.download_policy(&location, Some(auth)).await.unwrap();
        assert!(secret.encryption.is_some());
        assert!(secret.text.expose().contains("CCM_ClientAgentConfig"));
    });
}

// ---- blocking --------------------------------------------------------------------------------

#[test]
fn a_blocked_client_is_refused_on_every_endpoint() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let signer = c.signer();
        mp.block(&c.smsid).await;
        assert_eq!(mp.record(&c.smsid).await["blocked"], true);

        // Invokes: an empty 200, for policy, policy bodies, and location requests that name it.
        let e = request_policy(&client, &c).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        let auth = PolicyAuth {
            identity: &c.identity,
            client_id: c.smsid,
            scheme: TokenScheme::ClientToken,
        };
        let policy_id = mp.emulator().site().config().policies[0].policy_id.clone();
        let plain = format!("/SMS_MP/.sms_pol?{policy_id}.1_00");
        let e = client.download_policy(&plain, Some(auth)).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        let e = client.invoke_raw(&site_information(Some(c.smsid)), None).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        // Registration: Status 3, rejected.
        let reply = register(&client, Reg::new(&c.identity, "WS01").build()).await.unwrap();
        assert_eq!((reply.status, reply.smsid), (3, None));

        // Posts: acknowledged, and refused.
        let files = || vec![Attachment::new("1", b"x".to_vec())];
        let uuid = "4C4C4544-0000-0000-0000-000000000001";
        let s = Some(&signer);
        client.post(&ddr(&c.smsid, uuid), vec![], s).await.unwrap();
        client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], s).await.unwrap();
        client.post(&sinv(&c.smsid), vec![], s).await.unwrap();
        client.post(&file_collection(&c.smsid), files(), s).await.unwrap();
        client.post(&idmif(&c.smsid), files(), s).await.unwrap();
        client.post(&state(&c.smsid, &[1]), vec![], s).await.unwrap();
        client.post(&metering(&c.smsid), vec![], s).await.unwrap();
        client.post(&status(&c.smsid), vec![], s).await.unwrap();
        // The fallback status point too.
        let fsp = state_text(&c.smsid, &[2]);
        let (code, _) =
            http(mp.emulator().addr(), "POST", "/SMS_FSP/.sms_fsp", fsp.as_bytes()).await;
        assert_eq!(code, 400);

        let refused = refusals(&mp, &c.smsid).await;
        assert_eq!(refused, ["blocked"; 12], "3 Invokes, 8 Posts, 1 fallback status message");
        let messages = mp.messages(&c.smsid).await;
        let kinds: Vec<String> = messages.iter().take(9).map(|m| text(&m["kind"])).collect();
        assert_eq!(
            kinds,
            [
                "StateMessages",
                "StatusMessage",
                "SoftwareMetering",
                "StateMessages",
                "IdmifCollection",
                "FileCollection",
                "SinvReport",
                "HinvReport",
                "DdrReport"
            ]
        );
        let summary = mp.get("/cmmp-admin/summary").await;
        for table in [
            "discovery",
            "inventory_instances",
            "state_messages",
            "status_messages",
            "collected_files",
            "metering",
        ] {
            assert_eq!(summary[table], 0, "{table}");
        }
        // Without a SourceID a location request is anonymous, and answered (M1).
        let answered = client.invoke_raw(&site_information(None), None).await.unwrap();
        assert!(answered.body_xml.starts_with("<SiteInfoReply"), "{}", answered.body_xml);
        let json = mp.post(&format!("/cmmp-admin/clients/{}/unblock", c.smsid), b"").await;
        assert_eq!(json["unblocked"], c.smsid.to_string());
        let reply = request_policy(&client, &c).await.unwrap();
        assert_eq!(reply.policy_assignment.len(), 2);
    });
}

#[test]
fn a_blocked_hardware_id_cannot_rejoin_with_a_new_certificate() {
    run(async {
        let mp = Mp::auto().await;
        let hw = [("HardwareID1", "2:3B6E0A1F")];
        let first = mp.enrol_as(identity("BLK-1"), "WS01", &hw).await;
        mp.block(&first.smsid).await;
        let request = Reg { extra: &hw, ..Reg::new(&identity("BLK-2"), "WS01") }.build();
        assert_eq!(register(&mp.client(), request).await.unwrap().status, 3);
        let other = [("HardwareID1", "2:FFFF")];
        let request = Reg { extra: &other, ..Reg::new(&identity("BLK-3"), "WS01") }.build();
        assert_eq!(register(&mp.client(), request).await.unwrap().status, 0, "M3");
    });
}

// ---- duplicate hardware IDs ------------------------------------------------------------------

#[test]
fn a_duplicate_hardware_id_gets_a_new_record_with_automatic_resolution() {
    run(async {
        let mp = Mp::auto().await;
        let hw = [("HardwareID1", "2:3B6E0A1F")];
        let old = mp.enrol_as(identity("AUTO-OLD"), "WS01", &hw).await;
        let new = mp.enrol_as(identity("AUTO-NEW"), "WS01", &hw).await;
        assert_ne!(old.smsid, new.smsid);
        assert_eq!(mp.record(&old.smsid).await["obsolete"], true);
        let record = mp.record(&new.smsid).await;
        assert_eq!(
            (&record["obsolete"], &record["hardware_id"]),
            (&false.into(), &"2:3B6E0A1F".into())
        );
        assert!(array(mp.get("/cmmp-admin/conflicts").await).is_empty());
    });
}

fn manual_conflicts() -> SiteConfig {
    SiteConfig { conflict_resolution: ConflictResolution::Manual, ..crate::support::auto_config() }
}

#[test]
fn a_duplicate_hardware_id_is_parked_until_an_admin_merges_it() {
    run(async {
        let mp = Mp::start(manual_conflicts()).await;
        let hw = [("HardwareID1", "2:3B6E0A1F")];
        let old = mp.enrol_as(identity("WS01"), "WS01", &hw).await;
        mp.client()
            .post(&hinv(&old.smsid, "Full", "1.0"), vec![], Some(&old.signer()))
            .await
            .unwrap();
        // Reinstalled with a new certificate: parked.
        let reinstalled = identity("WS01-REINSTALLED");
        let request = Reg { extra: &hw, ..Reg::new(&reinstalled, "WS01") }.build();
        let parked = register(&mp.client(), request).await.unwrap();
        assert_eq!((parked.status, parked.approval_status), (1, Some(0)));
        let parked_id = parked.smsid.unwrap();
        let conflicts = array(mp.get("/cmmp-admin/conflicts").await);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            (&conflicts[0]["hardware_id"], &conflicts[0]["parked_smsid"]),
            (&"2:3B6E0A1F".into(), &parked_id.to_string().into())
        );
        assert!(conflicts[0]["resolved"].is_null());
        let parked_client =
            Enrolled { name: "WS01".to_owned(), identity: reinstalled.clone(), smsid: parked_id };
        assert!(matches!(
            request_policy(&mp.client(), &parked_client).await,
            Err(Error::EmptyReply)
        ));
        assert_eq!(refusals(&mp, &parked_id).await, ["conflict-parked"]);
        // Confirmations stay pending until an administrator decides.
        let confirm = || Reg::new(&reinstalled, "WS01").confirm(parked_id).build();
        assert_eq!(register(&mp.client(), confirm()).await.unwrap().status, 1);

        let id = conflicts[0]["id"].as_i64().unwrap();
        let json = mp.post(&format!("/cmmp-admin/conflicts/{id}/resolve?action=merge"), b"").await;
        assert_eq!(json["resolved"], id);
        let done = register(&mp.client(), confirm()).await.unwrap();
        assert_eq!(
            (done.status, done.smsid, done.response_type),
            (0, Some(parked_id), RegistrationKind::Confirmation)
        );
        // One record: the old history under the new certificate and SMSID.
        let clients = array(mp.get("/cmmp-admin/clients").await);
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0]["smsid"], parked_id.to_string());
        assert_eq!(mp.inventory(&parked_id).await.len(), 6);
        assert_eq!(
            request_policy(&mp.client(), &parked_client).await.unwrap().policy_assignment.len(),
            2
        );
        let resolved = array(mp.get("/cmmp-admin/conflicts").await);
        assert_eq!(resolved[0]["resolved"][1], "merge");
        let (code, json) =
            mp.admin("POST", &format!("/cmmp-admin/conflicts/{id}/resolve?action=new"), b"").await;
        assert_eq!(code, 400);
        assert!(text(&json["error"]).contains("already resolved"), "{json}");
    });
}

#[test]
fn a_parked_record_becomes_a_new_record_or_is_blocked() {
    run(async {
        let mp = Mp::start(manual_conflicts()).await;
        let client = mp.client();
        let first = [("HardwareID1", "2:AA")];
        let old = mp.enrol_as(identity("A"), "A", &first).await;
        let b = identity("B");
        let parked =
            register(&client, Reg { extra: &first, ..Reg::new(&b, "B") }.build()).await.unwrap();
        let parked = parked.smsid.unwrap();
        let id = array(mp.get("/cmmp-admin/conflicts").await)[0]["id"].as_i64().unwrap();
        mp.post(&format!("/cmmp-admin/conflicts/{id}/resolve?action=new"), b"").await;
        assert_eq!(
            register(&client, Reg::new(&b, "B").confirm(parked).build()).await.unwrap().status,
            0
        );
        assert_eq!(mp.record(&old.smsid).await["obsolete"], true);

        let second = [("HardwareID1", "2:BB")];
        mp.enrol_as(identity("D"), "D", &second).await;
        let c = identity("C");
        let parked =
            register(&client, Reg { extra: &second, ..Reg::new(&c, "C") }.build()).await.unwrap();
        let parked = parked.smsid.unwrap();
        let open: Vec<serde_json::Value> = array(mp.get("/cmmp-admin/conflicts").await)
            .into_iter()
            .filter(|k| k["resolved"].is_null())
            .collect();
        let id = open[0]["id"].as_i64().unwrap();
        let (code, _) = mp
            .admin("POST", &format!("/cmmp-admin/conflicts/{id}/resolve?action=shrug"), b"")
            .await;
        assert_eq!(code, 400);
        mp.post(&format!("/cmmp-admin/conflicts/{id}/resolve?action=block"), b"").await;
        assert_eq!(
            register(&client, Reg::new(&c, "C").confirm(parked).build()).await.unwrap().status,
            3
        );
        assert_eq!(mp.record(&parked).await["blocked"], true);
    });
}

// ---- inventory sequencing and deduplication --------------------------------------------------

#[test]
fn an_out_of_sequence_delta_requests_a_resync_until_a_full_report() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let send = |kind: &'static str, version: &'static str| {
            let report = hinv(&c.smsid, kind, version);
            let client = client.clone();
            let signer = c.signer();
            async move { client.post(&report, vec![], Some(&signer)).await.unwrap() }
        };
        let version =
            |shown: serde_json::Value| array(shown["inventory_versions"].clone())[0].clone();
        let path = format!("/cmmp-admin/clients/{}", c.smsid);
        send("Full", "1.0").await;
        send("Delta", "1.1").await;
        // 1.2 is missing: acknowledged (a Post), refused, resync requested.
        send("Delta", "1.3").await;
        let (kind, outcome, reason) = mp.last(&c.smsid).await;
        assert_eq!(
            (kind.as_str(), outcome.as_str(), reason.as_deref()),
            ("HinvReport", "refused", Some("resync-requested"))
        );
        let v = version(mp.get(&path).await);
        assert_eq!(v["version"], json!([1, 1]));
        assert!(!v["resync_requested"].is_null());
        // Until a full report arrives, even the missing delta is refused.
        send("Delta", "1.2").await;
        assert_eq!(mp.last(&c.smsid).await.2.as_deref(), Some("resync-requested"));
        send("Full", "2.0").await;
        let v = version(mp.get(&path).await);
        assert_eq!((v["version"].clone(), v["resync_requested"].is_null()), (json!([2, 0]), true));
        send("Delta", "2.1").await;
        assert_eq!(mp.last(&c.smsid).await.1, "stored");
        assert_eq!(refusals(&mp, &c.smsid).await, ["resync-requested"; 2]);
        assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
    });
}

#[test]
fn state_messages_are_deduplicated_by_serial_number() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        client.post(&state(&c.smsid, &[7, 8]), vec![], Some(&c.signer())).await.unwrap();
        client.post(&state(&c.smsid, &[8, 9]), vec![], Some(&c.signer())).await.unwrap();
        let stored =
            array(mp.get(&format!("/cmmp-admin/clients/{}/state-messages", c.smsid)).await);
        let serials: Vec<u64> = stored.iter().map(|s| s["serial"].as_u64().unwrap()).collect();
        assert_eq!(serials, [7, 8, 9]);
        // Both deliveries were new messages (new IDs), stored.
        let outcomes: Vec<String> =
            mp.messages(&c.smsid).await.iter().take(2).map(|m| text(&m["outcome"])).collect();
        assert_eq!(outcomes, ["stored", "stored"]);
        assert_eq!(mp.get("/cmmp-admin/summary").await["state_messages"], 3);
    });
}

#[test]
fn a_post_redelivered_with_the_same_message_id_is_stored_once() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let settings = mp.settings("WS01");
        let fresh = Fresh::now().unwrap();
        let client = mp.client();
        for _ in 0..2 {
            let request = wire::build_request(
                &settings,
                &hinv(&c.smsid, "Full", "1.0"),
                vec![],
                Some(&c.signer()),
                fresh,
            )
            .unwrap();
            let answer = client.send(&request).await.unwrap();
            reply::decode_post(&answer, &ReplyLimits::default()).unwrap();
        }
        assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
        let messages = mp.messages(&c.smsid).await;
        let outcomes: Vec<String> = messages.iter().take(2).map(|m| text(&m["outcome"])).collect();
        assert_eq!(outcomes, ["duplicate", "stored"]);
        assert_eq!(messages[0]["message_id"], fresh.id.to_string());
        assert_eq!(messages[1]["message_id"], fresh.id.to_string());
        let summary = mp.get("/cmmp-admin/summary").await;
        let hinv_rows: Vec<&serde_json::Value> = summary["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row[0] == "HinvReport")
            .collect();
        assert_eq!(hinv_rows.len(), 2, "{summary}");
    });
}

/// M13: a message larger than the site's `max_message_bytes` is refused and logged, nothing
/// stored; a Post is still acknowledged (an MP queues it and drops it later).
#[test]
fn a_message_over_the_size_limit_is_refused_and_logged() {
    run(async {
        let mut config = auto_config();
        config.switches.max_message_bytes = 64 * 1024;
        let mp = Mp::start(config).await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let mut big = hinv(&c.smsid, "Full", "1.0");
        let first = &mut big.0.report_body.instance[0].any;
        *first = first.clone().with_property("Padding", "x".repeat(100 * 1024));
        client.post(&big, vec![], Some(&c.signer())).await.unwrap();
        assert!(mp.inventory(&c.smsid).await.is_empty());
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(text(&messages[0]["outcome"]), "refused");
        assert!(text(&messages[0]["reason"]).contains("too-large"), "{}", messages[0]);
    });
}

// ---- signatures and proxies ------------------------------------------------------------------

#[test]
fn a_forged_signature_is_refused() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let thief = identity("THIEF");
        let forged = c.forged_signer(thief.signing_key());
        let request = crate::support::policy_request(
            &c.smsid,
            "WS01",
            cmmp_model::policy::AssignmentRequestKind::Always,
            "",
        );
        let e = client.invoke(&request, vec![], Some(&forged)).await.unwrap_err();
        assert!(matches!(e, Error::EmptyReply), "{e}");
        client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&forged)).await.unwrap();
        client.post(&state(&c.smsid, &[1]), vec![], Some(&forged)).await.unwrap();
        assert_eq!(refusals(&mp, &c.smsid).await, ["bad-signature"; 3]);
        assert!(mp.inventory(&c.smsid).await.is_empty());

        // Registrations: Data changed after signing, or signed by another key.
        let other = Mp::auto().await;
        let id = identity("WS02");
        let mut tampered = Reg::new(&id, "WS02").build();
        tampered.0.data.discovery_properties.property[0].value = "EVIL".to_owned();
        assert!(matches!(register(&other.client(), tampered).await, Err(Error::EmptyReply)));
        let mut resigned = Reg::new(&id, "WS02").build();
        resigned.0.signature = Reg::new(&thief, "WS02").build().0.signature;
        assert!(matches!(register(&other.client(), resigned).await, Err(Error::EmptyReply)));
        assert!(array(other.get("/cmmp-admin/clients").await).is_empty());
        let log = array(other.get("/cmmp-admin/messages").await);
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|m| m["outcome"] == "refused" && m["reason"] == "bad-signature"));
    });
}

#[test]
fn proxy_signed_registration_needs_a_registered_proxy() {
    run(async {
        let mp = Mp::auto().await;
        let client = mp.client();
        let proxy = identity("PROXY01");
        let stranger: SmsId = "GUID:0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".parse().unwrap();
        // Signature/@SMSID names nobody.
        let e = register(&client, Reg::proxied(&proxy, stranger, "MAC-07").build()).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        // Imported but not registered: not yet a proxy.
        let proxy_id = mp.import_proxy(&proxy).await;
        let e = register(&client, Reg::proxied(&proxy, proxy_id, "MAC-07").build()).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
        let log = array(mp.get("/cmmp-admin/messages").await);
        assert!(log.iter().all(|m| m["reason"] == "unknown-proxy"), "{log:?}");
        let registered = mp.enrol_proxy("PROXY01").await;
        assert_eq!(registered.smsid, proxy_id);
        // Signed by another key under the proxy's SMSID.
        let impostor = identity("IMPOSTOR");
        let forged = Reg {
            signer: cmmp_transport::register::RegistrationSigner::Proxy {
                key: impostor.signing_key(),
                proxy_id,
            },
            ..Reg::proxied(&proxy, proxy_id, "MAC-07")
        };
        assert!(matches!(register(&client, forged.build()).await, Err(Error::EmptyReply)));
        assert_eq!(array(mp.get("/cmmp-admin/messages").await)[0]["reason"], "bad-signature");
        // The real thing.
        let clients = mp.enrol_proxy_clients(&registered, &["MAC-07"]).await;
        client
            .post(&state(&clients[0].smsid, &[1]), vec![], Some(&clients[0].signer()))
            .await
            .unwrap();
        assert_eq!(mp.last(&clients[0].smsid).await.1, "stored");
        // A blocked proxy no longer speaks for its clients.
        mp.block(&proxy_id).await;
        client
            .post(&state(&clients[0].smsid, &[2]), vec![], Some(&clients[0].signer()))
            .await
            .unwrap();
        assert_eq!(mp.last(&clients[0].smsid).await.2.as_deref(), Some("blocked"));
        let e = register(&client, Reg::proxied(&proxy, proxy_id, "MAC-08").build()).await;
        assert!(matches!(e, Err(Error::EmptyReply)), "{e:?}");
    });
}

#[test]
fn a_message_from_an_unknown_client_is_refused_and_logged() {
    run(async {
        let mp = Mp::auto().await;
        let ghost = Enrolled {
            name: "GHOST".to_owned(),
            identity: identity("GHOST"),
            smsid: "GUID:99999999-2222-4333-8444-555555555555".parse().unwrap(),
        };
        let client = mp.client();
        client.post(&state(&ghost.smsid, &[1]), vec![], Some(&ghost.signer())).await.unwrap();
        assert!(matches!(request_policy(&client, &ghost).await, Err(Error::EmptyReply)));
        let log = array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|m| m["reason"] == "unknown-client" && m["client"].is_null()));
        assert_eq!(log[0]["smsid"], ghost.smsid.to_string());
        let (code, _) = mp.admin("GET", &format!("/cmmp-admin/clients/{}", ghost.smsid), b"").await;
        assert_eq!(code, 404);
    });
}

// ---- faults ----------------------------------------------------------------------------------

/// Faults injected through the admin API, one kind per test.
mod faults {
    use super::{
        Backoff, Duration, Error, Instant, Mp, Reg, RegistrationFlow, RegistrationKind, Step,
        array, auto_config, hinv, identity, json, register, request_policy, run, text,
    };

    #[test]
    fn an_empty_reply_fault_is_an_empty_reply_once() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            mp.fault(
                json!({"endpoint": "MP_PolicyManager", "kind": "empty-reply", "remaining": 1}),
            )
            .await;
            let client = mp.client();
            assert!(matches!(request_policy(&client, &c).await, Err(Error::EmptyReply)));
            assert_eq!(request_policy(&client, &c).await.unwrap().policy_assignment.len(), 2);
        });
    }

    #[test]
    fn an_html_500_fault_is_an_http_error_with_the_page_title() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            mp.fault(json!({"endpoint": "*", "kind": "html-500", "remaining": 2})).await;
            let client = mp.client();
            let e = request_policy(&client, &c).await.unwrap_err();
            assert!(
                matches!(&e, Error::Http { status: 500, title: Some(t) } if t == "500 - Internal server error."),
                "{e}"
            );
            let e = client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await;
            assert!(matches!(e, Err(Error::Http { status: 500, .. })), "{e:?}");
            assert!(mp.inventory(&c.smsid).await.is_empty());
            // Used up.
            assert!(array(mp.get("/cmmp-admin/faults").await).is_empty());
            assert!(request_policy(&client, &c).await.is_ok());
        });
    }

    #[test]
    fn a_delay_fault_answers_late_but_answers() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            mp.fault(json!({"endpoint": "MP_PolicyManager", "kind": "delay", "delay_ms": 300, "remaining": 1})).await;
            let started = Instant::now();
            let reply = request_policy(&mp.client(), &c).await.unwrap();
            assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
            assert_eq!(reply.policy_assignment.len(), 2);
            assert_eq!(mp.last(&c.smsid).await.1, "answered", "delayed, not refused");
        });
    }

    #[test]
    fn a_delay_past_the_clients_timeout_is_a_timeout() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            mp.fault(json!({"endpoint": "MP_PolicyManager", "kind": "delay", "delay_ms": 5000, "remaining": 1})).await;
            let client = mp.client_with(|config| config.timeout = Duration::from_millis(200));
            let e = request_policy(&client, &c).await.unwrap_err();
            assert!(matches!(e, Error::Timeout { .. }), "{e}");
        });
    }

    #[test]
    fn a_dropped_connection_is_a_network_error() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            mp.fault(
                json!({"endpoint": "MP_HinvEndpoint", "kind": "drop-connection", "remaining": 1}),
            )
            .await;
            let client = mp.client();
            let e = client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await;
            assert!(matches!(e, Err(Error::Network { .. })), "{e:?}");
            assert!(mp.inventory(&c.smsid).await.is_empty(), "nothing stored");
            // The client resends (a new message), and it is stored.
            client.post(&hinv(&c.smsid, "Full", "1.0"), vec![], Some(&c.signer())).await.unwrap();
            assert_eq!(mp.inventory(&c.smsid).await.len(), 6);
        });
    }

    #[test]
    fn a_registration_pending_fault_is_confirmed_by_the_registration_flow() {
        run(async {
            let mp = Mp::start(auto_config()).await;
            mp.fault(json!({"endpoint": "MP_ClientRegistration", "kind": "registration-pending", "remaining": 1})).await;
            let id = identity("WS01");
            let client = mp.client();
            let mut flow = RegistrationFlow::new(Backoff::immediate(4));
            let mut step = flow.start();
            let mut kinds = Vec::new();
            let smsid = loop {
                match step {
                    Step::Send { kind, smsid, .. } => {
                        kinds.push(kind.clone());
                        let request = Reg { kind, smsid: smsid.0, ..Reg::new(&id, "WS01") }.build();
                        step = flow.answer(&register(&client, request).await.unwrap()).unwrap();
                    }
                    Step::Done { smsid, .. } => break smsid,
                }
            };
            assert_eq!(kinds, [RegistrationKind::Registration, RegistrationKind::Confirmation]);
            let reasons: Vec<String> =
                mp.messages(&smsid).await.iter().map(|m| text(&m["reason"])).collect();
            assert_eq!(reasons, ["registered", "registration pending"]);
        });
    }

    #[test]
    fn a_policy_not_ready_fault_is_an_empty_reply_until_used_up() {
        run(async {
            let mp = Mp::auto().await;
            let c = mp.enrol("WS01").await;
            let id = mp.fault(json!({"endpoint": "MP_PolicyManager", "kind": "policy-not-ready", "remaining": 2})).await;
            let faults = array(mp.get("/cmmp-admin/faults").await);
            assert_eq!(faults[0]["id"], id);
            assert_eq!(
                faults[0]["spec"],
                json!({"endpoint": "MP_PolicyManager", "kind": "policy-not-ready", "delay_ms": null, "remaining": 2})
            );
            let client = mp.client();
            assert!(matches!(request_policy(&client, &c).await, Err(Error::EmptyReply)));
            assert_eq!(array(mp.get("/cmmp-admin/faults").await)[0]["spec"]["remaining"], 1);
            assert!(matches!(request_policy(&client, &c).await, Err(Error::EmptyReply)));
            assert!(request_policy(&client, &c).await.is_ok());
        });
    }

    #[test]
    fn faults_apply_to_policy_bodies_and_are_cleared_by_the_admin() {
        run(async {
            let mp = Mp::auto().await;
            mp.fault(json!({"endpoint": ".sms_pol", "kind": "html-500"})).await;
            let location = format!(
                "/SMS_MP/.sms_pol?{}.1_00",
                mp.emulator().site().config().policies[0].policy_id
            );
            let client = mp.client();
            for _ in 0..2 {
                let e = client.download_policy(&location, None).await.unwrap_err();
                assert!(matches!(e, Error::Http { status: 500, .. }), "{e}");
            }
            let (code, json) = mp.admin("DELETE", "/cmmp-admin/faults", b"").await;
            assert_eq!((code, json), (200, json!({"cleared": true})));
            assert!(client.download_policy(&location, None).await.is_ok());
            let (code, json) =
                mp.admin("POST", "/cmmp-admin/faults", br#"{"kind": "delay"}"#).await;
            assert_eq!(code, 400, "{json}");
        });
    }
}
