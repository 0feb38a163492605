//! `convgroups.v1.ConversationService`: the conversation registry.

use tonic::{Request, Response, Status};

use super::{convert, Calls};
use crate::domain::{ItemResults, UserId};
use crate::error::Error;
use crate::pb;
use crate::pb::service::conversation_service_server::ConversationService;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct ConversationServiceImpl {
    store: Store,
    calls: Calls,
}

impl ConversationServiceImpl {
    pub fn new(store: Store, calls: Calls) -> Self {
        Self { store, calls }
    }

    async fn upsert(
        &self,
        user: UserId,
        req: pb::UpsertConversationsRequest,
    ) -> Result<pb::UpsertConversationsResponse, Error> {
        let limits = self.store.limits();
        convert::check_list_size("conversations", req.conversations.len(), limits)?;
        let raw = req
            .conversations
            .into_iter()
            .enumerate()
            .map(|(index, mut update)| {
                let id = std::mem::take(&mut update.conversation_id);
                (id, convert::patch(index, update, limits))
            })
            .collect();
        let (items, result) = ItemResults::classify(raw);
        let outcome = self.store.upsert_conversations(&user, items, result).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(pb::UpsertConversationsResponse { success_conversation_ids, failed, revision })
    }

    async fn delete(
        &self,
        user: UserId,
        req: pb::DeleteConversationsRequest,
    ) -> Result<pb::DeleteConversationsResponse, Error> {
        convert::check_list_size("conversation_ids", req.conversation_ids.len(), self.store.limits())?;
        let (items, result) = ItemResults::classify_ids(&req.conversation_ids);
        let outcome = self.store.delete_conversations(&user, items, result).await?;
        let (success_conversation_ids, failed, revision) = convert::outcome(outcome);
        Ok(pb::DeleteConversationsResponse { success_conversation_ids, failed, revision })
    }
}

#[tonic::async_trait]
impl ConversationService for ConversationServiceImpl {
    async fn upsert_conversations(
        &self,
        request: Request<pb::UpsertConversationsRequest>,
    ) -> Result<Response<pb::UpsertConversationsResponse>, Status> {
        self.calls.unary("UpsertConversations", request, |user, req| self.upsert(user, req)).await
    }

    async fn delete_conversations(
        &self,
        request: Request<pb::DeleteConversationsRequest>,
    ) -> Result<Response<pb::DeleteConversationsResponse>, Status> {
        self.calls.unary("DeleteConversations", request, |user, req| self.delete(user, req)).await
    }
}
