//! Bounces and spam complaints reported by an email service provider's event webhook.
//!
//! A shop that relays its mail through an ESP gets no bounce mail: the ESP puts its own address
//! in the envelope sender and reads the bounces itself, so `BOUNCE_ADDRESS` and the bounce
//! mailbox never see them. The ESP reports them to a webhook instead. This module authenticates
//! and reads two ESPs' webhooks (the HTTP layer serves them at `/webhooks/{mailgun,sendgrid}`);
//! [`super::record_reported`] records what they say, the same way as a bounce read from the
//! mailbox. It returns data and knows nothing of HTTP.
//!
//! - **Mailgun** (webhooks, JSON): the body carries `signature`: `timestamp`, `token` and the
//!   hex HMAC-SHA256 of timestamp + token, keyed by the domain's HTTP webhook signing key
//!   (`MAILGUN_WEBHOOK_SIGNING_KEY`). One event per request.
//! - **SendGrid** (Signed Event Webhook): `X-Twilio-Email-Event-Webhook-Signature` is a base64
//!   ECDSA P-256/SHA-256 signature (DER) of the `X-Twilio-Email-Event-Webhook-Timestamp` header's
//!   value followed by the raw body; the verification key is base64 SubjectPublicKeyInfo DER, as
//!   SendGrid's settings show it (`SENDGRID_WEBHOOK_VERIFICATION_KEY`). A JSON array of events.
//!
//! An event finds its invitation by the Message-ID both report (Mailgun `message.headers.message-id`,
//! SendGrid `smtp-id`): optbridge makes it `<{invitation id}@{From domain}>`. The recording
//! checks the reported recipient against the invitation's address.
//!
//! Replays: every outcome recorded here is idempotent, so an authentic request sent again (the
//! ESPs retry one that got no 2xx answer) changes nothing. SendGrid's signature covers the whole
//! body, so nothing else can be sent under it. Mailgun's covers only its timestamp and token, not
//! the event: as Mailgun advises, a request is accepted only within [`MAILGUN_WINDOW_SECS`] of its
//! timestamp, and each token with one body only (`esp_webhook_tokens`, shared by every
//! instance; the same body again is Mailgun's retry, answered again).

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// How far a Mailgun request's timestamp may be from now, either way (clock skew included).
pub const MAILGUN_WINDOW_SECS: i64 = 15 * 60;

/// Longest reason kept from an event (the invitation's `last_error`, the suppression's reason).
const MAX_REASON: usize = 300;

/// One ESP: its name in paths, logs and reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Esp {
    Mailgun,
    SendGrid,
}

impl Esp {
    pub fn name(self) -> &'static str {
        match self {
            Esp::Mailgun => "Mailgun",
            Esp::SendGrid => "SendGrid",
        }
    }
}

/// What one event reports about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspEvent {
    /// The message's Message-ID, without angle brackets; empty when the event has none.
    pub message_id: String,
    /// The address the ESP tried.
    pub recipient: String,
    pub kind: EspEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspEventKind {
    /// The message will not be delivered: bounced, as a refusal at sending would be; `hard`
    /// suppresses the address ([`crate::mail::is_hard_bounce`], or the ESP's own bounce list).
    Bounce { hard: bool, reason: String },
    /// The recipient marked the message as spam: from now on the address is not mailed again.
    Complaint { reason: String },
    /// Nothing to record: delivered, opened, a delay the ESP retries, a type not known here.
    Other { event: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EspError {
    /// Missing or wrong signature: not from the ESP (answered 403).
    #[error("missing or wrong signature")]
    Forbidden,
    /// Authentic or not, not something this ESP sends (answered 400).
    #[error("{0}")]
    Malformed(String),
}

/// `MAILGUN_WEBHOOK_SIGNING_KEY`.
#[derive(Clone)]
pub struct MailgunKey(hmac::Key);

impl MailgunKey {
    pub fn new(signing_key: &str) -> Result<Self, String> {
        let signing_key = signing_key.trim();
        if signing_key.len() < 16 {
            return Err("is too short to be Mailgun's HTTP webhook signing key".into());
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes())))
    }
}

impl std::fmt::Debug for MailgunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailgunKey(…)")
    }
}

/// `SENDGRID_WEBHOOK_VERIFICATION_KEY`: a P-256 public key.
#[derive(Clone)]
pub struct SendGridKey(std::sync::Arc<signature::ParsedPublicKey>);

impl SendGridKey {
    /// The key as SendGrid shows it: base64 of the SubjectPublicKeyInfo DER; PEM framing and line
    /// breaks are accepted too.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let base64: String = raw
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .flat_map(|line| line.split_whitespace())
            .collect();
        let der = STANDARD.decode(base64).map_err(|e| format!("is not base64 ({e})"))?;
        signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, der)
            .map(|key| Self(std::sync::Arc::new(key)))
            .map_err(|e| format!("is not a P-256 public key ({e})"))
    }
}

impl std::fmt::Debug for SendGridKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendGridKey")
    }
}

/// A Mailgun request, authenticated: its token (accepted with one body only) and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailgunRequest {
    pub token: String,
    pub events: Vec<EspEvent>,
}

/// Authenticates one Mailgun webhook request made within [`MAILGUN_WINDOW_SECS`] of `now` (Unix
/// seconds) and reads its event. Whether its token came before with another body is the caller's
/// to check.
pub fn mailgun_events(key: &MailgunKey, body: &[u8], now: i64) -> Result<MailgunRequest, EspError> {
    let post: Value = serde_json::from_slice(body).map_err(|e| EspError::Malformed(format!("not JSON: {e}")))?;
    let signed = &post["signature"];
    // Mailgun documents the timestamp as a number and sends it as a string.
    let timestamp = match &signed["timestamp"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(EspError::Forbidden),
    };
    let (Some(token), Some(claimed)) = (signed["token"].as_str(), signed["signature"].as_str()) else {
        return Err(EspError::Forbidden);
    };
    let claimed = decode_hex(claimed).ok_or(EspError::Forbidden)?;
    hmac::verify(&key.0, format!("{timestamp}{token}").as_bytes(), &claimed).map_err(|_| EspError::Forbidden)?;
    let signed_at: i64 = timestamp.trim().parse().map_err(|_| EspError::Forbidden)?;
    if (now - signed_at).abs() > MAILGUN_WINDOW_SECS {
        return Err(EspError::Forbidden);
    }

    let event = &post["event-data"];
    let name = event["event"]
        .as_str()
        .ok_or_else(|| EspError::Malformed("event-data.event is missing".into()))?;
    let kind = match name {
        "failed" if event["severity"].as_str() == Some("permanent") => {
            let status = &event["delivery-status"];
            let code = status["code"].as_u64().and_then(|c| u16::try_from(c).ok());
            let reason = event["reason"].as_str().unwrap_or_default();
            let text = [
                status["enhanced-code"].as_str(),
                status["message"].as_str(),
                status["description"].as_str(),
            ]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
            // `suppress-bounce`: not sent, the address is on Mailgun's bounce list.
            let hard = reason == "suppress-bounce" || crate::mail::is_hard_bounce(code, &text);
            let code = code.map(|c| format!(" {c}")).unwrap_or_default();
            EspEventKind::Bounce {
                hard,
                reason: bounded(format!("Mailgun: failed ({reason}){code} {text}").trim_end().to_owned()),
            }
        }
        "complained" => EspEventKind::Complaint {
            reason: "spam complaint via Mailgun".into(),
        },
        // A temporary failure is retried by Mailgun; a final one comes as permanent.
        other => EspEventKind::Other {
            event: other.to_owned(),
        },
    };
    Ok(MailgunRequest {
        token: token.to_owned(),
        events: vec![EspEvent {
            message_id: message_id(event["message"]["headers"]["message-id"].as_str()),
            recipient: event["recipient"].as_str().unwrap_or_default().to_owned(),
            kind,
        }],
    })
}

/// Authenticates one SendGrid Event Webhook request and reads its events.
pub fn sendgrid_events(
    key: &SendGridKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<Vec<EspEvent>, EspError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(EspError::Forbidden);
    };
    let signature = STANDARD.decode(signature.trim()).map_err(|_| EspError::Forbidden)?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    key.0.verify_sig(&signed, &signature).map_err(|_| EspError::Forbidden)?;

    let events: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| EspError::Malformed(format!("not a JSON array of events: {e}")))?;
    events
        .iter()
        .map(|event| {
            let name = event["event"]
                .as_str()
                .ok_or_else(|| EspError::Malformed("an event without \"event\"".into()))?;
            let status = event["status"].as_str().unwrap_or_default();
            let reason = event["reason"].as_str().unwrap_or_default();
            let kind = match name {
                "bounce" => {
                    // `blocked`: refused for now (reputation, content), not a dead address.
                    let blocked = event["type"].as_str() == Some("blocked");
                    let text = format!("{status} {reason}");
                    let code = reason.get(..3).and_then(|c| c.parse().ok());
                    // SendGrid's own reading of the reply: "Invalid Address" is a dead address
                    // also where the status says nothing (a bare 5.0.0 "550 unknown recipient").
                    let classification = event["bounce_classification"].as_str().unwrap_or_default();
                    let invalid_address = classification == "Invalid Address";
                    EspEventKind::Bounce {
                        hard: invalid_address || (!blocked && crate::mail::is_hard_bounce(code, &text)),
                        reason: bounded(format!(
                            "SendGrid: {}{} {}",
                            if blocked { "blocked" } else { "bounce" },
                            if classification.is_empty() {
                                String::new()
                            } else {
                                format!(" ({classification})")
                            },
                            text.trim()
                        )),
                    }
                }
                // Not sent: the address is on one of SendGrid's lists.
                "dropped" if reason == "Spam Reporting Address" => EspEventKind::Complaint {
                    reason: "spam complaint via SendGrid (dropped: Spam Reporting Address)".into(),
                },
                "dropped" => EspEventKind::Bounce {
                    hard: matches!(reason, "Bounced Address" | "Invalid"),
                    reason: bounded(format!("SendGrid: dropped ({reason})")),
                },
                "spamreport" => EspEventKind::Complaint {
                    reason: "spam complaint via SendGrid".into(),
                },
                other => EspEventKind::Other {
                    event: other.to_owned(),
                },
            };
            Ok(EspEvent {
                message_id: message_id(event["smtp-id"].as_str()),
                recipient: event["email"].as_str().unwrap_or_default().to_owned(),
                kind,
            })
        })
        .collect()
}

/// A Message-ID as reported, without angle brackets or spaces.
fn message_id(reported: Option<&str>) -> String {
    reported
        .unwrap_or_default()
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

fn bounded(reason: String) -> String {
    reason.chars().take(MAX_REASON).collect()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SendGrid's own test vector, from its SDKs' event webhook tests.
    const SENDGRID_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SENDGRID_SIGNATURE: &str =
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const SENDGRID_TIMESTAMP: &str = "1588788367";
    const SENDGRID_PAYLOAD: &str = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;

    #[test]
    fn sendgrid_signatures_verify_as_sendgrid_documents_them() {
        let key = SendGridKey::parse(SENDGRID_KEY).unwrap();
        let verify = |signature: &str, timestamp: &str, body: &str| {
            key.0
                .verify_sig(
                    format!("{timestamp}{body}").as_bytes(),
                    &STANDARD.decode(signature).unwrap(),
                )
                .is_ok()
        };
        assert!(verify(SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, SENDGRID_PAYLOAD));
        assert!(!verify(SENDGRID_SIGNATURE, "1388788367", SENDGRID_PAYLOAD));
        assert!(!verify(
            SENDGRID_SIGNATURE,
            SENDGRID_TIMESTAMP,
            &SENDGRID_PAYLOAD.replace("test_event", "test_evenT")
        ));
        // The payload is an object, not an array of events: authentic, but not an event batch.
        assert!(matches!(
            sendgrid_events(
                &key,
                Some(SENDGRID_SIGNATURE),
                Some(SENDGRID_TIMESTAMP),
                SENDGRID_PAYLOAD.as_bytes()
            ),
            Err(EspError::Malformed(_))
        ));
        for (signature, timestamp) in [
            (None, Some(SENDGRID_TIMESTAMP)),
            (Some(SENDGRID_SIGNATURE), None),
            (Some("not base64!"), Some(SENDGRID_TIMESTAMP)),
            (Some(SENDGRID_SIGNATURE), Some("1588788368")),
        ] {
            assert_eq!(
                sendgrid_events(&key, signature, timestamp, SENDGRID_PAYLOAD.as_bytes()),
                Err(EspError::Forbidden)
            );
        }
        // SendGrid's "bad key" from the same tests.
        let other = SendGridKey::parse(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==",
        )
        .unwrap();
        assert_eq!(
            sendgrid_events(
                &other,
                Some(SENDGRID_SIGNATURE),
                Some(SENDGRID_TIMESTAMP),
                SENDGRID_PAYLOAD.as_bytes()
            ),
            Err(EspError::Forbidden)
        );
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &SENDGRID_KEY[..64],
            &SENDGRID_KEY[64..]
        );
        assert!(SendGridKey::parse(&pem).is_ok());
        assert!(SendGridKey::parse("bm90IGEga2V5").is_err());
    }

    /// HMAC-SHA256 of "1770920772" + token keyed by "key-0123456789abcdef", computed with
    /// Python's `hmac` module (an implementation other than ours).
    const MAILGUN_SIGNATURE: &str = "c2daa64c9e2d13fe91731048191bba8fde1ec8a9c6d982887ff58666015ed6f8";

    fn mailgun_body(signature: &str, event_data: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "signature": {
                "timestamp": "1770920772",
                "token": "e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
                "signature": signature,
            },
            "event-data": event_data,
        }))
        .unwrap()
    }

    #[test]
    fn mailgun_events_need_mailguns_signature_and_say_what_failed() {
        let key = MailgunKey::new("key-0123456789abcdef").unwrap();
        let failed = serde_json::json!({
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "recipient": "anna@example.dk",
            "message": {"headers": {"message-id": "0192-abc@shop.example"}},
            "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "message": "No such user", "description": ""},
        });
        const SIGNED_AT: i64 = 1_770_920_772;
        let request = mailgun_events(&key, &mailgun_body(MAILGUN_SIGNATURE, failed.clone()), SIGNED_AT + 60).unwrap();
        assert_eq!(request.token, "e0b5477167110d68991efc6b9f89f0a11066af27834600e123");
        assert_eq!(
            request.events,
            vec![EspEvent {
                message_id: "0192-abc@shop.example".into(),
                recipient: "anna@example.dk".into(),
                kind: EspEventKind::Bounce {
                    hard: true,
                    reason: "Mailgun: failed (bounce) 550 5.1.1 No such user".into()
                },
            }]
        );
        let mut tampered = MAILGUN_SIGNATURE.to_owned();
        tampered.replace_range(..1, "b");
        for signature in [tampered.as_str(), "", "zz", &MAILGUN_SIGNATURE[..62]] {
            assert_eq!(
                mailgun_events(&key, &mailgun_body(signature, failed.clone()), SIGNED_AT),
                Err(EspError::Forbidden),
                "{signature}"
            );
        }
        let other_key = MailgunKey::new("key-fedcba9876543210").unwrap();
        assert_eq!(
            mailgun_events(&other_key, &mailgun_body(MAILGUN_SIGNATURE, failed.clone()), SIGNED_AT),
            Err(EspError::Forbidden)
        );
        // Signed, but too long ago (or too far ahead): a replay of a captured signature.
        for now in [SIGNED_AT + MAILGUN_WINDOW_SECS + 1, SIGNED_AT - MAILGUN_WINDOW_SECS - 1] {
            assert_eq!(
                mailgun_events(&key, &mailgun_body(MAILGUN_SIGNATURE, failed.clone()), now),
                Err(EspError::Forbidden)
            );
        }
        assert!(
            mailgun_events(
                &key,
                &mailgun_body(MAILGUN_SIGNATURE, failed.clone()),
                SIGNED_AT + MAILGUN_WINDOW_SECS
            )
            .is_ok()
        );
        assert!(matches!(
            mailgun_events(&key, b"not json", SIGNED_AT),
            Err(EspError::Malformed(_))
        ));
        // Signed, but no event in it, or something else where the event should be.
        for event_data in [Value::Null, serde_json::json!([1, 2]), serde_json::json!({"event": 7})] {
            assert!(matches!(
                mailgun_events(&key, &mailgun_body(MAILGUN_SIGNATURE, event_data), SIGNED_AT),
                Err(EspError::Malformed(_))
            ));
        }

        let kind = |event_data: Value| {
            mailgun_events(&key, &mailgun_body(MAILGUN_SIGNATURE, event_data), SIGNED_AT)
                .unwrap()
                .events[0]
                .kind
                .clone()
        };
        let mut full_mailbox = failed.clone();
        full_mailbox["delivery-status"] = serde_json::json!({"code": 552, "message": "5.2.2 Mailbox full"});
        assert!(matches!(kind(full_mailbox), EspEventKind::Bounce { hard: false, .. }));
        let mut listed = failed.clone();
        listed["reason"] = "suppress-bounce".into();
        listed["delivery-status"] =
            serde_json::json!({"code": 605, "description": "Not delivering to previously bounced address"});
        assert!(matches!(kind(listed), EspEventKind::Bounce { hard: true, .. }));
        let mut temporary = failed.clone();
        temporary["severity"] = "temporary".into();
        assert_eq!(kind(temporary), EspEventKind::Other { event: "failed".into() });
        let mut complained = failed;
        complained["event"] = "complained".into();
        assert!(matches!(kind(complained), EspEventKind::Complaint { .. }));
    }

    #[test]
    fn sendgrid_events_say_what_each_one_means() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let key = SendGridKey::parse(&STANDARD.encode(pair.public_key().as_der().unwrap().as_ref())).unwrap();
        let body = serde_json::to_vec(&serde_json::json!([
            {"event": "dropped", "email": "a@x.dk", "smtp-id": "<1@shop.example>", "reason": "Bounced Address"},
            {"event": "dropped", "email": "b@x.dk", "smtp-id": "<2@shop.example>", "reason": "Unsubscribed Address"},
            {"event": "dropped", "email": "c@x.dk", "smtp-id": "<3@shop.example>", "reason": "Spam Reporting Address"},
            {"event": "bounce", "email": "d@x.dk", "smtp-id": "<4@shop.example>", "type": "bounce", "status": "5.2.2", "reason": "552 5.2.2 Mailbox full"},
            {"event": "bounce", "email": "e@x.dk", "smtp-id": "<5@shop.example>", "type": "bounce", "status": "5.0.0", "reason": "550 unknown recipient"},
            {"event": "group_unsubscribe", "email": "f@x.dk"},
            {"event": "bounce", "email": "g@x.dk", "smtp-id": "<7@shop.example>", "type": "bounce", "status": "5.0.0", "reason": "550 unknown recipient", "bounce_classification": "Invalid Address"},
            {"event": "bounce", "email": "h@x.dk", "smtp-id": "<8@shop.example>", "type": "blocked", "reason": "unable to get mx info", "bounce_classification": "Unclassified"},
            {"event": "bounce", "email": "i@x.dk", "smtp-id": "<9@shop.example>", "type": "bounce", "status": "5.7.1", "reason": "550 5.7.1 rejected by policy", "bounce_classification": "Reputation"},
        ]))
        .unwrap();
        let signed = [b"1700000000".as_slice(), &body].concat();
        let signature = STANDARD.encode(
            pair.sign(&aws_lc_rs::rand::SystemRandom::new(), &signed)
                .unwrap()
                .as_ref(),
        );
        let events = sendgrid_events(&key, Some(&signature), Some("1700000000"), &body).unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.message_id.as_str(), e.recipient.as_str(), &e.kind))
            .collect();
        assert_eq!(kinds[0].0, "1@shop.example");
        assert_eq!(kinds[0].1, "a@x.dk");
        assert!(
            matches!(kinds[0].2, EspEventKind::Bounce { hard: true, .. }),
            "{kinds:?}"
        );
        assert!(
            matches!(kinds[1].2, EspEventKind::Bounce { hard: false, .. }),
            "{kinds:?}"
        );
        assert!(matches!(kinds[2].2, EspEventKind::Complaint { .. }), "{kinds:?}");
        assert!(
            matches!(kinds[3].2, EspEventKind::Bounce { hard: false, .. }),
            "a full mailbox: {kinds:?}"
        );
        assert!(
            matches!(kinds[4].2, EspEventKind::Bounce { hard: false, .. }),
            "5.0.0 says nothing of the address: {kinds:?}"
        );
        match kinds[6].2 {
            EspEventKind::Bounce { hard, reason } => {
                assert!(hard, "SendGrid classifies the address invalid: {reason}");
                assert_eq!(reason, "SendGrid: bounce (Invalid Address) 5.0.0 550 unknown recipient");
            }
            other => panic!("{other:?}"),
        }
        for (i, why) in [(7, "blocked, unclassified"), (8, "a policy refusal")] {
            assert!(
                matches!(kinds[i].2, EspEventKind::Bounce { hard: false, .. }),
                "{why}: {kinds:?}"
            );
        }
        assert_eq!(kinds[5].0, "");
        assert_eq!(
            kinds[5].2,
            &EspEventKind::Other {
                event: "group_unsubscribe".into()
            }
        );
    }

    #[test]
    fn message_ids_lose_their_brackets() {
        assert_eq!(message_id(Some(" <a@b> ")), "a@b");
        assert_eq!(message_id(Some("a@b")), "a@b");
        assert_eq!(message_id(None), "");
    }
}
