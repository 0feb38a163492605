// Shared helpers of the Node examples: loading the protos, auth, promises,
// error details and checks.
//
// Configuration comes from the environment:
//   CONVGROUPS_ADDR   host:port of the server (default 127.0.0.1:50051)
//   CONVGROUPS_TOKEN  a token from `convgroups token --user example-node`
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, '../../proto');

// The protos are read at run time: nothing is generated or checked in.
const definition = protoLoader.loadSync(
  ['convgroups/v1/conversation_group_service.proto', 'convgroups/v1/conversation_service.proto'],
  {
    includeDirs: [protoRoot],
    keepCase: true, // field names as in the .proto: group_name, conversation_ids
    longs: Number, // uint64 revisions as JS numbers (they stay far below 2^53)
    enums: String, // enum values by name: 'CONVERSATION_TYPE_C2C'
    defaults: true, // unset scalars and lists come back as 0, '', []
    oneofs: true, // a oneof's set field is named in e.g. message.kind
  },
);
const v1 = grpc.loadPackageDefinition(definition).convgroups.v1;

export function settings() {
  const addr = process.env.CONVGROUPS_ADDR || '127.0.0.1:50051';
  const token = process.env.CONVGROUPS_TOKEN;
  if (!token) {
    console.error('set CONVGROUPS_TOKEN (e.g. export CONVGROUPS_TOKEN=$(convgroups token --user example-node))');
    process.exit(2);
  }
  return { addr, token };
}

// An interceptor that adds `authorization: Bearer <token>` to every call.
// (With TLS, grpc.credentials.combineChannelCredentials(ssl,
// grpc.credentials.createFromMetadataGenerator(...)) does the same; call
// credentials are only sent over secure channels, hence the interceptor for
// this local plaintext server.)
function bearer(token) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

export function groupsClient(addr, token) {
  return new v1.ConversationGroupService(addr, grpc.credentials.createInsecure(), {
    interceptors: [bearer(token)],
  });
}

export function conversationsClient(addr, token) {
  return new v1.ConversationService(addr, grpc.credentials.createInsecure(), {
    interceptors: [bearer(token)],
  });
}

// A unary call as a promise, with a 10 s deadline.
export function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// google.rpc.Status and google.rpc.ErrorInfo, from the small vendored copies
// in ./proto (google/protobuf/any.proto is built into protobufjs).
const rpcTypes = protobuf.loadSync([
  path.join(here, 'proto/google/rpc/status.proto'),
  path.join(here, 'proto/google/rpc/error_details.proto'),
]);
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');

// The google.rpc.ErrorInfo of a failed call, or null.
//
// A failed call's error carries the trailers in err.metadata; the server puts
// a binary google.rpc.Status in `grpc-status-details-bin`, whose `details`
// are google.protobuf.Any values. Unpack the one that is an ErrorInfo.
export function errorInfo(err) {
  const [bin] = err?.metadata?.get('grpc-status-details-bin') ?? [];
  if (!bin) return null;
  const status = Status.decode(bin);
  const any = status.details.find((d) => d.type_url === 'type.googleapis.com/google.rpc.ErrorInfo');
  if (!any) return null;
  return ErrorInfo.toObject(ErrorInfo.decode(any.value), { defaults: true });
}

// One readable line: code, message, reason, domain and metadata.
export function describeError(err) {
  const code = grpc.status[err.code] ?? err.code;
  let line = `${code}: ${err.details}`;
  const info = errorInfo(err);
  if (info) {
    const metadata = Object.entries(info.metadata)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    line += ` [reason=${info.reason} domain=${info.domain} ${metadata}]`;
  }
  return line;
}

// Runs fn and returns the error it throws; fails if it does not throw.
export async function expectError(check, what, fn) {
  try {
    await fn();
  } catch (err) {
    if (err.code === undefined) throw err;
    return err;
  }
  check.fail(`${what}: the call succeeded`);
}

// Counts assertions; any mismatch ends the program with exit code 1.
export class Check {
  constructor(name) {
    this.name = name;
    this.passed = 0;
  }

  fail(message) {
    console.error(`FAIL ${message}`);
    process.exit(1);
  }

  equal(what, got, want) {
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      this.fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    this.passed += 1;
  }

  ok(what, condition, detail = '') {
    if (!condition) this.fail(`${what} ${detail}`.trim());
    this.passed += 1;
  }

  done() {
    console.log(`${this.name}: OK (${this.passed} checks)`);
  }
}

// Exits 1 with a readable line if the example throws.
export function run(main) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(`FAIL unexpected error: ${err.code !== undefined ? describeError(err) : err.stack}`);
      process.exit(1);
    },
  );
}

export { grpc };
