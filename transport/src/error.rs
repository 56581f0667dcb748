//! The transport's error: one variant for each thing a management point can return or a
//! message can fail on (house style HS-70; field notes §2.2: every failure is a named
//! outcome that carries what the MP returned).

/// Why an empty HTTP 200 reply may have come back (field notes M6, M7; protocol §2.9).
pub const EMPTY_REPLY_CAUSES: &str = "the MP does not know this client ID, the signature did not \
     verify against the registered certificate, the client is not approved, or (policy) the \
     policy is not ready yet";

/// An error building, sending or reading a management point message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The MP answered with an HTTP status other than 200.
    #[error("the MP answered HTTP {status}{}", title.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Http {
        /// The status code.
        status: u16,
        /// The `<title>` of an HTML error page, if the body was one.
        title: Option<String>,
    },
    /// HTTP 200 with an HTML page instead of a message (e.g. a secret policy requested
    /// without valid signed headers: `<TITLE>ERROR</TITLE>`).
    #[error("the MP answered with an HTML page titled {title:?} instead of a message")]
    HtmlPage {
        /// The page's `<title>`.
        title: String,
    },
    /// HTTP 200 with an empty body to a synchronous request.
    #[error("the MP answered HTTP 200 with an empty body: {EMPTY_REPLY_CAUSES}")]
    EmptyReply,
    /// A synchronous reply without the header part and body part a reply has.
    #[error("a reply has {expected} MIME part(s); found {found}")]
    Parts {
        /// Parts expected.
        expected: usize,
        /// Parts found.
        found: usize,
    },
    /// A Post was answered with something other than `NoReply`.
    #[error("an asynchronous message was answered with something other than NoReply")]
    UnexpectedReply,
    /// Registration is pending approval (`Status` 1); resend as a confirmation later.
    #[error(
        "registration of {smsid} is pending (Status 1); send a confirmation until it is registered"
    )]
    RegistrationPending {
        /// The SMSID the MP issued.
        smsid: String,
    },
    /// The MP could not process the registration (`Status` 2): send it again.
    #[error("the MP could not process the registration (Status 2); send it again")]
    RegistrationRetry,
    /// The MP rejected the registration (`Status` 3 or another code).
    #[error("the MP rejected the registration (Status {status})")]
    RegistrationRejected {
        /// The `Status` attribute.
        status: i32,
    },
    /// The client is registered but not approved (`ApprovalStatus` −1 or 0): no policy yet.
    #[error(
        "the client is registered but not approved (ApprovalStatus {approval_status}); an admin must approve it"
    )]
    NotApproved {
        /// The `ApprovalStatus` attribute.
        approval_status: i32,
    },
    /// The reply's `authenticate` signature did not verify against the pinned MP certificate.
    #[error("the reply's signature is not valid for the pinned MP signing certificate: {reason}")]
    BadReplySignature {
        /// What did not match.
        reason: String,
    },
    /// A kind that must be signed was sent without a signer.
    #[error("`{kind}` messages must be signed (clientauth); register first and sign with its key")]
    SignerRequired {
        /// The kind's name.
        kind: &'static str,
    },
    /// The document cannot be written.
    #[error(transparent)]
    Encode(#[from] cmmp_model::EncodeError),
    /// The document cannot be decoded (with the element path).
    #[error(transparent)]
    Decode(#[from] cmmp_model::DecodeError),
    /// The payload cannot be built or split.
    #[error(transparent)]
    Payload(#[from] crate::payload::PayloadError),
    /// A UTF-16 body or header is malformed.
    #[error("malformed UTF-16: {0}")]
    Body(#[from] crate::body::BodyError),
    /// The multipart framing is malformed.
    #[error(transparent)]
    Multipart(#[from] crate::multipart::MultipartError),
    /// A compressed payload exceeded the inflate limits or is corrupt.
    #[error("decompression: {0}")]
    Inflate(#[from] crate::zlib::InflateError),
    /// Signing or verification failed.
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// A certificate problem.
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    /// A policy body could not be decrypted.
    #[error(transparent)]
    Cms(#[from] crate::cms::CmsError),
    /// The system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A malformed HTTP message.
    #[error("malformed HTTP message: {0}")]
    HttpSyntax(&'static str),
    /// A network, TLS or timeout failure, with the underlying error's text.
    #[error("{context}: {message}")]
    Network {
        /// What was being done (`connect to https://mp01:443`).
        context: String,
        /// The underlying error.
        message: String,
    },
    /// The reply body is larger than the configured cap; reading stopped at the cap.
    #[error("the MP's reply exceeds the size limit of {limit} bytes; reading stopped there")]
    ReplyTooLarge {
        /// The cap in force, in bytes.
        limit: usize,
    },
    /// No answer within the configured time (connecting, or the whole exchange).
    #[error("{context}: no answer within {} ms", after.as_millis())]
    Timeout {
        /// What was being done (`connect to https://mp01:443`).
        context: String,
        /// The timeout that expired.
        after: std::time::Duration,
    },
    /// The TLS handshake failed: the server certificate did not verify against the trusted
    /// roots, the name did not match, or the server refused the client certificate.
    #[error("{context}: TLS: {message}")]
    Tls {
        /// What was being done (`TLS handshake with mp01.corp.example:443`).
        context: String,
        /// The TLS library's description.
        message: String,
    },
    /// Revocation checking is on and the MP's TLS certificate, or a CA certificate above it,
    /// is listed as revoked by its CRL (`MPAPI_SECURITY_FLAG_ENABLE_CRL_CHECKING`, §5.4).
    #[error("{context}: the server certificate is revoked ({message})")]
    Revoked {
        /// What was being done (`TLS handshake with mp01.corp.example:443`).
        context: String,
        /// The TLS library's description.
        message: String,
    },
    /// Revocation checking is on and the revocation status of the MP's TLS certificate cannot
    /// be determined: no CRL configured or fetched for its issuer, a CRL past its
    /// `nextUpdate`, or a CRL that does not parse or verify. Never a silent pass; see
    /// [`crate::client::CrlCheck::allow_unknown`].
    #[error("{context}: revocation status unknown: {reason}")]
    CrlUnavailable {
        /// What was being done (`TLS handshake with mp01.corp.example:443`).
        context: String,
        /// Why no usable CRL was found, with the fetch failures if any.
        reason: String,
    },
    /// Windows authentication (NTLM) on the `windowsauth` vdir failed: the MP refused the
    /// credentials, offers neither `NTLM` nor `Negotiate`, or broke the handshake (M9).
    #[error("authentication failed for {user}: {reason}")]
    AuthenticationFailed {
        /// `DOMAIN\user` as configured.
        user: String,
        /// What went wrong.
        reason: String,
    },
    /// A malformed NTLM message from the MP.
    #[error(transparent)]
    Ntlm(#[from] crate::ntlm::NtlmError),
    /// The client configuration is unusable (proxy URL, roots, client certificate, …).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A policy location that this client cannot fetch.
    #[error("policy location {location:?}: {reason}")]
    PolicyLocation {
        /// The location as given (truncated to 200 characters).
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A secret policy body came back encrypted and no identity was given to decrypt it.
    #[error(
        "the policy body is encrypted (CMS EnvelopedData); download it with the client's identity to decrypt it"
    )]
    PolicyEncrypted,
    /// A text reply (a GET document) that is neither UTF-16 nor valid UTF-8.
    #[error("the reply is not UTF-8 text: invalid byte sequence at byte {offset}")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A local I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
