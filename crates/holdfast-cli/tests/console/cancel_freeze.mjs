// Must hold (c): an operator cancels a hold from its page (plan.step "cancel"), or freezes
// the wallet from an awaiting request's page (plan.step "freeze").
import { plan, launch, user, signIn, shot, violations, scan, firstLoad, done } from './lib.mjs';

const browser = await launch();
const out = { axe: [] };
if (plan.step === 'unfreeze') {
  try {
    await unfreeze();
  } finally {
    await browser.close();
  }
  done(out);
  process.exit(0);
}

// Members sign unfreeze approvals on the page; an admin pastes them and lifts the freeze.
async function unfreeze() {
  const url = `${plan.base}/console/unfreeze?wallet=${plan.wallet}`;
  const signed = [];
  out.errors = [];
  out.csp = [];
  for (const m of plan.members) {
    const u = await user(browser, m.key);
    await signIn(u.page, m.token);
    await u.page.goto(url);
    await u.page.click('#unfreeze-sign-button');
    await u.page.waitForFunction(() => document.getElementById('unfreeze-signed').textContent.length > 0);
    signed.push((await u.page.textContent('#unfreeze-signed')).trim());
    await shot(u.page, 'unfreeze-sign');
    await scan(u.page, 'unfreeze (member)', out.axe);
    out.csp.push(...(await violations(u)));
    out.errors.push(...u.report.errors);
    await u.context.close();
  }
  out.signed = signed;
  const a = await user(browser, null);
  await signIn(a.page, plan.admin);
  out.first_load = { 'unfreeze (admin)': await firstLoad(a.page, url) };
  out.before = ((await a.page.textContent('#unfreeze-state')) ?? '').trim();
  await scan(a.page, 'unfreeze (admin)', out.axe);
  await a.page.fill('#approvals', signed.join('\n'));
  await Promise.all([a.page.waitForNavigation(), a.page.click('#unfreeze-lift-button')]);
  out.after = ((await a.page.textContent('main')) ?? '').trim();
  await shot(a.page, 'unfrozen');
  out.csp.push(...(await violations(a)));
  out.errors.push(...a.report.errors);
}

try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  if (plan.step === 'cancel') {
  await u.page.goto(`${plan.base}/console/requests?view=held`);
  out.countdown = ((await u.page.textContent('[data-release-at]')) ?? '').trim();
  await shot(u.page, 'queue-holds');
  const csp = await violations(u);
  await scan(u.page, 'queue: holds', out.axe);
  await u.page.goto(`${plan.base}/console/requests/${plan.held}`);
  await scan(u.page, 'request (operator, held)', out.axe);
  csp.push(...(await violations(u)));
  await u.page.goto(`${plan.base}/console/requests/${plan.held}`);
  // By keyboard: Tab to the reason, type it, Tab to the button, Enter.
  let tabs = 0;
  while ((await u.page.evaluate(() => document.activeElement?.id)) !== 'cancel-reason') {
    if (++tabs > 60) throw new Error('the cancel form is not reachable with Tab');
    await u.page.keyboard.press('Tab');
  }
  await u.page.keyboard.type('not ours: cancelled from the console');
  await u.page.keyboard.press('Tab');
  out.cancel_focused = await u.page.evaluate(() => document.activeElement?.id);
  await Promise.all([u.page.waitForNavigation(), u.page.keyboard.press('Enter')]);
  out.cancelled_state = ((await u.page.textContent('#state')) ?? '').trim();
  out.early_csp = csp;
  await shot(u.page, 'request-cancelled');
  } else {
  await u.page.goto(`${plan.base}/console/requests/${plan.awaiting}`);
  await u.page.fill('#freeze-reason', 'incident: freeze from the console');
  await Promise.all([u.page.waitForNavigation(), u.page.click('section.freeze button[type=submit]')]);
  out.frozen = ((await u.page.textContent('p.done')) ?? '').trim();
  await shot(u.page, 'frozen');
  await scan(u.page, 'queue after a freeze', out.axe);
  }
  out.csp = await violations(u);
  out.errors = u.report.errors;
} finally {
  await browser.close();
}
done(out);
