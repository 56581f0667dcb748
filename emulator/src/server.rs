//! The emulator's listener: HTTP/1.1 on loopback (by default), speaking the MP's wire protocol
//! and a small JSON admin surface.
//!
//! This is the only module that names tokio and httparse; no type of theirs appears in a
//! public signature except the `SocketAddr` of std.
//!
//! | Request | Handling |
//! |---|---|
//! | `CCM_POST /ccm_system/request` | decode (`cmmp_transport::wire`), site rules, reply framed like an MP (§2.7/§2.8) |
//! | `CCM_POST /ccm_system_windowsauth/request` | as above, trusted for approval; `401` without an `Authorization` header (M9) |
//! | `CCM_POST /ccm_system_altauth/request` | as the default vdir |
//! | `GET /SMS_MP/.sms_aut?MPLIST`, `MPLIST1`, `MPCERT`, `MPCERT2`, `MPKEYINFORMATIONEX`, `MPLOCATION` | the MP's documents (§2.10) |
//! | `GET /SMS_MP/.sms_pol?<id>.<version>` | policy bodies (§4.2.3), signed headers checked for secret ones |
//! | `POST /SMS_FSP/.sms_fsp` | fallback status point state messages, stored for registered clients |
//! | `/cmmp-admin/…` | JSON admin surface ([`crate::admin`]) |
//!
//! A message is acknowledged only after the site committed it: the site's work runs to the
//! end of its transaction before the reply is written.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use cmmp_model::msg::{Msg, ReplyModeValue};
use cmmp_model::value::{BracedGuid, HexBytes, IsoTime};
use cmmp_model::{DeliveryKind, MessageExt};
use cmmp_transport::cert::Identity;
use cmmp_transport::multipart;
use cmmp_transport::reply::{ReplySigner, encode_no_reply, encode_sync_reply};
use cmmp_transport::sign::HashAlgorithm;
use cmmp_transport::wire::{DecodeLimits, DecodedRequest, Vdir, decode_request_with_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::behaviour::{Handled, MpAnswer, PolicyBodyRequest, Site};
use crate::error::Error;
use crate::site::{FaultKind, POLICY_BODY_ENDPOINT};

/// The body of the error page a real MP returns for a refused policy body (M8).
pub const HTML_ERROR_PAGE: &str = "<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";
/// The page of an injected HTTP 500 (M9).
pub const HTML_500_PAGE: &str =
    "<HTML><HEAD><TITLE>500 - Internal server error.</TITLE></HEAD><BODY></BODY></HTML>";

/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// The site and the MP's identity, shared by the connections.
pub(crate) struct Shared {
    pub(crate) site: Mutex<Site>,
    pub(crate) identity: Identity,
}

impl Shared {
    pub(crate) fn site(&self) -> MutexGuard<'_, Site> {
        // A panic while holding the lock cannot leave the site half-written: every change
        // is a SQLite transaction. Keep serving.
        self.site.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running emulator.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `listen` (use `127.0.0.1:0` for an ephemeral port) and serves `site` with the MP
    /// identity `identity` (its signing certificate is what `MPCERT` returns and what signs
    /// replies when the site's `sign_replies` switch is on; its encryption certificate is what
    /// clients may encrypt payloads to).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn start(listen: SocketAddr, site: Site, identity: Identity) -> Result<Self, Error> {
        let listener =
            TcpListener::bind(listen).await.map_err(|e| Error::io(format!("bind {listen}"), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
        let shared = Arc::new(Shared { site: Mutex::new(site), identity });
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let shared = Arc::clone(&serving);
                            tokio::spawn(async move { connection(stream, shared).await });
                        }
                    }
                }
            }
        });
        Ok(Self { addr, shared, shutdown: Some(tx), task: Some(task) })
    }

    /// The address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site, for admin library calls (approve, block, inventory, …). Hold the guard
    /// briefly: requests wait for it.
    pub fn site(&self) -> MutexGuard<'_, Site> {
        self.shared.site()
    }

    /// The MP's identity.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A parsed request.
pub(crate) struct HttpRequest {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response to write.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn empty() -> Self {
        Self { status: 200, content_type: None, body: Vec::new() }
    }

    pub(crate) fn html(status: u16, page: &str) -> Self {
        Self { status, content_type: Some("text/html".to_owned()), body: page.as_bytes().to_vec() }
    }

    fn multipart(body: Vec<u8>) -> Self {
        Self { status: 200, content_type: Some(multipart::content_type()), body }
    }

    pub(crate) fn xml(text: String) -> Self {
        Self {
            status: 200,
            content_type: Some("text/xml; charset=utf-8".to_owned()),
            body: text.into_bytes(),
        }
    }

    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: Some("application/json".to_owned()),
            body: serde_json::to_vec_pretty(value).unwrap_or_default(),
        }
    }
}

enum Action {
    Respond(Response),
    /// Close the connection without an answer (fault `drop-connection`).
    Drop,
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let request = match read_request(&mut stream, max_body(&shared)).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(status) => {
            let _ = write_response(&mut stream, &Response::html(status, HTML_500_PAGE)).await;
            return;
        }
    };
    let action = route(request, &shared).await;
    if let Action::Respond(response) = action {
        let _ = write_response(&mut stream, &response).await;
    }
    let _ = stream.shutdown().await;
}

fn max_body(shared: &Shared) -> usize {
    let limit = shared.site().config().switches.max_message_bytes;
    // Room for the multipart framing and header part around the largest message accepted.
    usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(1024 * 1024)
}

/// Reads one request; `Err(status)` for one that cannot be read.
async fn read_request(stream: &mut TcpStream, max_body: usize) -> Result<Option<HttpRequest>, u16> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(400) };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(400),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|_| 400u16)?
        .unwrap_or(0);
    if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")) {
        return Err(411);
    }
    if length > max_body {
        return Err(413);
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(HttpRequest { method, target, headers, body }))
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\nServer: cmmp-emulator\r\n", response.status);
    if let Some(ct) = &response.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.flush().await
}

async fn route(request: HttpRequest, shared: &Arc<Shared>) -> Action {
    let (path, query) = match request.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (request.target.clone(), String::new()),
    };
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/cmmp-admin/") {
        let shared = Arc::clone(shared);
        return Action::Respond(blocking(move || crate::admin::handle(&request, &shared)).await);
    }
    let vdir = match lower.as_str() {
        "/ccm_system/request" => Some(Vdir::Default),
        "/ccm_system_windowsauth/request" => Some(Vdir::WindowsAuth),
        "/ccm_system_altauth/request" => Some(Vdir::AltAuth),
        _ => None,
    };
    if let Some(vdir) = vdir {
        if request.method != "CCM_POST" {
            return Action::Respond(Response::html(405, HTML_500_PAGE));
        }
        if vdir == Vdir::WindowsAuth && request.header("authorization").is_none() {
            return Action::Respond(Response::html(
                401,
                "<HTML><HEAD><TITLE>401 - Unauthorized</TITLE></HEAD></HTML>",
            ));
        }
        return ccm_post(request, vdir, shared).await;
    }
    let shared2 = Arc::clone(shared);
    match (request.method.as_str(), lower.as_str()) {
        ("GET", "/sms_mp/.sms_aut" | "/sms_mp_altauth/.sms_aut") => {
            Action::Respond(blocking(move || sms_aut(&query, &shared2)).await)
        }
        (
            "GET",
            "/sms_mp/.sms_pol" | "/sms_mp_altauth/.sms_pol" | "/sms_mp_windowsauth/.sms_pol",
        ) => policy_get(request, query, shared).await,
        ("POST", "/sms_fsp/.sms_fsp") => Action::Respond(
            blocking(move || crate::admin::fallback_status(&request, &shared2)).await,
        ),
        _ => Action::Respond(Response::html(
            404,
            "<HTML><HEAD><TITLE>404 - File or directory not found.</TITLE></HEAD></HTML>",
        )),
    }
}

/// Runs site work off the async threads (SQLite is blocking).
async fn blocking<F: FnOnce() -> Response + Send + 'static>(f: F) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| Response::html(500, HTML_500_PAGE))
}

/// Applies an injected fault for `endpoint`; `Some` when it decides the answer.
async fn fault(shared: &Arc<Shared>, endpoint: &str) -> (Option<Action>, bool) {
    let kind = shared.site().fault_for(endpoint).ok().flatten();
    match kind {
        None => (None, false),
        Some(FaultKind::EmptyReply) => (Some(Action::Respond(Response::empty())), false),
        Some(FaultKind::Html500) => {
            (Some(Action::Respond(Response::html(500, HTML_500_PAGE))), false)
        }
        Some(FaultKind::DropConnection) => (Some(Action::Drop), false),
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (None, false)
        }
        Some(FaultKind::RegistrationPending) => (None, true),
        Some(FaultKind::PolicyNotReady) => (Some(Action::Respond(Response::empty())), false),
    }
}

async fn ccm_post(request: HttpRequest, vdir: Vdir, shared: &Arc<Shared>) -> Action {
    // The endpoint decides which fault applies; peek at it cheaply by decoding first.
    let decoded = {
        let shared = Arc::clone(shared);
        let content_type = request.header("content-type").map(str::to_owned);
        let body = request.body;
        tokio::task::spawn_blocking(move || {
            let key = (shared.identity.encryption_key(), shared.identity.encryption_cert());
            decode_request_with_key(
                content_type.as_deref(),
                &body,
                DecodeLimits::default(),
                Some(key),
            )
            .map_err(|e| (e.to_string(), body.len()))
        })
        .await
    };
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err((reason, _len))) => {
            let shared = Arc::clone(shared);
            return Action::Respond(
                blocking(move || {
                    let _ = shared.site().record_undecodable("CCM_POST", &reason, Utc::now());
                    Response::empty()
                })
                .await,
            );
        }
        Err(_) => return Action::Respond(Response::html(500, HTML_500_PAGE)),
    };
    let endpoint = decoded.header.target_endpoint.clone();
    let (faulted, force_pending) = fault(shared, &endpoint).await;
    if let Some(action) = faulted {
        return action;
    }
    let shared = Arc::clone(shared);
    Action::Respond(blocking(move || answer(&decoded, vdir, force_pending, &shared)).await)
}

fn delivery_of(header: &Msg) -> DeliveryKind {
    match &header.reply_mode {
        Some(ReplyModeValue::Async) => DeliveryKind::Post,
        Some(ReplyModeValue::Other(s)) if s.eq_ignore_ascii_case("async") => DeliveryKind::Post,
        _ => DeliveryKind::Invoke,
    }
}

fn answer(decoded: &DecodedRequest, vdir: Vdir, force_pending: bool, shared: &Shared) -> Response {
    let delivery = delivery_of(&decoded.header);
    let mut site = shared.site();
    // The site's size limit (M13) counts the message as decoded: body text and attachments.
    let size =
        decoded.body_xml.len() + decoded.attachments.iter().map(|(_, b)| b.len()).sum::<usize>();
    let checked = site.check_size(
        &decoded.header.target_endpoint,
        u64::try_from(size).unwrap_or(u64::MAX),
        decoded.header.id,
        decoded.header.source_id,
        Utc::now(),
    );
    let handled = match checked.and_then(|()| site.handle(decoded, vdir, force_pending, Utc::now()))
    {
        Ok(h) => h,
        Err(e) => match e.refusal() {
            Some(r) => Handled::Refused(r.clone()),
            None => return Response::html(500, HTML_500_PAGE),
        },
    };
    let sign = site.config().switches.sign_replies;
    let site_code = site.config().site_code.to_string();
    let mp_host = site.config().management_point.host.as_str().to_owned();
    drop(site);
    let xml = match handled {
        Handled::Registration(r) => r.to_xml(),
        Handled::Assignments(r) => r.to_xml(),
        Handled::Location(l) => match l.to_xml() {
            Ok(x) => Ok(x),
            Err(_) => return Response::html(500, HTML_500_PAGE),
        },
        Handled::Accepted(_) => return Response::multipart(encode_no_reply()),
        Handled::Refused(refusal) => {
            return match refusal.mp_answer(delivery) {
                MpAnswer::EmptyReply => Response::empty(),
                MpAnswer::NoReply => Response::multipart(encode_no_reply()),
                MpAnswer::HtmlError => Response::html(200, HTML_ERROR_PAGE),
            };
        }
    };
    let Ok(xml) = xml else { return Response::html(500, HTML_500_PAGE) };
    if delivery == DeliveryKind::Post {
        return Response::multipart(encode_no_reply());
    }
    let header = reply_header(&decoded.header, &mp_host);
    let compress = decoded
        .header
        .reply_compression
        .as_ref()
        .is_some_and(|c| c.as_str().eq_ignore_ascii_case("zlib"));
    let signer = ReplySigner {
        key: shared.identity.signing_key(),
        hash: HashAlgorithm::Sha256,
        sender_machines: &mp_host,
        site_code: &site_code,
    };
    match encode_sync_reply(header, &xml, compress, sign.then_some(&signer)) {
        Ok(body) => Response::multipart(body),
        Err(_) => Response::html(500, HTML_500_PAGE),
    }
}

/// The reply `Msg`: addressed back to the request's `ReplyTo`, correlated to its `ID`.
fn reply_header(request: &Msg, mp_host: &str) -> Msg {
    let target = request
        .reply_to
        .as_deref()
        .and_then(|r| r.rsplit(':').next())
        .filter(|e| !e.is_empty())
        .unwrap_or("SccmMessaging");
    let mut msg = Msg::new(target.to_owned());
    msg.schema_version = Some("1.1".to_owned());
    msg.id = fresh_id();
    msg.source_host = Some(mp_host.to_owned());
    msg.target_address = request.reply_to.clone();
    msg.correlation_id = request.id;
    msg.sent_time = Some(IsoTime::now());
    msg.target_host = request.source_host.clone();
    msg.reply_mode = Some(ReplyModeValue::Reply);
    msg.protocol = Some("http".to_owned());
    msg
}

fn fresh_id() -> Option<BracedGuid> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).ok()?;
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    Some(BracedGuid::from_bytes(bytes))
}

fn sms_aut(query: &str, shared: &Shared) -> Response {
    use cmmp_model::mpinfo::{
        Capabilities, CapabilityProperty, MpCertificate, MpCertificates, MpList, MpListEntry,
        MpLocation, Mpkeyinformation, SignedHex,
    };
    let site = shared.site();
    let config = site.config();
    let code = config.site_code.to_string();
    let host = config.management_point.host.as_str().to_owned();
    let name = host.split('.').next().unwrap_or(&host).to_ascii_uppercase();
    let build = config.management_point.build_number;
    let ssl_state = config.management_point.security_mode_mask_ex;
    drop(site);
    let function = query.split('&').next().unwrap_or_default().to_ascii_uppercase();
    let signing = HexBytes(shared.identity.signing_cert_der().to_vec());
    let entry = |with_site: bool| {
        let mut e = MpListEntry::new(name.clone());
        e.fqdn = Some(host.clone());
        e.site_code = with_site.then(|| code.clone());
        e.version = Some(build);
        e.capabilities = Some(Capabilities {
            schema_version: Some("1.0".to_owned()),
            property: vec![CapabilityProperty::new("SSLState".to_owned(), ssl_state.to_string())],
        });
        e
    };
    let xml = match function.as_str() {
        "MPLIST" => MpList { mp: vec![entry(false)] }.to_xml(),
        "MPLIST1" => {
            let asked = query.split('&').nth(1).unwrap_or_default();
            let mp = if asked.eq_ignore_ascii_case(&code) { vec![entry(true)] } else { Vec::new() };
            MpList { mp }.to_xml()
        }
        "MPCERT" => MpCertificate::new(signing).to_xml(),
        "MPCERT2" => MpCertificates {
            certificate1: Some(SignedHex::new(signing)),
            certificate2: Some(SignedHex::new(HexBytes(
                shared.identity.encryption_cert_der().to_vec(),
            ))),
        }
        .to_xml(),
        "MPKEYINFORMATIONEX" | "MPKEYINFORMATION" => Mpkeyinformation {
            sitecode: Some(code.clone()),
            machinename: Some(name.clone()),
            fqdn: Some(host.clone()),
            assignment_site_code: Some(code.clone()),
            mpcertificate: Some(SignedHex::new(signing)),
            trustedrootkey: None,
            unknown_machines: None,
        }
        .to_xml(),
        "MPLOCATION" => MpLocation {
            mp: Some(host.clone()),
            site_code: Some(code.clone()),
            assigned_site_code: Some(code.clone()),
            ..MpLocation::default()
        }
        .to_xml(),
        _ => {
            return Response::html(
                404,
                "<HTML><HEAD><TITLE>404 - Unknown function.</TITLE></HEAD></HTML>",
            );
        }
    };
    match xml {
        Ok(x) => Response::xml(x),
        Err(_) => Response::html(500, HTML_500_PAGE),
    }
}

async fn policy_get(request: HttpRequest, query: String, shared: &Arc<Shared>) -> Action {
    let (faulted, _) = fault(shared, POLICY_BODY_ENDPOINT).await;
    if let Some(action) = faulted {
        return action;
    }
    let shared = Arc::clone(shared);
    Action::Respond(
        blocking(move || {
            let query = percent_decode(&query);
            let req = PolicyBodyRequest::from_query(&query, &request.headers);
            let result = shared.site().policy_body(&req, Utc::now());
            match result {
                Ok(body) => Response {
                    status: 200,
                    content_type: Some("application/octet-stream".to_owned()),
                    body: body.bytes,
                },
                Err(e) => match e.refusal() {
                    Some(r) if r.mp_answer(DeliveryKind::Invoke) == MpAnswer::HtmlError => {
                        Response::html(200, HTML_ERROR_PAGE)
                    }
                    Some(crate::behaviour::Refusal::UnknownPolicy) => {
                        Response::html(404, HTML_ERROR_PAGE)
                    }
                    Some(_) => Response::empty(),
                    None => Response::html(500, HTML_500_PAGE),
                },
            }
        })
        .await,
    )
}

/// Decodes `%XX` escapes (clients encode `{` and `}` in policy IDs, §4.2.3).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
