// A smart group: a group whose members are the conversations its rule selects.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node) \
//       node smart-groups.js
//
// Register two conversations, one carrying mark 42; create the smart group
// "Mark 42" (rule: mark_type 42) with no explicit members and see it hold the
// marked one; mark the other and see it join; show that a member by rule
// cannot be removed explicitly (IN_GROUP_BY_RULE) and that the rule's
// exclude_ids takes it out instead; then clean up. Exits 1 on the first
// unexpected answer.
import { Check, call, conversationsClient, groupsClient, run, settings } from './common.js';

const GROUP = 'Mark 42';
const MARK = 42;
const FIRST = 'C2Csmart-1';
const SECOND = 'C2Csmart-2';

async function members(groups, name) {
  const page = await call(groups, 'GetConversationList', { filter: { group_name: name } });
  return page.conversations.map((c) => c.conversation_id).sort();
}

run(async () => {
  const { addr, token } = settings();
  const check = new Check('node smart groups');
  const groups = groupsClient(addr, token);
  const conversations = conversationsClient(addr, token);

  // 0. Start clean, so the example can be run again and again.
  const listed = await call(groups, 'GetConversationGroupList', {});
  if (listed.group_names.includes(GROUP)) {
    await call(groups, 'DeleteConversationGroup', { group_name: GROUP });
  }
  await call(conversations, 'UpsertConversations', {
    conversations: [
      { conversation_id: FIRST, mark_list: { values: [MARK] } },
      { conversation_id: SECOND, mark_list: { values: [] } },
    ],
  });
  console.log(`1. registered ${FIRST} (mark ${MARK}) and ${SECOND} (no mark)`);

  // 2. The smart group: a rule instead of a list of conversations.
  const rule = { mark_type: MARK };
  const created = await call(groups, 'CreateConversationGroup', { group_name: GROUP, rule });
  console.log(`2. created '${GROUP}' (${created.group.group_id}) with rule mark_type=${MARK}: ${created.group.conversation_count} member(s) at revision ${created.revision}`);
  check.equal('create: members by rule', await members(groups, GROUP), [FIRST]);
  check.equal('create: the rule is shown', created.group.rule.mark_type, MARK);

  // 3. Marking the second conversation makes it a member in the same
  //    revision (a watcher gets ConversationsAddedToGroup, reason RULE).
  const marked = await call(conversations, 'UpsertConversations', {
    conversations: [{ conversation_id: SECOND, add_marks: [MARK] }],
  });
  console.log(`3. marked ${SECOND} at revision ${marked.revision}: members ${JSON.stringify(await members(groups, GROUP))}`);
  check.equal('mark: joined by rule', await members(groups, GROUP), [FIRST, SECOND]);

  // 4. A member by rule is not removed by DeleteConversationsFromGroup...
  const removed = await call(groups, 'DeleteConversationsFromGroup', { group_name: GROUP, conversation_ids: [SECOND] });
  console.log(`4. explicit removal of ${SECOND}: ${removed.failed[0]?.code}`);
  check.equal('remove: refused item', removed.failed[0]?.code, 'CONVERSATION_RESULT_CODE_IN_GROUP_BY_RULE');

  // 5. ...but by the rule: exclude it.
  const changed = await call(groups, 'SetConversationGroupRule', {
    group_id: created.group.group_id,
    rule: { ...rule, exclude_ids: [SECOND] },
  });
  console.log(`5. rule now excludes ${SECOND}: ${changed.group.conversation_count} member(s) at revision ${changed.revision}`);
  check.equal('exclude: left', await members(groups, GROUP), [FIRST]);

  // 6. Clean up: the group, then the two conversations.
  await call(groups, 'DeleteConversationGroup', { group_id: created.group.group_id });
  await call(conversations, 'DeleteConversations', { conversation_ids: [FIRST, SECOND] });
  console.log('6. deleted the group and the two conversations');
  check.done();
});
