// convgroups-chat: Tencent Cloud Chat's conversation-group API over convgroups.
//
//   import TencentCloudChat from 'convgroups-chat';
//   const chat = TencentCloudChat.create({ url: 'http://127.0.0.1:50051', token });
//   chat.on(TencentCloudChat.EVENT.CONVERSATION_GROUP_LIST_UPDATED, (event) => console.log(event.data));
//   const { data } = await chat.createConversationGroup({ groupName: 'Suppliers', conversationIDList: ['C2Cbob'] });
//
// The default export mirrors the `TencentCloudChat` object of Tencent's web
// SDK (@tencentcloud/chat): `create`, `EVENT`, `TYPES`.
import { Chat, EVENT, type CreateOptions } from "./chat.js";
import { TYPES } from "./convert.js";

/** Creates a chat: one connection to a convgroups server, for one user. */
export function create(options: CreateOptions): Chat {
  return new Chat(options);
}

const TencentCloudChat = Object.freeze({ create, EVENT, TYPES });
export default TencentCloudChat;

export { Chat, EVENT, TYPES };
export type {
  BatchResult,
  ChatEvent,
  ChatResponse,
  ConversationListener,
  CreateOptions,
  EventName,
  Listener,
  LogEntry,
  Precondition,
} from "./chat.js";
export type { Conversation, ConversationListFilter, ConversationTypeName } from "./convert.js";
export { ChatError, type ConversationFailure } from "./errors.js";
