//! A small POP3 client (RFC 1939: USER/PASS, UIDL, LIST, RETR, DELE, QUIT), plain or TLS from
//! the first byte (`pop3s://`, RFC 8314), for reading the bounce mailbox.
//!
//! Written here rather than taken from crates.io: the async POP3 crates there are unmaintained
//! (mailme targets tokio 0.3, last release 2020) or bring their own TLS stack (async-pop, last
//! release 2023, needs async-native-tls, i.e. OpenSSL, next to our rustls). What is needed is
//! five commands, one response format and byte-stuffing; tests/api/bounces.rs runs it against
//! a real Dovecot.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use url::Url;

use super::mailbox::{Listed, MailboxError, Security, Server, Stream, within};

/// Longest line we accept from the server; a message line longer than SMTP allows (998) is
/// already broken, this only bounds memory.
const MAX_LINE: u64 = 64 * 1024;

/// `pop3://user:pass@host[:110][?tls=required]` or `pop3s://user:pass@host[:995]`.
#[derive(Clone, Debug)]
pub struct Pop3Mailbox {
    server: Server,
    tls: Security,
}

impl Pop3Mailbox {
    pub fn from_url(url: &Url) -> Result<Self, String> {
        let implicit = match url.scheme() {
            "pop3" => false,
            "pop3s" => true,
            other => return Err(format!("unsupported scheme {other}://, use pop3:// or pop3s://")),
        };
        Ok(Self {
            server: Server::from_url(url, if implicit { 995 } else { 110 })?,
            tls: Security::from_url(url, implicit)?,
        })
    }

    /// `host:port`, for logs.
    pub fn target(&self) -> String {
        self.server.target()
    }

    pub(super) fn server(&self) -> &Server {
        &self.server
    }

    pub(super) fn tls(&self) -> &Security {
        &self.tls
    }

    /// Connects, reads the greeting and logs in (USER/PASS). Every exchange is bounded by
    /// `timeout`.
    pub async fn open(&self, timeout: Duration) -> Result<Pop3Session, MailboxError> {
        let stream = self.server.connect(&self.tls, timeout).await?;
        let mut session = Pop3Session {
            stream: BufReader::new(stream),
            timeout,
        };
        session.status("greeting").await?;
        if let Security::StartTls(connector) = &self.tls {
            MailboxError::tls_offered(session.command("STLS", "STLS").await, "STLS", "pop3s")?;
            // Whatever came before the handshake is dropped, not read as the TLS session's
            // (RFC 2595 section 3.1: a man in the middle could have put it there).
            let stream = session.stream.into_inner();
            session = Pop3Session {
                stream: BufReader::new(self.server.start_tls(connector, stream, timeout).await?),
                timeout,
            };
        }
        session.command("USER", &format!("USER {}", self.server.user)).await?;
        session
            .command("PASS", &format!("PASS {}", self.server.password))
            .await?;
        Ok(session)
    }
}

/// A logged-in session (the TRANSACTION state of RFC 1939). Deletions take effect at
/// [`Pop3Session::quit`]; a session dropped without QUIT deletes nothing (RFC 1939 section 6).
pub struct Pop3Session {
    stream: BufReader<Box<dyn Stream>>,
    timeout: Duration,
}

impl Pop3Session {
    /// Every message with its unique id (UIDL) and size (LIST). A server without UIDL (it is
    /// optional) gets ids made of number and size, good for one session.
    pub async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        let sizes = self.multiline("LIST", "LIST").await?;
        let uids = match self.multiline("UIDL", "UIDL").await {
            Ok(lines) => Some(lines),
            Err(MailboxError::Refused { .. }) => None,
            Err(e) => return Err(e),
        };
        let pairs = |lines: &[u8]| -> Vec<(u32, String)> {
            String::from_utf8_lossy(lines)
                .lines()
                .filter_map(|line| {
                    let (n, rest) = line.trim().split_once(' ')?;
                    Some((n.parse().ok()?, rest.trim().to_owned()))
                })
                .collect()
        };
        let uids: std::collections::HashMap<u32, String> =
            uids.as_deref().map(pairs).unwrap_or_default().into_iter().collect();
        Ok(pairs(&sizes)
            .into_iter()
            .map(|(number, size)| {
                let size = size.parse().unwrap_or(0);
                Listed {
                    number,
                    uid: uids.get(&number).cloned().unwrap_or_else(|| format!("{number}-{size}")),
                    size,
                }
            })
            .collect())
    }

    /// The whole message, byte-stuffing undone, lines ending in CRLF.
    pub async fn retr(&mut self, number: u32) -> Result<Vec<u8>, MailboxError> {
        self.multiline("RETR", &format!("RETR {number}")).await
    }

    /// Marks a message deleted; the server removes it at QUIT.
    pub async fn dele(&mut self, number: u32) -> Result<(), MailboxError> {
        self.command("DELE", &format!("DELE {number}")).await.map(drop)
    }

    /// Ends the session: the server deletes the messages marked (the UPDATE state).
    pub async fn quit(mut self) -> Result<(), MailboxError> {
        self.command("QUIT", "QUIT").await.map(drop)
    }

    /// Sends one command and reads its status line; `-ERR` is an error.
    async fn command(&mut self, name: &'static str, line: &str) -> Result<String, MailboxError> {
        let io = |e: std::io::Error| MailboxError::Connection(format!("{name}: {e}"));
        within(self.timeout, async {
            let stream = self.stream.get_mut();
            stream.write_all(format!("{line}\r\n").as_bytes()).await?;
            stream.flush().await
        })
        .await?
        .map_err(io)?;
        self.status(name).await
    }

    /// Reads a status line: `+OK text` → the text, `-ERR text` → [`MailboxError::Refused`].
    async fn status(&mut self, name: &'static str) -> Result<String, MailboxError> {
        let line = self.line(name).await?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end();
        if let Some(text) = line.strip_prefix("+OK") {
            Ok(text.trim().to_owned())
        } else if let Some(text) = line.strip_prefix("-ERR") {
            Err(MailboxError::Refused {
                command: name,
                reply: text.trim().to_owned(),
            })
        } else {
            Err(MailboxError::Connection(format!(
                "{name}: not a POP3 status line: {line:.100}"
            )))
        }
    }

    /// A command with a multi-line answer (RFC 1939 section 3): the lines up to the one that is
    /// a single `.`, with the leading `.` of byte-stuffed lines removed.
    async fn multiline(&mut self, name: &'static str, line: &str) -> Result<Vec<u8>, MailboxError> {
        self.command(name, line).await?;
        let mut body = Vec::new();
        loop {
            let line = self.line(name).await?;
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content == b"." {
                return Ok(body);
            }
            body.extend_from_slice(content.strip_prefix(b".").unwrap_or(content));
            body.extend_from_slice(b"\r\n");
        }
    }

    /// One line, with its line end; a closed connection or an endless line is an error.
    async fn line(&mut self, name: &'static str) -> Result<Vec<u8>, MailboxError> {
        let mut line = Vec::new();
        let read = within(
            self.timeout,
            (&mut self.stream).take(MAX_LINE).read_until(b'\n', &mut line),
        )
        .await?
        .map_err(|e| MailboxError::Connection(format!("{name}: {e}")))?;
        if read == 0 {
            return Err(MailboxError::Connection(format!(
                "{name}: the server closed the connection"
            )));
        }
        if !line.ends_with(b"\n") {
            return Err(MailboxError::Connection(format!(
                "{name}: a line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mailbox::scripted;
    use super::*;

    fn mailbox(url: &str) -> Result<Pop3Mailbox, String> {
        Pop3Mailbox::from_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn urls_name_host_port_credentials_and_tls() {
        let m = mailbox("pop3://bounces:s%40cret@127.0.0.1:1110").unwrap();
        assert_eq!(
            (m.target().as_str(), m.server.user.as_str(), m.server.password.as_str()),
            ("127.0.0.1:1110", "bounces", "s@cret")
        );
        assert!(!format!("{m:?}").contains("cret"), "no password in Debug: {m:?}");
        let plaintext_remote =
            |url: &str| super::super::mailbox::Mailbox::Pop3(mailbox(url).unwrap()).is_plaintext_remote();
        assert!(matches!(m.tls, Security::Plain) && !plaintext_remote("pop3://bounces:s%40cret@127.0.0.1:1110"));
        let m = mailbox("pop3s://u:p@mail.shop.example").unwrap();
        assert_eq!(m.server.port, 995);
        assert!(matches!(m.tls, Security::Implicit(_)) && !plaintext_remote("pop3s://u:p@mail.shop.example"));
        assert!(plaintext_remote("pop3://u:p@mail.shop.example"));
        let m = mailbox("pop3://u:p@mail.shop.example?tls=required").unwrap();
        assert_eq!(m.server.port, 110);
        assert!(
            matches!(m.tls, Security::StartTls(_)) && !plaintext_remote("pop3://u:p@mail.shop.example?tls=required")
        );
        for refused in [
            "pop3://u:p@mail.shop.example?tls=opportunistic",
            "pop3s://u:p@mail.shop.example?tls=required",
            "pop3://u:p@mail.shop.example?folder=x",
        ] {
            assert!(mailbox(refused).is_err(), "{refused}");
        }
        assert!(mailbox("imap://u:p@mail.shop.example").is_err());
        assert!(mailbox("pop3://mail.shop.example").is_err(), "credentials are required");
        assert!(
            mailbox("pop3://u:p%0d%0aDELE%201@host").is_err(),
            "no command injection"
        );
    }

    /// A scripted server: byte-stuffing, `-ERR`, and a server without UIDL.
    #[tokio::test]
    async fn a_session_against_a_scripted_server() {
        let (port, server) = scripted::server("+OK ready\r\n", |line| {
            let answer = match line {
                "USER u" | "PASS p" => "+OK\r\n",
                "LIST" => "+OK 1 messages\r\n1 42\r\n.\r\n",
                "UIDL" => "-ERR unsupported\r\n",
                "RETR 1" => "+OK 42 octets\r\nSubject: x\r\n\r\n..dot line\r\n.\r\n",
                "DELE 1" => "+OK\r\n",
                "DELE 2" => "-ERR no such message\r\n",
                "QUIT" => "+OK bye\r\n",
                _ => "-ERR what\r\n",
            };
            (answer.to_owned(), line == "QUIT")
        })
        .await;
        let m = mailbox(&format!("pop3://u:p@127.0.0.1:{port}")).unwrap();
        let mut session = m.open(Duration::from_secs(5)).await.unwrap();
        let listed = session.list().await.unwrap();
        assert_eq!(
            listed,
            vec![Listed {
                number: 1,
                uid: "1-42".into(),
                size: 42
            }]
        );
        assert_eq!(session.retr(1).await.unwrap(), b"Subject: x\r\n\r\n.dot line\r\n");
        session.dele(1).await.unwrap();
        assert!(matches!(
            session.dele(2).await,
            Err(MailboxError::Refused { command: "DELE", .. })
        ));
        session.quit().await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            ["USER u", "PASS p", "LIST", "UIDL", "RETR 1", "DELE 1", "DELE 2", "QUIT"]
        );
    }

    /// `?tls=required` against a server without STLS: the session ends before the password.
    #[tokio::test]
    async fn a_server_without_stls_gets_no_credentials() {
        let (port, server) =
            scripted::server("+OK ready\r\n", |_| ("-ERR unknown command\r\n".to_owned(), false)).await;
        let m = mailbox(&format!("pop3://u:secret@127.0.0.1:{port}?tls=required")).unwrap();
        let error = m.open(Duration::from_secs(5)).await.err().expect("refused").to_string();
        assert!(error.contains("does not offer STLS"), "{error}");
        assert_eq!(server.await.unwrap(), ["STLS"], "nothing after it, the password least");
    }
}
