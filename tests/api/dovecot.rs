//! A real POP3 and IMAP server for the bounce tests: Dovecot (Debian's `dovecot-pop3d` and
//! `dovecot-imapd`, installed by scripts/setup-test-deps), run as a private instance with its
//! own configuration in a temporary directory, on free ports (plain and TLS with the test
//! certificate, for each protocol), with one passwd-file user whose maildir (its INBOX, and
//! folders in Maildir++ layout) the tests write messages into. Stopped (SIGTERM) when dropped.
//!
//! Without Dovecot the tests skip with a note, unless `CI=true` or `OPTBRIDGE_REQUIRE_DOVECOT=1`,
//! where its absence fails them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DOVECOT: &str = "/usr/sbin/dovecot";
pub const USER: &str = "bounces";
pub const PASSWORD: &str = "s3cret pass";

pub struct Dovecot {
    dir: PathBuf,
    child: Child,
    port: u16,
    tls_port: u16,
    imap_port: u16,
    imaps_port: u16,
    /// Mail processes' owner when the tests run as root (Dovecot refuses uid 0 for mail).
    mail_owner: Option<u32>,
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var("OPTBRIDGE_REQUIRE_DOVECOT").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Dovecot {
    /// Starts Dovecot; `None` (with a note) when it is not installed and not required.
    pub fn start() -> Option<Self> {
        if !Path::new(DOVECOT).exists()
            || !Path::new("/usr/lib/dovecot/pop3").exists()
            || !Path::new("/usr/lib/dovecot/imap").exists()
        {
            assert!(
                !required(),
                "the bounce tests need Dovecot (CI=true or OPTBRIDGE_REQUIRE_DOVECOT=1): run scripts/setup-test-deps"
            );
            eprintln!("note: skipping a bounce mailbox test, Dovecot is not installed (scripts/setup-test-deps)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("optbridge-dovecot-{}", uuid::Uuid::now_v7().simple()));
        let maildir = dir.join("mail").join(USER).join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        std::fs::create_dir_all(dir.join("run")).expect("base dir");
        std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("passwd file");
        let root = id("-u") == "0";
        // As root: logins as dovenull, internal processes as dovecot, mail as nobody (the
        // package creates the first two). Otherwise everything runs as the current user.
        let (login_user, internal_user, internal_group, uid, gid, mail_owner) = if root {
            (
                "dovenull".to_owned(),
                "dovecot".to_owned(),
                "dovecot".to_owned(),
                65534,
                65534,
                Some(65534),
            )
        } else {
            let (user, group) = (id("-un"), id("-gn"));
            let (uid, gid) = (id("-u").parse().unwrap(), id("-g").parse().unwrap());
            (user.clone(), user, group, uid, gid, None)
        };
        let (port, tls_port, imap_port, imaps_port) = (free_port(), free_port(), free_port(), free_port());
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        let d = dir.display();
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             protocols = pop3 imap\n\
             listen = 127.0.0.1\n\
             ssl = yes\n\
             ssl_cert = <{fixtures}/localhost.pem\n\
             ssl_key = <{fixtures}/localhost.key\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             default_login_user = {login_user}\n\
             default_internal_user = {internal_user}\n\
             default_internal_group = {internal_group}\n\
             first_valid_uid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/mail/%u\n}}\n\
             mail_location = maildir:{d}/mail/%u/Maildir\n\
             pop3_uidl_format = %g\n\
             service pop3-login {{\n  chroot =\n  inet_listener pop3 {{\n    port = {port}\n  }}\n  inet_listener pop3s {{\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), config).expect("dovecot.conf");
        let server = |child| Self {
            dir: dir.clone(),
            child,
            port,
            tls_port,
            imap_port,
            imaps_port,
            mail_owner,
        };
        let child = Command::new(DOVECOT)
            .args(["-F", "-c"])
            .arg(dir.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let server = server(child);
        server.chown_mail();
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in [self.port, self.tls_port, self.imap_port, self.imaps_port] {
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "dovecot did not listen on {port}: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Dovecot's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// `pop3://…` with the test user's credentials.
    pub fn url(&self) -> String {
        format!("pop3://{USER}:{}@127.0.0.1:{}", PASSWORD.replace(' ', "%20"), self.port)
    }

    /// `pop3s://…` to the name the test certificate is for.
    pub fn tls_url(&self) -> String {
        format!(
            "pop3s://{USER}:{}@localhost:{}",
            PASSWORD.replace(' ', "%20"),
            self.tls_port
        )
    }

    /// `imap://…` with the test user's credentials, reading `folder` (`None`: INBOX).
    pub fn imap_url(&self, folder: Option<&str>) -> String {
        format!(
            "imap://{USER}:{}@127.0.0.1:{}/{}",
            PASSWORD.replace(' ', "%20"),
            self.imap_port,
            folder.unwrap_or_default().replace(' ', "%20")
        )
    }

    /// `imaps://…` to the name the test certificate is for, reading the INBOX.
    pub fn imaps_url(&self) -> String {
        format!(
            "imaps://{USER}:{}@localhost:{}",
            PASSWORD.replace(' ', "%20"),
            self.imaps_port
        )
    }

    /// `pop3://…?tls=required` (`imap: false`) or `imap://…?tls=required` to the name the test
    /// certificate is for: STARTTLS on the plain port.
    pub fn starttls_url(&self, imap: bool) -> String {
        let (scheme, port) = if imap {
            ("imap", self.imap_port)
        } else {
            ("pop3", self.port)
        };
        format!(
            "{scheme}://{USER}:{}@localhost:{port}?tls=required",
            PASSWORD.replace(' ', "%20")
        )
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("mail").join(USER).join("Maildir")
    }

    /// The Maildir++ directory of `folder` (`None`: INBOX), made if missing.
    fn folder(&self, folder: Option<&str>) -> PathBuf {
        let dir = match folder {
            None => self.maildir(),
            Some(name) => self.maildir().join(format!(".{name}")),
        };
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir folder");
        }
        dir
    }

    fn chown_mail(&self) {
        if let Some(owner) = self.mail_owner {
            let status = Command::new("chown")
                .args(["-R", &format!("{owner}:{owner}")])
                .arg(self.dir.join("mail"))
                .status()
                .expect("chown");
            assert!(status.success());
        }
    }

    /// Delivers a message into the INBOX as an MTA would (tmp/, then renamed into new/).
    pub fn deliver(&self, raw: &[u8]) {
        self.deliver_to(None, raw);
    }

    /// Delivers a message into `folder` (`None`: INBOX).
    pub fn deliver_to(&self, folder: Option<&str>, raw: &[u8]) {
        self.deliver_with_flags(folder, raw, None);
    }

    /// Delivers a message into `folder` with Maildir flags already set (`T`: marked deleted by
    /// another client), as if a client had seen it: into cur/.
    pub fn deliver_with_flags(&self, folder: Option<&str>, raw: &[u8], flags: Option<&str>) {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}.M{}P{}.optbridge-test",
            chrono::Utc::now().timestamp(),
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let dir = self.folder(folder);
        let tmp = dir.join("tmp").join(&name);
        std::fs::write(&tmp, raw).expect("write message");
        let delivered = match flags {
            None => dir.join("new").join(&name),
            Some(flags) => dir.join("cur").join(format!("{name}:2,{flags}")),
        };
        std::fs::rename(&tmp, delivered).expect("deliver message");
        self.chown_mail();
    }

    /// The messages in the INBOX (new and seen), in no particular order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.messages_in(None).into_iter().map(|(_, raw)| raw).collect()
    }

    /// The messages in `folder` (`None`: INBOX) with their Maildir flags (`S` seen, `T` marked
    /// deleted, …; empty for a message still in new/), in no particular order.
    pub fn messages_in(&self, folder: Option<&str>) -> Vec<(String, Vec<u8>)> {
        let dir = self.folder(folder);
        ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(dir.join(sub)).expect("maildir").flatten())
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let flags = name.split_once(":2,").map(|(_, f)| f.to_owned()).unwrap_or_default();
                (flags, std::fs::read(entry.path()).expect("read message"))
            })
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
