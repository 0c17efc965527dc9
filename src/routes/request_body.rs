//! A deadline for request bodies. actix-web times out only the request head
//! (`client_request_timeout`): a body trickled a byte a second held its connection forever. As
//! Apache's mod_reqtimeout does (`body=30,MinRate=500`), a body gets `REQUEST_BODY_TIMEOUT_SECS`
//! plus one second per 500 bytes received: a slow but steady upload (the CSV import) goes on, a
//! trickle is answered 408 and its connection closed. It covers every reader of the payload
//! (the `Form` and `Json` extractors, the streamed import) because it replaces the payload itself.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage as _, HttpResponse, web};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::routes::AppState;

/// Bytes per second a body must keep up on average to earn more time than the timeout itself.
const MIN_BYTES_PER_SEC: u64 = 500;

/// Wraps the body of each request that has one (requests without a body pass untouched, at no
/// cost) and answers 408 with `Connection: close` when it did not arrive in time.
pub async fn limit_body_time(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let Some(timeout) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.request_body_timeout)
    else {
        req.set_payload(payload);
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let timed_out = Rc::new(Cell::new(false));
    let limited: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(DeadlinePayload::new(payload, timeout, timed_out.clone()));
    req.set_payload(Payload::Stream { payload: limited });
    let res = next.call(req).await?;
    if !timed_out.get() {
        return Ok(res.map_into_left_body());
    }
    let (request, _) = res.into_parts();
    tracing::info!(
        path = request.path(),
        "request body did not arrive in time; closing the connection"
    );
    let mut answer = HttpResponse::RequestTimeout()
        .content_type("text/plain; charset=utf-8")
        .body("the request body did not arrive in time");
    answer.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(request, answer).map_into_right_body())
}

/// The request payload, failing with a timeout once the body falls behind its deadline.
struct DeadlinePayload {
    inner: Payload,
    started: Instant,
    timeout: Duration,
    received: u64,
    sleep: Pin<Box<Sleep>>,
    timed_out: Rc<Cell<bool>>,
}

impl DeadlinePayload {
    fn new(inner: Payload, timeout: Duration, timed_out: Rc<Cell<bool>>) -> Self {
        let started = Instant::now();
        Self {
            inner,
            started,
            timeout,
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(started + timeout)),
            timed_out,
        }
    }

    fn deadline(&self) -> Instant {
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / MIN_BYTES_PER_SEC);
        self.started + self.timeout.saturating_add(earned)
    }
}

fn timed_out_error() -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the request body did not arrive in time",
    ))
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.timed_out.get() {
            return Poll::Ready(Some(Err(timed_out_error())));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received = this.received.saturating_add(chunk.len() as u64);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => {
                let deadline = this.deadline();
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.set(true);
                    return Poll::Ready(Some(Err(timed_out_error())));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}
