//! `cmmp wire encode|decode`: the exact bytes on the wire, built or taken apart.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cmmp_model::MessageExt;
use cmmp_model::msg::{HookName, HookPropertyName, Msg};
use cmmp_model::value::{BracedGuid, HexBytes, IsoTime, SmsId};
use cmmp_transport::msg::{HostName, hook_property, hooks};
use cmmp_transport::reply::{HttpReply, ReplyLimits, SyncContext, decode_sync_raw};
use cmmp_transport::sign::{HashAlgorithm, public_key_from_blob, verify_reversed};
use cmmp_transport::wire::{
    DecodeLimits, Fresh, Settings, Signer, client_auth_signatures, decode_request,
    parse_http_request,
};
use openssl::pkey::{PKey, Public};
use serde_json::json;

use crate::messages::{self, Build, Input, Kind};
use crate::{Error, Outcome, target};

/// `cmmp wire …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WireCommand {
    /// Write the exact HTTP request bytes `cmmp send` (or the library) would transmit for a
    /// document, without sending anything.
    Encode(EncodeArgs),
    /// Print the header and body of a captured `CCM_POST` request or MP reply (raw HTTP
    /// bytes), check its framing, byte ranges and signature, and say what is wrong with a
    /// broken one.
    Decode {
        /// The captured request or reply.
        file: PathBuf,
        /// Verify the request's `PayloadSignature` with this certificate (PEM or DER) instead
        /// of the public key the request itself carries.
        #[arg(long, value_name = "CERT")]
        cert: Option<PathBuf>,
    },
}

/// Options of `cmmp wire encode`.
#[derive(Debug, Args)]
pub(crate) struct EncodeArgs {
    /// The message kind.
    #[arg(value_enum)]
    kind: Kind,
    /// The document: JSON (serde of the cmmp-model type) or XML.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The identity whose key signs (needed for every kind that is signed).
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// The management point's name (`TargetHost`, HTTP `Host`); a URL is accepted too.
    #[arg(long, value_name = "HOST")]
    mp: String,
    /// The client the message is for (`SourceID`); default: the identity's saved SMSID.
    #[arg(long, value_name = "SMSID")]
    client_id: Option<SmsId>,
    /// This machine's NetBIOS name (`SourceHost`); defaults to the host name.
    #[arg(long, value_name = "NAME")]
    source_host: Option<String>,
    /// Sign with SHA-1 instead of SHA-256.
    #[arg(long)]
    sha1: bool,
    /// Attach a file, named by ID (`ID=PATH`) or by its file name.
    #[arg(long = "attach", value_name = "ID=PATH")]
    attach: Vec<String>,
    /// A fixed `Msg/ID` (braced GUID) instead of a fresh one, for reproducible output.
    #[arg(long, value_name = "GUID")]
    message_id: Option<BracedGuid>,
    /// A fixed `Msg/SentTime` (ISO 8601, UTC) instead of now, for reproducible output.
    #[arg(long, value_name = "TIME")]
    sent_time: Option<IsoTime>,
    /// Set the document's ClientID (and a report's Date) to the client it is sent for.
    #[arg(long)]
    stamp: bool,
    /// Where to write the request bytes.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `cmmp wire …`.
pub(crate) fn run(command: WireCommand) -> Result<Outcome, Error> {
    match command {
        WireCommand::Encode(args) => encode(args),
        WireCommand::Decode { file, cert } => decode(&file, cert.as_deref()),
    }
}

fn encode(args: EncodeArgs) -> Result<Outcome, Error> {
    let mp = if args.mp.contains("://") {
        target::parse_mp_url(&args.mp)?.1
    } else {
        HostName::new(&args.mp)?
    };
    let source = match &args.source_host {
        Some(name) => HostName::new(name)?,
        None => target::local_host_name(),
    };
    let mut settings = Settings::new(mp, source);
    let hash = if args.sha1 { HashAlgorithm::Sha1 } else { HashAlgorithm::Sha256 };
    settings.hash = hash;
    let input = Input::read(&args.from)?;
    let attachments =
        args.attach.iter().map(|a| messages::attachment(a)).collect::<Result<Vec<_>, _>>()?;
    let mut fresh = Fresh::now()?;
    if let Some(id) = args.message_id {
        fresh.id = id;
    }
    if let Some(time) = args.sent_time {
        fresh.sent_time = time;
    }
    let key = args.identity.as_deref().map(target::signing_key).transpose()?;
    let client = match &args.identity {
        Some(dir) => Some(target::client_id(dir, args.client_id)?),
        None => args.client_id,
    };
    let signer = match (&key, client) {
        (Some(key), Some(client)) => Some(Signer::new(key, client, hash)?),
        _ => None,
    };
    let request = messages::build(
        args.kind,
        &input,
        Build {
            settings: &settings,
            attachments,
            signer: signer.as_ref(),
            fresh,
            client,
            stamp: args.stamp,
        },
    )?;
    let bytes = request.to_bytes();
    std::fs::write(&args.out, &bytes).map_err(|e| Error::Io(args.out.display().to_string(), e))?;
    Ok(Outcome::new(
        format!(
            "{} request for {}: {} bytes written to {} (Msg/ID {}){}",
            args.kind.type_name(),
            settings.mp,
            bytes.len(),
            args.out.display(),
            fresh.id,
            if signer.is_some() { ", signed" } else { ", unsigned" }
        ),
        json!({
            "kind": args.kind.type_name(),
            "bytes": bytes.len(),
            "out": args.out.display().to_string(),
            "message_id": fresh.id.to_string(),
            "signed": signer.is_some(),
        }),
    ))
}

fn certificate_key(path: &Path) -> Result<PKey<Public>, Error> {
    let bytes = target::read(path)?;
    let cert = openssl::x509::X509::from_pem(&bytes)
        .or_else(|_| openssl::x509::X509::from_der(&bytes))
        .map_err(|e| Error::Input {
            path: path.display().to_string(),
            message: format!("not a PEM or DER certificate: {e}"),
        })?;
    cert.public_key()
        .map_err(|e| Error::Input { path: path.display().to_string(), message: e.to_string() })
}

/// The `clientauth` hook's hash: its `HashAlgorithm` OID, SHA-1 when absent (§3.2).
fn client_auth_hash(header: &Msg) -> Result<HashAlgorithm, Error> {
    let hook = hooks(header, &HookName::Clientauth).next();
    Ok(HashAlgorithm::from_property(
        hook.and_then(|h| hook_property(h, &HookPropertyName::HashAlgorithm)),
    )?)
}

fn decode(file: &Path, cert: Option<&Path>) -> Result<Outcome, Error> {
    let bytes = target::read(file)?;
    if bytes.starts_with(b"HTTP/") {
        return decode_reply(file, &bytes);
    }
    let http = parse_http_request(&bytes)?;
    let mut human = format!("{} {}\n", http.method, http.path);
    let decoded = decode_request(http.header("content-type"), http.body, DecodeLimits::default())
        .map_err(|e| Error::Input {
        path: file.display().to_string(),
        message: format!("{} {} request: {e}", http.method, http.path),
    })?;
    human.push_str(&format!(
        "\n== header (Msg)\n{}\n",
        decoded.header.to_xml().map_err(cmmp_transport::Error::from)?
    ));
    human.push_str(&format!("\n== body ({})\n{}\n", decoded.message.kind_name(), decoded.body_xml));
    for (name, bytes) in &decoded.attachments {
        human.push_str(&format!("\n== attachment {name}: {} bytes\n", bytes.len()));
    }
    let signature = match client_auth_signatures(&decoded.header) {
        None => {
            human.push_str("\nunsigned; byte ranges check out");
            "unsigned".to_owned()
        }
        Some((payload_sig, _)) => {
            let hash = client_auth_hash(&decoded.header)?;
            let sig = payload_sig.trim().parse::<HexBytes>().map_err(|e| Error::Input {
                path: file.display().to_string(),
                message: format!("PayloadSignature is not hex: {e}"),
            })?;
            let (key, against) = match cert {
                Some(path) => {
                    (certificate_key(path)?, format!("the certificate {}", path.display()))
                }
                None => {
                    let blob = hooks(&decoded.header, &HookName::Clientauth)
                        .next()
                        .and_then(|h| hook_property(h, &HookPropertyName::PublicKey))
                        .and_then(|hex| hex.trim().parse::<HexBytes>().ok())
                        .ok_or_else(|| Error::Input {
                            path: file.display().to_string(),
                            message: "signed, but the clientauth hook has no readable PublicKey; \
                                      verify with --cert"
                                .to_owned(),
                        })?;
                    let key = public_key_from_blob(&blob.0).map_err(|e| Error::Input {
                        path: file.display().to_string(),
                        message: format!("the PublicKey property: {e}"),
                    })?;
                    (key, "the PublicKey it carries".to_owned())
                }
            };
            verify_reversed(&key, hash, &decoded.payload_as_sent, &sig.0).map_err(|e| {
                Error::Input {
                    path: file.display().to_string(),
                    message: format!(
                        "byte ranges check out, but the PayloadSignature does not verify with \
                         {against}: {e}"
                    ),
                }
            })?;
            human.push_str(&format!(
                "\nsigned (clientauth, {hash}); byte ranges check out; PayloadSignature verifies \
                 with {against}"
            ));
            format!("verified ({hash})")
        }
    };
    Ok(Outcome::new(
        human,
        json!({
            "method": http.method,
            "path": http.path,
            "kind": decoded.message.kind_name(),
            "header": decoded.header.to_xml().map_err(cmmp_transport::Error::from)?,
            "body": decoded.body_xml,
            "attachments": decoded.attachments.iter().map(|(n, b)| json!({"name": n, "bytes": b.len()})).collect::<Vec<_>>(),
            "signature": signature,
        }),
    ))
}

/// Takes a captured HTTP response apart: a `NoReply` (Post) or a Sync reply's header and body.
fn decode_reply(file: &Path, bytes: &[u8]) -> Result<Outcome, Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(cmmp_transport::Error::HttpSyntax("the response head is incomplete").into());
        }
        Err(_) => return Err(cmmp_transport::Error::HttpSyntax("not an HTTP response").into()),
    };
    let http = HttpReply {
        status: response.code.unwrap_or(0),
        headers: response
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
        body: bytes[head_len..].to_vec(),
    };
    if let Some(len) = http.header("content-length").and_then(|l| l.trim().parse::<usize>().ok())
        && len != http.body.len()
    {
        return Err(Error::Input {
            path: file.display().to_string(),
            message: format!(
                "Content-Length says {len} bytes but {} follow the head (truncated or extra data)",
                http.body.len()
            ),
        });
    }
    let limits = ReplyLimits::default();
    if cmmp_transport::reply::decode_post(&http, &limits).is_ok() {
        return Ok(Outcome::new(
            format!(
                "HTTP {}\nNoReply: the MP accepted an asynchronous (Post) message",
                http.status
            ),
            json!({ "status": http.status, "reply": "NoReply" }),
        ));
    }
    let host = HostName::new("localhost")?;
    let ctx = SyncContext { host_asked: &host, reply_compression: true, verifier: None, limits };
    let reply = decode_sync_raw(&http, &ctx)?;
    let header = reply.header.to_xml().map_err(cmmp_transport::Error::from)?;
    Ok(Outcome::new(
        format!(
            "HTTP {}\n\n== header (Msg)\n{header}\n\n== body\n{}\n\nreply signature: {:?} (pin the MP \
             certificate in the library to verify it)",
            http.status, reply.body_xml, reply.signature
        ),
        json!({ "status": http.status, "header": header, "body": reply.body_xml, "signature": format!("{:?}", reply.signature) }),
    ))
}
