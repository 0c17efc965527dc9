//! A retailer's webhook endpoint inside the test process: a real HTTP server that records every
//! request (headers and raw body) and answers each per a script: fail with a status, hang past
//! the sender's timeout, or accept. Requests beyond the script are accepted, after `delay`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::task::JoinHandle;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Answers 200 only after this long (the sender gives up first).
    Hang(Duration),
    Accept,
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    script: Vec<Answer>,
    received: Vec<Received>,
    /// How long every unscripted request takes to be accepted.
    delay: Duration,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("receiver listens")
        .run();
        Self {
            addr,
            state,
            _server: tokio::spawn(server),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/optbridge", self.addr)
    }

    /// Unscripted requests are accepted after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Waits until `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests, not {n}, within {timeout:?}: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Mutex<State>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (answer, delay) = {
        let mut s = lock(&state);
        let answer = if s.script.is_empty() {
            Answer::Accept
        } else {
            s.script.remove(0)
        };
        s.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        (answer, s.delay)
    };
    match answer {
        Answer::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status")).body("receiver refuses")
        }
        Answer::Hang(d) => {
            tokio::time::sleep(d).await;
            HttpResponse::Ok().finish()
        }
        Answer::Accept => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            HttpResponse::Ok().finish()
        }
    }
}

/// Verifies each request with the `standardwebhooks` Python package (the specification's
/// reference library, in the venv scripts/setup-test-deps makes): returns, per request, whether
/// it verified.
pub fn verify_independently(secret: &str, requests: &[Received]) -> Vec<bool> {
    let python = crate::helpers::test_python();
    let input: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "headers": {"webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature},
                "body": r.body,
            })
        })
        .collect();
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, requests = json.loads(sys.stdin.read())
hook = Webhook(secret)
out = []
for r in requests:
    try:
        hook.verify(r["body"], r["headers"])
        out.append(True)
    except WebhookVerificationError:
        out.append(False)
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&(secret, input)).unwrap().as_bytes())
            .expect("write to python");
    }
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("python prints a JSON list")
}
