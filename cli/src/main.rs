//! `cmmp`: the command-line tool of the cmmp toolkit for ConfigMgr management points.
//!
//! The CLI is thin (house style HS-63): arguments, output and exit codes; the protocol lives
//! in `cmmp-transport` and `cmmp-emulator`.
//!
//! Exit codes: 0 success; 1 the demo's check found a mismatch; 2 bad arguments or input;
//! 3 the management point refused or failed; 4 a local error (files, database).

#![forbid(unsafe_code)]

mod demo;
mod identity;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use chrono::Utc;
use clap::{Parser, Subcommand};
use cmmp_emulator::site::ApprovalPolicy;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_model::MessageExt;
use cmmp_transport::wire::{
    DecodeLimits, client_auth_signatures, decode_request, parse_http_request,
};

/// cmmp: speak the ConfigMgr management point interface from anywhere.
#[derive(Debug, Parser)]
#[command(name = "cmmp", version, about, long_about = None)]
struct Cli {
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
    /// The local management point.
    Emulator {
        #[command(subcommand)]
        command: EmulatorCommand,
    },
    /// Create, import or show a signing + encryption identity.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Inspect captured requests.
    Wire {
        #[command(subcommand)]
        command: WireCommand,
    },
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
    },
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create a mixed-mode self-signed identity (RSA-2048, SMS signing and encryption EKUs),
    /// or import a PKI certificate and key with `--pki CERT KEY`; key files get mode 0600.
    New {
        /// Directory for `signing.pem/.key` and `encryption.pem/.key`.
        #[arg(long)]
        dir: PathBuf,
        /// Subject common name of generated certificates.
        #[arg(long, default_value = "ConfigMgr Client")]
        subject: String,
        /// Import a PKI certificate and its key (PEM) instead of generating.
        #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
        pki: Option<Vec<PathBuf>>,
    },
    /// Show the identity in a directory.
    Show {
        /// The identity directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum WireCommand {
    /// Print the header and body of a captured `CCM_POST` request (raw HTTP bytes), check its
    /// byte ranges, and say what is wrong with a broken one.
    Decode {
        /// The captured request.
        file: PathBuf,
    },
}

/// Errors the commands report, each with an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
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
    fn exit_code(&self) -> u8 {
        match self {
            Error::Decode(_) | Error::HostName(_) => 2,
            Error::Transport(_) => 3,
            _ => 4,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Demo { clients, db, keep } => {
            let code = demo::run(demo::DemoOptions { clients, db, keep, progress: true }).await?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Emulator { command: EmulatorCommand::Serve { listen, db, site, approval } } => {
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
            let site = Site::open(config, &db, Utc::now())?;
            let identity =
                cmmp_transport::cert::generate_mixed_mode("cmmp emulator MP", SystemTime::now())?;
            let emulator = Emulator::start(listen, site, identity).await?;
            println!("cmmp emulator listening on http://{}", emulator.addr());
            println!("site database: {}", db.display());
            println!("admin API: http://{}/cmmp-admin/clients", emulator.addr());
            let _ = tokio::signal::ctrl_c().await;
            emulator.shutdown().await;
            Ok(0)
        }
        Command::Identity { command: IdentityCommand::New { dir, subject, pki } } => {
            let pki = pki.and_then(|v| match v.as_slice() {
                [cert, key] => Some((cert.clone(), key.clone())),
                _ => None,
            });
            let identity = identity::create(&dir, &subject, pki)?;
            println!("identity written to {}\n{}", dir.display(), identity::describe(&identity));
            Ok(0)
        }
        Command::Identity { command: IdentityCommand::Show { dir } } => {
            println!("{}", identity::describe(&identity::load(&dir)?));
            Ok(0)
        }
        Command::Wire { command: WireCommand::Decode { file } } => {
            let bytes =
                std::fs::read(&file).map_err(|e| Error::Io(file.display().to_string(), e))?;
            let http = parse_http_request(&bytes)?;
            println!("{} {}", http.method, http.path);
            let decoded =
                decode_request(http.header("content-type"), http.body, DecodeLimits::default())?;
            println!(
                "\n== header (Msg)\n{}",
                decoded.header.to_xml().map_err(cmmp_transport::Error::from)?
            );
            println!("\n== body ({})\n{}", decoded.message.kind_name(), decoded.body_xml);
            for (name, bytes) in &decoded.attachments {
                println!("\n== attachment {name}: {} bytes", bytes.len());
            }
            match client_auth_signatures(&decoded.header) {
                Some(_) => println!("\nsigned (clientauth); byte ranges check out"),
                None => println!("\nunsigned; byte ranges check out"),
            }
            Ok(0)
        }
    }
}
