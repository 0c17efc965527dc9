//! A fake of Twilio's Programmable Messaging REST API inside the test process: a real HTTP server
//! that answers `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio does (Basic auth,
//! form fields, Twilio's error JSON and codes), records every request, and injects the faults the
//! real API produces (429 with Retry-After, 5xx, permanent errors such as 21610, slow answers).
//! It also signs webhook requests as Twilio does, so a test can act as Twilio towards the product.
//!
//! Resource: <https://www.twilio.com/docs/messaging/api/message-resource>; error codes:
//! <https://www.twilio.com/docs/api/errors>; signing: <https://www.twilio.com/docs/usage/security>.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const API_VERSION: &str = "2010-04-01";
/// Twilio refuses longer bodies with 21617 (<https://www.twilio.com/docs/api/errors/21617>).
const MAX_BODY_CHARS: usize = 1600;

/// One `POST …/Messages.json` as the fake received and answered it.
#[derive(Debug, Clone)]
pub struct SentSms {
    /// The message SID (`SM…`) when accepted; `None` when rejected.
    pub sid: Option<String>,
    /// `To` as sent (empty when missing).
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `Body` as sent (empty when missing).
    pub body: String,
    pub status_callback: Option<String>,
    /// The HTTP status the fake answered (201 when accepted).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// A failure to inject. Faults are kept in the order they were added; each request takes one use
/// of the first fault with uses left whose number matches its `To` (or that is for any number).
#[derive(Debug, Clone)]
pub enum TwilioFault {
    /// 429 with `Retry-After: retry_after_secs` and Twilio's error 20429.
    TooManyRequests { retry_after_secs: u64 },
    /// A 5xx (500, 502, 503, 504) with Twilio's JSON error body.
    ServerError { status: u16 },
    /// A Twilio API error, e.g. status 400 with code 21610 (unsubscribed recipient), 21614 (not a
    /// mobile number) or 21211 (invalid number).
    TwilioError { status: u16, code: u32, message: String },
    /// Handle the request normally (a valid one is accepted and recorded as sent, as Twilio would
    /// send it) but answer only after `duration`, so the client's timeout fires first.
    Delay { duration: Duration },
}

/// A Twilio Messages API on `127.0.0.1`, port 0. Dropping it stops the server.
pub struct FakeTwilio {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    state: Mutex<State>,
    /// The number of accepted messages, so waiters wake when one arrives.
    delivered: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    faults: Vec<PendingFault>,
    requests: Vec<SentSms>,
}

struct PendingFault {
    /// `None`: any number.
    to: Option<String>,
    fault: TwilioFault,
    uses_left: u32,
}

impl State {
    /// Takes one use of the first fault for `to` (or for any number) that has uses left.
    fn take_fault(&mut self, to: &str) -> Option<TwilioFault> {
        let pending = self
            .faults
            .iter_mut()
            .find(|p| p.uses_left > 0 && p.to.as_deref().is_none_or(|number| number == to))?;
        if pending.uses_left != u32::MAX {
            pending.uses_left -= 1;
        }
        Some(pending.fault.clone())
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what the fake received from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn authenticated(&self, req: &HttpRequest, path_account_sid: &str) -> bool {
        let Some((user, password)) = basic_auth(req) else {
            return false;
        };
        path_account_sid == self.account_sid && user == self.account_sid && password == self.auth_token
    }
}

impl FakeTwilio {
    /// Starts the API for one account, accepting HTTP Basic `account_sid:auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake Twilio binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Twilio address");
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            state: Mutex::new(State::default()),
            delivered: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .service(
                    web::resource(format!("/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"))
                        .route(web::post().to(create_message))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("fake Twilio listens")
        .run();
        Self {
            addr,
            shared,
            server: tokio::spawn(server),
        }
    }

    /// The value for `TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `fault` for the next `times` requests to `to` (`None`: to any number; u32::MAX =
    /// always), after the faults added before it are used up.
    pub fn add_fault(&self, to: Option<&str>, fault: TwilioFault, times: u32) {
        match &fault {
            TwilioFault::ServerError { status } => {
                assert!(
                    (500..600).contains(status),
                    "fake Twilio: ServerError needs a 5xx, not {status}"
                );
            }
            TwilioFault::TwilioError { status, .. } => {
                assert!(
                    (400..600).contains(status),
                    "fake Twilio: TwilioError needs a 4xx or 5xx, not {status}"
                );
            }
            TwilioFault::TooManyRequests { .. } | TwilioFault::Delay { .. } => {}
        }
        self.shared.state().faults.push(PendingFault {
            to: to.map(str::to_owned),
            fault,
            uses_left: times,
        });
    }

    /// Removes every pending fault: the API works again.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// Every message request, accepted or not, in the order it arrived.
    pub fn requests(&self) -> Vec<SentSms> {
        self.shared.state().requests.clone()
    }

    /// The accepted (201) messages, in the order they arrived.
    pub fn delivered(&self) -> Vec<SentSms> {
        let state = self.shared.state();
        state.requests.iter().filter(|r| r.status == 201).cloned().collect()
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics after
    /// `timeout` with every request that did arrive.
    pub async fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Vec<SentSms> {
        let mut delivered = self.shared.delivered.subscribe();
        let arrived = tokio::time::timeout(timeout, delivered.wait_for(|&count| count >= n)).await;
        if arrived.is_err() {
            let state = self.shared.state();
            let accepted = state.requests.iter().filter(|r| r.status == 201).count();
            let requests: String = state
                .requests
                .iter()
                .map(|r| format!("\n  {} to {}: {:?}", r.status, r.to, r.body))
                .collect();
            panic!(
                "fake Twilio: expected {n} accepted message(s) within {timeout:?}, got {accepted} of {} \
                 request(s):{requests}",
                state.requests.len(),
            );
        }
        self.delivered()
    }

    /// The 6-digit code in the latest accepted message to `to`, if any.
    pub fn last_code_for(&self, to: &str) -> Option<String> {
        let state = self.shared.state();
        let latest = state.requests.iter().rev().find(|r| r.status == 201 && r.to == to)?;
        six_digit_code(&latest.body)
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        // Dropping the server future stops its accept loop and worker.
        self.server.abort();
    }
}

/// The first run of exactly six ASCII digits (longer runs, like phone numbers, do not count).
fn six_digit_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// The form fields of a message request; an empty field counts as missing, as at Twilio.
#[derive(Default)]
struct MessageForm {
    to: Option<String>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: Option<String>,
    status_callback: Option<String>,
}

impl MessageForm {
    /// Reads the fields from a form body; any other content type carries no fields (Twilio then
    /// answers 21604, as it does to a JSON body).
    fn parse(req: &HttpRequest, body: &[u8]) -> Self {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        let mut form = Self::default();
        if !is_form {
            return form;
        }
        for (name, value) in url::form_urlencoded::parse(body) {
            let field = match name.as_ref() {
                "To" => &mut form.to,
                "From" => &mut form.from,
                "MessagingServiceSid" => &mut form.messaging_service_sid,
                "Body" => &mut form.body,
                "StatusCallback" => &mut form.status_callback,
                _ => continue,
            };
            if field.is_none() && !value.is_empty() {
                *field = Some(value.into_owned());
            }
        }
        form
    }
}

/// What the fake answers to one request.
struct Answer {
    status: StatusCode,
    json: Value,
    sid: Option<String>,
    retry_after_secs: Option<u64>,
}

impl Answer {
    fn error(status: u16, code: u32, message: &str) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Self {
            status,
            json: error_json(status, code, message),
            sid: None,
            retry_after_secs: None,
        }
    }

    fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::error(429, 20429, "Too Many Requests")
        }
    }

    fn server_error(status: u16) -> Self {
        match status {
            503 => Self::error(503, 20503, "Service Unavailable"),
            _ => Self::error(status, 20500, "Internal Server Error"),
        }
    }
}

/// Twilio's error body, e.g. `{"code":21211,"message":"…","more_info":"…/21211","status":400}`.
fn error_json(status: StatusCode, code: u32, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    })
}

/// Validates a request the way Twilio does and, when valid, creates the message.
fn create(account_sid: &str, form: &MessageForm) -> Answer {
    let Some(to) = &form.to else {
        return Answer::error(400, 21604, "A 'To' phone number is required.");
    };
    let sender = match (&form.from, &form.messaging_service_sid) {
        (None, None) => return Answer::error(400, 21603, "A 'From' phone number is required."),
        // Twilio would accept both (the From must then be in the service's sender pool); the
        // product sends one or the other, so both at once is a bug worth failing on.
        (Some(_), Some(_)) => {
            return Answer::error(
                400,
                21603,
                "Fake Twilio: send exactly one of 'From' and 'MessagingServiceSid'.",
            );
        }
        (from, messaging_service) => (from, messaging_service),
    };
    let Some(body) = &form.body else {
        return Answer::error(400, 21602, "Message body is required.");
    };
    if !is_e164(to) {
        return Answer::error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    if let (Some(from), _) = sender
        && !is_e164(from)
        && !is_short_code(from)
        && !is_alphanumeric_sender_id(from)
    {
        return Answer::error(400, 21212, &format!("Invalid 'From' Phone Number: {from}"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Answer::error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    if let Some(callback) = &form.status_callback
        && !url::Url::parse(callback).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        return Answer::error(400, 21609, &format!("Invalid StatusCallback URL: {callback}"));
    }

    let sid = format!("SM{}", uuid::Uuid::now_v7().simple());
    let uri = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}");
    let now = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S %z").to_string();
    // With a Messaging Service and no From, Twilio answers "accepted" and picks the sender later.
    let status = if sender.0.is_some() { "queued" } else { "accepted" };
    let json = json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": sender.0,
        "messaging_service_sid": sender.1,
        "num_media": "0",
        "num_segments": segments(body).to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": { "media": format!("{uri}/Media.json") },
        "to": to,
        "uri": format!("{uri}.json"),
    });
    Answer {
        status: StatusCode::CREATED,
        json,
        sid: Some(sid),
        retry_after_secs: None,
    }
}

async fn create_message(
    req: HttpRequest,
    account_sid: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let at = Instant::now();
    let form = MessageForm::parse(&req, &body);
    let mut delay = None;
    let answer = if !shared.authenticated(&req, &account_sid) {
        Answer::error(401, 20003, "Authenticate")
    } else {
        let fault = shared.state().take_fault(form.to.as_deref().unwrap_or_default());
        match fault {
            Some(TwilioFault::TooManyRequests { retry_after_secs }) => Answer::too_many_requests(retry_after_secs),
            Some(TwilioFault::ServerError { status }) => Answer::server_error(status),
            Some(TwilioFault::TwilioError { status, code, message }) => Answer::error(status, code, &message),
            Some(TwilioFault::Delay { duration }) => {
                delay = Some(duration);
                create(&shared.account_sid, &form)
            }
            None => create(&shared.account_sid, &form),
        }
    };

    // Recorded before any delay: a client that gives up does not unsend what Twilio accepted.
    {
        let mut state = shared.state();
        state.requests.push(SentSms {
            sid: answer.sid.clone(),
            to: form.to.unwrap_or_default(),
            from: form.from,
            messaging_service_sid: form.messaging_service_sid,
            body: form.body.unwrap_or_default(),
            status_callback: form.status_callback,
            status: answer.status.as_u16(),
            at,
        });
        if answer.status == StatusCode::CREATED {
            let accepted = state.requests.iter().filter(|r| r.status == 201).count();
            shared.delivered.send_replace(accepted);
        }
    }
    if let Some(duration) = delay {
        tokio::time::sleep(duration).await;
    }

    let mut response = HttpResponse::build(answer.status);
    if answer.status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Twilio API\""),
        ));
    }
    if let Some(secs) = answer.retry_after_secs {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    response.json(answer.json)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("The requested resource {} was not found", req.path());
    HttpResponse::NotFound().json(error_json(StatusCode::NOT_FOUND, 20404, &message))
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(error_json(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed"))
}

/// The user and password of an `Authorization: Basic` header (RFC 7617).
fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(credentials.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// E.164: `+`, a country code not starting with 0, 8 to 15 digits in all.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

fn is_short_code(from: &str) -> bool {
    (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit())
}

/// Twilio's alphanumeric sender ID: up to 11 of A–Z, a–z, 0–9 and space, at least one letter.
fn is_alphanumeric_sender_id(from: &str) -> bool {
    (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
}

/// GSM 03.38 default alphabet (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (an escape plus one septet each).
const GSM_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// How many SMS segments `body` takes: GSM-7 when every character is in the GSM alphabet
/// (160 septets, or 153 per part when concatenated), else UCS-2 (70 UTF-16 units, or 67 per part).
/// A part never splits an escape sequence or a surrogate pair.
fn segments(body: &str) -> usize {
    let gsm: Option<Vec<usize>> = body
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    let (units, single, part) = match gsm {
        Some(septets) => (septets, 160, 153),
        None => (body.chars().map(char::len_utf16).collect(), 70, 67),
    };
    if units.iter().sum::<usize>() <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for unit in units {
        if used + unit > part {
            parts += 1;
            used = 0;
        }
        used += unit;
    }
    parts
}

/// Twilio's `X-Twilio-Signature` for `url` and `params`: base64 of HMAC-SHA1, keyed by the auth
/// token, over the URL followed by each parameter's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_unstable();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    BASE64.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

/// POSTs a form as Twilio would, signed for `url` (the public URL the product verifies against)
/// but sent to `target` (where the app listens); returns the response.
pub async fn post_signed(
    client: &reqwest::Client,
    target: &str,
    url: &str,
    auth_token: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(target)
        .header("X-Twilio-Signature", twilio_signature(auth_token, url, params))
        .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
        .form(params)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {target} as Twilio: {e}"))
}
