// Our Conversation message as Tencent Cloud Chat's web SDK shows a
// conversation (the `Conversation` object of its docs), plus the fields only
// we have (orderKey, registered, updateTime) under their own names.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  ConversationType,
  RecvOpt,
  type Conversation as PbConversation,
  type ConversationFilter,
} from "./gen/convgroups/v1/types_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConversationFilterSchema } from "./gen/convgroups/v1/types_pb.js";
import { clientError } from "./errors.js";

/** TencentCloudChat.TYPES: the constants the conversation calls use. */
export const TYPES = Object.freeze({
  CONV_C2C: "C2C",
  CONV_GROUP: "GROUP",
  // Conversation marks (markConversation): Tencent's standard mark bits.
  CONV_MARK_TYPE_STAR: 0x1,
  CONV_MARK_TYPE_UNREAD: 0x2,
  CONV_MARK_TYPE_FOLD: 0x4,
  CONV_MARK_TYPE_HIDE: 0x8,
  // Receive options (Conversation.messageRemindType).
  MSG_REMIND_ACPT_AND_NOTE: "AcceptAndNotify",
  MSG_REMIND_ACPT_NOT_NOTE: "AcceptNotNotify",
  MSG_REMIND_DISCARD: "Discard",
  // Connection states (EVENT.NET_STATE_CHANGE).
  NET_STATE_CONNECTED: "connected",
  NET_STATE_CONNECTING: "connecting",
  NET_STATE_DISCONNECTED: "disconnected",
});

export type ConversationTypeName = "C2C" | "GROUP";

/** A conversation, shaped as Tencent's web SDK shapes it. */
export interface Conversation {
  conversationID: string;
  type: ConversationTypeName;
  unreadCount: number;
  isPinned: boolean;
  /** AcceptAndNotify, AcceptNotNotify, Discard (TYPES.MSG_REMIND_*), or our two "except @" forms. */
  messageRemindType: string;
  markList: number[];
  customData: string;
  /** Names of the conversation groups that hold it, in display order. */
  conversationGroupList: string[];
  /** C2C conversations: the peer. */
  userProfile?: { userID: string; nick: string; avatar: string };
  /** Group conversations: the chat group. */
  groupProfile?: { groupID: string; name: string; avatar: string };
  /** The latest message's preview, as the client registered it. */
  lastMessage: { fromAccount: string; messageForShow: string; lastTime: number };
  /** Tencent's groupAtInfoList has one entry per @ mention; we keep only whether there is one. */
  groupAtInfoList: Array<{ atTypeArray?: number[] }>;
  // --- convgroups only ---
  /** Client-chosen sort key (larger first). */
  orderKey: bigint;
  /** False for a conversation that is only in a group and was never registered. */
  registered: boolean;
  /** When its registry data last changed (undefined when never registered). */
  updateTime?: Date;
}

const REMIND: Record<number, string> = {
  [RecvOpt.UNSPECIFIED]: TYPES.MSG_REMIND_ACPT_AND_NOTE,
  [RecvOpt.RECEIVE]: TYPES.MSG_REMIND_ACPT_AND_NOTE,
  [RecvOpt.RECEIVE_NOT_NOTIFY]: TYPES.MSG_REMIND_ACPT_NOT_NOTE,
  [RecvOpt.NOT_RECEIVE]: TYPES.MSG_REMIND_DISCARD,
  [RecvOpt.RECEIVE_NOT_NOTIFY_EXCEPT_AT]: "AcceptNotNotifyExceptAt",
  [RecvOpt.NOT_RECEIVE_EXCEPT_AT]: "DiscardExceptAt",
};

const utf8 = new TextDecoder();

export function conversation(c: PbConversation): Conversation {
  const type: ConversationTypeName = c.type === ConversationType.GROUP ? "GROUP" : "C2C";
  const out: Conversation = {
    conversationID: c.conversationId,
    type,
    unreadCount: c.unreadCount,
    isPinned: c.isPinned,
    messageRemindType: REMIND[c.recvOpt] ?? TYPES.MSG_REMIND_ACPT_AND_NOTE,
    markList: c.markList.map(Number),
    customData: utf8.decode(c.customData),
    conversationGroupList: [...c.conversationGroupList],
    lastMessage: {
      fromAccount: c.lastMessage?.sender ?? "",
      messageForShow: c.lastMessage?.text ?? "",
      lastTime: c.lastMessage?.time ? Number(c.lastMessage.time.seconds) : 0,
    },
    groupAtInfoList: c.hasGroupAtInfo ? [{}] : [],
    orderKey: c.orderKey,
    registered: c.registered,
  };
  if (type === "C2C") out.userProfile = { userID: c.userId, nick: c.showName, avatar: c.faceUrl };
  else out.groupProfile = { groupID: c.groupId, name: c.showName, avatar: c.faceUrl };
  if (c.updateTime) out.updateTime = timestampDate(c.updateTime);
  return out;
}

/** A conversation the server does not list (neither registered nor grouped): defaults, as Tencent shows a new one. */
export function bareConversation(id: string): Conversation {
  const group = id.startsWith("GROUP") || id.startsWith("group_");
  const peer = id.replace(/^(C2C|GROUP|c2c_|group_)/, "");
  const canonical = (group ? "GROUP" : "C2C") + peer;
  const out: Conversation = {
    conversationID: canonical,
    type: group ? "GROUP" : "C2C",
    unreadCount: 0,
    isPinned: false,
    messageRemindType: TYPES.MSG_REMIND_ACPT_AND_NOTE,
    markList: [],
    customData: "",
    conversationGroupList: [],
    lastMessage: { fromAccount: "", messageForShow: "", lastTime: 0 },
    groupAtInfoList: [],
    orderKey: 0n,
    registered: false,
  };
  if (group) out.groupProfile = { groupID: peer, name: "", avatar: "" };
  else out.userProfile = { userID: peer, nick: "", avatar: "" };
  return out;
}

/** getConversationList's object form (Tencent's filter names). */
export interface ConversationListFilter {
  type?: ConversationTypeName;
  /** A mark value: conversations that carry it (0: conversations with no mark). */
  markType?: number;
  /** A group name: its conversations ("" : conversations in no group). */
  groupName?: string;
  hasUnreadCount?: boolean;
  hasGroupAtInfo?: boolean;
}

export type FilterInit = MessageInitShape<typeof ConversationFilterSchema>;

export function filterFrom(options: ConversationListFilter | string[] | undefined): FilterInit {
  if (options === undefined || options === null) return {};
  if (Array.isArray(options)) return { conversationIds: options.map(String) };
  if (typeof options !== "object") {
    throw clientError("INVALID_ARGUMENT", "getConversationList: pass nothing, an array of conversation IDs or a filter object");
  }
  const f: FilterInit = {};
  if (options.type !== undefined) {
    if (options.type !== "C2C" && options.type !== "GROUP") {
      throw clientError("INVALID_ARGUMENT", `type: must be TYPES.CONV_C2C or TYPES.CONV_GROUP, not ${JSON.stringify(options.type)}`);
    }
    f.type = options.type === "GROUP" ? ConversationType.GROUP : ConversationType.C2C;
  }
  if (options.markType !== undefined) f.markType = BigInt(options.markType);
  if (options.groupName !== undefined) f.groupName = options.groupName;
  if (options.hasUnreadCount !== undefined) f.hasUnreadCount = options.hasUnreadCount;
  if (options.hasGroupAtInfo !== undefined) f.hasGroupAtInfo = options.hasGroupAtInfo;
  return f;
}

export type { ConversationFilter };
