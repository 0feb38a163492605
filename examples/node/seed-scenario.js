// The convgroups seed scenario, step by step, with a check after each step.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node) \
//       node seed-scenario.js
//
// Create "Suppliers" with GROUPtest and C2Cexample, list groups, add a
// conversation, remove one, rename the group, list the conversations of the
// group, delete it; along the way, read the google.rpc.ErrorInfo of failed
// calls. Exits 1 on the first unexpected answer.
import { Check, call, describeError, errorInfo, expectError, groupsClient, grpc, run, settings } from './common.js';

const GROUP = 'Suppliers';
const RENAMED = 'Key suppliers';

// The `sub` claim of the token (for display only: the server checks it).
function tokenUser(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sub;
}

run(async () => {
  const { addr, token } = settings();
  const check = new Check('node seed scenario');
  const groups = groupsClient(addr, token);
  console.log(`server ${addr}, acting as user '${tokenUser(token)}'`);

  // 0. Start clean, so the example can be run again and again.
  let listed = await call(groups, 'GetConversationGroupList', {});
  for (const leftover of [GROUP, RENAMED]) {
    if (listed.group_names.includes(leftover)) {
      await call(groups, 'DeleteConversationGroup', { group_name: leftover });
      console.log(`0. deleted '${leftover}' left over from an earlier run`);
    }
  }

  // 1. Create a group with two conversations.
  const created = await call(groups, 'CreateConversationGroup', {
    group_name: GROUP,
    conversation_ids: ['GROUPtest', 'C2Cexample'],
  });
  console.log(`1. created '${created.group.name}' with ${JSON.stringify(created.success_conversation_ids)} at revision ${created.revision}`);
  check.equal('create: group name', created.group.name, GROUP);
  check.equal('create: added', created.success_conversation_ids, ['GROUPtest', 'C2Cexample']);
  check.equal('create: failed items', created.failed.length, 0);
  check.equal('create: conversation_count', created.group.conversation_count, 2);
  check.ok('create: revision > 0', created.revision > 0);

  // 2. List the groups.
  listed = await call(groups, 'GetConversationGroupList', {});
  console.log(`2. groups: ${JSON.stringify(listed.group_names)} (revision ${listed.revision})`);
  check.ok('list: has the group', listed.group_names.includes(GROUP), JSON.stringify(listed.group_names));
  check.equal('list: revision', listed.revision, created.revision);
  check.equal('list: count', listed.groups.find((g) => g.name === GROUP)?.conversation_count, 2);

  // 3. Add conversations. The native form c2c_bob is normalised to C2Cbob;
  //    a bad id fails on its own while the rest is applied.
  const added = await call(groups, 'AddConversationsToGroup', {
    group_name: GROUP,
    conversation_ids: ['c2c_bob', 'nonsense'],
  });
  console.log(`3. added ${JSON.stringify(added.success_conversation_ids)}; failed: ${added.failed.map((f) => `${f.conversation_id} (${f.code}: ${f.message})`).join(', ')}`);
  check.equal('add: added', added.success_conversation_ids, ['C2Cbob']);
  check.equal('add: failed id', added.failed[0]?.conversation_id, 'nonsense');
  check.equal('add: failed code', added.failed[0]?.code, 'CONVERSATION_RESULT_CODE_INVALID_CONVERSATION_ID');
  check.ok('add: revision advanced', added.revision > created.revision);

  // 4. Remove one.
  const removed = await call(groups, 'DeleteConversationsFromGroup', {
    group_name: GROUP,
    conversation_ids: ['C2Cexample'],
  });
  console.log(`4. removed ${JSON.stringify(removed.success_conversation_ids)} (revision ${removed.revision})`);
  check.equal('remove: removed', removed.success_conversation_ids, ['C2Cexample']);
  check.equal('remove: failed items', removed.failed.length, 0);

  // 5. Rename, naming the group by its id (a group's id never changes, so
  //    an app that keeps groups by id survives renames made elsewhere),
  //    guarded by the revision we last saw (optimistic concurrency): had
  //    anything else changed this user's groups since, it would fail with
  //    ABORTED / REVISION_MISMATCH and change nothing.
  const groupId = created.group.group_id;
  const renamed = await call(groups, 'RenameConversationGroup', {
    group_id: groupId,
    new_name: RENAMED,
    expected_revision: removed.revision,
  });
  console.log(`5. renamed group ${groupId} from '${GROUP}' to '${renamed.group.name}' (revision ${renamed.revision})`);
  check.equal('rename: new name', renamed.group.name, RENAMED);
  check.equal('rename: id kept', renamed.group.group_id, groupId);
  check.equal('rename: members kept', renamed.group.conversation_count, 2);

  // 6. The conversations of the group (GetConversationList with filter.group_name).
  const page = await call(groups, 'GetConversationList', { filter: { group_name: RENAMED } });
  console.log(`6. conversations in '${RENAMED}':`);
  for (const c of page.conversations) {
    console.log(`     ${c.conversation_id.padEnd(12)} ${c.type.padEnd(24)} groups=${JSON.stringify(c.conversation_group_list)}`);
  }
  check.equal('list by group: ids', page.conversations.map((c) => c.conversation_id), ['C2Cbob', 'GROUPtest']);
  check.ok('list by group: membership', page.conversations.every((c) => c.conversation_group_list.includes(RENAMED)));
  check.ok('list by group: finished', page.is_finished && page.next_page_token === '');

  // 7. Errors carry a google.rpc.ErrorInfo: reason, domain and metadata.
  let err = await expectError(check, 'create twice', () =>
    call(groups, 'CreateConversationGroup', { group_name: RENAMED, conversation_ids: ['C2Cexample'] }),
  );
  let info = errorInfo(err);
  console.log(`7. create '${RENAMED}' again -> ${describeError(err)}`);
  check.equal('duplicate: code', err.code, grpc.status.ALREADY_EXISTS);
  check.equal('duplicate: reason', info?.reason, 'GROUP_ALREADY_EXISTS');
  check.equal('duplicate: domain', info?.domain, 'convgroups');
  check.equal('duplicate: metadata group_name', info?.metadata.group_name, RENAMED);

  err = await expectError(check, 'stale expected_revision', () =>
    call(groups, 'DeleteConversationGroup', { group_name: RENAMED, expected_revision: removed.revision }),
  );
  info = errorInfo(err);
  console.log(`   delete with a stale expected_revision -> ${describeError(err)}`);
  check.equal('stale: code', err.code, grpc.status.ABORTED);
  check.equal('stale: reason', info?.reason, 'REVISION_MISMATCH');

  // 8. Delete the group; a second delete is NOT_FOUND with Tencent's code.
  const deleted = await call(groups, 'DeleteConversationGroup', { group_name: RENAMED });
  listed = await call(groups, 'GetConversationGroupList', {});
  console.log(`8. deleted '${RENAMED}' (revision ${deleted.revision}); groups now: ${JSON.stringify(listed.group_names)}`);
  check.ok('delete: gone', !listed.group_names.includes(RENAMED));
  err = await expectError(check, 'delete twice', () => call(groups, 'DeleteConversationGroup', { group_name: RENAMED }));
  info = errorInfo(err);
  console.log(`   delete again -> ${describeError(err)}`);
  check.equal('not found: code', err.code, grpc.status.NOT_FOUND);
  check.equal('not found: reason', info?.reason, 'GROUP_NOT_FOUND');
  check.equal('not found: tencent_code', info?.metadata.tencent_code, '51009');

  groups.close();
  check.done();
});
