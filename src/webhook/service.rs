//! `WebhookService`: admin token → convert → [`Admin`] → convert.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::admin::{Admin, Update, View};
use crate::error::Error;
use crate::pb;
use crate::pb::webhook_service_server::WebhookService;
use crate::service::convert::timestamp;

#[derive(Clone)]
pub struct WebhookServiceImpl {
    admin: Arc<Admin>,
    unary_timeout: std::time::Duration,
}

impl WebhookServiceImpl {
    pub fn new(admin: Arc<Admin>, unary_timeout: std::time::Duration) -> Self {
        Self { admin, unary_timeout }
    }

    /// Runs one admin call: refuses anything but an admin token, bounds it
    /// by `--unary-timeout`, logs one line.
    async fn call<Req, Resp, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handler: impl FnOnce(Arc<Admin>, Req) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: std::future::Future<Output = Result<Resp, Error>>,
    {
        let started = Instant::now();
        let caller =
            crate::service::caller(&request).map_err(|e| crate::service::finish(method, None, started, Err(e)))?;
        if !caller.admin {
            let refused =
                Error::PermissionDenied { message: "webhooks: only an admin token may manage webhooks".into() };
            return Err(crate::service::finish(method, Some(&caller.subject), started, Err(refused)));
        }
        let outcome =
            match tokio::time::timeout(self.unary_timeout, handler(self.admin.clone(), request.into_inner())).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Error::DeadlineExceeded { timeout: self.unary_timeout }),
            };
        match outcome {
            Ok(response) => {
                crate::service::finish(method, Some(&caller.subject), started, Ok(()));
                Ok(Response::new(response))
            }
            Err(e) => Err(crate::service::finish(method, Some(&caller.subject), started, Err(e))),
        }
    }
}

fn to_pb(view: View) -> pb::Webhook {
    let View { endpoint, cursor, current_revision, lag_ms, failing_after } = view;
    let state = if !endpoint.enabled {
        pb::WebhookState::Disabled
    } else if cursor.consecutive_failures >= failing_after {
        pb::WebhookState::Failing
    } else {
        pb::WebhookState::Active
    };
    let now = crate::domain::now_ms();
    pb::Webhook {
        id: endpoint.id,
        url: endpoint.url,
        event_types: endpoint.event_types,
        user_ids: endpoint.user_ids,
        description: endpoint.description,
        enabled: endpoint.enabled,
        create_time: Some(timestamp(endpoint.create_time_ms)),
        previous_secrets_expire_time: endpoint
            .previous_expire_ms
            .filter(|until| *until > now && endpoint.secrets.len() > 1)
            .map(timestamp),
        delivery: Some(pb::WebhookDelivery {
            state: state as i32,
            delivered_revision: cursor.delivered,
            lag_revisions: current_revision.saturating_sub(cursor.delivered),
            lag: Some(prost_types::Duration { seconds: lag_ms / 1000, nanos: ((lag_ms % 1000) * 1_000_000) as i32 }),
            last_error: cursor.last_error,
            consecutive_failures: cursor.consecutive_failures,
            gaps: cursor
                .gaps
                .into_iter()
                .map(|g| pb::WebhookGap {
                    from_revision: g.from,
                    through_revision: g.through,
                    record_time: Some(timestamp(g.record_time_ms)),
                })
                .collect(),
        }),
    }
}

fn required_id(id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::InvalidArgument { field: "id", message: "required".into() });
    }
    Ok(())
}

fn grace(duration: Option<prost_types::Duration>) -> Result<Option<std::time::Duration>, Error> {
    duration
        .map(|d| {
            if d.seconds < 0 || d.nanos < 0 {
                return Err(Error::InvalidArgument { field: "grace_period", message: "must not be negative".into() });
            }
            Ok(std::time::Duration::new(d.seconds as u64, d.nanos as u32))
        })
        .transpose()
}

#[tonic::async_trait]
impl WebhookService for WebhookServiceImpl {
    async fn create_webhook(
        &self,
        request: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        self.call("CreateWebhook", request, |admin, r| async move {
            let (view, secret) = admin.create(r.url, r.event_types, r.user_ids, r.description).await?;
            Ok(pb::CreateWebhookResponse { webhook: Some(to_pb(view)), secret })
        })
        .await
    }

    async fn get_webhook(
        &self,
        request: Request<pb::GetWebhookRequest>,
    ) -> Result<Response<pb::GetWebhookResponse>, Status> {
        self.call("GetWebhook", request, |admin, r| async move {
            required_id(&r.id)?;
            Ok(pb::GetWebhookResponse { webhook: Some(to_pb(admin.get(&r.id).await?)) })
        })
        .await
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        self.call("ListWebhooks", request, |admin, _| async move {
            Ok(pb::ListWebhooksResponse { webhooks: admin.list().await?.into_iter().map(to_pb).collect() })
        })
        .await
    }

    async fn update_webhook(
        &self,
        request: Request<pb::UpdateWebhookRequest>,
    ) -> Result<Response<pb::UpdateWebhookResponse>, Status> {
        self.call("UpdateWebhook", request, |admin, r| async move {
            let webhook = r.webhook.ok_or(Error::InvalidArgument { field: "webhook", message: "required".into() })?;
            required_id(&webhook.id)?;
            let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
            if paths.is_empty() {
                return Err(Error::InvalidArgument {
                    field: "update_mask",
                    message: "name the fields to change: url, event_types, user_ids, description, enabled".into(),
                });
            }
            let mut update = Update::default();
            for path in paths {
                match path.as_str() {
                    "url" => update.url = Some(webhook.url.clone()),
                    "event_types" => update.event_types = Some(webhook.event_types.clone()),
                    "user_ids" => update.user_ids = Some(webhook.user_ids.clone()),
                    "description" => update.description = Some(webhook.description.clone()),
                    "enabled" => update.enabled = Some(webhook.enabled),
                    other => {
                        return Err(Error::InvalidArgument {
                            field: "update_mask",
                            message: format!(
                                "{other:?} cannot be changed (url, event_types, user_ids, description, enabled)"
                            ),
                        })
                    }
                }
            }
            Ok(pb::UpdateWebhookResponse { webhook: Some(to_pb(admin.update(&webhook.id, update).await?)) })
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        self.call("RotateWebhookSecret", request, |admin, r| async move {
            required_id(&r.id)?;
            let (view, secret) = admin.rotate(&r.id, grace(r.grace_period)?).await?;
            Ok(pb::RotateWebhookSecretResponse { webhook: Some(to_pb(view)), secret })
        })
        .await
    }

    async fn delete_webhook(
        &self,
        request: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        self.call("DeleteWebhook", request, |admin, r| async move {
            required_id(&r.id)?;
            admin.delete(&r.id).await?;
            Ok(pb::DeleteWebhookResponse {})
        })
        .await
    }

    async fn replay_webhook(
        &self,
        request: Request<pb::ReplayWebhookRequest>,
    ) -> Result<Response<pb::ReplayWebhookResponse>, Status> {
        self.call("ReplayWebhook", request, |admin, r| async move {
            required_id(&r.id)?;
            Ok(pb::ReplayWebhookResponse { webhook: Some(to_pb(admin.replay(&r.id, r.from_revision).await?)) })
        })
        .await
    }
}
