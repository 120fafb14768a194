//! The invocation in flight and the function's lifecycle, shared between
//! [`RuntimeApi`]'s callers and the HTTP endpoints the function calls.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::{Notify, oneshot, watch};

#[cfg(doc)]
use super::RuntimeApi;
use super::ids::trace_id;
use super::server::{HttpResponse, accepted, json_error};
use super::{Invocation, InvokeError, Outcome};

pub(super) struct Shared {
    pub(super) function_arn: HeaderValue,
    pub(super) state: Mutex<State>,
    /// Wakes long-polling `/next` requests when an invocation is queued.
    pub(super) queued: Notify,
    /// Milestones that [`RuntimeApi::wait_for_first_poll`] waits for.
    pub(super) lifecycle: watch::Sender<Lifecycle>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) seq: u64,
    pub(super) current: Option<Current>,
}

#[derive(Clone, Default)]
pub(super) struct Lifecycle {
    pub(super) first_poll: Option<Instant>,
    /// Always an [`InvokeError::InitFailed`].
    pub(super) init_error: Option<InvokeError>,
}

/// The invocation in flight, from queueing until it is answered or withdrawn.
pub(super) struct Current {
    pub(super) id: String,
    pub(super) event: Bytes,
    pub(super) deadline_ms: u64,
    pub(super) queued_at: Instant,
    pub(super) fetched_at: Option<Instant>,
    pub(super) done: oneshot::Sender<Result<Invocation, InvokeError>>,
}

pub(super) struct Withdraw<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: String,
}

impl Withdraw<'_> {
    pub(super) fn withdraw(&self) -> Option<Current> {
        self.shared.state().current.take_if(|c| c.id == self.id)
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // No critical section can panic half-way, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /invocation/next`: long-polls until an invocation is queued.
    pub(super) async fn next(&self) -> HttpResponse {
        let now = Instant::now();
        self.lifecycle.send_if_modified(|l| {
            let first = l.first_poll.is_none();
            l.first_poll.get_or_insert(now);
            first
        });
        loop {
            let mut queued = std::pin::pin!(self.queued.notified());
            // Registered before looking, so an invocation queued in between still wakes us.
            queued.as_mut().enable();
            if let Some(response) = self.deliver() {
                return response;
            }
            queued.await;
        }
    }

    pub(super) fn deliver(&self) -> Option<HttpResponse> {
        let mut state = self.state();
        let current = state.current.as_mut().filter(|c| c.fetched_at.is_none())?;
        current.fetched_at = Some(Instant::now());
        let response = Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &current.id)
            .header("Lambda-Runtime-Deadline-Ms", current.deadline_ms)
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                self.function_arn.clone(),
            )
            .header("Lambda-Runtime-Trace-Id", trace_id())
            .body(Full::new(current.event.clone()));
        // Everything in those headers was validated or generated here, so this cannot fail
        // in practice; if it did, the invocation would simply time out.
        Some(response.unwrap_or_else(|e| {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        }))
    }

    /// `POST /invocation/{id}/response` and `/error`.
    pub(super) fn answer(&self, id: &str, outcome: Outcome) -> HttpResponse {
        let Some(current) = self
            .state()
            .current
            .take_if(|c| c.id == id && c.fetched_at.is_some())
        else {
            let message = format!("{id} is not the invocation in flight");
            return json_error(StatusCode::BAD_REQUEST, "InvalidRequestID", message);
        };
        let invocation = Invocation {
            request_id: current.id,
            outcome,
            duration: current.queued_at.elapsed(),
            waited_for_poll: current.fetched_at.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(current.queued_at)
            }),
        };
        // The invoker may have given up at this very moment; then nobody is listening.
        let _ = current.done.send(Ok(invocation));
        accepted()
    }

    /// `POST /init/error`.
    pub(super) fn init_failed(&self, error_type: String, error_message: String) -> HttpResponse {
        let error = InvokeError::InitFailed {
            error_type,
            error_message,
        };
        let mut state = self.state();
        self.lifecycle
            .send_modify(|l| l.init_error = Some(error.clone()));
        if let Some(current) = state.current.take() {
            let _ = current.done.send(Err(error));
        }
        accepted()
    }
}
