//! SMTP delivery: our own SMTP client (RFC 5321) and a small connection pool.
//!
//! Why not lettre's transport (lettre still builds the messages):
//! - it sends MAIL, RCPT and DATA one at a time and waits for each answer, and writes the
//!   message body and the final `.` separately: four round trips and five writes a message.
//!   Here, when the server offers PIPELINING (RFC 2920), an [`SmtpSeries`] of messages over one
//!   session sends each message's dot-stuffed content and final `.` in the same write as the next
//!   message's MAIL, RCPT and DATA: one write and one round trip a message, for optbridge and for
//!   the server. On a 2-core machine the syscalls and wake-ups saved are most of the send cost
//!   (BENCHMARKS.md, "Invitation sending");
//! - lettre's pooled transport does not set `TCP_NODELAY`, so every message waited for the
//!   server's delayed ACK (40 ms on Linux);
//! - its timeout covers connecting only, and a send cut off by an outer timeout went back to its
//!   pool mid-transaction. Here the timeout bounds connecting and each exchange (a write and the
//!   replies it waits for), and a connection returns to the pool only in a known state: after a
//!   clean send, or after a refused one followed by a successful `RSET`;
//! - errors while connecting, greeting, STARTTLS or AUTH are the server's or the configuration's
//!   problem, never the recipient's: they are temporary here, so they can never bounce or
//!   suppress an address.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use url::Url;

use super::SendError;

/// A pooled connection idle longer than this is closed rather than reused (servers drop idle
/// sessions after a few minutes, RFC 5321 4.5.3.2.7 suggests 5).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Messages per connection before it is closed and a fresh one opened.
const MAX_MESSAGES_PER_CONNECTION: u32 = 1000;
/// Longest reply we accept (all lines together); a server sending more is broken or hostile.
const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://`: no TLS.
    Plain,
    /// `smtp://…?tls=opportunistic` or `?tls=required`: STARTTLS (RFC 3207).
    StartTls { required: bool },
    /// `smtps://`: TLS from the first byte (RFC 8314).
    Implicit,
}

struct Credentials {
    user: String,
    password: String,
}

struct Pooled {
    session: Session,
    idle_since: Instant,
    sent: u32,
}

pub struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Pooled>>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .finish()
    }
}

/// What an SMTP session runs over: a TCP stream, or TLS on top of one.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One reply from the server: its code and its text (the lines of a multi-line reply joined
/// by newlines, without the codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text.replace('\n', " / "))
    }
}

/// Why a mail transaction failed.
#[derive(Debug)]
enum Failure {
    /// The connection broke, or the server said something that is not SMTP.
    Connection(String),
    /// The server refused a step of the transaction.
    Refused { stage: &'static str, reply: Reply },
    /// The message needs an extension the server does not offer.
    Unsupported(&'static str),
}

impl Failure {
    fn into_send_error(self) -> SendError {
        match self {
            Self::Connection(e) => SendError::Transient(e),
            Self::Refused { stage, reply } => super::classify_reply(stage, &reply),
            // The same server will say the same next time; the address itself may be fine.
            Self::Unsupported(what) => SendError::Permanent {
                code: None,
                hard_bounce: false,
                reason: what.to_owned(),
            },
        }
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::Connection(format!("SMTP connection: {e}"))
}

/// An SMTP session after the greeting and EHLO (and STARTTLS and AUTH where configured).
struct Session {
    stream: Box<dyn Stream>,
    /// Bytes read from the server and not yet parsed into replies.
    inbox: Vec<u8>,
    /// Reused for every write.
    outbox: Vec<u8>,
    extensions: Extensions,
    /// A write or read failed, or the state after a refusal is unknown: never reuse.
    broken: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Extensions {
    pipelining: bool,
    eight_bit_mime: bool,
    smtp_utf8: bool,
    starttls: bool,
    auth: Vec<String>,
}

impl Extensions {
    /// The keywords of an EHLO reply (RFC 5321 4.1.1.1): every line after the first.
    fn parse(ehlo: &Reply) -> Self {
        let mut found = Self::default();
        for line in ehlo.text.lines().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => found.pipelining = true,
                "8BITMIME" => found.eight_bit_mime = true,
                "SMTPUTF8" => found.smtp_utf8 = true,
                "STARTTLS" => found.starttls = true,
                "AUTH" => found.auth = words.map(str::to_ascii_uppercase).collect(),
                _ => {}
            }
        }
        found
    }
}

impl Session {
    fn new(stream: Box<dyn Stream>) -> Self {
        Self {
            stream,
            inbox: Vec::with_capacity(1024),
            outbox: Vec::with_capacity(16 * 1024),
            extensions: Extensions::default(),
            broken: false,
        }
    }

    /// Writes `self.outbox` and empties it.
    async fn flush_outbox(&mut self) -> Result<(), Failure> {
        let result = async {
            self.stream.write_all(&self.outbox).await?;
            self.stream.flush().await
        }
        .await;
        self.outbox.clear();
        result.map_err(|e| {
            self.broken = true;
            io_failure(e)
        })
    }

    /// Sends one command line and reads its reply.
    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.outbox.extend_from_slice(line.as_bytes());
        self.outbox.extend_from_slice(b"\r\n");
        self.flush_outbox().await?;
        self.reply().await
    }

    /// Reads the next reply, waiting for more bytes until a whole one has arrived.
    async fn reply(&mut self) -> Result<Reply, Failure> {
        loop {
            match parse_reply(&self.inbox) {
                Ok(Some((reply, used))) => {
                    self.inbox.drain(..used);
                    return Ok(reply);
                }
                Ok(None) if self.inbox.len() > MAX_REPLY_BYTES => {
                    self.broken = true;
                    return Err(Failure::Connection("SMTP server sent an overlong reply".into()));
                }
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Failure::Connection(e));
                }
            }
            self.inbox.reserve(4096);
            match self.stream.read_buf(&mut self.inbox).await {
                Ok(0) => {
                    self.broken = true;
                    return Err(Failure::Connection("the SMTP server closed the connection".into()));
                }
                Ok(_) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(io_failure(e));
                }
            }
        }
    }

    async fn expect(&mut self, line: &str, stage: &'static str, code: u16) -> Result<Reply, Failure> {
        let reply = self.command(line).await?;
        if reply.code == code {
            Ok(reply)
        } else {
            Err(Failure::Refused { stage, reply })
        }
    }

    /// EHLO, or HELO for a server that does not know EHLO (RFC 5321 4.1.4).
    async fn hello(&mut self, hello: &ClientId) -> Result<(), Failure> {
        let reply = self.command(&format!("EHLO {hello}")).await?;
        if reply.code == 250 {
            self.extensions = Extensions::parse(&reply);
            return Ok(());
        }
        self.expect(&format!("HELO {hello}"), "HELO", 250).await?;
        self.extensions = Extensions::default();
        Ok(())
    }

    /// AUTH PLAIN (RFC 4616), or LOGIN where PLAIN is not offered.
    async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let offered = |m: &str| self.extensions.auth.iter().any(|a| a == m);
        if offered("PLAIN") || self.extensions.auth.is_empty() {
            let token = b64.encode(format!("\0{}\0{}", credentials.user, credentials.password));
            self.expect(&format!("AUTH PLAIN {token}"), "AUTH", 235).await?;
        } else if offered("LOGIN") {
            self.expect("AUTH LOGIN", "AUTH", 334).await?;
            self.expect(&b64.encode(&credentials.user), "AUTH", 334).await?;
            self.expect(&b64.encode(&credentials.password), "AUTH", 235).await?;
        } else {
            return Err(Failure::Connection(format!(
                "the server offers AUTH {}, and optbridge speaks PLAIN and LOGIN",
                self.extensions.auth.join(" ")
            )));
        }
        Ok(())
    }

    /// MAIL, RCPT and DATA for `envelope`, with the parameters `raw` needs; `(stage, line)`.
    fn commands(&self, envelope: &Envelope, raw: &[u8]) -> Result<Vec<(&'static str, String)>, Failure> {
        let mut parameters = "";
        let addresses = envelope.from().into_iter().chain(envelope.to());
        if addresses.map(AsRef::<str>::as_ref).any(|a| !a.is_ascii()) {
            if !self.extensions.smtp_utf8 {
                return Err(Failure::Unsupported(
                    "the address is not ASCII and the SMTP server does not offer SMTPUTF8",
                ));
            }
            parameters = " SMTPUTF8";
        }
        if !raw.is_ascii() {
            if !self.extensions.eight_bit_mime {
                return Err(Failure::Unsupported(
                    "the message is not 7-bit and the SMTP server does not offer 8BITMIME",
                ));
            }
            parameters = if parameters.is_empty() {
                " BODY=8BITMIME"
            } else {
                " BODY=8BITMIME SMTPUTF8"
            };
        }
        let from = envelope.from().map_or("", |a| a.as_ref());
        let mut commands = Vec::with_capacity(2 + envelope.to().len());
        commands.push(("MAIL FROM", format!("MAIL FROM:<{from}>{parameters}\r\n")));
        for to in envelope.to() {
            commands.push(("RCPT TO", format!("RCPT TO:<{}>\r\n", AsRef::<str>::as_ref(to))));
        }
        commands.push(("DATA", "DATA\r\n".to_owned()));
        Ok(commands)
    }

    /// One step of a series of mail transactions: ends the message whose DATA the server accepted
    /// (`content`: its content goes out with the final dot) and opens the next one (`next`: its
    /// MAIL, RCPT and DATA, up to the server's 354). With PIPELINING both go out in one write
    /// (RFC 2920 3.1: message content may start a group, DATA ends one), so a message costs one
    /// write and one round trip. Returns the ended message's outcome and the opened one's.
    async fn step(&mut self, content: Option<&[u8]>, next: Option<&[(&'static str, String)]>) -> Step {
        if let Some(raw) = content {
            push_dot_stuffed(&mut self.outbox, raw);
        }
        let pipelined = next.filter(|_| self.extensions.pipelining);
        for (_, line) in pipelined.into_iter().flatten() {
            self.outbox.extend_from_slice(line.as_bytes());
        }
        if !self.outbox.is_empty()
            && let Err(e) = self.flush_outbox().await
        {
            let lost = describe(e);
            return Step {
                ended: content.map(|_| Err(Failure::Connection(lost.clone()))),
                opened: next.map(|_| Err(Failure::Connection(lost))),
            };
        }
        let ended = match content {
            None => None,
            Some(_) => Some(match self.reply().await {
                Ok(reply) if reply.is_positive() => Ok(()),
                // After the final dot the transaction is over either way (RFC 5321 4.1.1.4).
                Ok(reply) => Err(Failure::Refused {
                    stage: "end of data",
                    reply,
                }),
                Err(e) => Err(e),
            }),
        };
        let opened = match next {
            None => None,
            Some(_) if self.broken => Some(Err(Failure::Connection(
                "the SMTP connection broke while the previous message ended".into(),
            ))),
            Some(commands) if pipelined.is_some() => Some(self.pipelined_replies(commands).await),
            Some(commands) => Some(self.one_at_a_time(commands).await),
        };
        Step { ended, opened }
    }

    /// The replies to a pipelined MAIL, RCPT, DATA group; `Ok` once DATA got its 354.
    async fn pipelined_replies(&mut self, commands: &[(&'static str, String)]) -> Result<(), Failure> {
        let mut refused = None;
        // Every command of the group is answered, in order, whatever happened before.
        for (stage, _) in commands {
            let reply = match self.reply().await {
                Ok(reply) => reply,
                // E.g. a 421 to RCPT, then the server hung up: report the 421.
                Err(e) => return Err(refused.unwrap_or(e)),
            };
            let wanted = accepts(stage, &reply);
            if wanted && *stage == "DATA" && refused.is_some() {
                // DATA was accepted although a recipient was not: end the empty message.
                self.outbox.extend_from_slice(b".\r\n");
                self.flush_outbox().await?;
                self.reply().await?;
            } else if !wanted && refused.is_none() {
                refused = Some(Failure::Refused { stage, reply });
            }
        }
        match refused {
            None => Ok(()),
            Some(refused) => {
                self.reset().await;
                Err(refused)
            }
        }
    }

    /// MAIL, RCPT and DATA one at a time, for a server without PIPELINING.
    async fn one_at_a_time(&mut self, commands: &[(&'static str, String)]) -> Result<(), Failure> {
        for (stage, line) in commands {
            self.outbox.extend_from_slice(line.as_bytes());
            self.flush_outbox().await?;
            let reply = self.reply().await?;
            if !accepts(stage, &reply) {
                self.reset().await;
                return Err(Failure::Refused { stage, reply });
            }
        }
        Ok(())
    }

    /// Back to a clean state after a refused transaction; anything but 250 retires the session.
    async fn reset(&mut self) {
        match self.command("RSET").await {
            Ok(reply) if reply.code == 250 => {}
            _ => self.broken = true,
        }
    }

    /// A polite goodbye to a session being retired; its answer does not matter.
    async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.command("QUIT")).await;
    }
}

/// Whether `reply` lets a transaction go on after `stage`: DATA wants 354 (send the message),
/// MAIL and RCPT any positive reply.
fn accepts(stage: &str, reply: &Reply) -> bool {
    if stage == "DATA" {
        reply.code == 354
    } else {
        reply.is_positive()
    }
}

/// The first complete reply in `buf` and the bytes it used; `None` until all its lines are
/// there. RFC 5321 4.2: `ddd-text` continues a reply, `ddd text` (or `ddd`) ends it.
fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut text = String::new();
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &buf[start..]).map(|i| start + i) {
        let line = &buf[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let malformed = || format!("not an SMTP reply: {:?}", String::from_utf8_lossy(line));
        let code = line
            .get(..3)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(malformed)?;
        let rest = &line[3..];
        let last = match rest.first() {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(malformed()),
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).trim_end());
        start = end + 1;
        if last {
            return Ok(Some((Reply { code, text }, start)));
        }
    }
    Ok(None)
}

/// Appends the message as DATA content (RFC 5321 4.5.2: a line starting with `.` gets one more)
/// followed by the end-of-data line.
fn push_dot_stuffed(out: &mut Vec<u8>, raw: &[u8]) {
    out.reserve(raw.len() + 64);
    if raw.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut from = 0;
    for at in memchr::memmem::find_iter(raw, b"\n.") {
        out.extend_from_slice(&raw[from..=at]);
        out.push(b'.');
        from = at + 1;
    }
    out.extend_from_slice(&raw[from..]);
    if !raw.is_empty() && !raw.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// What one [`Session::step`] did: the outcome of the message it ended and of the one it opened.
struct Step {
    ended: Option<Result<(), Failure>>,
    opened: Option<Result<(), Failure>>,
}

/// Messages sent one after another over one session, each message's content going out in the
/// same write as the next message's MAIL, RCPT and DATA ([`Session::step`]): with PIPELINING,
/// one write and one round trip a message instead of two, for optbridge and for the server.
///
/// A message's outcome is known once the next one is sent, or at [`SmtpSeries::finish`]; `K` ties
/// outcomes to messages. A series dropped unfinished closes its connection in the middle of
/// DATA, so its last message is not delivered (and not reported: the caller has lost track of
/// it anyway, e.g. a cancelled batch whose lease expires).
pub struct SmtpSeries<'a, K> {
    pool: &'a SmtpPool,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    pooled: Option<Pooled>,
    /// The message whose DATA the server accepted: its content goes out with the next step.
    open: Option<(K, Vec<u8>)>,
}

impl<K> SmtpSeries<'_, K> {
    /// Sends `raw` to `envelope`'s recipients; returns the outcomes that became known: the
    /// previous message's, and this one's if it was refused before its content.
    pub async fn send(&mut self, key: K, envelope: &Envelope, raw: Vec<u8>) -> Vec<(K, Result<(), SendError>)> {
        let mut done = Vec::new();
        if self
            .pooled
            .as_ref()
            .is_some_and(|p| p.sent >= MAX_MESSAGES_PER_CONNECTION)
        {
            done.extend(self.end_session().await);
        }
        if self.pooled.is_none() {
            if self.permit.is_none() {
                match self.pool.permits.acquire().await {
                    Ok(permit) => self.permit = Some(permit),
                    Err(_) => {
                        done.push((key, Err(SendError::Transient("SMTP pool closed".into()))));
                        return done;
                    }
                }
            }
            match self.pool.session().await {
                Ok(pooled) => self.pooled = Some(pooled),
                Err(e) => {
                    done.push((key, Err(SendError::Transient(e))));
                    return done;
                }
            }
        }
        let Some(pooled) = self.pooled.as_mut() else {
            unreachable!("a session was just taken")
        };
        let commands = match pooled.session.commands(envelope, &raw) {
            Ok(commands) => commands,
            Err(e) => {
                done.push((key, Err(e.into_send_error())));
                return done;
            }
        };
        let previous = self.open.take();
        let step = pooled
            .session
            .step(previous.as_ref().map(|(_, raw)| raw.as_slice()), Some(&commands));
        match tokio::time::timeout(self.pool.timeout, step).await {
            Ok(Step { ended, opened }) => {
                if let (Some((previous, _)), Some(ended)) = (previous, ended) {
                    done.push((previous, ended.map_err(Failure::into_send_error)));
                }
                match opened {
                    Some(Ok(())) => {
                        pooled.sent += 1;
                        self.open = Some((key, raw));
                    }
                    Some(Err(e)) => done.push((key, Err(e.into_send_error()))),
                    None => unreachable!("a step with commands opens a transaction"),
                }
            }
            Err(_) => {
                pooled.session.broken = true;
                let e = self.silence();
                done.extend(previous.map(|(previous, _)| (previous, Err(e.clone()))));
                done.push((key, Err(e)));
            }
        }
        if self.pooled.as_ref().is_some_and(|p| p.session.broken) {
            // Nothing is open on a broken session: a refusal's RSET failed, or the step failed.
            self.pooled = None;
        }
        done
    }

    /// Ends the open message, if any, and gives the session back to the pool.
    pub async fn finish(mut self) -> Option<(K, Result<(), SendError>)> {
        self.end_session().await
    }

    async fn end_session(&mut self) -> Option<(K, Result<(), SendError>)> {
        let mut pooled = self.pooled.take()?;
        let outcome = match self.open.take() {
            None => None,
            Some((key, raw)) => {
                let step = pooled.session.step(Some(&raw), None);
                let result = match tokio::time::timeout(self.pool.timeout, step).await {
                    Ok(Step { ended, .. }) => ended
                        .unwrap_or_else(|| unreachable!("a step with content ends a message"))
                        .map_err(Failure::into_send_error),
                    Err(_) => {
                        pooled.session.broken = true;
                        Err(self.silence())
                    }
                };
                Some((key, result))
            }
        };
        self.pool.put_idle(pooled).await;
        outcome
    }

    fn silence(&self) -> SendError {
        SendError::Transient(format!(
            "no answer from the SMTP server within {} s",
            self.pool.timeout.as_secs()
        ))
    }
}

impl SmtpPool {
    /// `smtp://host[:port]` (plain), `?tls=opportunistic|required` (STARTTLS), `smtps://` (implicit
    /// TLS); `user:pass@` for AUTH; a path names the EHLO identity (`smtp://host/mta.shop.example`).
    pub fn from_url(url: &Url, connections: usize, timeout: Duration) -> Result<Self, String> {
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("SMTP_URL needs a host")?
            .to_owned();
        let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let security = match (url.scheme(), tls.as_deref()) {
            ("smtp", None | Some("none")) => Security::Plain,
            ("smtp", Some("opportunistic")) => Security::StartTls { required: false },
            ("smtp", Some("required")) => Security::StartTls { required: true },
            ("smtps", None | Some("implicit")) => Security::Implicit,
            (scheme, tls) => {
                return Err(format!(
                    "SMTP_URL: unsupported combination {scheme}:// with tls={tls:?}"
                ));
            }
        };
        let port = url.port().unwrap_or(match security {
            Security::Plain => 25,
            Security::StartTls { .. } => 587,
            Security::Implicit => 465,
        });
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "SMTP_URL: user or password is not valid percent-encoded UTF-8".to_owned())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials {
                user: decode(url.username())?,
                password: decode(password)?,
            }),
            None if !url.username().is_empty() => {
                return Err("SMTP_URL: a user needs a password (user:pass@host)".into());
            }
            None => None,
        };
        // Also with tls=opportunistic: a server that does not offer STARTTLS gets the password in
        // the clear.
        if credentials.is_some() && !matches!(security, Security::StartTls { required: true } | Security::Implicit) {
            tracing::warn!(
                host,
                "SMTP_URL has a password but does not require TLS: it may cross the network in the clear; \
                 use smtps:// or ?tls=required"
            );
        }
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let tls = match security {
            Security::Plain => None,
            Security::StartTls { .. } | Security::Implicit => {
                use rustls_platform_verifier::ConfigVerifierExt;
                let config = rustls::ClientConfig::with_platform_verifier().map_err(|e| format!("TLS setup: {e}"))?;
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
        };
        Ok(Self {
            host,
            port,
            security,
            credentials,
            hello,
            timeout,
            permits: Semaphore::new(connections.max(1)),
            idle: Mutex::new(Vec::new()),
            tls,
        })
    }

    /// Delivers one message (an [`SmtpSeries`] of one).
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut series = self.series();
        let mut done = series.send((), envelope, raw.to_vec()).await;
        done.extend(series.finish().await);
        done.pop()
            .map_or_else(|| Err(SendError::Transient("no outcome".into())), |(_, r)| r)
    }

    /// Starts a series of messages over one session (see [`SmtpSeries`]). At most `connections`
    /// series hold a session at once.
    pub fn series<K>(&self) -> SmtpSeries<'_, K> {
        SmtpSeries {
            pool: self,
            permit: None,
            pooled: None,
            open: None,
        }
    }

    /// A session: an idle one, or a new connection.
    async fn session(&self) -> Result<Pooled, String> {
        if let Some(pooled) = self.take_idle() {
            return Ok(pooled);
        }
        match tokio::time::timeout(self.timeout, self.connect()).await {
            Ok(Ok(session)) => Ok(Pooled {
                session,
                idle_since: Instant::now(),
                sent: 0,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "connecting to {}:{} took longer than {} s",
                self.host,
                self.port,
                self.timeout.as_secs()
            )),
        }
    }

    fn take_idle(&self) -> Option<Pooled> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(p) = idle.pop() {
            if !p.session.broken && p.idle_since.elapsed() < MAX_IDLE {
                return Some(p);
            }
        }
        None
    }

    async fn put_idle(&self, mut pooled: Pooled) {
        if pooled.session.broken {
            return;
        }
        if pooled.sent >= MAX_MESSAGES_PER_CONNECTION {
            pooled.session.quit().await;
            return;
        }
        pooled.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(pooled);
        }
    }

    async fn connect(&self) -> Result<Session, String> {
        let target = &format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("{target}: {e}"))?;
        let stream: Box<dyn Stream> = match self.security {
            Security::Implicit => Box::new(self.start_tls(tcp, target).await?),
            _ => Box::new(tcp),
        };
        let mut session = Session::new(stream);
        let step = |what: &'static str| move |f: Failure| format!("{what} with {target}: {}", describe(f));
        let greeting = session.reply().await.map_err(step("greeting"))?;
        if greeting.code != 220 {
            return Err(format!("greeting from {target}: {greeting}"));
        }
        session.hello(&self.hello).await.map_err(step("EHLO"))?;
        if let Security::StartTls { required } = self.security {
            if session.extensions.starttls {
                session
                    .expect("STARTTLS", "STARTTLS", 220)
                    .await
                    .map_err(step("STARTTLS"))?;
                // Anything the server sent after its 220 was sent in the clear and could be an
                // injected reply (the STARTTLS command injection of CVE-2011-0411's kind).
                if !session.inbox.is_empty() {
                    return Err(format!("{target} sent data after agreeing to STARTTLS"));
                }
                let tls = self.start_tls(session.stream, target).await?;
                session = Session::new(Box::new(tls));
                // RFC 3207 4.2: forget what was learnt before TLS, ask again.
                session.hello(&self.hello).await.map_err(step("EHLO after STARTTLS"))?;
            } else if required {
                return Err(format!(
                    "{target} does not offer STARTTLS, which SMTP_URL requires (tls=required)"
                ));
            }
        }
        if let Some(credentials) = &self.credentials {
            session.authenticate(credentials).await.map_err(step("AUTH"))?;
        }
        Ok(session)
    }

    async fn start_tls<S: Stream + 'static>(
        &self,
        stream: S,
        target: &str,
    ) -> Result<tokio_rustls::client::TlsStream<S>, String> {
        let connector = self.tls.as_ref().ok_or("TLS is not configured")?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("{target}: invalid TLS server name: {e}"))?;
        connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {target}: {e}"))
    }
}

fn describe(failure: Failure) -> String {
    match failure {
        Failure::Connection(e) => e,
        Failure::Refused { reply, .. } => reply.to_string(),
        Failure::Unsupported(what) => what.to_owned(),
    }
}

pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(url: &str) -> Result<SmtpPool, String> {
        SmtpPool::from_url(&Url::parse(url).map_err(|e| e.to_string())?, 4, Duration::from_secs(5))
    }

    #[test]
    fn urls_choose_security_and_ports() {
        let p = pool("smtp://127.0.0.1:2525").expect("plain");
        assert_eq!((p.security, p.port), (Security::Plain, 2525));
        let p = pool("smtp://mail.example?tls=required").expect("starttls");
        assert_eq!((p.security, p.port), (Security::StartTls { required: true }, 587));
        let p = pool("smtps://user%40shop:p%2Fss@mail.example").expect("implicit");
        assert_eq!((p.security, p.port), (Security::Implicit, 465));
        assert!(p.credentials.is_some());
        assert!(pool("smtp://mail.example?tls=sometimes").is_err());
        assert!(pool("smtp://user@mail.example").is_err(), "user without password");
        assert_eq!(percent_decode("a%40b%2Fc").as_deref(), Some("a@b/c"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn replies_are_parsed_whole_and_one_at_a_time() {
        let pipelined = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n";
        let (first, used) = parse_reply(pipelined).expect("valid").expect("complete");
        assert_eq!((first.code, first.text.as_str()), (250, "2.1.0 Ok"));
        let (second, more) = parse_reply(&pipelined[used..]).expect("valid").expect("complete");
        assert_eq!(second.code, 250);
        let (third, _) = parse_reply(&pipelined[used + more..])
            .expect("valid")
            .expect("complete");
        assert_eq!(third.code, 354);

        let ehlo = b"250-mx.example greets you\r\n250-PIPELINING\r\n250-auth PLAIN login\r\n250 STARTTLS\r\n";
        for cut in 0..ehlo.len() {
            assert_eq!(parse_reply(&ehlo[..cut]), Ok(None), "incomplete at {cut}");
        }
        let (reply, used) = parse_reply(ehlo).expect("valid").expect("complete");
        assert_eq!(used, ehlo.len());
        assert_eq!(
            reply.text,
            "mx.example greets you\nPIPELINING\nauth PLAIN login\nSTARTTLS"
        );
        let found = Extensions::parse(&reply);
        assert!(found.pipelining && found.starttls && !found.eight_bit_mime);
        assert_eq!(found.auth, ["PLAIN", "LOGIN"]);

        assert_eq!(parse_reply(b"250\n").expect("valid").map(|(r, _)| r.code), Some(250));
        assert!(parse_reply(b"HTTP/1.1 400 Bad Request\r\n").is_err());
        assert!(parse_reply(b"25x Ok\r\n").is_err());
        assert!(parse_reply(b"250_Ok\r\n").is_err());
        assert!(parse_reply(b"999 Ok\r\n").is_err());
    }

    #[test]
    fn message_lines_starting_with_a_dot_are_stuffed() {
        let stuffed = |raw: &[u8]| {
            let mut out = Vec::new();
            push_dot_stuffed(&mut out, raw);
            String::from_utf8(out).expect("utf8")
        };
        assert_eq!(stuffed(b"a\r\nb\r\n"), "a\r\nb\r\n.\r\n");
        assert_eq!(stuffed(b".a\r\n.\r\nb.c\r\n..d"), "..a\r\n..\r\nb.c\r\n...d\r\n.\r\n");
        assert_eq!(stuffed(b""), ".\r\n");
    }

    #[test]
    fn refusals_are_sorted_into_retry_and_bounce() {
        use crate::mail::{SendError, classify_reply};
        let reply = |code, text: &str| Reply {
            code,
            text: text.to_owned(),
        };
        let greylisted = classify_reply("RCPT TO", &reply(451, "4.7.1 greylisted"));
        assert!(matches!(&greylisted, SendError::Transient(r) if r == "RCPT TO: 451 4.7.1 greylisted"));
        assert!(matches!(
            classify_reply("RCPT TO", &reply(550, "5.1.1 user unknown")),
            SendError::Permanent {
                hard_bounce: true,
                code: Some(550),
                ..
            }
        ));
        assert!(matches!(
            classify_reply("end of data", &reply(550, "5.7.1 spam")),
            SendError::Permanent { hard_bounce: false, .. }
        ));
        assert!(matches!(
            classify_reply("RCPT TO", &reply(553, "no such user")),
            SendError::Permanent { hard_bounce: true, .. }
        ));
        assert!(matches!(
            classify_reply("DATA", &reply(503, "5.5.1 bad sequence")),
            SendError::Transient(_)
        ));
    }
}
