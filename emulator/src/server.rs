//! The emulator's listeners: HTTP/1.1 on loopback (by default), and optionally HTTPS
//! ([`Emulator::serve_https`], [`crate::tls`]), speaking the MP's wire protocol and a small
//! JSON admin surface. Both serve the same routes; over HTTPS with client roots, the default
//! vdir and `/SMS_MP/` answer 403 to a client without a TLS client certificate.
//!
//! This is the only module that names tokio and httparse (and, with [`crate::tls`], rustls); no
//! type of theirs appears in a public signature except the `SocketAddr` of std.
//!
//! | Request | Handling |
//! |---|---|
//! | `CCM_POST /ccm_system/request` | decode (`cmmp_transport::wire`), site rules, reply framed like an MP (§2.7/§2.8) |
//! | `CCM_POST /ccm_system_windowsauth/request` | as above, trusted for approval, after Windows authentication: `401` with `WWW-Authenticate: Negotiate` and `NTLM` without credentials (M9), see below |
//! | `CCM_POST /ccm_system_altauth/request` | as the default vdir |
//! | `GET /SMS_MP/.sms_aut?MPLIST`, `MPLIST1`, `MPCERT`, `MPCERT2`, `MPKEYINFORMATIONEX`, `MPLOCATION` | the MP's documents (§2.10) |
//! | `GET /SMS_MP/.sms_pol?<id>.<version>` | policy bodies (§4.2.3), signed headers checked for secret ones |
//! | `POST /SMS_FSP/.sms_fsp` | fallback status point state messages, stored for registered clients |
//! | `/cmmp-admin/…` | JSON admin surface ([`crate::admin`]) |
//!
//! **Windows authentication** (`windowsauth` vdir; [`cmmp_transport::ntlm`]). A request without
//! `Authorization` is answered 401 offering `Negotiate` and `NTLM`. An NTLM `NEGOTIATE` message
//! (in an `NTLM` or a `Negotiate` header) is answered 401 with a `CHALLENGE` (a fresh random
//! server challenge) in the same scheme, and the connection is kept open: NTLM authenticates
//! the connection, so the `AUTHENTICATE` message must come on it, where it is verified
//! (NTLMv2 only) against the site's `[[windows_accounts]]`; a wrong password, an unknown
//! account or a handshake on another connection is 401 and the connection closes. When the
//! client claims a `MIC`, it must cover the `NEGOTIATE` and `CHALLENGE` of this connection
//! (a tampered negotiation is 401). The channel binding is checked by the site's
//! `extended_protection` (`off`, `accept`, `required`, as IIS's setting): over HTTPS it must
//! name the listener's certificate; over plain HTTP there is no TLS channel to bind to, so a
//! non-zero binding is 401 unless `off` (a logon made for some TLS channel can only have been
//! relayed here). The target name is not checked. Without
//! `[[windows_accounts]]` any credentials are accepted, and so is any other `Authorization`
//! header (the behaviour before NTLM was implemented). Kerberos is not implemented (no KDC):
//! a `Negotiate` token that is not NTLM is refused when accounts are configured.
//!
//! **Connections.** A connection serves requests one after another for as long as the client
//! keeps it (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`), as IIS
//! does: at most 10,000 requests, waiting at most 30 s for the next one. A refused logon
//! (401 without a challenge), a dropped-connection fault and a request that cannot be read
//! close it.
//!
//! A message is acknowledged only after the site committed it: the site's work runs to the
//! end of its transaction before the reply is written.
//!
//! **Events** ([`tracing`]; nothing is printed unless the program installs a subscriber, as
//! the `cmmp` CLI does): `error` for a group that did not commit, `warn` for a request whose
//! handling failed (answered HTTP 500, with the error), `info` for each refusal and
//! undecodable request (endpoint, kind, sender, reason), `debug` for every request handled,
//! each injected fault and each unreadable HTTP request.
//!
//! **Group commit.** Decoding (multipart, inflate, UTF-16, XML) runs on the blocking pool,
//! in parallel. The site's work for `CCM_POST` requests runs on one committer thread: it takes
//! every decoded request waiting for it (at most [`MAX_GROUP`]), handles each in a savepoint of
//! one transaction ([`Site::group`]: the endpoint's fault, the size limit, the site's rules),
//! commits once, and only then hands each request its answer. Requests that arrive during a commit wait for the next group, so the cost of a
//! commit (its `fsync`, its WAL pages) is shared by the requests in flight. Each request keeps
//! its own outcome: a request whose handling fails (a store error, not a refusal) is rolled
//! back alone, answered HTTP 500 so that its client sends it again, and logged with outcome
//! `failed` and the error. A group that cannot commit answers every request in it with HTTP
//! 500, and none of them was stored (nor logged).

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use chrono::Utc;
use cmmp_model::msg::{HookName, HookPropertyName, Msg, ReplyModeValue};
use cmmp_model::value::{HexBytes, IsoTime};
use cmmp_model::{DeliveryKind, MessageExt};
use cmmp_transport::cert::Identity;
use cmmp_transport::msg::{hook_property, hooks};
use cmmp_transport::multipart;
use cmmp_transport::ntlm::{self, Credentials};
use cmmp_transport::reply::{ReplySigner, encode_no_reply, encode_sync_reply};
use cmmp_transport::sign::{HashAlgorithm, from_hex, public_key_from_blob, verify_reversed};
use cmmp_transport::wire::{
    DecodeLimits, DecodedRequest, Vdir, decode_request_with_key, peek_header,
};
use openssl::pkey::{PKey, Public};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::behaviour::{Handled, MpAnswer, PolicyBodyRequest, Site};
use crate::error::Error;
use crate::key_memo::KeyMemo;
use crate::site::{FaultKind, POLICY_BODY_ENDPOINT};
use crate::tls::HttpsConfig;

/// The body of the error page a real MP returns for a refused policy body (M8).
pub const HTML_ERROR_PAGE: &str = "<HTML><HEAD><TITLE>ERROR</TITLE></HEAD><BODY></BODY></HTML>";
/// The page of an injected HTTP 500 (M9).
pub const HTML_500_PAGE: &str =
    "<HTML><HEAD><TITLE>500 - Internal server error.</TITLE></HEAD><BODY></BODY></HTML>";

/// The page of a 401 (M9).
const HTML_401_PAGE: &str = "<HTML><HEAD><TITLE>401 - Unauthorized</TITLE></HEAD></HTML>";

/// The page of an HTTPS MP asked without a client certificate (§2.9).
pub const HTML_403_CLIENT_CERTIFICATE_PAGE: &str =
    "<HTML><HEAD><TITLE>403 - Client certificate required</TITLE></HEAD><BODY></BODY></HTML>";

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// How long a kept-alive connection waits for the next request.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Requests served on one connection at most; the last answer closes it.
const MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;

/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The room made for each read of a request's head.
const READ_CHUNK: usize = 16 * 1024;
/// The most room made at once for the rest of a request's body.
const MAX_READ_STEP: usize = 256 * 1024;

/// The most requests the committer handles in one transaction.
const MAX_GROUP: usize = 256;

/// Request bodies up to this size are decoded on the async thread that read them; larger ones
/// on the blocking pool. A signed DDR (7 KB) takes about 0.1 ms to decode and verify.
const INLINE_DECODE_MAX: usize = 32 * 1024;

/// The site and the MP's identity, shared by the connections.
pub(crate) struct Shared {
    pub(crate) site: Mutex<Site>,
    pub(crate) identity: Identity,
    /// The largest request body read (from the site's `max_message_bytes`, fixed at start).
    max_body: usize,
    /// Decoded `CCM_POST` requests for the committer thread.
    commits: mpsc::Sender<Job>,
    /// The site's Windows accounts (fixed at start), for NTLM on the `windowsauth` vdir.
    windows_accounts: Vec<Credentials>,
    /// How NTLM channel bindings are checked (the site's `extended_protection`).
    extended_protection: ntlm::ExtendedProtection,
    /// Public keys read from `clientauth` `PublicKey` blobs, by the blob's hex as sent
    /// ([`preverify`]).
    blob_keys: KeyMemo,
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
    https_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// One per listener: the signal that stops its accept loop, and the loop.
    listeners: Vec<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("https_addr", &self.https_addr)
            .finish_non_exhaustive()
    }
}

/// What a connection's transport says about the client: nothing over plain HTTP; over TLS,
/// the channel binding of the listener's certificate and whether the client showed a
/// certificate.
#[derive(Clone, Copy)]
struct Channel {
    tls: Option<TlsChannel>,
}

#[derive(Clone, Copy)]
struct TlsChannel {
    /// MD5 of the RFC 5929 `tls-server-end-point` binding of the listener's certificate.
    binding: [u8; 16],
    /// The listener asks for client certificates ([`crate::tls`]).
    asks_for_certificates: bool,
    /// The client showed one (it chains to the client roots, or the handshake failed).
    client_certificate: bool,
}

impl Channel {
    const PLAIN: Self = Self { tls: None };

    /// Whether `path` (lower case) is refused with 403 on this channel: an HTTPS listener
    /// that asks for client certificates, a client without one, and the default vdir or a
    /// `/SMS_MP/` path ([`crate::tls`]).
    fn lacks_client_certificate(&self, path: &str) -> bool {
        self.tls.is_some_and(|tls| {
            tls.asks_for_certificates
                && !tls.client_certificate
                && (path == "/ccm_system/request" || path.starts_with("/sms_mp/"))
        })
    }
}

impl Emulator {
    /// Binds `listen` (use `127.0.0.1:0` for an ephemeral port) and serves `site` with the MP
    /// identity `identity` (its signing certificate is what `MPCERT` returns and what signs
    /// replies when the site's `sign_replies` switch is on, and policy assignments under
    /// `sign_policy_assignments`; its encryption certificate is what clients may encrypt
    /// payloads to).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        mut site: Site,
        identity: Identity,
    ) -> Result<Self, Error> {
        site.set_policy_signer(identity.signing_key().clone());
        let listener =
            TcpListener::bind(listen).await.map_err(|e| Error::io(format!("bind {listen}"), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
        site.listening_on(Some(addr.port()), None);
        let limit = site.config().switches.max_message_bytes;
        // Room for the multipart framing and header part around the largest message accepted.
        let max_body = usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(1024 * 1024);
        let (commits, jobs) = mpsc::channel();
        let windows_accounts = site
            .config()
            .windows_accounts
            .iter()
            .map(|a| Credentials::new(&a.domain, &a.user, &a.password))
            .collect();
        let extended_protection = site.config().extended_protection.ntlm();
        let shared = Arc::new(Shared {
            site: Mutex::new(site),
            identity,
            max_body,
            commits,
            windows_accounts,
            extended_protection,
            blob_keys: KeyMemo::new(),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("cmmp-emulator-commit".to_owned())
            .spawn(move || committer(&jobs, &weak))
            .map_err(|e| Error::io("start the committer thread", e))?;
        let listeners = vec![listen_on(listener, Arc::clone(&shared), None)];
        Ok(Self { addr, https_addr: None, shared, listeners })
    }

    /// Adds an HTTPS listener ([`crate::tls`]): the same site and routes as the plain-HTTP
    /// listener, over TLS with `config`'s certificate. Client certificates are asked for when
    /// `config` has client roots; without one, the default vdir and `/SMS_MP/` answer 403.
    /// NTLM logons on it are bound to its certificate (the site's `extended_protection`).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when the certificate, key or roots are not usable; [`Error::Io`] when
    /// the address cannot be bound.
    pub async fn serve_https(&mut self, config: &HttpsConfig) -> Result<SocketAddr, Error> {
        let tls = config.server_config()?;
        let binding = ntlm::tls_channel_binding(config.certificate_der())
            .map_err(|e| Error::Tls(format!("the certificate's channel binding: {e}")))?;
        let asks_for_certificates = config.asks_for_client_certificates();
        let listen = config.listen;
        let listener =
            TcpListener::bind(listen).await.map_err(|e| Error::io(format!("bind {listen}"), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
        self.site().listening_on(None, Some(addr.port()));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let tls = TlsListener { acceptor, binding, asks_for_certificates };
        let listening = listen_on(listener, Arc::clone(&self.shared), Some(tls));
        self.listeners.push(listening);
        self.https_addr = Some(addr);
        Ok(addr)
    }

    /// The address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the HTTPS listener [`Emulator::serve_https`] started last, if any.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
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

    /// Stops accepting connections and waits for the accept loops to end.
    pub async fn shutdown(mut self) {
        for (tx, task) in std::mem::take(&mut self.listeners) {
            let _ = tx.send(());
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for (tx, _) in self.listeners.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// What an HTTPS listener needs for each connection.
struct TlsListener {
    acceptor: tokio_rustls::TlsAcceptor,
    /// The channel binding of the listener's certificate.
    binding: [u8; 16],
    /// The listener asks for client certificates.
    asks_for_certificates: bool,
}

/// A listener's accept loop (over TLS with `tls`), and the signal that stops it.
fn listen_on(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsListener>,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let tls = tls.map(Arc::new);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    // Answers are written whole; Nagle would hold the last segment of one back
                    // for the client's delayed ACK on a kept-alive connection.
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => connection(stream, shared, Channel::PLAIN).await,
                            Some(tls) => tls_connection(stream, shared, &tls).await,
                        }
                    });
                }
            }
        }
    });
    (tx, task)
}

/// The TLS handshake, then the connection. A client that stalls the handshake, or whose
/// certificate does not chain to the client roots, is dropped.
async fn tls_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, tls: &TlsListener) {
    let handshake = tokio::time::timeout(TLS_HANDSHAKE, tls.acceptor.accept(stream));
    let Ok(Ok(stream)) = handshake.await else { return };
    let client_certificate = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
    let channel = TlsChannel {
        binding: tls.binding,
        asks_for_certificates: tls.asks_for_certificates,
        client_certificate,
    };
    connection(stream, shared, Channel { tls: Some(channel) }).await;
}

/// A parsed request.
pub(crate) struct HttpRequest {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The client keeps the connection for another request (HTTP/1.1 without
    /// `Connection: close`, or `Connection: keep-alive`).
    pub(crate) keep_alive: bool,
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
    /// Extra header fields (`WWW-Authenticate`).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Keep the connection open for the next request (NTLM handshake only).
    pub(crate) keep_alive: bool,
}

impl Response {
    fn new(status: u16, content_type: Option<String>, body: Vec<u8>) -> Self {
        Self { status, content_type, body, headers: Vec::new(), keep_alive: false }
    }

    pub(crate) fn empty() -> Self {
        Self::new(200, None, Vec::new())
    }

    pub(crate) fn html(status: u16, page: &str) -> Self {
        Self::new(status, Some("text/html".to_owned()), page.as_bytes().to_vec())
    }

    fn multipart(body: Vec<u8>) -> Self {
        Self::new(200, Some(multipart::content_type()), body)
    }

    pub(crate) fn xml(text: String) -> Self {
        Self::new(200, Some("text/xml; charset=utf-8".to_owned()), text.into_bytes())
    }

    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        Self::new(status, Some("application/json".to_owned()), body)
    }

    /// A 401 page with `WWW-Authenticate` fields; `keep_alive` while a handshake goes on.
    fn unauthorized(challenges: Vec<String>, keep_alive: bool) -> Self {
        let mut response = Self::html(401, HTML_401_PAGE);
        response.headers = challenges.into_iter().map(|c| ("WWW-Authenticate", c)).collect();
        response.keep_alive = keep_alive;
        response
    }
}

enum Action {
    Respond(Response),
    /// Close the connection without an answer (fault `drop-connection`).
    Drop,
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shared: Arc<Shared>,
    channel: Channel,
) {
    // The NTLM handshake under way on this connection.
    let mut challenge = None;
    let mut first = true;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut served = 0_u32;
    loop {
        let reading = read_request(&mut stream, &mut buf, shared.max_body);
        // A kept-alive connection waits a bounded time for the handshake's next request.
        let read = if std::mem::take(&mut first) {
            reading.await
        } else {
            tokio::time::timeout(KEEP_ALIVE, reading).await.unwrap_or(Ok(None))
        };
        let request = match read {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(status, "unreadable HTTP request; connection closed");
                let _ = write_response(&mut stream, &Response::html(status, HTML_500_PAGE)).await;
                break;
            }
        };
        let wants_more = request.keep_alive;
        let action = match windows_auth(&request, &mut challenge, &shared, channel) {
            Some(refused) => Action::Respond(refused),
            None => route(request, &shared, channel).await,
        };
        let Action::Respond(mut response) = action else { break };
        served += 1;
        // Kept alive when the client asks, as IIS does; a refused logon (401) still closes.
        if wants_more && response.status != 401 && served < MAX_REQUESTS_PER_CONNECTION {
            response.keep_alive = true;
        }
        if write_response(&mut stream, &response).await.is_err() || !response.keep_alive {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// Windows authentication of a `CCM_POST` to the `windowsauth` vdir (module docs): `None`
/// to go on with the request, else the 401 to answer. `challenge` is the connection's
/// pending handshake.
fn windows_auth(
    request: &HttpRequest,
    challenge: &mut Option<Handshake>,
    shared: &Shared,
    channel: Channel,
) -> Option<Response> {
    let path = request.target.split('?').next().unwrap_or_default();
    if request.method != "CCM_POST" || !path.eq_ignore_ascii_case(Vdir::WindowsAuth.path()) {
        return None;
    }
    let accounts = &shared.windows_accounts;
    let Some(value) = request.header("authorization") else {
        let offers = vec!["Negotiate".to_owned(), "NTLM".to_owned()];
        return Some(Response::unauthorized(offers, true));
    };
    let refused = || Some(Response::unauthorized(Vec::new(), false));
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let message = ["NTLM", "Negotiate"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(scheme))
        .and_then(|s| Some((s, openssl::base64::decode_block(token.trim()).ok()?)));
    match message {
        Some((scheme, bytes)) if ntlm::is_negotiate(&bytes) => {
            let mut fresh = [0_u8; 8];
            if openssl::rand::rand_bytes(&mut fresh).is_err() {
                return Some(Response::html(500, HTML_500_PAGE));
            }
            let domain = accounts
                .iter()
                .map(|a| a.domain.to_ascii_uppercase())
                .find(|d| !d.is_empty())
                .unwrap_or_else(|| "WORKGROUP".to_owned());
            let type2 = ntlm::challenge(&fresh, &domain, "MP");
            let offer = format!("{scheme} {}", openssl::base64::encode_block(&type2));
            *challenge = Some(Handshake { negotiate: bytes, challenge: type2 });
            Some(Response::unauthorized(vec![offer], true))
        }
        Some((_, bytes)) if bytes.get(8..12) == Some(&3_u32.to_le_bytes()[..]) => {
            // The challenge is used once: a replayed AUTHENTICATE finds none.
            let Some(handshake) = challenge.take() else { return refused() };
            if accounts.is_empty() {
                return None;
            }
            let Ok(message) = ntlm::parse_authenticate(&bytes) else { return refused() };
            let side = ntlm::ServerSide {
                negotiate: &handshake.negotiate,
                challenge: &handshake.challenge,
                channel_binding: channel.tls.map(|tls| tls.binding),
                protection: shared.extended_protection,
            };
            let known = accounts.iter().any(|a| {
                (a.domain.is_empty() || a.domain.eq_ignore_ascii_case(&message.domain))
                    && message.logon(a, &side).is_ok()
            });
            if known { None } else { refused() }
        }
        // Another scheme or token (Basic, Kerberos): accepted only without accounts.
        _ if accounts.is_empty() => None,
        _ => refused(),
    }
}

/// An NTLM handshake under way on a connection: the messages the `MIC` covers.
struct Handshake {
    /// The client's `NEGOTIATE` message.
    negotiate: Vec<u8>,
    /// The `CHALLENGE` message sent (it holds the server challenge).
    challenge: Vec<u8>,
}

/// Reads one request; `Err(status)` for one that cannot be read. `buf` holds what was read
/// from the connection but not yet used (a pipelined next request), before and after.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<Option<HttpRequest>, u16> {
    let mut scanned = 0_usize;
    let head_end = loop {
        // Search only the new bytes (and the three before them) for the blank line.
        let from = scanned.saturating_sub(3);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + i + 4;
        }
        scanned = buf.len();
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        if read_more(stream, buf, READ_CHUNK).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(400) };
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(400),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let http11 = req.version == Some(1);
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
    // HTTP/1.1 keeps the connection unless the client says `close`; 1.0 only when it asks.
    let connection = |token: &str| {
        headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let keep_alive = if http11 { !connection("close") } else { connection("keep-alive") };
    buf.drain(..head_end);
    while buf.len() < length {
        // Room for the rest of the body, a bounded step at a time: a declared length is
        // not memory anybody has sent yet.
        if read_more(stream, buf, (length - buf.len()).min(MAX_READ_STEP)).await? == 0 {
            return Err(400);
        }
    }
    let rest = buf.split_off(length);
    let body = std::mem::replace(buf, rest);
    Ok(Some(HttpRequest { method, target, headers, body, keep_alive }))
}

/// Reads what the connection has into `buf`, with room for at least `want` more bytes: the
/// bytes go straight into the vector's spare capacity. (A buffer on the stack would live in
/// the request future, which is moved into its keep-alive timeout, so each request copied it
/// and zeroed it.) The count read; 0 at the end of the stream.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    want: usize,
) -> Result<usize, u16> {
    buf.reserve(want.max(1));
    stream.read_buf(buf).await.map_err(|_| 400u16)
}

async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
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
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let connection = if response.keep_alive { "keep-alive" } else { "close" };
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        response.body.len()
    ));
    // One write: head and body leave together.
    let mut out = Vec::with_capacity(head.len() + response.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&response.body);
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn route(request: HttpRequest, shared: &Arc<Shared>, channel: Channel) -> Action {
    let (path, query) = match request.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (request.target.clone(), String::new()),
    };
    let lower = path.to_ascii_lowercase();
    if channel.lacks_client_certificate(&lower) {
        return Action::Respond(Response::html(403, HTML_403_CLIENT_CERTIFICATE_PAGE));
    }
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
    let kind = {
        let shared = Arc::clone(shared);
        let endpoint = endpoint.to_owned();
        tokio::task::spawn_blocking(move || shared.site().fault_for(&endpoint).ok().flatten())
            .await
            .ok()
            .flatten()
    };
    apply_fault(kind).await
}

/// What an injected fault (looked up with [`Site::fault_for`]) does to the answer: `Some`
/// when it decides it; `true` to force a pending registration.
async fn apply_fault(kind: Option<FaultKind>) -> (Option<Action>, bool) {
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
    // Decode in parallel with other requests: a small body (a DDR, state messages: well under
    // a millisecond of work) right here, a large one off the async threads. Handing every
    // request to the blocking pool and back cost more CPU than decoding a small one.
    let request_len = request.body.len();
    let decode = {
        let shared = Arc::clone(shared);
        let content_type = request.header("content-type").map(str::to_owned);
        let body = request.body;
        move || {
            let key = (shared.identity.encryption_key(), shared.identity.encryption_cert());
            match decode_request_with_key(
                content_type.as_deref(),
                &body,
                DecodeLimits::default(),
                Some(key),
            ) {
                Ok(d) => {
                    let verified_by = preverify(&d, &shared.blob_keys);
                    Ok((d, verified_by))
                }
                // What the log can still say about it: its header, when that reads.
                Err(e) => Err(Box::new((
                    e,
                    peek_header(content_type.as_deref(), &body, DecodeLimits::default()),
                ))),
            }
        }
    };
    let decoded = if request_len <= INLINE_DECODE_MAX {
        Ok(decode())
    } else {
        tokio::task::spawn_blocking(decode).await
    };
    let (decoded, verified_by) = match decoded {
        Ok(Ok((d, verified_by))) => (Arc::new(d), verified_by.map(Arc::new)),
        Ok(Err(refused)) => {
            let (e, header) = *refused;
            let shared = Arc::clone(shared);
            let reason = e.to_string();
            tracing::info!(
                endpoint = header.as_ref().map(|h| h.target_endpoint.as_str()),
                source = header.as_ref().and_then(|h| h.source_id).map(tracing::field::display),
                %reason,
                "undecodable request refused"
            );
            let _ = tokio::task::spawn_blocking(move || {
                shared.site().record_undecodable(header.as_ref(), &reason, Utc::now())
            })
            .await;
            return Action::Respond(Response::empty());
        }
        Err(_) => return Action::Respond(Response::html(500, HTML_500_PAGE)),
    };
    // The committer looks up the fault for the message's endpoint first (the endpoint decides
    // which applies); a fault that decides the answer comes back instead of an answer, a delay
    // is waited out here and the request handled after it.
    let mut fault_checked = false;
    let answered = loop {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            decoded: Arc::clone(&decoded),
            vdir,
            fault_checked,
            verified_by: verified_by.clone(),
            done,
        };
        if shared.commits.send(job).is_err() {
            return Action::Respond(Response::html(500, HTML_500_PAGE));
        }
        match answer.await {
            Ok(Ok(Answer::Handled(answered))) => break *answered,
            Ok(Ok(Answer::Fault(kind))) => {
                if let (Some(action), _) = apply_fault(Some(kind)).await {
                    return action;
                }
                fault_checked = true;
            }
            Ok(Err(())) | Err(_) => return Action::Respond(Response::html(500, HTML_500_PAGE)),
        }
    };
    if delivery_of(&decoded.header) == DeliveryKind::Post {
        return Action::Respond(respond(&decoded, answered, shared));
    }
    // A reply to write (XML, zlib, perhaps a signature): off the async threads.
    let shared = Arc::clone(shared);
    Action::Respond(blocking(move || respond(&decoded, answered, &shared)).await)
}

/// Verifies a request's `clientauth` `PayloadSignature` with the `PublicKey` the hook
/// carries, on a decode thread: the RSA work of signed messages then runs in parallel
/// instead of in the single committer. The result decides nothing by itself: the committer
/// accepts it only when this key is the registered certificate's key (and verifies in full
/// otherwise), so every answer stays what it was.
fn preverify(decoded: &DecodedRequest, keys: &KeyMemo) -> Option<PKey<Public>> {
    let hook = hooks(&decoded.header, &HookName::Clientauth).next()?;
    let hash =
        HashAlgorithm::from_property(hook_property(hook, &HookPropertyName::HashAlgorithm)).ok()?;
    let signature = from_hex(hook_property(hook, &HookPropertyName::PayloadSignature)?).ok()?;
    // Remembered by the blob's hex as sent: a key seen before costs no hex decoding either.
    let blob_hex = hook_property(hook, &HookPropertyName::PublicKey)?;
    let key = keys
        .get_or_read(blob_hex.as_bytes(), |_| {
            from_hex(blob_hex).ok().and_then(|blob| public_key_from_blob(&blob).ok()).ok_or(())
        })
        .ok()?;
    verify_reversed(&key, hash, &decoded.payload_as_sent, &signature).ok()?;
    Some(key)
}

/// A decoded `CCM_POST` request waiting for the committer.
struct Job {
    decoded: Arc<DecodedRequest>,
    vdir: Vdir,
    /// The fault for the endpoint was looked up already (the request waited out a delay).
    fault_checked: bool,
    /// The key that verified the `clientauth` `PayloadSignature` on a decode thread
    /// ([`preverify`]); the committer then only compares it with the registered key.
    verified_by: Option<Arc<PKey<Public>>>,
    /// The site's answer, sent once the group it was handled in has committed; `Err` when it
    /// failed or the group did not commit (answered with HTTP 500).
    done: tokio::sync::oneshot::Sender<Result<Answer, ()>>,
}

/// What the committer sends back for a request.
enum Answer {
    /// The site handled it.
    Handled(Box<Answered>),
    /// An injected fault decides the answer, or delays it (see [`apply_fault`]); the site did
    /// not handle the request.
    Fault(FaultKind),
}

/// The site's answer to a request, with what the reply needs from the site file.
struct Answered {
    handled: Handled,
    sign: bool,
    site_code: String,
    mp_host: String,
}

/// The committer thread: handles waiting requests in groups, each group in one transaction
/// (see the module docs). Ends when the server is gone.
fn committer(jobs: &mpsc::Receiver<Job>, shared: &Weak<Shared>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else { return };
        let answers = commit_group(&shared, &group);
        drop(shared);
        for (job, answer) in group.into_iter().zip(answers) {
            let _ = job.done.send(answer);
        }
    }
}

/// Handles `group` in one transaction; the answers only once it committed.
fn commit_group(shared: &Shared, group: &[Job]) -> Vec<Result<Answer, ()>> {
    let mut site = shared.site();
    // A panic rolls the whole group back (`Site::group`); its requests get HTTP 500.
    let answers = catch_unwind(AssertUnwindSafe(|| {
        site.group(|site| group.iter().map(|job| handle(site, job)).collect::<Vec<_>>())
    }));
    match answers {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => {
            let error = with_causes(&e);
            tracing::error!(requests = group.len(), %error, "a group did not commit; HTTP 500");
            group.iter().map(|_| Err(())).collect()
        }
        Err(_) => {
            tracing::error!(requests = group.len(), "a group panicked; HTTP 500");
            group.iter().map(|_| Err(())).collect()
        }
    }
}

/// The site's work for one request (savepoints of the group's transaction): the fault for
/// its endpoint, the size limit, the site's rules.
fn handle(site: &mut Site, job: &Job) -> Result<Answer, ()> {
    let decoded = &job.decoded;
    let mut force_pending = false;
    if !job.fault_checked {
        match site.fault_for(&decoded.header.target_endpoint).ok().flatten() {
            None => {}
            Some(FaultKind::RegistrationPending) => force_pending = true,
            Some(kind) => {
                tracing::debug!(endpoint = %decoded.header.target_endpoint, ?kind, "fault");
                return Ok(Answer::Fault(kind));
            }
        }
    }
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
    // What the events name.
    let (endpoint, kind) = (&decoded.header.target_endpoint, decoded.message.kind_name());
    let source = decoded.header.source_id.map(tracing::field::display);
    let handled = match checked.and_then(|()| {
        site.handle_verified(
            decoded,
            job.vdir,
            force_pending,
            job.verified_by.as_deref(),
            Utc::now(),
        )
    }) {
        Ok(h) => h,
        Err(e) => match e.refusal() {
            Some(r) => Handled::Refused(r.clone()),
            None => {
                // Answered HTTP 500, so the client sends it again; the log says why. The
                // request's own savepoint is rolled back already, the group goes on.
                let error = with_causes(&e);
                tracing::warn!(%endpoint, kind, source, %error, "handling failed; HTTP 500");
                let _ = site.record_failure(&decoded.header, kind, &error, Utc::now());
                return Err(());
            }
        },
    };
    match &handled {
        Handled::Refused(r) => {
            tracing::info!(%endpoint, kind, source, reason = r.code(), "refused");
        }
        _ => tracing::debug!(%endpoint, kind, source, "handled"),
    }
    let config = site.config();
    Ok(Answer::Handled(Box::new(Answered {
        handled,
        sign: config.switches.sign_replies,
        site_code: config.site_code.to_string(),
        mp_host: config.management_point.host.as_str().to_owned(),
    })))
}

/// An error and what caused it, in one line (`store discovery data failed: no such table`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

fn delivery_of(header: &Msg) -> DeliveryKind {
    match &header.reply_mode {
        Some(ReplyModeValue::Async) => DeliveryKind::Post,
        Some(ReplyModeValue::Other(s)) if s.eq_ignore_ascii_case("async") => DeliveryKind::Post,
        _ => DeliveryKind::Invoke,
    }
}

/// The HTTP answer to a handled request, framed like an MP (§2.7/§2.8).
fn respond(decoded: &DecodedRequest, answered: Answered, shared: &Shared) -> Response {
    let delivery = delivery_of(&decoded.header);
    let Answered { handled, sign, site_code, mp_host } = answered;
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
    // A fresh message ID, made the way the client makes its own.
    msg.id = cmmp_transport::wire::Fresh::now().ok().map(|f| f.id);
    msg.source_host = Some(mp_host.to_owned());
    msg.target_address = request.reply_to.clone();
    msg.correlation_id = request.id;
    msg.sent_time = Some(IsoTime::now());
    msg.target_host = request.source_host.clone();
    msg.reply_mode = Some(ReplyModeValue::Reply);
    msg.protocol = Some("http".to_owned());
    msg
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
                Ok(body) => {
                    Response::new(200, Some("application/octet-stream".to_owned()), body.bytes)
                }
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
