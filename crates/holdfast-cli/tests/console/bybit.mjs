// Must hold (b): the Bybit-pattern request's page shows the DELEGATECALL, the singleton
// write from the simulation, and the Safe's domain hash, message hash and safeTxHash.
import { plan, launch, user, signIn, shot, violations, scan, firstLoad, done } from './lib.mjs';

const browser = await launch();
const out = {};
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  await u.page.goto(`${plan.base}/console/requests/${plan.request}`);
  const text = async (sel) => ((await u.page.textContent(sel)) ?? '').trim();
  out.calls = await text('#calls');
  out.critical_writes = await text('#critical-writes');
  out.simulation = await text('#simulation');
  out.domain_hash = await text('#domain-hash');
  out.message_hash = await text('#message-hash');
  out.safe_tx_hash = await text('#safe-tx-hash');
  out.state = await text('#state');
  // The copy buttons copy exactly the values shown.
  out.copy = await u.page.$$eval('button[data-copy]', (bs) => bs.map((b) => b.dataset.copy));
  out.first_load = { 'request (Bybit pattern)': await firstLoad(u.page) };
  await shot(u.page, 'request-bybit-delegatecall');
  out.csp = await violations(u);
  out.axe = [];
  await scan(u.page, 'request (Bybit pattern)', out.axe);
  out.errors = u.report.errors;
} finally {
  await browser.close();
}
done(out);
