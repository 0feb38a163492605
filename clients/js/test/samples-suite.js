// Runs the Tencent documentation samples in test/samples/ (conversation
// groups, and the conversation list they lead to) against a real
// server and checks what they did. Runs in Node (test/run.js) and in
// headless Chromium (test/page-main.js, bundled by scripts/bundle-test-page.js).
//
// A sample is a module that creates its own chat and calls the SDK the way
// the documentation does, with `promise.then(...).catch(imError =>
// console.warn(...))` and no way for a caller to await it. So the suite:
//   - gives every sample chat a `log` option, which counts the calls in
//     flight: a sample is done when it has no call in flight, also after its
//     `then` callbacks had a turn (they may start new calls);
//   - records console.log and console.warn while samples run: a sample that
//     fails shows up as its console.warn line;
//   - checks the resulting state through a chat of its own.
//
// runSamples({ url, token }) resolves to { checks, lines } or throws the
// first mismatch.
import TencentCloudChat from 'convgroups-chat';

const SAMPLES = {
  onGroupList: () => import('./samples/on-conversation-group-list-updated.js'),
  onInGroup: () => import('./samples/on-conversation-in-group-updated.js'),
  create: () => import('./samples/create-conversation-group.js'),
  list: () => import('./samples/get-conversation-group-list.js'),
  add: () => import('./samples/add-conversations-to-group.js'),
  removeFrom: () => import('./samples/delete-conversations-from-group.js'),
  byGroup: () => import('./samples/get-conversation-list-by-group.js'),
  all: () => import('./samples/get-conversation-list.js'),
  byType: () => import('./samples/get-conversation-list-by-type.js'),
  rename: () => import('./samples/rename-conversation-group.js'),
  remove: () => import('./samples/delete-conversation-group.js'),
};

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const WAIT_MS = 15000;

async function until(what, condition) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function runSamples({ url, token }) {
  const lines = [];
  let checks = 0;
  const check = (what, ok, detail = '') => {
    if (!ok) throw new Error(`${what}: ${detail}`);
    checks += 1;
  };

  // Calls in flight and stream state of every sample chat.
  const chats = new Set();
  const emitted = [];
  let inFlight = 0;
  let started = 0;
  const liveChats = new Set();
  globalThis.CONVGROUPS_SAMPLE_OPTIONS = {
    url,
    token,
    log(entry) {
      if (entry.event === 'create') chats.add(entry.chat);
      if (entry.event === 'call') (inFlight += 1), (started += 1);
      if (entry.event === 'result') inFlight -= 1;
      if (entry.event === 'watch' && entry.state === 'live') liveChats.add(entry.chat);
      if (entry.event === 'emit') emitted.push({ chat: entry.chat, name: entry.name, listeners: entry.listeners });
    },
  };

  // console.log / console.warn of the samples.
  const logged = [];
  const warned = [];
  const original = { log: console.log, warn: console.warn };
  console.log = (...args) => logged.push(args);
  console.warn = (...args) => warned.push(args);
  // Samples without a .catch: a rejection would only show as unhandled.
  const unhandled = [];
  const onBrowserRejection = (event) => unhandled.push(event.reason);
  const onNodeRejection = (reason) => unhandled.push(reason);
  globalThis.addEventListener?.('unhandledrejection', onBrowserRejection);
  globalThis.process?.on?.('unhandledRejection', onNodeRejection);

  // Runs one sample and waits until its calls, and the calls its callbacks
  // make, have settled.
  async function run(name) {
    const before = started;
    await SAMPLES[name]();
    for (let quiet = 0; quiet < 3; ) {
      await tick();
      quiet = inFlight === 0 ? quiet + 1 : 0;
    }
    const warnings = warned.splice(0);
    for (const reason of unhandled.splice(0)) warnings.push(['unhandled rejection', reason]);
    lines.push(`sample ${name}: ${started - before} call(s)${warnings.length ? `, console.warn ${warnings.map((w) => `${w[0]} ${w[1]?.code}`).join('; ')}` : ''}`);
    return warnings;
  }

  const checker = TencentCloudChat.create({ url, token });
  const groups = async () => (await checker.getConversationGroupList()).data;
  const members = async (groupName) =>
    (await checker.getConversationList({ groupName })).data.conversationList.map((c) => c.conversationID).sort();
  const reset = async () => {
    for (const name of await groups()) await checker.deleteConversationGroup(name);
  };

  try {
    await reset();

    // The event samples first: they listen while the others change things.
    await run('onGroupList');
    await run('onInGroup');
    await until('the event samples’ watch streams to be live', () => liveChats.size === 2);
    const [groupListChat, inGroupChat] = [...chats];

    // The page's samples in the page's order. Each one names the groups it
    // works on ('Suppliers', 'Suppliers_old', 'Suppliers_new'); the checker
    // makes those exist first where a sample expects them.
    let warnings = await run('create');
    check('create: no console.warn', warnings.length === 0, JSON.stringify(warnings));
    check('create: Suppliers holds GROUPtest and C2Cexample', JSON.stringify(await members('Suppliers')) === '["C2Cexample","GROUPtest"]');
    await until('CONVERSATION_GROUP_LIST_UPDATED logged by the event sample', () =>
      logged.some((args) => JSON.stringify(args[0]) === '["Suppliers"]'),
    );
    check('event sample logged the group list', true);

    warnings = await run('remove');
    check('delete: no console.warn', warnings.length === 0, JSON.stringify(warnings));
    check('delete: no group is left', JSON.stringify(await groups()) === '[]');

    await checker.createConversationGroup({ groupName: 'Suppliers_old', conversationIDList: ['C2Cbob'] });
    warnings = await run('rename');
    check('rename: no console.warn', warnings.length === 0, JSON.stringify(warnings));
    check('rename: Suppliers_old is now Suppliers_new', JSON.stringify(await groups()) === '["Suppliers_new"]');
    check('rename: members kept', JSON.stringify(await members('Suppliers_new')) === '["C2Cbob"]');

    // These two samples have no .catch: a failure shows as an unhandled rejection.
    warnings = await run('list');
    check('getConversationGroupList: no failure', warnings.length === 0, JSON.stringify(warnings));
    await checker.createConversationGroup({ groupName: 'Suppliers', conversationIDList: ['C2Cexample'] });
    warnings = await run('byGroup');
    check('getConversationList({groupName}): no failure', warnings.length === 0, JSON.stringify(warnings));

    // The add sample adds to Suppliers_new, which holds C2Cbob.
    const inGroupBefore = emitted.filter((e) => e.chat === inGroupChat && e.name === TencentCloudChat.EVENT.CONVERSATION_IN_GROUP_UPDATED).length;
    warnings = await run('add');
    check('add: no console.warn', warnings.length === 0, JSON.stringify(warnings));
    check('add: Suppliers_new holds all three', JSON.stringify(await members('Suppliers_new')) === '["C2Cbob","C2Cexample","GROUPtest"]');
    await until('CONVERSATION_IN_GROUP_UPDATED delivered to the event sample’s listener', () =>
      emitted.filter((e) => e.chat === inGroupChat && e.name === TencentCloudChat.EVENT.CONVERSATION_IN_GROUP_UPDATED && e.listeners === 1).length > inGroupBefore,
    );
    check('in-group event reached the sample’s listener', true);

    warnings = await run('removeFrom');
    check('deleteConversationsFromGroup: no console.warn', warnings.length === 0, JSON.stringify(warnings));
    check('deleteConversationsFromGroup: Suppliers_new holds C2Cbob', JSON.stringify(await members('Suppliers_new')) === '["C2Cbob"]');

    // The "Get Conversations" page's samples.
    warnings = await run('all');
    check('getConversationList(): no console.warn', warnings.length === 0, JSON.stringify(warnings));
    warnings = await run('byType');
    check('getConversationList({type}): no failure', warnings.length === 0, JSON.stringify(warnings));

    const current = JSON.stringify(await groups());
    check('two groups at the end', current === '["Suppliers_new","Suppliers"]', current);
    await until('the event sample logged the current list', () => JSON.stringify(logged[logged.length - 1]?.[0]) === current);
    check('event sample followed every change', true);
    lines.push(`event sample logged: ${logged.map((args) => JSON.stringify(args[0])).join(' ')}`);
    check('group-list events of the sample chat', emitted.some((e) => e.chat === groupListChat && e.listeners === 1));
    await reset();
  } finally {
    console.log = original.log;
    console.warn = original.warn;
    globalThis.removeEventListener?.('unhandledrejection', onBrowserRejection);
    globalThis.process?.off?.('unhandledRejection', onNodeRejection);
    for (const chat of chats) await chat.destroy();
    await checker.destroy();
  }
  return { checks, lines };
}
