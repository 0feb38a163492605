// The `chat` object: Tencent Cloud Chat's conversation-group calls and
// events, each backed by one convgroups RPC, and one resumable watch stream
// per chat that turns WatchGroupEvents into Tencent's events.
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConversationGroupService } from "./gen/convgroups/v1/conversation_group_service_pb.js";
import { ConversationService } from "./gen/convgroups/v1/conversation_service_pb.js";
import type { ConversationUpdateSchema } from "./gen/convgroups/v1/types_pb.js";
import { RemovalReason, type EventBatch, type GroupEvent } from "./gen/convgroups/v1/events_pb.js";
import {
  ChatError,
  clientError,
  failureItem,
  isCanceled,
  toChatError,
  type ConversationFailure,
} from "./errors.js";
import {
  bareConversation,
  conversation,
  filterFrom,
  TYPES,
  type Conversation,
  type ConversationListFilter,
  type FilterInit,
} from "./convert.js";

/** TencentCloudChat.EVENT: event names (the values are Tencent's). */
export const EVENT = Object.freeze({
  /** The stream is live (first time only). */
  SDK_READY: "sdkStateReady",
  /** data: the full list of group names, in display order. */
  CONVERSATION_GROUP_LIST_UPDATED: "onConversationGroupListUpdated",
  /** data: { groupName, conversationList } for a group whose members changed. */
  CONVERSATION_IN_GROUP_UPDATED: "onConversationInGroupUpdated",
  /** data: the full conversation list, after any change to it. */
  CONVERSATION_LIST_UPDATED: "onConversationListUpdated",
  /** data: the unread total (as getTotalUnreadMessageCount), when a change moved it. */
  TOTAL_UNREAD_MESSAGE_COUNT_UPDATED: "onTotalUnreadMessageCountUpdated",
  /** data: { state: TYPES.NET_STATE_* } as the watch stream connects and drops. */
  NET_STATE_CHANGE: "netStateChange",
  /** data: a ChatError the watch stream cannot get past by retrying (it keeps trying). */
  ERROR: "error",
  /** convgroups only. data: { revision, events } — every EventBatch of the stream, exactly once, in order. */
  GROUP_EVENTS: "convgroupsGroupEvents",
});

export type EventName = (typeof EVENT)[keyof typeof EVENT];

/** What a listener gets: Tencent's `{ name, data }`. */
export interface ChatEvent<T = unknown> {
  name: string;
  data: T;
}
export type Listener<T = any> = (event: ChatEvent<T>) => void;

/** The native SDKs' V2TIMConversationListener methods for groups (all optional). */
export interface ConversationListener {
  onConversationGroupCreated?(groupName: string, conversationList: Conversation[]): void;
  onConversationGroupDeleted?(groupName: string): void;
  onConversationGroupNameChanged?(oldName: string, newName: string): void;
  onConversationsAddedToGroup?(groupName: string, conversationList: Conversation[]): void;
  /** reason (convgroups only): "USER_REQUEST" or "CONVERSATION_DELETED". */
  onConversationsDeletedFromGroup?(groupName: string, conversationList: Conversation[], reason: string): void;
}

/** A step of the chat's work, for logging and tests (the `log` option). */
export type LogEntry =
  | { event: "create"; chat: Chat }
  | { event: "call"; chat: Chat; method: string }
  | { event: "result"; chat: Chat; method: string; ok: boolean; code?: number | string }
  | { event: "watch"; chat: Chat; state: "connecting" | "live" | "retry" | "closed"; startRevision?: bigint; error?: ChatError }
  | { event: "emit"; chat: Chat; name: string; listeners: number };

export interface CreateOptions {
  /** The server: `http://127.0.0.1:50051` (grpc-web on its gRPC port). */
  url: string;
  /** A token (`convgroups token --user alice`). Or: */
  token?: string;
  /**
   * Called for a token at the start, when the current one has expired (its
   * `exp`), and when the server answers UNAUTHENTICATED (the call is then
   * retried once with the new token).
   */
  getToken?: () => string | Promise<string>;
  /** Admin tokens: the user to act for (the `x-convgroups-user` header). */
  user?: string;
  /**
   * Start the watch stream after this revision (one you saw before, e.g.
   * saved from `chat.getRevision()`), so that an app that restarts gets
   * every change it missed. Default: changes from when the stream opens.
   */
  resumeRevision?: bigint | number | string;
  /** Reconnect backoff of the watch stream: first delay and cap, in ms (default 100, 5000). */
  reconnectDelayMs?: { min?: number; max?: number };
  /** Receives each call, result and stream state change. */
  log?: (entry: LogEntry) => void;
  /** A Connect transport to use instead of grpc-web to `url` (e.g. @connectrpc/connect-node's gRPC). */
  transport?: Transport;
}

/** What every call resolves to: Tencent's `imResponse`. */
export interface ChatResponse<T> {
  code: 0;
  data: T;
}

/** The result of the batch calls (create, add, delete from group, mark, custom data). */
export interface BatchResult {
  successConversationIDList: string[];
  failureConversationIDList: ConversationFailure[];
  /** convgroups only: the caller's revision after the call. */
  revision: bigint;
}

/** convgroups only: optimistic concurrency on any mutation. */
export interface Precondition {
  /** Fail with REVISION_MISMATCH (changing nothing) unless the caller's revision is this. */
  expectedRevision?: bigint;
}

type GroupsClient = Client<typeof ConversationGroupService>;
type ConversationsClient = Client<typeof ConversationService>;
type Update = MessageInitShape<typeof ConversationUpdateSchema>;

// Listing pages: as many as the server allows in one call.
const PAGE_SIZE = 1000;
// The server's default max_ids_per_request: id lists are sent in chunks.
const IDS_PER_CALL = 100;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

// Seconds since the epoch at which a JWT expires, or undefined.
function jwtExp(token: string): number | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

// The server's listing order: pinned first, then orderKey descending, then id.
const listOrder = (a: Conversation, b: Conversation) =>
  Number(b.isPinned) - Number(a.isPinned) ||
  (a.orderKey === b.orderKey ? 0 : a.orderKey > b.orderKey ? -1 : 1) ||
  (a.conversationID < b.conversationID ? -1 : a.conversationID > b.conversationID ? 1 : 0);

const chunks = <T>(list: T[], n: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
  return out.length ? out : [[]];
};

export class Chat {
  /** convgroups only: the generated Connect clients, for what the Tencent API has no call for. */
  readonly api: { groups: GroupsClient; conversations: ConversationsClient };

  private readonly opts: CreateOptions;
  private token: string | undefined;
  private tokenRefresh: Promise<string> | undefined;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly conversationListeners = new Set<ConversationListener>();
  private destroyed = false;
  // The watch stream: at most one per chat.
  private watch: { abort: AbortController; done: Promise<void> } | undefined;
  private lastRevision: bigint | undefined;
  private readyFired = false;
  private live = false;
  // login() calls waiting for the stream to be live.
  private liveWaiters: Array<{ resolve: () => void; reject: (err: ChatError) => void }> = [];

  constructor(options: CreateOptions) {
    if (!options || typeof options.url !== "string" || !options.url) {
      throw clientError("INVALID_ARGUMENT", "create: options.url is required (e.g. http://127.0.0.1:50051)");
    }
    if (!options.token && !options.getToken) {
      throw clientError("INVALID_ARGUMENT", "create: options.token or options.getToken is required");
    }
    this.opts = options;
    this.token = options.token;
    if (options.resumeRevision !== undefined) this.lastRevision = BigInt(options.resumeRevision);
    const transport =
      options.transport ?? createGrpcWebTransport({ baseUrl: options.url.replace(/\/+$/, ""), interceptors: [this.auth()] });
    this.api = {
      groups: createClient(ConversationGroupService, transport),
      conversations: createClient(ConversationService, transport),
    };
    this.log({ event: "create", chat: this });
  }

  // ---------------------------------------------------------------- tokens

  private async currentToken(): Promise<string> {
    if (this.tokenRefresh) return this.tokenRefresh;
    const exp = this.token ? jwtExp(this.token) : undefined;
    const expired = exp !== undefined && exp * 1000 <= Date.now();
    if (this.token && (!expired || !this.opts.getToken)) return this.token;
    return this.refreshToken();
  }

  // One refresh at a time: concurrent calls share it.
  private refreshToken(): Promise<string> {
    const getToken = this.opts.getToken;
    if (!getToken) return Promise.resolve(this.token ?? "");
    this.tokenRefresh ??= (async () => {
      try {
        const token = await getToken();
        if (typeof token !== "string" || !token) throw clientError("INVALID_TOKEN", "getToken returned no token");
        this.token = token;
        return token;
      } finally {
        this.tokenRefresh = undefined;
      }
    })();
    return this.tokenRefresh;
  }

  // Adds the bearer token (and the acting user); a unary call answered
  // UNAUTHENTICATED is retried once with a fresh token from getToken.
  private auth(): Interceptor {
    return (next) => async (req) => {
      const used = await this.currentToken();
      req.header.set("authorization", `Bearer ${used}`);
      if (this.opts.user) req.header.set("x-convgroups-user", this.opts.user);
      try {
        return await next(req);
      } catch (err) {
        if (req.stream || !this.opts.getToken || ConnectError.from(err).code !== Code.Unauthenticated) throw err;
        const fresh = this.token !== used ? (this.token as string) : await this.refreshToken();
        req.header.set("authorization", `Bearer ${fresh}`);
        return await next(req);
      }
    };
  }

  // ---------------------------------------------------------------- calls

  private log(entry: LogEntry) {
    try {
      this.opts.log?.(entry);
    } catch {
      // A logger's bug must not break a call.
    }
  }

  // Runs one SDK call: its promise resolves to { code: 0, data } or rejects with a ChatError.
  private async call<T>(method: string, body: () => Promise<T>): Promise<ChatResponse<T>> {
    this.log({ event: "call", chat: this, method });
    try {
      if (this.destroyed) throw clientError("DESTROYED", `${method}: the chat was destroyed`);
      const data = await body();
      this.log({ event: "result", chat: this, method, ok: true });
      return { code: 0, data };
    } catch (err) {
      const e = toChatError(err);
      this.log({ event: "result", chat: this, method, ok: false, code: e.code });
      throw e;
    }
  }

  private seen(revision: bigint) {
    // Responses carry the caller's revision; the stream's position only moves
    // with what the stream delivered (see runWatch), so this is for callers.
    if (this.responseRevision === undefined || revision > this.responseRevision) this.responseRevision = revision;
  }
  private responseRevision: bigint | undefined;

  private batch(
    res: { successConversationIds: string[]; failed: Parameters<typeof failureItem>[0][]; revision: bigint },
  ): BatchResult {
    this.seen(res.revision);
    return {
      successConversationIDList: [...res.successConversationIds],
      failureConversationIDList: res.failed.map(failureItem),
      revision: res.revision,
    };
  }

  /** Creates a group holding the given conversations (Tencent: createConversationGroup). */
  createConversationGroup(
    options: { conversationIDList: string[]; groupName: string } & Precondition,
  ): Promise<ChatResponse<BatchResult>> {
    return this.call("createConversationGroup", async () => {
      const res = await this.api.groups.createConversationGroup({
        groupName: options?.groupName,
        conversationIds: options?.conversationIDList ?? [],
        expectedRevision: options?.expectedRevision,
      });
      return this.batch(res);
    });
  }

  /** Deletes a group; its conversations stay (Tencent: deleteConversationGroup). */
  deleteConversationGroup(
    groupName: string | ({ groupName: string } & Precondition),
  ): Promise<ChatResponse<{ groupName: string; revision: bigint }>> {
    return this.call("deleteConversationGroup", async () => {
      const o = typeof groupName === "string" ? { groupName } : groupName;
      const res = await this.api.groups.deleteConversationGroup({
        groupName: o?.groupName,
        expectedRevision: o?.expectedRevision,
      });
      this.seen(res.revision);
      return { groupName: o.groupName, revision: res.revision };
    });
  }

  /** Renames a group, keeping its members and position (Tencent: renameConversationGroup). */
  renameConversationGroup(
    options: { oldName: string; newName: string } & Precondition,
  ): Promise<ChatResponse<{ oldName: string; newName: string; revision: bigint }>> {
    return this.call("renameConversationGroup", async () => {
      const res = await this.api.groups.renameConversationGroup({
        oldName: options?.oldName,
        newName: options?.newName,
        expectedRevision: options?.expectedRevision,
      });
      this.seen(res.revision);
      return { oldName: options.oldName, newName: options.newName, revision: res.revision };
    });
  }

  /** The group names in display order (Tencent: getConversationGroupList). */
  getConversationGroupList(): Promise<ChatResponse<string[]>> {
    return this.call("getConversationGroupList", async () => {
      const res = await this.api.groups.getConversationGroupList({});
      this.seen(res.revision);
      return [...res.groupNames];
    });
  }

  /** convgroups only: sets the display order of the groups (every group once). */
  reorderConversationGroups(groupNames: string[], precondition: Precondition = {}): Promise<ChatResponse<string[]>> {
    return this.call("reorderConversationGroups", async () => {
      const res = await this.api.groups.reorderConversationGroups({
        groupNames,
        expectedRevision: precondition.expectedRevision,
      });
      this.seen(res.revision);
      return [...res.groupNames];
    });
  }

  /** Adds conversations to a group (Tencent: addConversationsToGroup). */
  addConversationsToGroup(
    options: { conversationIDList: string[]; groupName: string } & Precondition,
  ): Promise<ChatResponse<BatchResult>> {
    return this.call("addConversationsToGroup", async () => {
      const res = await this.api.groups.addConversationsToGroup({
        groupName: options?.groupName,
        conversationIds: options?.conversationIDList ?? [],
        expectedRevision: options?.expectedRevision,
      });
      return this.batch(res);
    });
  }

  /** Removes conversations from a group (Tencent: deleteConversationsFromGroup). */
  deleteConversationsFromGroup(
    options: { conversationIDList: string[]; groupName: string } & Precondition,
  ): Promise<ChatResponse<BatchResult>> {
    return this.call("deleteConversationsFromGroup", async () => {
      const res = await this.api.groups.deleteConversationsFromGroup({
        groupName: options?.groupName,
        conversationIds: options?.conversationIDList ?? [],
        expectedRevision: options?.expectedRevision,
      });
      return this.batch(res);
    });
  }

  // Every conversation matching a filter, page after page.
  private async listAll(filter: FilterInit, minRevision?: bigint): Promise<Conversation[]> {
    const out: Conversation[] = [];
    let pageToken = "";
    for (;;) {
      const res = await this.api.groups.getConversationList({ filter, pageSize: PAGE_SIZE, pageToken, minRevision });
      this.seen(res.revision);
      out.push(...res.conversations.map(conversation));
      if (res.isFinished || !res.nextPageToken) return out;
      pageToken = res.nextPageToken;
    }
  }

  // Conversations by id, in the order asked, ids the server does not list as defaults.
  private async byIds(ids: string[], minRevision?: bigint): Promise<Conversation[]> {
    const found = new Map<string, Conversation>();
    for (const part of chunks(ids, IDS_PER_CALL)) {
      if (!part.length) continue;
      for (const c of await this.listAll({ conversationIds: part }, minRevision)) found.set(c.conversationID, c);
    }
    return ids.map((id) => found.get(bareConversation(id).conversationID) ?? bareConversation(id));
  }

  /**
   * The conversation list (Tencent: getConversationList): all of them
   * (no argument), the ones named (an array of IDs), or those matching
   * `{ type, markType, groupName, hasUnreadCount, hasGroupAtInfo }`. Pinned
   * first, then by orderKey. `isSyncCompleted` is always true: the server is
   * the list.
   */
  getConversationList(
    options?: string[] | ConversationListFilter,
  ): Promise<ChatResponse<{ conversationList: Conversation[]; isSyncCompleted: boolean }>> {
    return this.call("getConversationList", async () => {
      const filter = filterFrom(options);
      const ids = filter.conversationIds ?? [];
      let list: Conversation[];
      if (ids.length > IDS_PER_CALL) {
        list = [];
        for (const part of chunks(ids, IDS_PER_CALL)) list.push(...(await this.listAll({ ...filter, conversationIds: part })));
      } else {
        list = await this.listAll(filter);
      }
      return { conversationList: list, isSyncCompleted: true };
    });
  }

  /** One conversation (Tencent: getConversationProfile); defaults when the server has nothing on it. */
  getConversationProfile(conversationID: string): Promise<ChatResponse<{ conversation: Conversation }>> {
    return this.call("getConversationProfile", async () => {
      if (typeof conversationID !== "string" || !conversationID) {
        throw clientError("INVALID_ARGUMENT", "getConversationProfile: conversationID is required");
      }
      const [c] = await this.byIds([conversationID]);
      return { conversation: c as Conversation };
    });
  }

  // UpsertConversations; a failed single item rejects with its code.
  private async upsert(updates: Update[]): Promise<BatchResult> {
    const out: BatchResult = { successConversationIDList: [], failureConversationIDList: [], revision: 0n };
    for (const part of chunks(updates, IDS_PER_CALL)) {
      const res = await this.api.conversations.upsertConversations({ conversations: part });
      const b = this.batch(res);
      out.successConversationIDList.push(...b.successConversationIDList);
      out.failureConversationIDList.push(...b.failureConversationIDList);
      out.revision = b.revision;
    }
    return out;
  }

  private static single(method: string, result: BatchResult): void {
    const [failed] = result.failureConversationIDList;
    if (failed) {
      throw new ChatError({
        code: failed.code,
        message: `${method}: ${failed.message}`,
        reason: typeof failed.code === "string" ? failed.code : "ITEM_FAILED",
        grpcCode: "OK",
        data: result,
      });
    }
  }

  /** Pins or unpins a conversation (Tencent: pinConversation). Over max_pinned: 51012. */
  pinConversation(options: { conversationID: string; isPinned: boolean }): Promise<ChatResponse<{ conversationID: string }>> {
    return this.call("pinConversation", async () => {
      const r = await this.upsert([{ conversationId: options?.conversationID, isPinned: !!options?.isPinned }]);
      Chat.single("pinConversation", r);
      return { conversationID: r.successConversationIDList[0] ?? options.conversationID };
    });
  }

  /**
   * Sets or clears a mark on conversations (Tencent: markConversation). The
   * server adds or removes the one mark in a single step (add_marks /
   * remove_marks), so marks another device sets at the same moment are kept.
   */
  markConversation(options: {
    conversationIDList: string[];
    markType: number;
    enableMark: boolean;
  }): Promise<ChatResponse<BatchResult>> {
    return this.call("markConversation", async () => {
      const mark = BigInt(options?.markType ?? NaN);
      const edit = options.enableMark ? { addMarks: [mark] } : { removeMarks: [mark] };
      return this.upsert((options?.conversationIDList ?? []).map((id) => ({ conversationId: id, ...edit })));
    });
  }

  /** Sets the custom data of conversations (Tencent: setConversationCustomData). Over max_custom_data_bytes: per item. */
  setConversationCustomData(options: { conversationIDList: string[]; customData: string }): Promise<ChatResponse<BatchResult>> {
    return this.call("setConversationCustomData", async () => {
      const bytes = new TextEncoder().encode(options?.customData ?? "");
      return this.upsert((options?.conversationIDList ?? []).map((id) => ({ conversationId: id, customData: bytes })));
    });
  }

  /**
   * The unread total over conversations that receive, at once, as a number
   * (Tencent: getTotalUnreadMessageCount). Like Tencent's, it answers from
   * what the chat keeps: the chat reads the total when its watch stream goes
   * live and again after every change to conversations that the stream
   * delivers, so after SDK_READY (or `await chat.login()`) it follows every
   * device's changes. Before that it is 0, as Tencent's is before SDK_READY;
   * the first call opens the watch stream if nothing has yet.
   * For a fresh read from the server, or a filtered total, use
   * getUnreadMessageCountByFilter.
   */
  getTotalUnreadMessageCount(): number {
    this.openWatch();
    return this.unreadTotal ?? 0;
  }

  /**
   * The unread total read from the server now, optionally narrowed by a
   * filter (the native SDKs' getUnreadMessageCountByFilter; `{ groupName }`
   * counts one group).
   */
  getUnreadMessageCountByFilter(filter?: ConversationListFilter): Promise<ChatResponse<number>> {
    return this.call("getUnreadMessageCountByFilter", async () => {
      const res = await this.api.groups.getUnreadCount({ filter: filterFrom(filter) });
      this.seen(res.revision);
      return Number(res.unreadCount);
    });
  }

  /** Whether SDK_READY has fired and the watch stream is open (Tencent: isReady). */
  isReady(): boolean {
    return this.readyFired && this.watch !== undefined;
  }

  /** Deletes conversations: their data and their place in every group (Tencent: deleteConversation). */
  deleteConversation(
    options: string | { conversationIDList: string[] },
  ): Promise<ChatResponse<{ conversationIDList: string[]; failureConversationIDList: ConversationFailure[] }>> {
    return this.call("deleteConversation", async () => {
      const ids = typeof options === "string" ? [options] : (options?.conversationIDList ?? []);
      const res = await this.api.conversations.deleteConversations({ conversationIds: ids });
      const b = this.batch(res);
      if (typeof options === "string") Chat.single("deleteConversation", b);
      return { conversationIDList: b.successConversationIDList, failureConversationIDList: b.failureConversationIDList };
    });
  }

  /**
   * convgroups only: registers conversations or changes their data (what
   * Tencent's server learns from messages). Fields as in the proto's
   * ConversationUpdate (camelCase); unset fields keep their value.
   */
  upsertConversations(updates: Update[]): Promise<ChatResponse<BatchResult>> {
    return this.call("upsertConversations", () => this.upsert(updates));
  }

  /**
   * convgroups only: the highest revision this chat has seen: from the watch
   * stream when it is open (every change up to it was delivered), else from
   * the last response. Pass it as `resumeRevision` to a later `create`.
   */
  getRevision(): bigint | undefined {
    return this.lastRevision ?? this.responseRevision;
  }

  // ---------------------------------------------------------------- events

  /** Listens to an event (Tencent: chat.on). The first listener opens the watch stream. */
  on(name: string, listener: Listener, context?: unknown): void {
    if (typeof listener !== "function") throw clientError("INVALID_ARGUMENT", "on: the listener must be a function");
    const fn = context === undefined ? listener : (listener.bind(context) as Listener);
    if (fn !== listener) this.bound.set(listener, fn);
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
    this.openWatch();
  }
  private readonly bound = new WeakMap<Listener, Listener>();

  /** Stops listening (Tencent: chat.off). The stream stays open until destroy(). */
  off(name: string, listener: Listener): void {
    const set = this.listeners.get(name);
    set?.delete(this.bound.get(listener) ?? listener);
    set?.delete(listener);
  }

  /** The native SDKs' listener form (V2TIMConversationListener). Opens the watch stream. */
  addConversationListener(listener: ConversationListener): void {
    this.conversationListeners.add(listener);
    this.openWatch();
  }

  removeConversationListener(listener: ConversationListener): void {
    this.conversationListeners.delete(listener);
  }

  /**
   * Opens the watch stream (Tencent apps call login first); resolves once it
   * is live, so that every change made after that is delivered. The token
   * comes from `create`, so the options are ignored.
   */
  login(_options?: unknown): Promise<ChatResponse<{ repeatLogin: boolean }>> {
    return this.call("login", async () => {
      const repeat = this.watch !== undefined;
      this.openWatch();
      await this.whenLive();
      return { repeatLogin: repeat };
    });
  }

  /** Closes the watch stream; listeners stay (Tencent: logout). */
  logout(): Promise<ChatResponse<Record<string, never>>> {
    return this.call("logout", async () => {
      await this.closeWatch();
      return {};
    });
  }

  /** Closes the stream and forgets every listener; later calls reject with DESTROYED (Tencent: destroy). */
  async destroy(): Promise<void> {
    this.destroyed = true;
    this.listeners.clear();
    this.conversationListeners.clear();
    await this.closeWatch();
  }

  private whenLive(): Promise<void> {
    if (this.live) return Promise.resolve();
    return new Promise((resolve, reject) => this.liveWaiters.push({ resolve, reject }));
  }

  private failWaiters(err: ChatError) {
    for (const waiter of this.liveWaiters.splice(0)) waiter.reject(err);
  }

  private emit(name: string, data: unknown) {
    const set = this.listeners.get(name);
    this.log({ event: "emit", chat: this, name, listeners: set?.size ?? 0 });
    for (const fn of [...(set ?? [])]) {
      try {
        fn({ name, data });
      } catch (err) {
        // A listener's exception must not stop the stream; show it as the
        // platform shows uncaught errors.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  private has(name: string): boolean {
    return (this.listeners.get(name)?.size ?? 0) > 0;
  }

  private native<K extends keyof ConversationListener>(method: K, ...args: Parameters<NonNullable<ConversationListener[K]>>) {
    for (const l of [...this.conversationListeners]) {
      const fn = l[method] as ((...a: unknown[]) => void) | undefined;
      if (!fn) continue;
      try {
        fn.apply(l, args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  private nativeWants(method: keyof ConversationListener): boolean {
    for (const l of this.conversationListeners) if (l[method]) return true;
    return false;
  }

  private openWatch() {
    if (this.watch || this.destroyed) return;
    const abort = new AbortController();
    this.watch = { abort, done: this.runWatch(abort.signal) };
  }

  private async closeWatch() {
    const w = this.watch;
    if (!w) return;
    this.watch = undefined;
    w.abort.abort();
    await w.done;
    this.live = false;
    this.failWaiters(clientError(this.destroyed ? "DESTROYED" : "LOGGED_OUT", "the watch stream was closed before it was live"));
    this.log({ event: "watch", chat: this, state: "closed" });
  }

  // The one watch stream of this chat. Position: lastRevision, the revision
  // of the last batch or bookmark received. A new stream starts at
  // lastRevision + 1 (the server replays what was missed, then goes live),
  // and a batch at or below lastRevision is dropped: nothing is missed and
  // nothing is repeated, across disconnects and server restarts. When the
  // server no longer has that revision (REVISION_COMPACTED) the stream
  // starts over with a snapshot: a fresh group list, sent as
  // CONVERSATION_GROUP_LIST_UPDATED.
  private async runWatch(signal: AbortSignal): Promise<void> {
    const min = this.opts.reconnectDelayMs?.min ?? 100;
    const max = this.opts.reconnectDelayMs?.max ?? 5000;
    let attempt = 0;
    // Set when our position is gone: the next stream starts with a snapshot
    // that replaces what we know, and is announced as a fresh list.
    let compacted = false;
    while (!signal.aborted) {
      // A stream from "now" starts with a snapshot of the groups and their
      // members, which the batches then keep current (this.members).
      const fromNow = compacted || this.lastRevision === undefined;
      const startRevision = fromNow ? 0n : (this.lastRevision as bigint) + 1n;
      this.log({ event: "watch", chat: this, state: "connecting", startRevision });
      this.emit(EVENT.NET_STATE_CHANGE, { state: TYPES.NET_STATE_CONNECTING });
      try {
        const stream = this.api.groups.watchGroupEvents({ startRevision, sendSnapshot: fromNow }, { signal });
        for await (const message of stream) {
          const kind = message.kind;
          if (kind.case === "bookmark") {
            if (this.lastRevision === undefined || kind.value.revision > this.lastRevision) this.lastRevision = kind.value.revision;
            if (!this.live) {
              // The unread total as of the position, before anyone is told
              // the chat is ready (getTotalUnreadMessageCount answers from it).
              await this.readUnreadTotal(this.lastRevision, signal);
              if (signal.aborted) break;
              this.goneLive();
            }
            attempt = 0;
          } else if (kind.case === "snapshot") {
            this.lastRevision = kind.value.revision;
            this.members = new Map(kind.value.groups.map((g) => [g.name, [...g.conversationIds]]));
            if (compacted) {
              compacted = false;
              await this.deliverSnapshot(kind.value.groups.map((g) => g.name), kind.value.revision, signal);
            }
          } else if (kind.case === "events") {
            if (this.lastRevision !== undefined && kind.value.revision <= this.lastRevision) continue;
            await this.deliver(kind.value, signal);
            this.lastRevision = kind.value.revision;
          }
        }
        // The server ended the stream without an error: reconnect.
      } catch (err) {
        if (signal.aborted || isCanceled(err)) break;
        const e = toChatError(err);
        this.live = false;
        this.log({ event: "watch", chat: this, state: "retry", startRevision, error: e });
        this.emit(EVENT.NET_STATE_CHANGE, { state: TYPES.NET_STATE_DISCONNECTED });
        if (e.reason === "REVISION_COMPACTED" || e.reason === "REVISION_IN_FUTURE") {
          // Our position is gone (or belongs to other data): start over from
          // a snapshot rather than guess.
          compacted = true;
          this.members = undefined;
          continue;
        }
        if (e.reason === "UNAUTHENTICATED" && this.opts.getToken) {
          await this.refreshToken().catch((refreshErr) => {
            this.emit(EVENT.ERROR, toChatError(refreshErr));
            this.failWaiters(toChatError(refreshErr));
          });
        } else if (e.reason === "UNAUTHENTICATED" || e.reason === "PERMISSION_DENIED" || e.grpcCode === "INVALID_ARGUMENT") {
          // Retrying will not help until the app changes something: tell it,
          // and fail a login() that waits for the stream.
          this.emit(EVENT.ERROR, e);
          this.failWaiters(e);
        }
      }
      if (signal.aborted) break;
      this.live = false;
      await sleep(Math.min(min * 2 ** attempt, max), signal);
      attempt = Math.min(attempt + 1, 16);
    }
  }

  // The unread total as of the stream's position: read when the stream goes
  // live and after each batch that changes conversations. Undefined until
  // the stream first went live.
  private unreadTotal: number | undefined;

  // Reads the total at `revision` or later and keeps it; announces a change
  // of a total already known as TOTAL_UNREAD_MESSAGE_COUNT_UPDATED.
  private async readUnreadTotal(revision: bigint | undefined, signal: AbortSignal) {
    const res = await this.fetch(() => this.api.groups.getUnreadCount({ filter: {}, minRevision: revision ?? 0n }), signal);
    if (!res) return;
    const total = Number(res.unreadCount);
    const known = this.unreadTotal;
    this.unreadTotal = total;
    if (known !== undefined && total !== known) this.emit(EVENT.TOTAL_UNREAD_MESSAGE_COUNT_UPDATED, total);
  }

  // Group members as of lastRevision: the stream's snapshot, kept current by
  // its batches. Undefined when the stream resumed from `resumeRevision`
  // without one; the members are then read from the server.
  private members: Map<string, string[]> | undefined;

  private applyToMembers(e: GroupEvent) {
    const m = this.members;
    if (!m) return;
    const k = e.kind;
    switch (k.case) {
      case "groupCreated":
        m.set(k.value.groupName, [...k.value.conversationIds]);
        break;
      case "groupDeleted":
        m.delete(k.value.groupName);
        break;
      case "groupRenamed": {
        const ids = m.get(k.value.oldName) ?? [];
        m.delete(k.value.oldName);
        m.set(k.value.newName, ids);
        break;
      }
      case "conversationsAddedToGroup":
        m.set(k.value.groupName, [...(m.get(k.value.groupName) ?? []), ...k.value.conversationIds]);
        break;
      case "conversationsDeletedFromGroup": {
        const gone = new Set(k.value.conversationIds);
        m.set(k.value.groupName, (m.get(k.value.groupName) ?? []).filter((id) => !gone.has(id)));
        break;
      }
      default:
        break;
    }
  }

  private goneLive() {
    this.live = true;
    this.log({ event: "watch", chat: this, state: "live", startRevision: this.lastRevision });
    this.emit(EVENT.NET_STATE_CHANGE, { state: TYPES.NET_STATE_CONNECTED });
    for (const waiter of this.liveWaiters.splice(0)) waiter.resolve();
    if (!this.readyFired) {
      this.readyFired = true;
      this.emit(EVENT.SDK_READY, {});
    }
  }

  // Reads the server may need for an event's data, retried until they
  // succeed (the stream is down too when they fail) or the chat closes.
  private async fetch<T>(read: () => Promise<T>, signal: AbortSignal): Promise<T | undefined> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        return await read();
      } catch (err) {
        const e = toChatError(err);
        if (signal.aborted) return undefined;
        if (e.reason === "GROUP_NOT_FOUND") throw e;
        await sleep(Math.min(100 * 2 ** attempt, 2000), signal);
      }
    }
    return undefined;
  }

  private async deliverSnapshot(groupNames: string[], revision: bigint, signal: AbortSignal) {
    this.emit(EVENT.CONVERSATION_GROUP_LIST_UPDATED, groupNames);
    if (this.has(EVENT.CONVERSATION_LIST_UPDATED)) {
      const list = await this.fetch(() => this.listAll({}, revision), signal);
      if (list) this.emit(EVENT.CONVERSATION_LIST_UPDATED, list);
    }
  }

  // One EventBatch (one revision) as Tencent's events, then the native
  // listener calls, then our raw event.
  private async deliver(batch: EventBatch, signal: AbortSignal) {
    const at = batch.revision;
    const events = batch.events;
    const last = events[events.length - 1] as GroupEvent | undefined;
    const listChanged = events.some((e) =>
      ["groupCreated", "groupDeleted", "groupRenamed", "groupsReordered"].includes(e.kind.case ?? ""),
    );
    if (listChanged && last) this.emit(EVENT.CONVERSATION_GROUP_LIST_UPDATED, [...last.groupNames]);

    for (const e of events) this.applyToMembers(e);
    if (this.has(EVENT.CONVERSATION_IN_GROUP_UPDATED)) {
      const touched = new Set<string>();
      for (const e of events) {
        if (e.kind.case === "conversationsAddedToGroup" || e.kind.case === "conversationsDeletedFromGroup") {
          touched.add(e.kind.value.groupName);
        }
      }
      for (const groupName of touched) {
        const ids = this.members?.get(groupName);
        // The members as of this batch, with their data as of now. Without
        // a snapshot, the group as the server lists it now (nothing when it
        // was deleted since: its deletion comes next).
        const list = ids
          ? (await this.fetch(() => this.byIds(ids, at), signal))?.sort(listOrder)
          : await this.fetch(() => this.listAll({ groupName }, at), signal).catch(() => undefined);
        if (list) this.emit(EVENT.CONVERSATION_IN_GROUP_UPDATED, { groupName, conversationList: list });
      }
    }

    const conversationsChanged = events.some((e) => e.kind.case !== "groupsReordered");
    if (conversationsChanged && this.has(EVENT.CONVERSATION_LIST_UPDATED)) {
      const list = await this.fetch(() => this.listAll({}, at), signal);
      if (list) this.emit(EVENT.CONVERSATION_LIST_UPDATED, list);
    }

    // Only a change to conversations themselves (unread counts, receive
    // options, deletions) can move the unread total; group changes cannot.
    if (events.some((e) => e.kind.case === "conversationsChanged" || e.kind.case === "conversationsDeleted")) {
      await this.readUnreadTotal(at, signal);
    }

    if (this.conversationListeners.size) {
      for (const e of events) {
        const k = e.kind;
        const resolve = async (ids: string[]) => (await this.fetch(() => this.byIds(ids, at), signal)) ?? ids.map(bareConversation);
        switch (k.case) {
          case "groupCreated":
            if (this.nativeWants("onConversationGroupCreated")) {
              this.native("onConversationGroupCreated", k.value.groupName, await resolve(k.value.conversationIds));
            }
            break;
          case "groupDeleted":
            this.native("onConversationGroupDeleted", k.value.groupName);
            break;
          case "groupRenamed":
            this.native("onConversationGroupNameChanged", k.value.oldName, k.value.newName);
            break;
          case "conversationsAddedToGroup":
            if (this.nativeWants("onConversationsAddedToGroup")) {
              this.native("onConversationsAddedToGroup", k.value.groupName, await resolve(k.value.conversationIds));
            }
            break;
          case "conversationsDeletedFromGroup":
            if (this.nativeWants("onConversationsDeletedFromGroup")) {
              this.native(
                "onConversationsDeletedFromGroup",
                k.value.groupName,
                await resolve(k.value.conversationIds),
                RemovalReason[k.value.reason] ?? "UNSPECIFIED",
              );
            }
            break;
          default:
            break;
        }
      }
    }

    if (this.has(EVENT.GROUP_EVENTS)) this.emit(EVENT.GROUP_EVENTS, { revision: at, events });
  }
}
