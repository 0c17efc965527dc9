use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

use crate::routes::AppState;

/// Liveness plus database reachability: 200 when a query round-trips, 503 otherwise.
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let backend = state.db.backend().name();
    let ping = tokio::time::timeout(std::time::Duration::from_secs(5), state.db.ping()).await;
    let problem = match ping {
        Ok(Ok(())) => return HttpResponse::Ok().json(json!({"status": "ok", "database": "ok", "backend": backend})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            e.to_string()
        }
        Err(_) => "timed out after 5 s".to_owned(),
    };
    // The report itself, for load balancers and monitors: JSON, not an error page.
    HttpResponse::ServiceUnavailable().json(json!({"status": "error", "database": problem, "backend": backend}))
}

/// Prometheus text format: counters of this process, and the outbox depth from the database.
/// The counts span every workspace: with `METRICS_TOKEN` set, only for `Bearer` that token.
#[get("/metrics")]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(expected) = &state.settings.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !crate::crypto::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
                .body("metrics need Authorization: Bearer <METRICS_TOKEN>");
        }
    }
    let kinds = state.job_kinds.clone();
    let depth = state.db.run(move |conn| crate::outbox::depth(conn, &kinds)).await;
    let samples = match depth {
        Ok(rows) => rows
            .into_iter()
            .map(|(kind, n)| (format!("kind=\"{kind}\""), n))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: outbox depth unavailable");
            Vec::new()
        }
    };
    let body = crate::metrics::METRICS.render(&[crate::metrics::Gauge {
        name: "optbridge_outbox_jobs",
        help: "Jobs waiting in the outbox",
        samples,
    }]);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
