//! Every Post kind over the wire, each signed by a registered client, and what the site
//! stored, read back through the admin JSON: DDR, hardware inventory (full, then delta),
//! software inventory, file collection with attachments, IDMIF, state messages, software
//! metering, status messages, and the fallback status point.

use cmmp_transport::Error;
use cmmp_transport::payload::Attachment;
use cmmp_transport::wire::{self, Fresh};

use crate::support::{
    Mp, array, bytes, ddr, file_collection, hinv, hinv_disks, http, idmif, metering, run, sinv,
    state, state_text, status, text,
};

const HARDWARE: &str = "{00000000-0000-0000-0000-000000000001}";
const SOFTWARE: &str = "{00000000-0000-0000-0000-000000000002}";

#[test]
fn a_ddr_stores_discovery_and_the_hardware_id() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let uuid = "4C4C4544-0042-3510-8052-B4C04F4E3432";
        let tracking = mp.client().post(&ddr(&c.smsid, uuid), vec![], Some(&c.signer())).await;
        let tracking = tracking.unwrap();
        let shown = mp.get(&format!("/cmmp-admin/clients/{}", c.smsid)).await;
        let discovery = &shown["discovery"];
        assert_eq!(discovery["netbios_name"], "WS01");
        assert_eq!(discovery["domain"], "corp.example");
        assert_eq!(discovery["ad_site"], "Default-First-Site-Name");
        assert_eq!(discovery["hardware_uuid"], uuid);
        assert_eq!(array(discovery["ip_addresses"].clone())[0], "10.20.30.41");
        assert_eq!(shown["client"]["hardware_id"], format!("SMBIOS:{uuid}"));
        let versions = array(shown["inventory_versions"].clone());
        assert_eq!(versions[0]["action"], "{00000000-0000-0000-0000-000000000003}");
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(messages[0]["kind"], "DdrReport");
        assert_eq!(messages[0]["endpoint"], "MP_DdrEndpoint");
        assert_eq!(messages[0]["outcome"], "stored");
        assert_eq!(messages[0]["message_id"], tracking.to_string());
    });
}

#[test]
fn hardware_inventory_full_then_delta_applies_the_changes() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let client = mp.client();
        let full = hinv_disks(
            &c.smsid,
            "Full",
            "1.0",
            &[("New", "C:", "100"), ("New", "D:", "200"), ("New", "E:", "300")],
        );
        client.post(&full, vec![], Some(&c.signer())).await.unwrap();
        assert_eq!(mp.inventory(&c.smsid).await.len(), 3);
        let delta = hinv_disks(
            &c.smsid,
            "Delta",
            "1.1",
            &[("Updated", "C:", "99"), ("Deleted", "D:", ""), ("New", "F:", "400")],
        );
        client.post(&delta, vec![], Some(&c.signer())).await.unwrap();
        let inventory = mp.inventory(&c.smsid).await;
        let keys: Vec<String> = inventory.iter().map(|i| text(&i["key"])).collect();
        assert_eq!(keys, ["DeviceID=C:", "DeviceID=E:", "DeviceID=F:"]);
        assert!(text(&inventory[0]["xml"]).contains("<FreeSpace>99</FreeSpace>"));
        assert!(
            inventory.iter().all(|i| i["action"] == HARDWARE && i["class"] == "Win32_LogicalDisk")
        );
        let shown = mp.get(&format!("/cmmp-admin/clients/{}", c.smsid)).await;
        let version = &array(shown["inventory_versions"].clone())[0];
        assert_eq!(version["version"], serde_json::json!([1, 1]));
        assert!(version["resync_requested"].is_null());
        // The sample report's six instances of six classes, as a new full report, replace them all.
        client.post(&hinv(&c.smsid, "Full", "2.0"), vec![], Some(&c.signer())).await.unwrap();
        let inventory = mp.inventory(&c.smsid).await;
        assert_eq!(inventory.len(), 6);
        assert!(
            inventory
                .iter()
                .any(|i| i["class"] == "Win32_Processor" && i["key"] == "DeviceID=CPU0")
        );
    });
}

#[test]
fn software_inventory_is_stored_by_file() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        mp.client().post(&sinv(&c.smsid), vec![], Some(&c.signer())).await.unwrap();
        let inventory = mp.inventory(&c.smsid).await;
        let mut keys: Vec<String> = inventory.iter().map(|i| text(&i["key"])).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "c:\\program files\\contoso\\sync\\inhouse-sync.exe",
                "c:\\windows\\system32\\notepad.exe"
            ]
        );
        assert!(
            inventory.iter().all(|i| i["action"] == SOFTWARE && i["class"] == "FileSystemFile")
        );
        assert_eq!(mp.last(&c.smsid).await, ("SinvReport".into(), "stored".into(), None));
    });
}

#[test]
fn file_collection_stores_each_attachment_by_file_id() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let files = vec![
            Attachment::new("1", b"setup log\r\nline two".to_vec()),
            Attachment::new("2", b"127.0.0.1 localhost".to_vec()),
        ];
        mp.client().post(&file_collection(&c.smsid), files, Some(&c.signer())).await.unwrap();
        let stored = array(mp.get(&format!("/cmmp-admin/clients/{}/files", c.smsid)).await);
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (&stored[0]["collection"], &stored[0]["name"]),
            (&"filecoll".into(), &"setupact.log".into())
        );
        assert_eq!(stored[0]["path"], "C:\\Windows\\Panther\\");
        assert_eq!(bytes(&stored[0]["content"]), b"setup log\r\nline two");
        assert_eq!(stored[1]["name"], "hosts");
        assert_eq!(bytes(&stored[1]["content"]), b"127.0.0.1 localhost");
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(
            (&messages[0]["kind"], &messages[0]["endpoint"]),
            (&"FileCollection".into(), &"MP_SinvCollFileEndpoint".into())
        );
    });
}

#[test]
fn idmif_collection_stores_its_file() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let mif = b"START_COMPONENT\r\nNAME = \"WORKSTATION\"\r\nEND_COMPONENT\r\n".to_vec();
        let files = vec![Attachment::new("1", mif.clone())];
        mp.client().post(&idmif(&c.smsid), files, Some(&c.signer())).await.unwrap();
        let stored = array(mp.get(&format!("/cmmp-admin/clients/{}/files", c.smsid)).await);
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (&stored[0]["collection"], &stored[0]["name"]),
            (&"idmif".into(), &"lab-analyzer.mif".into())
        );
        assert_eq!(bytes(&stored[0]["content"]), mif);
        assert_eq!(mp.last(&c.smsid).await.0, "IdmifCollection");
    });
}

#[test]
fn state_messages_are_stored_by_serial_number() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        mp.client().post(&state(&c.smsid, &[7, 8]), vec![], Some(&c.signer())).await.unwrap();
        // State messages may come unsigned (MessageClass None) unless the site requires signing.
        mp.client().post(&state(&c.smsid, &[9]), vec![], None).await.unwrap();
        let stored =
            array(mp.get(&format!("/cmmp-admin/clients/{}/state-messages", c.smsid)).await);
        let serials: Vec<u64> = stored.iter().map(|s| s["serial"].as_u64().unwrap()).collect();
        assert_eq!(serials, [7, 8, 9]);
        assert_eq!((&stored[0]["topic_type"], &stored[0]["state_id"]), (&701.into(), &0.into()));
        assert!(text(&stored[0]["xml"]).starts_with("<StateMessage"));
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(
            (&messages[0]["endpoint"], &messages[0]["kind"]),
            (&"MP_RelayEndpoint".into(), &"StateMessages".into())
        );
    });
}

#[test]
fn software_metering_usage_is_stored() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        mp.client().post(&metering(&c.smsid), vec![], Some(&c.signer())).await.unwrap();
        // The admin surface has no metering route; the summary counts them, the library lists them.
        assert_eq!(mp.get("/cmmp-admin/summary").await["metering"], 3);
        let rows = mp.emulator().site().metering(&c.smsid).unwrap();
        let files: Vec<&str> = rows.iter().map(|r| r.file_name.as_str()).collect();
        assert_eq!(files, ["WINWORD.EXE", "WINWORD.EXE", "notepad++.exe"]);
        assert_eq!(rows[0].user_name.as_deref(), Some("CORP\\alice"));
        assert_eq!(rows[1].end_time, None);
        assert_eq!(mp.last(&c.smsid).await, ("SoftwareMetering".into(), "stored".into(), None));
    });
}

#[test]
fn a_status_message_is_stored() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        mp.client().post(&status(&c.smsid), vec![], Some(&c.signer())).await.unwrap();
        let stored =
            array(mp.get(&format!("/cmmp-admin/clients/{}/status-messages", c.smsid)).await);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["status_type"], "CCM_CcmHttp_Status");
        assert!(
            text(&stored[0]["xml"])
                .contains("<Qualifier Name=\"SMS_Component\">CcmExec</Qualifier>")
        );
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(
            (&messages[0]["endpoint"], &messages[0]["kind"]),
            (&"StatusReceiver".into(), &"StatusMessage".into())
        );
    });
}

#[test]
fn inventory_must_be_signed_before_it_leaves_the_client() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let e = mp.client().post(&hinv(&c.smsid, "Full", "1.0"), vec![], None).await.unwrap_err();
        assert!(matches!(e, Error::SignerRequired { kind: "HinvReport" }), "{e}");
        // Nothing reached the MP.
        assert_eq!(mp.messages(&c.smsid).await.len(), 1, "the registration only");
    });
}

#[test]
fn the_fallback_status_point_takes_state_messages() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let addr = mp.emulator().addr();
        let (status, body) =
            http(addr, "POST", "/SMS_FSP/.sms_fsp", state_text(&c.smsid, &[3, 4]).as_bytes()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(text(&answer["outcome"]).starts_with("Stored"), "{answer}");
        let stored =
            array(mp.get(&format!("/cmmp-admin/clients/{}/state-messages", c.smsid)).await);
        assert_eq!(stored.len(), 2);
        // A client the site does not know is refused.
        let stranger = "GUID:99999999-2222-4333-8444-555555555555".parse().unwrap();
        let (status, _) =
            http(addr, "POST", "/SMS_FSP/.sms_fsp", state_text(&stranger, &[1]).as_bytes()).await;
        assert_eq!(status, 400);
    });
}

#[test]
fn a_post_is_acknowledged_only_once_committed() {
    run(async {
        let mp = Mp::auto().await;
        let c = mp.enrol("WS01").await;
        let settings = mp.settings("WS01");
        let fresh = Fresh::now().unwrap();
        let request = wire::build_request(
            &settings,
            &state(&c.smsid, &[1]),
            vec![],
            Some(&c.signer()),
            fresh,
        )
        .unwrap();
        let http = mp.client().send(&request).await.unwrap();
        cmmp_transport::reply::decode_post(&http, &Default::default()).unwrap();
        // The acknowledgement came after the commit: the message is there at once, no waiting.
        let messages = mp.messages(&c.smsid).await;
        assert_eq!(messages[0]["message_id"], fresh.id.to_string());
        assert_eq!(messages[0]["outcome"], "stored");
    });
}
