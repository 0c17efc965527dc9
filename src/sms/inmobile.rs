//! inMobile (`SMS_PROVIDER=inmobile`), the Danish SMS gateway, through its v4 REST API.
//!
//! - Sending (pinned by issue 19): `POST {INMOBILE_API_BASE}/v4/sms/outgoing`, HTTP Basic with
//!   the API key as the password, JSON `{"messages":[{"to","text","from","statusCallbackUrl",
//!   "respectBlacklist":true}]}`, answered `{"results":[{"messageId",…}]}`. The official .NET
//!   client sends the same (user `_`, the key as password, the `/v4/sms/outgoing` resource):
//!   <https://github.com/inMobile/inMobile-.NET-API-Client> (`ApiRequestHelper.cs`,
//!   `SmsOutgoingApiMethods.cs`). Errors are `{"errorMessage","details":[…]}` (`ErrorResponse.cs`).
//! - Callbacks: inMobile's public material names the IP ranges callbacks come from
//!   (<https://docs.inmobile.dk/>, "Status callbacks / Incoming SMS-message") but neither their
//!   body nor a signature. optbridge reads them in the shapes of the v4 pull API's objects
//!   (.NET client `StatusReport`/`DeliveryInfo`, `IncomingMessage`): a status report
//!   `{"messageId","deliveryInfo":{"stateCode":1|-1|-2,…}}` (one, an array, or `{"reports":[…]}`),
//!   an incoming message `{"from":{"countryCode","phoneNumber","rawSource"},"to":{…,"msisdn"},
//!   "text","receivedAt"}` (one, an array, or `{"messages":[…]}`). Both URLs carry
//!   `?secret={INMOBILE_WEBHOOK_SECRET}` (nothing better is documented). Where the real shape
//!   differs, the code on the landing page still confirms: it needs no inbound message.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use url::Url;

use super::outbound::SmsStatus;
use super::provider::{self, CallbackError, CallbackKind, CallbackRequest, ProviderEvent, SmsGateway, SmsSendError};
use crate::config::InMobileSettings;

/// The name in `SMS_PROVIDER` and in the callback paths (`/webhooks/inmobile/…`).
pub const NAME: &str = "inmobile";
pub const STATUS_PATH: &str = "webhooks/inmobile/status";
pub const INBOUND_PATH: &str = "webhooks/inmobile/inbound";

pub struct InMobileClient {
    http: reqwest::Client,
    settings: InMobileSettings,
    outgoing_url: Url,
    status_callback: Url,
}

impl InMobileClient {
    pub fn new(settings: InMobileSettings, base_url: &Url, timeout: Duration) -> Result<Self, String> {
        let outgoing_url = settings
            .api_base
            .join("v4/sms/outgoing")
            .map_err(|e| format!("INMOBILE_API_BASE: {e}"))?;
        let status_callback = provider::callback_url(base_url, STATUS_PATH, &settings.webhook_secret)?;
        Ok(Self {
            http: provider::http_client(timeout)?,
            settings,
            outgoing_url,
            status_callback,
        })
    }

    async fn send_sms(&self, to: &str, body: &str) -> Result<String, SmsSendError> {
        let payload = json!({"messages": [{
            // inMobile takes the MSISDN without the leading "+".
            "to": to.trim_start_matches('+'),
            "text": body,
            "from": self.settings.from,
            "statusCallbackUrl": self.status_callback.as_str(),
            // A number on the account's blacklist (opted out at inMobile) is not sent to.
            "respectBlacklist": true,
        }]});
        let response = self
            .http
            .post(self.outgoing_url.clone())
            .basic_auth("_", Some(&self.settings.api_key))
            .json(&payload)
            .send()
            .await
            .map_err(|e| provider::unreachable(NAME, &e))?;
        let status = response.status();
        let retry_after = provider::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return accepted(&text);
        }
        Err(classify(status, retry_after, &text))
    }
}

/// The message id of an accepted send, or why the answer says it was not.
fn accepted(text: &str) -> Result<String, SmsSendError> {
    let unexpected = |why: &str| SmsSendError::Transient {
        reason: format!("unexpected inMobile answer ({why})"),
        retry_after: None,
    };
    let answer: Value = serde_json::from_str(text).map_err(|e| unexpected(&e.to_string()))?;
    let result = answer
        .get("results")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .ok_or_else(|| unexpected("no results"))?;
    if result.pointer("/numberDetails/isValidMsisdn") == Some(&Value::Bool(false)) {
        return Err(SmsSendError::Permanent {
            code: None,
            reason: "invalid number (inMobile: isValidMsisdn false)".into(),
            opted_out: false,
        });
    }
    match result.get("messageId") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        _ => Err(unexpected("no messageId")),
    }
}

/// Sorts an inMobile refusal into temporary and permanent.
fn classify(status: reqwest::StatusCode, retry_after: Option<Duration>, text: &str) -> SmsSendError {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let mut detail = body
        .as_ref()
        .and_then(|b| b.get("errorMessage"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    if let Some(details) = body.as_ref().and_then(|b| b.get("details")).and_then(Value::as_array) {
        let extra: Vec<&str> = details.iter().filter_map(Value::as_str).collect();
        if !extra.is_empty() {
            detail = format!("{detail} ({})", extra.join("; "));
        }
    }
    let reason = format!("HTTP {} (inMobile): {detail}", status.as_u16());
    if let Some(transient) = provider::transient_status(status, retry_after, &reason) {
        return transient;
    }
    if status == reqwest::StatusCode::FORBIDDEN {
        // The key lacks a permission: the operator's to fix, then the message goes out.
        return SmsSendError::Transient {
            reason,
            retry_after: None,
        };
    }
    SmsSendError::Permanent {
        code: Some(u32::from(status.as_u16())),
        reason,
        opted_out: false,
    }
}

/// The items of a callback body: one object, an array, or an object holding them under `key`.
fn items<'a>(body: &'a Value, key: &str) -> Vec<&'a Value> {
    match body {
        Value::Array(all) => all.iter().collect(),
        Value::Object(map) => match map.get(key) {
            Some(Value::Array(all)) => all.iter().collect(),
            _ => vec![body],
        },
        _ => Vec::new(),
    }
}

/// `deliveryInfo.stateCode` (1 delivered, -1 failed, -2 cancelled, 0 unknown), as a number or
/// as its name (.NET `MessageStateCode`).
fn state(report: &Value) -> Option<SmsStatus> {
    let code = report.pointer("/deliveryInfo/stateCode")?;
    let code = match code {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "delivered" => 1,
            "failed" => -1,
            "cancelled" | "canceled" => -2,
            other => other.parse().ok()?,
        },
        _ => return None,
    };
    match code {
        1 => Some(SmsStatus::Delivered),
        -1 => Some(SmsStatus::Failed),
        -2 => Some(SmsStatus::Canceled),
        _ => None,
    }
}

fn text_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An MSISDN object (`countryCode` + `phoneNumber`, or `msisdn`/`rawSource`) as E.164.
fn msisdn(number: &Value) -> Option<String> {
    let digits = match (text_at(number, "/countryCode"), text_at(number, "/phoneNumber")) {
        (Some(cc), Some(national)) => format!("{cc}{national}"),
        _ => text_at(number, "/msisdn")
            .or_else(|| text_at(number, "/rawSource"))?
            .to_owned(),
    };
    let digits = digits.trim_start_matches('+');
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| format!("+{digits}"))
}

fn inbound_event(message: &Value) -> Option<ProviderEvent> {
    let from = message.get("from").and_then(msisdn)?;
    let to = message.get("to").and_then(msisdn).unwrap_or_default();
    let text = text_at(message, "/text").unwrap_or_default().to_owned();
    let received = message.get("receivedAt").map(Value::to_string).unwrap_or_default();
    // The pull API's message has no id: one is derived from what identifies it, so a callback
    // inMobile repeats is recorded once.
    let message_sid = match text_at(message, "/messageId") {
        Some(id) => id.to_owned(),
        None => format!(
            "inmobile-{}",
            &crate::crypto::sha256_hex(format!("{from}\n{to}\n{received}\n{text}").as_bytes())[..32]
        ),
    };
    Some(ProviderEvent::Inbound {
        message_sid,
        from,
        to,
        text,
    })
}

impl SmsGateway for InMobileClient {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sender(&self) -> String {
        self.settings.from.clone()
    }

    fn send<'a>(
        &'a self,
        _workspace_id: &'a str,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsSendError>> {
        Box::pin(self.send_sms(to, body))
    }

    fn callback(&self, kind: CallbackKind, request: CallbackRequest<'_>) -> Result<Vec<ProviderEvent>, CallbackError> {
        if !provider::secret_matches(request.query, &self.settings.webhook_secret) {
            return Err(CallbackError::Forbidden);
        }
        let body: Value =
            serde_json::from_slice(request.body).map_err(|e| CallbackError::Malformed(format!("not JSON ({e})")))?;
        match kind {
            CallbackKind::Status => {
                let mut events = Vec::new();
                for report in items(&body, "reports") {
                    let Some(id) = report.get("messageId").and_then(|v| match v {
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }) else {
                        return Err(CallbackError::Malformed("a report without messageId".into()));
                    };
                    let Some(status) = state(report) else { continue };
                    let error = (status != SmsStatus::Delivered).then(|| {
                        let why = text_at(report, "/deliveryInfo/errorDescription")
                            .or_else(|| text_at(report, "/deliveryInfo/stateDescription"))
                            .unwrap_or("not delivered");
                        format!("inMobile: {}", why.chars().take(200).collect::<String>())
                    });
                    events.push(ProviderEvent::Status {
                        provider_sid: id,
                        status,
                        error,
                    });
                }
                Ok(events)
            }
            CallbackKind::Inbound => items(&body, "messages")
                .into_iter()
                .map(|m| inbound_event(m).ok_or_else(|| CallbackError::Malformed("a message without a sender".into())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn client() -> InMobileClient {
        let settings = InMobileSettings {
            api_key: "key".into(),
            from: "FancyShop".into(),
            api_base: Url::parse("https://api.inmobile.com").unwrap(),
            webhook_secret: "cb-secret".into(),
        };
        InMobileClient::new(
            settings,
            &Url::parse("https://shop.example/").unwrap(),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn json_request<'a>(query: &'a str, body: &'a str) -> CallbackRequest<'a> {
        CallbackRequest {
            public_url: "https://shop.example/webhooks/x",
            signature: None,
            query,
            content_type: "application/json",
            body: body.as_bytes(),
        }
    }

    #[test]
    fn urls_follow_the_pinned_format() {
        let c = client();
        assert_eq!(c.outgoing_url.as_str(), "https://api.inmobile.com/v4/sms/outgoing");
        assert_eq!(
            c.status_callback.as_str(),
            "https://shop.example/webhooks/inmobile/status?secret=cb-secret"
        );
    }

    #[test]
    fn the_send_answer_gives_the_message_id() {
        assert_eq!(
            accepted(r#"{"results":[{"messageId":"ID-1","smsCount":1}]}"#),
            Ok("ID-1".into())
        );
        assert_eq!(accepted(r#"{"results":[{"messageId":42}]}"#), Ok("42".into()));
        assert!(matches!(
            accepted(r#"{"results":[]}"#),
            Err(SmsSendError::Transient { .. })
        ));
        assert!(matches!(
            accepted(r#"{"results":[{"messageId":"x","numberDetails":{"isValidMsisdn":false}}]}"#),
            Err(SmsSendError::Permanent { .. })
        ));
    }

    #[test]
    fn status_reports_in_the_pull_apis_shape() {
        let c = client();
        let body = r#"{"reports":[
            {"messageId":"m1","deliveryInfo":{"stateCode":1,"stateDescription":"Delivered"}},
            {"messageId":"m2","deliveryInfo":{"stateCode":-1,"errorCode":3,"errorDescription":"Undeliverable message"}},
            {"messageId":"m3","deliveryInfo":{"stateCode":"Cancelled"}},
            {"messageId":"m4","deliveryInfo":{"stateCode":0}}]}"#;
        let events = c
            .callback(CallbackKind::Status, json_request("secret=cb-secret", body))
            .unwrap();
        assert_eq!(
            events,
            [
                ProviderEvent::Status {
                    provider_sid: "m1".into(),
                    status: SmsStatus::Delivered,
                    error: None
                },
                ProviderEvent::Status {
                    provider_sid: "m2".into(),
                    status: SmsStatus::Failed,
                    error: Some("inMobile: Undeliverable message".into())
                },
                ProviderEvent::Status {
                    provider_sid: "m3".into(),
                    status: SmsStatus::Canceled,
                    error: Some("inMobile: not delivered".into())
                },
            ]
        );
        let single = r#"{"messageId":"m1","deliveryInfo":{"stateCode":1}}"#;
        assert_eq!(
            c.callback(CallbackKind::Status, json_request("secret=cb-secret", single))
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            c.callback(CallbackKind::Status, json_request("secret=cb-secret", "id=1")),
            Err(CallbackError::Malformed(_))
        ));
        assert_eq!(
            c.callback(CallbackKind::Status, json_request("secret=nope", single)),
            Err(CallbackError::Forbidden)
        );
    }

    #[test]
    fn incoming_messages_become_e164_with_a_stable_id() {
        let c = client();
        let body = r#"{"from":{"countryCode":"45","phoneNumber":"20123456","rawSource":"4520123456","isValidMsisdn":true},
                       "to":{"countryCode":"45","phoneNumber":"1919","msisdn":"451919"},
                       "text":"JA","receivedAt":"2026-12-06T10:00:00Z"}"#;
        let first = c
            .callback(CallbackKind::Inbound, json_request("secret=cb-secret", body))
            .unwrap();
        let again = c
            .callback(CallbackKind::Inbound, json_request("secret=cb-secret", body))
            .unwrap();
        assert_eq!(first, again, "a repeated callback is the same message");
        let [
            ProviderEvent::Inbound {
                message_sid,
                from,
                to,
                text,
            },
        ] = &first[..]
        else {
            panic!("{first:?}")
        };
        assert_eq!(
            (from.as_str(), to.as_str(), text.as_str()),
            ("+4520123456", "+451919", "JA")
        );
        assert!(message_sid.starts_with("inmobile-"));
        let other = body.replace("10:00:00", "10:00:01");
        let later = c
            .callback(CallbackKind::Inbound, json_request("secret=cb-secret", &other))
            .unwrap();
        assert_ne!(first, later, "another message at another time");
        let raw_only = r#"{"messages":[{"from":{"rawSource":"+4520123456"},"text":"STOP","messageId":"in-7"}]}"#;
        assert!(matches!(
            &c.callback(CallbackKind::Inbound, json_request("secret=cb-secret", raw_only)).unwrap()[..],
            [ProviderEvent::Inbound { message_sid, from, .. }] if message_sid == "in-7" && from == "+4520123456"
        ));
    }

    #[test]
    fn errors_are_sorted_like_twilios() {
        let transient = |e: SmsSendError| matches!(e, SmsSendError::Transient { .. });
        assert!(transient(classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            ""
        )));
        assert!(transient(classify(StatusCode::SERVICE_UNAVAILABLE, None, "")));
        assert!(transient(classify(StatusCode::UNAUTHORIZED, None, "")));
        let refused = classify(
            StatusCode::BAD_REQUEST,
            None,
            r#"{"errorMessage":"Validation failed","details":["Invalid msisdn: 45"]}"#,
        );
        assert_eq!(
            refused,
            SmsSendError::Permanent {
                code: Some(400),
                reason: "HTTP 400 (inMobile): Validation failed (Invalid msisdn: 45)".into(),
                opted_out: false
            }
        );
    }
}
