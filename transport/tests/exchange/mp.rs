//! A loopback test MP and a test proxy: 127.0.0.1, port 0, each on its own thread with a
//! current-thread runtime, so async and blocking clients can both talk to it. Each connection
//! carries one request, unless the handler answers [`Answer::KeepOpen`] (the NTLM handshake);
//! the handler's answer is written as it is (hostile replies included).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cmmp_transport::multipart;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// A request as the test MP read it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    /// The request bytes exactly as received (head and body).
    pub(crate) raw: Vec<u8>,
    /// The method.
    pub(crate) method: String,
    /// The request target.
    pub(crate) target: String,
    /// Header fields, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
    /// Whether the TLS client presented a certificate.
    pub(crate) client_cert: bool,
}

impl Recorded {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the test MP does with a request.
pub(crate) enum Answer {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Write these bytes, then read the next request on the same connection.
    KeepOpen(Vec<u8>),
    /// Never answer (the connection stays open until the MP is dropped).
    Hang,
}

/// The handler of a test MP.
pub(crate) type Handler = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

/// A running test MP (or proxy); stops when dropped.
pub(crate) struct TestMp {
    /// The listening address (127.0.0.1, an ephemeral port).
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestMp {
    /// A plain-HTTP test MP.
    pub(crate) fn http(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        Self::start(None, Arc::new(handler))
    }

    /// An HTTPS test MP with `config`.
    pub(crate) fn https(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static,
    ) -> Self {
        Self::start(Some(TlsAcceptor::from(config)), Arc::new(handler))
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The requests received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received.
    pub(crate) fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request");
        requests.into_iter().next().unwrap()
    }

    fn start(tls: Option<TlsAcceptor>, handler: Handler) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let recorded = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let mut stopped = stopped;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let tls = tls.clone();
                            let handler = Arc::clone(&handler);
                            let recorded = Arc::clone(&recorded);
                            tokio::spawn(async move {
                                serve(tcp, tls, handler, recorded).await;
                            });
                        }
                    }
                }
            });
        });
        Self { addr, requests, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for TestMp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) {
    match tls {
        None => exchange(tcp, false, &handler, &recorded).await,
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let client_cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
            exchange(stream, client_cert, &handler, &recorded).await;
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    client_cert: bool,
    handler: &Handler,
    recorded: &Mutex<Vec<Recorded>>,
) {
    loop {
        let Some(mut request) = read_request(&mut io).await else { return };
        request.client_cert = client_cert;
        recorded.lock().unwrap().push(request.clone());
        match handler(&request) {
            Answer::Bytes(bytes) => {
                let _ = io.write_all(&bytes).await;
                let _ = io.flush().await;
                let _ = io.shutdown().await;
                return;
            }
            Answer::KeepOpen(bytes) => {
                if io.write_all(&bytes).await.is_err() || io.flush().await.is_err() {
                    return;
                }
            }
            Answer::Hang => std::future::pending::<()>().await,
        }
    }
}

/// Reads one request: the head, then `Content-Length` bytes.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> Option<Recorded> {
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let body = raw[head_end..head_end + length].to_vec();
    Some(Recorded { raw, method, target, headers, body, client_cert: false })
}

/// An HTTP/1.1 response with `Content-Length` and `Connection: close`.
pub(crate) fn response(
    status: u16,
    reason: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nServer: Microsoft-IIS/10.0\r\n");
    if let Some(ct) = content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// 200 with a `multipart/mixed` body.
pub(crate) fn multipart_ok(body: &[u8]) -> Answer {
    Answer::Bytes(response(200, "OK", Some(&multipart::content_type()), body))
}

/// 200 with a `text/xml` (or other) body.
pub(crate) fn ok(content_type: &str, body: &[u8]) -> Answer {
    Answer::Bytes(response(200, "OK", Some(content_type), body))
}

/// 200 with a chunked body, in chunks of `size` bytes.
pub(crate) fn chunked_ok(content_type: &str, body: &[u8], size: usize) -> Answer {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in body.chunks(size) {
        out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
    Answer::Bytes(out)
}

/// What the test proxy saw: the request line (or CONNECT line) and the headers.
#[derive(Clone, Debug)]
pub(crate) struct ProxySeen {
    /// The method (`CONNECT` or the request's).
    pub(crate) method: String,
    /// The target (authority for CONNECT, absolute URL otherwise).
    pub(crate) target: String,
    /// `Proxy-Authorization`, if sent.
    pub(crate) authorization: Option<String>,
}

/// A running test proxy: `CONNECT` tunnels and absolute-form requests to 127.0.0.1 targets.
pub(crate) struct TestProxy {
    /// The listening address.
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<ProxySeen>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestProxy {
    /// Starts the proxy.
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let log = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let mut stopped = stopped;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let log = Arc::clone(&log);
                            tokio::spawn(async move { proxy(tcp, log).await });
                        }
                    }
                }
            });
        });
        Self { addr, seen, stop: Some(stop), thread: Some(thread) }
    }

    /// What the proxy saw.
    pub(crate) fn seen(&self) -> Vec<ProxySeen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn proxy(mut client: TcpStream, log: Arc<Mutex<Vec<ProxySeen>>>) {
    // Read the head only (for CONNECT nothing follows until we answer).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let Ok(byte) = client.read_u8().await else { return };
        head.push(byte);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_owned());
    log.lock().unwrap().push(ProxySeen {
        method: method.clone(),
        target: target.clone(),
        authorization,
    });
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target.as_str()).await else { return };
        if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    } else {
        // Absolute form: http://host:port/path → origin form to the upstream.
        let Some(rest) = target.strip_prefix("http://") else { return };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let Ok(mut upstream) = TcpStream::connect(authority).await else { return };
        let rewritten = text.replacen(&target, path, 1);
        if upstream.write_all(rewritten.as_bytes()).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
