// Errors as Tencent Cloud Chat's web SDK reports them: a promise rejected
// with an object whose `code` the app already switches on (51009 "no such
// group"...) and a `message`.
//
// The server decides the Tencent code, not this file: every error it sends
// carries a google.rpc.ErrorInfo whose metadata has `tencent_code` where
// Tencent has an equivalent (51006 INVALID_CONVERSATION_LIST, 51009
// GROUP_NOT_FOUND, 51010 GROUP_LIMIT_EXCEEDED, 51011 INVALID_GROUP_NAME), and
// every failed item of a batch call carries `tencent_code` (51008
// GROUP_FULL, 51012 PIN_LIMIT_EXCEEDED). Where there is none the code is the
// ErrorInfo reason (GROUP_ALREADY_EXISTS, REVISION_MISMATCH...), so a new
// mapping on the server reaches apps without a new SDK.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ConversationResultCode, type ConversationResult } from "./gen/convgroups/v1/types_pb.js";

/** A failed call: what the returned promise rejects with. */
export class ChatError extends Error {
  /** The Tencent error code (a number) where one exists, else our ErrorInfo reason. */
  readonly code: number | string;
  /** The ErrorInfo reason (`GROUP_NOT_FOUND`), or the gRPC code name when the server sent none. */
  readonly reason: string;
  /** The gRPC status name (`NOT_FOUND`). */
  readonly grpcCode: string;
  /** The ErrorInfo metadata (`field`, `max_groups`, `tencent_code`, `current_revision`...). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tencent's imError.data: the call's partial result, where there is one. */
  readonly data?: unknown;

  constructor(init: {
    code: number | string;
    message: string;
    reason: string;
    grpcCode: string;
    metadata?: Record<string, string>;
    data?: unknown;
  }) {
    super(init.message);
    this.name = "ChatError";
    this.code = init.code;
    this.reason = init.reason;
    this.grpcCode = init.grpcCode;
    this.metadata = init.metadata ?? {};
    if (init.data !== undefined) this.data = init.data;
  }
}

// Code.AlreadyExists -> "ALREADY_EXISTS"
function grpcName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Turns whatever a Connect call threw into a ChatError. */
export function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  const e = ConnectError.from(err);
  const [info] = e.findDetails(ErrorInfoSchema);
  const grpcCode = grpcName(e.code);
  const reason = info?.reason || grpcCode;
  const metadata = { ...(info?.metadata ?? {}) };
  const tencent = Number(metadata["tencent_code"]);
  return new ChatError({
    code: Number.isInteger(tencent) && tencent > 0 ? tencent : reason,
    message: e.rawMessage,
    reason,
    grpcCode,
    metadata,
  });
}

/** True when the error is this chat's own cancellation (destroy, logout). */
export function isCanceled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

/** One element of Tencent's `failureConversationIDList`. */
export interface ConversationFailure {
  conversationID: string;
  /** The Tencent code (51008 GROUP_FULL, 51012 PIN_LIMIT_EXCEEDED) or our result code name. */
  code: number | string;
  message: string;
}

export function failureItem(r: ConversationResult): ConversationFailure {
  const name = ConversationResultCode[r.code] ?? "UNSPECIFIED";
  return {
    conversationID: r.conversationId,
    code: r.tencentCode > 0 ? r.tencentCode : name,
    message: r.message,
  };
}

/** An error the SDK raises itself (bad arguments, a destroyed chat). */
export function clientError(code: string, message: string): ChatError {
  return new ChatError({ code, message, reason: code, grpcCode: "INVALID_ARGUMENT" });
}
