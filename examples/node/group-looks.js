// How a group looks: UpdateConversationGroup, step by step, with checks.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-node-looks) \
//       node group-looks.js
//
// Create "Projects", give it an icon, a colour and client data (only the
// fields named in `update_mask` are written), fold it, see the look in the
// group list, send an update that changes nothing (the revision stays),
// clear the icon, and read the ErrorInfo of a mask path that names no
// field. Exits 1 on the first unexpected answer.
import { Check, call, describeError, errorInfo, expectError, groupsClient, grpc, run, settings } from './common.js';

const GROUP = 'Projects';

// UpdateConversationGroup of `paths` (the update mask) from `look`.
function update(groups, look, paths, extra = {}) {
  return call(groups, 'UpdateConversationGroup', { group_name: GROUP, look, update_mask: { paths }, ...extra });
}

function lookOf(g) {
  return `icon='${g.icon}' color=${g.color} collapsed=${g.collapsed} custom_data=${g.custom_data.toString('hex')}`;
}

run(async () => {
  const { addr, token } = settings();
  const check = new Check('node group looks');
  const groups = groupsClient(addr, token);

  // 0. Start clean, so the example can be run again and again.
  let listed = await call(groups, 'GetConversationGroupList', {});
  if (listed.group_names.includes(GROUP)) {
    await call(groups, 'DeleteConversationGroup', { group_name: GROUP });
    console.log(`0. deleted '${GROUP}' left over from an earlier run`);
  }

  // 1. A new group has no look.
  const created = await call(groups, 'CreateConversationGroup', { group_name: GROUP, conversation_ids: ['C2Cexample'] });
  console.log(`1. created '${GROUP}' (${created.group.group_id}): ${lookOf(created.group)}`);
  check.equal('create: no icon', created.group.icon, '');
  check.equal('create: no colour', created.group.color, 'GROUP_COLOR_UNSPECIFIED');

  // 2. Icon, colour and client data; `collapsed` is not in the mask, so its
  //    value in `look` is ignored.
  const look = { icon: '🚀', color: 'GROUP_COLOR_GREEN', collapsed: true, custom_data: Buffer.from([1, 2]) };
  const styled = await update(groups, look, ['icon', 'color', 'custom_data']);
  console.log(`2. updated at revision ${styled.revision}: ${lookOf(styled.group)}`);
  check.equal('update: icon', styled.group.icon, '🚀');
  check.equal('update: colour', styled.group.color, 'GROUP_COLOR_GREEN');
  check.equal('update: custom_data', [...styled.group.custom_data], [1, 2]);
  check.equal('update: collapsed untouched', styled.group.collapsed, false);
  check.ok('update: revision advanced', styled.revision > created.revision);

  // 3. Fold it: the other devices of the user see it folded too.
  const folded = await update(groups, { collapsed: true }, ['collapsed']);
  listed = await call(groups, 'GetConversationGroupList', {});
  const shown = listed.groups.find((g) => g.name === GROUP);
  console.log(`3. folded at revision ${folded.revision}; listed: ${lookOf(shown)}`);
  check.equal('list: collapsed', shown.collapsed, true);
  check.equal('list: icon kept', shown.icon, '🚀');
  check.equal('list: revision', listed.revision, folded.revision);

  // 4. The same values again change nothing: same revision, no event.
  const same = await update(groups, look, ['icon', 'color', 'collapsed', 'custom_data']);
  console.log(`4. the same look again -> revision ${same.revision}`);
  check.equal('no-op: revision kept', same.revision, folded.revision);

  // 5. A masked field left at its default is cleared.
  const cleared = await update(groups, {}, ['icon']);
  console.log(`5. icon cleared: ${lookOf(cleared.group)}`);
  check.equal('clear: icon', cleared.group.icon, '');
  check.equal('clear: colour kept', cleared.group.color, 'GROUP_COLOR_GREEN');

  // 6. A path that names no field is INVALID_ARGUMENT naming the path, and
  //    changes nothing.
  const err = await expectError(check, 'unknown path', () => update(groups, look, ['icon', 'title']));
  const info = errorInfo(err);
  console.log(`6. unknown mask path -> ${describeError(err)}`);
  check.equal('bad mask: code', err.code, grpc.status.INVALID_ARGUMENT);
  check.equal('bad mask: reason', info?.reason, 'INVALID_UPDATE_MASK');
  check.equal('bad mask: path', info?.metadata.path, 'title');
  listed = await call(groups, 'GetConversationGroupList', {});
  check.equal('bad mask: nothing changed', listed.revision, cleared.revision);

  await call(groups, 'DeleteConversationGroup', { group_name: GROUP });
  groups.close();
  check.done();
});
