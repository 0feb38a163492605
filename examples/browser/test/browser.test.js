// End-to-end test of the page in headless Chromium (Debian's chromium,
// driven by playwright-core): the page lists the groups, shows changes made
// by another client live (WatchGroupEvents over grpc-web), and shows the
// ErrorInfo of a failed call. Takes a screenshot.
//
//   CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=... \
//   [SCREENSHOT=path.png] [CHROMIUM=/usr/bin/chromium] node test/browser.test.js
//
// Needs `npm run build` first and a server started with
// `--cors-allow-origin '*'` (the page is served from another port; or set
// PAGE_PORT and allow http://127.0.0.1:$PAGE_PORT). Leaves the groups
// "Suppliers" and "Research" behind for you to look at; other groups of the
// user are not touched. Exits 1 on the first mismatch.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { chromium } from 'playwright-core';
import { ConversationGroupService } from '../src/gen/convgroups/v1/conversation_group_service_pb.js';
import { serveStatic } from '../serve.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const addr = process.env.CONVGROUPS_ADDR || '127.0.0.1:50051';
const token = process.env.CONVGROUPS_TOKEN;
const screenshot = path.resolve(process.env.SCREENSHOT || path.join(here, '../../../target/browser-screenshot.png'));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 15_000;

if (!token) {
  console.error('set CONVGROUPS_TOKEN');
  process.exit(2);
}

let checks = 0;
function check(what, ok, detail = '') {
  if (!ok) throw new Error(`${what} ${detail}`.trim());
  checks += 1;
}

// The "other client" that changes groups while the page watches. Connect's
// grpc-web transport works in Node too (it uses fetch).
const api = createClient(
  ConversationGroupService,
  createGrpcWebTransport({
    baseUrl: `http://${addr}`,
    interceptors: [(next) => (req) => (req.header.set('authorization', `Bearer ${token}`), next(req))],
  }),
);

async function main() {
  // Start from the seed state: a group "Suppliers" with two conversations
  // (other groups of the user are left alone).
  const before = await api.getConversationGroupList({});
  for (const name of ['Suppliers', 'R&D', 'Research']) {
    if (before.groupNames.includes(name)) await api.deleteConversationGroup({ groupName: name });
  }
  await api.createConversationGroup({ groupName: 'Suppliers', conversationIds: ['GROUPtest', 'C2Cexample'] });

  const site = await serveStatic(undefined, Number(process.env.PAGE_PORT || 0));
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    chromiumSandbox: false, // --no-sandbox: CI runs as root
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const pageErrors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 620 } });
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));

    const url = `${site.url}/?server=${encodeURIComponent(`http://${addr}`)}&token=${encodeURIComponent(token)}`;
    console.log(`page ${site.url}/ (server http://${addr}, Chromium ${browser.version()})`);
    await page.goto(url);

    const count = (name) => page.locator(`tr[data-group="${name}"] td.count`);
    const waitText = async (locator, text, what) => {
      await locator.filter({ hasText: text }).first().waitFor();
      check(what, true);
    };

    // 1. The list.
    await waitText(count('Suppliers'), '2', 'list shows Suppliers with 2 conversations');
    await page.locator('#status[data-state="live"]').waitFor();
    console.log(`1. listed: ${(await page.locator('#group-rows tr').allInnerTexts()).join(' | ').replace(/\t/g, ' ')}`);

    // 2. Live changes made by another client arrive through the watch.
    await api.createConversationGroup({ groupName: 'R&D', conversationIds: ['C2Calice', 'GROUPteam'] });
    await waitText(count('R&D'), '2', 'new group appears live');
    await waitText(page.locator('#events li[data-kind="groupCreated"]'), 'R&D', 'event log shows the creation');
    await api.addConversationsToGroup({ groupName: 'Suppliers', conversationIds: ['C2Cbob'] });
    await waitText(count('Suppliers'), '3', 'count follows an add');
    await api.renameConversationGroup({ oldName: 'R&D', newName: 'Research' });
    await waitText(count('Research'), '2', 'renamed group appears');
    await page.locator('tr[data-group="R&D"]').waitFor({ state: 'detached' });
    const rows = await page.locator('#group-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.group));
    const { groupNames } = await api.getConversationGroupList({});
    check('rows as listed, in display order', JSON.stringify(rows) === JSON.stringify(groupNames), JSON.stringify(rows));
    check('new group last', rows.indexOf('Suppliers') < rows.indexOf('Research'), JSON.stringify(rows));
    const events = await page.locator('#events li').allInnerTexts();
    check('three live events', events.length === 3, JSON.stringify(events));
    console.log(`2. live events:\n   ${events.join('\n   ')}`);

    // 3. A failed call from the page shows its ErrorInfo.
    await page.fill('#new-name', 'Suppliers');
    await page.fill('#new-ids', 'C2Cdup');
    await page.click('#create-form button');
    await page.locator('#error').waitFor({ state: 'visible' });
    const shown = {
      code: await page.textContent('#error-code'),
      reason: await page.textContent('#error-reason'),
      domain: await page.textContent('#error-domain'),
      metadata: await page.textContent('#error-metadata'),
    };
    console.log(`3. create "Suppliers" again in the page -> ${JSON.stringify(shown)}`);
    check('error code', shown.code === 'ALREADY_EXISTS', shown.code);
    check('error reason', shown.reason === 'GROUP_ALREADY_EXISTS', shown.reason);
    check('error domain', shown.domain === 'convgroups', shown.domain);
    check('error metadata', shown.metadata.includes('group_name=Suppliers'), shown.metadata);

    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`4. screenshot: ${screenshot}`);
    check('no page errors', pageErrors.length === 0, pageErrors.join('\n'));
  } finally {
    await browser.close();
    await site.close();
  }
  console.log(`browser test: OK (${checks} checks)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`FAIL ${err.message ?? err}`);
    process.exit(1);
  },
);
