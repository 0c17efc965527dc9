//! The baseline for the benchmarks: an actix-web hello-world with the same HTTP stack, worker
//! count and build profile as optbridge. `GET /` for bench/endpoints.sh and bench/funnel.sh;
//! `POST /webhooks/twilio/inbound` (reads the form body, answers the same empty TwiML as
//! optbridge, checks nothing) for bench/webhooks.sh.
//!
//!   cargo run --release --example bench-hello -- 127.0.0.1:8091 [workers]

use actix_web::{App, HttpResponse, HttpServer, get, post, web};

#[get("/")]
async fn hello() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("hello world")
}

/// The `Bytes` extractor reads the whole body, as optbridge's handler does before parsing it.
#[post("/webhooks/twilio/inbound")]
async fn inbound(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml")
        .body("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| App::new().service(hello).service(inbound))
        .workers(workers)
        .bind(bind)?
        .run()
        .await
}
