//! The "empty tonic server" anchor: the same generated service and
//! messages as convgroups, with no storage, no auth and no logic. Its unary
//! calls answer at once; a mutation publishes its ids to a broadcast that
//! every watch stream forwards. Whatever convgroups spends beyond this is
//! the cost of its own work.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use convgroups::pb;
use convgroups::pb::conversation_group_service_server::{ConversationGroupService, ConversationGroupServiceServer};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Broadcast ring of the anchor's fan-out; large so the anchor rarely lags
/// (it cannot recover a lag: that is what convgroups' log is for).
const RING: usize = 65_536;

struct Anchor {
    tx: broadcast::Sender<Arc<pb::EventBatch>>,
    revision: AtomicU64,
}

type Watch = Pin<Box<dyn Stream<Item = Result<pb::WatchGroupEventsResponse, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not part of the anchor"))
}

#[tonic::async_trait]
impl ConversationGroupService for Anchor {
    async fn create_conversation_group(
        &self,
        _: Request<pb::CreateConversationGroupRequest>,
    ) -> Result<Response<pb::CreateConversationGroupResponse>, Status> {
        unimplemented()
    }
    async fn delete_conversation_group(
        &self,
        _: Request<pb::DeleteConversationGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationGroupResponse>, Status> {
        unimplemented()
    }
    async fn rename_conversation_group(
        &self,
        _: Request<pb::RenameConversationGroupRequest>,
    ) -> Result<Response<pb::RenameConversationGroupResponse>, Status> {
        unimplemented()
    }
    async fn get_conversation_group_list(
        &self,
        _: Request<pb::GetConversationGroupListRequest>,
    ) -> Result<Response<pb::GetConversationGroupListResponse>, Status> {
        Ok(Response::new(pb::GetConversationGroupListResponse::default()))
    }
    async fn reorder_conversation_groups(
        &self,
        _: Request<pb::ReorderConversationGroupsRequest>,
    ) -> Result<Response<pb::ReorderConversationGroupsResponse>, Status> {
        unimplemented()
    }
    async fn add_conversations_to_group(
        &self,
        request: Request<pb::AddConversationsToGroupRequest>,
    ) -> Result<Response<pb::AddConversationsToGroupResponse>, Status> {
        let req = request.into_inner();
        let revision = self.revision.fetch_add(1, Ordering::AcqRel) + 1;
        let event = pb::GroupEvent {
            revision,
            kind: Some(pb::group_event::Kind::ConversationsAddedToGroup(pb::ConversationsAddedToGroup {
                group_name: req.group_name,
                conversation_ids: req.conversation_ids.clone(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let _ = self.tx.send(Arc::new(pb::EventBatch { revision, events: vec![event] }));
        Ok(Response::new(pb::AddConversationsToGroupResponse {
            success_conversation_ids: req.conversation_ids,
            failed: vec![],
            revision,
        }))
    }
    async fn delete_conversations_from_group(
        &self,
        _: Request<pb::DeleteConversationsFromGroupRequest>,
    ) -> Result<Response<pb::DeleteConversationsFromGroupResponse>, Status> {
        unimplemented()
    }
    async fn get_conversation_list(
        &self,
        _: Request<pb::GetConversationListRequest>,
    ) -> Result<Response<pb::GetConversationListResponse>, Status> {
        unimplemented()
    }
    async fn get_unread_count(
        &self,
        _: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        unimplemented()
    }

    async fn update_conversation_group(
        &self,
        _: Request<pb::UpdateConversationGroupRequest>,
    ) -> Result<Response<pb::UpdateConversationGroupResponse>, Status> {
        unimplemented()
    }
    async fn mark_conversation_group_read(
        &self,
        _: Request<pb::MarkConversationGroupReadRequest>,
    ) -> Result<Response<pb::MarkConversationGroupReadResponse>, Status> {
        unimplemented()
    }
    async fn set_conversation_group_mute(
        &self,
        _: Request<pb::SetConversationGroupMuteRequest>,
    ) -> Result<Response<pb::SetConversationGroupMuteResponse>, Status> {
        unimplemented()
    }
    async fn move_conversations(
        &self,
        _: Request<pb::MoveConversationsRequest>,
    ) -> Result<Response<pb::MoveConversationsResponse>, Status> {
        unimplemented()
    }
    async fn set_conversation_group_rule(
        &self,
        _: Request<pb::SetConversationGroupRuleRequest>,
    ) -> Result<Response<pb::SetConversationGroupRuleResponse>, Status> {
        unimplemented()
    }

    async fn set_conversation_group_sort_mode(
        &self,
        _: Request<pb::SetConversationGroupSortModeRequest>,
    ) -> Result<Response<pb::SetConversationGroupSortModeResponse>, Status> {
        unimplemented()
    }
    async fn move_conversations_in_group(
        &self,
        _: Request<pb::MoveConversationsInGroupRequest>,
    ) -> Result<Response<pb::MoveConversationsInGroupResponse>, Status> {
        unimplemented()
    }
    async fn pin_conversations_in_group(
        &self,
        _: Request<pb::PinConversationsInGroupRequest>,
    ) -> Result<Response<pb::PinConversationsInGroupResponse>, Status> {
        unimplemented()
    }
    async fn unpin_conversations_in_group(
        &self,
        _: Request<pb::UnpinConversationsInGroupRequest>,
    ) -> Result<Response<pb::UnpinConversationsInGroupResponse>, Status> {
        unimplemented()
    }

    type WatchGroupEventsStream = Watch;

    async fn watch_group_events(&self, _: Request<pb::WatchGroupEventsRequest>) -> Result<Response<Watch>, Status> {
        let mut rx = self.tx.subscribe();
        let (tx, out) = mpsc::channel(16);
        let revision = self.revision.load(Ordering::Acquire);
        tokio::spawn(async move {
            let bookmark = pb::watch_group_events_response::Kind::Bookmark(pb::Bookmark { revision });
            if tx.send(Ok(pb::WatchGroupEventsResponse { kind: Some(bookmark) })).await.is_err() {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(batch) => {
                        let kind = pb::watch_group_events_response::Kind::Events((*batch).clone());
                        if tx.send(Ok(pb::WatchGroupEventsResponse { kind: Some(kind) })).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

/// Serves the anchor until the process is killed.
pub async fn serve(addr: SocketAddr) {
    let (tx, _) = broadcast::channel(RING);
    let anchor = Anchor { tx, revision: AtomicU64::new(0) };
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(convgroups::config::DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS))
        .add_service(ConversationGroupServiceServer::new(anchor))
        .serve(addr)
        .await
        .expect("anchor server");
}
