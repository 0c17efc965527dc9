//! SMTP delivery: a small connection pool over lettre's `AsyncSmtpConnection`.
//!
//! Why not lettre's own pooled transport:
//! - it does not set `TCP_NODELAY`, and it writes the message body and the final `.` in two
//!   writes, so every message waits for the server's delayed ACK (40 ms on Linux): about 25
//!   messages a second per connection. Here the socket is ours and Nagle is off;
//! - its timeout covers connecting only, and a send cut off by an outer timeout goes back to its
//!   pool mid-transaction (the next MAIL FROM then gets "503 nested MAIL command"). Here a
//!   connection returns to the pool only after a clean send;
//! - errors while connecting, greeting, STARTTLS or AUTH are the server's or the configuration's
//!   problem, never the recipient's: they are temporary here, so they can never bounce or
//!   suppress an address.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use url::Url;

use super::SendError;

/// A pooled connection idle longer than this is closed rather than reused (servers drop idle
/// sessions after a few minutes, RFC 5321 4.5.3.2.7 suggests 5).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Messages per connection before it is closed and a fresh one opened.
const MAX_MESSAGES_PER_CONNECTION: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://`: no TLS.
    Plain,
    /// `smtp://…?tls=opportunistic` or `?tls=required`: STARTTLS (RFC 3207).
    StartTls { required: bool },
    /// `smtps://`: TLS from the first byte (RFC 8314).
    Implicit,
}

struct Pooled {
    conn: AsyncSmtpConnection,
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
    implicit_tls: Option<tokio_rustls::TlsConnector>,
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

/// A TLS stream lettre can speak SMTP over (implicit TLS).
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
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
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None if !url.username().is_empty() => {
                return Err("SMTP_URL: a user needs a password (user:pass@host)".into());
            }
            None => None,
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let implicit_tls = match security {
            Security::Implicit => {
                use rustls_platform_verifier::ConfigVerifierExt;
                let config = rustls::ClientConfig::with_platform_verifier().map_err(|e| format!("TLS setup: {e}"))?;
                Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
            }
            _ => None,
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
            implicit_tls,
        })
    }

    /// Delivers one message. At most `connections` sends run at once; each is bounded by the
    /// timeout as a whole.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SendError::Transient("SMTP pool closed".into()))?;
        let mut pooled = match self.take_idle() {
            Some(p) => p,
            None => match tokio::time::timeout(self.timeout, self.connect()).await {
                Ok(Ok(conn)) => Pooled {
                    conn,
                    idle_since: Instant::now(),
                    sent: 0,
                },
                Ok(Err(e)) => return Err(SendError::Transient(e)),
                Err(_) => {
                    return Err(SendError::Transient(format!(
                        "connecting to {}:{} took longer than {} s",
                        self.host,
                        self.port,
                        self.timeout.as_secs()
                    )));
                }
            },
        };
        match tokio::time::timeout(self.timeout, pooled.conn.send(envelope, raw)).await {
            Ok(Ok(_)) => {
                pooled.sent += 1;
                self.put_idle(pooled);
                Ok(())
            }
            // lettre has already sent QUIT and closed this connection.
            Ok(Err(e)) => Err(super::classify_smtp_error(&e)),
            // The connection is dropped mid-transaction, never reused.
            Err(_) => Err(SendError::Transient(format!(
                "no answer from the SMTP server within {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    fn take_idle(&self) -> Option<Pooled> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(p) = idle.pop() {
            if !p.conn.has_broken() && p.idle_since.elapsed() < MAX_IDLE {
                return Some(p);
            }
        }
        None
    }

    fn put_idle(&self, mut pooled: Pooled) {
        if pooled.sent >= MAX_MESSAGES_PER_CONNECTION || pooled.conn.has_broken() {
            return;
        }
        pooled.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(pooled);
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let target = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("{target}: {e}"))?;
        let mut conn = match &self.implicit_tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("{target}: invalid TLS server name: {e}"))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {target}: {e}"))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsStream(tls)), &self.hello).await
            }
            None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(|e| format!("greeting from {target}: {e}"))?;
        if let Security::StartTls { required } = self.security {
            if conn.server_info().supports_feature(Extension::StartTls) {
                let params = TlsParameters::new(self.host.clone()).map_err(|e| format!("TLS setup: {e}"))?;
                conn.starttls(params, &self.hello)
                    .await
                    .map_err(|e| format!("STARTTLS with {target}: {e}"))?;
            } else if required {
                return Err(format!(
                    "{target} does not offer STARTTLS, which SMTP_URL requires (tls=required)"
                ));
            }
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| format!("AUTH with {target}: {e}"))?;
        }
        Ok(conn)
    }
}

fn percent_decode(s: &str) -> Option<String> {
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
}
