//! `GET /o/{token}`: the open-tracking pixel. Always a 1×1 GIF, whatever the token: a bad link
//! must not show a broken image, and the answer reveals nothing.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::funnel::tracking::{TrackingEvent, TrackingKind};
use crate::links::LinkPurpose;
use crate::routes::AppState;
use crate::routes::pages;

/// A transparent 1×1 GIF89a.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `/o/{token}` (mounted as a prefix scope, see `routes::link_scope`).
pub async fn pixel(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = super::link_token(&req, "/o/") else {
        return gif();
    };
    let token = token.strip_suffix(".gif").unwrap_or(token);
    match state.keyring.verify(token, LinkPurpose::Open).await {
        Ok(claims) => {
            state
                .tracking
                .record(TrackingEvent {
                    kind: TrackingKind::Open,
                    invitation_id: claims.sub,
                    at: crate::db::now(),
                    ip: pages::client_ip(&req, state.settings.trust_forwarded_for),
                    user_agent: pages::user_agent(&req),
                })
                .await
        }
        Err(e) => tracing::debug!(reason = %e, "open pixel with a bad link"),
    }
    gif()
}

pub fn gif() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("image/gif")))
        // Every open must reach us: no caching by browsers or proxies.
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
        ))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .insert_header((header::EXPIRES, HeaderValue::from_static("0")))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .body(PIXEL)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pixel_is_a_one_by_one_gif() {
        assert_eq!(&super::PIXEL[..6], b"GIF89a");
        assert_eq!(super::PIXEL.len(), 43);
        assert_eq!((super::PIXEL[6], super::PIXEL[8]), (1, 1));
    }
}
