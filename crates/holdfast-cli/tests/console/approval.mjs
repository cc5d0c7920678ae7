// Must hold (a): a request needing 2 approvals; its initiator (also an approver of the
// group) tries to approve and is refused, the refusal shown; two other approvers approve
// through their wallets; the request is then signed.
import { plan, launch, user, signIn, approve, shot, violations, scan, firstLoad, done } from './lib.mjs';

const browser = await launch();
const out = { answers: {}, csp: [], errors: [], axe: [], first_load: {} };
try {
  for (const who of plan.approvers) {
    const u = await user(browser, who.key);
    if (who.name === plan.approvers[0].name) {
      out.first_load['sign-in'] = await firstLoad(u.page, `${plan.base}/console/sign-in`);
    }
    await signIn(u.page, who.token);
    if (who.name === plan.approvers[0].name) {
      await u.page.goto(`${plan.base}/console/requests?view=awaiting`);
      await shot(u.page, 'queue-awaiting');
    }
    out.answers[who.name] = await approve(u.page, plan.request, { keyboard: who.name === 'bob' });
    if (who.name !== 'carol') await shot(u.page, `request-approve-${who.name}`);
    out.csp.push(...(await violations(u)));
    if (who.name === plan.approvers[0].name) {
      await scan(u.page, 'request (approver, refused)', out.axe);
      await u.page.goto(`${plan.base}/console/requests?view=awaiting`);
      await scan(u.page, 'queue: awaiting approvals', out.axe);
    }
    out.errors.push(...u.report.errors);
    await u.context.close();
  }
  const u = await user(browser, null);
  await signIn(u.page, plan.approvers[0].token);
  await u.page.goto(`${plan.base}/console/requests/${plan.request}`);
  out.final_state = (await u.page.textContent('#state')).trim();
  out.deltas = ((await u.page.textContent('#deltas').catch(() => null)) ?? '').trim();
  out.calls = ((await u.page.textContent('#calls')) ?? '').trim();
  out.first_load['request (signed)'] = await firstLoad(u.page);
  await shot(u.page, 'request-signed');
  out.csp.push(...(await violations(u)));
  await scan(u.page, 'request (signed)', out.axe);
  await u.page.goto(`${plan.base}/console/requests?view=decided`);
  await scan(u.page, 'queue: decided', out.axe);
  out.first_load['queue: decided'] = await firstLoad(u.page);
  await shot(u.page, 'queue-decided');
  out.first_load['queue: held'] = await firstLoad(u.page, `${plan.base}/console/requests?view=held`);
  out.first_load['queue: awaiting'] = await firstLoad(u.page, `${plan.base}/console/requests?view=awaiting`);
  out.first_load.screen = await firstLoad(u.page, `${plan.base}/console/screen`);
  out.first_load['trace (form)'] = await firstLoad(u.page, `${plan.base}/console/trace`);
  out.first_load['error page'] = await firstLoad(u.page, `${plan.base}/console/requests/0x${'0'.repeat(64)}`);
  await u.context.close();

  // An admin reads the audit log: verified, paged, exported.
  const a = await user(browser, null);
  await signIn(a.page, plan.admin);
  out.first_load['audit log'] = await firstLoad(a.page, `${plan.base}/console/audit`);
  out.verification = ((await a.page.textContent('#verification')) ?? '').trim();
  out.audit_rows = await a.page.$$eval('#audit tr', (rows) => rows.length - 1);
  out.export_lines = await a.page.evaluate(async () => {
    const r = await fetch('/console/audit/export');
    return (await r.text()).split('\n').filter((l) => l.length > 0).length;
  });
  await shot(a.page, 'audit');
  await scan(a.page, 'audit log', out.axe);
  out.csp.push(...(await violations(a)));
  out.errors.push(...a.report.errors);
  await a.context.close();
} finally {
  await browser.close();
}
done(out);
