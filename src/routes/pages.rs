//! What every HTML page shares (public pages, the dashboard, the dev outboxes): rendering with
//! the security headers, the stylesheet, and the client's address and language.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get};
use askama::Template;

use super::error::PageError;
use crate::config::{ForwardedHeader, ProxyTrust};
use crate::domain::Locale;
use crate::routes::AppState;

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

/// The client's address: the socket peer, or, behind trusted proxies (`TRUST_FORWARDED_FOR`),
/// the address the outermost of them appended to the forwarding header, `hops` entries from
/// the right. Entries further left came from the client and are ignored, and so is the header
/// the proxies do not set. A request with fewer entries than hops did not pass through every
/// proxy, and an entry that is no address (`unknown`, `_hidden`) names nobody: then the peer.
pub fn client_ip(req: &HttpRequest, trust: ProxyTrust) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let ProxyTrust::Behind { header, hops } = trust else {
        return peer;
    };
    let values = req.headers().get_all(match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    });
    let mut entries: Vec<&str> = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else { return peer };
        for element in value.split(',') {
            entries.push(match header {
                ForwardedHeader::XForwardedFor => element.trim(),
                ForwardedHeader::Forwarded => forwarded_for(element).unwrap_or(""),
            });
        }
    }
    entries
        .len()
        .checked_sub(usize::from(hops))
        .and_then(|i| entries.get(i))
        .and_then(|entry| parse_ip(entry))
        .or(peer)
}

/// The `for` parameter of one RFC 7239 `Forwarded` element (`for=192.0.2.1;proto=https`),
/// unquoted; `None` when the element has none.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
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
        assert_eq!(client_ip(&req, ProxyTrust::Direct), "10.0.0.1".parse().ok());
        assert_eq!(
            client_ip(&req, behind(ForwardedHeader::XForwardedFor, 1)),
            "203.0.113.9".parse().ok()
        );
    }

    fn behind(header: ForwardedHeader, hops: u8) -> ProxyTrust {
        ProxyTrust::Behind { header, hops }
    }

    fn request(headers: &[(&'static str, &'static str)]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr("10.0.0.1:1234".parse().expect("addr"));
        for header in headers {
            req = req.append_header(*header);
        }
        req.to_http_request()
    }

    /// What the client writes into the header itself is never its address: the proxy appends
    /// the real one on the right.
    #[test]
    fn the_address_the_trusted_proxy_appended_wins() {
        let xff = behind(ForwardedHeader::XForwardedFor, 1);
        let spoofed = request(&[("X-Forwarded-For", "1.2.3.4, 198.51.100.7")]);
        assert_eq!(client_ip(&spoofed, xff), "198.51.100.7".parse().ok());
        // Two header lines count as one list, in order.
        let split = request(&[("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "198.51.100.7")]);
        assert_eq!(client_ip(&split, xff), "198.51.100.7".parse().ok());
        // Two proxies: the outer one appended the client, the inner one the outer proxy.
        let two = request(&[("X-Forwarded-For", "1.2.3.4, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            client_ip(&two, behind(ForwardedHeader::XForwardedFor, 2)),
            "198.51.100.7".parse().ok()
        );
        // Fewer entries than proxies, or none, or garbage: the peer.
        let short = request(&[("X-Forwarded-For", "198.51.100.7")]);
        assert_eq!(
            client_ip(&short, behind(ForwardedHeader::XForwardedFor, 2)),
            "10.0.0.1".parse().ok()
        );
        assert_eq!(client_ip(&request(&[]), xff), "10.0.0.1".parse().ok());
        let garbage = request(&[("X-Forwarded-For", "1.2.3.4, not-an-address")]);
        assert_eq!(client_ip(&garbage, xff), "10.0.0.1".parse().ok());
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let req = request(&[
            ("Forwarded", "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("X-Forwarded-For", "198.51.100.7"),
        ]);
        assert_eq!(
            client_ip(&req, behind(ForwardedHeader::XForwardedFor, 1)),
            "198.51.100.7".parse().ok(),
            "a client-sent Forwarded header is ignored"
        );
        assert_eq!(
            client_ip(&req, behind(ForwardedHeader::Forwarded, 1)),
            "2001:db8:cafe::17".parse().ok()
        );
        let obfuscated = request(&[("Forwarded", "for=_hidden")]);
        assert_eq!(
            client_ip(&obfuscated, behind(ForwardedHeader::Forwarded, 1)),
            "10.0.0.1".parse().ok()
        );
    }
}
