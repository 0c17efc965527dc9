//! A fake of 46elks' SMS API inside the test process, written from 46elks' public docs: a real
//! HTTP server answering `POST /a1/sms` (HTTP Basic with the API username and password; form
//! fields `from`, `to`, `message`, `whendelivered`; JSON answer with the message `id`), recording
//! every request and injecting the faults a real API produces (429 with Retry-After, 5xx, a
//! refusal with 46elks' plain-text reason, a slow answer). It also acts as 46elks towards the
//! product: delivery reports to `whendelivered` and incoming SMS to the number's `sms_url`, as
//! form POSTs with the documented fields.
//!
//! Sending: <https://46elks.com/docs/send-sms>; delivery reports:
//! <https://46elks.com/docs/sms-delivery-reports>; incoming SMS: <https://46elks.com/docs/receive-sms>.
//! The docs show refusals as a short text with a non-2xx status; which status goes with which
//! reason is not documented, so the fake answers 403 for a refused request (its choice).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One `POST /a1/sms` as the fake received and answered it.
#[derive(Debug, Clone)]
pub struct ElksSms {
    /// The message id when accepted.
    pub id: Option<String>,
    pub from: String,
    pub to: String,
    pub message: String,
    pub when_delivered: Option<String>,
    /// Every form field, as sent (to assert the exact format).
    pub fields: Vec<(String, String)>,
    pub content_type: String,
    /// The HTTP status the fake answered (200 when accepted).
    pub status: u16,
}

/// A failure to inject for the next requests to a number (or to any number).
#[derive(Debug, Clone)]
pub enum ElksFault {
    TooManyRequests {
        retry_after_secs: u64,
    },
    ServerError {
        status: u16,
    },
    /// A refusal with 46elks' plain-text reason, e.g. 403 "Invalid to number".
    Refused {
        status: u16,
        reason: String,
    },
    /// Accept the message but answer only after `duration`.
    Delay {
        duration: Duration,
    },
}

pub struct FakeElks {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Shared {
    username: String,
    password: String,
    state: Mutex<State>,
    accepted: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    faults: Vec<(Option<String>, ElksFault, u32)>,
    requests: Vec<ElksSms>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FakeElks {
    /// Starts the API for one account, accepting HTTP Basic `username:password`.
    pub async fn start(username: &str, password: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake 46elks binds");
        let addr = listener.local_addr().expect("fake 46elks address");
        let shared = Arc::new(Shared {
            username: username.to_owned(),
            password: password.to_owned(),
            state: Mutex::new(State::default()),
            accepted: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                // The docs' samples write both `/a1/sms` and `/a1/SMS`.
                .route("/a1/sms", web::post().to(send_sms))
                .route("/a1/SMS", web::post().to(send_sms))
                .default_service(web::to(|| async { HttpResponse::NotFound().body("Not found") }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("fake 46elks listens")
        .run();
        Self {
            addr,
            shared,
            server: tokio::spawn(server),
        }
    }

    /// The value for `ELKS_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `fault` for the next `times` requests to `to` (`None`: any number).
    pub fn add_fault(&self, to: Option<&str>, fault: ElksFault, times: u32) {
        self.shared.state().faults.push((to.map(str::to_owned), fault, times));
    }

    /// Removes every pending fault: the API works again.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    pub fn requests(&self) -> Vec<ElksSms> {
        self.shared.state().requests.clone()
    }

    pub fn accepted(&self) -> Vec<ElksSms> {
        self.requests().into_iter().filter(|r| r.status == 200).collect()
    }

    /// Waits until at least `n` messages were accepted; panics after `timeout` with what arrived.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<ElksSms> {
        let mut accepted = self.shared.accepted.subscribe();
        if tokio::time::timeout(timeout, accepted.wait_for(|&c| c >= n))
            .await
            .is_err()
        {
            panic!(
                "fake 46elks: expected {n} accepted message(s), got {:#?}",
                self.requests()
            );
        }
        self.accepted()
    }

    /// The 6-digit code in the latest accepted message to `to`.
    pub fn last_code_for(&self, to: &str) -> Option<String> {
        let latest = self.accepted().into_iter().rev().find(|r| r.to == to)?;
        latest
            .message
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .map(str::to_owned)
    }

    /// Posts a delivery report for message `id` to `when_delivered`, as 46elks does.
    pub async fn report(&self, client: &reqwest::Client, when_delivered: &str, id: &str, status: &str) -> u16 {
        let delivered = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let mut form = vec![("id", id), ("status", status)];
        if status == "delivered" {
            form.push(("delivered", &delivered));
        }
        post_form(client, when_delivered, &form).await
    }

    /// Posts an incoming SMS to `sms_url` as 46elks does (the documented example's fields).
    pub async fn incoming(&self, client: &reqwest::Client, sms_url: &str, from: &str, to: &str, message: &str) -> u16 {
        let id = format!("s{}", uuid::Uuid::now_v7().simple());
        self.incoming_with_id(client, sms_url, &id, from, to, message).await
    }

    pub async fn incoming_with_id(
        &self,
        client: &reqwest::Client,
        sms_url: &str,
        id: &str,
        from: &str,
        to: &str,
        message: &str,
    ) -> u16 {
        let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let form = [
            ("direction", "incoming"),
            ("id", id),
            ("from", from),
            ("to", to),
            ("created", created.as_str()),
            ("message", message),
        ];
        post_form(client, sms_url, &form).await
    }
}

impl Drop for FakeElks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> u16 {
    client
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} as 46elks: {e}"))
        .status()
        .as_u16()
}

fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let credentials = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(credentials.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// A text sender id: at most 11 letters and digits (46elks' "alphanumeric sender ID").
fn is_text_sender(from: &str) -> bool {
    (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
}

async fn send_sms(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let fields: Vec<(String, String)> = if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        Vec::new()
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (from, to, message, when_delivered) = (get("from"), get("to"), get("message"), get("whendelivered"));
    let mut delay = None;
    let mut retry_after = None;
    let (status, answer, id): (u16, String, Option<String>) =
        if basic_auth(&req) != Some((shared.username.clone(), shared.password.clone())) {
            (401, "Unauthorized".into(), None)
        } else {
            let fault = {
                let mut state = shared.state();
                let found = state
                    .faults
                    .iter_mut()
                    .find(|(number, _, left)| *left > 0 && number.as_deref().is_none_or(|n| n == to));
                found.map(|(_, fault, left)| {
                    *left -= 1;
                    fault.clone()
                })
            };
            match fault {
                Some(ElksFault::TooManyRequests { retry_after_secs }) => {
                    retry_after = Some(retry_after_secs);
                    (429, "Too many requests".into(), None)
                }
                Some(ElksFault::ServerError { status }) => (status, "Internal server error".into(), None),
                Some(ElksFault::Refused { status, reason }) => (status, reason, None),
                other => {
                    if let Some(ElksFault::Delay { duration }) = other {
                        delay = Some(duration);
                    }
                    create(&from, &to, &message, &when_delivered)
                }
            }
        };
    {
        let mut state = shared.state();
        state.requests.push(ElksSms {
            id: id.clone(),
            from,
            to,
            message,
            when_delivered: Some(when_delivered).filter(|w| !w.is_empty()),
            fields,
            content_type,
            status,
        });
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
    if status == 200 {
        response.content_type("application/json").body(answer)
    } else {
        response.content_type("text/plain").body(answer)
    }
}

/// Validates a message as 46elks does and, when valid, creates it: (status, body, id).
fn create(from: &str, to: &str, message: &str, when_delivered: &str) -> (u16, String, Option<String>) {
    for (name, value) in [("from", from), ("to", to), ("message", message)] {
        if value.is_empty() {
            return (403, format!("Missing key {name}"), None);
        }
    }
    if !is_e164(to) {
        return (403, "Invalid to number".into(), None);
    }
    if !is_e164(from) && !is_text_sender(from) {
        return (403, "Invalid from".into(), None);
    }
    if !when_delivered.is_empty() && url::Url::parse(when_delivered).is_err() {
        return (403, "Invalid whendelivered url".into(), None);
    }
    let id = format!("s{}", uuid::Uuid::now_v7().simple());
    let body = json!({
        "status": "created",
        "direction": "outgoing",
        "from": from,
        "created": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "parts": 1,
        "to": to,
        "cost": 3500,
        "message": message,
        "id": id,
    });
    (200, body.to_string(), Some(id))
}
