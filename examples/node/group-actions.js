// Group-wide actions, step by step, with a check after each step.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node-actions) \
//       node group-actions.js
//
// Mark a whole group read (MarkConversationGroupRead), mute it and have
// conversations added later follow (SetConversationGroupMute with
// apply_to_new_members), move conversations from one group to another and add
// one to two groups at once (MoveConversations), each in one revision. Exits
// 1 on the first unexpected answer.
import { Check, call, conversationsClient, describeError, errorInfo, expectError, groupsClient, grpc, run, settings } from './common.js';

const INBOX = 'Inbox';
const CLIENTS = 'Clients';

run(async () => {
  const { addr, token } = settings();
  const check = new Check('node group actions');
  const groups = groupsClient(addr, token);
  const conversations = conversationsClient(addr, token);
  const group = async (name) => (await call(groups, 'GetConversationGroupList', {})).groups.find((g) => g.name === name);
  const conversation = async (id) =>
    (await call(groups, 'GetConversationList', { filter: { conversation_ids: [id] } })).conversations[0];

  // 0. Start clean, so the example can be run again and again.
  for (const leftover of [INBOX, CLIENTS]) {
    if (await group(leftover)) {
      await call(groups, 'DeleteConversationGroup', { group_name: leftover });
      console.log(`0. deleted '${leftover}' left over from an earlier run`);
    }
  }

  // 1. Two conversations with unread messages, in a group "Inbox"; "Clients" holds another.
  await call(conversations, 'UpsertConversations', {
    conversations: [
      { conversation_id: 'C2Cbob', unread_count: 3, recv_opt: 'RECV_OPT_RECEIVE' },
      { conversation_id: 'C2Ccarol', unread_count: 2, recv_opt: 'RECV_OPT_RECEIVE' },
      { conversation_id: 'C2Cerin', recv_opt: 'RECV_OPT_RECEIVE' },
    ],
  });
  await call(groups, 'CreateConversationGroup', { group_name: INBOX, conversation_ids: ['C2Cbob', 'C2Ccarol', 'GROUPtest'] });
  const clients = (await call(groups, 'CreateConversationGroup', { group_name: CLIENTS, conversation_ids: ['C2Cdave'] })).group;
  console.log(`1. '${INBOX}' has ${(await group(INBOX)).unread_count} unread; '${CLIENTS}' is ${clients.group_id}`);
  check.equal('setup: unread', (await group(INBOX)).unread_count, 5);

  // 2. Mark the whole group read: one revision, the members that had unread messages.
  const read = await call(groups, 'MarkConversationGroupRead', { group_name: INBOX });
  console.log(`2. marked ${JSON.stringify(read.changed_conversation_ids)} read at revision ${read.revision}`);
  check.equal('mark read: changed', read.changed_conversation_ids, ['C2Cbob', 'C2Ccarol']);
  check.equal('mark read: group unread', (await group(INBOX)).unread_count, 0);
  const again = await call(groups, 'MarkConversationGroupRead', { group_name: INBOX });
  check.equal('mark read again: nothing changed', again.changed_conversation_ids, []);
  check.equal('mark read again: revision kept', again.revision, read.revision);

  // 3. Mute the group, and conversations added to it later too.
  const muted = await call(groups, 'SetConversationGroupMute', {
    group_name: INBOX,
    recv_opt: 'RECV_OPT_RECEIVE_NOT_NOTIFY',
    apply_to_new_members: true,
  });
  console.log(`3. muted ${JSON.stringify(muted.changed_conversation_ids)}; new members get ${muted.group.new_member_recv_opt}`);
  check.equal('mute: changed', muted.changed_conversation_ids, ['C2Cbob', 'C2Ccarol', 'GROUPtest']);
  check.equal('mute: remembered', muted.group.new_member_recv_opt, 'RECV_OPT_RECEIVE_NOT_NOTIFY');

  // 4. Move C2Ccarol from Inbox to Clients (named by its id). C2Czed is not
  //    in Inbox: that item fails on its own, the rest is applied.
  const moved = await call(groups, 'MoveConversations', {
    conversation_ids: ['C2Ccarol', 'C2Czed'],
    from_group_name: INBOX,
    to: [{ group_id: clients.group_id }],
  });
  const failed = moved.failed.map((f) => [f.conversation_id, f.code]);
  console.log(`4. moved ${JSON.stringify(moved.moved_conversation_ids)} to '${moved.targets[0].group_name}'; failed ${JSON.stringify(failed)}`);
  check.equal('move: moved', moved.moved_conversation_ids, ['C2Ccarol']);
  check.equal('move: failed', failed, [['C2Czed', 'CONVERSATION_RESULT_CODE_NOT_IN_GROUP']]);
  check.equal('move: added to Clients', moved.targets[0].added_conversation_ids, ['C2Ccarol']);
  check.equal("move: carol's groups", (await conversation('C2Ccarol')).conversation_group_list, [CLIENTS]);

  // 5. Add C2Cerin to both groups at once; Inbox gives it its receive option.
  const added = await call(groups, 'MoveConversations', {
    conversation_ids: ['C2Cerin'],
    to: [{ group_name: INBOX }, { group_name: CLIENTS }],
  });
  console.log(`5. added C2Cerin to ${JSON.stringify(added.targets.map((t) => t.group_name))} at revision ${added.revision}`);
  check.equal('add: targets', added.targets.map((t) => t.added_conversation_ids), [['C2Cerin'], ['C2Cerin']]);
  check.equal('add: erin muted', (await conversation('C2Cerin')).recv_opt, 'RECV_OPT_RECEIVE_NOT_NOTIFY');

  // 6. A move into the group it comes from is refused whole, naming the field.
  const err = await expectError(check, 'move into from', () =>
    call(groups, 'MoveConversations', { conversation_ids: ['C2Cbob'], from_group_name: INBOX, to: [{ group_name: INBOX }] }),
  );
  console.log(`6. ${describeError(err)}`);
  check.equal('move into from: code', err.code, grpc.status.INVALID_ARGUMENT);
  check.equal('move into from: field', errorInfo(err)?.metadata.field, 'to');

  // 7. Unmute, forgetting the option for new members.
  const unmuted = await call(groups, 'SetConversationGroupMute', { group_name: INBOX, recv_opt: 'RECV_OPT_RECEIVE' });
  console.log(`7. unmuted ${JSON.stringify(unmuted.changed_conversation_ids)}`);
  const remembered = unmuted.group.new_member_recv_opt;
  check.ok('unmute: forgotten', !remembered || remembered === 'RECV_OPT_UNSPECIFIED', String(remembered));
  check.equal('unmute: bob receives', (await conversation('C2Cbob')).recv_opt, 'RECV_OPT_RECEIVE');

  for (const name of [INBOX, CLIENTS]) {
    await call(groups, 'DeleteConversationGroup', { group_name: name });
  }
  check.done();
});
