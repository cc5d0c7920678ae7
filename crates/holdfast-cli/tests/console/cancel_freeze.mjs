// Must hold (c): an operator cancels a hold from its page (plan.step "cancel"), or freezes
// the wallet from an awaiting request's page (plan.step "freeze").
import { plan, launch, user, signIn, shot, violations, scan, done } from './lib.mjs';

const browser = await launch();
const out = { axe: [] };
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
