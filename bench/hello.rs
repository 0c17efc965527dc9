//! The baseline for bench/endpoints.sh: an actix-web hello-world with the same HTTP stack,
//! worker count and build profile as optbridge.
//!
//!   cargo run --release --example bench-hello -- 127.0.0.1:8091 [workers]

use actix_web::{App, HttpResponse, HttpServer, get};

#[get("/")]
async fn hello() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("hello world")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| App::new().service(hello))
        .workers(workers)
        .bind(bind)?
        .run()
        .await
}
