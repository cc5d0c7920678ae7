// Must hold (d): hostile data is inert. Labels, rule names and reasons carrying script,
// markup, a direction override and look-alike letters render as text: no script runs, no
// element is made of them, the browser reports no CSP violation. A state change without the
// session's CSRF token is refused. An expired session is sent back to sign-in.
import { plan, launch, user, signIn, shot, violations, scan, done } from './lib.mjs';

const browser = await launch();
const out = { axe: [] };
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  const inspect = async (name) => {
    const r = await u.page.evaluate(() => ({
      pwned: window.__pwned ?? null,
      imgs: document.querySelectorAll('img').length,
      scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
      inline_handlers: document.querySelectorAll('[onerror],[onload],[onclick],[onmouseover]').length,
      text: document.body.innerText,
    }));
    out[name] = r;
  };
  await u.page.goto(`${plan.base}/console/requests?view=held`);
  await inspect('queue');
  await shot(u.page, 'queue-hostile-rule');
  await u.page.goto(`${plan.base}/console/requests/${plan.request}`);
  await inspect('request');
  await shot(u.page, 'request-hostile-labels');
  // Screening the address from the console: the same labels, as text.
  await u.page.goto(`${plan.base}/console/screen`);
  await u.page.fill('#address', plan.address);
  await Promise.all([u.page.waitForNavigation(), u.page.click('form.filters button[type=submit]')]);
  await inspect('screen');
  out.screen_risk = ((await u.page.textContent('#risk')) ?? '').trim();
  await shot(u.page, 'screen-hostile-labels');

  // State changes without the CSRF token, from the console's own page (cookie sent).
  out.form_without_csrf = await u.page.evaluate(async () => {
    const r = await fetch('/console/freeze', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'reason=no+token',
    });
    return r.status;
  });
  out.api_without_csrf = await u.page.evaluate(async () => {
    const r = await fetch('/v1/guard/freeze', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'no token' }),
    });
    return [r.status, (await r.json()).error?.message ?? ''];
  });
  out.csp = await violations(u);
  out.errors = u.report.errors;
  out.dialogs = u.report.dialogs;
  await scan(u.page, 'screen (hostile labels)', out.axe);
  await u.page.goto(`${plan.base}/console/requests/${plan.request}`);
  await scan(u.page, 'request (hostile labels)', out.axe);
  await u.page.goto(`${plan.base}/console/requests?view=held`);
  await scan(u.page, 'queue (hostile rule)', out.axe);
  await u.page.goto(`${plan.base}/console/requests/0xnot-a-request`);
  await scan(u.page, 'error page', out.axe);
  await shot(u.page, 'refused');
  await u.context.close();

  // An expired session goes back to sign-in.
  const e = await user(browser, null);
  await signIn(e.page, plan.token);
  out.before_expiry = new URL(e.page.url()).pathname;
  await new Promise((r) => setTimeout(r, plan.session_secs * 1000 + 1500));
  await e.page.goto(`${plan.base}/console/requests?view=held`);
  out.after_expiry = new URL(e.page.url()).pathname;
  await shot(e.page, 'sign-in');
  out.csp.push(...(await violations(e)));
  await scan(e.page, 'sign-in', out.axe);
  await e.context.close();
} finally {
  await browser.close();
}
done(out);
