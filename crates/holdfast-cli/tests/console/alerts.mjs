// Issue 15, alerts: the feed page is open (its EventSource connected) when the takeover
// block is mined; the alert appears at the top of the table. Prints when it appeared
// (epoch ms, this machine's clock) so the test can compare with the block's mining.
import { plan, launch, user, signIn, shot, violations, scan, firstLoad, done } from './lib.mjs';
import { writeFileSync, existsSync } from 'node:fs';

const browser = await launch();
const out = {};
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  await u.page.goto(`${plan.base}/console/alerts`);
  // Wait until the stream is open, then tell the test to mine the takeover.
  await u.page.waitForFunction(() => performance.getEntriesByType('resource')
    .some((e) => e.name.includes('/v1/alerts/stream')), null, { timeout: 10000 }).catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  writeFileSync(plan.ready_file, 'ready');
  await u.page.waitForSelector('#alerts tr.new', { timeout: 30000 });
  out.received_at = Number(await u.page.getAttribute('#alerts tr.new', 'data-received-at'));
  out.row = ((await u.page.textContent('#alerts tr.new')) ?? '').trim();
  out.live_links = await u.page.$$eval('#alerts tr.new .alert-links a', (as) => as.map((a) => a.getAttribute('href')));
  await shot(u.page, 'alerts-live');
  // After a reload the alert is in the server-rendered list, with an acknowledge form.
  await u.page.reload();
  await Promise.all([u.page.waitForNavigation(), u.page.click('#alerts tr button[type=submit]')]);
  out.after_ack = ((await u.page.textContent('#alerts tr')) ?? '').trim();
  await shot(u.page, 'alerts-acknowledged');
  out.csp = await violations(u);
  out.axe = [];
  await scan(u.page, 'alerts', out.axe);
  // From the alert: what its transaction did, and a trace seeded at that transaction.
  out.links = await u.page.$$eval('#alerts tr:first-child .alert-links a', (as) => as.map((a) => a.getAttribute('href')));
  await Promise.all([u.page.waitForNavigation(), u.page.click('#alerts tr:first-child a.decoding')]);
  out.decoding = {
    title: ((await u.page.textContent('#alert-title')) ?? '').trim(),
    tx: ((await u.page.textContent('#alert-tx')) ?? '').trim(),
    facts: ((await u.page.textContent('#facts')) ?? '').trim(),
    addresses: ((await u.page.textContent('#addresses')) ?? '').trim(),
  };
  await shot(u.page, 'alert-decoding');
  out.first_load = { alert: await firstLoad(u.page) };
  await scan(u.page, 'alert', out.axe);
  out.csp.push(...(await violations(u)));
  await Promise.all([u.page.waitForNavigation(), u.page.click('a.trace')]);
  out.trace_seed = await u.page.inputValue('#seed');
  out.trace_path = new URL(u.page.url()).pathname;
  out.first_load.alerts = await firstLoad(u.page, `${plan.base}/console/alerts`);
  out.errors = u.report.errors;
} finally {
  await browser.close();
}
if (!existsSync(plan.ready_file)) writeFileSync(plan.ready_file, 'failed');
done(out);
