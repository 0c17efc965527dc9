//! Bounce reports as they arrive in the bounce mailbox: RFC 3464 delivery status notifications
//! (`multipart/report; report-type=delivery-status`), and the plain-text forms some relays
//! still send (qmail, Exim, older Exchange and Postfix set-ups, forwarding services). Also the
//! spam complaints of mailbox providers' feedback loops, in the Abuse Reporting Format (RFC 5965,
//! `multipart/report; report-type=feedback-report`), when the shop has the loop report to the
//! bounce address.
//!
//! The invitation is found by its VERP token ([`super::verp`]): in the headers the delivering
//! MTA wrote (Delivered-To, X-Original-To, To), or else anywhere in the report, e.g. in the
//! Return-Path of the returned message. Whether the address is suppressed is decided by
//! [`crate::mail::is_hard_bounce`], as for a refusal during the SMTP transaction.

use mailparse::{MailHeaderMap as _, ParsedMail};

use super::verp::BounceAddress;

/// Longest reason kept (it becomes the invitation's last error and the event's detail).
const MAX_REASON: usize = 500;

/// A report about one invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceReport {
    /// The VERP token of the invitation it is about.
    pub token: String,
    pub outcome: ReportOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Delivery failed for good: the invitation bounced. `hard`: the address is suppressed.
    Failed { hard: bool, reason: String },
    /// A warning (`Action: delayed`, the relay is still trying) or a success notice: nothing
    /// about the invitation changes.
    Informational { action: String },
    /// The recipient marked the invitation as spam (`Feedback-Type: abuse` or `fraud`); `reporter`
    /// is the report's `User-Agent` (e.g. the provider's feedback loop software).
    Complaint { reporter: String },
}

/// Why a message in the bounce mailbox is left there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrecognised {
    #[error("not a parsable message: {0}")]
    Unparsable(String),
    #[error("no VERP address of BOUNCE_ADDRESS in it")]
    NoToken,
    #[error("not a bounce (no delivery report, not from a mailer daemon)")]
    NotABounce,
    #[error("a bounce without a status code")]
    NoStatus,
    /// A feedback report that is no complaint about a recipient: a DMARC failure report
    /// (`auth-failure`, RFC 6591), `virus`, `not-spam`, `other`; for a person to read.
    #[error("a feedback report of type '{0}', not a spam complaint")]
    Feedback(String),
}

/// Reads one message from the bounce mailbox.
pub fn parse(raw: &[u8], bounces: &BounceAddress) -> Result<BounceReport, Unrecognised> {
    let mail = mailparse::parse_mail(raw).map_err(|e| Unrecognised::Unparsable(e.to_string()))?;
    let token = find_token(&mail, raw, bounces).ok_or(Unrecognised::NoToken)?;
    let outcome = match feedback_report(&mail)? {
        Some(outcome) => outcome,
        None => match delivery_status(&mail) {
            Some(outcome) => outcome,
            None => plain_text_bounce(&mail)?,
        },
    };
    Ok(BounceReport { token, outcome })
}

/// The token: first from the headers the receiving side wrote, then from anywhere in the message.
fn find_token(mail: &ParsedMail<'_>, raw: &[u8], bounces: &BounceAddress) -> Option<String> {
    const ENVELOPE_HEADERS: [&str; 5] = ["Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"];
    ENVELOPE_HEADERS
        .iter()
        .flat_map(|name| mail.headers.get_all_values(name))
        .find_map(|value| bounces.find_token(&value))
        .or_else(|| leaves(mail).find_map(|part| part.get_body().ok().and_then(|b| bounces.find_token(&b))))
        .or_else(|| bounces.find_token(&String::from_utf8_lossy(raw)))
}

/// Every non-multipart part, depth first (mailparse bounds the nesting).
fn leaves<'a>(mail: &'a ParsedMail<'a>) -> Box<dyn Iterator<Item = &'a ParsedMail<'a>> + 'a> {
    if mail.subparts.is_empty() {
        Box::new(std::iter::once(mail))
    } else {
        Box::new(mail.subparts.iter().flat_map(leaves))
    }
}

/// A complaint when the message holds an RFC 5965 `message/feedback-report` part of type
/// `abuse` (the recipient's "this is spam") or `fraud`; `None` without such a part.
fn feedback_report(mail: &ParsedMail<'_>) -> Result<Option<ReportOutcome>, Unrecognised> {
    let Some(part) = leaves(mail).find(|p| p.ctype.mimetype == "message/feedback-report") else {
        return Ok(None);
    };
    let body = part.get_body_raw().unwrap_or_default();
    let fields = field_groups(&body).into_iter().next();
    let field = |name: &str| fields.as_ref().and_then(|f| f.get(name));
    let kind = field("Feedback-Type")
        .map(|t| first_word(&t).to_ascii_lowercase())
        .unwrap_or_default();
    match kind.as_str() {
        "abuse" | "fraud" => Ok(Some(ReportOutcome::Complaint {
            reporter: field("User-Agent")
                .map(|ua| ua.chars().take(100).collect())
                .unwrap_or_else(|| "unnamed".to_owned()),
        })),
        "" => Err(Unrecognised::Feedback("none given".into())),
        _ => Err(Unrecognised::Feedback(kind)),
    }
}

/// The outcome an RFC 3464 `message/delivery-status` part reports (RFC 6533's global form too),
/// or `None` when there is no such part with a recipient's fields in it.
fn delivery_status(mail: &ParsedMail<'_>) -> Option<ReportOutcome> {
    let part = leaves(mail).find(|p| {
        matches!(
            p.ctype.mimetype.as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    })?;
    let body = part.get_body_raw().ok()?;
    let recipients: Vec<Fields> = field_groups(&body)
        .into_iter()
        .filter(|g| g.get("Action").is_some() || g.get("Final-Recipient").is_some())
        .collect();
    // One recipient per invitation; a report about several takes the first that failed.
    let fields = recipients
        .iter()
        .find(|g| g.action().as_deref() == Some("failed"))
        .or(recipients.first())?;
    let status = fields.get("Status").map(|s| first_word(&s));
    let diagnostic = fields.get("Diagnostic-Code").map(|d| {
        // `smtp; 550 5.1.1 …`: the type, then the server's reply.
        let d = d.split_whitespace().collect::<Vec<_>>().join(" ");
        match d.split_once(';') {
            Some((_, reply)) => reply.trim().to_owned(),
            None => d,
        }
    });
    let failed = match fields.action().as_deref() {
        Some("failed") => true,
        Some(action @ ("delayed" | "delivered" | "relayed" | "expanded")) => {
            return Some(ReportOutcome::Informational {
                action: action.to_owned(),
            });
        }
        // Action is required; without it a 4.x.x or 5.x.x status says the delivery failed.
        _ => status
            .as_deref()
            .is_some_and(|s| s.starts_with('4') || s.starts_with('5')),
    };
    if !failed {
        return None;
    }
    let text = [status.as_deref(), diagnostic.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if status.is_none() && crate::mail::enhanced_status(&text).is_none() && smtp_code(&text).is_none() {
        return None;
    }
    Some(failed_outcome(&text, diagnostic.as_deref().and_then(smtp_code)))
}

fn failed_outcome(text: &str, code: Option<u16>) -> ReportOutcome {
    ReportOutcome::Failed {
        hard: crate::mail::is_hard_bounce(code, text),
        reason: format!("bounce report: {}", text.chars().take(MAX_REASON).collect::<String>()),
    }
}

/// A report in plain text: it must come from a mailer daemon (or look like a bounce) and name a
/// status: an enhanced one (`5.1.1`, qmail's `#5.1.1`), an SMTP reply code after `said:`
/// (Postfix), or a line that starts with one (Exim).
fn plain_text_bounce(mail: &ParsedMail<'_>) -> Result<ReportOutcome, Unrecognised> {
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default().to_lowercase();
    let (from, subject) = (header("From"), header("Subject"));
    let auto_reply = header("Auto-Submitted").starts_with("auto-replied");
    let from_daemon = ["mailer-daemon", "postmaster", "mail delivery"]
        .iter()
        .any(|d| from.contains(d));
    const SUBJECTS: [&str; 10] = [
        "undeliver",
        "undelivered",
        "delivery status notification",
        "delivery failure",
        "delivery failed",
        "delivery has failed",
        "failure notice",
        "returned mail",
        "non-delivery",
        "could not be delivered",
    ];
    let looks_like_bounce = from_daemon
        || header("Return-Path").trim() == "<>"
        || mail.headers.get_first_value("X-Failed-Recipients").is_some()
        || mail.ctype.mimetype == "multipart/report"
        || SUBJECTS.iter().any(|s| subject.contains(s));
    // An out-of-office answer goes to the envelope sender too (RFC 3834), often with a null
    // Return-Path: only a mailer daemon's auto-reply is a bounce.
    if (auto_reply && !from_daemon) || !looks_like_bounce {
        return Err(Unrecognised::NotABounce);
    }
    // The report's own words: its text parts, not the returned message.
    let text: String = leaves(mail)
        .filter(|p| {
            p.ctype.mimetype == "text/plain" || (mail.subparts.is_empty() && p.ctype.mimetype.starts_with("text/"))
        })
        .filter_map(|p| p.get_body().ok())
        .collect::<Vec<_>>()
        .join("\n");
    let own = report_text(&text);
    const STILL_TRYING: [&str; 4] = [
        "delayed mail",
        "will keep trying",
        "still trying",
        "this is only a warning",
    ];
    if STILL_TRYING
        .iter()
        .any(|w| subject.contains(w) || own.to_lowercase().contains(w))
    {
        return Ok(ReportOutcome::Informational {
            action: "delayed".into(),
        });
    }
    // The line with the status says why; the code decides.
    let line = own
        .lines()
        .find(|l| crate::mail::enhanced_status(l).is_some_and(|(class, _)| class >= 4))
        .or_else(|| own.lines().find(|l| said_code(l).is_some()))
        // Exim quotes the server's reply on a line of its own, under "SMTP error from remote
        // mail server after RCPT TO:<…>:".
        .or_else(|| own.lines().find(|l| smtp_code(l).is_some()))
        .ok_or(Unrecognised::NoStatus)?;
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(failed_outcome(&line, said_code(&line).or_else(|| smtp_code(&line))))
}

/// A plain-text report up to the copy of the returned message (qmail's "--- Below this line is
/// a copy of the message", Postfix's and Exim's headers of the original).
fn report_text(text: &str) -> &str {
    const COPY_MARKERS: [&str; 4] = [
        "--- below this line is a copy of the message",
        "------ this is a copy of the message",
        "----- original message -----",
        "original message headers",
    ];
    let lower = text.to_lowercase();
    let end = COPY_MARKERS
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .unwrap_or(text.len());
    text.get(..end).unwrap_or(text)
}

/// An SMTP reply code quoted after "said:" (Postfix: "host mx said: 550 …").
fn said_code(line: &str) -> Option<u16> {
    let lower = line.to_lowercase();
    let (_, after) = lower.split_once("said:")?;
    smtp_code(after)
}

/// A leading SMTP reply code (4xx or 5xx) in a server's reply text: `550 5.1.1 …`, `550-5.1.1 …`.
fn smtp_code(reply: &str) -> Option<u16> {
    let reply = reply.trim_start();
    let digits = reply.get(..3)?;
    let code: u16 = digits.parse().ok()?;
    let next = reply[3..].chars().next();
    ((400..600).contains(&code) && next.is_none_or(|c| c == ' ' || c == '-')).then_some(code)
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_owned()
}

/// One group of `Name: value` fields of a delivery-status body.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn action(&self) -> Option<String> {
        self.get("Action").map(|a| first_word(&a).to_ascii_lowercase())
    }
}

/// The blank-line separated groups of a delivery-status body (RFC 3464 2.1: the per-message
/// fields, then one group per recipient), each parsed as header fields (folded lines joined).
fn field_groups(body: &[u8]) -> Vec<Fields> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut groups = Vec::new();
    let mut group = String::new();
    for line in text.split('\n').chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !group.is_empty() {
                group.push('\n');
                if let Ok((headers, _)) = mailparse::parse_headers(group.as_bytes()) {
                    groups.push(Fields(headers.iter().map(|h| (h.get_key(), h.get_value())).collect()));
                }
                group.clear();
            }
        } else {
            group.push_str(line);
            group.push('\n');
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "4f2a9c0e7d1b3a5c6e8f";

    fn bounces() -> BounceAddress {
        BounceAddress::parse("bounces@shop.example").unwrap()
    }

    fn sample(name: &str) -> Vec<u8> {
        let path = format!("{}/src/mail/bounce/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parsed(name: &str) -> Result<BounceReport, Unrecognised> {
        parse(&sample(name), &bounces())
    }

    fn failed(name: &str) -> (bool, String) {
        match parsed(name) {
            Ok(BounceReport {
                token,
                outcome: ReportOutcome::Failed { hard, reason },
            }) => {
                assert_eq!(token, TOKEN, "{name}");
                (hard, reason)
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn postfix_dsn_for_an_unknown_user_is_hard() {
        let (hard, reason) = failed("postfix-5.1.1.eml");
        assert!(hard);
        assert!(
            reason.contains("5.1.1") && reason.contains("Recipient address rejected"),
            "{reason}"
        );
    }

    #[test]
    fn exchange_ndr_recipient_not_found_is_hard() {
        let (hard, reason) = failed("exchange-5.1.10.eml");
        assert!(hard);
        assert!(reason.contains("RESOLVER.ADR.RecipientNotFound"), "{reason}");
    }

    #[test]
    fn gmail_mailbox_full_bounces_without_suppressing() {
        let (hard, reason) = failed("gmail-5.2.2.eml");
        assert!(!hard, "5.2.2 says nothing lasting about the address");
        assert!(reason.contains("5.2.2"), "{reason}");
    }

    #[test]
    fn qmail_plain_text_bounce_found_through_the_returned_message() {
        let (hard, reason) = failed("qmail-5.1.1.eml");
        assert!(hard);
        assert!(reason.contains("no mailbox here"), "{reason}");
    }

    #[test]
    fn exim_plain_text_bounce_with_a_bare_reply_code() {
        // Exim's own format: the server's reply on the line after "SMTP error from remote mail
        // server after RCPT TO:", here without an enhanced status.
        let (hard, reason) = failed("exim-550.eml");
        assert!(hard, "550 at RCPT, as a refusal during the transaction");
        assert_eq!(reason, "bounce report: 550 No such user here");
    }

    #[test]
    fn a_feedback_loops_abuse_report_is_a_complaint() {
        // RFC 5965, the recipient's address redacted as the big providers do: the VERP token
        // names the invitation.
        match parsed("arf-abuse.eml") {
            Ok(BounceReport {
                token,
                outcome: ReportOutcome::Complaint { reporter },
            }) => assert_eq!((token.as_str(), reporter.as_str()), (TOKEN, "ExampleFBL/2.0")),
            other => panic!("{other:?}"),
        }
        let fraud = String::from_utf8(sample("arf-abuse.eml"))
            .unwrap()
            .replace("Feedback-Type: abuse", "Feedback-Type: fraud");
        assert!(matches!(
            parse(fraud.as_bytes(), &bounces()),
            Ok(BounceReport {
                outcome: ReportOutcome::Complaint { .. },
                ..
            })
        ));
    }

    #[test]
    fn other_feedback_reports_are_left_for_a_person() {
        // A DMARC failure report (RFC 6591) says nothing about what the recipient wants.
        assert_eq!(
            parsed("arf-auth-failure.eml"),
            Err(Unrecognised::Feedback("auth-failure".into()))
        );
        let raw = String::from_utf8(sample("arf-abuse.eml")).unwrap();
        for (kind, expected) in [("not-spam", "not-spam"), ("virus", "virus"), ("", "none given")] {
            let changed = raw.replace("Feedback-Type: abuse", &format!("Feedback-Type: {kind}"));
            assert_eq!(
                parse(changed.as_bytes(), &bounces()),
                Err(Unrecognised::Feedback(expected.into())),
                "{kind}"
            );
        }
    }

    #[test]
    fn postfix_plain_text_bounce_with_said_code() {
        let (hard, reason) = failed("postfix-plain-550.eml");
        assert!(hard, "550 without an enhanced status, as at RCPT");
        assert!(reason.contains("said: 550"), "{reason}");
    }

    #[test]
    fn policy_and_temporary_failures_bounce_without_suppressing() {
        assert!(!failed("postfix-5.7.1.eml").0);
        let (hard, reason) = failed("postfix-4.4.7-expired.eml");
        assert!(!hard);
        assert!(reason.contains("4.4.7"), "{reason}");
    }

    #[test]
    fn delay_warnings_change_nothing() {
        let report = parsed("postfix-delayed.eml").unwrap();
        assert_eq!(report.token, TOKEN);
        assert_eq!(
            report.outcome,
            ReportOutcome::Informational {
                action: "delayed".into()
            }
        );
    }

    #[test]
    fn what_is_not_a_bounce_is_unrecognised() {
        assert_eq!(parsed("out-of-office.eml"), Err(Unrecognised::NotABounce));
        assert_eq!(parsed("no-token.eml"), Err(Unrecognised::NoToken));
        assert_eq!(parsed("malformed-report.eml"), Err(Unrecognised::NoStatus));
        assert!(parse(b"", &bounces()).is_err());
        assert!(parse(b"\xff\xfe\x00garbage", &bounces()).is_err());
    }

    #[test]
    fn codes_in_reply_texts() {
        assert_eq!(smtp_code("550 5.1.1 no"), Some(550));
        assert_eq!(smtp_code("552-5.2.2 full"), Some(552));
        assert_eq!(smtp_code("5501 no"), None);
        assert_eq!(smtp_code("250 ok"), None);
        assert_eq!(
            said_code("host mx.example.dk[192.0.2.1] said: 550 unknown user"),
            Some(550)
        );
    }

    proptest::proptest! {
        /// Whatever arrives in the mailbox, the parser answers and does not panic.
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = parse(&raw, &bounces());
        }

        /// Nor does a real report cut short or corrupted anywhere.
        #[test]
        fn damaged_reports_never_panic(cut in 0usize..4000, at in 0usize..4000, byte in proptest::prelude::any::<u8>()) {
            let mut raw = sample("postfix-5.1.1.eml");
            raw.truncate(cut.min(raw.len()));
            if let Some(b) = raw.get_mut(at) {
                *b = byte;
            }
            let _ = parse(&raw, &bounces());
        }
    }
}
