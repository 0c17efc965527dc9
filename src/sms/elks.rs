//! 46elks (`SMS_PROVIDER=46elks`), the Swedish SMS API.
//!
//! - Sending: `POST {ELKS_API_BASE}/a1/sms`, HTTP Basic (API username and password), form fields
//!   `from`, `to` (E.164), `message`, `whendelivered`; the answer is JSON with the message `id`
//!   (<https://46elks.com/docs/send-sms>).
//! - Delivery reports: a form POST to `whendelivered` with `id`, `status` (`sent`, `delivered`,
//!   `failed`) and `delivered` (<https://46elks.com/docs/sms-delivery-reports>).
//! - Replies: a form POST to the number's `sms_url` with `id`, `from`, `to`, `message`,
//!   `direction=incoming`, `created` (<https://46elks.com/docs/receive-sms>). An answer with a body
//!   would be sent back as an SMS, so callbacks get 204 (`routes::webhooks`).
//! - 46elks signs nothing; its docs suggest an auth key in the URL's query. Both callback URLs
//!   carry `?secret={ELKS_WEBHOOK_SECRET}`, compared in constant time.
//!
//! Errors: 46elks answers a refused request with a non-2xx status and a short plain-text reason
//! ("Invalid to number", "Not enough credits", …). 429 and 5xx are temporary (honouring
//! Retry-After), as are 401 and an empty account (the operator's to fix); any other refusal
//! concerns this message and is permanent.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use url::Url;

use super::outbound::SmsStatus;
use super::provider::{self, CallbackError, CallbackKind, CallbackRequest, ProviderEvent, SmsGateway, SmsSendError};
use crate::config::ElksSettings;

/// The name in `SMS_PROVIDER` and in the callback paths (`/webhooks/46elks/…`).
pub const NAME: &str = "46elks";
pub const STATUS_PATH: &str = "webhooks/46elks/status";
pub const INBOUND_PATH: &str = "webhooks/46elks/inbound";

pub struct ElksClient {
    http: reqwest::Client,
    settings: ElksSettings,
    sms_url: Url,
    /// `whendelivered`: the status callback with its secret.
    when_delivered: Url,
}

#[derive(Deserialize)]
struct SmsResource {
    id: String,
}

impl ElksClient {
    pub fn new(settings: ElksSettings, base_url: &Url, timeout: Duration) -> Result<Self, String> {
        let sms_url = settings
            .api_base
            .join("a1/sms")
            .map_err(|e| format!("ELKS_API_BASE: {e}"))?;
        let when_delivered = provider::callback_url(base_url, STATUS_PATH, &settings.webhook_secret)?;
        Ok(Self {
            http: provider::http_client(timeout)?,
            settings,
            sms_url,
            when_delivered,
        })
    }

    async fn send_sms(&self, to: &str, body: &str) -> Result<String, SmsSendError> {
        let form = [
            ("from", self.settings.from.as_str()),
            ("to", to),
            ("message", body),
            ("whendelivered", self.when_delivered.as_str()),
        ];
        let response = self
            .http
            .post(self.sms_url.clone())
            .basic_auth(&self.settings.api_username, Some(&self.settings.api_password))
            .form(&form)
            .send()
            .await
            .map_err(|e| provider::unreachable(NAME, &e))?;
        let status = response.status();
        let retry_after = provider::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str::<SmsResource>(&text)
                .map(|m| m.id)
                .map_err(|e| SmsSendError::Transient {
                    reason: format!("unexpected 46elks answer ({e})"),
                    retry_after: None,
                });
        }
        Err(classify(status, retry_after, &text))
    }
}

/// Sorts a 46elks refusal into temporary and permanent.
fn classify(status: reqwest::StatusCode, retry_after: Option<Duration>, text: &str) -> SmsSendError {
    let detail: String = text.trim().chars().take(200).collect();
    let reason = format!("HTTP {} (46elks): {detail}", status.as_u16());
    if let Some(transient) = provider::transient_status(status, retry_after, &reason) {
        return transient;
    }
    let lower = detail.to_lowercase();
    if lower.contains("credit") || lower.contains("balance") {
        // An empty account: the operator tops it up and the message goes out.
        return SmsSendError::Transient {
            reason,
            retry_after: None,
        };
    }
    SmsSendError::Permanent {
        code: Some(u32::from(status.as_u16())),
        reason: if lower.contains("to number") || lower.contains("recipient") {
            format!("invalid number: {reason}")
        } else {
            reason
        },
        opted_out: false,
    }
}

impl SmsGateway for ElksClient {
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
        let fields = provider::form_fields(request.body);
        let field = |name| provider::field(&fields, name);
        match kind {
            CallbackKind::Status => {
                let (Some(id), Some(status)) = (field("id"), field("status")) else {
                    return Err(CallbackError::Malformed("id and status are required".into()));
                };
                let status = match status {
                    "sent" => SmsStatus::Sent,
                    "delivered" => SmsStatus::Delivered,
                    "failed" => SmsStatus::Failed,
                    // A state this version does not know changes nothing.
                    _ => return Ok(Vec::new()),
                };
                Ok(vec![ProviderEvent::Status {
                    provider_sid: id.to_owned(),
                    status,
                    error: (status == SmsStatus::Failed).then(|| "46elks: failed".to_owned()),
                }])
            }
            CallbackKind::Inbound => {
                if field("direction").is_some_and(|d| d != "incoming") {
                    return Ok(Vec::new());
                }
                let (Some(id), Some(from), Some(to)) = (field("id"), field("from"), field("to")) else {
                    return Err(CallbackError::Malformed("id, from and to are required".into()));
                };
                Ok(vec![ProviderEvent::Inbound {
                    message_sid: id.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                    text: field("message").unwrap_or_default().to_owned(),
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn client() -> ElksClient {
        let settings = ElksSettings {
            api_username: "u1".into(),
            api_password: "p1".into(),
            from: "Skobutik".into(),
            api_base: Url::parse("https://api.46elks.com").unwrap(),
            webhook_secret: "s3cret".into(),
        };
        ElksClient::new(
            settings,
            &Url::parse("https://shop.example").unwrap(),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn request<'a>(query: &'a str, body: &'a str) -> CallbackRequest<'a> {
        CallbackRequest {
            public_url: "https://shop.example/webhooks/x",
            signature: None,
            query,
            content_type: "application/x-www-form-urlencoded",
            body: body.as_bytes(),
        }
    }

    #[test]
    fn urls_follow_the_docs() {
        let c = client();
        assert_eq!(c.sms_url.as_str(), "https://api.46elks.com/a1/sms");
        assert_eq!(
            c.when_delivered.as_str(),
            "https://shop.example/webhooks/46elks/status?secret=s3cret"
        );
    }

    /// The example payload of <https://46elks.com/docs/receive-sms>.
    #[test]
    fn the_documented_inbound_example_is_read() {
        let body = "direction=incoming&id=sf8425555e5d8db61dda7a7b3f1b91bdb&from=%2B46706861004&\
                    to=%2B46706860000&created=2018-07-13T13%3A57%3A23.741000&message=Hello%20how%20are%20you%3F";
        let events = client()
            .callback(CallbackKind::Inbound, request("secret=s3cret", body))
            .unwrap();
        assert_eq!(
            events,
            [ProviderEvent::Inbound {
                message_sid: "sf8425555e5d8db61dda7a7b3f1b91bdb".into(),
                from: "+46706861004".into(),
                to: "+46706860000".into(),
                text: "Hello how are you?".into(),
            }]
        );
        let outgoing = body.replace("direction=incoming", "direction=outgoing");
        assert_eq!(
            client().callback(CallbackKind::Inbound, request("secret=s3cret", &outgoing)),
            Ok(Vec::new())
        );
    }

    #[test]
    fn delivery_reports_map_to_statuses() {
        let c = client();
        let read = |status: &str| {
            c.callback(
                CallbackKind::Status,
                request("secret=s3cret", &format!("id=s1&status={status}")),
            )
        };
        assert!(matches!(
            &read("delivered").unwrap()[..],
            [ProviderEvent::Status {
                status: SmsStatus::Delivered,
                ..
            }]
        ));
        assert!(matches!(
            &read("failed").unwrap()[..],
            [ProviderEvent::Status {
                status: SmsStatus::Failed,
                error: Some(_),
                ..
            }]
        ));
        assert!(matches!(
            &read("sent").unwrap()[..],
            [ProviderEvent::Status {
                status: SmsStatus::Sent,
                ..
            }]
        ));
        assert_eq!(read("teleported"), Ok(Vec::new()));
        assert!(matches!(
            c.callback(CallbackKind::Status, request("secret=s3cret", "status=delivered")),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn a_missing_or_wrong_secret_is_refused_before_the_body_is_read() {
        let c = client();
        for query in [
            "",
            "secret=",
            "secret=S3CRET",
            "secret=s3cre",
            "Secret=s3cret",
            "secret=s3cret&secret=x",
        ] {
            assert_eq!(
                c.callback(CallbackKind::Status, request(query, "id=s1&status=delivered")),
                Err(CallbackError::Forbidden),
                "{query}"
            );
        }
    }

    #[test]
    fn errors_are_sorted_like_twilios() {
        let transient = |e: &SmsSendError| matches!(e, SmsSendError::Transient { .. });
        assert!(transient(&classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            "slow down"
        )));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(3)), ""),
            SmsSendError::Transient {
                reason: "HTTP 429 (46elks): ".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(transient(&classify(StatusCode::BAD_GATEWAY, None, "")));
        assert!(transient(&classify(StatusCode::UNAUTHORIZED, None, "Unauthorized")));
        assert!(transient(&classify(StatusCode::FORBIDDEN, None, "Not enough credits")));
        let invalid = classify(StatusCode::FORBIDDEN, None, "Invalid to number");
        assert!(
            matches!(&invalid, SmsSendError::Permanent { reason, opted_out: false, .. } if reason.starts_with("invalid number"))
        );
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, None, "Missing key message"),
            SmsSendError::Permanent { .. }
        ));
    }
}
