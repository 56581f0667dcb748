//! HTTP for the management point: `CCM_POST` Invoke and Post, the `.sms_aut` GETs and policy
//! body downloads (`.sms_pol`), over HTTP or HTTPS (protocol §2.1, §2.2, §2.7–§2.10, §3.7,
//! §4.2.3; house style HS-50, HS-54).
//!
//! This is the only module that names the HTTP and TLS crates (house style HS-4): `tokio`,
//! `httparse`, `rustls`, `tokio-rustls` and `rustls-native-certs`. **External types it lets
//! through: none.** Certificates and keys cross its API as DER bytes, the proxy as a URL
//! string, times as [`std::time::Duration`], addresses as [`std::net::SocketAddr`]. The async
//! methods must run on a tokio runtime with I/O and time enabled; [`blocking::Client`] brings
//! its own current-thread runtime.
//!
//! One call is one exchange (HS-50): a new connection, the request bytes exactly as
//! [`wire::build_request`] built them (`Connection: close`), one response, no retries, no
//! redirects. With [`ClientConfig::keep_alive`], the same bytes but `Connection: keep-alive`
//! go over a kept-alive connection when an idle one of the same route is at hand (at most 64
//! idle connections, each kept 15 s); a request that fails on a reused connection (the MP
//! closed it while idle) is sent once more on a new one. The response head is parsed by `httparse`; the body is read by
//! `Content-Length`, chunked coding or to the end of the connection, and never past
//! [`ReplyLimits::max_body`] ([`Error::ReplyTooLarge`]). Replies are then decoded by
//! [`crate::reply`], which turns every failure into a typed [`Error`].
//!
//! **Windows authentication.** With [`ClientConfig::windows_credentials`], requests to the
//! `/ccm_system_windowsauth/` vdir run the NTLM handshake ([`crate::ntlm`], NTLMv2; `Negotiate`
//! is answered with NTLM, Kerberos is not implemented): the request is sent without
//! credentials and `Connection: keep-alive`; on a 401 offering `NTLM` (preferred) or
//! `Negotiate`, again with the `NEGOTIATE` message (on a new connection only if the MP closed
//! the first); then, on the same connection as the MP's `CHALLENGE`, with the `AUTHENTICATE`
//! message. That message is bound to the connection and the service (extended protection:
//! over HTTPS the channel binding of the server certificate the client saw, the target name
//! `HTTP/<mp>`, and a `MIC` over the three messages), so a logon relayed elsewhere fails at a
//! server that checks them. A final 401 is [`Error::AuthenticationFailed`]. These are the
//! only exchanges that send more than one request on a connection; each leg carries the whole
//! request body, as IIS expects.
//!
//! **Revocation.** With [`ClientConfig::crl_check`] (or a raw message flagged
//! `ENABLE_CRL_CHECKING`), the MP's certificate chain is checked against CRLs after the
//! handshake and before the request is sent ([`CrlCheck`] says where CRLs come from):
//! [`Error::Revoked`] or [`Error::CrlUnavailable`], never a silent pass.
//!
//! TLS is rustls on the ring provider, TLS 1.2 and 1.3. Server verification is always on:
//! against the system's roots by default ([`Roots::System`]) or against configured roots; there
//! is no way to accept any certificate (field notes §5 item 4). A client certificate
//! ([`ClientIdentity`]) gives mutual TLS for HTTPS-only MPs (M9). Proxies are `http://` URLs:
//! HTTP requests go to the proxy in absolute form, HTTPS through a `CONNECT` tunnel.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cmmp_model::mpinfo::{MpCertificate, MpCertificates, MpList, MpLocation, Mpkeyinformation};
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{DeliveryKind, Invoke, Message, Post};
use openssl::pkey::PKey;
use openssl::x509::X509;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cert::Identity;
use crate::error::Error;
use crate::msg::HostName;
use crate::ntlm::{self, Credentials};
use crate::payload::Attachment;
use crate::raw::{RawMessage, SecurityFlags};
use crate::reply::{
    self, HttpReply, PolicyDownload, Received, ReplyLimits, ReplyVerifier, SyncContext, SyncReply,
};
use crate::sign::{self, SecretBytes, TokenScheme};
use crate::wire::{self, Fresh, Settings, Signer, Vdir};

/// `http` or `https`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (mixed mode), port 80.
    #[default]
    Http,
    /// HTTPS (native mode, HTTPS-only sites), port 443.
    Https,
}

impl Scheme {
    /// The default port: 80 or 443 (SDK `MessageSettings.DefaultHttpPort`/`HttpsPort`, §2.1).
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// `http` or `https`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// The certificates an HTTPS server certificate must chain to.
///
/// There is deliberately no variant that accepts any certificate (field notes §5 item 4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's trusted roots (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    #[default]
    System,
    /// Only these roots (DER), e.g. the site's PKI root.
    Custom(Vec<Vec<u8>>),
    /// The system's roots and these (DER).
    SystemAndCustom(Vec<Vec<u8>>),
}

/// A TLS client certificate chain and its private key, for mutual TLS (§3.4 native mode;
/// M9: an HTTPS-only MP answers 403 without one).
///
/// `Debug` shows the chain length only; the key is kept as a [`SecretBytes`] (HS-64).
#[derive(Clone)]
pub struct ClientIdentity {
    /// The chain, leaf first, DER.
    chain: Vec<Vec<u8>>,
    /// The PKCS#8 private key, DER (shared, never copied by cloning).
    key: Arc<SecretBytes>,
}

impl ClientIdentity {
    /// A chain (leaf first, DER) and its PKCS#8 private key (DER).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty chain. Whether the key matches is checked by
    /// [`Client::new`].
    pub fn from_der(chain: Vec<Vec<u8>>, pkcs8_key: SecretBytes) -> Result<Self, Error> {
        if chain.is_empty() {
            return Err(Error::Config("the client certificate chain is empty".to_owned()));
        }
        Ok(Self { chain, key: Arc::new(pkcs8_key) })
    }

    /// The signing certificate and key of `identity`: what PKI material loaded with
    /// [`Identity::from_pem`] or [`Identity::from_pkcs12`] holds.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key cannot be exported as PKCS#8.
    pub fn from_identity(identity: &Identity) -> Result<Self, Error> {
        let key = identity.signing_key().pkey().private_key_to_pkcs8().map_err(|e| {
            Error::Config(format!("the client key cannot be exported as PKCS#8: {e}"))
        })?;
        Self::from_der(vec![identity.signing_cert_der().to_vec()], SecretBytes::new(key))
    }

    /// A PEM chain (leaf first; intermediates may follow) and an unencrypted PEM private key.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when either does not parse.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let certs = X509::stack_from_pem(chain_pem).map_err(|e| {
            Error::Config(format!("the client certificate chain does not parse as PEM: {e}"))
        })?;
        let chain = certs
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("the client certificate chain: {e}")))?;
        let key = PKey::private_key_from_pem(key_pem)
            .and_then(|k| k.private_key_to_pkcs8())
            .map_err(|e| Error::Config(format!("the client key does not parse as PEM: {e}")))?;
        Self::from_der(chain, SecretBytes::new(key))
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Everything a [`Client`] needs. [`ClientConfig::new`] documents the defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Message settings: MP host, source host, vdir, compression, hash.
    pub settings: Settings,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The port; `None` for the scheme's default (80 or 443).
    pub port: Option<u16>,
    /// Connect to this address instead of resolving the MP's name (like curl's `--resolve`);
    /// the `Host` header and the TLS server name stay the MP's name. Ignored with a proxy.
    pub resolve: Option<SocketAddr>,
    /// Roots that verify the HTTPS server.
    pub roots: Roots,
    /// A client certificate for mutual TLS (HTTPS only).
    pub client_identity: Option<ClientIdentity>,
    /// An `http://[user:password@]host[:port]` proxy.
    pub proxy: Option<String>,
    /// Bound on connecting: TCP, proxy tunnel and TLS handshake.
    pub connect_timeout: Duration,
    /// Bound on a whole exchange, connecting included.
    pub timeout: Duration,
    /// The pinned MP signing certificate; replies are verified against it (§3.5).
    pub reply_verifier: Option<ReplyVerifier>,
    /// Reply limits (body size, inflate, XML depth).
    pub limits: ReplyLimits,
    /// Revocation checking of the MP's TLS certificate (HTTPS only); `None` for none, as the
    /// SDK without `MPAPI_SECURITY_FLAG_ENABLE_CRL_CHECKING`. A raw message with that flag
    /// turns it on for its exchange with [`CrlCheck::default`] when this is `None`.
    pub crl_check: Option<CrlCheck>,
    /// The Windows account for NTLM authentication on the `windowsauth` vdir (see
    /// [`crate::ntlm`]); `None` to send no credentials (the MP then answers 401, M9).
    pub windows_credentials: Option<Credentials>,
    /// Keep connections open between exchanges and reuse them (HTTP/1.1 persistent
    /// connections, `Connection: keep-alive`), as WinHTTP does for the real client. Off by
    /// default: each exchange is then one connection, and the bytes on the wire are exactly
    /// [`wire::Request::to_bytes`] (`Connection: close`). See the module docs.
    pub keep_alive: bool,
}

/// Revocation checking of the MP's TLS certificate against CRLs (protocol §5.4,
/// `MPAPI_SECURITY_FLAG_ENABLE_CRL_CHECKING`; field notes §5 item 4).
///
/// The check runs after the TLS handshake has verified the chain and before any request byte
/// is sent: the server's chain is verified again, with the CRLs, by rustls' WebPKI verifier.
///
/// Where the CRLs come from:
/// - the configured [`CrlCheck::crls`] (DER or PEM, e.g. the site CA's published CRL), or,
///   when there are none and [`CrlCheck::fetch`] is set (the default),
/// - the `http://` URLs of the certificates' CRL distribution points (`ldap://` and other
///   schemes are skipped), fetched directly (not through the proxy) with this crate's HTTP
///   code, bounded by [`CrlCheck::max_fetch_bytes`] and, with the handshake, by the
///   client's connect timeout.
///   A fetched CRL is kept, per URL, until its `nextUpdate` (at most a day).
///
/// A CRL past its `nextUpdate` does not count. When no CRL gives the status of a checked
/// certificate, the exchange fails with [`Error::CrlUnavailable`] (with the fetch failures)
/// unless [`CrlCheck::allow_unknown`] is set; a revoked certificate is [`Error::Revoked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlCheck {
    /// CRLs to check against, DER or PEM. Default: none.
    pub crls: Vec<Vec<u8>>,
    /// Fetch CRLs from the `http://` CRL distribution points when no CRL is configured.
    /// Default: on.
    pub fetch: bool,
    /// Check only the server's own certificate, not the intermediate CAs. Default: off (the
    /// whole chain up to, not including, the root).
    pub end_entity_only: bool,
    /// Accept a certificate whose revocation status no CRL gives. Default: off (the status
    /// must be known).
    pub allow_unknown: bool,
    /// The largest CRL fetched, in bytes. Default: 8 MiB.
    pub max_fetch_bytes: usize,
}

impl Default for CrlCheck {
    fn default() -> Self {
        Self {
            crls: Vec::new(),
            fetch: true,
            end_entity_only: false,
            allow_unknown: false,
            max_fetch_bytes: 8 * 1024 * 1024,
        }
    }
}

impl CrlCheck {
    /// Checks against these CRLs (DER or PEM) only: nothing is fetched.
    pub fn with_crls(crls: Vec<Vec<u8>>) -> Self {
        Self { crls, fetch: false, ..Self::default() }
    }

    /// Checks against the CRLs of the files at `paths` (DER or PEM) only.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be read.
    pub fn from_files<P: AsRef<std::path::Path>>(paths: &[P]) -> Result<Self, Error> {
        let crls = paths
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map_err(|source| Error::Io { path: p.as_ref().display().to_string(), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::with_crls(crls))
    }
}

impl ClientConfig {
    /// The defaults: HTTPS when `settings.native_mode` is set, else HTTP; the scheme's
    /// default port; the name resolved normally; the system's roots; no client certificate;
    /// no proxy; 30 s to connect; 120 s per exchange (the SDK's message `Timeout` is 60 s,
    /// which the MP applies on its side); no pinned MP certificate; [`ReplyLimits::default`];
    /// no revocation checking; no Windows credentials; a new connection per exchange.
    pub fn new(settings: Settings) -> Self {
        let scheme = if settings.native_mode { Scheme::Https } else { Scheme::Http };
        Self {
            settings,
            scheme,
            port: None,
            resolve: None,
            roots: Roots::System,
            client_identity: None,
            proxy: None,
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
            reply_verifier: None,
            limits: ReplyLimits::default(),
            crl_check: None,
            windows_credentials: None,
            keep_alive: false,
        }
    }
}

/// The tracking ID of a Post: the `Msg/ID` that was sent (§2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackingId(pub BracedGuid);

impl fmt::Display for TrackingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What authenticates and decrypts a policy download (§3.7, §3.8).
#[derive(Clone, Copy, Debug)]
pub struct PolicyAuth<'a> {
    /// The client's identity: the signing key signs the token headers, the encryption key
    /// decrypts secret bodies.
    pub identity: &'a Identity,
    /// The client's SMSID.
    pub client_id: SmsId,
    /// The header scheme (scheme 1, `ClientToken`, by default).
    pub scheme: TokenScheme,
}

/// An HTTP(S) client for one management point.
///
/// Cloning is cheap (the TLS configuration is shared).
#[derive(Clone)]
pub struct Client {
    settings: Settings,
    scheme: Scheme,
    port: u16,
    resolve: Option<SocketAddr>,
    tls: Option<Tls>,
    proxy: Option<Proxy>,
    connect_timeout: Duration,
    timeout: Duration,
    verifier: Option<ReplyVerifier>,
    limits: ReplyLimits,
    crl_check: Option<Arc<CrlCheck>>,
    windows_credentials: Option<Credentials>,
    /// Idle kept-alive connections (`keep_alive`), shared by the clones of this client.
    pool: Option<Arc<Pool>>,
}

impl Client {
    /// Builds a client: parses the proxy, loads the roots and the client certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a proxy URL that is not `http://host[:port]`, a client
    /// certificate with plain HTTP, no usable root certificate, or a client certificate or
    /// key that rustls cannot use.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let ClientConfig {
            settings,
            scheme,
            port,
            resolve,
            roots,
            client_identity,
            proxy,
            connect_timeout,
            timeout,
            reply_verifier,
            limits,
            crl_check,
            windows_credentials,
            keep_alive,
        } = config;
        let proxy = proxy.as_deref().map(Proxy::parse).transpose()?;
        let tls = match scheme {
            Scheme::Http if client_identity.is_some() => {
                return Err(Error::Config(
                    "a client certificate (mutual TLS) needs the https scheme".to_owned(),
                ));
            }
            Scheme::Http if crl_check.is_some() => {
                return Err(Error::Config(
                    "revocation checking (CRL) needs the https scheme".to_owned(),
                ));
            }
            Scheme::Http => None,
            Scheme::Https => Some(Tls::new(&settings.mp, &roots, client_identity.as_ref())?),
        };
        Ok(Self {
            port: port.unwrap_or(scheme.default_port()),
            settings,
            scheme,
            resolve,
            tls,
            proxy,
            connect_timeout,
            timeout,
            verifier: reply_verifier,
            limits,
            crl_check: crl_check.map(Arc::new),
            windows_credentials,
            pool: keep_alive.then(|| Arc::new(Pool::default())),
        })
    }

    /// The message settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `scheme://mp:port`.
    pub fn base_url(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.settings.mp, self.port)
    }

    /// The pinned MP signing certificate, if any.
    pub fn reply_verifier(&self) -> Option<&ReplyVerifier> {
        self.verifier.as_ref()
    }

    /// Pins (or unpins) the MP signing certificate replies are verified against (§3.5).
    pub fn set_reply_verifier(&mut self, verifier: Option<ReplyVerifier>) {
        self.verifier = verifier;
    }

    /// The reply limits.
    pub fn limits(&self) -> &ReplyLimits {
        &self.limits
    }

    /// Sends an Invoke kind and decodes its typed reply (§2.7, §8).
    ///
    /// A fresh `ID` and `SentTime` go into the header (HS-53); `signer` signs when the kind
    /// is signed (required for [`cmmp_model::Signing::Required`] kinds).
    ///
    /// # Errors
    ///
    /// Building the request ([`Error::SignerRequired`], encoding, signing); the exchange
    /// ([`Error::Network`], [`Error::Tls`], [`Error::Timeout`], [`Error::ReplyTooLarge`]);
    /// the reply, as [`reply::decode_sync`] says ([`Error::Http`], [`Error::EmptyReply`],
    /// [`Error::HtmlPage`], [`Error::Parts`], [`Error::Inflate`], [`Error::Body`],
    /// [`Error::BadReplySignature`], [`Error::Decode`]).
    pub async fn invoke<K: Invoke>(
        &self,
        kind: &K,
        attachments: Vec<Attachment>,
        signer: Option<&Signer<'_>>,
    ) -> Result<Received<K::Reply>, Error> {
        let request =
            wire::build_request(&self.settings, kind, attachments, signer, Fresh::now()?)?;
        let http = self.send(&request).await?;
        reply::decode_sync(&http, &self.sync_context(self.verifier.as_ref()))
    }

    /// Sends a Post kind; returns its tracking ID once the MP answered `NoReply` (§2.8).
    ///
    /// # Errors
    ///
    /// As [`Client::invoke`] for building and the exchange; the reply as
    /// [`reply::decode_post`] says ([`Error::UnexpectedReply`], [`Error::Parts`], …).
    pub async fn post<K: Post>(
        &self,
        kind: &K,
        attachments: Vec<Attachment>,
        signer: Option<&Signer<'_>>,
    ) -> Result<TrackingId, Error> {
        let fresh = Fresh::now()?;
        let request = wire::build_request(&self.settings, kind, attachments, signer, fresh)?;
        let http = self.send(&request).await?;
        reply::decode_post(&http, &self.limits)?;
        Ok(TrackingId(fresh.id))
    }

    /// Invokes a raw message ([`RawMessage`], the 2007 COM surface, §5) and returns the reply
    /// header and body text.
    ///
    /// The message's port and proxy, when set, replace the client's for this exchange; with
    /// `VerifyServerSignature` set, the reply must carry a signature that verifies against
    /// the pinned MP certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `VerifyServerSignature` without a pinned certificate or a bad
    /// proxy; otherwise as [`Client::invoke`].
    pub async fn invoke_raw(
        &self,
        message: &RawMessage,
        signer: Option<&Signer<'_>>,
    ) -> Result<SyncReply, Error> {
        let strict;
        let verifier = if message.verify_server_signature() {
            let pinned = self.verifier.clone().ok_or_else(|| {
                Error::Config(
                    "VerifyServerSignature needs a pinned MP signing certificate".to_owned(),
                )
            })?;
            strict = pinned.require_signature(true);
            Some(&strict)
        } else {
            self.verifier.as_ref()
        };
        let request =
            message.to_request(DeliveryKind::Invoke, &self.settings, signer, Fresh::now()?)?;
        let route = self.raw_route(message)?;
        let http = self
            .exchange(&route, request.method, request.path, &request.headers, &request.body)
            .await?;
        reply::decode_sync_raw(&http, &self.sync_context(verifier))
    }

    /// Posts a raw message ([`RawMessage`], §5); returns its tracking ID.
    ///
    /// # Errors
    ///
    /// As [`Client::post`]; [`Error::Config`] for a bad per-message proxy.
    pub async fn post_raw(
        &self,
        message: &RawMessage,
        signer: Option<&Signer<'_>>,
    ) -> Result<TrackingId, Error> {
        let fresh = Fresh::now()?;
        let request = message.to_request(DeliveryKind::Post, &self.settings, signer, fresh)?;
        let route = self.raw_route(message)?;
        let http = self
            .exchange(&route, request.method, request.path, &request.headers, &request.body)
            .await?;
        reply::decode_post(&http, &self.limits)?;
        Ok(TrackingId(fresh.id))
    }

    /// Sends a built request as it is and returns the HTTP reply undecoded.
    ///
    /// The bytes on the wire are exactly [`wire::Request::to_bytes`] (through a proxy, the
    /// request target is in absolute form and `Proxy-Authorization` is added).
    ///
    /// # Errors
    ///
    /// [`Error::Network`], [`Error::Tls`], [`Error::Timeout`], [`Error::ReplyTooLarge`].
    pub async fn send(&self, request: &wire::Request) -> Result<HttpReply, Error> {
        let route = self.route(None, None)?;
        self.exchange(&route, request.method, request.path, &request.headers, &request.body).await
    }

    /// `GET /SMS_MP/.sms_aut?MPLIST`: the site's MPs (§2.10).
    ///
    /// # Errors
    ///
    /// As [`Client::sms_aut`].
    pub async fn mp_list(&self) -> Result<MpList, Error> {
        self.sms_aut("MPLIST").await
    }

    /// `GET /SMS_MP/.sms_aut?MPLIST1&<site>`: the MPs of another site (§2.10).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] unless `site_code` is three ASCII letters or digits; else as
    /// [`Client::sms_aut`].
    pub async fn mp_list_of_site(&self, site_code: &str) -> Result<MpList, Error> {
        if site_code.len() != 3 || !site_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Config(format!(
                "{:?} is not a site code (three letters or digits)",
                site_code.chars().take(16).collect::<String>()
            )));
        }
        self.sms_aut(&format!("MPLIST1&{site_code}")).await
    }

    /// `GET /SMS_MP/.sms_aut?MPCERT`: the MP's signing certificate (§2.10).
    ///
    /// # Errors
    ///
    /// As [`Client::sms_aut`].
    pub async fn mp_certificate(&self) -> Result<MpCertificate, Error> {
        self.sms_aut("MPCERT").await
    }

    /// `GET /SMS_MP/.sms_aut?MPCERT2`: the MP's signing (`Certificate1`) and encryption
    /// (`Certificate2`) certificates (§2.10).
    ///
    /// # Errors
    ///
    /// As [`Client::sms_aut`].
    pub async fn mp_certificates(&self) -> Result<MpCertificates, Error> {
        self.sms_aut("MPCERT2").await
    }

    /// `GET /SMS_MP/.sms_aut?MPKEYINFORMATIONEX`: site code, MP certificate, trusted root key
    /// (§2.10).
    ///
    /// # Errors
    ///
    /// As [`Client::sms_aut`].
    pub async fn mp_key_information(&self) -> Result<Mpkeyinformation, Error> {
        self.sms_aut("MPKEYINFORMATIONEX").await
    }

    /// `GET /SMS_MP/.sms_aut?MPLOCATION&ir=<address>&ip=<subnet>`: the MP for a client
    /// address (`ir`, IP range) and subnet (`ip`) (§2.10).
    ///
    /// # Errors
    ///
    /// As [`Client::sms_aut`].
    pub async fn mp_location(&self, address: IpAddr, subnet: IpAddr) -> Result<MpLocation, Error> {
        self.sms_aut(&format!("MPLOCATION&ir={address}&ip={subnet}")).await
    }

    /// `GET /SMS_MP/.sms_aut?<query>` (`/SMS_MP_AltAuth/` with the AltAuth vdir), decoded as
    /// `R` (§2.10): UTF-8 text parsed leniently, a UTF-16 body with BOM accepted too.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a query with characters other than letters, digits and
    /// `&=._:-%`; the exchange errors of [`Client::send`]; the reply errors of
    /// [`reply::decode_document`].
    pub async fn sms_aut<R: Message>(&self, query: &str) -> Result<R, Error> {
        let safe = |b: u8| b.is_ascii_alphanumeric() || b"&=._:-%".contains(&b);
        if query.is_empty() || query.len() > 512 || !query.bytes().all(safe) {
            return Err(Error::Config(
                "an .sms_aut query holds only letters, digits and &=._:-%".to_owned(),
            ));
        }
        let dir = match self.settings.vdir {
            Vdir::AltAuth => "/SMS_MP_AltAuth",
            _ => "/SMS_MP",
        };
        let http = self.get(&format!("{dir}/.sms_aut?{query}"), Vec::new()).await?;
        reply::decode_document(&http, &self.limits)
    }

    /// Downloads a policy body (`GET .sms_pol`, §4.2.3).
    ///
    /// `location` is a `PolicyLocation` (`http://<mp>/SMS_MP/.sms_pol?…`): the `<mp>`
    /// placeholder (or this MP's name) is replaced by this client's scheme, MP and port, and
    /// `{`/`}` and other characters a request target cannot hold are percent-encoded. A path
    /// (`/SMS_MP/.sms_pol?…`) is accepted too. With `auth`, the token headers of its scheme
    /// (§3.7) are sent with a fresh timestamp, and an encrypted body is decrypted with the
    /// identity's encryption key (§3.8); policies flagged `RequiresAuth` or `Secret` need it
    /// ([`reply::policy_needs_auth`]).
    ///
    /// # Errors
    ///
    /// [`Error::PolicyLocation`] for a location on another host or not a URL or path;
    /// [`Error::Sign`] when signing fails; the exchange errors of [`Client::send`]; the reply
    /// errors of [`reply::decode_policy`], among them [`Error::HtmlPage`] titled `ERROR` for
    /// a secret policy refused (M8).
    pub async fn download_policy(
        &self,
        location: &str,
        auth: Option<PolicyAuth<'_>>,
    ) -> Result<PolicyDownload, Error> {
        let target = policy_target(location, &self.settings.mp)?;
        let headers = match &auth {
            Some(a) => sign::policy_token_headers(
                a.identity.signing_key(),
                a.scheme,
                &a.client_id,
                IsoTime::now(),
            )?,
            None => Vec::new(),
        };
        let http = self.get(&target, headers).await?;
        reply::decode_policy(&http, auth.map(|a| a.identity), &self.limits)
    }

    /// A GET with `Host`, `User-Agent`, the extra headers and `Connection: close`.
    async fn get(
        &self,
        target: &str,
        extra: Vec<(&'static str, String)>,
    ) -> Result<HttpReply, Error> {
        let host = if self.port == self.scheme.default_port() {
            self.settings.mp.to_string()
        } else {
            format!("{}:{}", self.settings.mp, self.port)
        };
        let mut headers = vec![("Host", host), ("User-Agent", wire::USER_AGENT.to_owned())];
        headers.extend(extra);
        headers.push(("Connection", "close".to_owned()));
        let route = self.route(None, None)?;
        self.exchange(&route, "GET", target, &headers, &[]).await
    }

    /// The decoding context of a Sync reply from this client's MP.
    fn sync_context<'a>(&'a self, verifier: Option<&'a ReplyVerifier>) -> SyncContext<'a> {
        SyncContext {
            host_asked: &self.settings.mp,
            reply_compression: self.settings.reply_compression,
            verifier,
            limits: self.limits,
        }
    }

    /// The port and proxy of one exchange: the client's, or a message's overrides.
    fn route(&self, port: Option<u16>, proxy: Option<&str>) -> Result<Route, Error> {
        let proxy = match proxy {
            Some(url) => Some(Proxy::parse(url)?),
            None => self.proxy.clone(),
        };
        Ok(Route { port: port.unwrap_or(self.port), proxy, crl: self.crl_check.clone() })
    }

    /// The route of a raw message: its port and proxy, and revocation checking when its
    /// `ENABLE_CRL_CHECKING` flag is set (the client's [`CrlCheck`], else the default one;
    /// the flag means nothing over plain HTTP).
    fn raw_route(&self, message: &RawMessage) -> Result<Route, Error> {
        let mut route = self.route(message.port(), message.proxy())?;
        if message.security_flags().contains(SecurityFlags::ENABLE_CRL_CHECKING)
            && route.crl.is_none()
            && self.scheme == Scheme::Https
        {
            route.crl = Some(Arc::new(CrlCheck::default()));
        }
        Ok(route)
    }

    /// One exchange: connect (bounded by the connect timeout), send, read; all bounded by the
    /// exchange timeout. On the `windowsauth` vdir with credentials, the NTLM handshake.
    async fn exchange(
        &self,
        route: &Route,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<HttpReply, Error> {
        let authority = format!("{}:{}", self.settings.mp, route.port);
        let url = format!("{}://{authority}{path}", self.scheme.as_str());
        let context = format!("{method} {url}");
        let target = match (&route.proxy, self.scheme) {
            (Some(_), Scheme::Http) => url.as_str(),
            _ => path,
        };
        // The request with an `Authorization` header, and `Connection: keep-alive` for the
        // legs of a handshake that must stay on the connection.
        let build = |authorization: Option<&str>, keep_alive: bool| {
            let mut out = Vec::with_capacity(body.len() + 512);
            for piece in [method, " ", target, " HTTP/1.1\r\n"] {
                out.extend_from_slice(piece.as_bytes());
            }
            for (name, value) in headers {
                let value = if keep_alive && name.eq_ignore_ascii_case("connection") {
                    "keep-alive"
                } else {
                    value.as_str()
                };
                wire::push_field(&mut out, name, value);
            }
            if let Some(auth) = authorization {
                wire::push_field(&mut out, "Authorization", auth);
            }
            if let (Some(proxy), Scheme::Http) = (&route.proxy, self.scheme)
                && let Some(auth) = &proxy.authorization
            {
                wire::push_field(&mut out, "Proxy-Authorization", auth);
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            out
        };
        let windows = self
            .windows_credentials
            .as_ref()
            .filter(|_| path.to_ascii_lowercase().starts_with("/ccm_system_windowsauth/"));
        let work = async {
            if let (Some(pool), None) = (&self.pool, windows) {
                return self.pooled(pool, route, &authority, &context, &build(None, true)).await;
            }
            let mut conn = self.open(route, &authority, &context).await?;
            let Some(creds) = windows else {
                return conn.round_trip(&build(None, false), self.limits.max_body).await;
            };
            // Boxed: three round trips make a large future for the caller's stack.
            Box::pin(self.windows_auth(route, &authority, conn, creds, &build, &context)).await
        };
        bounded(self.timeout, &context, work).await
    }

    /// The NTLM handshake (MS-NLMP; [`crate::ntlm`]): the request without credentials; on a
    /// 401 offering `NTLM` or `Negotiate`, the request with the `NEGOTIATE` message; on the
    /// 401 carrying the `CHALLENGE`, the request with the `AUTHENTICATE` message on the same
    /// connection (NTLM authenticates the connection, not a request).
    async fn windows_auth(
        &self,
        route: &Route,
        authority: &str,
        mut conn: Conn<'_>,
        creds: &Credentials,
        build: &(dyn Fn(Option<&str>, bool) -> Vec<u8> + Sync),
        context: &str,
    ) -> Result<HttpReply, Error> {
        let limit = self.limits.max_body;
        let failed = |reason: String| Error::AuthenticationFailed {
            user: if creds.domain.is_empty() {
                creds.user.clone()
            } else {
                format!("{}\\{}", creds.domain, creds.user)
            },
            reason,
        };
        let first = conn.round_trip(&build(None, true), limit).await?;
        if first.status != 401 {
            return Ok(first);
        }
        let offers = www_authenticate(&first.headers);
        let scheme = ["NTLM", "Negotiate"]
            .into_iter()
            .find(|s| offers.iter().any(|(o, _)| o.eq_ignore_ascii_case(s)))
            .ok_or_else(|| failed("the MP offers neither NTLM nor Negotiate".to_owned()))?;
        let reused = !closes(&first.headers);
        if !reused {
            conn = self.open(route, authority, context).await?;
        }
        let negotiate = ntlm::negotiate();
        let leg =
            build(Some(&format!("{scheme} {}", openssl::base64::encode_block(&negotiate))), true);
        let second = match conn.round_trip(&leg, limit).await {
            Ok(reply) => reply,
            // The MP closed the connection without saying so: the handshake starts on a new one.
            Err(Error::Network { .. }) if reused => {
                conn = self.open(route, authority, context).await?;
                conn.round_trip(&leg, limit).await?
            }
            Err(e) => return Err(e),
        };
        if second.status != 401 {
            return Ok(second);
        }
        let token = www_authenticate(&second.headers)
            .into_iter()
            .find(|(o, t)| o.eq_ignore_ascii_case(scheme) && !t.is_empty())
            .map(|(_, t)| t)
            .ok_or_else(|| {
                failed("the MP refused the NTLM negotiation (no challenge)".to_owned())
            })?;
        if closes(&second.headers) {
            return Err(failed(
                "the MP closed the connection after its challenge; NTLM needs one connection"
                    .to_owned(),
            ));
        }
        let challenge = openssl::base64::decode_block(token.trim())
            .map_err(|_| failed("the challenge is not base64".to_owned()))?;
        let challenge = ntlm::parse_challenge(&challenge)?;
        // Bound to this TLS channel and to the MP's HTTP service (extended protection).
        let binding = ntlm::Binding {
            channel: conn.server_cert.as_deref().map(ntlm::tls_channel_binding).transpose()?,
            target_name: Some(format!("HTTP/{}", self.settings.mp)),
        };
        let authenticate = ntlm::authenticate(creds, &negotiate, &challenge, &binding)?;
        let authorization = format!("{scheme} {}", openssl::base64::encode_block(&authenticate));
        let last = conn.round_trip(&build(Some(&authorization), false), limit).await?;
        if last.status == 401 {
            return Err(failed("the MP refused the credentials (HTTP 401)".to_owned()));
        }
        Ok(last)
    }

    /// One exchange on a kept-alive connection: an idle one of the route from the pool, else
    /// a new one; back into the pool afterwards when the response leaves it usable.
    ///
    /// A reused connection may have been closed by the MP while idle; when sending on it fails
    /// (a network error), the request is sent once more on a new connection. For a Post that
    /// the MP did take before the connection broke, the repeat carries the same `Msg/ID`, which
    /// an MP stores once (§2.8).
    async fn pooled(
        &self,
        pool: &Pool,
        route: &Route,
        authority: &str,
        context: &str,
        request: &[u8],
    ) -> Result<HttpReply, Error> {
        let key = PoolKey::of(route);
        let limit = self.limits.max_body;
        let (reply, conn) = match pool.take(&key) {
            Some(io) => {
                let mut conn = Conn { io, buf: Vec::new(), context, server_cert: None };
                match conn.round_trip(request, limit).await {
                    Ok(reply) => (reply, conn),
                    Err(Error::Network { .. }) => {
                        let mut conn = self.open(route, authority, context).await?;
                        (conn.round_trip(request, limit).await?, conn)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let mut conn = self.open(route, authority, context).await?;
                (conn.round_trip(request, limit).await?, conn)
            }
        };
        if conn.buf.is_empty() && reusable(&reply.headers) {
            pool.put(key, conn.io);
        }
        Ok(reply)
    }

    /// Connects (bounded by the connect timeout), checking revocation when the route asks.
    async fn open<'c>(
        &self,
        route: &Route,
        authority: &str,
        context: &'c str,
    ) -> Result<Conn<'c>, Error> {
        let connect_context = format!("connect to {}://{authority}", self.scheme.as_str());
        // Boxed: TCP, a proxy tunnel, TLS and a revocation check make a large future, and it
        // would be part of every exchange's future, which its timeout moves on every request.
        let connecting = Box::pin(self.connect(route, authority));
        let (io, server_cert) = bounded(self.connect_timeout, &connect_context, connecting).await?;
        Ok(Conn { io, buf: Vec::with_capacity(16 * 1024), context, server_cert })
    }

    /// TCP to the MP or the proxy, the proxy tunnel for HTTPS, then TLS and the revocation
    /// check; with TLS, also the server's certificate (DER) for the NTLM channel binding.
    async fn connect(
        &self,
        route: &Route,
        authority: &str,
    ) -> Result<(Box<dyn Io>, Option<Vec<u8>>), Error> {
        let tcp = match &route.proxy {
            Some(proxy) => {
                let context = format!("connect to the proxy {}:{}", proxy.host, proxy.port);
                let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
                    .await
                    .map_err(|e| network(&context, &e))?;
                if self.scheme == Scheme::Https {
                    proxy.tunnel(&mut tcp, authority).await?;
                }
                tcp
            }
            None => {
                let context = format!("connect to {}://{authority}", self.scheme.as_str());
                let connected = match self.resolve {
                    Some(addr) => TcpStream::connect(addr).await,
                    None => TcpStream::connect((self.settings.mp.as_str(), route.port)).await,
                };
                connected.map_err(|e| network(&context, &e))?
            }
        };
        // Nagle only delays the single write of a request; failure to turn it off is harmless.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok((Box::new(tcp), None)),
            Some(tls) => {
                let context = format!("TLS handshake with {authority}");
                let stream =
                    tls.connector.connect(tls.server_name.clone(), tcp).await.map_err(|e| {
                        Error::Tls { context: context.clone(), message: e.to_string() }
                    })?;
                let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
                if let Some(check) = &route.crl {
                    tls.check_revocation(chain, check, self.connect_timeout, &context).await?;
                }
                let leaf = chain.first().map(|c| c.as_ref().to_vec());
                Ok((Box::new(stream), leaf))
            }
        }
    }
}

/// `host[:port]` or `[v6][:port]` of an `http://` URL: the host (without brackets) and the
/// port (80 by default); `None` for an empty host, a bad port or unsafe characters.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = port.map_or(Some(80), |p| p.parse::<u16>().ok())?;
    let ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b));
    ok.then_some((host, port))
}

/// The `WWW-Authenticate` challenges of a response: (scheme, token) pairs, one per header
/// field (IIS sends one field per scheme).
fn www_authenticate(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .flat_map(|(_, v)| v.split(','))
        .map(|v| {
            let v = v.trim();
            match v.split_once(' ') {
                Some((scheme, token)) => (scheme.to_owned(), token.trim().to_owned()),
                None => (v.to_owned(), String::new()),
            }
        })
        .collect()
}

/// Whether a response leaves its connection usable for the next request: it does not close
/// it and its body was delimited (`Content-Length` or chunked), not read to the end.
fn reusable(headers: &[(String, String)]) -> bool {
    let delimited = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-length")
            || (k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked"))
    });
    delimited && !closes(headers)
}

/// Idle kept-alive connections, by route; at most [`Pool::MAX_IDLE`] are kept, each for at
/// most [`Pool::IDLE`].
#[derive(Default)]
struct Pool {
    idle: std::sync::Mutex<Vec<Idle>>,
}

/// An idle connection: its route, since when it waits, the stream.
struct Idle {
    key: PoolKey,
    since: std::time::Instant,
    io: Box<dyn Io>,
}

/// What a pooled connection was opened for: a connection serves only its own route.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PoolKey {
    port: u16,
    proxy: Option<(String, u16)>,
    crl: bool,
}

impl PoolKey {
    fn of(route: &Route) -> Self {
        Self {
            port: route.port,
            proxy: route.proxy.as_ref().map(|p| (p.host.clone(), p.port)),
            crl: route.crl.is_some(),
        }
    }
}

impl Pool {
    /// Idle connections kept at most (the most recently used are kept).
    const MAX_IDLE: usize = 64;
    /// How long an idle connection is kept: well under the idle timeouts of IIS (120 s) and
    /// the emulator (30 s).
    const IDLE: Duration = Duration::from_secs(15);

    fn take(&self, key: &PoolKey) -> Option<Box<dyn Io>> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|i| i.since.elapsed() < Self::IDLE);
        let at = idle.iter().rposition(|i| &i.key == key)?;
        Some(idle.remove(at).io)
    }

    fn put(&self, key: PoolKey, io: Box<dyn Io>) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() >= Self::MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { key, since: std::time::Instant::now(), io });
    }
}

/// Whether a response closes its connection (`Connection: close`).
fn closes(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("connection")
            && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
    })
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url())
            .field("vdir", &self.settings.vdir)
            .field("proxy", &self.proxy)
            .field("client_certificate", &self.tls.as_ref().is_some_and(|t| t.mutual))
            .field("reply_verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

pub mod blocking {
    //! The same client without async: each call runs on the client's own current-thread
    //! tokio runtime. Do not call it from inside an async runtime (it returns
    //! [`Error::Config`] there rather than blocking the runtime's thread).

    use std::future::Future;
    use std::net::IpAddr;

    use cmmp_model::mpinfo::{MpCertificate, MpCertificates, MpList, MpLocation, Mpkeyinformation};
    use cmmp_model::{Invoke, Message, Post};

    use super::{ClientConfig, PolicyAuth, TrackingId};
    use crate::error::Error;
    use crate::payload::Attachment;
    use crate::raw::RawMessage;
    use crate::reply::{HttpReply, PolicyDownload, Received, ReplyVerifier, SyncReply};
    use crate::wire::{self, Signer};

    /// A blocking [`super::Client`].
    #[derive(Debug)]
    pub struct Client {
        inner: super::Client,
        /// Always `Some` until dropped.
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl Client {
        /// Builds the client and its runtime.
        ///
        /// # Errors
        ///
        /// As [`super::Client::new`]; [`Error::Network`] when the runtime cannot start.
        pub fn new(config: ClientConfig) -> Result<Self, Error> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| Error::Network {
                    context: "start the I/O runtime".to_owned(),
                    message: e.to_string(),
                })?;
            Ok(Self { inner: super::Client::new(config)?, runtime: Some(runtime) })
        }

        /// The async client inside.
        pub fn inner(&self) -> &super::Client {
            &self.inner
        }

        /// Pins (or unpins) the MP signing certificate.
        pub fn set_reply_verifier(&mut self, verifier: Option<ReplyVerifier>) {
            self.inner.set_reply_verifier(verifier);
        }

        /// [`super::Client::invoke`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::invoke`]; [`Error::Config`] inside an async runtime.
        pub fn invoke<K: Invoke>(
            &self,
            kind: &K,
            attachments: Vec<Attachment>,
            signer: Option<&Signer<'_>>,
        ) -> Result<Received<K::Reply>, Error> {
            self.run(self.inner.invoke(kind, attachments, signer))
        }

        /// [`super::Client::post`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::post`]; [`Error::Config`] inside an async runtime.
        pub fn post<K: Post>(
            &self,
            kind: &K,
            attachments: Vec<Attachment>,
            signer: Option<&Signer<'_>>,
        ) -> Result<TrackingId, Error> {
            self.run(self.inner.post(kind, attachments, signer))
        }

        /// [`super::Client::invoke_raw`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::invoke_raw`]; [`Error::Config`] inside an async runtime.
        pub fn invoke_raw(
            &self,
            message: &RawMessage,
            signer: Option<&Signer<'_>>,
        ) -> Result<SyncReply, Error> {
            self.run(self.inner.invoke_raw(message, signer))
        }

        /// [`super::Client::post_raw`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::post_raw`]; [`Error::Config`] inside an async runtime.
        pub fn post_raw(
            &self,
            message: &RawMessage,
            signer: Option<&Signer<'_>>,
        ) -> Result<TrackingId, Error> {
            self.run(self.inner.post_raw(message, signer))
        }

        /// [`super::Client::send`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::send`]; [`Error::Config`] inside an async runtime.
        pub fn send(&self, request: &wire::Request) -> Result<HttpReply, Error> {
            self.run(self.inner.send(request))
        }

        /// [`super::Client::mp_list`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_list`]; [`Error::Config`] inside an async runtime.
        pub fn mp_list(&self) -> Result<MpList, Error> {
            self.run(self.inner.mp_list())
        }

        /// [`super::Client::mp_list_of_site`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_list_of_site`]; [`Error::Config`] inside an async runtime.
        pub fn mp_list_of_site(&self, site_code: &str) -> Result<MpList, Error> {
            self.run(self.inner.mp_list_of_site(site_code))
        }

        /// [`super::Client::mp_certificate`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_certificate`]; [`Error::Config`] inside an async runtime.
        pub fn mp_certificate(&self) -> Result<MpCertificate, Error> {
            self.run(self.inner.mp_certificate())
        }

        /// [`super::Client::mp_certificates`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_certificates`]; [`Error::Config`] inside an async runtime.
        pub fn mp_certificates(&self) -> Result<MpCertificates, Error> {
            self.run(self.inner.mp_certificates())
        }

        /// [`super::Client::mp_key_information`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_key_information`]; [`Error::Config`] inside an async
        /// runtime.
        pub fn mp_key_information(&self) -> Result<Mpkeyinformation, Error> {
            self.run(self.inner.mp_key_information())
        }

        /// [`super::Client::mp_location`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::mp_location`]; [`Error::Config`] inside an async runtime.
        pub fn mp_location(&self, address: IpAddr, subnet: IpAddr) -> Result<MpLocation, Error> {
            self.run(self.inner.mp_location(address, subnet))
        }

        /// [`super::Client::sms_aut`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::sms_aut`]; [`Error::Config`] inside an async runtime.
        pub fn sms_aut<R: Message>(&self, query: &str) -> Result<R, Error> {
            self.run(self.inner.sms_aut(query))
        }

        /// [`super::Client::download_policy`], blocking.
        ///
        /// # Errors
        ///
        /// As [`super::Client::download_policy`]; [`Error::Config`] inside an async runtime.
        pub fn download_policy(
            &self,
            location: &str,
            auth: Option<PolicyAuth<'_>>,
        ) -> Result<PolicyDownload, Error> {
            self.run(self.inner.download_policy(location, auth))
        }

        /// Runs `work` to completion on the client's runtime.
        fn run<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err(Error::Config(
                    "blocking::Client called inside an async runtime, whose thread it would block; \
                     use client::Client there"
                        .to_owned(),
                ));
            }
            match &self.runtime {
                Some(runtime) => runtime.block_on(work),
                None => Err(Error::Config("the blocking client is shut down".to_owned())),
            }
        }
    }

    impl Drop for Client {
        /// Shuts the runtime down without blocking, so that dropping the client inside an
        /// async context does not panic.
        fn drop(&mut self) {
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }
}

/// The TLS side of a client: the connector and the MP's server name.
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// Whether a client certificate is configured.
    mutual: bool,
    /// The roots and provider, for the revocation check's verifier.
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// CRLs fetched from distribution points, per URL, with the time they stop being used.
    fetched: Arc<std::sync::Mutex<CrlCache>>,
}

/// Fetched CRLs by URL: the DER and the time it stops being used.
type CrlCache = std::collections::BTreeMap<String, (Vec<u8>, SystemTime)>;

impl Tls {
    /// The rustls configuration: ring provider, safe protocol versions (TLS 1.2 and 1.3),
    /// the roots, and the client certificate if any.
    fn new(mp: &HostName, roots: &Roots, identity: Option<&ClientIdentity>) -> Result<Self, Error> {
        let server_name = ServerName::try_from(mp.as_str().to_owned()).map_err(|e| {
            Error::Config(format!("{mp} cannot be verified as a TLS server name: {e}"))
        })?;
        let mut store = rustls::RootCertStore::empty();
        let (system, custom) = match roots {
            Roots::System => (true, &[][..]),
            Roots::Custom(ders) => (false, ders.as_slice()),
            Roots::SystemAndCustom(ders) => (true, ders.as_slice()),
        };
        if system {
            // Unparsable system certificates are skipped, as every TLS client does.
            let found = rustls_native_certs::load_native_certs();
            let _ = store.add_parsable_certificates(found.certs);
        }
        for (index, der) in custom.iter().enumerate() {
            store.add(CertificateDer::from(der.clone())).map_err(|e| {
                Error::Config(format!(
                    "trusted root #{} is not a usable CA certificate: {e}",
                    index + 1
                ))
            })?;
        }
        if store.is_empty() {
            return Err(Error::Config(
                "no trusted root certificates: the system store is empty and none are \
                 configured (server verification cannot be turned off)"
                    .to_owned(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(store);
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(Arc::clone(&roots));
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let chain = id.chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.expose().to_vec()));
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::Config(format!("the client certificate or key is unusable: {e}"))
                })?
            }
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            mutual: identity.is_some(),
            roots,
            provider,
            fetched: Arc::default(),
        })
    }

    /// Verifies the server's `chain` (leaf first) again, with CRLs ([`CrlCheck`]).
    async fn check_revocation(
        &self,
        chain: &[CertificateDer<'static>],
        check: &CrlCheck,
        fetch_timeout: Duration,
        context: &str,
    ) -> Result<(), Error> {
        let unavailable =
            |reason: String| Error::CrlUnavailable { context: context.to_owned(), reason };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(unavailable("the server sent no certificate".to_owned()));
        };
        let mut crls = Vec::new();
        for (index, crl) in check.crls.iter().enumerate() {
            crls.push(crl_der(crl).ok_or_else(|| {
                unavailable(format!("configured CRL #{} is neither DER nor PEM", index + 1))
            })?);
        }
        let mut failures = Vec::new();
        if crls.is_empty() && check.fetch {
            let checked = if check.end_entity_only { &chain[..1] } else { chain };
            for url in checked.iter().flat_map(|c| distribution_points(c)) {
                match self.fetch_crl(&url, check.max_fetch_bytes, fetch_timeout).await {
                    Ok(der) => crls.push(der),
                    Err(why) => failures.push(format!("{url}: {why}")),
                }
            }
        }
        let none_found = crls.is_empty();
        let unknown = |what: &str| {
            let mut reason = what.to_owned();
            if check.crls.is_empty() && !check.fetch {
                reason.push_str("; no CRL is configured and fetching is off");
            } else if check.crls.is_empty() && failures.is_empty() && none_found {
                reason.push_str("; the certificate names no http:// CRL distribution point");
            }
            if !failures.is_empty() {
                reason.push_str(&format!("; fetching failed: {}", failures.join("; ")));
            }
            unavailable(reason)
        };
        if none_found {
            // rustls checks nothing without CRLs: say so unless unknown status is allowed.
            return if check.allow_unknown { Ok(()) } else { Err(unknown("no CRL")) };
        }
        let mut builder = WebPkiServerVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&self.provider),
        )
        .with_crls(crls.into_iter().map(CertificateRevocationListDer::from))
        .enforce_revocation_expiration();
        if check.end_entity_only {
            builder = builder.only_check_end_entity_revocation();
        }
        if check.allow_unknown {
            builder = builder.allow_unknown_revocation_status();
        }
        let verifier =
            builder.build().map_err(|e| unavailable(format!("a CRL is unusable: {e}")))?;
        let verified = verifier.verify_server_cert(
            leaf,
            intermediates,
            &self.server_name,
            &[],
            UnixTime::now(),
        );
        match verified {
            Ok(_) => Ok(()),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) => {
                Err(Error::Revoked {
                    context: context.to_owned(),
                    message: "listed in its issuer's CRL".to_owned(),
                })
            }
            Err(rustls::Error::InvalidCertificate(
                e @ (rustls::CertificateError::UnknownRevocationStatus
                | rustls::CertificateError::ExpiredRevocationList
                | rustls::CertificateError::ExpiredRevocationListContext { .. }),
            )) => Err(unknown(&format!("no current CRL of the issuer ({e})"))),
            Err(rustls::Error::InvalidCertRevocationList(e)) => {
                Err(unknown(&format!("a CRL does not verify ({e:?})")))
            }
            Err(e) => Err(Error::Tls { context: context.to_owned(), message: e.to_string() }),
        }
    }

    /// A CRL from a distribution point, from the cache while it is current.
    async fn fetch_crl(
        &self,
        url: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let now = SystemTime::now();
        {
            let cache = self.fetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((der, until)) = cache.get(url)
                && *until > now
            {
                return Ok(der.clone());
            }
        }
        let reply = bounded(timeout, url, http_get(url, limit)).await.map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("HTTP {}", reply.status));
        }
        let der = crl_der(&reply.body).ok_or("the answer is not a CRL (DER or PEM)")?;
        let next_update = openssl::x509::X509Crl::from_der(&der).ok().and_then(|crl| {
            let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
            let diff = now.diff(crl.next_update()?).ok()?;
            let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
            u64::try_from(secs).ok()
        });
        if let Some(secs) = next_update {
            let until = now + Duration::from_secs(secs.min(86_400));
            let mut cache = self.fetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.insert(url.to_owned(), (der.clone(), until));
        }
        Ok(der)
    }
}

/// A CRL as DER: DER as it is, PEM converted; `None` for neither.
fn crl_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        openssl::x509::X509Crl::from_pem(bytes).ok()?.to_der().ok()
    } else {
        bytes.starts_with(&[0x30]).then(|| bytes.to_vec())
    }
}

/// The `http://` URLs of a certificate's CRL distribution points (full names only).
fn distribution_points(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(cert) = X509::from_der(cert) else { return Vec::new() };
    let Some(points) = cert.crl_distribution_points() else { return Vec::new() };
    points
        .iter()
        .filter_map(|p| p.distpoint()?.fullname())
        .flat_map(|names| names.iter().filter_map(|n| n.uri()))
        .filter(|uri| uri.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")))
        .map(str::to_owned)
        .collect()
}

/// An `http://` proxy.
#[derive(Clone, PartialEq, Eq)]
struct Proxy {
    host: String,
    port: u16,
    /// `Basic …` from the URL's user information.
    authorization: Option<String>,
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port][/]`; the port defaults to 80.
    fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("proxy URL: {why}"));
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .and_then(|_| url.get(7..))
            .ok_or_else(|| bad("only http://host:port proxies are supported"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) || rest.is_empty() {
            return Err(bad("expected http://[user:password@]host[:port]"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok {
            return Err(bad("the host is not a name or an address"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().map_err(|_| bad("the port is not a number up to 65535"))?,
        };
        let authorization = match userinfo {
            None => None,
            Some(info) => {
                let decoded =
                    percent_decode(info).ok_or_else(|| bad("bad %-escape in the user"))?;
                Some(format!("Basic {}", openssl::base64::encode_block(&decoded)))
            }
        };
        Ok(Self { host: host.to_owned(), port, authorization })
    }

    /// Opens a `CONNECT` tunnel to `authority` through the proxy on `tcp`.
    async fn tunnel(&self, tcp: &mut TcpStream, authority: &str) -> Result<(), Error> {
        let context = format!("CONNECT {authority} through the proxy {}:{}", self.host, self.port);
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.map_err(|e| network(&context, &e))?;
        // Read byte by byte up to the end of the head: nothing of the tunnel may be consumed.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Err(Error::Network {
                    context,
                    message: "the proxy's answer is too long".to_owned(),
                });
            }
            let byte = tcp.read_u8().await.map_err(|e| network(&context, &e))?;
            head.push(byte);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) if response.code == Some(200) => Ok(()),
            Ok(httparse::Status::Complete(_)) => Err(Error::Network {
                context,
                message: format!(
                    "the proxy answered {} {}",
                    response.code.unwrap_or(0),
                    response.reason.unwrap_or_default()
                ),
            }),
            Ok(httparse::Status::Partial) | Err(_) => Err(Error::Network {
                context,
                message: "the proxy's answer is not HTTP".to_owned(),
            }),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The port, proxy and revocation checking of one exchange.
struct Route {
    port: u16,
    proxy: Option<Proxy>,
    crl: Option<Arc<CrlCheck>>,
}

/// A connected stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection: the stream and what was read but not yet consumed. Requests are sent one
/// at a time; a response is read to its end before the next request (keep-alive for the NTLM
/// handshake, a single request otherwise).
struct Conn<'c> {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    context: &'c str,
    /// The TLS server's certificate (DER), on a new TLS connection: what the NTLM channel
    /// binding names.
    server_cert: Option<Vec<u8>>,
}

impl Conn<'_> {
    /// Writes a request and reads its response.
    async fn round_trip(&mut self, request: &[u8], limit: usize) -> Result<HttpReply, Error> {
        self.io.write_all(request).await.map_err(|e| network(self.context, &e))?;
        self.io.flush().await.map_err(|e| network(self.context, &e))?;
        Box::pin(self.response(limit)).await
    }
}

/// A plain HTTP GET (CRL distribution points): the response of `url`, within `limit` bytes.
async fn http_get(url: &str, limit: usize) -> Result<HttpReply, Error> {
    let context = format!("GET {url}");
    let bad =
        |message: &str| Error::Network { context: context.clone(), message: message.to_owned() };
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .and_then(|_| url.get(7..))
        .ok_or_else(|| bad("not an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (host, port) = split_authority(authority).ok_or_else(|| bad("not a usable URL"))?;
    let safe = |t: &str| t.bytes().all(|b| b.is_ascii_graphic());
    if !safe(path) {
        return Err(bad("not a usable URL"));
    }
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| network(&context, &e))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\nConnection: close\r\n\r\n",
        wire::USER_AGENT
    );
    let mut conn =
        Conn { io: Box::new(tcp), buf: Vec::new(), context: &context, server_cert: None };
    conn.round_trip(request.as_bytes(), limit).await
}

/// How a response body is delimited (RFC 9112 §6.3).
enum Framing {
    Empty,
    Chunked,
    Length(usize),
    ToEnd,
}

impl Conn<'_> {
    /// Reads one response: interim 1xx heads are skipped. Bytes after it stay buffered.
    async fn response(&mut self, limit: usize) -> Result<HttpReply, Error> {
        let mut interim = 0;
        loop {
            let (status, headers, head_len) = self.head().await?;
            self.buf.drain(..head_len);
            if (100..200).contains(&status) {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(self.fail("too many interim (1xx) responses".to_owned()));
                }
                continue;
            }
            let body = match framing(status, &headers, self.context)? {
                Framing::Empty => Vec::new(),
                Framing::Chunked => self.chunked(limit).await?,
                Framing::Length(len) if len > limit => {
                    return Err(Error::ReplyTooLarge { limit });
                }
                Framing::Length(len) => {
                    self.need(len).await?;
                    let rest = self.buf.split_off(len);
                    std::mem::replace(&mut self.buf, rest)
                }
                Framing::ToEnd => {
                    while self.fill().await? > 0 {
                        if self.buf.len() > limit {
                            return Err(Error::ReplyTooLarge { limit });
                        }
                    }
                    std::mem::take(&mut self.buf)
                }
            };
            return Ok(HttpReply { status, headers, body });
        }
    }

    /// Reads and parses a response head: status, header fields, head length.
    async fn head(&mut self) -> Result<(u16, Vec<(String, String)>, usize), Error> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut fields);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    let headers = response
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    return Ok((status, headers, len));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(self.fail(format!("malformed HTTP response head: {e}"))),
            }
            if self.buf.len() > MAX_HEAD {
                return Err(self.fail("the response head is larger than 64 KiB".to_owned()));
            }
            if self.fill().await? == 0 {
                return Err(self.fail(if self.buf.is_empty() {
                    "the server closed the connection without answering".to_owned()
                } else {
                    "the connection closed inside the response head".to_owned()
                }));
            }
        }
    }

    /// Decodes a chunked body (RFC 9112 §7.1), trailers dropped.
    async fn chunked(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let digits = line.split(|b| *b == b';').next().unwrap_or_default();
            let digits = digits.trim_ascii();
            let size = std::str::from_utf8(digits)
                .ok()
                .filter(|d| {
                    !d.is_empty() && d.len() <= 16 && d.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .and_then(|d| usize::from_str_radix(d, 16).ok())
                .ok_or_else(|| self.fail("malformed chunk size".to_owned()))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            if size > limit.saturating_sub(body.len()) {
                return Err(Error::ReplyTooLarge { limit });
            }
            let end =
                size.checked_add(2).ok_or_else(|| self.fail("malformed chunk size".to_owned()))?;
            self.need(end).await?;
            if self.buf.get(size..end) != Some(b"\r\n") {
                return Err(self.fail("a chunk does not end in CRLF".to_owned()));
            }
            body.extend_from_slice(self.buf.get(..size).unwrap_or_default());
            self.buf.drain(..end);
        }
    }

    /// Consumes one CRLF-terminated line (at most 4 KiB) and returns it without the CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(self.fail("a chunk line is longer than 4 KiB".to_owned()));
            }
            if self.fill().await? == 0 {
                return Err(self.fail("the connection closed inside a chunked body".to_owned()));
            }
        }
    }

    /// Reads until `len` bytes are buffered.
    async fn need(&mut self, len: usize) -> Result<(), Error> {
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(self.fail(format!(
                    "the connection closed after {} of {len} body bytes",
                    self.buf.len()
                )));
            }
        }
        Ok(())
    }

    /// Reads once; 0 at the end of the stream.
    ///
    /// A TLS peer that closes without `close_notify` counts as the end of the stream: IIS does
    /// that, and every body framing is checked on its own (lengths, multipart close
    /// delimiter, zlib checksum).
    async fn fill(&mut self) -> Result<usize, Error> {
        // Straight into the buffer's spare room: a buffer on the stack would live in the
        // response future, which is moved into its box, so each response copied and zeroed it.
        self.buf.reserve(READ_CHUNK);
        match self.io.read_buf(&mut self.buf).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(network(self.context, &e)),
        }
    }

    /// A malformed-response error.
    fn fail(&self, message: String) -> Error {
        Error::Network { context: self.context.to_owned(), message }
    }
}

/// The body framing of a response (RFC 9112 §6.3).
fn framing(status: u16, headers: &[(String, String)], context: &str) -> Result<Framing, Error> {
    if status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let header =
        |name: &'static str| headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name));
    if header("transfer-encoding").any(|(_, v)| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for (_, value) in header("content-length") {
        let parsed = value.trim().parse::<usize>().ok().filter(|n| length.is_none_or(|l| l == *n));
        let Some(n) = parsed else {
            return Err(Error::Network {
                context: context.to_owned(),
                message: "invalid or conflicting Content-Length".to_owned(),
            });
        };
        length = Some(n);
    }
    Ok(length.map_or(Framing::ToEnd, Framing::Length))
}

/// Runs `work` within `after`, else [`Error::Timeout`].
async fn bounded<T>(
    after: Duration,
    context: &str,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(after, work)
        .await
        .unwrap_or_else(|_| Err(Error::Timeout { context: context.to_owned(), after }))
}

/// An I/O error as [`Error::Tls`] when TLS raised it (e.g. the server refused the client
/// certificate after the handshake, in TLS 1.3), else [`Error::Network`].
fn network(context: &str, e: &std::io::Error) -> Error {
    let tls = e.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls {
        Error::Tls { context: context.to_owned(), message: e.to_string() }
    } else {
        Error::Network { context: context.to_owned(), message: e.to_string() }
    }
}

/// The request target for a `PolicyLocation` (§4.2.2, §4.2.3).
fn policy_target(location: &str, mp: &HostName) -> Result<String, Error> {
    let fail =
        |reason| Error::PolicyLocation { location: location.chars().take(200).collect(), reason };
    let trimmed = location.trim();
    let scheme_len = ["http://", "https://"].iter().find_map(|s| {
        trimmed.get(..s.len()).filter(|p| p.eq_ignore_ascii_case(s)).map(|_| s.len())
    });
    let path = match scheme_len {
        Some(len) => {
            let rest = trimmed.get(len..).unwrap_or_default();
            let at = rest.find('/').ok_or_else(|| fail("has no path"))?;
            let (authority, path) = rest.split_at(at);
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority,
            };
            if !(host.eq_ignore_ascii_case("<mp>") || host.eq_ignore_ascii_case(mp.as_str())) {
                return Err(fail("names another host than this client's MP or <mp>"));
            }
            path
        }
        None if trimmed.starts_with('/') => trimmed,
        None => return Err(fail("is neither an http(s) URL nor an absolute path")),
    };
    let mut target = String::with_capacity(path.len() + 16);
    for byte in path.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte);
        if keep {
            target.push(char::from(byte));
        } else {
            target.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(target)
}

/// Decodes `%XX` escapes; `None` for a broken escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(byte);
            at += 1;
        }
    }
    Some(out)
}

/// Largest response head (and proxy answer) read.
const MAX_HEAD: usize = 64 * 1024;
/// The room made in a connection's buffer for each read.
const READ_CHUNK: usize = 16 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// Most interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4 * 1024;

#[cfg(test)]
mod tests {
    use super::{Proxy, closes, percent_decode, policy_target, split_authority, www_authenticate};
    use crate::msg::HostName;

    #[test]
    fn policy_locations_are_rebased_on_this_mp_and_encoded() {
        let mp = HostName::new("mp01.corp.example").unwrap();
        let location = "http://<mp>/SMS_MP/.sms_pol?{1D3E}.SHA256:ABC";
        assert_eq!(policy_target(location, &mp).unwrap(), "/SMS_MP/.sms_pol?%7B1D3E%7D.SHA256:ABC");
        assert_eq!(
            policy_target("HTTP://MP01.corp.example:80/SMS_MP/.sms_pol?a b", &mp).unwrap(),
            "/SMS_MP/.sms_pol?a%20b"
        );
        assert_eq!(policy_target("/x?a\r\nb", &mp).unwrap(), "/x?a%0D%0Ab");
        assert!(policy_target("http://evil.example/SMS_MP/.sms_pol?x", &mp).is_err());
        assert!(policy_target("http://<mp>", &mp).is_err());
        assert!(policy_target("SMS_MP/.sms_pol", &mp).is_err());
    }

    #[test]
    fn crl_point_authorities_and_auth_headers_parse() {
        assert_eq!(split_authority("crl.corp.example"), Some(("crl.corp.example", 80)));
        assert_eq!(split_authority("10.0.0.1:8080"), Some(("10.0.0.1", 8080)));
        assert_eq!(split_authority("[::1]"), Some(("::1", 80)));
        assert_eq!(split_authority("[::1]:81"), Some(("::1", 81)));
        for bad in ["", ":80", "h:x", "h:99999", "[::1", "a b", "h/x"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
        let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let h = headers(&[("WWW-Authenticate", "Negotiate"), ("www-authenticate", "NTLM abc=")]);
        assert_eq!(
            www_authenticate(&h),
            [("Negotiate".to_owned(), String::new()), ("NTLM".to_owned(), "abc=".to_owned())]
        );
        assert!(closes(&headers(&[("Connection", "Keep-Alive, close")])));
        assert!(!closes(&headers(&[("Connection", "keep-alive")])));
    }

    #[test]
    fn proxies_are_http_urls_with_optional_credentials() {
        let p = Proxy::parse("http://proxy.corp:3128/").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization.is_none()),
            ("proxy.corp", 3128, true)
        );
        let p = Proxy::parse("HTTP://us%40r:p%3Aw@10.0.0.1").unwrap();
        assert_eq!(p.port, 80);
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNAcjpwOnc="));
        let p = Proxy::parse("http://[::1]:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        for bad in [
            "https://p:1",
            "socks5://p:1",
            "http://",
            "http://p:99999",
            "http://p/x",
            "http://p q:1",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(percent_decode("a%2"), None);
    }
}
