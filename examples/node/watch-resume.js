// WatchGroupEvents: see a change live, disconnect, resume with no gap.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node) \
//       node watch-resume.js            # scripted demo with checks (exit 1 on mismatch)
//       node watch-resume.js --follow   # print events forever, resuming after disconnects
//
// The resume rule: remember the revision of the last EventBatch or Bookmark
// you got, and reconnect with start_revision = that revision + 1. The server
// replays every retained event from there, then a Bookmark, then live events,
// with no gap and no duplicate.
import { Check, call, describeError, errorInfo, expectError, groupsClient, grpc, run, settings } from './common.js';

const GROUP = 'Watched';
const RENAMED = 'Watched (renamed)';
const STREAM_DEADLINE_MS = 30_000; // a stream never hangs the demo for longer

// Tracks the last revision seen so a new stream continues where one ended.
class ResumingWatcher {
  constructor(client) {
    this.client = client;
    this.lastRevision = null; // null: nothing seen yet, start "now"
  }

  // Opens a stream; returns { stream, next } where next() resolves to the
  // next message (and records its revision).
  open(deadlineMs) {
    const start_revision = this.lastRevision === null ? 0 : this.lastRevision + 1;
    const options = deadlineMs ? { deadline: new Date(Date.now() + deadlineMs) } : {};
    const stream = this.client.WatchGroupEvents({ start_revision }, options);
    const messages = stream[Symbol.asyncIterator]();
    const next = async () => {
      const { value, done } = await messages.next();
      if (done) throw new Error('stream ended');
      this.seen(value);
      return value;
    };
    return { stream, next, start_revision };
  }

  seen(message) {
    // With `oneofs: true`, message.kind names the member that is set.
    const revision = message[message.kind]?.revision;
    if (revision !== undefined) this.lastRevision = revision;
  }
}

function describeEvent(event) {
  const body = JSON.stringify(event[event.kind]);
  return `rev ${event.revision} ${event.kind}(${body}) -> groups ${JSON.stringify(event.group_names)}`;
}

// The next EventBatch; bookmarks on the way only move the resume point.
async function nextBatch(next) {
  for (;;) {
    const message = await next();
    if (message.kind === 'events') return message.events;
  }
}

async function demo(addr, token) {
  const check = new Check('node watch/resume');
  let groups = groupsClient(addr, token);
  const listed = await call(groups, 'GetConversationGroupList', {});
  for (const leftover of [GROUP, RENAMED]) {
    if (listed.group_names.includes(leftover)) await call(groups, 'DeleteConversationGroup', { group_name: leftover });
  }

  // 1. Watch from now: the first message is a bookmark at the current revision.
  const watcher = new ResumingWatcher(groups);
  let { stream, next } = watcher.open(STREAM_DEADLINE_MS);
  const first = await next();
  console.log(`1. watching; first message: bookmark at revision ${first.bookmark?.revision}`);
  check.equal('first message', first.kind, 'bookmark');

  // 2. A change shows up on the stream.
  const created = await call(groups, 'CreateConversationGroup', { group_name: GROUP, conversation_ids: ['C2Cwatch'] });
  let batch = await nextBatch(next);
  console.log(`2. live:    ${describeEvent(batch.events[0])}`);
  check.equal('live: revision', batch.revision, created.revision);
  check.equal('live: kind', batch.events[0].kind, 'group_created');
  check.equal('live: name', batch.events[0].group_created.group_name, GROUP);

  // 3. Disconnect, and change something while nobody is watching.
  stream.cancel();
  const cancelled = await expectError(check, 'read after cancel', next);
  check.equal('cancelled', cancelled.code, grpc.status.CANCELLED);
  groups.close();
  console.log(`3. disconnected after revision ${watcher.lastRevision}`);
  groups = groupsClient(addr, token);
  watcher.client = groups;
  const renamed = await call(groups, 'RenameConversationGroup', { old_name: GROUP, new_name: RENAMED });
  console.log(`   while disconnected: renamed to '${RENAMED}' at revision ${renamed.revision}`);

  // 4. Resume from last seen + 1: exactly the missed event, then a bookmark.
  let start_revision;
  ({ stream, next, start_revision } = watcher.open(STREAM_DEADLINE_MS));
  const replayed = [];
  let bookmark;
  for (;;) {
    const message = await next();
    if (message.kind === 'bookmark') {
      bookmark = message.bookmark.revision;
      break;
    }
    replayed.push(message.events);
  }
  console.log(`4. resumed with start_revision=${start_revision}: replayed ${replayed.length} batch(es), then bookmark at ${bookmark}`);
  for (const b of replayed) console.log(`   missed:  ${describeEvent(b.events[0])}`);
  check.equal('replay: batches', replayed.map((b) => b.revision), [renamed.revision]);
  check.equal('replay: kind', replayed[0].events[0].kind, 'group_renamed');
  check.equal('replay: old name', replayed[0].events[0].group_renamed.old_name, GROUP);
  check.equal('replay: new name', replayed[0].events[0].group_renamed.new_name, RENAMED);
  check.ok('replay: bookmark covers it', bookmark >= renamed.revision);

  // 5. And the resumed stream carries on live.
  const deleted = await call(groups, 'DeleteConversationGroup', { group_name: RENAMED });
  batch = await nextBatch(next);
  console.log(`5. live:    ${describeEvent(batch.events[0])}`);
  check.equal('live after resume: revision', batch.revision, deleted.revision);
  check.equal('live after resume: kind', batch.events[0].kind, 'group_deleted');
  stream.cancel();
  await next().catch(() => {});

  // 6. Watch errors carry an ErrorInfo too: a start revision in the future.
  const future = watcher.lastRevision + 1000;
  const err = await expectError(check, 'future start_revision', async () => {
    const s = groups.WatchGroupEvents({ start_revision: future }, { deadline: new Date(Date.now() + STREAM_DEADLINE_MS) });
    for await (const message of s) return message;
  });
  const info = errorInfo(err);
  console.log(`6. watch from ${future} -> ${describeError(err)}`);
  check.equal('future: code', err.code, grpc.status.OUT_OF_RANGE);
  check.equal('future: reason', info?.reason, 'REVISION_IN_FUTURE');
  check.ok('future: metadata current_revision', info !== null && 'current_revision' in info.metadata);
  groups.close();
  check.done();
}

// Prints events until interrupted, resuming after every disconnect.
async function follow(addr, token) {
  const watcher = new ResumingWatcher(groupsClient(addr, token));
  let backoffMs = 1000;
  for (;;) {
    const { stream } = watcher.open();
    try {
      for await (const message of stream) {
        watcher.seen(message);
        backoffMs = 1000;
        if (message.kind === 'events') for (const event of message.events.events) console.log(describeEvent(event));
      }
    } catch (err) {
      if (err.code === undefined) throw err;
      const info = errorInfo(err);
      if (info?.reason === 'SHUTTING_DOWN') {
        // The server says where to continue (the same rule as ours).
        watcher.lastRevision = Number(info.metadata.resume_revision) - 1;
      } else if (info?.reason === 'REVISION_COMPACTED' || info?.reason === 'REVISION_IN_FUTURE') {
        // Too far behind (or a different server): list again, then watch from now.
        watcher.lastRevision = null;
      } else if (err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.DEADLINE_EXCEEDED) {
        throw err;
      }
      console.error(`stream ended (${describeError(err)}); resuming from ${watcher.lastRevision}`);
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs));
    backoffMs = Math.min(backoffMs * 2, 30_000);
  }
}

run(async () => {
  const { addr, token } = settings();
  if (process.argv.includes('--follow')) await follow(addr, token);
  else await demo(addr, token);
});
