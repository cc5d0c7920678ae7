// Shared by the console's browser tests: Debian's Chromium driven by playwright-core, an
// injected EIP-1193 wallet whose signatures are made in this process by viem with a real
// key, sign-in, and the browser's own reports of CSP violations and script errors.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { privateKeyToAccount } from 'viem/accounts';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const plan = JSON.parse(process.env.HOLDFAST_CONSOLE_PLAN ?? '{}');

export async function launch() {
  return chromium.launch({
    executablePath: plan.chromium,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

// A browser context for one user: a wallet holding `key` (or none), CSP violations and
// page errors recorded.
export async function user(browser, key) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const report = { csp: [], errors: [], dialogs: [] };
  const account = key ? privateKeyToAccount(key) : null;
  if (account) {
    await context.exposeFunction('__holdfastSign', async (method, params) => {
      if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [account.address];
      if (method === 'eth_signTypedData_v4') {
        const [from, json] = params;
        if (from.toLowerCase() !== account.address.toLowerCase()) throw new Error('unknown account');
        const typed = JSON.parse(json);
        const types = { ...typed.types };
        delete types.EIP712Domain;
        return account.signTypedData({
          domain: typed.domain,
          types,
          primaryType: typed.primaryType,
          message: typed.message,
        });
      }
      throw new Error(`method ${method} not supported by the test wallet`);
    });
    await context.addInitScript(() => {
      window.ethereum = {
        isHoldfastTestWallet: true,
        request: ({ method, params }) => window.__holdfastSign(method, params ?? []),
      };
    });
  }
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => report.errors.push(String(e)));
  page.on('dialog', (d) => {
    report.dialogs.push(d.message());
    d.dismiss();
  });
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) report.csp.push(t);
  });
  return { context, page, report };
}

// CSP violations the page saw (its own listener) plus those the console reported.
export async function violations(u) {
  const seen = await u.page.evaluate(() => window.__csp ?? []).catch(() => []);
  return [...u.report.csp, ...seen];
}

export async function signIn(page, token) {
  await page.goto(`${plan.base}/console/sign-in`);
  await page.fill('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

export async function shot(page, name) {
  if (plan.screenshots) {
    await page.screenshot({ path: `${plan.screenshots}/${name}.png`, fullPage: true });
  }
}

// Approves from the request's page with the user's wallet; returns the answer shown.
export async function approve(page, id, { keyboard = false } = {}) {
  await page.goto(`${plan.base}/console/requests/${id}`);
  if (keyboard) {
    // Reached with Tab alone and pressed with Enter: the action needs no mouse.
    let tabs = 0;
    while ((await page.evaluate(() => document.activeElement?.id)) !== 'approve-button') {
      if (++tabs > 60) throw new Error('the approve button is not reachable with Tab');
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
  } else {
    await page.click('#approve-button');
  }
  await page.waitForFunction(() => {
    const r = document.getElementById('approve-result');
    return r && r.textContent.trim().length > 0;
  }, null, { timeout: 20000 });
  return (await page.textContent('#approve-result')).trim();
}

export function done(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// An axe-core scan of the page as it is (WCAG 2.x A and AA rules): its serious and critical
// violations, as "page: rule (impact) at target". axe is evaluated through the DevTools
// protocol, which the page's CSP does not govern; the page's own scripts stay as served.
export async function scan(page, name, into) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    resultTypes: ['violations'],
  }));
  for (const v of r.violations) {
    if (v.impact === 'serious' || v.impact === 'critical') {
      into.push(`${name}: ${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    }
  }
}

// The first load of the page at `url` (by default the current one) as a new visitor makes
// it: the browser's cache disabled through the DevTools protocol, so the document and every
// asset come over the network. From the browser's own Resource Timing: `bytes`, what was
// transferred (compressed bodies and headers: `transferSize`), `encoded` and `decoded`, the
// bodies as sent and after decompression, and the time until the document was interactive.
export async function firstLoad(page, url = page.url()) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  try {
    await page.goto(url, { waitUntil: 'load' });
    return await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const all = [nav, ...performance.getEntriesByType('resource')
        .filter((r) => !r.name.includes('/v1/alerts/stream'))];
      const sum = (k) => all.reduce((n, r) => n + r[k], 0);
      return {
        bytes: sum('transferSize'),
        encoded: sum('encodedBodySize'),
        decoded: sum('decodedBodySize'),
        interactive_ms: Math.round(nav.domInteractive),
        resources: all.length - 1,
      };
    });
  } finally {
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: false }).catch(() => {});
    await cdp.detach().catch(() => {});
  }
}
