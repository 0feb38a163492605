//! `convgroups.v1.ConversationGroupService`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::read_cache::ReadCaches;
use super::{convert, finish, watch, Calls};
use crate::auth::Caller;
use crate::domain::rules::GroupFields;
use crate::domain::{GroupRef, ItemResults, SortMode, UserId};
use crate::error::Error;
use crate::hub::Hub;
use crate::pb;
use crate::pb::service::conversation_group_service_server::ConversationGroupService;
use crate::store::Store;
use crate::wire::{ConversationPageReply, GroupListReply, WatchFrame};

#[derive(Clone, Debug)]
pub struct ConversationGroupServiceImpl {
    store: Store,
    hub: Hub,
    calls: Calls,
    bookmark_interval: Duration,
    caches: Arc<ReadCaches>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchFrame, Status>> + Send + 'static>>;

impl ConversationGroupServiceImpl {
    pub fn new(store: Store, hub: Hub, calls: Calls, bookmark_interval: Duration, caches: ReadCaches) -> Self {
        Self { store, hub, calls, bookmark_interval, caches: Arc::new(caches) }
    }

    async fn create(
        &self,
        user: UserId,
        req: pb::CreateConversationGroupRequest,
    ) -> Result<pb::CreateConversationGroupResponse, Error> {
        let limits = self.store.limits();
        let name = convert::new_group_name("group_name", req.group_name, limits)?;
        let rule = req.rule.map(|rule| convert::rule("rule", rule, limits)).transpose()?;
        // A smart group may start with its rule's members only.
        if rule.is_none() || !req.conversation_ids.is_empty() {
            convert::check_list_size("conversation_ids", req.conversation_ids.len(), limits)?;
        }
        // Unset and UNSPECIFIED both mean the default; an unknown value is
        // an error.
        let sort_mode = match req.sort_mode {
            None => SortMode::default(),
            Some(value) if value == pb::GroupSortMode::Unspecified as i32 => SortMode::default(),
            Some(value) => convert::required_sort_mode("sort_mode", value)?,
        };
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let created =
            self.store.create_group(&user, name, items, sort_mode, rule, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(created.outcome);
        Ok(pb::CreateConversationGroupResponse {
            group: Some(convert::group(created.group)),
            success_conversation_ids,
            failed,
            revision,
        })
    }

    async fn set_rule(
        &self,
        user: UserId,
        req: pb::SetConversationGroupRuleRequest,
    ) -> Result<pb::SetConversationGroupRuleResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let rule = req.rule.map(|rule| convert::rule("rule", rule, self.store.limits())).transpose()?;
        let (group, revision) = self.store.set_group_rule(&user, group, rule, req.expected_revision).await?;
        Ok(pb::SetConversationGroupRuleResponse { group: Some(convert::group(group)), revision })
    }

    async fn delete(
        &self,
        user: UserId,
        req: pb::DeleteConversationGroupRequest,
    ) -> Result<pb::DeleteConversationGroupResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let revision = self.store.delete_group(&user, group, req.expected_revision).await?;
        Ok(pb::DeleteConversationGroupResponse { revision })
    }

    async fn rename(
        &self,
        user: UserId,
        req: pb::RenameConversationGroupRequest,
    ) -> Result<pb::RenameConversationGroupResponse, Error> {
        let group = convert::group_ref(GroupFields { name: "old_name", id: "group_id" }, req.old_name, req.group_id)?;
        let new_name = convert::new_group_name("new_name", req.new_name, self.store.limits())?;
        let (group, revision) = self.store.rename_group(&user, group, new_name, req.expected_revision).await?;
        Ok(pb::RenameConversationGroupResponse { group: Some(convert::group(group)), revision })
    }

    async fn update(
        &self,
        user: UserId,
        req: pb::UpdateConversationGroupRequest,
    ) -> Result<pb::UpdateConversationGroupResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let update = convert::look_update(req.update_mask, req.look, self.store.limits())?;
        let (group, revision) = self.store.update_group(&user, group, update, req.expected_revision).await?;
        Ok(pb::UpdateConversationGroupResponse { group: Some(convert::group(group)), revision })
    }

    async fn list_groups(
        &self,
        user: UserId,
        req: pb::GetConversationGroupListRequest,
    ) -> Result<GroupListReply, Error> {
        // The hottest call: answered from the encoded answers of
        // `read_cache` whenever the user's record is the one it was made
        // from. On sled that is seen from the stored bytes, with nothing
        // decoded; a read with a `min_revision` beyond the server's revision
        // still takes the full path (which refuses it).
        let stamp = self.store.user_record_stamp(&user).transpose()?;
        if let Some(stamp) = &stamp {
            if req.min_revision.is_none_or(|min| min <= self.store.current_revision()) {
                if let Some(answer) = self.caches.group_lists.by_stamp(&user, stamp) {
                    return Ok(GroupListReply::encoded(answer));
                }
            }
        }
        let list = self.store.group_list(&user, req.min_revision).await?;
        if let Some(answer) = self.caches.group_lists.by_revision(&user, list.revision) {
            return Ok(GroupListReply::encoded(answer));
        }
        let revision = list.revision;
        let group_names = list.groups.iter().map(|g| g.name.clone()).collect();
        let answer = GroupListReply::encode_once(&pb::GetConversationGroupListResponse {
            group_names,
            groups: list.groups.into_iter().map(convert::group).collect(),
            revision,
        });
        // The stamp read before the list only belongs to it if the record
        // did not change in between: records only move forward, so the same
        // bytes after the read mean the list was made from them.
        let stamp =
            stamp.filter(|before| matches!(self.store.user_record_stamp(&user), Some(Ok(after)) if after == *before));
        self.caches.group_lists.keep(&user, revision, stamp, answer.clone());
        Ok(GroupListReply::encoded(answer))
    }

    async fn reorder(
        &self,
        user: UserId,
        req: pb::ReorderConversationGroupsRequest,
    ) -> Result<pb::ReorderConversationGroupsResponse, Error> {
        let (field, groups) = match (req.group_names.is_empty(), req.group_ids.is_empty()) {
            (false, false) => {
                return Err(Error::GroupNameAndId { name_field: "group_names", id_field: "group_ids" });
            }
            (_, true) => ("group_names", req.group_names.into_iter().map(GroupRef::Name).collect()),
            (true, false) => (
                "group_ids",
                req.group_ids
                    .iter()
                    .map(|id| convert::group_id("group_ids", id).map(GroupRef::Id))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let (groups, revision) = self.store.reorder_groups(&user, field, groups, req.expected_revision).await?;
        let (group_names, group_ids) = groups.into_iter().map(|g| (g.name, g.id.to_string())).unzip();
        Ok(pb::ReorderConversationGroupsResponse { group_names, group_ids, revision })
    }

    async fn add(
        &self,
        user: UserId,
        req: pb::AddConversationsToGroupRequest,
    ) -> Result<pb::AddConversationsToGroupResponse, Error> {
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let outcome = self.store.add_to_group(&user, group, items, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(pb::AddConversationsToGroupResponse { success_conversation_ids, failed, revision })
    }

    async fn remove(
        &self,
        user: UserId,
        req: pb::DeleteConversationsFromGroupRequest,
    ) -> Result<pb::DeleteConversationsFromGroupResponse, Error> {
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let outcome = self.store.remove_from_group(&user, group, items, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(pb::DeleteConversationsFromGroupResponse { success_conversation_ids, failed, revision })
    }

    async fn list_conversations(
        &self,
        user: UserId,
        req: pb::GetConversationListRequest,
    ) -> Result<ConversationPageReply, Error> {
        let limits = self.store.limits();
        let filter = convert::filter(req.filter, limits)?;
        let after = convert::decode_page_token(&req.page_token, &filter)?;
        let page_size = match req.page_size as usize {
            0 => limits.default_page_size,
            n => n.min(limits.max_page_size),
        };
        // A first page is answered from `read_cache` while the user's record
        // is the one it was made from (sled: seen from the stored bytes), as
        // the group list is; a `min_revision` beyond the server's revision
        // takes the full path, which refuses it.
        let first_page = after.is_none();
        let stamp = if first_page { self.store.user_record_stamp(&user).transpose()? } else { None };
        if let Some(stamp) = &stamp {
            if req.min_revision.is_none_or(|min| min <= self.store.current_revision()) {
                if let Some(answer) = self.caches.first_pages.get(&user, stamp, &filter, page_size) {
                    return Ok(ConversationPageReply::encoded(answer));
                }
            }
        }
        let page = self.store.list_conversations(&user, filter.clone(), page_size, after, req.min_revision).await?;
        let next_page_token =
            page.next_after.as_ref().map(|p| convert::encode_page_token(&filter, p)).unwrap_or_default();
        let answer = ConversationPageReply::encode_once(&pb::GetConversationListResponse {
            conversations: page.conversations.into_iter().map(convert::conversation).collect(),
            is_finished: next_page_token.is_empty(),
            next_page_token,
            revision: page.revision,
        });
        // As for the group list: the page belongs to the stamp read before
        // it only if the record is the same after.
        if let Some(before) = stamp {
            if matches!(self.store.user_record_stamp(&user), Some(Ok(after)) if after == before) {
                self.caches.first_pages.keep(&user, before, filter, page_size, answer.clone());
            }
        }
        Ok(ConversationPageReply::encoded(answer))
    }

    async fn unread(&self, user: UserId, req: pb::GetUnreadCountRequest) -> Result<pb::GetUnreadCountResponse, Error> {
        let filter = convert::filter(req.filter, self.store.limits())?;
        let (unread_count, revision) = self.store.unread_count(&user, filter, req.min_revision).await?;
        Ok(pb::GetUnreadCountResponse { unread_count, revision })
    }

    async fn mark_read(
        &self,
        user: UserId,
        req: pb::MarkConversationGroupReadRequest,
    ) -> Result<pb::MarkConversationGroupReadResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let (changed, revision) = self.store.mark_group_read(&user, group, req.expected_revision).await?;
        Ok(pb::MarkConversationGroupReadResponse { changed_conversation_ids: convert::ids(&changed), revision })
    }

    async fn mute(
        &self,
        user: UserId,
        req: pb::SetConversationGroupMuteRequest,
    ) -> Result<pb::SetConversationGroupMuteResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let recv_opt = convert::recv_opt(req.recv_opt).ok_or_else(|| Error::InvalidArgument {
            field: "recv_opt",
            message: format!("{} is not a RecvOpt other than RECV_OPT_UNSPECIFIED", req.recv_opt),
        })?;
        let (changed, group, revision) =
            self.store.set_group_mute(&user, group, recv_opt, req.apply_to_new_members, req.expected_revision).await?;
        Ok(pb::SetConversationGroupMuteResponse {
            changed_conversation_ids: convert::ids(&changed),
            group: Some(convert::group(group)),
            revision,
        })
    }

    async fn move_conversations(
        &self,
        user: UserId,
        req: pb::MoveConversationsRequest,
    ) -> Result<pb::MoveConversationsResponse, Error> {
        let limits = self.store.limits();
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), limits)?;
        let from = match (req.from_group_name.is_empty(), req.from_group_id.is_empty()) {
            (true, true) => None,
            _ => Some(convert::group_ref(
                GroupFields { name: "from_group_name", id: "from_group_id" },
                req.from_group_name,
                req.from_group_id,
            )?),
        };
        if req.to.is_empty() || req.to.len() > limits.max_groups {
            return Err(Error::InvalidArgument {
                field: "to",
                message: format!(
                    "names {} groups; name 1 to {} (max_groups: no user has more)",
                    req.to.len(),
                    limits.max_groups
                ),
            });
        }
        let to = req
            .to
            .into_iter()
            .map(|t| {
                convert::group_ref(GroupFields { name: "to.group_name", id: "to.group_id" }, t.group_name, t.group_id)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let moved = self.store.move_conversations(&user, from, to, items, result, req.expected_revision).await?;
        let (moved_conversation_ids, failed, revision) = convert::outcome(moved.outcome);
        let targets = moved
            .targets
            .into_iter()
            .map(|(group, outcome)| {
                let (added_conversation_ids, failed, _) = convert::outcome(outcome);
                pb::MoveTargetResult {
                    group_name: group.name,
                    group_id: group.id.to_string(),
                    added_conversation_ids,
                    failed,
                }
            })
            .collect();
        Ok(pb::MoveConversationsResponse { targets, moved_conversation_ids, failed, revision })
    }

    async fn set_sort_mode(
        &self,
        user: UserId,
        req: pb::SetConversationGroupSortModeRequest,
    ) -> Result<pb::SetConversationGroupSortModeResponse, Error> {
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let mode = convert::required_sort_mode("sort_mode", req.sort_mode)?;
        let (group, revision) = self.store.set_sort_mode(&user, group, mode, req.expected_revision).await?;
        Ok(pb::SetConversationGroupSortModeResponse { group: Some(convert::group(group)), revision })
    }

    async fn move_in_group(
        &self,
        user: UserId,
        req: pb::MoveConversationsInGroupRequest,
    ) -> Result<pb::MoveConversationsInGroupResponse, Error> {
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let group = convert::group_ref(GroupFields::GROUP, req.group_name, req.group_id)?;
        let placement = convert::placement(req.placement)?;
        let outcome = self.store.move_in_group(&user, group, items, placement, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(pb::MoveConversationsInGroupResponse { success_conversation_ids, failed, revision })
    }

    /// PinConversationsInGroup (`pin`) and UnpinConversationsInGroup: the
    /// same request fields.
    async fn pin_in_group(
        &self,
        user: UserId,
        pin: bool,
        (group_name, group_id, conversation_ids, expected_revision): (String, String, Vec<String>, Option<u64>),
    ) -> Result<(Vec<String>, Vec<pb::ConversationResult>, u64, Vec<String>), Error> {
        convert::check_list_size("conversation_ids", conversation_ids.len(), self.store.limits())?;
        let (items, result) = ItemResults::classify_ids(&conversation_ids);
        let group = convert::group_ref(GroupFields::GROUP, group_name, group_id)?;
        let (outcome, pinned) = self.store.pin_in_group(&user, group, items, pin, result, expected_revision).await?;
        let (success, failed, revision) = convert::outcome(outcome);
        Ok((success, failed, revision, convert::ids(&pinned)))
    }

    /// Validates the request, subscribes and checks the start revision; the
    /// stream itself runs in its own task.
    async fn watch(&self, caller: Caller, req: pb::WatchGroupEventsRequest) -> Result<WatchStream, Error> {
        let spec = watch::WatchSpec::parse(req, &caller, self.store.limits())?;
        let opened = watch::open(&self.store, &self.hub, &spec).await?;
        let (tx, rx) = mpsc::channel(watch::STREAM_BUFFER);
        let watcher =
            watch::Watcher::new(self.store.clone(), self.hub.clone(), spec, opened, self.bookmark_interval, tx);
        tokio::spawn(watcher.run());
        Ok(Box::pin(ReceiverStream::new(rx).map(|item| item.map(WatchFrame::encoded).map_err(|status| *status))))
    }
}

#[tonic::async_trait]
impl ConversationGroupService for ConversationGroupServiceImpl {
    async fn create_conversation_group(
        &self,
        request: Request<pb::CreateConversationGroupRequest>,
    ) -> Result<Response<pb::CreateConversationGroupResponse>, Status> {
        self.calls.unary("CreateConversationGroup", request, |user, req| self.create(user, req)).await
    }

    async fn delete_conversation_group(
        &self,
        request: Request<pb::DeleteConversationGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationGroupResponse>, Status> {
        self.calls.unary("DeleteConversationGroup", request, |user, req| self.delete(user, req)).await
    }

    async fn rename_conversation_group(
        &self,
        request: Request<pb::RenameConversationGroupRequest>,
    ) -> Result<Response<pb::RenameConversationGroupResponse>, Status> {
        self.calls.unary("RenameConversationGroup", request, |user, req| self.rename(user, req)).await
    }

    async fn get_conversation_group_list(
        &self,
        request: Request<pb::GetConversationGroupListRequest>,
    ) -> Result<Response<GroupListReply>, Status> {
        self.calls.unary("GetConversationGroupList", request, |user, req| self.list_groups(user, req)).await
    }

    async fn reorder_conversation_groups(
        &self,
        request: Request<pb::ReorderConversationGroupsRequest>,
    ) -> Result<Response<pb::ReorderConversationGroupsResponse>, Status> {
        self.calls.unary("ReorderConversationGroups", request, |user, req| self.reorder(user, req)).await
    }

    async fn add_conversations_to_group(
        &self,
        request: Request<pb::AddConversationsToGroupRequest>,
    ) -> Result<Response<pb::AddConversationsToGroupResponse>, Status> {
        self.calls.unary("AddConversationsToGroup", request, |user, req| self.add(user, req)).await
    }

    async fn delete_conversations_from_group(
        &self,
        request: Request<pb::DeleteConversationsFromGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationsFromGroupResponse>, Status> {
        self.calls.unary("DeleteConversationsFromGroup", request, |user, req| self.remove(user, req)).await
    }

    async fn get_conversation_list(
        &self,
        request: Request<pb::GetConversationListRequest>,
    ) -> Result<Response<ConversationPageReply>, Status> {
        self.calls.unary("GetConversationList", request, |user, req| self.list_conversations(user, req)).await
    }

    async fn get_unread_count(
        &self,
        request: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        self.calls.unary("GetUnreadCount", request, |user, req| self.unread(user, req)).await
    }

    async fn set_conversation_group_rule(
        &self,
        request: Request<pb::SetConversationGroupRuleRequest>,
    ) -> Result<Response<pb::SetConversationGroupRuleResponse>, Status> {
        self.calls.unary("SetConversationGroupRule", request, |user, req| self.set_rule(user, req)).await
    }

    async fn mark_conversation_group_read(
        &self,
        request: Request<pb::MarkConversationGroupReadRequest>,
    ) -> Result<Response<pb::MarkConversationGroupReadResponse>, Status> {
        self.calls.unary("MarkConversationGroupRead", request, |user, req| self.mark_read(user, req)).await
    }

    async fn set_conversation_group_mute(
        &self,
        request: Request<pb::SetConversationGroupMuteRequest>,
    ) -> Result<Response<pb::SetConversationGroupMuteResponse>, Status> {
        self.calls.unary("SetConversationGroupMute", request, |user, req| self.mute(user, req)).await
    }

    async fn move_conversations(
        &self,
        request: Request<pb::MoveConversationsRequest>,
    ) -> Result<Response<pb::MoveConversationsResponse>, Status> {
        self.calls.unary("MoveConversations", request, |user, req| self.move_conversations(user, req)).await
    }

    async fn update_conversation_group(
        &self,
        request: Request<pb::UpdateConversationGroupRequest>,
    ) -> Result<Response<pb::UpdateConversationGroupResponse>, Status> {
        self.calls.unary("UpdateConversationGroup", request, |user, req| self.update(user, req)).await
    }

    async fn set_conversation_group_sort_mode(
        &self,
        request: Request<pb::SetConversationGroupSortModeRequest>,
    ) -> Result<Response<pb::SetConversationGroupSortModeResponse>, Status> {
        self.calls.unary("SetConversationGroupSortMode", request, |user, req| self.set_sort_mode(user, req)).await
    }

    async fn move_conversations_in_group(
        &self,
        request: Request<pb::MoveConversationsInGroupRequest>,
    ) -> Result<Response<pb::MoveConversationsInGroupResponse>, Status> {
        self.calls.unary("MoveConversationsInGroup", request, |user, req| self.move_in_group(user, req)).await
    }

    async fn pin_conversations_in_group(
        &self,
        request: Request<pb::PinConversationsInGroupRequest>,
    ) -> Result<Response<pb::PinConversationsInGroupResponse>, Status> {
        self.calls
            .unary("PinConversationsInGroup", request, |user, req: pb::PinConversationsInGroupRequest| async move {
                let fields = (req.group_name, req.group_id, req.conversation_ids, req.expected_revision);
                let (success_conversation_ids, failed, revision, pinned_conversation_ids) =
                    self.pin_in_group(user, true, fields).await?;
                Ok(pb::PinConversationsInGroupResponse {
                    success_conversation_ids,
                    failed,
                    revision,
                    pinned_conversation_ids,
                })
            })
            .await
    }

    async fn unpin_conversations_in_group(
        &self,
        request: Request<pb::UnpinConversationsInGroupRequest>,
    ) -> Result<Response<pb::UnpinConversationsInGroupResponse>, Status> {
        self.calls
            .unary("UnpinConversationsInGroup", request, |user, req: pb::UnpinConversationsInGroupRequest| async move {
                let fields = (req.group_name, req.group_id, req.conversation_ids, req.expected_revision);
                let (success_conversation_ids, failed, revision, pinned_conversation_ids) =
                    self.pin_in_group(user, false, fields).await?;
                Ok(pb::UnpinConversationsInGroupResponse {
                    success_conversation_ids,
                    failed,
                    revision,
                    pinned_conversation_ids,
                })
            })
            .await
    }

    type WatchGroupEventsStream = WatchStream;

    /// Streams are not under the unary deadline or the unary concurrency
    /// limit; they have their own watcher limits. The log line is written
    /// when the stream opens (or is refused).
    async fn watch_group_events(
        &self,
        request: Request<pb::WatchGroupEventsRequest>,
    ) -> Result<Response<Self::WatchGroupEventsStream>, Status> {
        const METHOD: &str = "WatchGroupEvents";
        let started = Instant::now();
        let caller = match super::caller(&request) {
            Ok(caller) => caller,
            Err(e) => return Err(finish(METHOD, None, started, Err(e))),
        };
        let user = caller.acting_for.clone();
        match self.watch(caller, request.into_inner()).await {
            Ok(stream) => {
                finish(METHOD, Some(&user), started, Ok(()));
                Ok(Response::new(stream))
            }
            Err(e) => Err(finish(METHOD, Some(&user), started, Err(e))),
        }
    }
}
