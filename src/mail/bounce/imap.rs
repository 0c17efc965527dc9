//! A small IMAP client (RFC 9051 / RFC 3501: CAPABILITY, AUTHENTICATE PLAIN or LOGIN, SELECT,
//! UID FETCH, UID STORE, CLOSE, LOGOUT), plain or TLS from the first byte (`imaps://`,
//! RFC 8314), for reading the bounce mailbox from one folder.
//!
//! The server's responses (literals, untagged data, response codes) are parsed by `imap-proto`;
//! only the exchange is written here. The IMAP clients on crates.io that would do both bring a
//! second TLS stack or runtime (`imap` is blocking with native-tls; `async-imap` brings
//! async-std-era dependencies we would build twice), for six commands. tests/api/bounces.rs runs
//! this against a real Dovecot.
//!
//! Deleting is IMAP's two steps: a message is marked `\Deleted` as soon as it is recorded, and
//! `CLOSE` at the end removes the marked ones. A poll cut short leaves its marks, and the next
//! poll's `CLOSE` removes those messages: what was marked was recorded.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use imap_proto::{AttributeValue, Capability, Response, ResponseCode, Status};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

use super::mailbox::{Listed, MailboxError, Security, Server, Stream, within};

/// The largest response we read: a message up to the poller's limit, fetched whole, and some.
const MAX_RESPONSE_BYTES: usize = 11 * 1024 * 1024;

/// `imap://user:pass@host[:143][/Folder][?tls=required]` or
/// `imaps://user:pass@host[:993][/Folder]`; the folder is `INBOX` unless the path names one.
#[derive(Clone, Debug)]
pub struct ImapMailbox {
    server: Server,
    folder: String,
    tls: Security,
}

impl ImapMailbox {
    pub fn from_url(url: &Url) -> Result<Self, String> {
        let implicit = match url.scheme() {
            "imap" => false,
            "imaps" => true,
            other => return Err(format!("unsupported scheme {other}://, use imap:// or imaps://")),
        };
        let path = url.path().trim_start_matches('/');
        let folder = if path.is_empty() {
            "INBOX".to_owned()
        } else {
            crate::mail::smtp::percent_decode(path).ok_or("the folder is not valid percent-encoded UTF-8")?
        };
        // Other names would need IMAP's modified UTF-7 (RFC 3501 5.1.3); a bounce folder has
        // no need of them.
        if !folder.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || folder.contains('&') {
            return Err(format!(
                "the folder '{folder}' must be plain ASCII (letters, digits, punctuation other than &, spaces)"
            ));
        }
        Ok(Self {
            server: Server::from_url(url, if implicit { 993 } else { 143 })?,
            folder,
            tls: Security::from_url(url, implicit)?,
        })
    }

    /// `host:port/folder`, for logs.
    pub fn target(&self) -> String {
        format!("{}/{}", self.server.target(), self.folder)
    }

    pub(super) fn server(&self) -> &Server {
        &self.server
    }

    pub(super) fn tls(&self) -> &Security {
        &self.tls
    }

    /// Connects, reads the greeting, logs in and selects the folder. Every exchange is bounded
    /// by `timeout`.
    pub async fn open(&self, timeout: Duration) -> Result<ImapSession, MailboxError> {
        let stream = self.server.connect(&self.tls, timeout).await?;
        let mut session = ImapSession {
            stream,
            buffer: Vec::new(),
            next_tag: 1,
            timeout,
            uid_validity: 0,
            exists: 0,
        };
        let authenticated = match session.response("greeting").await? {
            Response::Data { status: Status::Ok, .. } => false,
            Response::Data {
                status: Status::PreAuth,
                ..
            } => true,
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(MailboxError::Refused {
                    command: "greeting",
                    reply: outcome.information.unwrap_or_default().into_owned(),
                });
            }
            other => return Err(unexpected("greeting", &other)),
        };
        if let Security::StartTls(connector) = &self.tls {
            if authenticated {
                // RFC 9051 6.2.1: no STARTTLS after PREAUTH; the session would stay in the clear.
                return Err(MailboxError::Connection(
                    "the server greeted with PREAUTH, so STARTTLS cannot follow; use imaps://".into(),
                ));
            }
            MailboxError::tls_offered(session.run("STARTTLS", "STARTTLS").await, "STARTTLS", "imaps")?;
            // Whatever came before the handshake is dropped, not read as the TLS session's
            // (RFC 9051 6.2.1: a man in the middle could have put it there).
            let ImapSession { stream, next_tag, .. } = session;
            session = ImapSession {
                stream: self.server.start_tls(connector, stream, timeout).await?,
                buffer: Vec::new(),
                next_tag,
                timeout,
                uid_validity: 0,
                exists: 0,
            };
        }
        if !authenticated {
            session.log_in(&self.server.user, &self.server.password).await?;
        }
        session.select(&self.folder).await?;
        Ok(session)
    }
}

/// A logged-in session with the folder selected.
pub struct ImapSession {
    stream: Box<dyn Stream>,
    /// Read and not yet parsed.
    buffer: Vec<u8>,
    next_tag: u32,
    timeout: Duration,
    /// The folder's UIDVALIDITY: UIDs are unique with it (RFC 9051 2.3.1.1).
    uid_validity: u32,
    /// Messages in the folder when selected.
    exists: u32,
}

impl ImapSession {
    /// `AUTHENTICATE PLAIN` (RFC 4616: any UTF-8 user and password) where offered, else `LOGIN`.
    async fn log_in(&mut self, user: &str, password: &str) -> Result<(), MailboxError> {
        let capabilities = self.run("CAPABILITY", "CAPABILITY").await?;
        let offers = |wanted: &str| {
            capabilities.iter().any(|r| match r {
                Response::Capabilities(list) => list.iter().any(|c| match c {
                    Capability::Auth(mechanism) => format!("AUTH={mechanism}").eq_ignore_ascii_case(wanted),
                    Capability::Atom(atom) => atom.eq_ignore_ascii_case(wanted),
                    Capability::Imap4rev1 => false,
                }),
                _ => false,
            })
        };
        if offers("AUTH=PLAIN") {
            let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            self.run_continued("AUTHENTICATE PLAIN", "AUTHENTICATE", &plain).await?;
            return Ok(());
        }
        if offers("LOGINDISABLED") {
            return Err(MailboxError::Refused {
                command: "LOGIN",
                reply: "the server allows no login on this connection (LOGINDISABLED); use imaps://".into(),
            });
        }
        let (user, password) = match (quoted(user), quoted(password)) {
            (Some(user), Some(password)) => (user, password),
            _ => {
                return Err(MailboxError::Connection(
                    "LOGIN: the server offers no AUTH=PLAIN, and LOGIN takes only ASCII user names and passwords"
                        .into(),
                ));
            }
        };
        self.run(&format!("LOGIN {user} {password}"), "LOGIN").await.map(drop)
    }

    async fn select(&mut self, folder: &str) -> Result<(), MailboxError> {
        let name = quoted(folder).ok_or_else(|| MailboxError::Connection(format!("folder '{folder}'")))?;
        for response in self.run(&format!("SELECT {name}"), "SELECT").await? {
            match response {
                Response::Data {
                    outcome:
                        imap_proto::Outcome {
                            code: Some(ResponseCode::UidValidity(v)),
                            ..
                        },
                    ..
                } => self.uid_validity = v,
                Response::MailboxData(imap_proto::MailboxDatum::Exists(n)) => self.exists = n,
                _ => {}
            }
        }
        Ok(())
    }

    /// Every message not marked `\Deleted`, by UID, with its size. Its unique id is the
    /// folder's UIDVALIDITY and the UID.
    pub async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        if self.exists == 0 {
            return Ok(Vec::new());
        }
        let responses = self.run("UID FETCH 1:* (UID RFC822.SIZE FLAGS)", "UID FETCH").await?;
        let mut listed = Vec::new();
        for response in responses {
            let Response::Fetch(_, attributes) = response else {
                continue;
            };
            let (mut uid, mut size, mut deleted) = (None, 0, false);
            for attribute in attributes {
                match attribute {
                    AttributeValue::Uid(u) => uid = Some(u),
                    AttributeValue::Rfc822Size(s) => size = u64::from(s),
                    AttributeValue::Flags(flags) => deleted = flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")),
                    _ => {}
                }
            }
            if let Some(uid) = uid.filter(|_| !deleted) {
                listed.push(Listed {
                    number: uid,
                    uid: format!("{}.{uid}", self.uid_validity),
                    size,
                });
            }
        }
        listed.sort_by_key(|m| m.number);
        listed.dedup_by_key(|m| m.number);
        Ok(listed)
    }

    /// The whole message by UID, without setting `\Seen` (`BODY.PEEK[]`); refused when it is
    /// gone.
    pub async fn fetch(&mut self, uid: u32) -> Result<Vec<u8>, MailboxError> {
        let responses = self.run(&format!("UID FETCH {uid} BODY.PEEK[]"), "UID FETCH").await?;
        for response in responses {
            let Response::Fetch(_, attributes) = response else {
                continue;
            };
            let ours = attributes.contains(&AttributeValue::Uid(uid));
            let body = attributes.into_iter().find_map(|a| match a {
                AttributeValue::BodySection {
                    section: None,
                    data: Some(data),
                    ..
                } => Some(data.into_owned()),
                _ => None,
            });
            if let (true, Some(body)) = (ours, body) {
                return Ok(body);
            }
        }
        Err(MailboxError::Refused {
            command: "UID FETCH",
            reply: format!("no message with UID {uid}"),
        })
    }

    /// Marks a message `\Deleted`; [`ImapSession::close`] removes it.
    pub async fn delete(&mut self, uid: u32) -> Result<(), MailboxError> {
        self.run(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"), "UID STORE")
            .await
            .map(drop)
    }

    /// `CLOSE` (removes the messages marked `\Deleted`, RFC 9051 6.4.2), then `LOGOUT`. Once
    /// CLOSE succeeded the work is done: a server that hangs up during LOGOUT is only logged.
    pub async fn close(mut self) -> Result<(), MailboxError> {
        self.run("CLOSE", "CLOSE").await?;
        if let Err(e) = self.run("LOGOUT", "LOGOUT").await {
            tracing::debug!(error = %e, "bounce mailbox: LOGOUT");
        }
        Ok(())
    }

    /// Sends a command and reads to its tagged answer: the untagged responses before it, or
    /// [`MailboxError::Refused`] for `NO` and `BAD`.
    async fn run(&mut self, command: &str, name: &'static str) -> Result<Vec<Response<'static>>, MailboxError> {
        let tag = self.send(command, name).await?;
        self.answer(&tag, name).await
    }

    /// A command the server continues with `+` (AUTHENTICATE), answered with `line`.
    async fn run_continued(
        &mut self,
        command: &str,
        name: &'static str,
        line: &str,
    ) -> Result<Vec<Response<'static>>, MailboxError> {
        let tag = self.send(command, name).await?;
        loop {
            match self.response(name).await? {
                Response::Continue(_) => break,
                done @ Response::Done { .. } => {
                    return Err(refused(name, done));
                }
                _ => {}
            }
        }
        self.write(name, line).await?;
        self.answer(&tag, name).await
    }

    async fn send(&mut self, command: &str, name: &'static str) -> Result<String, MailboxError> {
        let tag = format!("ob{}", self.next_tag);
        self.next_tag += 1;
        self.write(name, &format!("{tag} {command}")).await?;
        Ok(tag)
    }

    async fn write(&mut self, name: &'static str, line: &str) -> Result<(), MailboxError> {
        within(self.timeout, async {
            self.stream.write_all(format!("{line}\r\n").as_bytes()).await?;
            self.stream.flush().await
        })
        .await?
        .map_err(|e| MailboxError::Connection(format!("{name}: {e}")))
    }

    async fn answer(&mut self, tag: &str, name: &'static str) -> Result<Vec<Response<'static>>, MailboxError> {
        let mut untagged = Vec::new();
        loop {
            match self.response(name).await? {
                Response::Done {
                    tag: done,
                    status: Status::Ok,
                    ..
                } if done.0 == tag => return Ok(untagged),
                Response::Done { tag: done, .. } if done.0 != tag => {
                    return Err(MailboxError::Connection(format!(
                        "{name}: the server answered tag {} to {tag}",
                        done.0
                    )));
                }
                done @ Response::Done { .. } => return Err(refused(name, done)),
                Response::Continue(_) => {
                    return Err(MailboxError::Connection(format!(
                        "{name}: the server asked for more of a command that has no more"
                    )));
                }
                other => untagged.push(other),
            }
        }
    }

    /// The next response, read as far as it needs. An untagged response `imap-proto` does not
    /// know (an extension's) is skipped when it is one line without a literal.
    async fn response(&mut self, name: &'static str) -> Result<Response<'static>, MailboxError> {
        loop {
            match Response::parse(&self.buffer) {
                Ok((rest, response)) => {
                    let used = self.buffer.len() - rest.len();
                    let response = response.into_owned();
                    self.buffer.drain(..used);
                    return Ok(response);
                }
                Err(nom::Err::Incomplete(_)) => {}
                Err(_) => {
                    let line_end = memchr::memmem::find(&self.buffer, b"\r\n");
                    match line_end {
                        Some(end) if self.buffer.starts_with(b"* ") && !self.buffer[..end].ends_with(b"}") => {
                            tracing::debug!(
                                line = %String::from_utf8_lossy(&self.buffer[..end.min(200)]),
                                "bounce mailbox: an IMAP response not understood, skipped"
                            );
                            self.buffer.drain(..end + 2);
                            continue;
                        }
                        // An untagged response's line, or a literal, not yet complete.
                        None if self.buffer.starts_with(b"* ") || self.buffer.is_empty() => {}
                        _ => {
                            let end = line_end.unwrap_or(self.buffer.len()).min(200);
                            return Err(MailboxError::Connection(format!(
                                "{name}: not an IMAP response: {}",
                                String::from_utf8_lossy(&self.buffer[..end])
                            )));
                        }
                    }
                }
            }
            if self.buffer.len() > MAX_RESPONSE_BYTES {
                return Err(MailboxError::Connection(format!(
                    "{name}: a response longer than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = within(self.timeout, self.stream.read(&mut chunk))
                .await?
                .map_err(|e| MailboxError::Connection(format!("{name}: {e}")))?;
            if read == 0 {
                return Err(MailboxError::Connection(format!(
                    "{name}: the server closed the connection"
                )));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// A quoted string (RFC 9051 4.3): ASCII without CR and LF, `"` and `\` escaped; `None` for
/// anything else (which would need a literal).
fn quoted(s: &str) -> Option<String> {
    if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

fn refused(name: &'static str, done: Response<'_>) -> MailboxError {
    let reply = match done {
        Response::Done { status, outcome, .. } => format!(
            "{} {}",
            match status {
                Status::No => "NO",
                Status::Bad => "BAD",
                _ => "refused",
            },
            outcome.information.unwrap_or(Cow::Borrowed(""))
        ),
        other => format!("{other:?}"),
    };
    MailboxError::Refused {
        command: name,
        reply: reply.trim_end().to_owned(),
    }
}

fn unexpected(name: &'static str, response: &Response<'_>) -> MailboxError {
    let response: String = format!("{response:?}").chars().take(200).collect();
    MailboxError::Connection(format!("{name}: unexpected {response}"))
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::super::mailbox::scripted;
    use super::*;

    /// The commands of tagged lines, without their tags.
    fn commands(lines: Vec<String>) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split_once(' ').map_or(l.as_str(), |(_, c)| c).to_owned())
            .collect()
    }

    fn mailbox(url: &str) -> Result<ImapMailbox, String> {
        ImapMailbox::from_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn urls_name_host_port_folder_and_tls() {
        let m = mailbox("imap://bounces:s%40cret@127.0.0.1:1143").unwrap();
        assert_eq!(
            (m.target().as_str(), m.server.user.as_str(), m.server.password.as_str()),
            ("127.0.0.1:1143/INBOX", "bounces", "s@cret")
        );
        assert!(!format!("{m:?}").contains("cret"), "no password in Debug: {m:?}");
        assert!(matches!(m.tls, Security::Plain));
        let m = mailbox("imaps://u:p@mail.shop.example/Bounces%20DK").unwrap();
        assert_eq!((m.server.port, m.folder.as_str()), (993, "Bounces DK"));
        assert!(matches!(m.tls, Security::Implicit(_)));
        let m = mailbox("imap://u:p@mail.shop.example/Bounces?tls=required").unwrap();
        assert_eq!((m.server.port, m.folder.as_str()), (143, "Bounces"));
        assert!(matches!(m.tls, Security::StartTls(_)));
        assert!(mailbox("imap://u:p@host?tls=opportunistic").is_err());
        assert!(mailbox("imaps://u:p@host?tls=required").is_err());
        assert_eq!(mailbox("imap://u:p@mail.shop.example/").unwrap().server.port, 143);
        assert!(mailbox("imap://mail.shop.example").is_err(), "credentials are required");
        assert!(
            mailbox("imap://u:p@host/Retur%C3%A9").is_err(),
            "no modified UTF-7 folder names"
        );
        assert!(
            mailbox("imap://u:p@host/a%0d%0ab%20LOGOUT").is_err(),
            "no command injection"
        );
        assert!(mailbox("pop3://u:p@host").is_err());
    }

    #[test]
    fn quoted_strings_escape_and_refuse_what_needs_a_literal() {
        assert_eq!(quoted(r#"a "b" \c"#).as_deref(), Some(r#""a \"b\" \\c""#));
        assert_eq!(quoted("æøå"), None);
        assert_eq!(quoted("a\r\nb"), None);
    }

    /// A scripted server without AUTH=PLAIN (so LOGIN, with a quoted password), with a
    /// response imap-proto does not know, a literal, a message another client marked deleted,
    /// a refused STORE, and a LOGOUT it hangs up on.
    #[tokio::test]
    async fn a_session_against_a_scripted_server() {
        let (port, server) = scripted::server("* OK [CAPABILITY IMAP4rev1] ready\r\n", |line| {
            let (tag, command) = line.split_once(' ').unwrap();
            let answer = match command {
                "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 UIDPLUS\r\n{tag} OK done\r\n"),
                r#"LOGIN "u" "p\"w""# => format!("{tag} OK logged in\r\n"),
                r#"SELECT "INBOX""# => format!(
                    "* FLAGS (\\Deleted \\Seen)\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 77] UIDs\r\n\
                     * XSOMETHING-NEW (1 2 3)\r\n{tag} OK [READ-WRITE] selected\r\n"
                ),
                "UID FETCH 1:* (UID RFC822.SIZE FLAGS)" => format!(
                    "* 1 FETCH (UID 5 RFC822.SIZE 21 FLAGS (\\Seen))\r\n\
                     * 2 FETCH (UID 9 RFC822.SIZE 30 FLAGS (\\Deleted))\r\n{tag} OK fetched\r\n"
                ),
                "UID FETCH 5 BODY.PEEK[]" => {
                    format!("* 1 FETCH (UID 5 BODY[] {{20}}\r\nSubject: x\r\n\r\nbody\r\n)\r\n{tag} OK fetched\r\n")
                }
                "UID FETCH 6 BODY.PEEK[]" => format!("{tag} OK nothing\r\n"),
                "UID STORE 5 +FLAGS.SILENT (\\Deleted)" => format!("{tag} OK stored\r\n"),
                "UID STORE 6 +FLAGS.SILENT (\\Deleted)" => format!("{tag} NO [CANNOT] read-only\r\n"),
                "CLOSE" => format!("{tag} OK closed\r\n"),
                "LOGOUT" => "* BYE bye\r\n".to_owned(),
                _ => format!("{tag} BAD what\r\n"),
            };
            (answer, command == "LOGOUT")
        })
        .await;
        let m = mailbox(&format!("imap://u:p%22w@127.0.0.1:{port}")).unwrap();
        let mut session = m.open(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            session.list().await.unwrap(),
            vec![Listed {
                number: 5,
                uid: "77.5".into(),
                size: 21
            }],
            "UID 9 is marked deleted"
        );
        assert_eq!(session.fetch(5).await.unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        assert!(matches!(
            session.fetch(6).await,
            Err(MailboxError::Refused {
                command: "UID FETCH",
                ..
            })
        ));
        session.delete(5).await.unwrap();
        match session.delete(6).await {
            Err(MailboxError::Refused { command, reply }) => {
                assert_eq!((command, reply.as_str()), ("UID STORE", "NO [CANNOT] read-only"))
            }
            other => panic!("{other:?}"),
        }
        session.close().await.unwrap();
        assert_eq!(
            commands(server.await.unwrap()),
            [
                "CAPABILITY",
                r#"LOGIN "u" "p\"w""#,
                r#"SELECT "INBOX""#,
                "UID FETCH 1:* (UID RFC822.SIZE FLAGS)",
                "UID FETCH 5 BODY.PEEK[]",
                "UID FETCH 6 BODY.PEEK[]",
                "UID STORE 5 +FLAGS.SILENT (\\Deleted)",
                "UID STORE 6 +FLAGS.SILENT (\\Deleted)",
                "CLOSE",
                "LOGOUT"
            ]
        );
    }

    /// A session reading `server_output` (then end of stream) for a command.
    fn answer_to_noop(server_output: Vec<u8>) -> Result<Vec<Response<'static>>, MailboxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let mut session = ImapSession {
                stream: Box::new(client),
                buffer: Vec::new(),
                next_tag: 1,
                timeout: Duration::from_secs(5),
                uid_validity: 0,
                exists: 0,
            };
            tokio::spawn(async move {
                let _ = server.write_all(&server_output).await;
                // Hold the stream open until the command is read, then close it.
                let mut line = Vec::new();
                let _ = tokio::io::AsyncBufReadExt::read_until(&mut BufReader::new(server), b'\n', &mut line).await;
            });
            session.run("NOOP", "NOOP").await
        })
    }

    proptest::proptest! {
        /// Whatever a server sends, a command ends (answered, refused or failed): no panic, no
        /// endless loop, no waiting past the end of the stream.
        #[test]
        fn arbitrary_server_output_never_panics_or_hangs(
            start in proptest::sample::select(vec!["", "* ", "ob1 ", "* 1 FETCH (UID 5 BODY[] {", "ob1 OK [", "+ "]),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut output = start.as_bytes().to_vec();
            output.extend(bytes);
            let _ = answer_to_noop(output);
        }
    }

    #[test]
    fn a_tagged_answer_ends_the_command_and_a_truncated_literal_fails_it() {
        let answered = answer_to_noop(b"* 3 EXISTS\r\n* XUNKNOWN stuff\r\nob1 OK done\r\n".to_vec()).unwrap();
        assert_eq!(answered.len(), 1, "{answered:?}");
        let cut = answer_to_noop(b"* 1 FETCH (UID 5 BODY[] {100}\r\nshort".to_vec());
        assert!(
            matches!(&cut, Err(MailboxError::Connection(e)) if e.contains("closed")),
            "{cut:?}"
        );
        let garbage = answer_to_noop(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
        assert!(
            matches!(&garbage, Err(MailboxError::Connection(e)) if e.contains("not an IMAP response")),
            "{garbage:?}"
        );
    }

    /// `?tls=required` against a server that refuses STARTTLS: the session ends before LOGIN.
    #[tokio::test]
    async fn a_server_without_starttls_gets_no_credentials() {
        let (port, server) = scripted::server("* OK ready\r\n", |line| {
            let (tag, _) = line.split_once(' ').unwrap();
            (format!("{tag} BAD unknown command\r\n"), false)
        })
        .await;
        let m = mailbox(&format!("imap://u:secret@127.0.0.1:{port}?tls=required")).unwrap();
        let error = m.open(Duration::from_secs(5)).await.err().expect("refused").to_string();
        assert!(error.contains("does not offer STARTTLS"), "{error}");
        assert_eq!(
            commands(server.await.unwrap()),
            ["STARTTLS"],
            "nothing after it, the password least"
        );
    }
}
