//! The gRPC services. Every unary handler runs through [`Calls::unary`]:
//! extract the caller, take a place under the concurrency limit, run the
//! handler (convert → store → convert) under the unary deadline, log one
//! line and record metrics, and only then turn a [`crate::error::Error`]
//! into a `Status` — in `crate::error`, the one place that knows codes.

mod conversations;
pub mod convert;
mod groups;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Caller};
use crate::domain::UserId;
use crate::error::Error;

pub use conversations::ConversationServiceImpl;
pub use groups::ConversationGroupServiceImpl;

/// What every call shares: the authenticator, the load-shedding semaphore
/// and the deadline.
#[derive(Clone, Debug)]
pub struct Calls {
    auth: Authenticator,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    unary_timeout: Duration,
}

impl Calls {
    pub fn new(auth: Authenticator, max_in_flight: usize, unary_timeout: Duration) -> Self {
        Self { auth, permits: Arc::new(Semaphore::new(max_in_flight)), max_in_flight, unary_timeout }
    }

    /// The caller of a request, from its bearer token.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Error> {
        self.auth.authenticate(request.metadata())
    }

    /// Runs one unary call for the user it acts for.
    pub async fn unary<Req, Resp, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handler: impl FnOnce(UserId, Req) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: Future<Output = Result<Resp, Error>>,
    {
        let started = Instant::now();
        let caller = match self.authenticate(&request) {
            Ok(caller) => caller,
            Err(e) => return Err(finish(method, None, started, Err(e))),
        };
        let user = caller.acting_for;
        // Shed load instead of queueing: a caller told RESOURCE_EXHAUSTED at
        // once can back off; one left waiting only adds to the pile.
        let Ok(_permit) = self.permits.try_acquire() else {
            let overloaded = Error::Overloaded { limit: self.max_in_flight };
            return Err(finish(method, Some(&user), started, Err(overloaded)));
        };
        let outcome = match tokio::time::timeout(self.unary_timeout, handler(user.clone(), request.into_inner())).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::DeadlineExceeded { timeout: self.unary_timeout }),
        };
        match outcome {
            Ok(response) => {
                finish(method, Some(&user), started, Ok(()));
                Ok(Response::new(response))
            }
            Err(e) => Err(finish(method, Some(&user), started, Err(e))),
        }
    }
}

/// Logs the one line of a call and records its metrics; returns the
/// status for an error.
pub(crate) fn finish(
    method: &'static str,
    user: Option<&UserId>,
    started: Instant,
    outcome: Result<(), Error>,
) -> Status {
    let elapsed = started.elapsed();
    let status = match outcome {
        Ok(()) => Status::ok(""),
        Err(e) => Status::from(e),
    };
    let code = status.code();
    let user = user.map(UserId::as_str).unwrap_or("-");
    let micros = elapsed.as_micros() as u64;
    match code {
        tonic::Code::Ok => tracing::info!(method, user, code = ?code, latency_us = micros, "rpc"),
        tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown => {
            tracing::warn!(method, user, code = ?code, latency_us = micros, message = status.message(), "rpc")
        }
        _ => tracing::info!(method, user, code = ?code, latency_us = micros, message = status.message(), "rpc"),
    }
    crate::metrics::rpc(method, code, elapsed);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;
    use tonic::Code;

    fn calls(max_in_flight: usize, timeout: Duration) -> (Calls, String) {
        let secret = Secret::from_bytes(b"unit-test-secret");
        let token = secret.issue(&UserId::parse("alice").unwrap(), false, Duration::from_secs(60));
        (Calls::new(Authenticator::new(secret), max_in_flight, timeout), token)
    }

    fn request(token: &str) -> Request<()> {
        let mut request = Request::new(());
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    fn reason(status: &Status) -> String {
        use tonic_types::StatusExt;
        status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
    }

    /// A handler that outlasts `unary_timeout` is answered DEADLINE_EXCEEDED.
    #[tokio::test]
    async fn a_call_past_the_unary_timeout_is_deadline_exceeded() {
        let (calls, token) = calls(8, Duration::from_millis(20));
        let result: Result<Response<()>, Status> =
            calls.unary("Test", request(&token), |_, _| std::future::pending::<Result<(), Error>>()).await;
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    }

    /// Beyond `max_in_flight` calls are shed at once, not queued.
    #[tokio::test]
    async fn calls_beyond_max_in_flight_are_shed_with_overloaded() {
        let (calls, token) = calls(1, Duration::from_secs(5));
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let busy = {
            let (calls, token) = (calls.clone(), token.clone());
            tokio::spawn(async move {
                calls
                    .unary("Test", request(&token), |_, _| async move {
                        let _ = entered_tx.send(());
                        let _ = release_rx.await;
                        Ok::<_, Error>(())
                    })
                    .await
            })
        };
        entered_rx.await.unwrap();
        let shed = calls.unary("Test", request(&token), |_, _| async { Ok::<_, Error>(()) }).await.unwrap_err();
        assert_eq!(shed.code(), Code::ResourceExhausted);
        assert_eq!(reason(&shed), "OVERLOADED");
        release_tx.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        // The place is free again.
        assert!(calls.unary("Test", request(&token), |_, _| async { Ok::<_, Error>(()) }).await.is_ok());
    }

    /// Without a valid token the handler never runs.
    #[tokio::test]
    async fn calls_without_a_valid_token_never_reach_the_handler() {
        let (calls, _) = calls(8, Duration::from_secs(5));
        for token in ["", "not-a-jwt"] {
            let status = calls
                .unary("Test", request(token), |_, _| async { panic!("handler ran without a valid token") })
                .await
                .map(|_: Response<()>| ())
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
    }
}
