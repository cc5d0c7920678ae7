// Must hold (c): an operator cancels a hold from its page (plan.step "cancel"), or freezes
// the wallet from an awaiting request's page (plan.step "freeze").
import { plan, launch, user, signIn, shot, violations, done } from './lib.mjs';

const browser = await launch();
const out = {};
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  if (plan.step === 'cancel') {
  await u.page.goto(`${plan.base}/console/requests?view=held`);
  out.countdown = ((await u.page.textContent('[data-release-at]')) ?? '').trim();
  await shot(u.page, 'queue-holds');
  await u.page.goto(`${plan.base}/console/requests/${plan.held}`);
  await u.page.fill('#cancel-reason', 'not ours: cancelled from the console');
  await Promise.all([u.page.waitForNavigation(), u.page.click('#cancel')]);
  out.cancelled_state = ((await u.page.textContent('#state')) ?? '').trim();
  await shot(u.page, 'request-cancelled');
  } else {
  await u.page.goto(`${plan.base}/console/requests/${plan.awaiting}`);
  await u.page.fill('#freeze-reason', 'incident: freeze from the console');
  await Promise.all([u.page.waitForNavigation(), u.page.click('section.freeze button[type=submit]')]);
  out.frozen = ((await u.page.textContent('p.done')) ?? '').trim();
  await shot(u.page, 'frozen');
  }
  out.csp = await violations(u);
  out.errors = u.report.errors;
} finally {
  await browser.close();
}
done(out);
