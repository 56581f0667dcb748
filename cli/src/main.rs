//! `cmmp`: the command-line tool of the cmmp toolkit for ConfigMgr management points.
//!
//! The CLI is thin (house style HS-63): arguments, output and exit codes; the protocol lives
//! in `cmmp-transport` and `cmmp-emulator`.
//!
//! Exit codes: 0 success; 1 the demo's check found a mismatch; 2 bad arguments or input;
//! 3 the management point refused or failed; 4 a local error (files, database).

#![forbid(unsafe_code)]

mod admin;
mod demo;
mod identity;
mod messages;
mod query;
mod register;
mod serve;
mod target;
mod wire;

/// mimalloc rather than the system allocator: the emulator's request path allocates many
/// small strings per message on several threads, and glibc's allocator (`malloc`, `free`,
/// `malloc_consolidate`) took about a tenth of its CPU time in the load benchmark. The
/// library crates leave the choice to the program that embeds them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use cmmp_emulator::site::ApprovalPolicy;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_model::value::SmsId;
use cmmp_transport::cert::CertError;
use cmmp_transport::wire::Fresh;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::messages::{Build, Input, Kind, PostKind};
use crate::target::MpArgs;

/// cmmp: speak the ConfigMgr management point interface from anywhere.
///
/// A typical ISV proxy session against the emulator:
///
///   cmmp emulator serve --db site.db &
///   cmmp identity new --dir proxy
///   cmmp emulator import-proxy proxy/signing.pem
///   cmmp register --mp http://127.0.0.1:8080 --site P01 --identity proxy --agent-type proxy
///   cmmp register --mp http://127.0.0.1:8080 --site P01 --proxy proxy --name MAC-001
///   cmmp send ddr --mp http://127.0.0.1:8080 --identity proxy --client-id GUID:… --from ddr.xml
///   cmmp emulator approve GUID:…       (policy only for approved clients)
///   cmmp policy --mp http://127.0.0.1:8080 --identity proxy --client-id GUID:… --download
#[derive(Debug, Parser)]
#[command(name = "cmmp", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Log what happens (requests, replies, timings) to stderr; twice for more detail.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print results as JSON on stdout, for scripts (errors stay on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ISV proxy workflow end to end against the embedded emulator and check the
    /// site database against what was sent (exit 1 on a mismatch).
    Demo {
        /// How many clients the ISV proxy registers and reports for.
        #[arg(long, default_value_t = 50)]
        clients: u32,
        /// The site database file (default: a temporary file).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Keep the site database and print where it is.
        #[arg(long)]
        keep: bool,
    },
    /// The local management point: serve it, and administer a running one.
    Emulator {
        #[command(subcommand)]
        command: EmulatorCommand,
    },
    /// Create, import or show a signing + encryption identity.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Register an identity with a site, or clients on behalf of an ISV proxy; waits through
    /// "pending" and says when an administrator must approve.
    Register(register::RegisterArgs),
    /// Send a report or message (Post) read from a JSON or XML file, signed with an identity.
    Send(SendArgs),
    /// Ask for machine policy assignments and, with --download, the policy bodies.
    Policy(query::PolicyArgs),
    /// Ask where content, the software update point, management points or the site are.
    Locate {
        #[command(subcommand)]
        command: query::LocateCommand,
    },
    /// Ask a management point about itself.
    Mp {
        #[command(subcommand)]
        command: MpCommand,
    },
    /// Build or inspect the exact bytes on the wire.
    Wire {
        #[command(subcommand)]
        command: wire::WireCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MpCommand {
    /// MPLIST, the MP's signing and encryption certificates and its key information.
    Info {
        #[command(flatten)]
        mp: MpArgs,
    },
}

/// What signs a message and whom it speaks for.
#[derive(Debug, Args)]
struct SignAs {
    /// The identity whose key signs (`cmmp identity new`): the client's own, or the ISV
    /// proxy's.
    #[arg(long, value_name = "DIR")]
    identity: PathBuf,
    /// The client the message is for (`SourceID`); default: the SMSID saved in the identity
    /// by `cmmp register`. An ISV proxy gives its client's SMSID here.
    #[arg(long, value_name = "SMSID")]
    client_id: Option<SmsId>,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// What to send.
    #[arg(value_enum)]
    kind: PostKind,
    #[command(flatten)]
    mp: MpArgs,
    #[command(flatten)]
    sign: SignAs,
    /// The document: JSON (the serde form of the cmmp-model type) or XML. Repeat to send
    /// several documents of the same kind (a progress bar shows how far it is).
    #[arg(long = "from", value_name = "FILE", required = true)]
    from: Vec<PathBuf>,
    /// Attach a file, named by ID (`--attach 1=/etc/hosts`, for file collection and IDMIF
    /// the `CollectedFile/@ID`), or by its file name (`--attach PATH`).
    #[arg(long = "attach", value_name = "ID=PATH")]
    attach: Vec<String>,
    /// Set each document's ClientID (and a report's Date) to the client it is sent for,
    /// instead of refusing a document that names another client.
    #[arg(long)]
    stamp: bool,
}

#[derive(Debug, Subcommand)]
enum EmulatorCommand {
    /// Serve a site until stopped (Ctrl-C); prints the address it listens on.
    Serve {
        /// Address to listen on; loopback by default.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The site database (SQLite, created if missing).
        #[arg(long)]
        db: PathBuf,
        /// A site file (TOML); defaults to a stock site.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Approval policy: `auto` approves everyone, `trusted` only Windows-authenticated
        /// registrations (as the product ships), `manual` nobody until an admin approves.
        #[arg(long, value_parser = ["auto", "trusted", "manual"])]
        approval: Option<String>,
        #[command(flatten)]
        https: serve::HttpsArgs,
    },
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create a mixed-mode self-signed identity (RSA-2048, SMS signing and encryption EKUs),
    /// or import a PKI certificate and key with `--pki CERT KEY` or `--pkcs12 FILE`; key files
    /// get mode 0600.
    New {
        /// Directory for `signing.pem/.key` and `encryption.pem/.key`.
        #[arg(long)]
        dir: PathBuf,
        /// Subject common name of generated certificates.
        #[arg(long, default_value = "ConfigMgr Client")]
        subject: String,
        /// Import a PKI certificate and its key (PEM) instead of generating.
        #[arg(long, num_args = 2, value_names = ["CERT", "KEY"], conflicts_with = "pkcs12")]
        pki: Option<Vec<PathBuf>>,
        /// Import a PKI certificate and its key from a PKCS#12 archive (`.pfx`, as Windows
        /// exports them); the password is read from the `CMMP_PKCS12_PASSWORD` environment
        /// variable (never on the command line; unset: no password).
        #[arg(long, value_name = "FILE")]
        pkcs12: Option<PathBuf>,
    },
    /// Show the identity in a directory.
    Show {
        /// The identity directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Errors the commands report, each with an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// Arguments that cannot work together, or a value that is not what it should be.
    #[error("{0}")]
    Usage(String),
    /// An input file that is not what the command needs.
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    /// The emulator's admin API refused or could not be reached.
    #[error("{0}")]
    Admin(String),
    /// A transport error with a hint of what to do about it.
    #[error("{source}\n  hint: {hint}")]
    Hinted {
        #[source]
        source: Box<cmmp_transport::Error>,
        hint: String,
    },
    #[error(transparent)]
    Emulator(#[from] cmmp_emulator::Error),
    #[error(transparent)]
    Transport(#[from] cmmp_transport::Error),
    #[error(transparent)]
    Cert(#[from] cmmp_transport::cert::CertError),
    #[error(transparent)]
    Sign(#[from] cmmp_transport::sign::SignError),
    #[error(transparent)]
    Decode(#[from] cmmp_model::DecodeError),
    #[error(transparent)]
    HostName(#[from] cmmp_transport::msg::HostNameError),
}

impl Error {
    /// Adds `hint` to an empty 200, where the MP gives no reason itself.
    pub(crate) fn hint(e: cmmp_transport::Error, hint: &str) -> Self {
        match e {
            cmmp_transport::Error::EmptyReply => {
                Error::Hinted { source: Box::new(e), hint: hint.to_owned() }
            }
            other => Error::Transport(other),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Input { .. } | Error::Decode(_) | Error::HostName(_) => 2,
            Error::Emulator(cmmp_emulator::Error::Config(_)) => 2,
            // Certificates and keys given on the command line that cannot be used.
            Error::Cert(
                CertError::Subject { .. }
                | CertError::Parse { .. }
                | CertError::KeyMismatch { .. }
                | CertError::Pkcs12 { .. }
                | CertError::Pkcs12Password
                | CertError::Pkcs12Missing { .. },
            ) => 2,
            // Refused before anything was sent: the input or the configuration.
            Error::Transport(
                cmmp_transport::Error::SignerRequired { .. }
                | cmmp_transport::Error::Encode(_)
                | cmmp_transport::Error::Payload(_)
                | cmmp_transport::Error::Config(_),
            ) => 2,
            Error::Transport(_) | Error::Hinted { .. } | Error::Admin(_) => 3,
            _ => 4,
        }
    }

    fn hint_for(&self) -> Option<&'static str> {
        use cmmp_transport::Error as T;
        match self {
            Error::Transport(T::Network { .. } | T::Timeout { .. }) => Some(
                "check --mp (scheme, host and port) and that the management point is running and \
                 reachable from here",
            ),
            Error::Transport(T::Tls { .. }) => Some(
                "the MP's certificate must chain to a trusted root: give the site's root with --ca",
            ),
            Error::Transport(T::Http { status: 403, .. }) => Some(
                "an HTTPS management point asks for a TLS client certificate: give it with \
                 --client-cert and --client-key, or use --vdir altauth",
            ),
            Error::Transport(T::EmptyReply) => Some(
                "`cmmp emulator messages` (on the emulator) shows why each message was refused",
            ),
            _ => None,
        }
    }
}

/// What a command produced: text for people and JSON for scripts.
#[derive(Debug)]
pub(crate) struct Outcome {
    human: String,
    json: Value,
    code: u8,
}

impl Outcome {
    pub(crate) fn new(human: String, json: Value) -> Self {
        Self { human, json, code: 0 }
    }
}

/// A progress bar on stderr (drawn only on a terminal, and only for more than one item).
pub(crate) fn progress(len: u64, message: &'static str) -> ProgressBar {
    if len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// Warnings always (an emulator request answered HTTP 500, say); more with `-v`.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(outcome) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome.json).unwrap_or_default());
            } else if !outcome.human.is_empty() {
                println!("{}", outcome.human);
            }
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                if !e.to_string().contains(&s.to_string()) {
                    eprintln!("  caused by: {s}");
                }
                source = s.source();
            }
            if let Some(hint) = e.hint_for() {
                eprintln!("  hint: {hint}");
            }
            if json {
                println!("{}", json!({ "error": e.to_string(), "exit_code": e.exit_code() }));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Error> {
    match cli.command {
        Command::Demo { clients, db, keep } => {
            let code =
                demo::run(demo::DemoOptions { clients, db, keep, progress: !cli.json }).await?;
            let mut outcome = Outcome::new(String::new(), json!({ "passed": code == 0 }));
            outcome.code = u8::try_from(code).unwrap_or(1);
            Ok(outcome)
        }
        Command::Emulator {
            command: EmulatorCommand::Serve { listen, db, site, approval, https },
        } => {
            let mut config = match site {
                Some(path) => SiteConfig::load(&path)?,
                None => SiteConfig::default(),
            };
            config.approval = match approval.as_deref() {
                Some("auto") => ApprovalPolicy::AutoAll,
                Some("manual") => ApprovalPolicy::Manual,
                Some("trusted") => ApprovalPolicy::Trusted,
                _ => config.approval,
            };
            let site_code = config.site_code.to_string();
            let site = Site::open(config, &db, Utc::now())?;
            // Field notes M18: the switch to native mode deleted these records.
            let reset: Vec<String> =
                site.certificate_reset().iter().map(ToString::to_string).collect();
            let identity =
                cmmp_transport::cert::generate_mixed_mode("cmmp emulator MP", SystemTime::now())?;
            let tls = https.config(&db)?;
            let mut emulator = Emulator::start(listen, site, identity).await?;
            let addr = emulator.addr();
            let https_addr = match &tls {
                Some((config, _)) => Some(emulator.serve_https(config).await?),
                None => None,
            };
            if cli.json {
                println!(
                    "{}",
                    json!({
                        "listening": format!("http://{addr}"),
                        "https": https_addr.map(|a| format!("https://{a}")),
                        "tls_certificate": tls.as_ref().map(|(_, p)| p.display().to_string()),
                        "site": site_code,
                        "db": db.display().to_string(),
                        "certificate_reset": reset,
                    })
                );
            } else {
                println!("cmmp emulator listening on http://{addr} (site {site_code})");
                if !reset.is_empty() {
                    println!(
                        "the site moved from mixed to native mode: {} client record(s) with a \
                         self-signed certificate deleted; they must register again",
                        reset.len()
                    );
                }
                if let (Some(a), Some((config, cert))) = (https_addr, &tls) {
                    let clients = if config.asks_for_client_certificates() {
                        "client certificates required on /ccm_system/ and /SMS_MP/"
                    } else {
                        "no client certificates asked for"
                    };
                    println!(
                        "https://{a} ({clients}); clients trust it with --ca {}",
                        cert.display()
                    );
                }
                println!("site database: {}", db.display());
                println!("admin: cmmp emulator clients --admin http://{addr}");
            }
            tracing::info!(%addr, "emulator serving");
            let _ = tokio::signal::ctrl_c().await;
            emulator.shutdown().await;
            Ok(Outcome::new(String::new(), Value::Null))
        }
        Command::Emulator { command: EmulatorCommand::Admin(command) } => admin::run(command).await,
        Command::Identity { command: IdentityCommand::New { dir, subject, pki, pkcs12 } } => {
            let source = match (pki.as_deref(), pkcs12) {
                (Some([cert, key]), _) => {
                    identity::Source::Pem { cert: cert.clone(), key: key.clone() }
                }
                (_, Some(archive)) => identity::Source::Pkcs12 {
                    archive,
                    password: cmmp_transport::sign::SecretString::new(
                        std::env::var("CMMP_PKCS12_PASSWORD").unwrap_or_default(),
                    ),
                },
                _ => identity::Source::Generate,
            };
            let identity = identity::create(&dir, &subject, source)?;
            Ok(Outcome::new(
                format!("identity written to {}\n{}", dir.display(), identity::describe(&identity)),
                json!({ "dir": dir.display().to_string(), "identity": identity::describe(&identity) }),
            ))
        }
        Command::Identity { command: IdentityCommand::Show { dir } } => {
            let identity = identity::load(&dir)?;
            let smsid = target::recorded_smsid(&dir)?;
            let mut human = identity::describe(&identity);
            match &smsid {
                Some(id) => human.push_str(&format!("\nregistered as:          {id}")),
                None => human.push_str("\nregistered as:          (not registered yet)"),
            }
            Ok(Outcome::new(
                human,
                json!({ "dir": dir.display().to_string(), "identity": identity::describe(&identity), "smsid": smsid }),
            ))
        }
        Command::Register(args) => register::run(args).await,
        Command::Send(args) => send(args).await,
        Command::Policy(args) => query::policy(args).await,
        Command::Locate { command } => query::locate(command).await,
        Command::Mp { command: MpCommand::Info { mp } } => query::mp_info(mp).await,
        Command::Wire { command } => wire::run(command),
    }
}

/// `cmmp send`: each document built exactly as `wire encode` builds it, then posted.
async fn send(args: SendArgs) -> Result<Outcome, Error> {
    let kind = Kind::from(args.kind);
    let client = args.mp.client()?;
    let settings = args.mp.settings()?;
    let key = target::signing_key(&args.sign.identity)?;
    let client_id = target::client_id(&args.sign.identity, args.sign.client_id)?;
    let signer = cmmp_transport::wire::Signer::new(&key, client_id, args.mp.hash())?;
    // Build every request first: a bad file is reported before anything is sent.
    let attachments =
        args.attach.iter().map(|a| messages::attachment(a)).collect::<Result<Vec<_>, _>>()?;
    let mut requests = Vec::with_capacity(args.from.len());
    for path in &args.from {
        let fresh = Fresh::now()?;
        let build = Build {
            settings: &settings,
            attachments: attachments.clone(),
            signer: Some(&signer),
            fresh,
            client: Some(client_id),
            stamp: args.stamp,
        };
        requests.push((path, fresh, messages::build(kind, &Input::read(path)?, build)?));
    }
    let bar = progress(requests.len() as u64, "sending");
    let mut sent = Vec::new();
    for (path, fresh, request) in requests {
        tracing::info!(kind = kind.type_name(), bytes = request.body.len(), id = %fresh.id, "posting");
        let started = std::time::Instant::now();
        let http = client.send(&request).await?;
        tracing::debug!(status = http.status, elapsed = ?started.elapsed(), "answered");
        cmmp_transport::reply::decode_post(&http, client.limits()).map_err(|e| {
            Error::hint(
                e,
                &format!(
                    "an MP answers a message it refuses with an empty 200: is {client_id} \
                     registered (and not blocked), and does --identity hold the key it \
                     registered with?"
                ),
            )
        })?;
        sent.push((path.display().to_string(), fresh.id));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let human = sent
        .iter()
        .map(|(path, id)| {
            format!(
                "{} {path}: delivered (the MP answered NoReply), tracking ID {id}",
                kind.type_name()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let rows: Vec<Value> =
        sent.iter().map(|(p, id)| json!({ "file": p, "tracking_id": id.to_string() })).collect();
    let human = format!(
        "{human}\nNoReply means the MP took the message; whether the site stored it shows in its \
         logs (the emulator: `cmmp emulator messages {client_id}`)"
    );
    Ok(Outcome::new(human, json!({ "kind": kind.type_name(), "client": client_id, "sent": rows })))
}
