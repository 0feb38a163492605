// The convgroups client of the page: Connect-ES over grpc-web, which the
// server speaks on its gRPC port (tonic-web; start it with
// --cors-allow-origin <this page's origin>).
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ConversationGroupService } from "./gen/convgroups/v1/conversation_group_service_pb.js";
import { ErrorInfoSchema, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";

export type GroupsClient = Client<typeof ConversationGroupService>;

// Adds `authorization: Bearer <token>` to every call.
function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

// baseUrl: the server, e.g. http://127.0.0.1:50051
export function groupsClient(baseUrl: string, token: string): GroupsClient {
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer(token)] });
  return createClient(ConversationGroupService, transport);
}

// What a failed call tells: the gRPC code, the message and the
// google.rpc.ErrorInfo that the server packs into the
// `grpc-status-details-bin` trailer. Connect-ES decodes that trailer into
// ConnectError.details; findDetails() unpacks the ones of a given type.
export interface CallError {
  code: string; // gRPC name: ALREADY_EXISTS
  message: string;
  info?: ErrorInfo; // reason, domain, metadata
}

export function callError(err: unknown): CallError {
  const e = ConnectError.from(err);
  // Code.AlreadyExists -> "AlreadyExists" -> "ALREADY_EXISTS"
  const code = Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  const [info] = e.findDetails(ErrorInfoSchema);
  return { code, message: e.rawMessage, info };
}

export function describeError(err: unknown): string {
  const { code, message, info } = callError(err);
  if (!info) return `${code}: ${message}`;
  const metadata = Object.entries(info.metadata)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return `${code}: ${message} [reason=${info.reason} domain=${info.domain} ${metadata}]`;
}

export function isAbort(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}
