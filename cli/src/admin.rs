//! `cmmp emulator clients|approve|block|…`: the emulator's admin surface, over its JSON admin
//! API (`/cmmp-admin/…` on the emulator's listener, see `cmmp_emulator::admin`).
//!
//! The admin API is plain HTTP on loopback, one request per connection; the few lines of
//! HTTP/1.1 here (request written by hand, response head parsed by `httparse`) avoid pulling
//! a general HTTP client into the CLI for it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use cmmp_model::value::SmsId;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Error, Outcome};

/// Where the emulator's admin API is.
#[derive(Debug, Clone, Args)]
pub(crate) struct AdminArgs {
    /// The emulator's address, as `cmmp emulator serve` printed it.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) admin: String,
}

/// How to resolve a conflicting record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Resolution {
    /// Merge the new registration into the existing record.
    Merge,
    /// Keep the new registration as a new record.
    New,
    /// Block the new registration.
    Block,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// List the site's clients (or show one with its inventory versions and discovery).
    Clients {
        #[command(flatten)]
        at: AdminArgs,
        /// Show only this client, in detail.
        smsid: Option<SmsId>,
    },
    /// Approve a client: the site then sends it policy.
    Approve {
        #[command(flatten)]
        at: AdminArgs,
        /// The client.
        smsid: SmsId,
    },
    /// Block a client: the site refuses it on every endpoint.
    Block {
        #[command(flatten)]
        at: AdminArgs,
        /// The client.
        smsid: SmsId,
    },
    /// Unblock a client.
    Unblock {
        #[command(flatten)]
        at: AdminArgs,
        /// The client.
        smsid: SmsId,
    },
    /// List conflicting records (duplicate hardware IDs under manual resolution), or resolve
    /// one with `ID --action merge|new|block`.
    Resolve {
        #[command(flatten)]
        at: AdminArgs,
        /// The conflict to resolve.
        id: Option<i64>,
        /// What to do with it.
        #[arg(long, value_enum, requires = "id")]
        action: Option<Resolution>,
    },
    /// A client's stored inventory instances.
    Inventory {
        #[command(flatten)]
        at: AdminArgs,
        /// The client.
        smsid: SmsId,
    },
    /// The latest messages the site received (of one client with SMSID), with their outcome
    /// (stored, duplicate, refused, answered, failed) and the reason for each refusal or
    /// failure.
    Messages {
        #[command(flatten)]
        at: AdminArgs,
        /// Only this client's messages.
        smsid: Option<SmsId>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// List, add or clear injected faults.
    Faults {
        #[command(flatten)]
        at: AdminArgs,
        #[command(subcommand)]
        action: Option<FaultAction>,
    },
    /// Import an ISV proxy's signing certificate (PEM or DER), as the site administrator does
    /// before the proxy registers; prints the SMSID reserved for it.
    ImportProxy {
        #[command(flatten)]
        at: AdminArgs,
        /// The certificate file (e.g. `signing.pem` of `cmmp identity new`).
        cert: PathBuf,
    },
}

/// `cmmp emulator faults …`.
#[derive(Debug, Subcommand)]
pub(crate) enum FaultAction {
    /// Add a fault.
    Add {
        /// `Msg/TargetEndpoint` (e.g. `MP_PolicyManager`), `.sms_pol`, or `*` for all.
        #[arg(long)]
        endpoint: String,
        /// What happens.
        #[arg(long, value_parser = ["empty-reply", "html-500", "delay", "drop-connection", "registration-pending", "policy-not-ready"])]
        kind: String,
        /// The delay of a `delay` fault, in milliseconds.
        #[arg(long)]
        delay_ms: Option<u64>,
        /// How many requests it applies to (default: all).
        #[arg(long)]
        remaining: Option<u32>,
    },
    /// Remove every fault.
    Clear,
}

/// An HTTP answer from the admin API.
struct Answer {
    status: u16,
    body: Value,
}

/// One admin request; `Connection: close`, body read to the end (at most 256 MiB).
async fn request(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Answer, Error> {
    let (scheme, host, port) = crate::target::parse_mp_url(base)
        .map_err(|_| Error::Usage(format!("--admin {base:?}: expected http://HOST:PORT")))?;
    if scheme != cmmp_transport::client::Scheme::Http {
        return Err(Error::Usage(format!("--admin {base:?}: the admin API is plain http://")));
    }
    let port = port.unwrap_or(80);
    let context = format!("the emulator's admin API at http://{host}:{port}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} /cmmp-admin/{path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut reply = Vec::new();
        stream.take(256 << 20).read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| Error::Admin(format!("{context}: no answer within 60 s")))?
        .map_err(|e| {
            Error::Admin(format!("{context}: {e} (is `cmmp emulator serve` running there?)"))
        })?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = response.parse(&reply) else {
        return Err(Error::Admin(format!("{context}: not an HTTP answer")));
    };
    let status = response.code.unwrap_or(0);
    let body = serde_json::from_slice(&reply[head_len..])
        .map_err(|e| Error::Admin(format!("{context}: HTTP {status}, not JSON: {e}")))?;
    Ok(Answer { status, body })
}

/// The answer's JSON, or its `error` as an [`Error::Admin`].
fn ok(answer: Answer) -> Result<Value, Error> {
    if answer.status == 200 {
        Ok(answer.body)
    } else {
        let message =
            answer.body.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned();
        Err(Error::Admin(format!("HTTP {}: {message}", answer.status)))
    }
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn client_line(c: &Value) -> String {
    let agent = match c.get("agent_type").and_then(Value::as_i64) {
        Some(0) => "client".to_owned(),
        Some(4) => "ISV proxy".to_owned(),
        Some(8) => "proxy client".to_owned(),
        Some(n) => format!("type {n}"),
        None => "-".to_owned(),
    };
    let mut state = Vec::new();
    state.push(if flag(c, "approved") { "approved" } else { "not approved" });
    if !flag(c, "registered") {
        state.push("pending");
    }
    if flag(c, "blocked") {
        state.push("BLOCKED");
    }
    if flag(c, "obsolete") {
        state.push("obsolete");
    }
    if !c.get("conflict").is_none_or(Value::is_null) {
        state.push("conflict");
    }
    format!(
        "{:<45} {:<16} {:<13} {}",
        text(c, "smsid"),
        text(c, "netbios_name"),
        agent,
        state.join(", ")
    )
}

/// Runs an admin subcommand.
pub(crate) async fn run(command: AdminCommand) -> Result<Outcome, Error> {
    match command {
        AdminCommand::Clients { at, smsid: None } => {
            let v = ok(request(&at.admin, "GET", "clients", None).await?)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            let mut human = format!("{:<45} {:<16} {:<13} state", "SMSID", "name", "agent");
            for c in &rows {
                human.push('\n');
                human.push_str(&client_line(c));
            }
            human.push_str(&format!("\n{} client record(s)", rows.len()));
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Clients { at, smsid: Some(id) } => {
            let v = ok(request(&at.admin, "GET", &format!("clients/{id}"), None).await?)?;
            let c = &v["client"];
            let mut human = client_line(c);
            human.push_str(&format!(
                "\n  FQDN {}  hardware ID {}  agent {} {}\n  registered {}  last seen {}",
                text(c, "fqdn"),
                text(c, "hardware_id"),
                text(c, "agent_identity"),
                text(c, "agent_version"),
                text(c, "registered_at"),
                text(c, "last_seen"),
            ));
            if let Some(versions) = v["inventory_versions"].as_array() {
                for iv in versions {
                    human.push_str(&format!("\n  inventory {}", iv));
                }
            }
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Approve { at, smsid } => change(&at, &smsid, "approve", "approved").await,
        AdminCommand::Block { at, smsid } => change(&at, &smsid, "block", "blocked").await,
        AdminCommand::Unblock { at, smsid } => change(&at, &smsid, "unblock", "unblocked").await,
        AdminCommand::Resolve { at, id: None, .. } => {
            let v = ok(request(&at.admin, "GET", "conflicts", None).await?)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            let mut human = String::new();
            for c in &rows {
                human.push_str(&format!(
                    "conflict {}: {} has hardware ID {} of record {}{}\n",
                    text(c, "id"),
                    text(c, "parked_smsid"),
                    text(c, "hardware_id"),
                    text(c, "existing"),
                    if c.get("resolved").is_none_or(Value::is_null) { "" } else { " (resolved)" }
                ));
            }
            human.push_str(&format!(
                "{} conflicting record(s); resolve one with `cmmp emulator resolve ID --action merge|new|block`",
                rows.len()
            ));
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Resolve { at, id: Some(id), action } => {
            let action = match action {
                Some(Resolution::Merge) => "merge",
                Some(Resolution::New) => "new",
                Some(Resolution::Block) => "block",
                None => {
                    return Err(Error::Usage(
                        "say how to resolve it: --action merge|new|block".to_owned(),
                    ));
                }
            };
            let path = format!("conflicts/{id}/resolve?action={action}");
            let v = ok(request(&at.admin, "POST", &path, None).await?)?;
            Ok(Outcome::new(format!("conflict {id} resolved ({action})"), v))
        }
        AdminCommand::Inventory { at, smsid } => {
            let v =
                ok(request(&at.admin, "GET", &format!("clients/{smsid}/inventory"), None).await?)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            let mut human = String::new();
            for i in &rows {
                human.push_str(&format!(
                    "{:<40} {:<28} {}\n",
                    text(i, "class"),
                    text(i, "action"),
                    text(i, "key")
                ));
            }
            human.push_str(&format!("{} inventory instance(s) for {smsid}", rows.len()));
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Messages { at, smsid, limit } => {
            let path = match smsid {
                Some(id) => format!("clients/{id}/messages?limit={limit}"),
                None => format!("messages?limit={limit}"),
            };
            let v = ok(request(&at.admin, "GET", &path, None).await?)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            let mut human = String::new();
            for m in &rows {
                human.push_str(&format!(
                    "{} {:<18} {:<45} {:<9} {}\n",
                    text(m, "received"),
                    text(m, "kind"),
                    text(m, "smsid"),
                    text(m, "outcome"),
                    text(m, "reason")
                ));
            }
            human.push_str(&format!("{} message(s)", rows.len()));
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Faults { at, action: None } => {
            let v = ok(request(&at.admin, "GET", "faults", None).await?)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            let mut human = String::new();
            for f in &rows {
                let spec = &f["spec"];
                human.push_str(&format!(
                    "fault {}: {} on {}{}{} (from {})\n",
                    text(f, "id"),
                    text(spec, "kind"),
                    text(spec, "endpoint"),
                    spec["delay_ms"].as_u64().map(|ms| format!(", {ms} ms")).unwrap_or_default(),
                    spec["remaining"]
                        .as_u64()
                        .map(|n| format!(", {n} more request(s)"))
                        .unwrap_or_else(|| ", every request".to_owned()),
                    text(f, "source"),
                ));
            }
            human.push_str(&format!("{} fault(s)", rows.len()));
            Ok(Outcome::new(human, v))
        }
        AdminCommand::Faults {
            at,
            action: Some(FaultAction::Add { endpoint, kind, delay_ms, remaining }),
        } => {
            let fault = json!({ "endpoint": endpoint, "kind": kind, "delay_ms": delay_ms, "remaining": remaining });
            let body = serde_json::to_vec(&fault).map_err(|e| Error::Usage(e.to_string()))?;
            let v = ok(request(&at.admin, "POST", "faults", Some(body)).await?)?;
            Ok(Outcome::new(format!("fault {} added: {kind} on {endpoint}", text(&v, "id")), v))
        }
        AdminCommand::Faults { at, action: Some(FaultAction::Clear) } => {
            let v = ok(request(&at.admin, "DELETE", "faults", None).await?)?;
            Ok(Outcome::new("every fault cleared".to_owned(), v))
        }
        AdminCommand::ImportProxy { at, cert } => {
            let bytes = crate::target::read(&cert)?;
            let der = match openssl::x509::X509::from_pem(&bytes) {
                Ok(c) => c.to_der().map_err(|e| Error::Input {
                    path: cert.display().to_string(),
                    message: e.to_string(),
                })?,
                Err(_) => bytes,
            };
            let v = ok(request(&at.admin, "POST", "proxies", Some(der)).await?)?;
            Ok(Outcome::new(
                format!(
                    "ISV proxy certificate imported; the proxy's SMSID is {}; it can register now",
                    text(&v, "smsid")
                ),
                v,
            ))
        }
    }
}

async fn change(at: &AdminArgs, smsid: &SmsId, action: &str, done: &str) -> Result<Outcome, Error> {
    let v = ok(request(&at.admin, "POST", &format!("clients/{smsid}/{action}"), None).await?)?;
    Ok(Outcome::new(format!("{smsid} {done}"), v))
}
