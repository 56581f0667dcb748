//! `cmmp policy`, `cmmp locate …` and `cmmp mp info`: the questions a client asks its MP.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cmmp_model::kinds::{
    AssignedSite, ContentLocation, EnumerateMpLocation, LocalMpLocation, PolicyAssignments,
    SiteInformation, WsusLocation,
};
use cmmp_model::location::{
    AssignedSite as AssignedSiteRef, AssignedSiteRequest, ClientLocationInfo,
    ContentLocationRequest, EnumerateMpLocationRequest, IpAddress, IpAddresses,
    LocalMpLocationRequest, LocationKind, MpLocationRequestKind, MpSite, NameRef, PackageRef,
    SiteInformationRequest, WsusContent, WsusLocationRequest,
};
use cmmp_model::policy::{
    AssignmentRequestKind, PolicyResource, RequestAssignments, RequestIdentification,
    RequestMachine, RequestUser, ResourceKind,
};
use cmmp_model::value::{BracedGuid, SmsId};
use cmmp_transport::client::PolicyAuth;
use cmmp_transport::reply::policy_needs_auth;
use cmmp_transport::sign::TokenScheme;
use cmmp_transport::wire::Signer;
use serde_json::{Value, json};

use crate::target::MpArgs;
use crate::{Error, Outcome, identity, progress, target};

/// Options of `cmmp policy`.
#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    #[command(flatten)]
    pub(crate) mp: MpArgs,
    /// The identity that signs the request and the download tokens (and decrypts secret
    /// policies): the client's own, or the ISV proxy's with `--client-id`.
    #[arg(long, value_name = "DIR")]
    pub(crate) identity: PathBuf,
    /// The client asking (default: the SMSID saved in the identity by `cmmp register`).
    #[arg(long, value_name = "SMSID")]
    pub(crate) client_id: Option<SmsId>,
    /// The client's NetBIOS name (default: this machine's name).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// The site code for `PolicySource` (default: asked from the MP).
    #[arg(long, value_name = "CODE")]
    pub(crate) site: Option<String>,
    /// Also download every policy body (signed token headers; secret bodies decrypted with
    /// the identity's encryption key).
    #[arg(long)]
    pub(crate) download: bool,
    /// Write downloaded bodies to DIR as `<PolicyID>.<PolicyVersion>.xml` (secret ones with
    /// mode 0600) instead of only summarising them.
    #[arg(long, value_name = "DIR", requires = "download")]
    pub(crate) out: Option<PathBuf>,
}

/// Where the client is, for location requests.
#[derive(Debug, Clone, Args)]
pub(crate) struct Whereabouts {
    /// The client's IP address.
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) ip: Option<String>,
    /// The client's subnet address (e.g. 10.20.30.0).
    #[arg(long, value_name = "ADDRESS", requires = "ip")]
    pub(crate) subnet: Option<String>,
    /// The client's Active Directory site.
    #[arg(long, value_name = "NAME")]
    pub(crate) ad_site: Option<String>,
    /// The client's AD domain (and forest).
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Option<String>,
}

impl Whereabouts {
    fn info(&self) -> ClientLocationInfo {
        let name = |s: &Option<String>| s.as_ref().map(|n| NameRef::new(n.clone()));
        ClientLocationInfo {
            ad_site: name(&self.ad_site),
            forest: name(&self.domain),
            domain: name(&self.domain),
            ip_addresses: self.ip.as_ref().map(|ip| IpAddresses {
                ip_address: vec![IpAddress {
                    subnet_address: self.subnet.clone(),
                    address: ip.clone(),
                }],
            }),
            ..ClientLocationInfo::default()
        }
    }
}

/// `cmmp locate …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LocateCommand {
    /// Distribution points for a package (`ContentLocationRequest`).
    Content {
        #[command(flatten)]
        mp: MpArgs,
        /// The package or content ID (`P0100012`, or `UID:Content_…` for an application).
        #[arg(long, value_name = "ID")]
        package: String,
        /// The content version.
        #[arg(long, default_value_t = 1)]
        version: u32,
        /// The client's assigned site.
        #[arg(long, value_name = "CODE")]
        site: String,
        #[command(flatten)]
        at: Whereabouts,
    },
    /// The software update point (`WSUSLocationRequest`).
    Wsus {
        #[command(flatten)]
        mp: MpArgs,
        /// The client's assigned site.
        #[arg(long, value_name = "CODE")]
        site: String,
        /// The update source content ID (braced GUID) the client scans against.
        #[arg(long, value_name = "GUID", default_value = "{00000000-0000-0000-0000-000000000000}")]
        content_id: BracedGuid,
        /// The update source content version.
        #[arg(long, default_value_t = 1)]
        content_version: u32,
        #[command(flatten)]
        at: Whereabouts,
    },
    /// Management points: the local MP (`LocalMPLocationRequest`), or with `--all` every MP
    /// of the site (`EnumerateMPLocationRequest`).
    Mp {
        #[command(flatten)]
        mp: MpArgs,
        /// The client's assigned site.
        #[arg(long, value_name = "CODE")]
        site: String,
        /// Enumerate the site's MPs instead of asking for the local one.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        at: Whereabouts,
    },
    /// The site: with `--site`, its information (`SiteInformationRequest`); without, the site
    /// a client at this location is assigned to (`AssignedSiteRequest`).
    Site {
        #[command(flatten)]
        mp: MpArgs,
        /// The site to describe.
        #[arg(long, value_name = "CODE")]
        site: Option<String>,
        #[command(flatten)]
        at: Whereabouts,
    },
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn site_code(code: &str) -> Result<String, Error> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(Error::Usage(format!("{code:?} is not a site code (three letters or digits)")))
    }
}

fn mp_site_line(site: &MpSite) -> String {
    format!(
        "site {} (HTTP port {}, HTTPS port {})",
        site.site_code,
        site.iis_prefered_port.map(|p| p.to_string()).unwrap_or_else(|| "-".to_owned()),
        site.iisssl_prefered_port.map(|p| p.to_string()).unwrap_or_else(|| "-".to_owned())
    )
}

/// Runs `cmmp locate …`.
pub(crate) async fn locate(command: LocateCommand) -> Result<Outcome, Error> {
    match command {
        LocateCommand::Content { mp, package, version, site, at } => {
            let client = mp.client()?;
            let request = ContentLocationRequest {
                schema_version: "1.00".to_owned(),
                exclude_file_list: None,
                bgr_version: Some(1),
                package: Some(PackageRef { id: package.clone(), version }),
                assigned_site: AssignedSiteRef { site_code: site_code(&site)? },
                client_package: None,
                client_location_info: ClientLocationInfo {
                    location_type: Some(LocationKind::SmsPackage),
                    allow_http: Some(1),
                    allow_smb: Some(1),
                    ..at.info()
                },
            };
            let reply = client.invoke(&ContentLocation(request), vec![], None).await?.reply;
            let mut human = String::new();
            let mut count = 0;
            for s in &reply.sites.site {
                human.push_str(&format!("{}\n", mp_site_line(&s.mp_site)));
                for r in s.location_records.iter().flat_map(|r| &r.location_record) {
                    count += 1;
                    for u in &r.url {
                        human.push_str(&format!(
                            "  {}  {}\n",
                            r.locality.as_deref().unwrap_or("-"),
                            u.name
                        ));
                    }
                    for p in &r.smb_path {
                        human.push_str(&format!(
                            "  {}  {}\n",
                            r.locality.as_deref().unwrap_or("-"),
                            p.name
                        ));
                    }
                }
            }
            if count == 0 {
                human.push_str(&format!(
                    "no distribution point has {package} for a client at this location (check \
                     --ip/--subnet/--ad-site against the site's boundaries)\n"
                ));
            }
            Ok(Outcome::new(human.trim_end().to_owned(), to_json(&reply)))
        }
        LocateCommand::Wsus { mp, site, content_id, content_version, at } => {
            let client = mp.client()?;
            let request = WsusLocationRequest {
                schema_version: "1.00".to_owned(),
                content: WsusContent { id: content_id, version: content_version },
                assigned_site: AssignedSiteRef { site_code: site_code(&site)? },
                client_location_info: at.info(),
            };
            let reply = client.invoke(&WsusLocation(request), vec![], None).await?.reply;
            let mut human = String::new();
            for s in &reply.sites.site {
                human.push_str(&format!("{}\n", mp_site_line(&s.mp_site)));
                for r in s.location_records.iter().flat_map(|r| &r.location_record) {
                    human.push_str(&format!(
                        "  {}  (server {}, version {})\n",
                        r.wsusurl,
                        r.server_name.as_deref().unwrap_or("-"),
                        r.version.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
                    ));
                }
            }
            if !human.contains("  ") {
                human.push_str("no software update point serves a client at this location\n");
            }
            Ok(Outcome::new(human.trim_end().to_owned(), to_json(&reply)))
        }
        LocateCommand::Mp { mp, site, all, at } => {
            let client = mp.client()?;
            let site = site_code(&site)?;
            if all {
                let request = EnumerateMpLocationRequest {
                    schema_version: "1.00".to_owned(),
                    request_type: MpLocationRequestKind::Assigned,
                    site_code: NameRef::new(site),
                    client_location_info: at.info(),
                };
                let reply = client.invoke(&EnumerateMpLocation(request), vec![], None).await?.reply;
                let mut human = reply.mp_site.as_ref().map(mp_site_line).unwrap_or_default();
                for r in reply.location_records.iter().flat_map(|r| &r.location_record) {
                    human.push_str(&format!(
                        "\n  {}{}",
                        r.intranet_name.as_ref().map(|v| v.value.as_str()).unwrap_or("-"),
                        r.internet_name
                            .as_ref()
                            .map(|v| format!(" (Internet: {})", v.value))
                            .unwrap_or_default()
                    ));
                }
                Ok(Outcome::new(human, to_json(&reply)))
            } else {
                let request = LocalMpLocationRequest {
                    schema_version: "1.00".to_owned(),
                    assigned_site: AssignedSiteRef { site_code: site },
                    client_location_info: at.info(),
                    package: None,
                };
                let reply = client.invoke(&LocalMpLocation(request), vec![], None).await?.reply;
                let human = reply
                    .sites
                    .site
                    .iter()
                    .map(|s| mp_site_line(&s.mp_site))
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(Outcome::new(human, to_json(&reply)))
            }
        }
        LocateCommand::Site { mp, site, at } => {
            let client = mp.client()?;
            match site {
                Some(code) => {
                    let request = SiteInformationRequest {
                        schema_version: "1.00".to_owned(),
                        site_code: NameRef::new(site_code(&code)?),
                    };
                    let reply = client.invoke(&SiteInformation(request), vec![], None).await?.reply;
                    let human = match &reply.site {
                        Some(s) => format!(
                            "site {} version {} build {} default MP {}",
                            s.site_code.as_deref().unwrap_or("-"),
                            s.version.as_deref().unwrap_or("-"),
                            s.build_number.map(|b| b.to_string()).unwrap_or_else(|| "-".to_owned()),
                            s.default_mp.as_deref().unwrap_or("-")
                        ),
                        None => format!("the MP does not know site {code}"),
                    };
                    Ok(Outcome::new(human, to_json(&reply)))
                }
                None => {
                    let request = AssignedSiteRequest {
                        schema_version: Some("1.00".to_owned()),
                        client_location_info: at.info(),
                    };
                    let reply = client.invoke(&AssignedSite(request), vec![], None).await?.reply;
                    let human = match &reply.site {
                        Some(s) => format!(
                            "assigned site {} (version {}, default MP {})",
                            s.site_code.as_deref().unwrap_or("-"),
                            s.version.as_deref().unwrap_or("-"),
                            s.default_mp.as_deref().unwrap_or("-")
                        ),
                        None => "no site's boundaries cover a client at this location".to_owned(),
                    };
                    Ok(Outcome::new(human, to_json(&reply)))
                }
            }
        }
    }
}

/// Runs `cmmp mp info`: MPLIST, the MP's certificates and its key information.
pub(crate) async fn mp_info(mp: MpArgs) -> Result<Outcome, Error> {
    let client = mp.client()?;
    let list = client.mp_list().await?;
    let certs = client.mp_certificates().await?;
    let keys = client.mp_key_information().await?;
    let mut human = format!("management point {}\n", client.base_url());
    human.push_str(&format!(
        "site code: {}  MP: {} ({})\n",
        keys.sitecode.as_deref().unwrap_or("-"),
        keys.machinename.as_deref().unwrap_or("-"),
        keys.fqdn.as_deref().unwrap_or("-")
    ));
    human.push_str("MPLIST:\n");
    for m in &list.mp {
        human.push_str(&format!(
            "  {} ({}) site {} version {}\n",
            m.name,
            m.fqdn.as_deref().unwrap_or("-"),
            m.site_code.as_deref().unwrap_or("-"),
            m.version.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
        ));
    }
    let describe = |label: &str, der: Option<&[u8]>| -> String {
        match der.map(openssl::x509::X509::from_der) {
            Some(Ok(cert)) => {
                let subject = cert
                    .subject_name()
                    .entries()
                    .filter_map(|e| e.data().to_string().ok())
                    .collect::<Vec<_>>()
                    .join(", ");
                let digest = cert
                    .digest(openssl::hash::MessageDigest::sha256())
                    .map(|d| d.iter().map(|b| format!("{b:02X}")).collect::<String>())
                    .unwrap_or_default();
                format!("{label}: {subject}, expires {}, SHA-256 {digest}\n", cert.not_after())
            }
            Some(Err(e)) => format!("{label}: not a certificate ({e})\n"),
            None => format!("{label}: none\n"),
        }
    };
    human.push_str(&describe(
        "signing certificate",
        certs.certificate1.as_ref().map(|c| c.value.0.as_slice()),
    ));
    human.push_str(&describe(
        "encryption certificate",
        certs.certificate2.as_ref().map(|c| c.value.0.as_slice()),
    ));
    human.push_str(&describe(
        "trusted root key",
        keys.trustedrootkey.as_ref().map(|c| c.value.0.as_slice()),
    ));
    Ok(Outcome::new(
        human.trim_end().to_owned(),
        json!({ "mplist": to_json(&list), "certificates": to_json(&certs), "key_information": to_json(&keys) }),
    ))
}

/// Runs `cmmp policy`.
pub(crate) async fn policy(args: PolicyArgs) -> Result<Outcome, Error> {
    let client = args.mp.client()?;
    let client_id = target::client_id(&args.identity, args.client_id)?;
    let identity = identity::load(&args.identity)?;
    let site = match &args.site {
        Some(code) => site_code(code)?,
        None => client.mp_key_information().await?.sitecode.ok_or_else(|| {
            Error::Usage("the MP did not say its site code; give --site".to_owned())
        })?,
    };
    let name = args.name.clone().unwrap_or_else(|| target::local_host_name().to_string());
    let request = RequestAssignments {
        schema_version: "1.00".to_owned(),
        ack: false,
        request_type: AssignmentRequestKind::Always,
        validation_requested: None,
        identification: RequestIdentification {
            machine: RequestMachine { client_id, fqdn: None, net_bios_name: Some(name), sid: None },
            user: RequestUser::default(),
        },
        policy_source: format!("SMS:{site}"),
        resource: PolicyResource { resource_type: ResourceKind::Machine },
        server_cookie: String::new(),
    };
    let signer = Signer::new(identity.signing_key(), client_id, args.mp.hash())?;
    let reply = client
        .invoke(&PolicyAssignments(request), vec![], Some(&signer))
        .await
        .map_err(|e| Error::hint(e, &not_approved_hint(&client_id)))?
        .reply;
    let mut human = format!(
        "{} policy assignment(s) for {client_id} (reply {}, cookie {:?})",
        reply.policy_assignment.len(),
        reply.reply_type.as_str(),
        reply.server_cookie
    );
    let mut rows = Vec::new();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.display().to_string(), e))?;
    }
    let bar = progress(
        if args.download { reply.policy_assignment.len() as u64 } else { 0 },
        "downloading policies",
    );
    for a in &reply.policy_assignment {
        let p = &a.policy;
        let mut row = json!({
            "assignment": a.policy_assignment_id,
            "policy": p.policy_id,
            "version": p.policy_version,
            "category": p.policy_category,
            "flags": p.policy_flags,
            "location": p.policy_location.value,
        });
        human.push_str(&format!(
            "\n  {} v{} {} flags {}",
            p.policy_id,
            p.policy_version,
            p.policy_category,
            p.policy_flags.unwrap_or(0)
        ));
        if args.download {
            let auth =
                PolicyAuth { identity: &identity, client_id, scheme: TokenScheme::ClientToken };
            let body = client.download_policy(&p.policy_location.value, Some(auth)).await?;
            let secret = body.encryption.is_some() || policy_needs_auth(p.policy_flags);
            let text = body.text.expose();
            let parsed = body.policy(client.limits())?;
            let what = format!(
                "{} bytes, {} rule(s){}{}",
                text.len(),
                parsed.policy_rule.len(),
                if body.encryption.is_some() { ", decrypted" } else { "" },
                if body.compressed { ", compressed" } else { "" }
            );
            human.push_str(&format!(": {what}"));
            row["downloaded"] = json!({
                "bytes": text.len(),
                "rules": parsed.policy_rule.len(),
                "decrypted": body.encryption.is_some(),
                "compressed": body.compressed,
            });
            if let Some(dir) = &args.out {
                let path = write_policy(dir, &p.policy_id, &p.policy_version, text, secret)?;
                human.push_str(&format!(" -> {}", path.display()));
                row["file"] = json!(path.display().to_string());
            }
            bar.inc(1);
        }
        rows.push(row);
    }
    bar.finish_and_clear();
    Ok(Outcome::new(
        human,
        json!({ "client": client_id, "reply_type": reply.reply_type.as_str(), "server_cookie": reply.server_cookie, "assignments": rows }),
    ))
}

fn not_approved_hint(client_id: &SmsId) -> String {
    format!(
        "if {client_id} was registered recently, the site may not have approved it yet: an \
         administrator must approve it (the emulator: `cmmp emulator approve {client_id}`)"
    )
}

fn write_policy(
    dir: &Path,
    id: &str,
    version: &str,
    text: &str,
    secret: bool,
) -> Result<PathBuf, Error> {
    let safe = |s: &str| -> String {
        s.chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' },
            )
            .collect()
    };
    let id = id.trim().trim_start_matches('{').trim_end_matches('}');
    let path = dir.join(format!("{}.{}.xml", safe(id), safe(version)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options.open(&path).map_err(|e| Error::Io(path.display().to_string(), e))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|e| Error::Io(path.display().to_string(), e))?;
    Ok(path)
}
