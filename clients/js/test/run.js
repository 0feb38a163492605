// The tests of convgroups-chat, against the real server (a process started
// here on 127.0.0.1:0 with a temporary data directory; see harness.js):
//
//   samples in Node        Tencent's documentation samples (test/samples/), as written
//   samples in Chromium    the same, bundled into a page, in headless Chromium
//   error codes            every Tencent code (51006, 51008-51012) and our reasons
//   registry calls         pin, mark, custom data, unread totals, profile, delete
//   events in a second chat  Tencent events, the native listener form, on/off
//   restart                the stream across SIGTERM and kill -9 + restart: nothing missed or repeated
//   compacted              REVISION_COMPACTED: a fresh list and CONVERSATION_GROUP_LIST_UPDATED
//   token refresh          getToken: at the start, after expiry, after UNAUTHENTICATED
//
//   npm run build && npm test        (CONVGROUPS_BIN=path, CHROMIUM=path, ONLY=name)
//
// Prints one line per test and exits 1 if any failed.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import TencentCloudChat from 'convgroups-chat';
import { runSamples } from './samples-suite.js';
import { cleanup, startServer, token } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { EVENT, TYPES } = TencentCloudChat;
const WAIT_MS = 15000;

class Check {
  constructor() {
    this.count = 0;
  }
  ok(what, condition, detail = '') {
    if (!condition) throw new Error(`${what}${detail ? `: ${detail}` : ''}`);
    this.count += 1;
  }
  equal(what, actual, expected) {
    const a = JSON.stringify(actual, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
    const e = JSON.stringify(expected, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
    this.ok(what, a === e, `got ${a}, want ${e}`);
  }
  // Awaits a promise that must reject; returns the error.
  async rejects(what, promise, code) {
    try {
      await promise;
    } catch (err) {
      this.equal(`${what}: code`, err.code, code);
      this.ok(`${what}: message`, typeof err.message === 'string' && err.message.length > 0);
      return err;
    }
    throw new Error(`${what}: resolved, want a rejection with code ${code}`);
  }
}

async function until(what, condition, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ids = (list) => list.map((c) => c.conversationID);

// --------------------------------------------------------------------------

async function samplesInNode(server) {
  const { checks, lines } = await runSamples({ url: server.url, token: token(server, 'samples-node') });
  for (const line of lines) console.log(`    ${line}`);
  return checks;
}

async function samplesInChromium(server) {
  const { chromium } = await import('playwright-core');
  const dir = path.join(here, 'page');
  const TYPES_ = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };
  const site = createServer(async (req, res) => {
    const file = path.join(dir, path.normalize(new URL(req.url, 'http://x').pathname));
    if (!file.startsWith(dir)) return res.writeHead(403).end();
    try {
      const body = await readFile(file.endsWith(path.sep) ? path.join(file, 'index.html') : file);
      res.writeHead(200, { 'content-type': TYPES_[path.extname(file)] ?? 'text/html' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false, // --no-sandbox: CI runs as root
    args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    const query = new URLSearchParams({ url: server.url, token: token(server, 'samples-chromium') });
    await page.goto(`http://127.0.0.1:${site.address().port}/index.html?${query}`);
    await page.waitForFunction(() => window.samplesResult, null, { timeout: 60000 });
    const result = await page.evaluate(() => window.samplesResult);
    if (!result.ok) throw new Error(`in Chromium ${browser.version()}: ${result.error}`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    console.log(`    Chromium ${browser.version()}`);
    for (const line of result.lines) console.log(`    ${line}`);
    return result.checks;
  } finally {
    await browser.close();
    site.close();
  }
}

async function errorCodes(server) {
  const check = new Check();
  const chat = TencentCloudChat.create({ url: server.url, token: token(server, 'errors') });
  try {
    // Tencent codes of whole calls, from the server's ErrorInfo tencent_code.
    await check.rejects('empty conversation list -> 51006', chat.createConversationGroup({ groupName: 'A', conversationIDList: [] }), 51006);
    await check.rejects('too many ids -> 51006', chat.addConversationsToGroup({ groupName: 'A', conversationIDList: Array.from({ length: 101 }, (_, i) => `C2Cu${i}`) }), 51006);
    await check.rejects('delete a group that does not exist -> 51009', chat.deleteConversationGroup('Nope'), 51009);
    await check.rejects('rename a group that does not exist -> 51009', chat.renameConversationGroup({ oldName: 'Nope', newName: 'X' }), 51009);
    await check.rejects('list a group that does not exist -> 51009', chat.getConversationList({ groupName: 'Nope' }), 51009);
    await check.rejects('empty group name -> 51011', chat.createConversationGroup({ groupName: '', conversationIDList: ['C2Ca'] }), 51011);
    const long = await check.rejects('33-byte group name -> 51011', chat.createConversationGroup({ groupName: 'x'.repeat(33), conversationIDList: ['C2Ca'] }), 51011);
    check.equal('51011 carries the ErrorInfo', [long.reason, long.grpcCode, long.metadata.max_bytes], ['INVALID_GROUP_NAME', 'INVALID_ARGUMENT', '32']);
    for (let i = 0; i < 5; i++) await chat.createConversationGroup({ groupName: `G${i}`, conversationIDList: ['C2Ca'] });
    await check.rejects('one group more than max_groups -> 51010', chat.createConversationGroup({ groupName: 'G5', conversationIDList: ['C2Ca'] }), 51010);
    // Our reasons where Tencent has no code.
    const taken = await check.rejects('a name taken -> GROUP_ALREADY_EXISTS', chat.createConversationGroup({ groupName: 'G0', conversationIDList: ['C2Ca'] }), 'GROUP_ALREADY_EXISTS');
    check.equal('GROUP_ALREADY_EXISTS is ALREADY_EXISTS', taken.grpcCode, 'ALREADY_EXISTS');
    await check.rejects('rename onto a taken name -> GROUP_ALREADY_EXISTS', chat.renameConversationGroup({ oldName: 'G0', newName: 'G1' }), 'GROUP_ALREADY_EXISTS');
    const rev = chat.getRevision();
    const mismatch = await check.rejects('expectedRevision behind -> REVISION_MISMATCH', chat.deleteConversationGroup({ groupName: 'G0', expectedRevision: rev - 1n }), 'REVISION_MISMATCH');
    check.equal('REVISION_MISMATCH names the current revision', mismatch.metadata.current_revision, String(rev));
    await chat.deleteConversationGroup({ groupName: 'G0', expectedRevision: rev });
    check.ok('expectedRevision equal -> applied', !(await chat.getConversationGroupList()).data.includes('G0'));

    // Per item: failureConversationIDList [{conversationID, code, message}].
    const add = await chat.addConversationsToGroup({
      groupName: 'G1',
      conversationIDList: ['C2Ca', 'C2Cb', 'c2c_b', 'bogus', 'C2Cc', 'C2Cd', 'C2Ce', 'C2Cf'],
    });
    check.equal('add: code 0', add.code, 0);
    check.equal('add: successConversationIDList', add.data.successConversationIDList, ['C2Cb', 'C2Cc', 'C2Cd', 'C2Ce']);
    check.equal(
      'add: failureConversationIDList codes (51008 when full)',
      add.data.failureConversationIDList.map((f) => [f.conversationID, f.code]),
      [['C2Ca', 'ALREADY_IN_GROUP'], ['c2c_b', 'DUPLICATE_IN_REQUEST'], ['bogus', 'INVALID_CONVERSATION_ID'], ['C2Cf', 51008]],
    );
    check.ok('failures have messages', add.data.failureConversationIDList.every((f) => f.message));
    const removed = await chat.deleteConversationsFromGroup({ groupName: 'G1', conversationIDList: ['C2Ca', 'C2Cz'] });
    check.equal('remove: NOT_IN_GROUP', removed.data.failureConversationIDList.map((f) => f.code), ['NOT_IN_GROUP']);
    await chat.pinConversation({ conversationID: 'C2Cp1', isPinned: true });
    await chat.pinConversation({ conversationID: 'C2Cp2', isPinned: true });
    await check.rejects('pin one more than max_pinned -> 51012', chat.pinConversation({ conversationID: 'C2Cp3', isPinned: true }), 51012);
    const big = await chat.setConversationCustomData({ conversationIDList: ['C2Ca'], customData: 'x'.repeat(257) });
    check.equal('custom data too large -> CUSTOM_DATA_TOO_LARGE', big.data.failureConversationIDList.map((f) => f.code), ['CUSTOM_DATA_TOO_LARGE']);
    await check.rejects('delete a conversation that does not exist -> CONVERSATION_NOT_FOUND', chat.deleteConversation('C2Cnobody'), 'CONVERSATION_NOT_FOUND');

    // Authentication and the chat's own errors.
    const bad = TencentCloudChat.create({ url: server.url, token: 'not-a-token' });
    await check.rejects('a bad token -> UNAUTHENTICATED', bad.getConversationGroupList(), 'UNAUTHENTICATED');
    const other = TencentCloudChat.create({ url: server.url, token: token(server, 'errors'), user: 'someone-else' });
    await check.rejects('a user token for another user -> PERMISSION_DENIED', other.getConversationGroupList(), 'PERMISSION_DENIED');
    const refused = TencentCloudChat.create({ url: server.url, token: 'not-a-token', reconnectDelayMs: { min: 50, max: 50 } });
    const streamErrors = [];
    refused.on(EVENT.ERROR, (event) => streamErrors.push(event.data.code));
    await check.rejects('login with a bad token -> UNAUTHENTICATED', refused.login(), 'UNAUTHENTICATED');
    check.equal('EVENT.ERROR for the stream', streamErrors[0], 'UNAUTHENTICATED');
    await refused.destroy();
    const gone = TencentCloudChat.create({ url: server.url, token: token(server, 'errors') });
    await gone.destroy();
    await check.rejects('a destroyed chat -> DESTROYED', gone.getConversationGroupList(), 'DESTROYED');
    try {
      TencentCloudChat.create({ url: server.url });
      check.ok('create without a token throws', false);
    } catch (err) {
      check.equal('create without a token throws INVALID_ARGUMENT', err.code, 'INVALID_ARGUMENT');
    }
  } finally {
    await chat.destroy();
  }
  return check.count;
}

async function registryCalls(server) {
  const check = new Check();
  const chat = TencentCloudChat.create({ url: server.url, token: token(server, 'registry') });
  try {
    await chat.upsertConversations([
      { conversationId: 'C2Cbob', showName: 'Bob', unreadCount: 3, orderKey: 30n },
      { conversationId: 'GROUPteam', showName: 'Team', unreadCount: 5, orderKey: 20n },
      { conversationId: 'C2Cmuted', unreadCount: 7, orderKey: 10n, recvOpt: 2 /* NOT_RECEIVE */ },
    ]);
    await chat.createConversationGroup({ groupName: 'Work', conversationIDList: ['C2Cbob', 'GROUPteam', 'C2Conlygrouped'] });
    let all = (await chat.getConversationList()).data;
    check.equal('getConversationList(): order by orderKey', ids(all.conversationList), ['C2Cbob', 'GROUPteam', 'C2Cmuted', 'C2Conlygrouped']);
    check.equal('isSyncCompleted', all.isSyncCompleted, true);
    const bob = all.conversationList[0];
    check.equal('Conversation shape', [bob.type, bob.userProfile.nick, bob.unreadCount, bob.conversationGroupList, bob.messageRemindType], ['C2C', 'Bob', 3, ['Work'], TYPES.MSG_REMIND_ACPT_AND_NOTE]);
    check.equal('group conversation', [all.conversationList[1].type, all.conversationList[1].groupProfile.groupID], ['GROUP', 'team']);
    check.equal('muted: Discard', all.conversationList[2].messageRemindType, TYPES.MSG_REMIND_DISCARD);

    await chat.pinConversation({ conversationID: 'C2Cmuted', isPinned: true });
    all = (await chat.getConversationList()).data.conversationList;
    check.equal('pinConversation: pinned first', [all[0].conversationID, all[0].isPinned], ['C2Cmuted', true]);
    await chat.pinConversation({ conversationID: 'C2Cmuted', isPinned: false });

    let res = await chat.markConversation({ conversationIDList: ['C2Cbob', 'GROUPteam'], markType: TYPES.CONV_MARK_TYPE_STAR, enableMark: true });
    check.equal('markConversation: success list', res.data.successConversationIDList, ['C2Cbob', 'GROUPteam']);
    await chat.markConversation({ conversationIDList: ['C2Cbob'], markType: TYPES.CONV_MARK_TYPE_FOLD, enableMark: true });
    await chat.markConversation({ conversationIDList: ['GROUPteam'], markType: TYPES.CONV_MARK_TYPE_STAR, enableMark: false });
    const starred = (await chat.getConversationList({ markType: TYPES.CONV_MARK_TYPE_STAR })).data.conversationList;
    check.equal('getConversationList({markType})', ids(starred), ['C2Cbob']);
    check.equal('markList kept both marks', [...starred[0].markList].sort(), [1, 4]);
    // Marks set at the same moment (as by two devices) are all kept: the
    // server adds each in one step.
    await Promise.all([0x10, 0x20, 0x40, 0x80].map((markType) => chat.markConversation({ conversationIDList: ['C2Cbob'], markType, enableMark: true })));
    const bobMarks = (await chat.getConversationProfile('C2Cbob')).data.conversation.markList;
    check.equal('concurrent markConversation calls all kept', [...bobMarks].sort((a, b) => a - b), [1, 4, 16, 32, 64, 128]);
    await Promise.all([0x10, 0x20, 0x40, 0x80].map((markType) => chat.markConversation({ conversationIDList: ['C2Cbob'], markType, enableMark: false })));

    res = await chat.setConversationCustomData({ conversationIDList: ['C2Cbob'], customData: 'héllo' });
    check.equal('setConversationCustomData', res.data.successConversationIDList, ['C2Cbob']);
    const profile = (await chat.getConversationProfile('c2c_bob')).data.conversation;
    check.equal('getConversationProfile (native id form)', [profile.conversationID, profile.customData], ['C2Cbob', 'héllo']);

    check.equal('getUnreadMessageCountByFilter() (muted excluded)', (await chat.getUnreadMessageCountByFilter()).data, 8);
    check.equal('unread count of a group', (await chat.getUnreadMessageCountByFilter({ groupName: 'Work' })).data, 8);
    // Tencent's getTotalUnreadMessageCount answers at once, from what the
    // chat keeps: 0 before the chat is ready, the total after SDK_READY, and
    // every later change by any device through the watch stream.
    const device = TencentCloudChat.create({ url: server.url, token: token(server, 'registry') });
    try {
      const readyTotals = [];
      const updates = [];
      device.on(EVENT.SDK_READY, () => readyTotals.push(device.getTotalUnreadMessageCount()));
      device.on(EVENT.TOTAL_UNREAD_MESSAGE_COUNT_UPDATED, (event) => updates.push(event.data));
      check.equal('getTotalUnreadMessageCount() before SDK_READY: 0, a number', device.getTotalUnreadMessageCount(), 0);
      check.equal('isReady() before SDK_READY', device.isReady(), false);
      await until('SDK_READY', () => readyTotals.length === 1);
      check.equal('getTotalUnreadMessageCount() at SDK_READY (muted excluded)', readyTotals, [8]);
      check.equal('isReady() after SDK_READY', device.isReady(), true);
      await chat.upsertConversations([{ conversationId: 'C2Cbob', unreadCount: 10 }]);
      await until('the total to follow a change made by another chat', () => device.getTotalUnreadMessageCount() === 15);
      check.equal('TOTAL_UNREAD_MESSAGE_COUNT_UPDATED for that change', updates, [15]);
      await chat.upsertConversations([{ conversationId: 'C2Cmuted', unreadCount: 70 }]);
      await chat.upsertConversations([{ conversationId: 'GROUPteam', unreadCount: 0 }]);
      await until('the total after two more changes', () => device.getTotalUnreadMessageCount() === 10);
      check.equal('a muted conversation does not move the total', updates, [15, 10]);
      await chat.upsertConversations([
        { conversationId: 'C2Cbob', unreadCount: 3 },
        { conversationId: 'GROUPteam', unreadCount: 5 },
      ]);
      await until('the total back at 8', () => device.getTotalUnreadMessageCount() === 8);
    } finally {
      await device.destroy();
    }
    check.equal('getConversationList({type: GROUP})', ids((await chat.getConversationList({ type: TYPES.CONV_GROUP })).data.conversationList), ['GROUPteam']);
    check.equal('getConversationList({hasUnreadCount: true})', ids((await chat.getConversationList({ hasUnreadCount: true })).data.conversationList), ['C2Cbob', 'GROUPteam', 'C2Cmuted']);
    check.equal('getConversationList([ids])', ids((await chat.getConversationList(['GROUPteam', 'C2Cmuted'])).data.conversationList), ['GROUPteam', 'C2Cmuted']);
    check.equal('getConversationList({groupName: ""}): in no group', ids((await chat.getConversationList({ groupName: '' })).data.conversationList), ['C2Cmuted']);

    const del = await chat.deleteConversation({ conversationIDList: ['C2Cbob'] });
    check.equal('deleteConversation', del.data.conversationIDList, ['C2Cbob']);
    check.equal('deleted conversation left its group', ids((await chat.getConversationList({ groupName: 'Work' })).data.conversationList), ['GROUPteam', 'C2Conlygrouped']);
    check.equal('reorder (ours)', (await chat.createConversationGroup({ groupName: 'Home', conversationIDList: ['C2Cmum'] })).code, 0);
    check.equal('reorderConversationGroups', (await chat.reorderConversationGroups(['Home', 'Work'])).data, ['Home', 'Work']);
  } finally {
    await chat.destroy();
  }
  return check.count;
}

// A second chat of the same user sees what the first one does.
async function eventsInSecondChat(server) {
  const check = new Check();
  const user = 'events';
  const writer = TencentCloudChat.create({ url: server.url, token: token(server, user) });
  const watchStates = [];
  const watcher = TencentCloudChat.create({
    url: server.url,
    token: token(server, user),
    log: (e) => e.event === 'watch' && watchStates.push(e.state),
  });
  const got = { groupList: [], inGroup: [], convList: [], native: [], ready: 0 };
  const onList = (event) => got.groupList.push(event.data);
  watcher.on(EVENT.SDK_READY, () => (got.ready += 1));
  watcher.on(EVENT.CONVERSATION_GROUP_LIST_UPDATED, onList);
  watcher.on(EVENT.CONVERSATION_IN_GROUP_UPDATED, (event) => got.inGroup.push([event.data.groupName, ids(event.data.conversationList)]));
  watcher.on(EVENT.CONVERSATION_LIST_UPDATED, (event) => got.convList.push(ids(event.data)));
  watcher.addConversationListener({
    onConversationGroupCreated: (name, list) => got.native.push(['created', name, ids(list)]),
    onConversationGroupDeleted: (name) => got.native.push(['deleted', name]),
    onConversationGroupNameChanged: (oldName, newName) => got.native.push(['renamed', oldName, newName]),
    onConversationsAddedToGroup: (name, list) => got.native.push(['added', name, ids(list)]),
    onConversationsDeletedFromGroup: (name, list, reason) => got.native.push(['removed', name, ids(list), reason]),
  });
  try {
    const login = await watcher.login();
    check.equal('login resolves once the stream is live', login.code, 0);
    await writer.createConversationGroup({ groupName: 'Suppliers', conversationIDList: ['GROUPtest', 'C2Cexample'] });
    await writer.addConversationsToGroup({ groupName: 'Suppliers', conversationIDList: ['C2Cbob'] });
    await writer.deleteConversationsFromGroup({ groupName: 'Suppliers', conversationIDList: ['GROUPtest'] });
    await writer.renameConversationGroup({ oldName: 'Suppliers', newName: 'Vendors' });
    await writer.createConversationGroup({ groupName: 'Family', conversationIDList: ['C2Cmum'] });
    await writer.deleteConversationGroup('Family');
    await until('the native listener to see all six changes', () => got.native.length === 6);
    check.equal('SDK_READY once', got.ready, 1);
    check.equal('CONVERSATION_GROUP_LIST_UPDATED: every list, in order', got.groupList, [['Suppliers'], ['Vendors'], ['Vendors', 'Family'], ['Vendors']]);
    check.equal('CONVERSATION_IN_GROUP_UPDATED: {groupName, conversationList}', got.inGroup, [
      ['Suppliers', ['C2Cbob', 'C2Cexample', 'GROUPtest']],
      ['Suppliers', ['C2Cbob', 'C2Cexample']],
    ]);
    check.equal('CONVERSATION_LIST_UPDATED after each change', got.convList.length, 6);
    // Each list is read after its change, so it may already hold a later one.
    check.ok('CONVERSATION_LIST_UPDATED: the list after the create', ['C2Cexample', 'GROUPtest'].every((id) => got.convList[0].includes(id)), JSON.stringify(got.convList[0]));
    await until('the last CONVERSATION_LIST_UPDATED', () => got.convList.length === 6);
    check.equal('CONVERSATION_LIST_UPDATED: the last one is the current list', got.convList[5], ids((await writer.getConversationList()).data.conversationList));
    check.equal('native listener form', got.native, [
      ['created', 'Suppliers', ['GROUPtest', 'C2Cexample']],
      ['added', 'Suppliers', ['C2Cbob']],
      ['removed', 'Suppliers', ['GROUPtest'], 'USER_REQUEST'],
      ['renamed', 'Suppliers', 'Vendors'],
      ['created', 'Family', ['C2Cmum']],
      ['deleted', 'Family'],
    ]);

    // The unread total follows registry changes.
    const totals = [];
    watcher.on(EVENT.TOTAL_UNREAD_MESSAGE_COUNT_UPDATED, (event) => totals.push(event.data));
    await writer.upsertConversations([{ conversationId: 'C2Cbob', unreadCount: 4 }]);
    await until('TOTAL_UNREAD_MESSAGE_COUNT_UPDATED', () => totals.length === 1);
    await writer.upsertConversations([{ conversationId: 'C2Cexample', unreadCount: 2 }]);
    await writer.upsertConversations([{ conversationId: 'C2Cexample', showName: 'Example' }]); // total unchanged
    await until('TOTAL_UNREAD_MESSAGE_COUNT_UPDATED', () => totals.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    check.equal('TOTAL_UNREAD_MESSAGE_COUNT_UPDATED: each new total', totals, [4, 6]);

    // off(): that listener no longer hears anything; the others do.
    watcher.off(EVENT.CONVERSATION_GROUP_LIST_UPDATED, onList);
    const before = got.groupList.length;
    await writer.createConversationGroup({ groupName: 'Later', conversationIDList: ['C2Cx'] });
    await until('the native listener to see the create', () => got.native.length === 7);
    check.equal('off: no more calls', got.groupList.length, before);

    // destroy(): the stream closes and nothing more is delivered.
    await watcher.destroy();
    check.equal('destroy closed the stream', watchStates[watchStates.length - 1], 'closed');
    const seen = got.native.length;
    await writer.deleteConversationGroup('Later');
    await new Promise((resolve) => setTimeout(resolve, 300));
    check.equal('destroy: no events after it', got.native.length, seen);
  } finally {
    await writer.destroy();
    await watcher.destroy();
  }
  return check.count;
}

// The watch stream across server restarts (SIGTERM, then kill -9) on the same
// data directory and port: the batches a watcher receives are exactly the
// writer's revisions, in order, none missed and none repeated.
async function restart(server) {
  const check = new Check();
  const user = 'restart';
  const writer = TencentCloudChat.create({ url: server.url, token: token(server, user) });
  const states = [];
  const watcher = TencentCloudChat.create({
    url: server.url,
    token: token(server, user),
    // Reconnects wait 2 s, so the writes right after a restart are made
    // while the watcher is away and must be replayed from the server's log.
    reconnectDelayMs: { min: 2000, max: 2000 },
    log: (e) => e.event === 'watch' && states.push(e.state),
  });
  const batches = [];
  const lists = [];
  watcher.on(EVENT.GROUP_EVENTS, (event) => batches.push(event.data.revision));
  watcher.on(EVENT.CONVERSATION_GROUP_LIST_UPDATED, (event) => lists.push(event.data));
  const written = [];
  const write = async (n, tag) => {
    for (let i = 0; i < n; i++) {
      const res = await writer.createConversationGroup({ groupName: `${tag}${i}`, conversationIDList: ['C2Ca'] });
      written.push(res.data.revision);
      await writer.deleteConversationGroup(`${tag}${i}`).then((r) => written.push(r.data.revision));
    }
  };
  try {
    await watcher.login();
    await write(3, 'before');
    await until('the watcher to catch up before the restart', () => batches.length === written.length);
    for (const how of ['SIGTERM', 'SIGKILL']) {
      const drops = states.filter((s) => s === 'retry').length;
      const mark = states.length;
      await server.restart(how);
      await write(3, how);
      check.ok(`after ${how}: the writes were made while the watcher was away`, !states.slice(mark).includes('live'), states.slice(mark).join(' '));
      await until(`the watcher to reconnect after ${how}`, () => states.filter((s) => s === 'retry').length > drops && states[states.length - 1] === 'live');
      await write(2, `${how}-live`);
      await until(`every batch after ${how}`, () => batches.length >= written.length);
      await new Promise((resolve) => setTimeout(resolve, 200)); // a repeat would show up here
      check.equal(`after ${how}: the batches are the writes, in order, once each`, batches, written);
    }
    check.equal('the group list events followed', lists.length, written.length);
    check.equal('the last list is empty', lists[lists.length - 1], []);
  } finally {
    await writer.destroy();
    await watcher.destroy();
  }
  return check.count;
}

// A chat resuming from a revision the server has trimmed from its log.
async function compacted() {
  const check = new Check();
  const server = await startServer(['--retain-for', '0s', '--retain-events-per-user', '0', '--compact-interval', '100ms']);
  try {
    const writer = TencentCloudChat.create({ url: server.url, token: token(server, 'compact') });
    const first = await writer.createConversationGroup({ groupName: 'Old', conversationIDList: ['C2Ca'] });
    await writer.createConversationGroup({ groupName: 'Kept', conversationIDList: ['C2Cb'] });
    await writer.deleteConversationGroup('Old');
    // Wait until the log no longer has the first revision.
    await until('the server to trim its log', async () => {
      try {
        for await (const _ of writer.api.groups.watchGroupEvents({ startRevision: first.data.revision })) return false;
      } catch (err) {
        return String(err).includes('older than the oldest');
      }
      return false;
    });
    const watchErrors = [];
    const lists = [];
    const resumed = TencentCloudChat.create({
      url: server.url,
      token: token(server, 'compact'),
      resumeRevision: first.data.revision,
      log: (e) => e.event === 'watch' && e.error && watchErrors.push(e.error.reason),
    });
    resumed.on(EVENT.CONVERSATION_GROUP_LIST_UPDATED, (event) => lists.push(event.data));
    await until('a fresh list after REVISION_COMPACTED', () => lists.length === 1);
    check.equal('the stream said REVISION_COMPACTED', watchErrors, ['REVISION_COMPACTED']);
    check.equal('CONVERSATION_GROUP_LIST_UPDATED with the current list', lists[0], ['Kept']);
    await resumed.login();
    await writer.createConversationGroup({ groupName: 'New', conversationIDList: ['C2Cc'] });
    await until('live events after the fresh list', () => lists.length === 2);
    check.equal('then live events', lists[1], ['Kept', 'New']);
    await writer.destroy();
    await resumed.destroy();
  } finally {
    await server.stop();
  }
  return check.count;
}

async function tokenRefresh(server) {
  const check = new Check();
  const handed = [];
  // First a token the server refuses, then 1-second tokens.
  const getToken = async () => {
    const next = handed.length === 0 ? 'not-a-token' : token(server, 'refresh', { ttl: '1s' });
    handed.push(next);
    return next;
  };
  const chat = TencentCloudChat.create({ url: server.url, getToken });
  try {
    const first = await chat.createConversationGroup({ groupName: 'R', conversationIDList: ['C2Ca'] });
    check.equal('UNAUTHENTICATED -> getToken -> the call retried once and succeeded', [first.code, handed.length], [0, 2]);
    await chat.getConversationGroupList();
    check.equal('a valid token is reused', handed.length, 2);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const after = await chat.getConversationGroupList();
    check.equal('an expired token is replaced before the call', [after.data, handed.length], [['R'], 3]);
    // The watch stream gets its token from getToken too.
    const lists = [];
    chat.on(EVENT.CONVERSATION_GROUP_LIST_UPDATED, (event) => lists.push(event.data));
    await chat.login();
    await chat.deleteConversationGroup('R');
    await until('an event on a stream opened with a refreshed token', () => lists.length === 1);
    check.equal('event', lists[0], []);
  } finally {
    await chat.destroy();
  }
  return check.count;
}

// --------------------------------------------------------------------------

const TESTS = [
  ['samples in Node', samplesInNode],
  ['samples in headless Chromium', samplesInChromium],
  ['error codes', errorCodes],
  ['registry calls', registryCalls],
  ['events in a second chat', eventsInSecondChat],
  ['token refresh', tokenRefresh],
  ['compacted: fresh list', compacted],
  ['restart: SIGTERM and kill -9', restart], // last: it restarts the shared server
];

async function main() {
  const only = process.env.ONLY;
  const server = await startServer(['--max-groups', '5', '--max-conversations-per-group', '5', '--max-pinned', '2']);
  console.log(`server ${server.url} (data ${server.dataDir})`);
  let failed = 0;
  try {
    for (const [name, test] of TESTS) {
      if (only && !name.includes(only)) continue;
      const started = Date.now();
      try {
        const checks = await test(server);
        console.log(`--- PASS ${name} (${checks} checks, ${((Date.now() - started) / 1000).toFixed(1)}s)`);
      } catch (err) {
        failed += 1;
        console.log(`--- FAIL ${name}: ${err?.stack ?? err}`);
      }
    }
  } finally {
    await server.stop().catch(() => server.kill());
    if (failed) console.log(`--- server log (last lines)\n${server.output.split('\n').slice(-30).join('\n')}`);
    cleanup();
  }
  console.log(failed ? `convgroups-chat: ${failed} test(s) failed` : 'convgroups-chat: all tests passed');
  process.exit(failed ? 1 : 0);
}

main();
