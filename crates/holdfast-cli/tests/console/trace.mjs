// Issue 15, investigate: a trace from the theft transaction (and one from the thief's
// address) on the trace page; the freeze targets with their amounts, the graph's nodes,
// pan, zoom and a click on an address, the three exports (GraphML parsed here by the
// browser's XML parser; CSV and DOT returned to the test), bad bounds refused by name.
import { plan, launch, user, signIn, shot, violations, scan, firstLoad, done } from './lib.mjs';

const browser = await launch();
const out = { axe: [] };
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  await u.page.goto(`${plan.base}/console/trace`);
  await u.page.fill('#seed', plan.seed_tx);
  await u.page.selectOption('#policy', plan.policy);
  await u.page.fill('#max_hops', '10');
  await Promise.all([u.page.waitForNavigation(), u.page.click('#trace-form button[type=submit]')]);
  await u.page.waitForFunction(() => document.documentElement.dataset.traceReady === 'true');
  out.url = u.page.url();
  out.first_load = { 'trace (laundering, haircut)': await firstLoad(u.page) };
  await u.page.waitForFunction(() => document.documentElement.dataset.traceReady === 'true');
  out.targets = await u.page.$$eval('#targets article.target', (as) => as.map((a) => ({
    kind: a.dataset.kind,
    deposit: a.dataset.deposit,
    service: a.querySelector('h3').textContent,
    wei: [...a.querySelectorAll('.amount')].map((x) => x.dataset.wei),
    amounts: [...a.querySelectorAll('.amount')].map((x) => x.textContent),
    path: [...a.querySelectorAll('ol.path li')].map((x) => x.textContent),
  })));
  out.nodes = await u.page.$$eval('#trace-graph g.node', (ns) => ns.map((n) => n.dataset.address));
  out.edges = await u.page.$$eval('#trace-graph path.edge', (es) => es.length);
  const box = await u.page.evaluate(() => document.getElementById('trace-graph').getAttribute('viewBox'));
  out.view_initial = box;
  // Zoom with the wheel over the graph's middle.
  await u.page.locator('#trace-graph').scrollIntoViewIfNeeded();
  const r = await u.page.locator('#trace-graph').boundingBox();
  await u.page.mouse.move(r.x + r.width / 2, r.y + r.height / 2);
  await u.page.mouse.wheel(0, -300);
  await u.page.waitForFunction((b) => document.getElementById('trace-graph').getAttribute('viewBox') !== b, box);
  out.view_zoomed = await u.page.getAttribute('#trace-graph', 'viewBox');
  // Pan by dragging right and down.
  await u.page.mouse.move(r.x + 5, r.y + 5);
  await u.page.mouse.down();
  await u.page.mouse.move(r.x + 105, r.y + 65, { steps: 5 });
  await u.page.mouse.up();
  out.view_panned = await u.page.getAttribute('#trace-graph', 'viewBox');
  await u.page.click('#zoom-reset');
  out.view_reset = await u.page.getAttribute('#trace-graph', 'viewBox');
  // Click the Binance deposit's node.
  await u.page.click(`#trace-graph g.node[data-address="${plan.click}"]`);
  out.details = (await u.page.textContent('#node-details')).trim();
  // The hostile-labelled deposit, reached with the keyboard alone and opened with Enter.
  await u.page.focus(`#trace-graph g.node[data-address="${plan.hostile}"]`);
  await u.page.keyboard.press('Enter');
  out.hostile_details = (await u.page.textContent('#node-details')).trim();
  // The keyboard alone pans and zooms.
  const before = await u.page.getAttribute('#trace-graph', 'viewBox');
  await u.page.keyboard.press('ArrowRight');
  out.view_keyboard_pan = [before, await u.page.getAttribute('#trace-graph', 'viewBox')];
  await u.page.keyboard.press('+');
  out.view_keyboard_zoom = await u.page.getAttribute('#trace-graph', 'viewBox');
  out.inert = await u.page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    imgs: document.querySelectorAll('img').length,
    scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
    inline_handlers: document.querySelectorAll('[onerror],[onload],[onclick],[onmouseover]').length,
  }));
  await shot(u.page, 'trace');
  // The exports, fetched as the links would download them.
  out.exports = {};
  for (const f of ['csv', 'graphml', 'dot']) {
    const href = await u.page.getAttribute(`#export-${f}`, 'href');
    out.exports[f] = await u.page.evaluate(async (h) => {
      const resp = await fetch(h);
      return {
        status: resp.status,
        type: resp.headers.get('content-type'),
        disposition: resp.headers.get('content-disposition'),
        body: await resp.text(),
      };
    }, href);
  }
  out.graphml = await u.page.evaluate((xml) => {
    const doc = new DOMParser().parseFromString(xml, 'application/xml');
    const error = doc.getElementsByTagName('parsererror')[0];
    return {
      error: error ? error.textContent : null,
      nodes: doc.getElementsByTagName('node').length,
      edges: doc.getElementsByTagName('edge').length,
      services: [...doc.getElementsByTagName('data')].filter((d) => d.getAttribute('key') === 'service' && d.textContent).map((d) => d.textContent),
    };
  }, out.exports.graphml.body);
  out.csp = await violations(u);
  await scan(u.page, 'trace', out.axe);
  out.errors = u.report.errors;
  out.dialogs = u.report.dialogs;

  // From the thief's address with FIFO.
  await u.page.goto(`${plan.base}/console/trace?seed=${plan.thief}&policy=fifo`);
  out.by_address = await u.page.$$eval('#targets article.target', (as) => as.map((a) => ({
    deposit: a.dataset.deposit,
    wei: [...a.querySelectorAll('.amount')].map((x) => x.dataset.wei),
  })));
  // A trace stopped by max_nodes says so.
  await u.page.goto(`${plan.base}/console/trace?seed=${plan.thief}&max_nodes=3`);
  out.truncated = ((await u.page.textContent('#trace-summary')) ?? '').trim();
  out.truncated_nodes = await u.page.$$eval('#trace-graph g.node', (ns) => ns.length);
  // Bounds: refused by field and value, the form still filled in.
  out.bounds = {};
  for (const [field, value] of [['max_hops', '99'], ['max_nodes', '9999'], ['seed', '0xnope']]) {
    const query = field === 'seed' ? `seed=${value}` : `seed=${plan.thief}&${field}=${value}`;
    const resp = await u.page.goto(`${plan.base}/console/trace?${query}`);
    out.bounds[field] = {
      status: resp.status(),
      said: ((await u.page.textContent('p.refused')) ?? '').trim(),
      seed: await u.page.inputValue('#seed'),
    };
  }
  await scan(u.page, 'trace (refused)', out.axe);
  out.csp.push(...(await violations(u)));
} finally {
  await browser.close();
}
done(out);
