//! `convgroups.v1.ConversationGroupService`.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{convert, watch};
use crate::auth;
use crate::domain::BatchResult;
use crate::hub::Hub;
use crate::pb;
use crate::pb::conversation_group_service_server::ConversationGroupService;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct ConversationGroupServiceImpl {
    store: Store,
    hub: Hub,
    bookmark_interval: Duration,
}

impl ConversationGroupServiceImpl {
    pub fn new(store: Store, hub: Hub, bookmark_interval: Duration) -> Self {
        Self { store, hub, bookmark_interval }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchGroupEventsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ConversationGroupService for ConversationGroupServiceImpl {
    async fn create_conversation_group(
        &self,
        request: Request<pb::CreateConversationGroupRequest>,
    ) -> Result<Response<pb::CreateConversationGroupResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        let limits = self.store.limits();
        let name = convert::new_group_name("group_name", req.group_name, limits)?;
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), limits)?;
        let (items, result) = BatchResult::classify_ids(&req.conversation_ids);
        let created = self.store.create_group(&user, name, items, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(created.outcome);
        Ok(Response::new(pb::CreateConversationGroupResponse {
            group: Some(convert::group(created.group)),
            success_conversation_ids,
            failed,
            revision,
        }))
    }

    async fn delete_conversation_group(
        &self,
        request: Request<pb::DeleteConversationGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationGroupResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        let revision = self.store.delete_group(&user, req.group_name, req.expected_revision).await?;
        Ok(Response::new(pb::DeleteConversationGroupResponse { revision }))
    }

    async fn rename_conversation_group(
        &self,
        request: Request<pb::RenameConversationGroupRequest>,
    ) -> Result<Response<pb::RenameConversationGroupResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        let new_name = convert::new_group_name("new_name", req.new_name, self.store.limits())?;
        let (group, revision) = self.store.rename_group(&user, req.old_name, new_name, req.expected_revision).await?;
        Ok(Response::new(pb::RenameConversationGroupResponse { group: Some(convert::group(group)), revision }))
    }

    async fn get_conversation_group_list(
        &self,
        request: Request<pb::GetConversationGroupListRequest>,
    ) -> Result<Response<pb::GetConversationGroupListResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let list = self.store.group_list(&user).await?;
        let group_names = list.groups.iter().map(|g| g.name.clone()).collect();
        Ok(Response::new(pb::GetConversationGroupListResponse {
            group_names,
            groups: list.groups.into_iter().map(convert::group).collect(),
            revision: list.revision,
        }))
    }

    async fn reorder_conversation_groups(
        &self,
        request: Request<pb::ReorderConversationGroupsRequest>,
    ) -> Result<Response<pb::ReorderConversationGroupsResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        let (group_names, revision) = self.store.reorder_groups(&user, req.group_names, req.expected_revision).await?;
        Ok(Response::new(pb::ReorderConversationGroupsResponse { group_names, revision }))
    }

    async fn add_conversations_to_group(
        &self,
        request: Request<pb::AddConversationsToGroupRequest>,
    ) -> Result<Response<pb::AddConversationsToGroupResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = BatchResult::classify_ids(&req.conversation_ids);
        let outcome = self.store.add_to_group(&user, req.group_name, items, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(Response::new(pb::AddConversationsToGroupResponse { success_conversation_ids, failed, revision }))
    }

    async fn delete_conversations_from_group(
        &self,
        request: Request<pb::DeleteConversationsFromGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationsFromGroupResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = BatchResult::classify_ids(&req.conversation_ids);
        let outcome = self.store.remove_from_group(&user, req.group_name, items, result, req.expected_revision).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(Response::new(pb::DeleteConversationsFromGroupResponse { success_conversation_ids, failed, revision }))
    }

    async fn get_conversation_list(
        &self,
        request: Request<pb::GetConversationListRequest>,
    ) -> Result<Response<pb::GetConversationListResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let req = request.into_inner();
        let limits = self.store.limits();
        let filter = convert::filter(req.filter, limits)?;
        let after = convert::decode_page_token(&req.page_token, &filter)?;
        let page_size = match req.page_size as usize {
            0 => limits.default_page_size,
            n => n.min(limits.max_page_size),
        };
        let page = self.store.list_conversations(&user, filter.clone(), page_size, after).await?;
        let next_page_token =
            page.next_after.as_ref().map(|p| convert::encode_page_token(&filter, p)).unwrap_or_default();
        Ok(Response::new(pb::GetConversationListResponse {
            conversations: page.conversations.into_iter().map(convert::conversation).collect(),
            is_finished: next_page_token.is_empty(),
            next_page_token,
            revision: page.revision,
        }))
    }

    async fn get_unread_count(
        &self,
        request: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        let user = auth::caller(&request)?.acting_for;
        let filter = convert::filter(request.into_inner().filter, self.store.limits())?;
        let (unread_count, revision) = self.store.unread_count(&user, filter).await?;
        Ok(Response::new(pb::GetUnreadCountResponse { unread_count, revision }))
    }

    type WatchGroupEventsStream = WatchStream;

    async fn watch_group_events(
        &self,
        request: Request<pb::WatchGroupEventsRequest>,
    ) -> Result<Response<Self::WatchGroupEventsStream>, Status> {
        let caller = auth::caller(&request)?;
        let spec = watch::WatchSpec::parse(request.into_inner(), &caller)?;
        let subscription = watch::open(&self.store, &self.hub, &spec).await?;
        let (tx, rx) = mpsc::channel(watch::STREAM_BUFFER);
        let watcher =
            watch::Watcher::new(self.store.clone(), self.hub.clone(), spec, subscription, self.bookmark_interval, tx);
        tokio::spawn(watcher.run());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
