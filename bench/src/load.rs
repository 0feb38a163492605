//! Closed-loop load: `concurrency` tasks each issue one call after another
//! for a fixed time; every call's latency goes into one histogram.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::stats::{cpu_time, Histogram};

/// What one load phase measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram,
    /// Server CPU time spent during the phase.
    pub server_cpu: Duration,
    pub first_error: Option<String>,
}

impl Measured {
    pub fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    pub fn cpu_us_per_call(&self) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        self.server_cpu.as_secs_f64() * 1e6 / self.calls as f64
    }
}

/// Runs `call(task, seq)` in `concurrency` loops for `duration` against the
/// server process `pid`; at most `max_calls` calls in all.
pub async fn closed_loop<F, Fut>(pid: u32, concurrency: usize, duration: Duration, max_calls: u64, call: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let deadline = started + duration;
    let per_task = max_calls.div_ceil(concurrency as u64);
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::default();
            let (mut calls, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut seq = 0u64;
            while Instant::now() < deadline && seq < per_task {
                let t = Instant::now();
                match call(task, seq).await {
                    Ok(()) => {
                        latency.record(t.elapsed());
                        calls += 1;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                seq += 1;
            }
            (latency, calls, errors, first_error)
        }));
    }
    let mut measured = Measured {
        calls: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::default(),
        server_cpu: Duration::ZERO,
        first_error: None,
    };
    for task in tasks {
        let (latency, calls, errors, first_error) = task.await.expect("load task");
        measured.latency.merge(&latency);
        measured.calls += calls;
        measured.errors += errors;
        if measured.first_error.is_none() {
            measured.first_error = first_error;
        }
    }
    measured.elapsed = started.elapsed();
    measured.server_cpu = cpu_time(pid).saturating_sub(cpu_before);
    measured
}
