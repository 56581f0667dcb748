//! The JSON admin surface under `/cmmp-admin/` on the emulator's listener: clients (list, one,
//! approve, block, unblock), inventory, messages, conflicts, ISV proxy import, faults,
//! summary, its errors, and a site file that outlives the emulator.

use serde_json::json;

use crate::support::{Mp, array, ddr, hinv, identity, run, state, text};

#[test]
fn clients_are_listed_and_shown_with_versions_and_discovery() {
    run(async {
        let mp = Mp::auto().await;
        let a = mp.enrol("A").await;
        let b = mp.enrol("B").await;
        let clients = array(mp.get("/cmmp-admin/clients").await);
        let listed: Vec<String> = clients.iter().map(|c| text(&c["smsid"])).collect();
        assert_eq!(listed, [a.smsid.to_string(), b.smsid.to_string()], "oldest first");
        assert!(clients.iter().all(|c| c["signing_cert"].is_array() && c["conflict"].is_null()));

        let path = format!("/cmmp-admin/clients/{}", a.smsid);
        let shown = mp.get(&path).await;
        assert_eq!(shown["client"]["netbios_name"], "A");
        assert!(shown["discovery"].is_null());
        assert!(array(shown["inventory_versions"].clone()).is_empty());
        let client = mp.client();
        client
            .post(&ddr(&a.smsid, "4C4C4544-0000-0000-0000-0000000000AA"), vec![], Some(&a.signer()))
            .await
            .unwrap();
        client.post(&hinv(&a.smsid, "Full", "1.0"), vec![], Some(&a.signer())).await.unwrap();
        let shown = mp.get(&path).await;
        assert_eq!(shown["discovery"]["hardware_uuid"], "4C4C4544-0000-0000-0000-0000000000AA");
        let actions: Vec<String> =
            array(shown["inventory_versions"].clone()).iter().map(|v| text(&v["action"])).collect();
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(mp.inventory(&a.smsid).await.len(), 6);
        assert!(mp.inventory(&b.smsid).await.is_empty());
    });
}

#[test]
fn approve_block_and_unblock_change_the_record() {
    run(async {
        let mp = Mp::stock().await;
        let c = mp.enrol("WS01").await;
        let flags = |record: &serde_json::Value| {
            (record["approved"].as_bool().unwrap(), record["blocked"].as_bool().unwrap())
        };
        assert_eq!(flags(&mp.record(&c.smsid).await), (false, false));
        mp.approve(&c.smsid).await;
        assert_eq!(flags(&mp.record(&c.smsid).await), (true, false));
        mp.block(&c.smsid).await;
        assert_eq!(flags(&mp.record(&c.smsid).await), (true, true));
        mp.post(&format!("/cmmp-admin/clients/{}/unblock", c.smsid), b"").await;
        mp.post(&format!("/cmmp-admin/clients/{}/unapprove", c.smsid), b"").await;
        assert_eq!(flags(&mp.record(&c.smsid).await), (false, false));
        assert_eq!(mp.get("/cmmp-admin/summary").await["approved"], 0);
    });
}

#[test]
fn admin_errors_are_json_with_a_status() {
    run(async {
        let mp = Mp::stock().await;
        let unknown = "GUID:11111111-2222-4333-8444-555555555555";
        for (method, path, status) in [
            ("GET", format!("/cmmp-admin/clients/{unknown}"), 404),
            ("POST", format!("/cmmp-admin/clients/{unknown}/approve"), 404),
            ("GET", format!("/cmmp-admin/clients/{unknown}/inventory"), 404),
            ("GET", "/cmmp-admin/clients/not-an-smsid".to_owned(), 400),
            ("GET", "/cmmp-admin/nothing-here".to_owned(), 404),
            ("POST", "/cmmp-admin/conflicts/x/resolve?action=merge".to_owned(), 400),
            ("POST", "/cmmp-admin/conflicts/99/resolve?action=merge".to_owned(), 404),
            ("POST", "/cmmp-admin/proxies".to_owned(), 400),
        ] {
            let (code, json) = mp.admin(method, &path, b"not a certificate").await;
            assert_eq!(code, status, "{method} {path}: {json}");
            assert!(json["error"].is_string(), "{method} {path}: {json}");
        }
    });
}

#[test]
fn messages_are_listed_newest_first_within_the_limit() {
    run(async {
        let mp = Mp::auto().await;
        let a = mp.enrol("A").await;
        let b = mp.enrol("B").await;
        let client = mp.client();
        for serial in 1..=3 {
            client.post(&state(&a.smsid, &[serial]), vec![], Some(&a.signer())).await.unwrap();
        }
        let all = array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0]["kind"], "StateMessages");
        assert_eq!(all[4]["kind"], "ClientRegistration");
        let rows: Vec<i64> = all.iter().map(|m| m["row"].as_i64().unwrap()).collect();
        assert!(rows.windows(2).all(|w| w[0] > w[1]), "{rows:?}");
        assert_eq!(array(mp.get("/cmmp-admin/messages?limit=2").await).len(), 2);
        assert_eq!(
            array(mp.get(&format!("/cmmp-admin/clients/{}/messages?limit=2", a.smsid)).await).len(),
            2
        );
        assert_eq!(mp.messages(&b.smsid).await.len(), 1);
        let summary = mp.get("/cmmp-admin/summary").await;
        assert_eq!(
            (&summary["clients"], &summary["registered"], &summary["state_messages"]),
            (&2.into(), &2.into(), &3.into())
        );
        let counts = array(summary["messages"].clone());
        assert!(counts.contains(&json!(["StateMessages", "stored", 3])), "{counts:?}");
        assert!(counts.contains(&json!(["ClientRegistration", "answered", 2])), "{counts:?}");
    });
}

#[test]
fn proxies_import_from_der_or_hex() {
    run(async {
        let mp = Mp::stock().await;
        let proxy = identity("PROXY01");
        let from_der = mp.post("/cmmp-admin/proxies", proxy.signing_cert_der()).await;
        let from_hex = mp.import_proxy(&proxy).await;
        assert_eq!(text(&from_der["smsid"]), from_hex.to_string());
        let record = mp.record(&from_hex).await;
        assert_eq!((&record["agent_type"], &record["imported_proxy"]), (&4.into(), &true.into()));
    });
}

#[test]
fn faults_are_added_listed_and_cleared() {
    run(async {
        let mp = Mp::stock().await;
        let first = mp
            .fault(json!({"endpoint": "MP_LocationManager", "kind": "delay", "delay_ms": 50}))
            .await;
        let second =
            mp.fault(json!({"endpoint": "*", "kind": "drop-connection", "remaining": 3})).await;
        let faults = array(mp.get("/cmmp-admin/faults").await);
        let ids: Vec<i64> = faults.iter().map(|f| f["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [first, second]);
        assert_eq!(faults[0]["spec"]["delay_ms"], 50);
        assert_eq!(faults[0]["source"], "Admin");
        let (code, json) =
            mp.admin("POST", "/cmmp-admin/faults", br#"{"endpoint": "*", "kind": "melt"}"#).await;
        assert_eq!(code, 400);
        assert!(text(&json["error"]).contains("melt"), "{json}");
        let (code, _) = mp.admin("DELETE", "/cmmp-admin/faults", b"").await;
        assert_eq!(code, 200);
        assert!(array(mp.get("/cmmp-admin/faults").await).is_empty());
    });
}

#[test]
fn a_site_file_keeps_its_clients_across_an_emulator_restart() {
    run(async {
        let dir = crate::temp_dir::TempDir::new("it-admin");
        let path = dir.join("P01.db");
        let config = crate::support::auto_config();
        let first = Mp::open(config.clone(), &path).await;
        let c = first.enrol("WS01").await;
        first.client().post(&state(&c.smsid, &[1, 2]), vec![], Some(&c.signer())).await.unwrap();
        first.shutdown().await;

        let second = Mp::open(config, &path).await;
        assert_eq!(second.record(&c.smsid).await["registered"], true);
        let stored =
            array(second.get(&format!("/cmmp-admin/clients/{}/state-messages", c.smsid)).await);
        assert_eq!(stored.len(), 2);
        // The same client carries on with the new listener.
        second.client().post(&state(&c.smsid, &[3]), vec![], Some(&c.signer())).await.unwrap();
        assert_eq!(second.get("/cmmp-admin/summary").await["state_messages"], 3);
        second.shutdown().await;
    });
}
