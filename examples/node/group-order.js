// Order inside a group, step by step, with a check after each step.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node-order) \
//       node group-order.js
//
// Create "Favourites" sorted by hand (GROUP_SORT_MODE_MANUAL), move
// conversations inside it, pin one in the group, page through the group's
// listing in its order, switch it to alphabetical, and read the error of a
// move that is not allowed. Exits 1 on the first unexpected answer.
import { Check, call, describeError, errorInfo, expectError, groupsClient, grpc, run, settings } from './common.js';

const GROUP = 'Favourites';

// The group's conversation ids in its order, page by page.
async function groupListing(groups, pageSize) {
  const ids = [];
  let pageToken = '';
  for (;;) {
    const page = await call(groups, 'GetConversationList', {
      filter: { group_name: GROUP },
      page_size: pageSize,
      page_token: pageToken,
    });
    ids.push(...page.conversations.map((c) => c.conversation_id));
    if (page.is_finished) return ids;
    pageToken = page.next_page_token;
  }
}

run(async () => {
  const { addr, token } = settings();
  const check = new Check('node group order');
  const groups = groupsClient(addr, token);

  // 0. Start clean, so the example can be run again and again.
  const listed = await call(groups, 'GetConversationGroupList', {});
  if (listed.group_names.includes(GROUP)) {
    await call(groups, 'DeleteConversationGroup', { group_name: GROUP });
    console.log(`0. deleted '${GROUP}' left over from an earlier run`);
  }

  // 1. A group sorted by hand: conversations join at the end.
  const created = await call(groups, 'CreateConversationGroup', {
    group_name: GROUP,
    conversation_ids: ['C2Cann', 'C2Cbob', 'C2Ccid', 'GROUPteam'],
    sort_mode: 'GROUP_SORT_MODE_MANUAL',
  });
  console.log(`1. created '${GROUP}' (${created.group.sort_mode}), id ${created.group.group_id}, revision ${created.revision}`);
  check.equal('create: sort mode', created.group.sort_mode, 'GROUP_SORT_MODE_MANUAL');
  check.equal('create: order', await groupListing(groups, 100), ['C2Cann', 'C2Cbob', 'C2Ccid', 'GROUPteam']);

  // 2. Move two conversations to the start, in the order given, in one revision.
  let moved = await call(groups, 'MoveConversationsInGroup', {
    group_name: GROUP,
    conversation_ids: ['GROUPteam', 'C2Ccid'],
    to_start: true,
  });
  console.log(`2. moved ${JSON.stringify(moved.success_conversation_ids)} to the start (revision ${moved.revision})`);
  check.equal('move: order', await groupListing(groups, 2), ['GROUPteam', 'C2Ccid', 'C2Cann', 'C2Cbob']);

  // 3. ... and one after another member; an id not in the group fails on its own.
  moved = await call(groups, 'MoveConversationsInGroup', {
    group_name: GROUP,
    conversation_ids: ['C2Cbob', 'C2Cnobody'],
    after_conversation_id: 'GROUPteam',
  });
  const failed = moved.failed.map((f) => [f.conversation_id, f.code]);
  console.log(`3. moved ${JSON.stringify(moved.success_conversation_ids)} after GROUPteam; failed: ${JSON.stringify(failed)}`);
  check.equal('move after: failed', failed, [['C2Cnobody', 'CONVERSATION_RESULT_CODE_NOT_IN_GROUP']]);
  check.equal('move after: order', await groupListing(groups, 3), ['GROUPteam', 'C2Cbob', 'C2Ccid', 'C2Cann']);

  // 4. Pin one in this group only: listed first in every sort mode.
  const pinned = await call(groups, 'PinConversationsInGroup', { group_name: GROUP, conversation_ids: ['C2Cann'] });
  console.log(`4. pinned in the group: ${JSON.stringify(pinned.pinned_conversation_ids)} (revision ${pinned.revision})`);
  check.equal('pin: pins', pinned.pinned_conversation_ids, ['C2Cann']);
  check.equal('pin: order', await groupListing(groups, 1), ['C2Cann', 'GROUPteam', 'C2Cbob', 'C2Ccid']);

  // 5. Alphabetical (show_name byte-wise, then id).
  const sorted = await call(groups, 'SetConversationGroupSortMode', {
    group_name: GROUP,
    sort_mode: 'GROUP_SORT_MODE_ALPHABETICAL',
  });
  console.log(`5. sort mode now ${sorted.group.sort_mode} (revision ${sorted.revision})`);
  check.equal('alphabetical: order (pins first, then ids: no show names here)', await groupListing(groups, 2), [
    'C2Cann',
    'C2Cbob',
    'C2Ccid',
    'GROUPteam',
  ]);

  // 6. A manual move in a group that is not MANUAL is refused, naming the field.
  const err = await expectError(check, 'move in an alphabetical group', () =>
    call(groups, 'MoveConversationsInGroup', { group_name: GROUP, conversation_ids: ['C2Cbob'], to_end: true }),
  );
  const info = errorInfo(err);
  console.log(`6. move in an alphabetical group -> ${describeError(err)}`);
  check.equal('not manual: code', err.code, grpc.status.FAILED_PRECONDITION);
  check.equal('not manual: reason', info?.reason, 'SORT_MODE_NOT_MANUAL');
  check.equal('not manual: field', info?.metadata?.field, 'sort_mode');

  // 7. Unpin; then clean up.
  const unpinned = await call(groups, 'UnpinConversationsInGroup', { group_name: GROUP, conversation_ids: ['C2Cann'] });
  check.equal('unpin: pins', unpinned.pinned_conversation_ids, []);
  await call(groups, 'DeleteConversationGroup', { group_name: GROUP });
  console.log('7. unpinned and deleted the group');
  check.done();
});
