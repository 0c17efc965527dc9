//! Logs: tracing to stderr (stdout is for command output), pretty or JSON, and a request log
//! that records the route pattern rather than the path, so signed tokens never reach the logs,
//! and never the query string, where SMS provider callbacks carry their secret.
//! The request log also turns a panicking request into a 500.

use std::any::Any;
use std::cell::OnceCell;
use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{ResourceMap, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures_util::FutureExt as _;
use futures_util::future::LocalBoxFuture;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: &LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The text of a panic's payload (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs a future to its end, turning a panic inside it into `Err(the panic's message)`: for
/// background tasks that must outlive a bug in one unit of their work.
pub async fn catch_panic<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()).to_owned())
}

/// Logs one line per request: method, route pattern, status, duration (`RUST_LOG=optbridge::http=debug`).
///
/// A request whose handler panics is answered 500 and logged at error level, and the worker
/// keeps serving: actix-web does not catch panics itself (the connection's task dies and the
/// client gets no answer at all).
pub struct RequestLog {
    /// The service is reached over https: the panic answer carries HSTS like every other.
    pub hsts: bool,
}

/// `Strict-Transport-Security` on every answer under an https `BASE_URL`.
pub const HSTS: &str = "max-age=31536000";

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogMiddleware {
            service,
            routes: OnceCell::new(),
            hsts: self.hsts,
        }))
    }
}

pub struct RequestLogMiddleware<S> {
    service: S,
    /// The app's route table, copied on the first request, to name the route of a request that
    /// panicked (its `HttpRequest` is gone by then).
    routes: OnceCell<Rc<ResourceMap>>,
    hsts: bool,
}

impl<S, B> Service<ServiceRequest> for RequestLogMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let routes = Rc::clone(self.routes.get_or_init(|| Rc::new(req.resource_map().clone())));
        let hsts = self.hsts;
        // Inner services may panic while building their future or while it runs. Unwind safety:
        // the panicked future is dropped, never polled again.
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| self.service.call(req)));
        Box::pin(async move {
            let caught = match fut {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(payload) => Err(payload),
            };
            let res = match caught {
                Ok(res) => res,
                Err(payload) => {
                    crate::metrics::METRICS.http_panics.inc();
                    crate::metrics::METRICS.http_response(500);
                    let route = routes
                        .match_pattern(uri.path())
                        .unwrap_or_else(|| redacted_path(uri.path()));
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    tracing::error!(
                        target: "optbridge::http",
                        %method, route, status = 500, ms, panic = panic_message(payload.as_ref()),
                        "request handler panicked"
                    );
                    // No request is left to answer with (it went into the panicked handler): an
                    // error, rendered after the headers middleware, so it carries their headers itself.
                    let mut answer = actix_web::HttpResponse::InternalServerError();
                    answer.insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
                    if hsts {
                        answer.insert_header((actix_web::http::header::STRICT_TRANSPORT_SECURITY, HSTS));
                    }
                    let answer = answer
                        .content_type("text/plain; charset=utf-8")
                        .body("internal server error");
                    return Err(
                        actix_web::error::InternalError::from_response("request handler panicked", answer).into(),
                    );
                }
            };
            let (status, request) = match &res {
                Ok(r) => (r.status().as_u16(), Some(r.request())),
                Err(e) => (e.as_response_error().status_code().as_u16(), None),
            };
            crate::metrics::METRICS.http_response(status);
            let failed = status >= 500;
            if failed || tracing::enabled!(target: "optbridge::http", tracing::Level::DEBUG) {
                // The route pattern costs a second route match: only when a line is written.
                let route = request
                    .and_then(|r| r.match_pattern().or_else(|| Some(redacted_path(r.path()))))
                    .unwrap_or_else(|| "(unmatched)".to_owned());
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                // Successful requests log at debug: the tracking endpoints see thousands a second.
                if failed {
                    tracing::warn!(target: "optbridge::http", %method, route, status, ms, "request failed");
                } else {
                    tracing::debug!(target: "optbridge::http", %method, route, status, ms, "request");
                }
            }
            res
        })
    }
}

/// A path fit for the log when no route pattern names it (the link routes match by prefix):
/// segments that could be secrets (long, or with characters beyond letters, digits, `-`, `_`)
/// become `{token}`.
fn redacted_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let plain = segment.len() <= 24
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if plain { segment } else { "{token}" }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted_path;

    #[test]
    fn tokens_in_paths_are_redacted() {
        assert_eq!(
            redacted_path("/l/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig/confirm"),
            "/l/{token}/confirm"
        );
        assert_eq!(redacted_path("/o/abc.def.ghi"), "/o/{token}");
        assert_eq!(redacted_path("/no/such/page"), "/no/such/page");
        assert_eq!(redacted_path("/x/0123456789012345678901234567"), "/x/{token}");
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, HttpServer, web};

    use super::*;
    use crate::metrics::METRICS;

    async fn ok() -> HttpResponse {
        HttpResponse::Ok().body("fine")
    }

    async fn panics(path: web::Path<String>) -> HttpResponse {
        if path.as_str() != "never" {
            panic!("handler bug for {path}");
        }
        HttpResponse::Ok().finish()
    }

    #[tokio::test]
    async fn a_panic_in_a_background_future_becomes_an_error() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
        let failed = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("job {} is broken", 42);
        })
        .await;
        assert_eq!(failed, Err::<(), _>("job 42 is broken".to_owned()));
    }

    /// Through a real server with a single worker, as the client sees it.
    #[actix_web::test]
    async fn a_panicking_handler_answers_500_and_the_worker_keeps_serving() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = HttpServer::new(|| {
            App::new()
                // Panics in `Service::call` itself, before any future exists.
                .wrap_fn(|req, srv| {
                    assert!(req.path() != "/sync-panic", "middleware bug");
                    srv.call(req)
                })
                .wrap(RequestLog { hsts: true })
                .route("/ok", web::get().to(ok))
                .route("/panic/{token}", web::get().to(panics))
                .route("/sync-panic", web::get().to(ok))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client");
        let panics_before = METRICS.http_panics.get();

        for path in ["/panic/secret-token", "/sync-panic", "/panic/again"] {
            let res = client.get(format!("{base}{path}")).send().await.expect(path);
            assert_eq!(res.status(), 500, "{path}");
            assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(res.headers()["strict-transport-security"], HSTS, "{path}");
            assert_eq!(res.text().await.expect("body"), "internal server error", "{path}");
            // A new connection, so it must be the same (only) worker that answers.
            let res = reqwest::get(format!("{base}/ok")).await.expect("after a panic");
            assert_eq!(res.status(), 200, "after {path}");
            assert_eq!(res.text().await.expect("body"), "fine");
        }
        // Counters are process-wide and tests run in parallel: at least these three.
        assert!(METRICS.http_panics.get() >= panics_before + 3);
        handle.stop(false).await;
    }

    /// A writer into a shared buffer, to read what the request log wrote.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn refuse() -> HttpResponse {
        HttpResponse::Forbidden().finish()
    }

    /// 46elks and inMobile callbacks carry their secret in the query (issue 19): the request log
    /// names the route or the path, never the query, at every level.
    #[actix_web::test]
    async fn callback_secrets_in_the_query_never_reach_the_request_log() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = actix_web::test::init_service(
            App::new()
                .wrap(RequestLog { hsts: false })
                .route("/webhooks/46elks/inbound", web::post().to(refuse))
                .route(
                    "/webhooks/inmobile/status",
                    web::post().to(|| async { HttpResponse::InternalServerError().finish() }),
                ),
        )
        .await;
        for uri in [
            "/webhooks/46elks/inbound?secret=TOPSECRET1",
            "/webhooks/inmobile/status?secret=TOPSECRET2",
            "/webhooks/nowhere/x?secret=TOPSECRET3",
        ] {
            let req = actix_web::test::TestRequest::post().uri(uri).to_request();
            actix_web::test::call_service(&app, req).await;
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("/webhooks/46elks/inbound"), "{log}");
        assert!(log.contains("/webhooks/inmobile/status"), "{log}");
        assert!(!log.contains("TOPSECRET"), "{log}");
        assert!(!log.contains("secret="), "{log}");
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let message = |f: fn()| {
            let payload = std::panic::catch_unwind(f).expect_err("panics");
            panic_message(payload.as_ref()).to_owned()
        };
        assert_eq!(message(|| panic!("static")), "static");
        assert_eq!(message(|| panic!("formatted {}", 7)), "formatted 7");
        assert_eq!(message(|| std::panic::panic_any(42_u8)), "(no message)");
    }
}
