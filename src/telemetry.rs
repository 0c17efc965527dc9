//! Logs: tracing to stderr (stdout is for command output), pretty or JSON, and a request log
//! that records the route pattern rather than the path, so signed tokens never reach the logs.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
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

/// Logs one line per request: method, route pattern, status, duration (`RUST_LOG=optbridge::http=debug`).
pub struct RequestLog;

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
        ready(Ok(RequestLogMiddleware { service }))
    }
}

pub struct RequestLogMiddleware<S> {
    service: S,
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
        let fut = self.service.call(req);
        Box::pin(async move {
            let res = fut.await;
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
