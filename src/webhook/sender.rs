//! One endpoint's sender: a durable watcher of the revision log.
//!
//! The loop: load the configuration (gone: stop; disabled: wait), apply a
//! pending replay to the cursor, read the next batches after the cursor
//! from the log, and for each one the filters keep, POST until a 2xx; then
//! store the cursor past it. One batch is in flight at a time, so a
//! receiver sees revisions in order. A cursor that trimming has overtaken
//! records the skipped range as a gap (GetWebhook, a metric, a log line)
//! before it moves on: nothing is skipped silently.

use std::sync::OnceLock;
use std::time::Duration;

use hyper::body::Bytes;
use prost::Message;
use rand::Rng;
use tokio::sync::watch;

use super::http::{self, Failure};
use super::lease::Claim;
use super::records::{self, Cursor, Endpoint, Gap};
use super::signing;
use crate::config::WebhookSettings;
use crate::domain::{now_ms, EventBatch, Scope};
use crate::error::Error;
use crate::service::convert;
use crate::store::Store;

/// Batches read from the log per step.
const LOG_CHUNK: usize = 64;
// A cursor that only moved past revisions with nothing for the endpoint
// (other users' batches, filtered kinds, etcd heartbeats) is stored every
// --webhook-cursor-save-interval. Storing it later is safe: after a restart
// those revisions are read and filtered again, and deliver nothing. Storing
// it at every heartbeat would be one etcd write per second per endpoint.

/// The canonical JSON mapping of a batch (lowerCamelCase names, 64-bit
/// integers as strings, enums by name, RFC 3339 times).
pub fn json_body(batch: &EventBatch) -> Vec<u8> {
    canonical_json("convgroups.v1.EventBatch", &convert::event_batch(batch))
}

/// The proto3 canonical JSON of one of our messages, from the descriptor
/// set the server already embeds for reflection (no second code generator).
pub fn canonical_json<M: Message>(full_name: &str, message: &M) -> Vec<u8> {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes")
    });
    let descriptor = pool.get_message_by_name(full_name).expect("a message of our protos");
    let wire = message.encode_to_vec();
    let dynamic =
        prost_reflect::DynamicMessage::decode(descriptor, wire.as_slice()).expect("a message we encoded decodes");
    serde_json::to_vec(&dynamic).expect("a message serializes")
}

/// The wait before retry `failures` (1-based): exponential from `initial`,
/// capped at `max`, then a random part of it taken off ("equal jitter"), so
/// endpoints that failed together do not retry together.
pub fn backoff(settings: &WebhookSettings, failures: u32) -> Duration {
    let exp = settings.webhook_retry_initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(settings.webhook_retry_max);
    let half = capped / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

pub struct Sender {
    pub store: Store,
    pub settings: WebhookSettings,
    /// For https URLs: the trusted roots (`--webhook-ca-file` too).
    pub tls: tokio_rustls::TlsConnector,
    pub id: String,
    /// Bumped by the admin API on this server when any endpoint changes.
    pub changes: watch::Receiver<u64>,
    /// On etcd: this replica's claim on the endpoint.
    pub claim: Option<Claim>,
}

/// The cursor as this sender knows it, and whether the stored one trails.
#[derive(Default)]
struct Position {
    cursor: Cursor,
    /// When the stored cursor was last written; None: it is up to date.
    unsaved_since: Option<tokio::time::Instant>,
}

enum Attempted {
    Delivered,
    /// The configuration changed while retrying (or the claim was lost):
    /// start over from the cursor.
    Changed,
}

impl Sender {
    pub async fn run(mut self) {
        let mut revisions = self.store.revision_watch();
        let mut position: Option<Position> = None;
        loop {
            if self.claim.as_ref().is_some_and(|c| c.lost()) {
                tracing::info!(endpoint = %self.id, "webhook sender: lease lost, another replica takes over");
                return;
            }
            match self.step(&mut position, &mut revisions).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(endpoint = %self.id, error = %e, "webhook sender: storage error; retrying");
                    position = None;
                    tokio::time::sleep(self.settings.webhook_retry_initial).await;
                }
            }
        }
    }

    /// One step; false when the endpoint is gone.
    async fn step(
        &mut self,
        slot: &mut Option<Position>,
        revisions: &mut crate::store::RevisionWatch,
    ) -> Result<bool, Error> {
        let Some(endpoint) = records::load_endpoint(&self.store, &self.id).await? else { return Ok(false) };
        if !endpoint.enabled {
            self.wait(revisions, false).await;
            return Ok(true);
        }
        if slot.is_none() {
            let cursor = records::load_cursor(&self.store, &self.id).await?.unwrap_or_default();
            *slot = Some(Position { cursor, unsaved_since: None });
        }
        let position = slot.as_mut().expect("loaded above");
        let cursor = &mut position.cursor;
        if let Some(replay) = endpoint.replay.filter(|r| r.seq > cursor.replay_seq) {
            cursor.delivered = replay.from_revision.saturating_sub(1);
            cursor.replay_seq = replay.seq;
            cursor.consecutive_failures = 0;
            cursor.last_error.clear();
            self.save(cursor).await?;
            tracing::info!(endpoint = %self.id, from_revision = replay.from_revision, "webhook replay");
        }
        let durable = self.store.current_revision();
        if cursor.delivered >= durable {
            if position.unsaved_since.is_some_and(|since| since.elapsed() >= self.settings.webhook_cursor_save_interval)
            {
                self.save(cursor).await?;
                position.unsaved_since = None;
            }
            crate::metrics::webhook_lag(&self.id, 0);
            self.wait(revisions, true).await;
            return Ok(true);
        }
        crate::metrics::webhook_lag(&self.id, durable - cursor.delivered);
        let batches = match self.store.read_log(Scope::AllUsers, cursor.delivered + 1, durable, LOG_CHUNK).await {
            Err(Error::RevisionCompacted { oldest, .. }) => {
                let gap = Gap { from: cursor.delivered + 1, through: oldest - 1, record_time_ms: now_ms() };
                tracing::warn!(
                    endpoint = %self.id,
                    from_revision = gap.from,
                    through_revision = gap.through,
                    "webhook gap: these revisions were trimmed from the log before they were delivered"
                );
                crate::metrics::webhook_gap(&self.id, gap.through - gap.from + 1);
                cursor.delivered = gap.through;
                cursor.record_gap(gap, self.settings.webhook_max_gaps);
                self.save(cursor).await?;
                return Ok(true);
            }
            other => other?,
        };
        let complete = batches.len() < LOG_CHUNK;
        let before = cursor.delivered;
        for batch in batches {
            if let Some(kept) = endpoint.filter(&batch) {
                // What was filtered out before this batch is covered by the
                // save after it.
                match self.deliver(&endpoint, cursor, &kept).await? {
                    Attempted::Delivered => {
                        cursor.delivered = batch.revision;
                        self.save(cursor).await?;
                        position.unsaved_since = None;
                    }
                    Attempted::Changed => return Ok(true),
                }
            } else {
                cursor.delivered = batch.revision;
            }
        }
        if complete {
            cursor.delivered = cursor.delivered.max(durable);
        }
        if cursor.delivered != before && position.unsaved_since.is_none() {
            position.unsaved_since = Some(tokio::time::Instant::now());
        }
        Ok(true)
    }

    /// POSTs `batch` until a 2xx, or until the configuration changes.
    async fn deliver(
        &mut self,
        endpoint: &Endpoint,
        cursor: &mut Cursor,
        batch: &EventBatch,
    ) -> Result<Attempted, Error> {
        let body = Bytes::from(json_body(batch));
        // Stable across retries and replays: receivers deduplicate on it.
        let message_id = format!("{}_{}", self.id, batch.revision);
        let limits = http::Limits {
            timeout: self.settings.webhook_request_timeout,
            max_response_bytes: self.settings.webhook_max_response_bytes,
            allow_private: self.settings.webhook_allow_private,
        };
        let mut endpoint = endpoint.clone();
        loop {
            let target = http::parse_url(&endpoint.url).map_err(|e| Error::Internal(format!("stored url: {e}")));
            let now = now_ms();
            let timestamp = now.div_euclid(1000);
            let outcome = match target {
                Ok(target) => {
                    let signature =
                        signing::signature_header(&endpoint.signing_secrets(now), &message_id, timestamp, &body);
                    let headers = [
                        ("content-type", "application/json".to_string()),
                        ("user-agent", format!("convgroups/{}", env!("CARGO_PKG_VERSION"))),
                        ("webhook-id", message_id.clone()),
                        ("webhook-timestamp", timestamp.to_string()),
                        ("webhook-signature", signature),
                    ];
                    http::post(&target, &headers, body.clone(), limits, &self.tls).await
                }
                Err(e) => Err(Failure::Protocol(e.to_string())),
            };
            match outcome {
                Ok(status) => {
                    crate::metrics::webhook_delivered(&self.id, now_ms() - batch.time_ms);
                    if cursor.consecutive_failures > 0 {
                        tracing::info!(endpoint = %self.id, revision = batch.revision, status, "webhook delivered after retries");
                    }
                    cursor.consecutive_failures = 0;
                    cursor.last_error.clear();
                    return Ok(Attempted::Delivered);
                }
                Err(failure) => {
                    cursor.consecutive_failures = cursor.consecutive_failures.saturating_add(1);
                    cursor.last_error = failure.to_string();
                    let wait = backoff(&self.settings, cursor.consecutive_failures);
                    // One line per failed attempt: endpoint, revision and
                    // status; never the secret, the body or the headers.
                    tracing::warn!(
                        endpoint = %self.id,
                        revision = batch.revision,
                        status = failure.status(),
                        reason = failure.reason(),
                        attempt = cursor.consecutive_failures,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %failure,
                        "webhook delivery failed"
                    );
                    crate::metrics::webhook_failed(&self.id, failure.reason());
                    self.save(cursor).await?;
                    let mut changes = self.changes.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = changes.changed() => {}
                    }
                    self.changes = changes;
                    if self.claim.as_ref().is_some_and(|c| c.lost()) {
                        return Ok(Attempted::Changed);
                    }
                    match records::load_endpoint(&self.store, &self.id).await? {
                        Some(now) if now == endpoint => {}
                        Some(now)
                            if now.enabled
                                && now.replay == endpoint.replay
                                && now.event_types == endpoint.event_types
                                && now.user_ids == endpoint.user_ids =>
                        {
                            // A new URL or secret: the same batch, there.
                            endpoint = now;
                        }
                        _ => return Ok(Attempted::Changed),
                    }
                    crate::metrics::webhook_retry(&self.id);
                }
            }
        }
    }

    async fn save(&self, cursor: &Cursor) -> Result<(), Error> {
        let value = records::encode(cursor);
        match &self.claim {
            Some(claim) => claim.write_guarded(&records::cursor_key(&self.id), value).await,
            None => self.store.webhook_write(vec![(records::cursor_key(&self.id), value)], Vec::new()).await,
        }
    }

    /// Waits for something to do: a new revision (when `caught_up`), a
    /// change made on this server, or the scan interval (changes made on
    /// another replica).
    async fn wait(&mut self, revisions: &mut crate::store::RevisionWatch, caught_up: bool) {
        let interval = self.settings.webhook_scan_interval;
        tokio::select! {
            alive = revisions.changed(), if caught_up => {
                if !alive {
                    tokio::time::sleep(interval).await;
                }
            }
            _ = self.changes.changed() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = WebhookSettings {
            webhook_retry_initial: Duration::from_secs(1),
            webhook_retry_max: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let wait = backoff(&settings, failures);
            let full = Duration::from_secs(full);
            assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
        }
    }
}
