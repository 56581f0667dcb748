//! Registration over the wire: a single client, an ISV proxy (`AgentType` 4) after its
//! certificate is imported through the admin API, the proxy's clients (`AgentType` 8, signed
//! by the proxy), the pending → confirmation loop driven by `RegistrationFlow`, and the
//! blocking client.

use cmmp_emulator::SiteConfig;
use cmmp_model::registration::{ClientRegistrationResponse, RegistrationKind};
use cmmp_transport::Error;
use cmmp_transport::client::blocking;
use cmmp_transport::register::{
    AgentType, Approval, Backoff, RegistrationFlow, RegistrationSigner, Step,
};
use cmmp_transport::reply::{self, ReplyLimits, SyncContext};
use cmmp_transport::wire::{self, Fresh};

use crate::support::{
    Mp, Reg, array, auto_config, identity, on_big_stack, register, request_policy, run, state, text,
};

#[test]
fn a_single_client_registers_and_gets_an_uppercase_smsid() {
    run(async {
        let mp = Mp::stock().await;
        let id = identity("WS01");
        let client = mp.client();
        let reply = register(&client, Reg::new(&id, "WS01").build()).await.unwrap();
        // Stock site, anonymous vdir: registered (the loop ends) but not approved (M2, M4).
        assert_eq!((reply.status, reply.approval_status), (0, Some(-1)));
        assert_eq!(reply.response_type, RegistrationKind::Registration);
        let smsid = reply.smsid.unwrap();
        let shown = smsid.to_string();
        assert!(shown.starts_with("GUID:") && shown == shown.to_uppercase(), "{shown}");
        // The same certificate registering again is the same client.
        let again = register(&client, Reg::new(&id, "WS01").build()).await.unwrap();
        assert_eq!(again.smsid, Some(smsid));

        let clients = array(mp.get("/cmmp-admin/clients").await);
        assert_eq!(clients.len(), 1);
        let record = &clients[0];
        assert_eq!(text(&record["smsid"]), shown);
        assert_eq!(record["agent_type"], 0);
        assert_eq!(record["netbios_name"], "WS01");
        assert_eq!(record["fqdn"], "WS01.corp.example");
        assert_eq!((&record["registered"], &record["approved"]), (&true.into(), &false.into()));
        let messages = mp.messages(&smsid).await;
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|m| m["kind"] == "ClientRegistration"
            && m["outcome"] == "answered"
            && m["reason"] == "registered"));
    });
}

#[test]
fn the_registration_reply_is_correlated_to_the_request() {
    run(async {
        let mp = Mp::auto().await;
        let id = identity("WS01");
        let settings = mp.settings("WS01");
        let fresh = Fresh::now().unwrap();
        let request =
            wire::build_request(&settings, &Reg::new(&id, "WS01").build(), vec![], None, fresh)
                .unwrap();
        let http = mp.client().send(&request).await.unwrap();
        let ctx = SyncContext {
            host_asked: &settings.mp,
            reply_compression: true,
            verifier: None,
            limits: ReplyLimits::default(),
        };
        let received = reply::decode_sync::<ClientRegistrationResponse>(&http, &ctx).unwrap();
        assert_eq!(received.header.correlation_id, Some(fresh.id));
        assert_eq!(received.header.target_host.as_deref(), Some("WS01"));
        assert_eq!(received.header.source_host.as_deref(), Some("localhost"));
        assert_eq!((received.reply.status, received.reply.approval_status), (0, Some(1)));
    });
}

#[test]
fn an_isv_proxy_registers_only_after_its_certificate_is_imported() {
    run(async {
        let mp = Mp::stock().await;
        let proxy = identity("PROXY01");
        let client = mp.client_as("PROXY01");
        let as_proxy = || Reg { agent_type: AgentType::IsvProxy, ..Reg::new(&proxy, "PROXY01") };
        // Not imported: rejected, and the registration loop says so.
        let rejected = register(&client, as_proxy().build()).await.unwrap();
        assert_eq!((rejected.status, rejected.smsid), (3, None));
        let mut flow = RegistrationFlow::new(Backoff::immediate(3));
        flow.start();
        assert!(matches!(flow.answer(&rejected), Err(Error::RegistrationRejected { status: 3 })));
        assert!(array(mp.get("/cmmp-admin/clients").await).is_empty());

        let imported = mp.import_proxy(&proxy).await;
        assert_eq!(mp.import_proxy(&proxy).await, imported, "importing twice is one proxy");
        let record = mp.record(&imported).await;
        assert_eq!(
            (&record["imported_proxy"], &record["registered"]),
            (&true.into(), &false.into())
        );

        let reply = register(&client, as_proxy().build()).await.unwrap();
        assert_eq!(
            (reply.status, reply.smsid, reply.approval_status),
            (0, Some(imported), Some(1))
        );
        let record = mp.record(&imported).await;
        assert_eq!(record["agent_type"], 4);
        assert_eq!((&record["registered"], &record["approved"]), (&true.into(), &true.into()));
        assert_eq!(mp.last(&imported).await.2.as_deref(), Some("ISV proxy registered"));
    });
}

#[test]
fn an_isv_proxy_registers_clients_and_signs_their_messages() {
    run(async {
        let mp = Mp::auto().await;
        let proxy = mp.enrol_proxy("PROXY01").await;
        let clients = mp.enrol_proxy_clients(&proxy, &["MAC-07", "MAC-08", "MAC-09"]).await;
        let proxy_row = mp.record(&proxy.smsid).await["id"].clone();
        let mut seen = Vec::new();
        for c in &clients {
            assert!(!seen.contains(&c.smsid), "one record per proxied client");
            seen.push(c.smsid);
            let record = mp.record(&c.smsid).await;
            assert_eq!(record["agent_type"], 8);
            assert_eq!(record["proxy"], proxy_row);
            assert_eq!(record["netbios_name"], c.name.as_str());
            // The proxy's key signs the client's messages (source 002).
            let http = mp.client_as(&proxy.name);
            http.post(&state(&c.smsid, &[1, 2]), vec![], Some(&c.signer())).await.unwrap();
            assert_eq!(mp.last(&c.smsid).await.1, "stored");
            let assignments = request_policy(&http, c).await.unwrap();
            assert_eq!(assignments.policy_assignment.len(), 2);
            assert_eq!(assignments.identification.machine.client_id, c.smsid);
        }
        let summary = mp.get("/cmmp-admin/summary").await;
        assert_eq!(summary["clients"], 4);
        assert_eq!(summary["state_messages"], 6);
    });
}

#[test]
fn the_registration_flow_confirms_a_pending_registration() {
    run(async {
        let mut config = auto_config();
        config.switches.registration_pending = true;
        let mp = Mp::start(config).await;
        let id = identity("WS01");
        let client = mp.client();
        let mut flow = RegistrationFlow::new(Backoff::immediate(5));
        let mut step = flow.start();
        let mut sent = Vec::new();
        let (smsid, approval) = loop {
            match step {
                Step::Send { kind, smsid, .. } => {
                    sent.push(kind.clone());
                    let request = Reg { kind, smsid: smsid.0, ..Reg::new(&id, "WS01") }.build();
                    step = flow.answer(&register(&client, request).await.unwrap()).unwrap();
                }
                Step::Done { smsid, approval } => break (smsid, approval),
            }
        };
        assert_eq!(sent, [RegistrationKind::Registration, RegistrationKind::Confirmation]);
        assert_eq!(approval, Approval::Approved);
        let reasons: Vec<String> =
            mp.messages(&smsid).await.iter().map(|m| text(&m["reason"])).collect();
        assert_eq!(reasons, ["registered", "registration pending"], "newest first");
        assert_eq!(mp.record(&smsid).await["registered"], true);
    });
}

#[test]
fn a_confirmation_for_an_unknown_smsid_asks_to_register_again() {
    run(async {
        let mp = Mp::auto().await;
        let id = identity("WS01");
        let unknown = "GUID:11111111-2222-4333-8444-555555555555".parse().unwrap();
        let reply = register(&mp.client(), Reg::new(&id, "WS01").confirm(unknown).build()).await;
        let reply = reply.unwrap();
        assert_eq!((reply.status, reply.smsid), (2, None));
        let mut flow = RegistrationFlow::new(Backoff::immediate(3));
        flow.start();
        assert!(matches!(
            flow.answer(&reply).unwrap(),
            Step::Send { kind: RegistrationKind::Registration, .. }
        ));
    });
}

#[test]
fn a_proxy_signature_needs_a_proxy_client_agent_type() {
    run(async {
        let mp = Mp::auto().await;
        let proxy = mp.enrol_proxy("PROXY01").await;
        // A single client's registration carrying a proxy signature is refused (empty 200).
        let request = Reg {
            signer: RegistrationSigner::Proxy {
                key: proxy.identity.signing_key(),
                proxy_id: proxy.smsid,
            },
            ..Reg::new(&proxy.identity, "MAC-07")
        };
        let e = register(&mp.client(), request.build()).await.unwrap_err();
        assert!(matches!(e, Error::EmptyReply), "{e}");
        let log = array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(
            (&log[0]["outcome"], &log[0]["reason"]),
            (&"refused".into(), &"unknown-proxy".into())
        );
    });
}

/// The blocking facade runs its own runtime: the emulator serves from another one.
#[test]
fn the_blocking_client_registers_and_posts() {
    on_big_stack(blocking_client_registers_and_posts);
}

fn blocking_client_registers_and_posts() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mp = runtime.block_on(Mp::start(SiteConfig::default()));
    let client = blocking::Client::new(mp.config("WS01")).unwrap();
    let id = identity("WS01");
    let reply = client.invoke(&Reg::new(&id, "WS01").build(), vec![], None).unwrap().reply;
    assert_eq!(reply.status, 0);
    let smsid = reply.smsid.unwrap();
    let signer = cmmp_transport::wire::Signer::new(
        id.signing_key(),
        smsid,
        cmmp_transport::sign::HashAlgorithm::Sha256,
    )
    .unwrap();
    let tracking = client.post(&state(&smsid, &[4]), vec![], Some(&signer)).unwrap();
    let list = client.mp_list().unwrap();
    assert_eq!(list.mp[0].fqdn.as_deref(), Some("localhost"));
    let messages = runtime.block_on(mp.messages(&smsid));
    assert_eq!(messages[0]["message_id"], tracking.to_string());
    assert_eq!(messages[0]["outcome"], "stored");
    runtime.block_on(mp.shutdown());
}
