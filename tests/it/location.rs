//! Location Manager requests (content, WSUS, local MP, MP enumeration, site information,
//! assigned site), the `.sms_aut` GETs (`MPLIST`, `MPLIST1`, `MPCERT`, `MPCERT2`,
//! `MPKEYINFORMATIONEX`, `MPLOCATION`), and reply signatures verified against the MP
//! certificate pinned from `MPKEYINFORMATIONEX`.

use std::net::{IpAddr, Ipv4Addr};

use cmmp_emulator::SiteConfig;
use cmmp_model::kinds::{
    AssignedSite, ContentLocation, EnumerateMpLocation, LocalMpLocation, SiteInformation,
    WsusLocation,
};
use cmmp_model::value::SmsId;
use cmmp_transport::Error;
use cmmp_transport::raw::{RawMessage, SecurityFlags};
use cmmp_transport::reply::{ReplySignature, ReplyVerifier};

use crate::support::{Mp, Reg, array, doc, identity, register, run, sample};

/// The sample request of `location/<name>`; location requests name no client.
fn request<K: cmmp_model::Endpoint>(name: &str) -> K {
    let nobody: SmsId = crate::support::SAMPLE_ID.parse().unwrap();
    sample(&format!("location/{name}"), &nobody)
}

#[test]
fn content_location_lists_the_distribution_point_of_the_boundary() {
    run(async {
        let mp = Mp::stock().await;
        let reply = mp
            .client()
            .invoke(&request::<ContentLocation>("content-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let site = &reply.sites.site[0];
        assert_eq!(site.mp_site.site_code, "P01");
        let records = &site.location_records.as_ref().unwrap().location_record;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].url[0].name,
            "http://localhost/SMS_DP_SMSPKG$/Content_9f2b7c1e-3d4a-4b5c-8e6f-7a8b9c0d1e2f.1"
        );
        assert_eq!(records[0].locality.as_deref(), Some("LOCAL"));
        assert_eq!(reply.boundary_groups.unwrap().boundary_group[0].group_id, 16_777_217);
        // Anonymous (no SourceID): logged without a client.
        let log = array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(
            (&log[0]["kind"], &log[0]["outcome"]),
            (&"ContentLocation".into(), &"answered".into())
        );
        assert!(log[0]["smsid"].is_null());
    });
}

/// mprecon sends `LocationType="SMSPACKAGE"` and an MP answers it (protocol §4.3.1). The
/// requests go through the raw API, so each spelling reaches the emulator as written (the
/// typed client would write the canonical `SMSPackage`), and each is answered alike.
#[test]
fn content_location_takes_the_location_type_in_any_case() {
    run(async {
        let mp = Mp::stock().await;
        let canonical = doc("location/content-request.xml");
        let written = "LocationType=\"SMSPackage\"";
        assert!(canonical.contains(written));
        let mut replies = Vec::new();
        for spelling in ["SMSPackage", "SMSPACKAGE", "smspackage"] {
            let text = canonical.replace(written, &format!("LocationType=\"{spelling}\""));
            let mut message = RawMessage::new();
            message.set_target_endpoint("MP_LocationManager").unwrap();
            message.set_body_from_string(&text);
            message.set_security_flags(SecurityFlags::MIXED_MODE | SecurityFlags::COMPRESS_MESSAGE);
            assert!(message.body_to_string().unwrap().contains(spelling));
            let mut reply = mp.client().invoke_raw(&message, None).await.unwrap().body_xml;
            // The one part that differs between answers: when the boundary groups were read.
            let at = reply.find("RetrieveTime=\"").unwrap() + "RetrieveTime=\"".len();
            let end = at + reply[at..].find('"').unwrap();
            reply.replace_range(at..end, "");
            replies.push(reply);
        }
        assert!(replies[0].contains("/SMS_DP_SMSPKG$/Content_9f2b7c1e"), "{}", replies[0]);
        assert_eq!(replies[1], replies[0]);
        assert_eq!(replies[2], replies[0]);
        let log = array(mp.get("/cmmp-admin/messages").await);
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|m| m["kind"] == "ContentLocation" && m["outcome"] == "answered"));
    });
}

#[test]
fn wsus_location_names_the_software_update_point() {
    run(async {
        let mp = Mp::stock().await;
        let kind = request::<WsusLocation>("wsus-request-lowercase.xml");
        let reply = mp.client().invoke(&kind, vec![], None).await.unwrap().reply;
        let record = &reply.sites.site[0].location_records.as_ref().unwrap().location_record[0];
        assert_eq!(record.wsusurl, "http://localhost:8530");
        assert_eq!((record.server_name.as_deref(), record.version), (Some("localhost"), Some(21)));
    });
}

#[test]
fn local_and_enumerated_mp_locations_name_the_mp() {
    run(async {
        let mp = Mp::stock().await;
        let client = mp.client();
        let local = client
            .invoke(&request::<LocalMpLocation>("localmp-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let site = &local.sites.site[0].mp_site;
        // The site file sets no port: the reply names the port the emulator listens on.
        let port = mp.emulator().addr().port();
        assert_eq!((site.site_code.as_str(), site.iis_prefered_port), ("P01", Some(port)));
        assert_eq!(site.iisssl_prefered_port, Some(443));
        let all = client
            .invoke(&request::<EnumerateMpLocation>("enumerate-mp-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let record = &all.location_records.unwrap().location_record[0];
        assert_eq!(record.intranet_name.as_ref().unwrap().value, "localhost");
        assert_eq!(record.version, Some(9128));
    });
}

/// Ports the site file sets are what location replies give, whatever the listener's.
#[test]
fn the_site_file_s_ports_win_over_the_listener_s() {
    run(async {
        let mut config = crate::support::auto_config();
        config.management_point.http_port = Some(8080);
        config.management_point.https_port = Some(8443);
        let mp = Mp::start(config).await;
        let info = mp
            .client()
            .invoke(&request::<SiteInformation>("siteinfo-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let settings = info.site.unwrap().client_operational_settings.unwrap();
        let security = settings.security_configuration.unwrap();
        assert_eq!((security.http_port, security.https_port), (Some(8080), Some(8443)));
        assert_ne!(mp.emulator().addr().port(), 8080);
    });
}

#[test]
fn site_information_and_assigned_site_describe_the_site() {
    run(async {
        let mp = Mp::stock().await;
        let client = mp.client();
        let info = client
            .invoke(&request::<SiteInformation>("siteinfo-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let site = info.site.unwrap();
        assert_eq!(
            (site.site_code.as_deref(), site.default_mp.as_deref()),
            (Some("P01"), Some("localhost"))
        );
        let security = site.client_operational_settings.unwrap().security_configuration.unwrap();
        let port = mp.emulator().addr().port();
        assert_eq!((security.http_port, security.https_port), (Some(port), Some(443)));
        // Another site's code: no site in the reply.
        let other = crate::support::from_text::<SiteInformation>(
            "<SiteInformationRequest SchemaVersion=\"1.00\"><SiteCode Name=\"XYZ\"/></SiteInformationRequest>",
        );
        assert!(client.invoke(&other, vec![], None).await.unwrap().reply.site.is_none());
        let assigned = client
            .invoke(&request::<AssignedSite>("assignedsite-request.xml"), vec![], None)
            .await
            .unwrap()
            .reply;
        let site = assigned.site.unwrap();
        assert_eq!(
            (site.site_code.as_deref(), site.default_mp.as_deref()),
            (Some("P01"), Some("localhost"))
        );
        assert_eq!(site.build_number, Some(9128));
    });
}

#[test]
fn sms_aut_documents_describe_the_mp_and_its_certificates() {
    run(async {
        let mp = Mp::stock().await;
        let client = mp.client();
        let identity = mp.emulator().identity();

        let list = client.mp_list().await.unwrap();
        assert_eq!(list.mp.len(), 1);
        assert_eq!(
            (list.mp[0].name.as_str(), list.mp[0].fqdn.as_deref()),
            ("LOCALHOST", Some("localhost"))
        );
        let ours = client.mp_list_of_site("P01").await.unwrap();
        assert_eq!(ours.mp[0].site_code.as_deref(), Some("P01"));
        assert!(client.mp_list_of_site("XYZ").await.unwrap().mp.is_empty());

        let cert = client.mp_certificate().await.unwrap();
        assert_eq!(cert.certificate.as_bytes(), identity.signing_cert_der());
        let certs = client.mp_certificates().await.unwrap();
        assert_eq!(certs.certificate1.unwrap().value.as_bytes(), identity.signing_cert_der());
        assert_eq!(certs.certificate2.unwrap().value.as_bytes(), identity.encryption_cert_der());

        let keys = client.mp_key_information().await.unwrap();
        assert_eq!(
            (keys.sitecode.as_deref(), keys.fqdn.as_deref()),
            (Some("P01"), Some("localhost"))
        );
        assert_eq!(keys.mpcertificate.unwrap().value.as_bytes(), identity.signing_cert_der());

        let address = IpAddr::V4(Ipv4Addr::new(10, 20, 30, 41));
        let subnet = IpAddr::V4(Ipv4Addr::new(10, 20, 30, 0));
        let location = client.mp_location(address, subnet).await.unwrap();
        assert_eq!(
            (location.mp.as_deref(), location.site_code.as_deref()),
            (Some("localhost"), Some("P01"))
        );

        let e = client.sms_aut::<cmmp_model::mpinfo::MpList>("NOSUCHFUNCTION").await.unwrap_err();
        assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
    });
}

#[test]
fn signed_replies_verify_against_the_certificate_pinned_from_mpkeyinformationex() {
    run(async {
        let mut config = SiteConfig::default();
        config.switches.sign_replies = true;
        let mp = Mp::start(config).await;
        let mut client = mp.client();
        // Unpinned: the hook is there but nothing checked it.
        let kind = request::<SiteInformation>("siteinfo-request.xml");
        let unchecked = client.invoke(&kind, vec![], None).await.unwrap();
        assert_eq!(unchecked.signature, ReplySignature::Unchecked);

        let keys = client.mp_key_information().await.unwrap();
        let verifier = ReplyVerifier::from_key_information(&keys).unwrap().require_signature(true);
        assert_eq!(verifier.site_code(), Some("P01"));
        client.set_reply_verifier(Some(verifier));
        let verified = client.invoke(&kind, vec![], None).await.unwrap();
        assert_eq!(verified.signature, ReplySignature::Verified);
        let id = identity("WS01");
        let registered = client.invoke(&Reg::new(&id, "WS01").build(), vec![], None).await.unwrap();
        assert_eq!(registered.signature, ReplySignature::Verified);
        assert_eq!(registered.reply.status, 0);
    });
}

#[test]
fn a_reply_signed_by_another_certificate_is_refused() {
    run(async {
        let mut config = SiteConfig::default();
        config.switches.sign_replies = true;
        let mp = Mp::start(config).await;
        let impostor = identity("IMPOSTOR");
        let verifier = ReplyVerifier::from_certificate_der(impostor.signing_cert_der()).unwrap();
        let client = mp.client_with(|c| c.reply_verifier = Some(verifier));
        let kind = request::<SiteInformation>("siteinfo-request.xml");
        let e = client.invoke(&kind, vec![], None).await.unwrap_err();
        assert!(matches!(e, Error::BadReplySignature { .. }), "{e}");
    });
}

#[test]
fn an_unsigned_reply_fails_when_a_signature_is_required() {
    run(async {
        let mp = Mp::stock().await;
        let keys = mp.client().mp_key_information().await.unwrap();
        let verifier = ReplyVerifier::from_key_information(&keys).unwrap();
        // Not required: an unsigned reply passes, as with the SDK.
        let lenient = mp.client_with(|c| c.reply_verifier = Some(verifier.clone()));
        let id = identity("WS01");
        let reply = lenient.invoke(&Reg::new(&id, "WS01").build(), vec![], None).await.unwrap();
        assert_eq!(reply.signature, ReplySignature::Absent);
        let strict = mp.client_with(|c| c.reply_verifier = Some(verifier.require_signature(true)));
        let e = register(&strict, Reg::new(&id, "WS01").build()).await.unwrap_err();
        assert!(matches!(e, Error::BadReplySignature { .. }), "{e}");
    });
}
