//! The bounce mailbox, `BOUNCE_MAILBOX`: a POP3 maildrop ([`super::pop3`]) or an IMAP folder
//! ([`super::imap`]), behind one interface for the poller: list the messages, fetch one, mark it
//! for deletion, end the session (the deletions take effect).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use super::imap::{ImapMailbox, ImapSession};
use super::pop3::{Pop3Mailbox, Pop3Session};

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("{0}")]
    Connection(String),
    /// The server refused a command (POP3 `-ERR`, IMAP `NO` or `BAD`).
    #[error("{command}: {reply}")]
    Refused { command: &'static str, reply: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl MailboxError {
    /// The answer to STLS (POP3) or STARTTLS (IMAP) under `?tls=required`: a refusal means the
    /// server has no TLS on this port, and the session ends before any credential is sent.
    pub(super) fn tls_offered<T>(answer: Result<T, Self>, command: &str, tls_scheme: &str) -> Result<(), Self> {
        match answer {
            Ok(_) => Ok(()),
            Err(Self::Refused { reply, .. }) => Err(Self::Connection(format!(
                "the server does not offer {command} ({reply}); use {tls_scheme}:// if it has TLS from the first byte"
            ))),
            Err(e) => Err(e),
        }
    }
}

/// One message in the mailbox: the number the session fetches and deletes it by (POP3's message
/// number, IMAP's UID), an id unique across sessions, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub number: u32,
    pub uid: String,
    pub size: u64,
}

/// `BOUNCE_MAILBOX`: `pop3://`, `pop3s://`, `imap://` or `imaps://`.
#[derive(Debug, Clone)]
pub enum Mailbox {
    Pop3(Pop3Mailbox),
    Imap(ImapMailbox),
}

impl Mailbox {
    pub fn from_url(url: &Url) -> Result<Self, String> {
        match url.scheme() {
            "pop3" | "pop3s" => Pop3Mailbox::from_url(url).map(Self::Pop3),
            "imap" | "imaps" => ImapMailbox::from_url(url).map(Self::Imap),
            other => Err(format!(
                "unsupported scheme {other}://, use pop3://, pop3s://, imap:// or imaps://"
            )),
        }
    }

    /// `host:port` (and the IMAP folder), for logs.
    pub fn target(&self) -> String {
        match self {
            Self::Pop3(m) => m.target(),
            Self::Imap(m) => m.target(),
        }
    }

    /// Whether the password crosses the network in the clear.
    pub fn is_plaintext_remote(&self) -> bool {
        let (server, tls) = match self {
            Self::Pop3(m) => (m.server(), m.tls()),
            Self::Imap(m) => (m.server(), m.tls()),
        };
        matches!(tls, Security::Plain) && !server.is_loopback()
    }

    /// Connects and logs in; every exchange is bounded by `timeout`.
    pub async fn open(&self, timeout: Duration) -> Result<MailboxSession, MailboxError> {
        Ok(match self {
            Self::Pop3(m) => MailboxSession::Pop3(m.open(timeout).await?),
            Self::Imap(m) => MailboxSession::Imap(m.open(timeout).await?),
        })
    }
}

/// A logged-in session. Deletions take effect at [`MailboxSession::close`]; a session dropped
/// without it deletes nothing on POP3 (RFC 1939 section 6), and on IMAP leaves the messages
/// marked `\Deleted` for the next session's close.
pub enum MailboxSession {
    Pop3(Pop3Session),
    Imap(ImapSession),
}

impl MailboxSession {
    /// The messages, except those already marked for deletion.
    pub async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        match self {
            Self::Pop3(s) => s.list().await,
            Self::Imap(s) => s.list().await,
        }
    }

    /// The whole message, lines ending in CRLF; [`MailboxError::Refused`] when it is gone.
    pub async fn fetch(&mut self, message: &Listed) -> Result<Vec<u8>, MailboxError> {
        match self {
            Self::Pop3(s) => s.retr(message.number).await,
            Self::Imap(s) => s.fetch(message.number).await,
        }
    }

    /// Marks a message for deletion.
    pub async fn delete(&mut self, message: &Listed) -> Result<(), MailboxError> {
        match self {
            Self::Pop3(s) => s.dele(message.number).await,
            Self::Imap(s) => s.delete(message.number).await,
        }
    }

    /// Ends the session; the messages marked are removed.
    pub async fn close(self) -> Result<(), MailboxError> {
        match self {
            Self::Pop3(s) => s.quit().await,
            Self::Imap(s) => s.close().await,
        }
    }
}

/// How a mailbox connection is secured.
#[derive(Clone)]
pub(super) enum Security {
    /// `pop3://`, `imap://`: not at all (warned about for another host).
    Plain,
    /// `pop3://…?tls=required`, `imap://…?tls=required`: STARTTLS (RFC 2595) before logging in;
    /// a server that does not offer it is refused before any credential is sent.
    StartTls(tokio_rustls::TlsConnector),
    /// `pop3s://`, `imaps://`: TLS from the first byte (RFC 8314).
    Implicit(tokio_rustls::TlsConnector),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "plain",
            Self::StartTls(_) => "STARTTLS",
            Self::Implicit(_) => "TLS",
        })
    }
}

impl Security {
    /// From the scheme (`implicit`: the `s` form) and the query (`tls=required`).
    pub fn from_url(url: &Url, implicit: bool) -> Result<Self, String> {
        let mut starttls = false;
        for (name, value) in url.query_pairs() {
            match (name.as_ref(), value.as_ref()) {
                ("tls", "required") if !implicit => starttls = true,
                ("tls", "required") => return Err(format!("{}:// is TLS already; drop ?tls=required", url.scheme())),
                ("tls", other) => {
                    return Err(format!(
                        "tls={other}: only tls=required (STARTTLS) is known; a mailbox password never goes out in the clear by chance"
                    ));
                }
                (other, _) => return Err(format!("unknown parameter '{other}'")),
            }
        }
        Ok(if implicit {
            Self::Implicit(tls_connector()?)
        } else if starttls {
            Self::StartTls(tls_connector()?)
        } else {
            Self::Plain
        })
    }
}

/// Where a mailbox is, and how to log in, read from its URL.
#[derive(Clone)]
pub(super) struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// Without the password.
impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Host, port (`default_port` without one) and the required user and password
    /// (percent-decoded, one line each) of `url`.
    pub fn from_url(url: &Url, default_port: u16) -> Result<Self, String> {
        let scheme = url.scheme();
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("needs a host, e.g. {scheme}://user:pass@mail.shop.example"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            crate::mail::smtp::percent_decode(s)
                .ok_or_else(|| "user or password is not valid percent-encoded UTF-8".to_owned())
        };
        let (user, password) = match url.password() {
            Some(password) if !url.username().is_empty() => (decode(url.username())?, decode(password)?),
            _ => return Err(format!("needs a user and a password ({scheme}://user:pass@host)")),
        };
        if [&user, &password].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err("user and password must be one line each".into());
        }
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            user,
            password,
        })
    }

    pub fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Connects, with TLS from the first byte for [`Security::Implicit`] (RFC 8314); the STARTTLS
    /// of [`Security::StartTls`] is the protocol's to ask for, then [`Server::start_tls`].
    pub async fn connect(&self, tls: &Security, timeout: Duration) -> Result<Box<dyn Stream>, MailboxError> {
        let target = self.target();
        let tcp = within(timeout, tokio::net::TcpStream::connect((self.host.as_str(), self.port)))
            .await?
            .map_err(|e| MailboxError::Connection(format!("connecting to {target}: {e}")))?;
        match tls {
            Security::Implicit(connector) => self.start_tls(connector, Box::new(tcp), timeout).await,
            Security::Plain | Security::StartTls(_) => Ok(Box::new(tcp)),
        }
    }

    /// The TLS handshake over `stream`, verifying the server's certificate for the host.
    pub async fn start_tls(
        &self,
        connector: &tokio_rustls::TlsConnector,
        stream: Box<dyn Stream>,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, MailboxError> {
        let target = self.target();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| MailboxError::Connection(format!("{target}: invalid TLS server name: {e}")))?;
        Ok(Box::new(
            within(timeout, connector.connect(name, stream))
                .await?
                .map_err(|e| MailboxError::Connection(format!("TLS with {target}: {e}")))?,
        ))
    }
}

/// A TLS client verifying the server against the platform's trust store.
pub(super) fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier().map_err(|e| format!("TLS setup: {e}"))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// What a session runs over: TCP, or TLS on top of it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(super) async fn within<T>(timeout: Duration, f: impl Future<Output = T>) -> Result<T, MailboxError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| MailboxError::Timeout(timeout))
}

/// A scripted server for the clients' unit tests.
#[cfg(test)]
pub(super) mod scripted {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    /// Accepts one connection on a free port, writes `greeting`, then answers each line the client
    /// sends (without its line end) with what `answer` returns, until the client hangs up or the
    /// answer says it was the last. Resolves to the lines received.
    pub async fn server(
        greeting: &'static str,
        answer: impl Fn(&str) -> (String, bool) + Send + 'static,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            socket.get_mut().write_all(greeting.as_bytes()).await.unwrap();
            let mut seen = Vec::new();
            loop {
                let mut line = String::new();
                if socket.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                let line = line.trim_end().to_owned();
                let (reply, last) = answer(&line);
                socket.get_mut().write_all(reply.as_bytes()).await.unwrap();
                seen.push(line);
                if last {
                    break;
                }
            }
            seen
        });
        (port, received)
    }
}
