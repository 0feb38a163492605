//! The operations behind the admin API, on the stored records: check the
//! request (naming the field), change the configuration, tell the
//! supervisor. The service layer only converts.

use rand::RngCore;
use tokio::sync::Mutex;

use super::http;
use super::records::{self, Cursor, Endpoint, Replay};
use super::signing::Secret;
use super::Supervisor;
use crate::config::WebhookSettings;
use crate::domain::{now_ms, Scope, UserId};
use crate::error::Error;
use crate::store::Store;

/// Bytes of an endpoint's description.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Times an edit of an endpoint's configuration is read, changed and
/// written again when another edit (through another replica) committed in
/// between; likewise the count of endpoints of a CreateWebhook when
/// another endpoint was registered in between. Each retry follows a commit of someone else, and each replica
/// lets one edit at a time through (`Admin::turn`), so with a few replicas
/// a handful of tries is always enough; past this many the edit is refused
/// as UNAVAILABLE (nothing written: safe to send again) rather than looping
/// on a record that never settles.
pub const MAX_EDIT_ATTEMPTS: usize = 16;
/// Secrets an endpoint signs with at once (the newest and those in their
/// grace period); older ones are dropped at the next rotation.
const MAX_SECRETS: usize = 3;

/// What the admin API works on.
pub struct Admin {
    pub store: Store,
    pub settings: WebhookSettings,
    pub supervisor: Supervisor,
    /// Changes of configurations through this server take turns (they read,
    /// change and write a record). That only spares conflicts: across
    /// replicas, `modify` compares what it read when it writes.
    turn: Mutex<()>,
}

/// An endpoint with where its delivery is.
pub struct View {
    pub endpoint: Endpoint,
    pub cursor: Cursor,
    pub current_revision: u64,
    /// Age of the oldest undelivered batch, in ms.
    pub lag_ms: i64,
    pub failing_after: u32,
}

/// The fields UpdateWebhook may change.
#[derive(Debug, Default)]
pub struct Update {
    pub url: Option<String>,
    pub event_types: Option<Vec<i32>>,
    pub user_ids: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidArgument { field, message: message.into() }
}

fn new_id() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("wh{hex}")
}

impl Admin {
    pub fn new(store: Store, settings: WebhookSettings, supervisor: Supervisor) -> Self {
        Self { store, settings, supervisor, turn: Mutex::new(()) }
    }

    async fn check_url(&self, url: &str) -> Result<(), Error> {
        let target = http::parse_url(url).map_err(|e| invalid("url", e))?;
        http::resolve(&target, self.settings.webhook_allow_private).await.map_err(|e| invalid("url", e.to_string()))?;
        Ok(())
    }

    fn check_filters(event_types: &[i32], user_ids: &[String]) -> Result<(), Error> {
        for (i, t) in event_types.iter().enumerate() {
            if records::event_type(*t).is_none() {
                return Err(invalid(
                    "event_types",
                    format!("[{i}] {t} is not a GroupEventType other than UNSPECIFIED"),
                ));
            }
        }
        for (i, u) in user_ids.iter().enumerate() {
            UserId::parse(u).map_err(|e| invalid("user_ids", format!("[{i}] {e}")))?;
        }
        Ok(())
    }

    fn check_description(description: &str) -> Result<(), Error> {
        if description.len() > MAX_DESCRIPTION_BYTES {
            return Err(invalid(
                "description",
                format!("{} bytes, more than {MAX_DESCRIPTION_BYTES}", description.len()),
            ));
        }
        Ok(())
    }

    /// Registers an endpoint; returns it with its secret (shown once).
    pub async fn create(
        &self,
        url: String,
        event_types: Vec<i32>,
        user_ids: Vec<String>,
        description: String,
    ) -> Result<(View, String), Error> {
        self.check_url(&url).await?;
        Self::check_filters(&event_types, &user_ids)?;
        Self::check_description(&description)?;
        let _turn = self.turn.lock().await;
        let secret = Secret::generate().encode();
        let endpoint = Endpoint {
            id: new_id(),
            url,
            event_types,
            user_ids,
            description,
            enabled: true,
            create_time_ms: now_ms(),
            secrets: vec![secret.clone()],
            previous_expire_ms: None,
            replay: None,
        };
        // Delivery starts after the deployment's current revision: what was
        // acknowledged before the endpoint existed is history (ReplayWebhook
        // delivers it).
        let cursor = Cursor { delivered: self.store.latest_revision().await?, ..Cursor::default() };
        let key = records::config_key(&endpoint.id);
        let puts = vec![
            (records::cursor_key(&endpoint.id), records::encode(&cursor)),
            (key.clone(), records::encode(&endpoint)),
        ];
        // Counted and written together: the write is refused if another
        // replica registered an endpoint since the count, and then counts
        // again, so --webhook-max-endpoints holds across replicas.
        let mut written = false;
        for _ in 0..MAX_EDIT_ATTEMPTS {
            let (existing, at) = self.store.webhook_scan_at("e/").await?;
            if existing.iter().any(|(k, _)| *k == key) {
                // A write whose answer was lost and that was sent again.
                written = true;
                break;
            }
            if existing.len() >= self.settings.webhook_max_endpoints {
                return Err(Error::WebhookLimitExceeded { limit: self.settings.webhook_max_endpoints });
            }
            if self.store.webhook_write_unless_created("e/", at, puts.clone()).await? {
                written = true;
                break;
            }
            crate::metrics::webhook_edit_conflict();
        }
        if !written {
            return Err(Error::Storage(format!(
                "endpoints were registered concurrently {MAX_EDIT_ATTEMPTS} times in a row while this one was; \
                 nothing was written, try again"
            )));
        }
        self.supervisor.changed();
        Ok((self.view(endpoint).await?, secret))
    }

    async fn endpoint(&self, id: &str) -> Result<Endpoint, Error> {
        records::load_endpoint(&self.store, id).await?.ok_or_else(|| Error::WebhookNotFound { id: id.to_string() })
    }

    /// Applies `change` to the stored configuration of `id` and writes it
    /// back, only over the version it read: an edit committed in between
    /// (through another replica) makes it read and apply `change` again,
    /// so no edit overwrites another unseen, and an endpoint deleted in
    /// between stays deleted (NOT_FOUND). `change` may run more than once.
    async fn modify(&self, id: &str, mut change: impl FnMut(&mut Endpoint)) -> Result<Endpoint, Error> {
        let key = records::config_key(id);
        for attempt in 1..=MAX_EDIT_ATTEMPTS {
            let read = self.store.webhook_read(&key).await?;
            let mut endpoint = match &read.value {
                Some(bytes) => records::decode_endpoint(bytes)?,
                None => return Err(Error::WebhookNotFound { id: id.to_string() }),
            };
            change(&mut endpoint);
            if self.store.webhook_write_if(&read, vec![(key.clone(), records::encode(&endpoint))], Vec::new()).await? {
                self.supervisor.changed();
                return Ok(endpoint);
            }
            crate::metrics::webhook_edit_conflict();
            tracing::debug!(endpoint = %id, attempt, "webhook edit conflicted with another; reading it again");
        }
        Err(Error::Storage(format!(
            "webhook {id}: edited concurrently {MAX_EDIT_ATTEMPTS} times in a row while this edit was applied; \
             nothing was written, try again"
        )))
    }

    pub async fn view(&self, endpoint: Endpoint) -> Result<View, Error> {
        let cursor = records::load_cursor(&self.store, &endpoint.id).await?.unwrap_or_default();
        let current_revision = self.store.current_revision();
        let mut lag_ms = 0;
        if cursor.delivered < current_revision {
            if let Ok(next) = self.store.read_log(Scope::AllUsers, cursor.delivered + 1, current_revision, 1).await {
                lag_ms = next.first().map_or(0, |b| (now_ms() - b.time_ms).max(0));
            }
        }
        Ok(View { endpoint, cursor, current_revision, lag_ms, failing_after: self.settings.webhook_failing_after })
    }

    pub async fn get(&self, id: &str) -> Result<View, Error> {
        let endpoint = self.endpoint(id).await?;
        self.view(endpoint).await
    }

    pub async fn list(&self) -> Result<Vec<View>, Error> {
        let mut views = Vec::new();
        for endpoint in records::list_endpoints(&self.store).await? {
            views.push(self.view(endpoint).await?);
        }
        Ok(views)
    }

    pub async fn update(&self, id: &str, update: Update) -> Result<View, Error> {
        if let Some(url) = &update.url {
            self.check_url(url).await?;
        }
        Self::check_filters(update.event_types.as_deref().unwrap_or(&[]), update.user_ids.as_deref().unwrap_or(&[]))?;
        if let Some(description) = &update.description {
            Self::check_description(description)?;
        }
        let _turn = self.turn.lock().await;
        let endpoint = self
            .modify(id, |endpoint| {
                if let Some(url) = &update.url {
                    endpoint.url = url.clone();
                }
                if let Some(event_types) = &update.event_types {
                    endpoint.event_types = event_types.clone();
                }
                if let Some(user_ids) = &update.user_ids {
                    endpoint.user_ids = user_ids.clone();
                }
                if let Some(description) = &update.description {
                    endpoint.description = description.clone();
                }
                if let Some(enabled) = update.enabled {
                    endpoint.enabled = enabled;
                }
            })
            .await?;
        self.view(endpoint).await
    }

    /// A new secret; the previous ones sign for `grace` more.
    pub async fn rotate(&self, id: &str, grace: Option<std::time::Duration>) -> Result<(View, String), Error> {
        let grace = grace.unwrap_or(self.settings.webhook_rotation_grace);
        let _turn = self.turn.lock().await;
        // One new secret however often the change is applied: a retry must
        // not sign with a secret that was never shown.
        let secret = Secret::generate().encode();
        let endpoint = self
            .modify(id, |endpoint| {
                let now = now_ms();
                let still_signing = endpoint.previous_expire_ms.is_some_and(|until| now < until);
                let mut secrets: Vec<String> = if still_signing {
                    endpoint.secrets.clone()
                } else {
                    endpoint.secrets.last().cloned().into_iter().collect()
                };
                // Applied again after a lost answer, the secret is there.
                secrets.retain(|s| *s != secret);
                secrets.push(secret.clone());
                if grace.is_zero() {
                    secrets = vec![secret.clone()];
                }
                let excess = secrets.len().saturating_sub(MAX_SECRETS);
                secrets.drain(..excess);
                endpoint.secrets = secrets;
                endpoint.previous_expire_ms = (!grace.is_zero()).then(|| now + grace.as_millis() as i64);
            })
            .await?;
        Ok((self.view(endpoint).await?, secret))
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _turn = self.turn.lock().await;
        self.endpoint(id).await?;
        let keys = vec![records::config_key(id), records::cursor_key(id), super::lease::lock_key(id)];
        self.store.webhook_write(Vec::new(), keys).await?;
        self.supervisor.changed();
        Ok(())
    }

    /// Delivers again from `from_revision`.
    pub async fn replay(&self, id: &str, from_revision: u64) -> Result<View, Error> {
        if from_revision == 0 {
            return Err(invalid("from_revision", "must be at least 1"));
        }
        let current = self.store.latest_revision().await?;
        let floor = self.store.floor(Scope::AllUsers).await?;
        if from_revision > current + 1 {
            return Err(Error::RevisionInFuture { start: from_revision, oldest: floor + 1, current });
        }
        if from_revision <= floor {
            return Err(Error::RevisionCompacted { start: from_revision, oldest: floor + 1, current });
        }
        let _turn = self.turn.lock().await;
        let endpoint = self
            .modify(id, |endpoint| {
                let seq = endpoint.replay.map_or(0, |r| r.seq) + 1;
                endpoint.replay = Some(Replay { seq, from_revision });
            })
            .await?;
        self.view(endpoint).await
    }
}
