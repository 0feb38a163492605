//! The gRPC services. Every call passes the [`Gate`] (the token, before the
//! body is decoded); every unary handler then runs through [`Calls::unary`]:
//! take the caller, a place under the concurrency limit, run the handler
//! (convert → store → convert) under the unary deadline, log one line and
//! record metrics, and only then turn a [`crate::error::Error`] into a
//! `Status` — in `crate::error`, the one place that knows codes.

mod conversations;
pub mod convert;
mod groups;
mod read_cache;
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
pub use read_cache::ReadCaches;

/// The method a request is for (the last segment of its path), put into
/// the request's extensions by the server for the [`Gate`]'s log line.
#[derive(Clone, Debug)]
pub struct RpcMethod(pub String);

impl RpcMethod {
    pub fn of_path(path: &str) -> Self {
        Self(path.rsplit('/').next().unwrap_or(path).to_string())
    }
}

/// The tonic interceptor in front of our services: checks the bearer token
/// before the request body is even decoded (so no one without a token can
/// make the server parse large messages) and hands the [`Caller`] on as a
/// request extension. A refused call gets its log line and metrics here.
#[derive(Clone, Debug)]
pub struct Gate {
    auth: Authenticator,
}

impl Gate {
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let started = Instant::now();
        match self.auth.authenticate(request.metadata()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(e) => {
                let method = request.extensions().get::<RpcMethod>().map(|m| m.0.clone());
                Err(finish(method.as_deref().unwrap_or("-"), None, started, Err(e)))
            }
        }
    }
}

/// The caller the [`Gate`] established.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Error> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::Internal("a request reached a service without passing the gate".into()))
}

/// What every unary call shares: the load-shedding semaphore and the
/// deadline.
#[derive(Clone, Debug)]
pub struct Calls {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    unary_timeout: Duration,
}

impl Calls {
    pub fn new(max_in_flight: usize, unary_timeout: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight)), max_in_flight, unary_timeout }
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
        let caller = match caller(&request) {
            Ok(caller) => caller,
            Err(e) => return Err(finish(method, None, started, Err(e))),
        };
        let user = match caller.user() {
            Ok(user) => user.clone(),
            Err(e) => return Err(finish(method, Some(&caller.acting_for), started, Err(e))),
        };
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
pub(crate) fn finish(method: &str, user: Option<&UserId>, started: Instant, outcome: Result<(), Error>) -> Status {
    let elapsed = started.elapsed();
    let status = match outcome {
        Ok(()) => Status::ok(""),
        Err(e) => Status::from(e),
    };
    log_call(method, user, elapsed, &status);
    status
}

/// The log line and metrics of a call refused before it reached the gate or
/// a handler (a request that did not decode, or was too large).
pub(crate) fn log_refused(method: &str, started: Instant, status: &Status) {
    log_call(method, None, started.elapsed(), status);
}

/// One line per call. The status message goes in `error`: the event's own
/// message is `rpc`, and a second `message` key would make JSON log lines
/// hold the same key twice (parsers keep only one).
fn log_call(method: &str, user: Option<&UserId>, elapsed: Duration, status: &Status) {
    let code = status.code();
    let user = user.map(UserId::as_str).unwrap_or("-");
    let micros = elapsed.as_micros() as u64;
    match code {
        tonic::Code::Ok => tracing::info!(method, user, code = ?code, latency_us = micros, "rpc"),
        tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown => {
            tracing::warn!(method, user, code = ?code, latency_us = micros, error = status.message(), "rpc")
        }
        _ => tracing::info!(method, user, code = ?code, latency_us = micros, error = status.message(), "rpc"),
    }
    crate::metrics::rpc(method, code, elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;
    use tonic::Code;

    fn calls(max_in_flight: usize, timeout: Duration) -> (Calls, String) {
        (Calls::new(max_in_flight, timeout), token())
    }

    fn gate() -> Gate {
        Gate::new(Authenticator::new(Secret::from_bytes(b"unit-test-secret")))
    }

    fn token() -> String {
        Secret::from_bytes(b"unit-test-secret").issue(&UserId::parse("alice").unwrap(), false, Duration::from_secs(60))
    }

    /// A request as the gate passes it on.
    fn request(token: &str) -> Request<()> {
        let mut request = Request::new(());
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        tonic::service::Interceptor::call(&mut gate(), request).expect("a valid token passes the gate")
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

    /// Without a valid token a request is refused at the gate, with its
    /// method named in the log line.
    #[tokio::test]
    async fn requests_without_a_valid_token_are_refused_at_the_gate() {
        for token in ["", "not-a-jwt"] {
            let mut request = Request::new(());
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            request.extensions_mut().insert(RpcMethod::of_path("/convgroups.v1.ConversationGroupService/Test"));
            let status = tonic::service::Interceptor::call(&mut gate(), request).unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
        assert_eq!(RpcMethod::of_path("/a.B/Method").0, "Method");
    }
}
