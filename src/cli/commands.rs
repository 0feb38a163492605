//! One function per client subcommand: build the request from the flags,
//! call, print the answer (text or `--json`), and say how it ended.

use crate::config::Backend;
use std::io::Write as _;

use super::client::{self, describe_status, Client, Failure};
use super::output::{cell, Json};
use super::render::{self, conversations_count, quoted};
use super::{
    BackupArgs, ColorArg, Command, ConvType, ConversationsCommand, Filter, GroupsCommand, Outcome, RecvOptArg,
    RestoreArgs, RuleArgs, SortModeArg, Update, WatchArgs,
};
use crate::pb::watch_group_events_response::Kind as WatchKind;
use crate::pb::*;

/// Writes to stdout and flushes, so a line reaches a pipe at once (`watch`
/// output is read line by line).
fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_line(text: &str) -> Result<(), Failure> {
    print(&format!("{text}\n"))
}

/// Prints the JSON object (with `--json`) or the text.
fn show(json: bool, value: impl FnOnce() -> Json, text: impl FnOnce() -> String) -> Result<(), Failure> {
    if json {
        print_line(&value().encode())
    } else {
        print_line(&text())
    }
}

/// Prints each failed item of a batch call to stderr.
fn item_failures(failed: &[ConversationResult]) -> Outcome {
    let mut err = std::io::stderr().lock();
    for f in failed {
        let _ = writeln!(
            err,
            "error: {}: {}: {}",
            cell(&f.conversation_id),
            render::result_code_name(f.code),
            cell(&f.message)
        );
    }
    if failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeItemsFailed
    }
}

fn group_color(color: ColorArg) -> GroupColor {
    match color {
        ColorArg::None => GroupColor::Unspecified,
        ColorArg::Red => GroupColor::Red,
        ColorArg::Orange => GroupColor::Orange,
        ColorArg::Violet => GroupColor::Violet,
        ColorArg::Green => GroupColor::Green,
        ColorArg::Cyan => GroupColor::Cyan,
        ColorArg::Blue => GroupColor::Blue,
        ColorArg::Pink => GroupColor::Pink,
    }
}

/// `groups`, `conversations` and `watch`: connect, then run.
pub async fn remote(command: Command) -> Result<Outcome, Failure> {
    let conn = match &command {
        Command::Groups(args) => args.conn.clone(),
        Command::Conversations(args) => args.conn.clone(),
        Command::Watch(args) => args.conn.clone(),
        Command::Webhooks(args) => args.conn.clone(),
        Command::Backup(_) | Command::Restore(_) => unreachable!("backup and restore need no server"),
    };
    let outcome = match command {
        Command::Groups(args) => match Client::connect(&args.conn).await {
            Ok(client) => groups(&client, args.conn.json, args.command).await,
            Err(e) => Err(e),
        },
        Command::Conversations(args) => match Client::connect(&args.conn).await {
            Ok(client) => conversations(&client, args.conn.json, args.command).await,
            Err(e) => Err(e),
        },
        Command::Watch(args) => match Client::connect(&args.conn).await {
            Ok(client) => watch(&client, args).await,
            Err(e) => Err(e),
        },
        Command::Webhooks(args) => match Client::connect(&args.conn).await {
            Ok(client) => super::webhooks::run(&client, args.conn.json, args.command).await,
            Err(e) => Err(e),
        },
        Command::Backup(_) | Command::Restore(_) => unreachable!("backup and restore need no server"),
    };
    match outcome {
        Err(failure) => Err(client::explain_plaintext_to_tls(failure, &conn).await),
        ok => ok,
    }
}

async fn groups(client: &Client, json: bool, command: GroupsCommand) -> Result<Outcome, Failure> {
    let mut api = client.groups();
    match command {
        GroupsCommand::List => {
            let r = client
                .call(api.get_conversation_group_list(client.request(GetConversationGroupListRequest::default())))
                .await?;
            show(json, || render::group_list(&r), || render::group_table(&r).trim_end().to_string())?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Create { name, ids, rule: rule_args, expect } => {
            let request = CreateConversationGroupRequest {
                group_name: name.clone(),
                conversation_ids: ids,
                expected_revision: expect.expected_revision,
                rule: rule(&rule_args),
                sort_mode: None,
            };
            let r = client.call(api.create_conversation_group(client.request(request))).await?;
            show(
                json,
                || render::created(&r),
                || {
                    format!(
                        "Created group {} with {} at revision {}.",
                        quoted(&name),
                        conversations_count(r.success_conversation_ids.len()),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::Rule { name, rule: rule_args, clear, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = SetConversationGroupRuleRequest {
                group_name,
                group_id,
                rule: if clear { None } else { rule(&rule_args) },
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.set_conversation_group_rule(client.request(request))).await?;
            let count = r.group.as_ref().map_or(0, |g| g.conversation_count as usize);
            let what = if clear { "no rule" } else { "its rule" };
            show(
                json,
                || render::renamed(&r.group, r.revision),
                || {
                    format!(
                        "Group {} has {what} and {} at revision {}.",
                        by.label(&name),
                        conversations_count(count),
                        r.revision
                    )
                },
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Rename { old, new, by, expect } => {
            let (old_name, group_id) = by.fields(&old);
            let request = RenameConversationGroupRequest {
                old_name,
                group_id,
                new_name: new.clone(),
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.rename_conversation_group(client.request(request))).await?;
            show(
                json,
                || render::renamed(&r.group, r.revision),
                || format!("Renamed group {} to {} at revision {}.", by.label(&old), quoted(&new), r.revision),
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Delete { name, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request =
                DeleteConversationGroupRequest { group_name, group_id, expected_revision: expect.expected_revision };
            let r = client.call(api.delete_conversation_group(client.request(request))).await?;
            show(
                json,
                || render::revision_only(r.revision),
                || format!("Deleted group {} at revision {}.", by.label(&name), r.revision),
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Add { name, ids, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = AddConversationsToGroupRequest {
                group_name,
                group_id,
                conversation_ids: ids,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.add_conversations_to_group(client.request(request))).await?;
            show(
                json,
                || render::batch(&r.success_conversation_ids, &r.failed, r.revision),
                || {
                    format!(
                        "Added {} to group {} at revision {}.",
                        conversations_count(r.success_conversation_ids.len()),
                        by.label(&name),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::Remove { name, ids, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = DeleteConversationsFromGroupRequest {
                group_name,
                group_id,
                conversation_ids: ids,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.delete_conversations_from_group(client.request(request))).await?;
            show(
                json,
                || render::batch(&r.success_conversation_ids, &r.failed, r.revision),
                || {
                    format!(
                        "Removed {} from group {} at revision {}.",
                        conversations_count(r.success_conversation_ids.len()),
                        by.label(&name),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::MarkRead { name, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request =
                MarkConversationGroupReadRequest { group_name, group_id, expected_revision: expect.expected_revision };
            let r = client.call(api.mark_conversation_group_read(client.request(request))).await?;
            show(
                json,
                || render::marked_read(&r),
                || {
                    format!(
                        "Marked {} of group {} read at revision {}.",
                        conversations_count(r.changed_conversation_ids.len()),
                        quoted(&name),
                        r.revision
                    )
                },
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Mute { name, recv_opt: opt, new_members, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = SetConversationGroupMuteRequest {
                group_name,
                group_id,
                recv_opt: recv_opt(opt) as i32,
                apply_to_new_members: new_members,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.set_conversation_group_mute(client.request(request))).await?;
            show(
                json,
                || render::muted(&r),
                || {
                    format!(
                        "Set {} of group {} to {}{} at revision {}.",
                        conversations_count(r.changed_conversation_ids.len()),
                        quoted(&name),
                        recv_opt(opt).as_str_name(),
                        if new_members { " (new members too)" } else { "" },
                        r.revision
                    )
                },
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Move { ids, from, to, by, expect } => {
            let (from_group_name, from_group_id) = from.as_deref().map(|f| by.fields(f)).unwrap_or_default();
            let to = to
                .iter()
                .map(|t| {
                    let (group_name, group_id) = by.fields(t);
                    GroupSelector { group_name, group_id }
                })
                .collect();
            let request = MoveConversationsRequest {
                conversation_ids: ids,
                from_group_name,
                from_group_id,
                to,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.move_conversations(client.request(request))).await?;
            show(
                json,
                || render::moved(&r),
                || {
                    let mut lines = Vec::new();
                    if from.is_some() {
                        lines.push(format!(
                            "Moved {} out of group {}.",
                            conversations_count(r.moved_conversation_ids.len()),
                            quoted(from.as_deref().unwrap_or_default())
                        ));
                    }
                    for t in &r.targets {
                        lines.push(format!(
                            "Added {} to group {}.",
                            conversations_count(t.added_conversation_ids.len()),
                            quoted(&t.group_name)
                        ));
                    }
                    lines.push(format!("Revision {}.", r.revision));
                    lines.join("\n")
                },
            )?;
            let mut failed = r.failed.clone();
            for t in &r.targets {
                failed.extend(t.failed.iter().map(|f| ConversationResult {
                    message: format!("in group {}: {}", quoted(&t.group_name), f.message),
                    ..f.clone()
                }));
            }
            Ok(item_failures(&failed))
        }
        GroupsCommand::Update {
            name,
            icon,
            clear_icon,
            color,
            collapsed,
            custom_data_base64,
            clear_custom_data,
            by,
            expect,
        } => {
            let (group_name, group_id) = by.fields(&name);
            let mut look = GroupLook::default();
            let mut paths = Vec::new();
            if icon.is_some() || clear_icon {
                look.icon = icon.unwrap_or_default();
                paths.push("icon");
            }
            if let Some(color) = color {
                look.color = group_color(color) as i32;
                paths.push("color");
            }
            if let Some(collapsed) = collapsed {
                look.collapsed = collapsed;
                paths.push("collapsed");
            }
            if custom_data_base64.is_some() || clear_custom_data {
                look.custom_data = match custom_data_base64 {
                    Some(text) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD
                            .decode(text.trim())
                            .map_err(|e| Failure::Message(format!("--custom-data-base64: not base64: {e}")))?
                    }
                    None => Vec::new(),
                };
                paths.push("custom_data");
            }
            let request = UpdateConversationGroupRequest {
                group_name,
                group_id,
                look: Some(look),
                update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.update_conversation_group(client.request(request))).await?;
            show(
                json,
                || render::updated(&r),
                || format!("Updated {} of group {} at revision {}.", paths.join(", "), quoted(&name), r.revision),
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::Sort { name, mode, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let sort_mode = match mode {
                SortModeArg::Recent => GroupSortMode::Recent,
                SortModeArg::Manual => GroupSortMode::Manual,
                SortModeArg::Alphabetical => GroupSortMode::Alphabetical,
            };
            let request = SetConversationGroupSortModeRequest {
                group_name,
                group_id,
                sort_mode: sort_mode as i32,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.set_conversation_group_sort_mode(client.request(request))).await?;
            show(
                json,
                || render::sorted(&r),
                || {
                    let mode = sort_mode.as_str_name().trim_start_matches("GROUP_SORT_MODE_");
                    format!("Group {} is sorted {mode} at revision {}.", quoted(&name), r.revision)
                },
            )?;
            Ok(Outcome::Done)
        }
        GroupsCommand::MoveIn { name, ids, place, by, expect } => {
            use move_conversations_in_group_request::Placement;
            let (group_name, group_id) = by.fields(&name);
            let placement = match (place.before, place.after, place.to_start) {
                (Some(id), _, _) => Placement::BeforeConversationId(id),
                (_, Some(id), _) => Placement::AfterConversationId(id),
                (_, _, true) => Placement::ToStart(true),
                _ => Placement::ToEnd(true),
            };
            let request = MoveConversationsInGroupRequest {
                group_name,
                group_id,
                conversation_ids: ids,
                placement: Some(placement),
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.move_conversations_in_group(client.request(request))).await?;
            show(
                json,
                || render::batch(&r.success_conversation_ids, &r.failed, r.revision),
                || {
                    format!(
                        "Moved {} in group {} at revision {}.",
                        conversations_count(r.success_conversation_ids.len()),
                        quoted(&name),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::Pin { name, ids, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = PinConversationsInGroupRequest {
                group_name,
                group_id,
                conversation_ids: ids,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.pin_conversations_in_group(client.request(request))).await?;
            show(
                json,
                || render::group_pins(&r.success_conversation_ids, &r.failed, r.revision, &r.pinned_conversation_ids),
                || pins_text("Pinned", &r.success_conversation_ids, &name, &r.pinned_conversation_ids, r.revision),
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::Unpin { name, ids, by, expect } => {
            let (group_name, group_id) = by.fields(&name);
            let request = UnpinConversationsInGroupRequest {
                group_name,
                group_id,
                conversation_ids: ids,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.unpin_conversations_in_group(client.request(request))).await?;
            show(
                json,
                || render::group_pins(&r.success_conversation_ids, &r.failed, r.revision, &r.pinned_conversation_ids),
                || pins_text("Unpinned", &r.success_conversation_ids, &name, &r.pinned_conversation_ids, r.revision),
            )?;
            Ok(item_failures(&r.failed))
        }
        GroupsCommand::Reorder { names, by, expect } => {
            let (group_names, group_ids) = if by.by_id { (Vec::new(), names) } else { (names, Vec::new()) };
            let request = ReorderConversationGroupsRequest {
                group_names,
                group_ids,
                expected_revision: expect.expected_revision,
            };
            let r = client.call(api.reorder_conversation_groups(client.request(request))).await?;
            show(
                json,
                || render::reordered(&r),
                || {
                    let names: Vec<String> = r.group_names.iter().map(|n| quoted(n)).collect();
                    format!("Group order: {} at revision {}.", names.join(", "), r.revision)
                },
            )?;
            Ok(Outcome::Done)
        }
    }
}

/// The rule the flags describe; None when no flag is given.
fn rule(r: &RuleArgs) -> Option<GroupRule> {
    let rule = GroupRule {
        r#type: r.match_type.map(|k| match k {
            ConvType::C2c => ConversationType::C2c as i32,
            ConvType::Group => ConversationType::Group as i32,
        }),
        mark_type: r.match_mark,
        has_unread_count: r.match_unread,
        muted: r.match_muted,
        ungrouped: r.match_ungrouped,
        has_group_at_info: r.match_at,
        include_ids: r.include.clone(),
        exclude_ids: r.exclude.clone(),
    };
    (rule != GroupRule::default()).then_some(rule)
}

/// The text of a pin or unpin: what changed and the group's pins after.
fn pins_text(verb: &str, done: &[String], group: &str, pinned: &[String], revision: u64) -> String {
    let pins = if pinned.is_empty() { "none".to_string() } else { pinned.join(", ") };
    format!(
        "{verb} {} in group {} at revision {revision}; pinned: {pins}.",
        conversations_count(done.len()),
        quoted(group)
    )
}

fn filter(f: Filter) -> ConversationFilter {
    ConversationFilter {
        r#type: f.kind.map(|k| match k {
            ConvType::C2c => ConversationType::C2c as i32,
            ConvType::Group => ConversationType::Group as i32,
        }),
        // The API's "in no group" filter is the empty group name.
        group_name: if f.ungrouped { Some(String::new()) } else { f.group },
        mark_type: f.mark,
        has_unread_count: f.unread.then_some(true),
        has_group_at_info: None,
        conversation_ids: f.ids,
        group_id: f.group_id,
    }
}

fn recv_opt(r: RecvOptArg) -> RecvOpt {
    match r {
        RecvOptArg::Receive => RecvOpt::Receive,
        RecvOptArg::NotReceive => RecvOpt::NotReceive,
        RecvOptArg::ReceiveNotNotify => RecvOpt::ReceiveNotNotify,
        RecvOptArg::ReceiveNotNotifyExceptAt => RecvOpt::ReceiveNotNotifyExceptAt,
        RecvOptArg::NotReceiveExceptAt => RecvOpt::NotReceiveExceptAt,
    }
}

fn update(id: String, u: &Update) -> ConversationUpdate {
    ConversationUpdate {
        conversation_id: id,
        show_name: u.name.clone(),
        face_url: u.face_url.clone(),
        unread_count: u.unread,
        is_pinned: if u.pin {
            Some(true)
        } else if u.unpin {
            Some(false)
        } else {
            None
        },
        order_key: u.order_key,
        recv_opt: u.recv_opt.map(|r| recv_opt(r) as i32),
        mark_list: if u.clear_marks {
            Some(MarkList { values: Vec::new() })
        } else {
            u.marks.clone().map(|values| MarkList { values })
        },
        add_marks: u.add_marks.clone(),
        remove_marks: u.remove_marks.clone(),
        custom_data: u.custom_data.clone().map(String::into_bytes),
        has_group_at_info: None,
        last_message: None,
    }
}

async fn conversations(client: &Client, json: bool, command: ConversationsCommand) -> Result<Outcome, Failure> {
    match command {
        ConversationsCommand::List { filter: f, page_size, page_token, all } => {
            let mut api = client.groups();
            let filter = filter(f);
            let mut listing = GetConversationListResponse::default();
            let mut page_token = page_token.unwrap_or_default();
            loop {
                let request = GetConversationListRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token,
                    min_revision: None,
                };
                let page = client.call(api.get_conversation_list(client.request(request))).await?;
                listing.conversations.extend(page.conversations);
                listing.next_page_token = page.next_page_token;
                listing.is_finished = page.is_finished;
                listing.revision = page.revision;
                if !all || listing.is_finished || listing.next_page_token.is_empty() {
                    break;
                }
                page_token = listing.next_page_token.clone();
            }
            show(
                json,
                || render::conversation_list(&listing),
                || render::conversation_table(&listing).trim_end().to_string(),
            )?;
            Ok(Outcome::Done)
        }
        ConversationsCommand::Unread { filter: f } => {
            let request = GetUnreadCountRequest { filter: Some(filter(f)), min_revision: None };
            let r = client.call(client.groups().get_unread_count(client.request(request))).await?;
            show(json, || render::unread(&r), || r.unread_count.to_string())?;
            Ok(Outcome::Done)
        }
        ConversationsCommand::Upsert { ids, update: u } => {
            let request =
                UpsertConversationsRequest { conversations: ids.into_iter().map(|id| update(id, &u)).collect() };
            let r = client.call(client.conversations().upsert_conversations(client.request(request))).await?;
            show(
                json,
                || render::batch(&r.success_conversation_ids, &r.failed, r.revision),
                || {
                    format!(
                        "Upserted {} at revision {}.",
                        conversations_count(r.success_conversation_ids.len()),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
        ConversationsCommand::Delete { ids } => {
            let request = DeleteConversationsRequest { conversation_ids: ids };
            let r = client.call(client.conversations().delete_conversations(client.request(request))).await?;
            show(
                json,
                || render::batch(&r.success_conversation_ids, &r.failed, r.revision),
                || {
                    format!(
                        "Deleted {} at revision {}.",
                        conversations_count(r.success_conversation_ids.len()),
                        r.revision
                    )
                },
            )?;
            Ok(item_failures(&r.failed))
        }
    }
}

/// The request values of `--type` kinds.
pub(super) fn event_types(kinds: &[crate::domain::EventType]) -> Vec<i32> {
    kinds.iter().map(|k| crate::service::convert::pb_event_type(*k) as i32).collect()
}

/// Prints every message of the stream as one JSON line until Ctrl-C, the end
/// of the stream, or (with `--no-follow`) the first bookmark.
async fn watch(client: &Client, args: WatchArgs) -> Result<Outcome, Failure> {
    let request = WatchGroupEventsRequest {
        start_revision: args.from,
        send_snapshot: args.snapshot,
        event_types: event_types(&args.kinds),
        group_names: args.group,
        group_ids: args.group_id,
        all_users: args.all_users,
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut api = client.groups();
    // Only opening the stream is under --timeout; the stream itself may stay
    // quiet for as long as nothing changes.
    let mut stream = tokio::select! {
        opened = client.call(api.watch_group_events(request)) => opened?,
        _ = &mut ctrl_c => return Ok(Outcome::Done),
    };
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = &mut ctrl_c => return Ok(Outcome::Done),
        };
        match message {
            Ok(Some(message)) => {
                print_line(&render::watch_response(&message).encode())?;
                if args.no_follow && matches!(message.kind, Some(WatchKind::Bookmark(_))) {
                    return Ok(Outcome::Done);
                }
            }
            Ok(None) => return Ok(Outcome::Done),
            Err(status) => return Err(watch_failure(status)),
        }
    }
}

/// A watch stream's end status; a server shutdown or a replica that lost
/// its storage also says how to resume (elsewhere).
fn watch_failure(status: tonic::Status) -> Failure {
    use tonic_types::StatusExt;
    let resume = status.get_details_error_info().and_then(|info| info.metadata.get("resume_revision").cloned());
    match resume {
        Some(revision) => {
            Failure::Message(format!("{}\nresume with: convgroups watch --from {revision}", describe_status(&status)))
        }
        None => Failure::Status(status),
    }
}

/// Runs one storage task of the etcd backend on a runtime of its own.
fn on_runtime<T>(
    task: impl std::future::Future<Output = Result<T, crate::error::Error>>,
) -> Result<T, crate::error::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::Internal(format!("starting the runtime: {e}")))?
        .block_on(task)
}

pub fn backup(args: &BackupArgs) -> Result<Outcome, Failure> {
    let secret = crate::auth::generated_secret(&args.data_dir);
    let summary = match args.storage.backend {
        Backend::Sled => crate::store::backup(&args.data_dir, secret, &args.out),
        Backend::Etcd => on_runtime(crate::store::backup_etcd(&args.storage, secret, &args.out)),
    }
    .map_err(|e| Failure::Message(e.to_string()))?;
    show(
        args.json,
        || summary_json(summary),
        || {
            format!(
                "Backed up {} trees, {} entries from {} to {}.",
                summary.trees,
                summary.entries,
                source(&args.storage, &args.data_dir),
                args.out.display()
            )
        },
    )?;
    Ok(Outcome::Done)
}

pub fn restore(args: &RestoreArgs) -> Result<Outcome, Failure> {
    let restored = match args.storage.backend {
        Backend::Sled => crate::store::restore(&args.input, &args.data_dir),
        Backend::Etcd => on_runtime(crate::store::restore_etcd(&args.input, &args.storage)),
    }
    .and_then(|restored| {
        // etcd: the replicas read it with --auth-secret-file.
        if let Some(secret) = &restored.secret {
            crate::auth::restore_generated_secret(&args.data_dir, secret)?;
        }
        Ok(restored)
    })
    .map_err(|e| Failure::Message(e.to_string()))?;
    let summary = restored.summary;
    show(
        args.json,
        || summary_json(summary),
        || {
            format!(
                "Restored {} trees, {} entries from {} into {}.",
                summary.trees,
                summary.entries,
                args.input.display(),
                source(&args.storage, &args.data_dir)
            )
        },
    )?;
    Ok(Outcome::Done)
}

/// Where a backup comes from or a restore goes to, for the summary line.
fn source(storage: &crate::config::StorageSettings, data_dir: &std::path::Path) -> String {
    match storage.backend {
        Backend::Sled => data_dir.display().to_string(),
        Backend::Etcd => format!("etcd prefix {} at {}", storage.etcd_prefix, storage.etcd_endpoints.join(",")),
    }
}

fn summary_json(summary: crate::store::BackupSummary) -> Json {
    let count = |n: usize| Json::Int(i64::try_from(n).unwrap_or(i64::MAX));
    Json::Obj(vec![("trees", count(summary.trees)), ("entries", count(summary.entries))])
}
