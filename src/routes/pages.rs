//! What every HTML page shares (public pages, the dashboard, the dev outboxes): rendering with
//! the security headers, the stylesheet, and the client's address and language.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get};
use askama::Template;

use super::error::PageError;
use crate::domain::Locale;
use crate::startup::AppState;

/// Pages load nothing but their own stylesheet; no script runs anywhere on them. The dashboard's
/// charts are inline SVG (markup, not loaded resources), so they need nothing more.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML response with the headers every page carries. Pages reached through a signed link
/// send no Referer (`no-referrer`), so the token in the URL never leaks to another site.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body)
}

/// Renders a page template, or a plain 500 if the template fails (it cannot for valid input; a
/// plain answer, since the error pages are templates too).
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The first supported language in `Accept-Language`, else English.
pub fn preferred_locale(req: &HttpRequest) -> Locale {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|part| Locale::parse(part.split(';').next().unwrap_or_default()))
        })
        .unwrap_or(Locale::En)
}

/// The client's address: the socket peer, or the proxy-supplied one when
/// `TRUST_FORWARDED_FOR` says a trusted proxy sits in front.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let info = req.connection_info();
        if let Some(ip) = info.realip_remote_addr().and_then(parse_ip) {
            return Some(ip);
        }
    }
    req.peer_addr().map(|a| a.ip())
}

fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| raw.trim_matches(['[', ']']).parse().ok())
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(500).collect())
}

const PAGE_CSS: &str = include_str!("../../assets/page.css");

#[get("/assets/page.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(PAGE_CSS)
}

/// Unknown paths outside the API get the same page as bad links.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError::not_found(&req))
}

/// The app state from a request (every route runs with it).
pub fn state(req: &HttpRequest) -> Option<&AppState> {
    req.app_data::<actix_web::web::Data<AppState>>().map(|d| d.get_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn language_negotiation() {
        let req = TestRequest::default()
            .insert_header(("Accept-Language", "fr-FR, sv-SE;q=0.8, en;q=0.5"))
            .to_http_request();
        assert_eq!(preferred_locale(&req), Locale::Sv);
        let req = TestRequest::default().to_http_request();
        assert_eq!(preferred_locale(&req), Locale::En);
    }

    #[test]
    fn forwarded_addresses_only_when_trusted() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:1234".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "203.0.113.9"))
            .to_http_request();
        assert_eq!(client_ip(&req, false), "10.0.0.1".parse().ok());
        assert_eq!(client_ip(&req, true), "203.0.113.9".parse().ok());
    }
}
