//! What is stored per endpoint, as JSON under string keys (see
//! `store::webhooks`): `e/<id>` the configuration, written by the admin
//! API; `c/<id>` the cursor, written by the endpoint's one sender. Two
//! records with one kind of writer each, so a sender's cursor write cannot
//! undo an edit, nor an edit a cursor write; a replay is a request in the
//! configuration that the sender carries out on the cursor. Edits of one
//! configuration through different replicas compare the record's version
//! when they write (`Admin::modify`), so none is lost.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::signing::Secret;
use crate::domain::{EventBatch, EventKind, EventType};
use crate::error::Error;
use crate::store::Store;

pub fn config_key(id: &str) -> String {
    format!("e/{id}")
}

pub fn cursor_key(id: &str) -> String {
    format!("c/{id}")
}

/// An endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// `GroupEventType` numbers; empty: all.
    pub event_types: Vec<i32>,
    /// Empty: every user.
    pub user_ids: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub create_time_ms: i64,
    /// `whsec_` secrets, newest last. The stored form is what signs: the
    /// records are as secret as the data directory (or the etcd prefix).
    pub secrets: Vec<String>,
    /// Until when the secrets before the newest one sign.
    pub previous_expire_ms: Option<i64>,
    /// The latest replay request: the sender applies it once (by `seq`).
    pub replay: Option<Replay>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub seq: u64,
    pub from_revision: u64,
}

/// Where an endpoint's delivery is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every revision up to this one is delivered, filtered out, or in a gap.
    pub delivered: u64,
    /// The last replay request applied.
    pub replay_seq: u64,
    pub consecutive_failures: u32,
    pub last_error: String,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: u64,
    pub through: u64,
    pub record_time_ms: i64,
}

impl Cursor {
    /// Adds `gap`, dropping the oldest beyond `max` (`--webhook-max-gaps`;
    /// the metric counts all).
    pub fn record_gap(&mut self, gap: Gap, max: usize) {
        self.gaps.push(gap);
        let excess = self.gaps.len().saturating_sub(max);
        self.gaps.drain(..excess);
    }
}

fn corrupt(what: &str, e: serde_json::Error) -> Error {
    Error::Internal(format!("stored webhook {what} does not decode: {e}"))
}

pub fn decode_endpoint(bytes: &[u8]) -> Result<Endpoint, Error> {
    serde_json::from_slice(bytes).map_err(|e| corrupt("endpoint", e))
}

pub async fn load_endpoint(store: &Store, id: &str) -> Result<Option<Endpoint>, Error> {
    store.webhook_get(&config_key(id)).await?.map(|bytes| decode_endpoint(&bytes)).transpose()
}

pub async fn load_cursor(store: &Store, id: &str) -> Result<Option<Cursor>, Error> {
    match store.webhook_get(&cursor_key(id)).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt("cursor", e)),
        None => Ok(None),
    }
}

pub async fn list_endpoints(store: &Store) -> Result<Vec<Endpoint>, Error> {
    let mut endpoints = Vec::new();
    for (_, bytes) in store.webhook_scan("e/").await? {
        endpoints.push(serde_json::from_slice::<Endpoint>(&bytes).map_err(|e| corrupt("endpoint", e))?);
    }
    endpoints.sort_by(|a, b| (a.create_time_ms, &a.id).cmp(&(b.create_time_ms, &b.id)));
    Ok(endpoints)
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("webhook records always encode")
}

impl Endpoint {
    /// The secrets that sign a delivery at `now_ms`: the newest, and the
    /// previous ones within their grace period.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<Secret> {
        let Some((newest, previous)) = self.secrets.split_last() else { return Vec::new() };
        let mut secrets: Vec<Secret> = Vec::new();
        if self.previous_expire_ms.is_some_and(|until| now_ms < until) {
            secrets.extend(previous.iter().filter_map(|s| Secret::decode(s)));
        }
        secrets.extend(Secret::decode(newest));
        secrets
    }

    /// The part of `batch` this endpoint wants; None when nothing is left.
    pub fn filter(&self, batch: &EventBatch) -> Option<EventBatch> {
        if !self.user_ids.is_empty() && !self.user_ids.iter().any(|u| u == batch.user.as_str()) {
            return None;
        }
        if self.event_types.is_empty() {
            return Some(batch.clone());
        }
        let wanted: HashSet<EventType> = self.event_types.iter().filter_map(|t| event_type(*t)).collect();
        let events: Vec<EventKind> =
            batch.events.iter().filter(|e| wanted.contains(&e.event_type())).cloned().collect();
        (!events.is_empty()).then(|| EventBatch { events, ..batch.clone() })
    }
}

/// The domain's kind of a `GroupEventType` number: the one mapping, the
/// service layer's.
pub use crate::service::convert::event_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_gaps_are_kept_up_to_the_limit() {
        let gap = |n: u64| Gap { from: n, through: n, record_time_ms: 0 };
        let mut cursor = Cursor::default();
        for n in 1..=5 {
            cursor.record_gap(gap(n), 3);
        }
        assert_eq!(cursor.gaps, vec![gap(3), gap(4), gap(5)]);
        // A lower limit after a restart trims on the next gap.
        cursor.record_gap(gap(6), 1);
        assert_eq!(cursor.gaps, vec![gap(6)]);
    }
}
