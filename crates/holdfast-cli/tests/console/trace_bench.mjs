// The trace page with a large trace, measured in the browser (docs/BENCHMARKS.md): for each
// of `plan.runs` fresh loads, the server's answer (responseEnd), the document interactive,
// the graph's script ready (pan, zoom and click work from then), the longest task the main
// thread ran during the load, and the time from a wheel zoom to the next painted frame.
import { plan, launch, user, signIn, firstLoad, done } from './lib.mjs';

const browser = await launch();
const runs = [];
let first_load = null;
try {
  const u = await user(browser, null);
  await signIn(u.page, plan.token);
  await u.context.addInitScript(() => {
    window.__longest = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  for (let i = 0; i < plan.runs; i++) {
    await u.page.goto(plan.url);
    await u.page.waitForFunction(() => document.documentElement.dataset.traceReady === 'true');
    await u.page.locator('#trace-graph').scrollIntoViewIfNeeded();
    const r = await u.page.locator('#trace-graph').boundingBox();
    await u.page.mouse.move(r.x + r.width / 2, r.y + r.height / 2);
    const before = await u.page.evaluate(() => performance.now());
    await u.page.mouse.wheel(0, -300);
    const frame = await u.page.evaluate(() => new Promise((res) => requestAnimationFrame(() => res(performance.now()))));
    const m = await u.page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const ready = performance.getEntriesByName('holdfast-trace-ready')[0];
      return {
        response_end: nav.responseEnd,
        dom_interactive: nav.domInteractive,
        ready: ready ? ready.startTime : null,
        longest_task: window.__longest,
        bytes: nav.transferSize,
        html_bytes: nav.decodedBodySize,
        nodes: document.querySelectorAll('#trace-graph g.node').length,
        edges: document.querySelectorAll('#trace-graph path.edge').length,
      };
    });
    m.zoom_to_frame = frame - before;
    runs.push(m);
  }
  first_load = await firstLoad(u.page, plan.url);
} finally {
  await browser.close();
}
done({ runs, first_load });
