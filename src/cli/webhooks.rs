//! `convgroups webhooks ...`: the admin API of webhooks (an admin token).
//! `--json` prints the answer in the proto's canonical JSON mapping; text
//! otherwise.

use clap::{Args, Subcommand};

use super::client::{Client, Failure};
use super::output::{cell, Table};
use super::{Connection, Outcome};
use crate::domain::EventType;
use crate::pb::webhook_service_client::WebhookServiceClient;
use crate::pb::*;
use crate::webhook::sender::canonical_json;

#[derive(Args, Debug)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its id and its secret (shown only now).
    Create {
        /// Where batches are POSTed (http:// or https://).
        url: String,
        /// Only events of this kind (repeat for more).
        #[arg(long = "type", value_enum, value_name = "KIND")]
        kinds: Vec<EventType>,
        /// Only events of this user (repeat for more).
        #[arg(long = "for-user", value_name = "USER")]
        users: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every endpoint with its delivery state.
    List,
    /// One endpoint with its delivery state.
    Get { id: String },
    /// Change an endpoint: only the flags given.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        /// Replace the event kinds (with --clear-types: all kinds).
        #[arg(long = "type", value_enum, value_name = "KIND")]
        kinds: Vec<EventType>,
        #[arg(long)]
        clear_types: bool,
        /// Replace the users (with --clear-users: every user).
        #[arg(long = "for-user", value_name = "USER")]
        users: Vec<String>,
        #[arg(long)]
        clear_users: bool,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// A new secret; the previous ones keep signing for the grace period.
    RotateSecret {
        id: String,
        /// How long the previous secrets keep signing (default: the
        /// server's --webhook-rotation-grace; 0s: not at all).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Remove an endpoint.
    Delete { id: String },
    /// Deliver again from a revision on.
    Replay {
        id: String,
        #[arg(long, value_name = "REV")]
        from: u64,
    },
}

fn json<M: prost::Message>(name: &str, message: &M) -> String {
    String::from_utf8(canonical_json(name, message)).expect("JSON is UTF-8")
}

fn text(w: &Webhook) -> String {
    let d = w.delivery.clone().unwrap_or_default();
    let state =
        WebhookState::try_from(d.state).map(|s| s.as_str_name().trim_start_matches("WEBHOOK_STATE_")).unwrap_or("?");
    let mut out = format!(
        "id           {}\nurl          {}\nstate        {state}\ndelivered    {} (lag {} revisions, {}s)\nfailures     {}\n",
        w.id,
        cell(&w.url),
        d.delivered_revision,
        d.lag_revisions,
        d.lag.map_or(0, |l| l.seconds),
        d.consecutive_failures,
    );
    if !d.last_error.is_empty() {
        out.push_str(&format!("last error   {}\n", cell(&d.last_error)));
    }
    for g in &d.gaps {
        out.push_str(&format!("gap          {}..={}\n", g.from_revision, g.through_revision));
    }
    if !w.description.is_empty() {
        out.push_str(&format!("description  {}\n", cell(&w.description)));
    }
    out.trim_end().to_string()
}

fn print(json_out: bool, name: &str, message: &impl prost::Message, text_form: String) -> Result<Outcome, Failure> {
    let line = if json_out { json(name, message) } else { text_form };
    println!("{line}");
    Ok(Outcome::Done)
}

fn kinds(kinds: &[EventType]) -> Vec<i32> {
    super::commands::event_types(kinds)
}

pub async fn run(client: &Client, json_out: bool, command: WebhooksCommand) -> Result<Outcome, Failure> {
    let mut api = WebhookServiceClient::with_interceptor(client.channel(), client.auth());
    match command {
        WebhooksCommand::Create { url, kinds: k, users, description } => {
            let request = CreateWebhookRequest { url, event_types: kinds(&k), user_ids: users, description };
            let r = client.call(api.create_webhook(client.request(request))).await?;
            let shown = format!("{}\nsecret       {}", text(&r.webhook.clone().unwrap_or_default()), r.secret);
            print(json_out, "convgroups.v1.CreateWebhookResponse", &r, shown)
        }
        WebhooksCommand::List => {
            let r = client.call(api.list_webhooks(client.request(ListWebhooksRequest {}))).await?;
            let mut table = Table::new(&["ID", "STATE", "DELIVERED", "LAG", "URL"]);
            for w in &r.webhooks {
                let d = w.delivery.clone().unwrap_or_default();
                let state = WebhookState::try_from(d.state)
                    .map(|s| s.as_str_name().trim_start_matches("WEBHOOK_STATE_").to_string())
                    .unwrap_or_default();
                table.row(vec![
                    w.id.clone(),
                    state,
                    d.delivered_revision.to_string(),
                    d.lag_revisions.to_string(),
                    cell(&w.url),
                ]);
            }
            print(json_out, "convgroups.v1.ListWebhooksResponse", &r, table.render().trim_end().to_string())
        }
        WebhooksCommand::Get { id } => {
            let r = client.call(api.get_webhook(client.request(GetWebhookRequest { id }))).await?;
            let shown = text(&r.webhook.clone().unwrap_or_default());
            print(json_out, "convgroups.v1.GetWebhookResponse", &r, shown)
        }
        WebhooksCommand::Update {
            id,
            url,
            kinds: k,
            clear_types,
            users,
            clear_users,
            description,
            enable,
            disable,
        } => {
            let mut paths = Vec::new();
            let mut webhook = Webhook { id, ..Default::default() };
            if let Some(url) = url {
                webhook.url = url;
                paths.push("url".to_string());
            }
            if !k.is_empty() || clear_types {
                webhook.event_types = kinds(&k);
                paths.push("event_types".into());
            }
            if !users.is_empty() || clear_users {
                webhook.user_ids = users;
                paths.push("user_ids".into());
            }
            if let Some(description) = description {
                webhook.description = description;
                paths.push("description".into());
            }
            if enable || disable {
                webhook.enabled = enable;
                paths.push("enabled".into());
            }
            let request =
                UpdateWebhookRequest { webhook: Some(webhook), update_mask: Some(prost_types::FieldMask { paths }) };
            let r = client.call(api.update_webhook(client.request(request))).await?;
            let shown = text(&r.webhook.clone().unwrap_or_default());
            print(json_out, "convgroups.v1.UpdateWebhookResponse", &r, shown)
        }
        WebhooksCommand::RotateSecret { id, grace } => {
            let grace_period =
                grace.map(|g| prost_types::Duration { seconds: g.as_secs() as i64, nanos: g.subsec_nanos() as i32 });
            let r = client
                .call(api.rotate_webhook_secret(client.request(RotateWebhookSecretRequest { id, grace_period })))
                .await?;
            let shown = format!("{}\nsecret       {}", text(&r.webhook.clone().unwrap_or_default()), r.secret);
            print(json_out, "convgroups.v1.RotateWebhookSecretResponse", &r, shown)
        }
        WebhooksCommand::Delete { id } => {
            let r = client.call(api.delete_webhook(client.request(DeleteWebhookRequest { id: id.clone() }))).await?;
            print(json_out, "convgroups.v1.DeleteWebhookResponse", &r, format!("deleted {id}"))
        }
        WebhooksCommand::Replay { id, from } => {
            let r = client
                .call(api.replay_webhook(client.request(ReplayWebhookRequest { id, from_revision: from })))
                .await?;
            let shown = text(&r.webhook.clone().unwrap_or_default());
            print(json_out, "convgroups.v1.ReplayWebhookResponse", &r, shown)
        }
    }
}
