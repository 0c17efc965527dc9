//! A real SMTP server inside the test process: receives what the product's SMTP client
//! (`optbridge::mail::smtp`) sends and injects the faults a relay produces (4xx/5xx at RCPT or
//! after DATA, stalls, dropped connections).
//!
//! Speaks RFC 5321 with PIPELINING (RFC 2920), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
//! SIZE (RFC 1870) and ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463); AUTH PLAIN and LOGIN
//! (RFC 4954) when [`SmtpSink::require_auth`] set credentials; TLS from the first byte (smtps)
//! or after STARTTLS (RFC 3207) when started with [`SmtpSink::start_tls`], with the certificate
//! for `localhost` in `tests/fixtures/tls/` (its CA: `ca.pem`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const HOSTNAME: &str = "sink.test";
/// Advertised with `SIZE` and enforced on the received message.
const MAX_MESSAGE_BYTES: usize = 52_428_800;
/// RFC 5321 §4.5.3.1.4 allows 512 octets; more leaves room for parameters, and still bounds memory.
const MAX_COMMAND_LINE: usize = 4096;
/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
const MAX_TEXT_LINE: usize = 1000;
/// RFC 5321 §4.5.3.1.8 requires at least 100.
const MAX_RECIPIENTS: usize = 100;
/// Like real servers, hang up on a client that keeps sending garbage instead of looping forever.
const MAX_ERRORS: u32 = 20;

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The reverse path from `MAIL FROM`, without angle brackets (empty for the null sender).
    pub mail_from: String,
    /// The recipients whose `RCPT TO` was accepted, as the client spelled them.
    pub rcpt_to: Vec<String>,
    /// The message as received: dot-unstuffed, every line ending in CRLF.
    pub data: Vec<u8>,
    /// Which connection carried it, counting from 1 (see [`SmtpSink::connections`]).
    pub connection: u64,
    /// Whether it came over TLS.
    pub tls: bool,
}

/// A failure to inject for one recipient. Several faults for the same recipient are used in the
/// order they were added: each `RCPT TO` takes the first RCPT-stage fault with uses left, and each
/// end of data takes the first `RejectData` with uses left.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `code` (e.g. 451, 452, 421, 550, 552) with a realistic enhanced status text at
    /// RCPT TO for this recipient, the first `times` times it is tried (u32::MAX = always).
    /// 421 also closes the connection.
    RejectRcpt { code: u16, times: u32 },
    /// Accept RCPT, but answer `code` after the DATA body (end of data) the first `times` times
    /// a message with this recipient is sent; the whole message is refused. 421 also closes.
    RejectData { code: u16, times: u32 },
    /// After RCPT TO for this recipient, go silent for `duration` (to test client timeouts),
    /// then answer it and continue normally.
    Stall { duration: Duration, times: u32 },
    /// Close the TCP connection abruptly (a RST, no reply) after RCPT TO for this recipient,
    /// `times` times.
    DropConnection { times: u32 },
}

impl Fault {
    fn times(&self) -> u32 {
        match self {
            Fault::RejectRcpt { times, .. }
            | Fault::RejectData { times, .. }
            | Fault::Stall { times, .. }
            | Fault::DropConnection { times } => *times,
        }
    }

    fn at_data(&self) -> bool {
        matches!(self, Fault::RejectData { .. })
    }
}

/// An SMTP server on `127.0.0.1`, port 0. Dropping it stops accepting and ends every session.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

/// How a sink speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// From the first byte (`smtps://`, RFC 8314).
    Implicit,
    /// Offered as STARTTLS in EHLO (RFC 3207).
    StartTls,
}

/// The sink's certificate for `localhost` and `127.0.0.1`, issued by `tests/fixtures/tls/ca.pem`.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![
        CertificateDer::from_pem_slice(include_bytes!("../fixtures/tls/localhost.pem")).expect("sink certificate"),
    ];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../fixtures/tls/localhost.key")).expect("sink key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("sink TLS configuration");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A session's connection: plain TCP, or TLS over it.
enum SinkStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only while STARTTLS swaps one for the other.
    Swapping,
}

impl SinkStream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(tcp) => Some(tcp),
            Self::Tls(tls) => Some(tls.get_ref().0),
            Self::Swapping => None,
        }
    }
}

fn swapping() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection is being upgraded to TLS")
}

impl AsyncRead for SinkStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Self::Swapping => Poll::Ready(Err(swapping())),
        }
    }
}

impl AsyncWrite for SinkStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Self::Swapping => Poll::Ready(Err(swapping())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
            Self::Swapping => Poll::Ready(Err(swapping())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Self::Swapping => Poll::Ready(Err(swapping())),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    connections: AtomicU64,
    /// Whether EHLO offers PIPELINING (RFC 2920).
    pipelining: AtomicBool,
    /// Commands that arrived while more input was already waiting behind them.
    pipelined: AtomicU64,
    /// Ends of data with more input already waiting behind them (the next MAIL, pipelined).
    behind_content: AtomicU64,
    /// When set, MAIL needs a successful AUTH with this user and password first.
    credentials: Mutex<Option<(String, String)>>,
    /// The number of accepted messages, so waiters wake when one arrives.
    accepted: watch::Sender<usize>,
    tls: Option<(Tls, tokio_rustls::TlsAcceptor)>,
    /// Answer DATA with 354 even when every RCPT was refused (see
    /// [`SmtpSink::answer_data_without_recipients`]).
    data_without_recipients: AtomicBool,
    /// Bodies received after such a 354, and whether each was empty.
    bodies_without_recipients: Mutex<Vec<usize>>,
    /// With [`SmtpSink::throttle`]: the time between two accepted messages, and when the next
    /// one may be accepted.
    throttle: Mutex<Option<(Duration, tokio::time::Instant)>>,
    /// `QUIT` commands received (RFC 5321 §4.1.1.10).
    quits: AtomicU64,
    /// The names clients gave in `EHLO`/`HELO`, in order.
    hellos: Mutex<Vec<String>>,
}

#[derive(Default)]
struct State {
    /// Keyed by the lowercased recipient.
    faults: HashMap<String, Vec<PendingFault>>,
    attempts: HashMap<String, u32>,
    messages: Vec<ReceivedMail>,
}

struct PendingFault {
    fault: Fault,
    uses_left: u32,
}

impl State {
    /// Takes one use of the first fault for `recipient` at the given stage that has uses left.
    fn take_fault(&mut self, recipient: &str, at_data: bool) -> Option<Fault> {
        let pending = self
            .faults
            .get_mut(&recipient.to_lowercase())?
            .iter_mut()
            .find(|p| p.fault.at_data() == at_data && p.uses_left > 0)?;
        if pending.uses_left != u32::MAX {
            pending.uses_left -= 1;
        }
        Some(pending.fault.clone())
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what the sink received from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A sink that speaks TLS as `tls` says; connect to it as `localhost` (see [`SmtpSink::url`]).
    pub async fn start_tls(tls: Tls) -> Self {
        Self::start_with(Some((tls, tls_acceptor()))).await
    }

    async fn start_with(tls: Option<(Tls, tokio_rustls::TlsAcceptor)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("SMTP sink binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("SMTP sink address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            connections: AtomicU64::new(0),
            pipelining: AtomicBool::new(true),
            pipelined: AtomicU64::new(0),
            behind_content: AtomicU64::new(0),
            credentials: Mutex::new(None),
            accepted: watch::Sender::new(0),
            tls,
            data_without_recipients: AtomicBool::new(false),
            bodies_without_recipients: Mutex::new(Vec::new()),
            throttle: Mutex::new(None),
            quits: AtomicU64::new(0),
            hellos: Mutex::new(Vec::new()),
        });
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            accept_loop,
        }
    }

    /// The value for `SMTP_URL`: plain SMTP; for a TLS sink the URL that asks for its kind of TLS,
    /// with the name its certificate is for.
    pub fn url(&self) -> String {
        match self.shared.tls.as_ref().map(|(tls, _)| *tls) {
            None => format!("smtp://{}", self.addr),
            Some(Tls::Implicit) => format!("smtps://localhost:{}", self.addr.port()),
            Some(Tls::StartTls) => format!("smtp://localhost:{}?tls=required", self.addr.port()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` for `recipient` (matched case-insensitively) from now on.
    pub fn add_fault(&self, recipient: &str, fault: Fault) {
        if let Fault::RejectRcpt { code, .. } | Fault::RejectData { code, .. } = fault {
            assert!(
                (400..600).contains(&code),
                "SMTP sink: a rejection needs a 4xx or 5xx code, not {code}"
            );
        }
        let uses_left = fault.times();
        self.shared
            .state()
            .faults
            .entry(recipient.to_lowercase())
            .or_default()
            .push(PendingFault { fault, uses_left });
    }

    /// Removes every fault: the sink accepts everything again.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// The accepted messages, in the order their end of data was acknowledged.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.state().messages.clone()
    }

    /// How many `RCPT TO` inside a mail transaction named `recipient`, whatever the answer was.
    pub fn attempts(&self, recipient: &str) -> u32 {
        self.shared
            .state()
            .attempts
            .get(&recipient.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics after
    /// `timeout` with what did arrive.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut accepted = self.shared.accepted.subscribe();
        let arrived = tokio::time::timeout(timeout, accepted.wait_for(|&count| count >= n)).await;
        if arrived.is_err() {
            let state = self.shared.state();
            let received: Vec<_> = state.messages.iter().map(|m| &m.rcpt_to).collect();
            panic!(
                "SMTP sink: expected {n} message(s) within {timeout:?}, got {} (recipients: {received:?}; \
                 RCPT attempts: {:?}; connections: {})",
                state.messages.len(),
                state.attempts,
                self.connections(),
            );
        }
        self.messages()
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Like some servers (RFC 2920 §3.1 asks for 554 instead), answers a pipelined DATA with 354
    /// although every RCPT was refused, reads the message, and then refuses it with 554.
    pub fn answer_data_without_recipients(&self, on: bool) {
        self.shared.data_without_recipients.store(on, Ordering::SeqCst);
    }

    /// The sizes in bytes of the bodies received after such a 354 (see
    /// [`SmtpSink::answer_data_without_recipients`]).
    pub fn bodies_without_recipients(&self) -> Vec<usize> {
        self.shared
            .bodies_without_recipients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops (or resumes) offering PIPELINING in EHLO replies from now on.
    pub fn offer_pipelining(&self, offer: bool) {
        self.shared.pipelining.store(offer, Ordering::SeqCst);
    }

    /// Offers AUTH PLAIN and LOGIN and refuses mail (530) from sessions that did not log in
    /// with this user and password.
    pub fn require_auth(&self, user: &str, password: &str) {
        *self.shared.credentials.lock().unwrap_or_else(PoisonError::into_inner) = Some((user.into(), password.into()));
    }

    /// Commands that arrived with more input already waiting behind them: a client that
    /// pipelines (RFC 2920) sends MAIL, RCPT and DATA in one write.
    pub fn pipelined_commands(&self) -> u64 {
        self.shared.pipelined.load(Ordering::SeqCst)
    }

    /// Accepts at most `per_second` messages a second over all sessions, like a relay that
    /// takes its time: an end of data waits for its slot before the message is stored and
    /// answered (a client that dies meanwhile has still delivered it, as with a real server).
    pub fn throttle(&self, per_second: u32) {
        let gap = Duration::from_secs(1) / per_second.max(1);
        *self.shared.throttle.lock().unwrap_or_else(PoisonError::into_inner) = Some((gap, tokio::time::Instant::now()));
    }

    /// How many `QUIT` commands arrived: a client that ends its sessions politely sends one per
    /// session (RFC 5321 §3.8).
    pub fn quits(&self) -> u64 {
        self.shared.quits.load(Ordering::SeqCst)
    }

    /// The names clients introduced themselves with (`EHLO name` / `HELO name`), in order.
    pub fn hellos(&self) -> Vec<String> {
        self.shared
            .hellos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Messages whose end of data had more client bytes behind it in the same read: the next
    /// transaction's commands, sent in one write with the content (RFC 2920 §3.1).
    pub fn commands_behind_content(&self) -> u64 {
        self.shared.behind_content.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // The sessions live in the accept loop's JoinSet, so they are aborted with it.
        self.accept_loop.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // As a mail server does: a reply goes out when written, not after the
                    // client's delayed ACK of the one before.
                    let _ = stream.set_nodelay(true);
                    let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    let shared = Arc::clone(&shared);
                    sessions.spawn(async move {
                        let stream = match &shared.tls {
                            Some((Tls::Implicit, acceptor)) => match acceptor.accept(stream).await {
                                Ok(tls) => SinkStream::Tls(Box::new(tls)),
                                // A client that does not trust the certificate hangs up here.
                                Err(_) => return,
                            },
                            _ => SinkStream::Plain(stream),
                        };
                        Session::new(stream, id, shared).run().await;
                    });
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(finished) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = finished
                    && e.is_panic()
                {
                    eprintln!("SMTP sink: a session panicked (a bug in the sink): {e}");
                }
            }
        }
    }
}

enum Line {
    /// One line, its terminator (CRLF, or a bare LF) included.
    Complete(Vec<u8>),
    /// A line longer than allowed; it was read to its end and discarded.
    TooLong,
    Eof,
}

enum Flow {
    Continue,
    Close,
}

struct Transaction {
    mail_from: String,
    smtputf8: bool,
    rcpt_to: Vec<String>,
    rcpt_tried: bool,
}

struct Session {
    stream: BufReader<SinkStream>,
    id: u64,
    shared: Arc<Shared>,
    greeted: bool,
    authenticated: bool,
    transaction: Option<Transaction>,
    errors: u32,
    /// Messages accepted on this connection, for the queue id.
    accepted: u64,
}

impl Session {
    fn new(stream: SinkStream, id: u64, shared: Arc<Shared>) -> Self {
        Self {
            stream: BufReader::new(stream),
            id,
            shared,
            greeted: false,
            authenticated: false,
            transaction: None,
            errors: 0,
            accepted: 0,
        }
    }

    /// Serves one connection; an I/O error (the client went away) just ends it.
    async fn run(mut self) {
        let _ = self.serve().await;
    }

    async fn serve(&mut self) -> io::Result<()> {
        self.reply(&format!("220 {HOSTNAME} ESMTP optbridge test sink")).await?;
        loop {
            let line = match self.read_line(MAX_COMMAND_LINE).await? {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    if let Flow::Close = self.error("500 5.5.2 Error: line too long").await? {
                        return Ok(());
                    }
                    continue;
                }
                Line::Complete(line) => line,
            };
            if !self.stream.buffer().is_empty() {
                self.shared.pipelined.fetch_add(1, Ordering::SeqCst);
            }
            let line = String::from_utf8_lossy(strip_eol(&line)).into_owned();
            if let Flow::Close = self.command(&line).await? {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> io::Result<Flow> {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => self.error("501 5.5.4 Syntax: EHLO hostname").await,
            "EHLO" => {
                self.hello(arg);
                let pipelining = if self.shared.pipelining.load(Ordering::SeqCst) {
                    "250-PIPELINING\r\n"
                } else {
                    ""
                };
                let auth = if self.credentials().is_some() {
                    "250-AUTH PLAIN LOGIN\r\n"
                } else {
                    ""
                };
                let starttls = if self.offers_starttls() { "250-STARTTLS\r\n" } else { "" };
                let reply = format!(
                    "250-{HOSTNAME} greets {arg}\r\n{pipelining}{starttls}{auth}250-SIZE {MAX_MESSAGE_BYTES}\r\n\
                     250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES"
                );
                self.ok(&reply).await
            }
            "HELO" => {
                self.hello(arg);
                self.ok(&format!("250 {HOSTNAME}")).await
            }
            "MAIL" => self.mail(arg).await,
            "RCPT" => self.rcpt(arg).await,
            "DATA" => self.data(arg).await,
            "RSET" => {
                self.transaction = None;
                self.ok("250 2.0.0 Ok").await
            }
            "NOOP" => self.ok("250 2.0.0 Ok").await,
            "VRFY" if arg.is_empty() => self.error("501 5.5.4 Syntax: VRFY address").await,
            "VRFY" => {
                self.ok("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")
                    .await
            }
            "QUIT" => {
                self.shared.quits.fetch_add(1, Ordering::SeqCst);
                self.reply("221 2.0.0 Bye").await?;
                Ok(Flow::Close)
            }
            "AUTH" if self.credentials().is_some() => self.auth(arg).await,
            "STARTTLS" if self.offers_starttls() => self.starttls().await,
            "EXPN" | "HELP" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => {
                self.error("502 5.5.1 Error: command not implemented").await
            }
            _ => self.error("500 5.5.2 Error: command not recognized").await,
        }
    }

    /// RFC 5321 §4.1.4: EHLO/HELO also reset any mail transaction.
    fn hello(&mut self, name: &str) {
        self.shared
            .hellos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_owned());
        self.greeted = true;
        self.transaction = None;
    }

    fn credentials(&self) -> Option<(String, String)> {
        self.shared
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// RFC 4954 with the PLAIN (RFC 4616) and LOGIN mechanisms.
    async fn auth(&mut self, arg: &str) -> io::Result<Flow> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        if !self.greeted || self.authenticated {
            return self.error("503 5.5.1 Error: send EHLO first, and AUTH once").await;
        }
        let decode = |s: &str| b64.decode(s.trim()).ok().and_then(|b| String::from_utf8(b).ok());
        let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
        let given = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => decode(initial).and_then(|s| {
                let mut parts = s.split('\0');
                let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
                Some((user.to_owned(), password.to_owned()))
            }),
            "LOGIN" => {
                self.reply("334 VXNlcm5hbWU6").await?;
                let user = self.read_auth_line().await?;
                self.reply("334 UGFzc3dvcmQ6").await?;
                let password = self.read_auth_line().await?;
                user.as_deref()
                    .and_then(decode)
                    .zip(password.as_deref().and_then(decode))
            }
            _ => {
                return self
                    .error("504 5.5.4 Error: unsupported authentication mechanism")
                    .await;
            }
        };
        if given.is_some() && given == self.credentials() {
            self.authenticated = true;
            self.ok("235 2.7.0 Authentication successful").await
        } else {
            self.error("535 5.7.8 Error: authentication failed").await
        }
    }

    async fn read_auth_line(&mut self) -> io::Result<Option<String>> {
        Ok(match self.read_line(MAX_COMMAND_LINE).await? {
            Line::Complete(line) => Some(String::from_utf8_lossy(strip_eol(&line)).into_owned()),
            Line::TooLong | Line::Eof => None,
        })
    }

    async fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        if !self.greeted {
            return self.error("503 5.5.1 Error: send HELO/EHLO first").await;
        }
        if self.credentials().is_some() && !self.authenticated {
            return self.error("530 5.7.0 Authentication required").await;
        }
        if self.transaction.is_some() {
            return self.error("503 5.5.1 Error: nested MAIL command").await;
        }
        let Some((path, params)) = parse_path(arg, "FROM:") else {
            return self.error("501 5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        let mut smtputf8 = false;
        for param in params.split_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > MAX_MESSAGE_BYTES as u64 => {
                        return self
                            .error("552 5.3.4 Message size exceeds fixed maximum message size")
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.error("501 5.5.4 Bad SIZE parameter").await,
                },
                "BODY" if value.eq_ignore_ascii_case("7BIT") => {}
                "BODY" if value.eq_ignore_ascii_case("8BITMIME") => {}
                "BODY" => return self.error("501 5.5.4 Unsupported BODY parameter").await,
                "SMTPUTF8" if value.is_empty() => smtputf8 = true,
                // RFC 5321 §4.1.1.11: 555 for parameters the server does not know.
                _ => {
                    return self.error(&format!("555 5.5.4 Unsupported option: {param}")).await;
                }
            }
        }
        if !path.is_ascii() && !smtputf8 {
            return self.non_ascii_without_smtputf8().await;
        }
        self.transaction = Some(Transaction {
            mail_from: path.to_owned(),
            smtputf8,
            rcpt_to: Vec::new(),
            rcpt_tried: false,
        });
        self.ok("250 2.1.0 Ok").await
    }

    /// RFC 6531 §3.5: a non-ASCII address without the `SMTPUTF8` MAIL parameter gets 553 5.6.7.
    async fn non_ascii_without_smtputf8(&mut self) -> io::Result<Flow> {
        self.error("553 5.6.7 Error: non-ASCII address without SMTPUTF8").await
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        let Some(transaction) = &mut self.transaction else {
            return self.error("503 5.5.1 Error: need MAIL command").await;
        };
        let Some((path, params)) = parse_path(arg, "TO:") else {
            return self.error("501 5.5.4 Syntax: RCPT TO:<address>").await;
        };
        if path.is_empty() {
            return self.error("501 5.1.3 Bad recipient address syntax").await;
        }
        if !params.is_empty() {
            return self.error(&format!("555 5.5.4 Unsupported option: {params}")).await;
        }
        let recipient = path.to_owned();
        transaction.rcpt_tried = true;
        let smtputf8 = transaction.smtputf8;
        let full = transaction.rcpt_to.len() >= MAX_RECIPIENTS;
        *self
            .shared
            .state()
            .attempts
            .entry(recipient.to_lowercase())
            .or_default() += 1;
        if !recipient.is_ascii() && !smtputf8 {
            return self.non_ascii_without_smtputf8().await;
        }
        if full {
            return self.ok("452 4.5.3 Error: too many recipients").await;
        }
        let fault = self.shared.state().take_fault(&recipient, false);
        match fault {
            Some(Fault::RejectRcpt { code, .. }) => {
                self.reply(&rcpt_rejection(code, &recipient)).await?;
                return Ok(if code == 421 { Flow::Close } else { Flow::Continue });
            }
            Some(Fault::Stall { duration, .. }) => tokio::time::sleep(duration).await,
            Some(Fault::DropConnection { .. }) => {
                // Zero linger: the close sends a RST instead of an orderly FIN.
                if let Some(tcp) = self.stream.get_ref().tcp() {
                    let _ = tcp.set_zero_linger();
                }
                return Ok(Flow::Close);
            }
            Some(Fault::RejectData { .. }) | None => {}
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.rcpt_to.push(recipient);
        }
        self.ok("250 2.1.5 Ok").await
    }

    async fn data(&mut self, arg: &str) -> io::Result<Flow> {
        if !arg.is_empty() {
            return self.error("501 5.5.4 Syntax: DATA").await;
        }
        let Some(transaction) = &self.transaction else {
            return self.error("503 5.5.1 Error: need MAIL command").await;
        };
        if transaction.rcpt_to.is_empty()
            && transaction.rcpt_tried
            && self.shared.data_without_recipients.load(Ordering::SeqCst)
        {
            self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
            let mut size = 0;
            loop {
                match self.read_line(MAX_TEXT_LINE).await? {
                    Line::Eof => return Ok(Flow::Close),
                    Line::Complete(line) if line == b".\r\n" => break,
                    Line::Complete(line) => size += line.len(),
                    Line::TooLong => size += MAX_TEXT_LINE,
                }
            }
            self.shared
                .bodies_without_recipients
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(size);
            self.transaction = None;
            return self.error("554 5.5.1 Error: no valid recipients").await;
        }
        if transaction.rcpt_to.is_empty() {
            return if transaction.rcpt_tried {
                self.error("554 5.5.1 Error: no valid recipients").await
            } else {
                self.error("503 5.5.1 Error: need RCPT command").await
            };
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;

        let mut data = Vec::new();
        let mut oversize = false;
        let mut long_line = false;
        loop {
            let line = match self.read_line(MAX_TEXT_LINE).await? {
                // The client went away mid-message: nothing is delivered.
                Line::Eof => return Ok(Flow::Close),
                Line::TooLong => {
                    long_line = true;
                    continue;
                }
                Line::Complete(line) => line,
            };
            // RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends the data (a bare LF one is content,
            // the SMTP smuggling rule); other bare-LF lines are normalized as Postfix does.
            if line == b".\r\n" {
                if !self.stream.buffer().is_empty() {
                    self.shared.behind_content.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
            // RFC 5321 §4.5.2: a leading dot was doubled by the client.
            let content = strip_eol(&line);
            let content = content.strip_prefix(b".").unwrap_or(content);
            if oversize || data.len() + content.len() + 2 > MAX_MESSAGE_BYTES {
                oversize = true;
                continue;
            }
            data.extend_from_slice(content);
            data.extend_from_slice(b"\r\n");
        }

        let Some(transaction) = self.transaction.take() else {
            return Ok(Flow::Close);
        };
        if oversize {
            return self.ok("552 5.3.4 Error: message size exceeds fixed limit").await;
        }
        if long_line {
            return self.ok("554 5.6.0 Error: a line is longer than 998 characters").await;
        }
        let fault = {
            let mut state = self.shared.state();
            transaction.rcpt_to.iter().find_map(|rcpt| state.take_fault(rcpt, true))
        };
        if let Some(Fault::RejectData { code, .. }) = fault {
            self.reply(&data_rejection(code)).await?;
            return Ok(if code == 421 { Flow::Close } else { Flow::Continue });
        }

        let slot = {
            let mut throttle = self.shared.throttle.lock().unwrap_or_else(PoisonError::into_inner);
            throttle.as_mut().map(|(gap, next)| {
                let slot = (*next).max(tokio::time::Instant::now());
                *next = slot + *gap;
                slot
            })
        };
        if let Some(slot) = slot {
            tokio::time::sleep_until(slot).await;
        }
        self.accepted += 1;
        let queue_id = format!("{}.{}", self.id, self.accepted);
        {
            let mut state = self.shared.state();
            state.messages.push(ReceivedMail {
                mail_from: transaction.mail_from,
                rcpt_to: transaction.rcpt_to,
                data,
                connection: self.id,
                tls: matches!(self.stream.get_ref(), SinkStream::Tls(_)),
            });
            self.shared.accepted.send_replace(state.messages.len());
        }
        self.ok(&format!("250 2.0.0 Ok: queued as {queue_id}")).await
    }

    /// Answers a command that was understood (whatever the outcome).
    async fn ok(&mut self, reply: &str) -> io::Result<Flow> {
        self.reply(reply).await?;
        Ok(Flow::Continue)
    }

    /// Answers a syntax or sequence error, hanging up after too many of them.
    async fn error(&mut self, reply: &str) -> io::Result<Flow> {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.reply(&format!("421 4.7.0 {HOSTNAME} Error: too many errors"))
                .await?;
            return Ok(Flow::Close);
        }
        self.ok(reply).await
    }

    fn offers_starttls(&self) -> bool {
        matches!(self.shared.tls, Some((Tls::StartTls, _))) && matches!(self.stream.get_ref(), SinkStream::Plain(_))
    }

    /// RFC 3207: `220`, the TLS handshake, and a fresh start (the client says EHLO again).
    async fn starttls(&mut self) -> io::Result<Flow> {
        // Commands pipelined behind STARTTLS would be a plaintext injection (RFC 3207 §5).
        if !self.stream.buffer().is_empty() {
            return self.error("501 5.5.4 Error: data after STARTTLS").await;
        }
        let Some((_, acceptor)) = self.shared.tls.clone() else {
            return self.error("454 4.7.0 TLS not available").await;
        };
        self.reply("220 2.0.0 Ready to start TLS").await?;
        let SinkStream::Plain(tcp) = std::mem::replace(self.stream.get_mut(), SinkStream::Swapping) else {
            return Ok(Flow::Close);
        };
        match acceptor.accept(tcp).await {
            Ok(tls) => {
                self.stream = BufReader::new(SinkStream::Tls(Box::new(tls)));
                self.greeted = false;
                self.authenticated = false;
                self.transaction = None;
                Ok(Flow::Continue)
            }
            Err(_) => Ok(Flow::Close),
        }
    }

    /// Writes one reply, its line end included, in one write: a reply split over two writes
    /// left its `\r\n` waiting in the kernel for the client's ACK (Nagle), and a
    /// [`Fault::DropConnection`] (a RST) right after it discarded that tail, so the client never
    /// saw the end of a reply the sink had sent (a delivered message looked lost, and was sent
    /// again).
    async fn reply(&mut self, reply: &str) -> io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
        stream.flush().await
    }

    /// Reads one line, never holding more than `max` bytes of it.
    async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buffered = self.stream.fill_buf().await?;
            if buffered.is_empty() {
                return Ok(Line::Eof);
            }
            let (taken, complete) = match buffered.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffered.len(), false),
            };
            if line.len() + taken > max {
                too_long = true;
                line.clear();
            } else if !too_long {
                line.extend_from_slice(&buffered[..taken]);
            }
            self.stream.consume(taken);
            if complete {
                return Ok(if too_long { Line::TooLong } else { Line::Complete(line) });
            }
        }
    }
}

/// Splits `FROM:<path> params` or `TO:<path> params` (RFC 5321 §4.1.2); a space after the colon
/// is tolerated, as by most servers.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start().strip_prefix('<')?;
    let end = rest.find('>')?;
    let path = &rest[..end];
    // RFC 5321 §4.1.1.2 / appendix C: a source route (`@a,@b:user@c`) is accepted and ignored.
    let path = match path.split_once(':') {
        Some((route, mailbox)) if route.starts_with('@') => mailbox,
        _ => path,
    };
    if path.chars().any(char::is_whitespace) {
        return None;
    }
    Some((path, rest[end + 1..].trim()))
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reply texts as Postfix and the big mailbox providers word them (RFC 3463 enhanced codes).
fn rcpt_rejection(code: u16, recipient: &str) -> String {
    match code {
        421 => format!("421 4.4.2 {HOSTNAME} Error: timeout exceeded, closing connection"),
        450 => format!("450 4.2.1 <{recipient}>: Recipient address rejected: mailbox unavailable"),
        451 => format!("451 4.7.1 <{recipient}>: Recipient address rejected: greylisted, try again later"),
        452 => format!("452 4.2.2 <{recipient}>: Recipient address rejected: mailbox full"),
        550 => format!("550 5.1.1 <{recipient}>: Recipient address rejected: user unknown"),
        551 => format!("551 5.1.6 <{recipient}>: Recipient address rejected: user has moved"),
        552 => format!("552 5.2.2 <{recipient}>: Recipient address rejected: mailbox full"),
        553 => format!("553 5.1.3 <{recipient}>: Recipient address rejected: bad address syntax"),
        554 => format!("554 5.7.1 <{recipient}>: Relay access denied"),
        400..500 => {
            format!("{code} 4.0.0 <{recipient}>: Recipient address rejected: try again later")
        }
        _ => format!("{code} 5.0.0 <{recipient}>: Recipient address rejected"),
    }
}

fn data_rejection(code: u16) -> String {
    match code {
        421 => format!("421 4.4.2 {HOSTNAME} Error: timeout exceeded, closing connection"),
        451 => "451 4.3.0 Error: queue file write error, try again later".to_owned(),
        452 => "452 4.3.1 Error: insufficient system storage".to_owned(),
        550 => "550 5.7.1 Message rejected as spam".to_owned(),
        552 => "552 5.3.4 Error: message size exceeds fixed limit".to_owned(),
        554 => "554 5.6.0 Error: message content rejected".to_owned(),
        400..500 => format!("{code} 4.0.0 Error: message not accepted, try again later"),
        _ => format!("{code} 5.0.0 Error: message rejected"),
    }
}
