//! `cmmp register`: register an identity with a site, or clients on behalf of an ISV proxy.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use cmmp_model::kinds::ClientRegistration;
use cmmp_model::value::{AgentVersion, IsoTime, SmsId};
use cmmp_transport::cert::Identity;
use cmmp_transport::client::Client;
use cmmp_transport::msg::HostName;
use cmmp_transport::register::{
    AgentType, Approval, Backoff, Registration, RegistrationFlow, RegistrationSigner, Step,
    build_request,
};
use cmmp_transport::sign::HashAlgorithm;
use serde_json::json;

use crate::target::MpArgs;
use crate::{Error, Outcome, identity, progress, target};

/// What registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AgentKind {
    /// A client (AgentType 0).
    Client,
    /// An ISV proxy registering itself (AgentType 4); the site administrator imports its
    /// certificate first (`cmmp emulator import-proxy` on the emulator).
    Proxy,
    /// A device client (AgentType 2).
    Device,
}

/// Options of `cmmp register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    #[command(flatten)]
    pub(crate) mp: MpArgs,
    /// The site code the MP must serve (checked with `MPKEYINFORMATIONEX` first).
    #[arg(long, value_name = "CODE")]
    pub(crate) site: String,
    /// The identity that registers itself (`cmmp identity new`); the SMSID the site issues
    /// is saved in it (`smsid`).
    #[arg(long, value_name = "DIR", required_unless_present = "proxy", conflicts_with = "proxy")]
    pub(crate) identity: Option<PathBuf>,
    /// Register clients on behalf of the ISV proxy in DIR (registered, with an `smsid` file):
    /// AgentType 8, signed with the proxy's key. The clients' SMSIDs are printed and appended
    /// to DIR/clients.txt.
    #[arg(long, value_name = "DIR")]
    pub(crate) proxy: Option<PathBuf>,
    /// The NetBIOS name to register (repeat with `--proxy` for several clients); defaults to
    /// this machine's name.
    #[arg(long = "name", value_name = "NAME")]
    pub(crate) names: Vec<String>,
    /// The DNS domain appended to the name for `FQ Name`.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Option<String>,
    /// `HardwareID1` (e.g. `2:` and the SMBIOS UUID hash); only with a single name.
    #[arg(long, value_name = "ID")]
    pub(crate) hardware_id: Option<String>,
    /// What registers itself (without `--proxy`).
    #[arg(long, value_enum, default_value = "client")]
    pub(crate) agent_type: AgentKind,
    /// `Agent Edition` (`ClientEdition`): 5 Mac, 13 Unix/Linux.
    #[arg(long, value_name = "N")]
    pub(crate) edition: Option<u32>,
}

/// Registers with the pending → confirmation loop driven by the MP's answers.
pub(crate) async fn run_flow(
    client: &Client,
    reg: &Registration,
    identity: &Identity,
    signer: RegistrationSigner<'_>,
    hash: HashAlgorithm,
    backoff: Backoff,
) -> Result<(SmsId, Approval), Error> {
    let mut flow = RegistrationFlow::new(backoff);
    let mut step = flow.start();
    loop {
        match step {
            Step::Done { smsid, approval } => return Ok((smsid, approval)),
            Step::Send { kind, smsid, after } => {
                if !after.is_zero() {
                    tracing::info!(?after, %smsid, "registration pending; confirming later");
                }
                tokio::time::sleep(after).await;
                tracing::debug!(?kind, "sending ClientRegistrationRequest");
                let request =
                    build_request(reg, identity, signer, hash, kind, smsid, IsoTime::now())?;
                let reply = client.invoke(&ClientRegistration(request), vec![], None).await?;
                tracing::debug!(status = reply.reply.status, "registration answered");
                step = flow.answer(&reply.reply)?;
            }
        }
    }
}

/// A registration for `name`.
pub(crate) fn registration(
    name: &HostName,
    domain: Option<&str>,
    agent_type: AgentType,
    edition: Option<u32>,
    hardware_id: Option<&str>,
) -> Result<Registration, Error> {
    let fqdn = match domain {
        Some(d) => HostName::new(&format!("{}.{d}", name.as_str().to_ascii_lowercase()))?,
        None => name.clone(),
    };
    Ok(Registration {
        netbios_name: name.clone(),
        fqdn,
        locale_id: 1033,
        agent_identity: "cmmp".to_owned(),
        agent_version: AgentVersion::new(5, 0, 9128, 1000),
        agent_type,
        internet_flag: 0,
        agent_edition: edition,
        extra: hardware_id
            .map(|h| vec![("HardwareID1".to_owned(), h.to_owned())])
            .unwrap_or_default(),
    })
}

fn approval_text(approval: Approval) -> (&'static str, bool) {
    match approval {
        Approval::Approved => ("approved", true),
        Approval::NotApplicable => ("approval not required by the site", true),
        Approval::Pending => ("pending approval", false),
        Approval::NotApproved => ("not approved", false),
        Approval::Unknown(_) => ("approval not reported by the MP", true),
    }
}

/// Runs `cmmp register`.
pub(crate) async fn run(args: RegisterArgs) -> Result<Outcome, Error> {
    let client = args.mp.client()?;
    check_site(&client, &args.site).await?;
    let hash = args.mp.hash();
    let names: Vec<HostName> = if args.names.is_empty() {
        vec![target::local_host_name()]
    } else {
        args.names.iter().map(|n| HostName::new(n)).collect::<Result<_, _>>()?
    };
    if names.len() > 1 && (args.proxy.is_none() || args.hardware_id.is_some()) {
        return Err(Error::Usage(
            "several --name values register several clients: only with --proxy, and without \
             --hardware-id"
                .to_owned(),
        ));
    }

    if let Some(proxy_dir) = &args.proxy {
        let proxy = identity::load(proxy_dir)?;
        let proxy_id = target::recorded_smsid(proxy_dir)?.ok_or_else(|| {
            Error::Usage(format!(
                "the ISV proxy in {} is not registered: register it first with \
                 `cmmp register --identity {} --agent-type proxy`",
                proxy_dir.display(),
                proxy_dir.display()
            ))
        })?;
        let bar = progress(names.len() as u64, "registering clients");
        let mut rows = Vec::new();
        let mut human = String::new();
        let mut all_approved = true;
        for name in &names {
            let reg = registration(
                name,
                args.domain.as_deref(),
                AgentType::IsvProxyClient,
                args.edition,
                args.hardware_id.as_deref(),
            )?;
            let signer = RegistrationSigner::Proxy { key: proxy.signing_key(), proxy_id };
            let (smsid, approval) =
                run_flow(&client, &reg, &proxy, signer, hash, Backoff::default()).await?;
            let (text, approved) = approval_text(approval);
            all_approved &= approved;
            append_client(proxy_dir, name, &smsid)?;
            human.push_str(&format!("{name}  {smsid}  {text}\n"));
            rows.push(json!({ "name": name.as_str(), "smsid": smsid, "approval": text }));
            bar.inc(1);
        }
        bar.finish_and_clear();
        human.push_str(&format!(
            "{} client(s) registered through ISV proxy {proxy_id}; SMSIDs appended to {}",
            names.len(),
            proxy_dir.join("clients.txt").display()
        ));
        if !all_approved {
            human.push_str(&approval_hint());
        }
        return Ok(Outcome::new(human, json!({ "proxy": proxy_id, "clients": rows })));
    }

    let dir = args.identity.as_deref().ok_or_else(|| {
        Error::Usage("give --identity DIR (or --proxy DIR for a proxy's client)".to_owned())
    })?;
    let identity = identity::load(dir)?;
    let agent_type = match args.agent_type {
        AgentKind::Client => AgentType::AdvancedClient,
        AgentKind::Proxy => AgentType::IsvProxy,
        AgentKind::Device => AgentType::Device,
    };
    let name = &names[0];
    let reg = registration(
        name,
        args.domain.as_deref(),
        agent_type,
        args.edition,
        args.hardware_id.as_deref(),
    )?;
    let (smsid, approval) =
        run_flow(&client, &reg, &identity, RegistrationSigner::Own, hash, Backoff::default())
            .await?;
    target::record_smsid(dir, &smsid)?;
    let (text, approved) = approval_text(approval);
    let mut human =
        format!("registered {name} as {smsid} ({text}); SMSID saved in {}", dir.display());
    if !approved {
        human.push_str(&approval_hint());
    }
    Ok(Outcome::new(
        human,
        json!({ "name": name.as_str(), "smsid": smsid, "approval": text, "approved": approved }),
    ))
}

fn approval_hint() -> String {
    "\nThe site has not approved this registration: until an administrator approves it, the MP \
     sends no policy (the emulator: `cmmp emulator approve SMSID`; ConfigMgr: the console's \
     Devices node, Approve)."
        .to_owned()
}

/// Checks that the MP serves `site` (`MPKEYINFORMATIONEX`).
async fn check_site(client: &Client, site: &str) -> Result<(), Error> {
    if site.len() != 3 || !site.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::Usage(format!(
            "--site {site:?}: a site code is three letters or digits"
        )));
    }
    let info = client.mp_key_information().await?;
    match info.sitecode.as_deref().or(info.assignment_site_code.as_deref()) {
        Some(code) if code.eq_ignore_ascii_case(site) => Ok(()),
        Some(code) => Err(Error::Usage(format!(
            "the MP {} serves site {code}, not {site}; check --site and --mp",
            client.base_url()
        ))),
        None => Ok(()),
    }
}

fn append_client(dir: &std::path::Path, name: &HostName, smsid: &SmsId) -> Result<(), Error> {
    use std::io::Write;
    let path = dir.join("clients.txt");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::Io(path.display().to_string(), e))?;
    writeln!(file, "{name}\t{smsid}").map_err(|e| Error::Io(path.display().to_string(), e))
}
