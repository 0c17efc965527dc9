//! A fake of inMobile's v4 SMS API inside the test process: a real HTTP server answering
//! `POST /v4/sms/outgoing` (HTTP Basic with the API key as the password; JSON
//! `{"messages":[{"to","text","from","statusCallbackUrl","respectBlacklist"}]}`; answer
//! `{"results":[{"numberDetails",…,"messageId"}]}`; errors `{"errorMessage","details":[…]}`),
//! recording every request and injecting faults (429 with Retry-After, 5xx, a validation
//! refusal, a slow answer). It also acts as inMobile towards the product: status callbacks to the
//! message's `statusCallbackUrl` and incoming messages to the configured URL.
//!
//! Written from the official .NET client (the public reference for v4):
//! <https://github.com/inMobile/inMobile-.NET-API-Client> — `ApiRequestHelper.cs` (Basic `_:key`,
//! JSON), `SmsOutgoingApiMethods.cs` (`/v4/sms/outgoing`), `OutgoingSmsMessageCreateResult.cs`,
//! `NumberDetails.cs`, `ErrorResponse.cs`, `StatusReport.cs`/`DeliveryInfo.cs`/`MessageState.cs`
//! (status reports), `IncomingMessage*.cs` (incoming messages); callback IP ranges:
//! <https://docs.inmobile.dk/>. The push callbacks' bodies are not documented publicly: the fake
//! sends them in the shapes of those pull-API objects, which is what optbridge reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One message of a `POST /v4/sms/outgoing` as the fake received and answered it.
#[derive(Debug, Clone)]
pub struct InMobileSms {
    pub message_id: Option<String>,
    /// The message object exactly as sent (to assert the pinned format).
    pub json: Value,
    pub to: String,
    pub text: String,
    pub status_callback_url: Option<String>,
    pub content_type: String,
    /// The user part of the Basic credentials.
    pub user: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub enum InMobileFault {
    TooManyRequests {
        retry_after_secs: u64,
    },
    ServerError {
        status: u16,
    },
    /// An API error, e.g. 400 "Validation failed".
    Refused {
        status: u16,
        message: String,
    },
    Delay {
        duration: Duration,
    },
}

pub struct FakeInMobile {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Shared {
    api_key: String,
    state: Mutex<State>,
    accepted: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    faults: Vec<(Option<String>, InMobileFault, u32)>,
    requests: Vec<InMobileSms>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FakeInMobile {
    pub async fn start(api_key: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake inMobile binds");
        let addr = listener.local_addr().expect("fake inMobile address");
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            state: Mutex::new(State::default()),
            accepted: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v4/sms/outgoing", web::post().to(outgoing))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(json!({"errorMessage": "Not found", "details": []}))
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("fake inMobile listens")
        .run();
        Self {
            addr,
            shared,
            server: tokio::spawn(server),
        }
    }

    /// The value for `INMOBILE_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_fault(&self, to: Option<&str>, fault: InMobileFault, times: u32) {
        self.shared.state().faults.push((to.map(str::to_owned), fault, times));
    }

    pub fn requests(&self) -> Vec<InMobileSms> {
        self.shared.state().requests.clone()
    }

    pub fn accepted(&self) -> Vec<InMobileSms> {
        self.requests().into_iter().filter(|r| r.status == 200).collect()
    }

    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<InMobileSms> {
        let mut accepted = self.shared.accepted.subscribe();
        if tokio::time::timeout(timeout, accepted.wait_for(|&c| c >= n))
            .await
            .is_err()
        {
            panic!(
                "fake inMobile: expected {n} accepted message(s), got {:#?}",
                self.requests()
            );
        }
        self.accepted()
    }

    /// The 6-digit code in the latest accepted message to `to` (digits, no `+`).
    pub fn last_code_for(&self, to: &str) -> Option<String> {
        let latest = self.accepted().into_iter().rev().find(|r| r.to == to)?;
        latest
            .text
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .map(str::to_owned)
    }

    /// Posts a status report for `message_id` (state 1 delivered, -1 failed, -2 cancelled).
    pub async fn report(&self, client: &reqwest::Client, url: &str, message_id: &str, state_code: i32) -> u16 {
        let mut delivery = json!({
            "stateCode": state_code,
            "stateDescription": match state_code { 1 => "Delivered", -1 => "Failed", -2 => "Cancelled", _ => "Unknown" },
        });
        if state_code != 1 {
            delivery["errorCode"] = json!(3);
            delivery["errorDescription"] = json!("Undeliverable message");
        }
        let body = json!({"reports": [{
            "messageId": message_id,
            "numberDetails": {"countryCode": "45", "phoneNumber": "20123456", "rawMsisdn": "4520123456",
                              "isValidMsisdn": true, "isAnonymized": false},
            "deliveryInfo": delivery,
            "chargeInfo": {"smsCount": 1},
        }]});
        post_json(client, url, &body).await
    }

    /// Posts an incoming message from `from` (E.164) to the number `to` (digits).
    pub async fn incoming(&self, client: &reqwest::Client, url: &str, from: &str, to: &str, text: &str) -> u16 {
        let digits = from.trim_start_matches('+');
        let (country, national) = digits.split_at(2);
        let body = json!({
            "from": {"countryCode": country, "phoneNumber": national, "rawSource": digits, "isValidMsisdn": true},
            "to": {"countryCode": &to[..2], "phoneNumber": &to[2..], "msisdn": to},
            "text": text,
            "receivedAt": chrono::Utc::now().to_rfc3339(),
        });
        post_json(client, url, &body).await
    }
}

impl Drop for FakeInMobile {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> u16 {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} as inMobile: {e}"))
        .status()
        .as_u16()
}

fn error(status: u16, message: &str, details: &[String]) -> (u16, Value) {
    (status, json!({"errorMessage": message, "details": details}))
}

async fn outgoing(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|c| BASE64.decode(c.trim()).ok())
        .and_then(|c| String::from_utf8(c).ok())
        .and_then(|c| c.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
    let messages: Vec<Value> = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|_| content_type.starts_with("application/json"))
        .and_then(|v| v.get("messages").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let first = messages.first().cloned().unwrap_or(Value::Null);
    let text_of = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let to = text_of(&first, "to");
    let mut delay = None;
    let mut retry_after = None;
    let (status, answer) = match &credentials {
        Some((_, key)) if *key == shared.api_key => {
            let fault = {
                let mut state = shared.state();
                state
                    .faults
                    .iter_mut()
                    .find(|(number, _, left)| *left > 0 && number.as_deref().is_none_or(|n| n == to))
                    .map(|(_, fault, left)| {
                        *left -= 1;
                        fault.clone()
                    })
            };
            match fault {
                Some(InMobileFault::TooManyRequests { retry_after_secs }) => {
                    retry_after = Some(retry_after_secs);
                    error(429, "Too many requests", &[])
                }
                Some(InMobileFault::ServerError { status }) => error(status, "Internal server error", &[]),
                Some(InMobileFault::Refused { status, message }) => error(status, &message, &[]),
                other => {
                    if let Some(InMobileFault::Delay { duration }) = other {
                        delay = Some(duration);
                    }
                    create(&messages)
                }
            }
        }
        _ => error(401, "Unauthorized", &[]),
    };
    {
        let mut state = shared.state();
        let ids: Vec<Option<String>> = answer
            .get("results")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .map(|m| m.get("messageId").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let logged = if messages.is_empty() {
            vec![Value::Null]
        } else {
            messages.clone()
        };
        for (i, message) in logged.into_iter().enumerate() {
            state.requests.push(InMobileSms {
                message_id: ids.get(i).cloned().flatten(),
                to: text_of(&message, "to"),
                text: text_of(&message, "text"),
                status_callback_url: message
                    .get("statusCallbackUrl")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                json: message,
                content_type: content_type.clone(),
                user: credentials.as_ref().map(|(u, _)| u.clone()).unwrap_or_default(),
                status,
            });
        }
        let accepted = state.requests.iter().filter(|r| r.status == 200).count();
        shared.accepted.send_replace(accepted);
    }
    if let Some(duration) = delay {
        tokio::time::sleep(duration).await;
    }
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
    if let Some(secs) = retry_after {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    response.json(answer)
}

/// Validates the messages as inMobile does and, when all are valid, creates them.
fn create(messages: &[Value]) -> (u16, Value) {
    if messages.is_empty() {
        return error(
            400,
            "Validation failed",
            &["messages: at least one message is required".into()],
        );
    }
    let mut results = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
        let (to, body, from) = (text("to"), text("text"), text("from"));
        let mut problems = Vec::new();
        // An MSISDN: country code and number, digits only, no "+".
        if !(8..=15).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!("messages[{i}].to: invalid msisdn '{to}'"));
        }
        if body.is_empty() {
            problems.push(format!("messages[{i}].text is required"));
        }
        let text_sender =
            (3..=11).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
        let number_sender = (1..=14).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
        if !text_sender && !number_sender {
            problems.push(format!("messages[{i}].from: invalid sender '{from}'"));
        }
        if let Some(url) = m.get("statusCallbackUrl").and_then(Value::as_str)
            && url::Url::parse(url).is_err()
        {
            problems.push(format!("messages[{i}].statusCallbackUrl is not a URL"));
        }
        if !problems.is_empty() {
            return error(400, "Validation failed", &problems);
        }
        results.push(json!({
            "numberDetails": {"countryCode": &to[..2], "phoneNumber": &to[2..], "rawMsisdn": to,
                              "isValidMsisdn": true, "isAnonymized": false},
            "text": body,
            "from": from,
            "smsCount": 1,
            "messageId": uuid::Uuid::now_v7().to_string(),
            "encoding": "gsm7",
        }));
    }
    (200, json!({"results": results}))
}
