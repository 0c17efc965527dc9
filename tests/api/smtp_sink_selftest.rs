//! The SMTP sink against two clients, lettre's SMTP transport (an independent implementation) and
//! the product's own (`optbridge::mail::smtp`), and against a raw client for the protocol corners
//! neither reaches (pipelined partial rejections, bad sequences).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lettre::message::MultiPart;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::mail_parse::ParsedMail;
use crate::smtp_sink::{Fault, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

/// ASCII, so lettre sends it as 7bit and the dotted lines really go through dot-stuffing.
const TEXT: &str = "Hello!\n\nWould you like our offers by SMS too?\n.Reply YES to sign up.\n..or two dots\n";

fn transport(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(sink.addr().ip().to_string())
        .port(sink.addr().port())
        .build()
}

fn guest(n: usize) -> String {
    format!("guest{n}@example.com")
}

fn subject(n: usize) -> String {
    format!("Invitation {n} – få vores tilbud på SMS")
}

fn message_id(n: usize) -> String {
    format!("<invitation-{n}@shop.example>")
}

fn html(n: usize) -> String {
    format!("<p>Invitation {n}: tilmeld dig på SMS – æøå</p>")
}

fn invitation(to: &str, n: usize) -> Message {
    Message::builder()
        .from("Shop <news@shop.example>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject(n))
        .message_id(Some(message_id(n)))
        .multipart(MultiPart::alternative_plain_html(TEXT.to_owned(), html(n)))
        .unwrap()
}

async fn send(mailer: &AsyncSmtpTransport<Tokio1Executor>, to: &str) -> Result<(), SmtpError> {
    mailer.send(invitation(to, 0)).await.map(drop)
}

#[tokio::test]
async fn fifty_concurrent_messages_over_the_pool_arrive_intact() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);

    let sends = (0..50).map(|n| {
        let mailer = &mailer;
        async move { mailer.send(invitation(&guest(n), n)).await }
    });
    for result in join_all(sends).await {
        result.expect("the sink accepts every message");
    }

    let messages = sink.wait_for_messages(50, WAIT).await;
    assert_eq!(messages.len(), 50);
    let mut seen = HashSet::new();
    for mail in &messages {
        assert_eq!(mail.mail_from, "news@shop.example");
        let [to] = mail.rcpt_to.as_slice() else {
            panic!("one recipient per message, got {:?}", mail.rcpt_to)
        };
        let n: usize = to
            .strip_prefix("guest")
            .and_then(|rest| rest.strip_suffix("@example.com"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected recipient {to}"));
        assert!(seen.insert(n), "{to} received twice");
        assert!((1..=sink.connections()).contains(&mail.connection));

        let raw = String::from_utf8(mail.data.clone()).expect("lettre sends UTF-8");
        assert!(!raw.replace("\r\n", "").contains('\n'), "every line ends in CRLF");
        assert!(raw.contains("\r\n.Reply YES") && raw.contains("\r\n..or two dots"));

        let parsed = ParsedMail::parse(&mail.data);
        assert_eq!(parsed.content_type, "multipart/alternative");
        assert_eq!(parsed.header("subject"), Some(subject(n).as_str()));
        assert_eq!(parsed.header("FROM"), Some("Shop <news@shop.example>"));
        assert_eq!(parsed.header("To"), Some(to.as_str()));
        assert_eq!(parsed.header("MIME-Version"), Some("1.0"));
        assert_eq!(parsed.header("Message-ID"), Some(message_id(n).as_str()));
        assert!(parsed.header("Date").is_some());
        assert_eq!(
            parsed.text.as_deref().map(|t| t.replace("\r\n", "\n")),
            Some(TEXT.to_owned())
        );
        assert_eq!(parsed.html.as_deref().map(str::trim_end), Some(html(n).as_str()));
    }
}

/// The product's own pool (`optbridge::mail::smtp::SmtpPool`) keeps one connection for
/// consecutive sends, and a 4xx answer closes that connection without losing the next message.
#[tokio::test]
async fn product_pool_reuses_connections() {
    let sink = SmtpSink::start().await;
    let url = url::Url::parse(&sink.url()).unwrap();
    let pool = optbridge::mail::smtp::SmtpPool::from_url(&url, 4, Duration::from_secs(5), None)
        .expect("the sink URL is valid");

    for n in 0..6 {
        let message = invitation(&guest(n), n);
        pool.send(message.envelope(), &message.formatted()).await.unwrap();
    }
    let messages = sink.wait_for_messages(6, WAIT).await;
    let recipients: Vec<_> = messages.iter().map(|m| m.rcpt_to.concat()).collect();
    assert_eq!(recipients, (0..6).map(guest).collect::<Vec<_>>());
    assert_eq!(sink.connections(), 1, "sequential sends share one connection");

    sink.add_fault(&guest(6), Fault::RejectRcpt { code: 451, times: 1 });
    let message = invitation(&guest(6), 6);
    let err = pool.send(message.envelope(), &message.formatted()).await.unwrap_err();
    assert!(matches!(err, optbridge::mail::SendError::Transient(_)), "{err:?}");
    pool.send(message.envelope(), &message.formatted()).await.unwrap();
    assert_eq!(sink.wait_for_messages(7, WAIT).await.len(), 7);
    assert_eq!(
        sink.connections(),
        1,
        "a refused recipient is followed by RSET, not a new connection"
    );

    // A refusal at the end of data ends that transaction only.
    sink.add_fault(&guest(7), Fault::RejectData { code: 550, times: 1 });
    let message = invitation(&guest(7), 7);
    let err = pool.send(message.envelope(), &message.formatted()).await.unwrap_err();
    assert!(
        matches!(&err, optbridge::mail::SendError::Permanent { code: Some(550), hard_bounce: false, reason }
            if reason.starts_with("end of data: 550 5.7.1")),
        "{err:?}"
    );
    let message = invitation(&guest(8), 8);
    pool.send(message.envelope(), &message.formatted()).await.unwrap();
    assert_eq!(sink.wait_for_messages(8, WAIT).await.len(), 8);
    assert_eq!(sink.connections(), 1);

    // 421 to RCPT, then the server hangs up: the error is the 421, and the next send reconnects.
    sink.add_fault(&guest(9), Fault::RejectRcpt { code: 421, times: 1 });
    let message = invitation(&guest(9), 9);
    let err = pool.send(message.envelope(), &message.formatted()).await.unwrap_err();
    assert!(
        matches!(&err, optbridge::mail::SendError::Transient(e) if e.starts_with("RCPT TO: 421")),
        "{err:?}"
    );
    pool.send(message.envelope(), &message.formatted()).await.unwrap();
    assert_eq!(sink.wait_for_messages(9, WAIT).await.len(), 9);
    assert_eq!(sink.connections(), 2);
}

/// AUTH PLAIN with the credentials from the URL (percent-decoded); a wrong password is a
/// temporary failure naming AUTH, never a bounce.
#[tokio::test]
async fn product_pool_authenticates() {
    let sink = SmtpSink::start().await;
    sink.require_auth("shop@relay", "s3cret/pw");
    let addr = sink.addr();
    let good = url::Url::parse(&format!("smtp://shop%40relay:s3cret%2Fpw@{addr}")).unwrap();
    let pool = optbridge::mail::smtp::SmtpPool::from_url(&good, 2, Duration::from_secs(5), None).expect("valid URL");
    let message = invitation(&guest(0), 0);
    pool.send(message.envelope(), &message.formatted()).await.unwrap();
    assert_eq!(sink.wait_for_messages(1, WAIT).await.len(), 1);

    let wrong = url::Url::parse(&format!("smtp://shop%40relay:nope@{addr}")).unwrap();
    let pool = optbridge::mail::smtp::SmtpPool::from_url(&wrong, 2, Duration::from_secs(5), None).expect("valid URL");
    let err = pool.send(message.envelope(), &message.formatted()).await.unwrap_err();
    assert!(
        matches!(&err, optbridge::mail::SendError::Transient(e) if e.contains("AUTH") && e.contains("535")),
        "{err:?}"
    );
    let unauthenticated = url::Url::parse(&sink.url()).unwrap();
    let pool = optbridge::mail::smtp::SmtpPool::from_url(&unauthenticated, 2, Duration::from_secs(5), None)
        .expect("valid URL");
    let err = pool.send(message.envelope(), &message.formatted()).await.unwrap_err();
    // The relay's configuration, not the recipient: retried later, never a bounce.
    assert!(
        matches!(&err, optbridge::mail::SendError::Transient(e) if e.contains("530")),
        "{err:?}"
    );
    assert_eq!(sink.messages().len(), 1);
}

/// MAIL, RCPT and DATA go out in one write when the server offers PIPELINING (RFC 2920), and
/// one at a time when it does not.
#[tokio::test]
async fn product_pool_pipelines_only_when_offered() {
    for offered in [true, false] {
        let sink = SmtpSink::start().await;
        sink.offer_pipelining(offered);
        let url = url::Url::parse(&sink.url()).unwrap();
        let pool = optbridge::mail::smtp::SmtpPool::from_url(&url, 1, Duration::from_secs(5), None).expect("valid URL");
        for n in 0..3 {
            let message = invitation(&guest(n), n);
            pool.send(message.envelope(), &message.formatted()).await.unwrap();
        }
        assert_eq!(sink.wait_for_messages(3, WAIT).await.len(), 3);
        if offered {
            // MAIL and RCPT each arrive with the rest of the group behind them.
            assert!(sink.pipelined_commands() >= 6, "{}", sink.pipelined_commands());
        } else {
            assert_eq!(sink.pipelined_commands(), 0, "never pipelines uninvited");
        }
    }
}

type Outcomes = Vec<(usize, Result<(), optbridge::mail::SendError>)>;

/// Sends messages `ns` to `guest(n)` as one series of the product's pool; returns each send's
/// outcomes as they became known, then `finish`'s.
async fn series(
    pool: &optbridge::mail::smtp::SmtpPool,
    ns: &[usize],
) -> (Vec<Outcomes>, Option<(usize, Result<(), optbridge::mail::SendError>)>) {
    let mut series = pool.series();
    let mut steps = Vec::new();
    for &n in ns {
        let message = invitation(&guest(n), n);
        steps.push(series.send(n, message.envelope(), message.formatted()).await);
    }
    (steps, series.finish().await)
}

fn pool_for(sink: &SmtpSink) -> optbridge::mail::smtp::SmtpPool {
    let url = url::Url::parse(&sink.url()).unwrap();
    optbridge::mail::smtp::SmtpPool::from_url(&url, 1, Duration::from_secs(5), None).expect("valid URL")
}

/// In a series, a message's content goes out in the same write as the next message's MAIL, RCPT
/// and DATA, so its outcome is known one send later; with no PIPELINING on offer, one command
/// at a time.
#[tokio::test]
async fn a_series_sends_each_message_with_the_next_ones_commands() {
    for offered in [true, false] {
        let sink = SmtpSink::start().await;
        sink.offer_pipelining(offered);
        let (steps, last) = series(&pool_for(&sink), &[0, 1, 2]).await;

        let known: Vec<Vec<usize>> = steps.iter().map(|s| s.iter().map(|(n, _)| *n).collect()).collect();
        assert_eq!(
            known,
            [vec![], vec![0], vec![1]],
            "each outcome arrives with the next send"
        );
        assert!(steps.iter().flatten().all(|(_, r)| r.is_ok()), "{steps:?}");
        assert!(matches!(last, Some((2, Ok(())))), "{last:?}");

        let recipients: Vec<_> = sink.messages().iter().map(|m| m.rcpt_to.concat()).collect();
        assert_eq!(recipients, [guest(0), guest(1), guest(2)]);
        assert_eq!(sink.connections(), 1);
        if offered {
            assert_eq!(
                sink.commands_behind_content(),
                2,
                "messages 0 and 1 carried the next one's commands"
            );
        } else {
            assert_eq!(sink.commands_behind_content(), 0, "never pipelines uninvited");
        }
    }
}

/// A refusal in a series touches only its own message: a bad recipient bounces while the message
/// before it is delivered, a 451 after the content is temporary, and the session goes on.
#[tokio::test]
async fn a_refusal_in_a_series_touches_only_its_own_message() {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        &guest(1),
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    sink.add_fault(&guest(2), Fault::RejectData { code: 451, times: 1 });
    let (steps, last) = series(&pool_for(&sink), &[0, 1, 2, 3]).await;

    let mut outcomes: Vec<_> = steps.into_iter().flatten().chain(last).collect();
    outcomes.sort_by_key(|(n, _)| *n);
    let described: Vec<_> = outcomes
        .iter()
        .map(|(n, r)| match r {
            Ok(()) => format!("{n} sent"),
            Err(optbridge::mail::SendError::Transient(_)) => format!("{n} later"),
            Err(optbridge::mail::SendError::Permanent { hard_bounce: true, .. }) => format!("{n} bounced"),
            Err(e) => format!("{n} {e}"),
        })
        .collect();
    assert_eq!(described, ["0 sent", "1 bounced", "2 later", "3 sent"]);
    let recipients: Vec<_> = sink.messages().iter().map(|m| m.rcpt_to.concat()).collect();
    assert_eq!(recipients, [guest(0), guest(3)]);
    assert_eq!(
        sink.connections(),
        1,
        "refusals are followed by RSET, not a new connection"
    );
}

/// A connection lost in a series: the message being opened is temporary, and the series goes on
/// over a new connection. The message before it was accepted by the server, but the reset
/// connection may swallow that answer: then it is temporary too, and its retry is a duplicate
/// within the bound of messages in flight. Nothing is reported sent that was not.
#[tokio::test]
async fn a_connection_lost_in_a_series_is_temporary_for_the_messages_in_flight() {
    let sink = SmtpSink::start().await;
    sink.add_fault(&guest(1), Fault::DropConnection { times: 1 });
    let (steps, last) = series(&pool_for(&sink), &[0, 1, 2]).await;

    let mut outcomes: Vec<_> = steps.into_iter().flatten().chain(last).collect();
    outcomes.sort_by_key(|(n, _)| *n);
    use optbridge::mail::SendError::Transient;
    assert!(matches!(outcomes[0], (0, Ok(()) | Err(Transient(_)))), "{outcomes:?}");
    assert!(matches!(outcomes[1], (1, Err(Transient(_)))), "{outcomes:?}");
    assert!(matches!(outcomes[2], (2, Ok(()))), "{outcomes:?}");
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    let recipients: Vec<_> = sink.messages().iter().map(|m| m.rcpt_to.concat()).collect();
    assert_eq!(recipients, [guest(0), guest(2)]);
    assert_eq!(sink.connections(), 2);
}

#[tokio::test]
async fn rcpt_451_is_transient_until_the_fault_is_used_up() {
    let sink = SmtpSink::start().await;
    sink.add_fault("Greylisted@Example.com", Fault::RejectRcpt { code: 451, times: 2 });
    let mailer = transport(&sink);

    for attempt in 1..=2 {
        let err = send(&mailer, "greylisted@example.com").await.unwrap_err();
        assert!(err.is_transient(), "attempt {attempt}: {err}");
        assert!(err.to_string().contains("4.7.1"), "{err}");
        assert!(sink.messages().is_empty());
    }
    send(&mailer, "greylisted@example.com").await.unwrap();

    assert_eq!(sink.attempts("greylisted@example.com"), 3);
    assert_eq!(sink.messages()[0].rcpt_to, ["greylisted@example.com"]);
}

#[tokio::test]
async fn rcpt_550_is_permanent_and_nothing_is_stored() {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "nobody@example.com",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let mailer = transport(&sink);

    for _ in 0..3 {
        let err = send(&mailer, "nobody@example.com").await.unwrap_err();
        assert!(err.is_permanent(), "{err}");
        assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("550"));
        assert!(err.to_string().contains("5.1.1"), "{err}");
    }

    assert_eq!(sink.attempts("nobody@example.com"), 3);
    assert!(sink.messages().is_empty());
    send(&mailer, "somebody@example.com").await.unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn rcpt_421_is_transient_and_closes_the_connection() {
    let sink = SmtpSink::start().await;
    sink.add_fault("busy@example.com", Fault::RejectRcpt { code: 421, times: 1 });
    let mailer = transport(&sink);

    let err = send(&mailer, "busy@example.com").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    send(&mailer, "busy@example.com").await.unwrap();

    assert_eq!(sink.connections(), 2);
    assert_eq!(sink.messages()[0].connection, 2);
}

#[tokio::test]
async fn data_552_rejects_the_message_once() {
    let sink = SmtpSink::start().await;
    sink.add_fault("full@example.com", Fault::RejectData { code: 552, times: 1 });
    let mailer = transport(&sink);

    let err = send(&mailer, "full@example.com").await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("552"));
    assert!(sink.messages().is_empty());

    send(&mailer, "full@example.com").await.unwrap();
    assert_eq!(sink.attempts("full@example.com"), 2);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_fails_the_send_and_the_next_one_succeeds() {
    let sink = SmtpSink::start().await;
    sink.add_fault("flaky@example.com", Fault::DropConnection { times: 1 });
    let mailer = transport(&sink);

    let err = send(&mailer, "flaky@example.com").await.unwrap_err();
    assert!(!err.is_transient() && !err.is_permanent(), "no SMTP reply: {err}");
    assert!(sink.messages().is_empty());

    send(&mailer, "flaky@example.com").await.unwrap();
    assert_eq!(sink.attempts("flaky@example.com"), 2);
    assert_eq!(sink.connections(), 2);
    assert_eq!(sink.messages()[0].connection, 2);
}

#[tokio::test]
async fn a_stall_outlasts_a_client_deadline_while_other_connections_are_served() {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "slow@example.com",
        Fault::Stall {
            duration: Duration::from_secs(2),
            times: 1,
        },
    );

    // lettre 0.11's own `timeout` bounds only the TCP connect, so the deadline is the caller's.
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(500), send(&transport(&sink), "slow@example.com")).await;
    assert!(outcome.is_err(), "the send should time out: {outcome:?}");

    // A fresh transport: lettre's pool would hand out the cancelled connection mid-transaction.
    send(&transport(&sink), "slow@example.com").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the next send waited for the stalled connection"
    );
    assert_eq!(sink.attempts("slow@example.com"), 2);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].connection, 2);
}

#[tokio::test]
async fn after_a_stall_the_same_connection_carries_on() {
    let sink = SmtpSink::start().await;
    let stall = Duration::from_secs(1);
    sink.add_fault(
        "slow@example.com",
        Fault::Stall {
            duration: stall,
            times: 1,
        },
    );
    let mut client = RawClient::connect(&sink).await;
    assert_code(&client.command("EHLO client.test").await, "250");
    assert_code(&client.command("MAIL FROM:<shop@example.com>").await, "250 ");

    let started = Instant::now();
    assert_code(&client.command("RCPT TO:<slow@example.com>").await, "250 ");
    assert!(started.elapsed() >= stall, "answered after {:?}", started.elapsed());
    assert_code(&client.command("DATA").await, "354 ");
    assert_code(&client.command("Subject: late\r\n\r\nstill here\r\n.").await, "250 ");

    assert_eq!(sink.messages()[0].rcpt_to, ["slow@example.com"]);
}

#[tokio::test]
async fn dropping_the_sink_closes_its_port_and_its_sessions() {
    let sink = SmtpSink::start().await;
    let addr = sink.addr();
    let mut client = RawClient::connect(&sink).await;
    assert_code(&client.command("EHLO client.test").await, "250");

    drop(sink);

    assert_eq!(client.reply().await, "", "the open session ends");
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens any more");
}

#[tokio::test]
#[should_panic(expected = "SMTP sink: expected 1 message(s) within 100ms, got 0")]
async fn waiting_for_mail_that_never_comes_fails_the_test() {
    let sink = SmtpSink::start().await;
    sink.wait_for_messages(1, Duration::from_millis(100)).await;
}

/// A client speaking SMTP line by line, for what neither client can be made to send.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(sink: &SmtpSink) -> Self {
        let (reader, writer) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut client = Self {
            reader: BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// One reply, its lines joined with `\n`; empty when the server closed the connection.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("the sink answers")
                .unwrap();
            if read == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn command(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

#[track_caller]
fn assert_code(reply: &str, code: &str) {
    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
}

#[tokio::test]
async fn answers_commands_in_and_out_of_sequence() {
    let sink = SmtpSink::start().await;
    let mut client = RawClient::connect(&sink).await;

    assert_code(&client.command("MAIL FROM:<a@example.com>").await, "503 5.5.1");
    let ehlo = client.command("EHLO client.test").await;
    for extension in ["PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 52428800"] {
        assert!(
            ehlo.contains(&format!("250-{extension}")) || ehlo.contains(&format!("250 {extension}")),
            "{ehlo}"
        );
    }
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");

    assert_code(&client.command("FROB").await, "500 5.5.2");
    assert_code(&client.command("STARTTLS").await, "502 5.5.1");
    assert_code(&client.command("VRFY someone").await, "252 ");
    assert_code(&client.command("NOOP").await, "250 ");
    assert_code(&client.command("RCPT TO:<b@example.com>").await, "503 ");
    assert_code(&client.command("DATA").await, "503 ");
    let long = format!("NOOP {}", "x".repeat(10_000));
    assert_code(&client.command(&long).await, "500 5.5.2");
    assert_code(&client.command("NOOP").await, "250 ");

    assert_code(&client.command("MAIL FROM:<a@example.com> FROB=1").await, "555 ");
    assert_code(
        &client.command("MAIL FROM:<a@example.com> SIZE=99999999999").await,
        "552 5.3.4",
    );
    assert_code(&client.command("MAIL FROM:<ä@example.com>").await, "553 5.6.7");
    assert_code(
        &client.command("MAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME").await,
        "250 ",
    );
    assert_code(&client.command("MAIL FROM:<a@example.com>").await, "503 ");
    assert_code(&client.command("DATA").await, "503 ");
    assert_code(&client.command("RSET").await, "250 ");
    assert_code(&client.command("RCPT TO:<b@example.com>").await, "503 ");
    assert_code(&client.command("HELO client.test").await, "250 ");
    assert_code(&client.command("MAIL FROM:<>").await, "250 ");
    assert_code(&client.command("RCPT TO:<>").await, "501 ");
    assert_code(&client.command("DATA").await, "503 ");

    assert_code(&client.command("QUIT").await, "221 ");
    assert_eq!(client.reply().await, "", "the sink hangs up after QUIT");
    assert_eq!(sink.attempts("b@example.com"), 0, "no transaction, no attempt");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_pipelined_message_goes_to_the_accepted_recipients_only() {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "gone@example.com",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let mut client = RawClient::connect(&sink).await;
    assert_code(&client.command("EHLO client.test").await, "250");

    // RFC 2920: the whole envelope in one write, then the replies in order.
    client
        .write(
            b"MAIL FROM:<shop@example.com> BODY=8BITMIME\r\nRCPT TO:<first@example.com>\r\n\
              RCPT TO:<Gone@Example.com>\r\nRCPT TO: <second@example.com>\r\nDATA\r\n",
        )
        .await;
    for code in ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 "] {
        assert_code(&client.reply().await, code);
    }
    client
        .write(b"Subject: x\r\n\r\n..a leading dot\r\na bare LF line\n.\r\n")
        .await;
    assert_code(&client.reply().await, "250 2.0.0");

    // Same connection, next message: a line over RFC 5321's 1000 octets is refused.
    client
        .write(b"MAIL FROM:<shop@example.com>\r\nRCPT TO:<first@example.com>\r\nDATA\r\n")
        .await;
    for code in ["250 ", "250 ", "354 "] {
        assert_code(&client.reply().await, code);
    }
    client
        .write(format!("Subject: y\r\n\r\n{}\r\n.\r\n", "y".repeat(1200)).as_bytes())
        .await;
    assert_code(&client.reply().await, "554 5.6.0");
    assert_code(&client.command("QUIT").await, "221 ");

    let messages = sink.messages();
    let [mail] = messages.as_slice() else {
        panic!("one message, got {messages:?}")
    };
    assert_eq!(mail.mail_from, "shop@example.com");
    assert_eq!(mail.rcpt_to, ["first@example.com", "second@example.com"]);
    assert_eq!(
        String::from_utf8_lossy(&mail.data),
        "Subject: x\r\n\r\n.a leading dot\r\na bare LF line\r\n"
    );
    assert_eq!(sink.attempts("GONE@example.com"), 1);
    assert_eq!(sink.attempts("first@example.com"), 2);
}
