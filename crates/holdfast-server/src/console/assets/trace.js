// The trace graph (console/trace_graph.rs draws it on the server): pan by dragging, zoom
// with the wheel or the buttons, click an address (or focus it and press Enter) to show its
// labels and tainted amounts beside the graph. Writes only attributes and textContent.
const svg = document.getElementById('trace-graph');
const details = document.getElementById('node-details');

if (svg && details) {
  const full = { x: 0, y: 0, w: Number(svg.dataset.width), h: Number(svg.dataset.height) };
  let view = { ...full };
  const apply = () => {
    svg.setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
  };
  // Zooms by `factor` around the point (px, py) in graph units.
  const zoom = (factor, px, py) => {
    const w = Math.min(Math.max(view.w * factor, 50), full.w * 4);
    const h = w * (view.h / view.w);
    view = { x: px - (px - view.x) * (w / view.w), y: py - (py - view.y) * (h / view.h), w, h };
    apply();
  };
  // A pointer position in graph units.
  const toGraph = (clientX, clientY) => {
    const r = svg.getBoundingClientRect();
    const scale = Math.max(view.w / r.width, view.h / r.height);
    return {
      x: view.x + (clientX - r.left) * scale,
      y: view.y + (clientY - r.top) * scale,
      scale,
    };
  };
  svg.addEventListener('wheel', (e) => {
    e.preventDefault();
    const p = toGraph(e.clientX, e.clientY);
    zoom(e.deltaY < 0 ? 0.8 : 1.25, p.x, p.y);
  }, { passive: false });

  let drag = null;
  svg.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, view: { ...view }, moved: false };
  });
  svg.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!drag.moved) svg.setPointerCapture(e.pointerId);
    drag.moved = true;
    const { scale } = toGraph(0, 0);
    view = { ...drag.view, x: drag.view.x - dx * scale, y: drag.view.y - dy * scale };
    apply();
  });
  const end = (e) => {
    const d = drag;
    drag = null;
    if (d && d.moved) {
      if (svg.hasPointerCapture(e.pointerId)) svg.releasePointerCapture(e.pointerId);
      return;
    }
    const node = e.target.closest?.('g.node');
    if (node) select(node);
  };
  svg.addEventListener('pointerup', end);
  svg.addEventListener('pointercancel', () => { drag = null; });

  const center = () => ({ x: view.x + view.w / 2, y: view.y + view.h / 2 });
  document.getElementById('zoom-in')?.addEventListener('click', () => {
    const c = center();
    zoom(0.8, c.x, c.y);
  });
  document.getElementById('zoom-out')?.addEventListener('click', () => {
    const c = center();
    zoom(1.25, c.x, c.y);
  });
  document.getElementById('zoom-reset')?.addEventListener('click', () => {
    view = { ...full };
    apply();
  });

  const row = (dl, term, value) => {
    if (!value) return;
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    for (const line of value.split('\n')) {
      const div = document.createElement('div');
      div.textContent = line;
      dd.append(div);
    }
    dl.append(dt, dd);
  };
  const select = (node) => {
    for (const n of svg.querySelectorAll('g.node.selected')) n.classList.remove('selected');
    node.classList.add('selected');
    const d = node.dataset;
    const h = document.createElement('h3');
    h.textContent = 'Selected address';
    const dl = document.createElement('dl');
    row(dl, 'Address', d.address);
    row(dl, 'Role', d.role);
    row(dl, 'Hops', d.hops);
    row(dl, 'Service', d.service);
    row(dl, 'Labels', d.labels || 'none in intel');
    row(dl, 'Tainted received', d.received);
    row(dl, 'Tainted held', d.held);
    row(dl, 'First tainted by tx', d.firstTx);
    details.replaceChildren(h, dl);
  };
  // The keyboard: Enter or Space selects the focused address, arrows pan, + and - zoom.
  const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  svg.addEventListener('keydown', (e) => {
    const node = e.target.closest?.('g.node');
    if (node && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      select(node);
    } else if (steps[e.key]) {
      e.preventDefault();
      const [dx, dy] = steps[e.key];
      view = { ...view, x: view.x + dx * view.w * 0.1, y: view.y + dy * view.h * 0.1 };
      apply();
    } else if (e.key === '+' || e.key === '=' || e.key === '-') {
      e.preventDefault();
      const c = center();
      zoom(e.key === '-' ? 1.25 : 0.8, c.x, c.y);
    }
  });
  // An address reached with Tab is brought into view.
  svg.addEventListener('focusin', (e) => {
    const node = e.target.closest?.('g.node');
    if (!node) return;
    const m = /translate\(([-\d.]+) ([-\d.]+)\)/.exec(node.getAttribute('transform') ?? '');
    if (!m) return;
    const [x, y] = [Number(m[1]), Number(m[2])];
    if (x < view.x || y < view.y || x + 180 > view.x + view.w || y + 24 > view.y + view.h) {
      view = { ...view, x: x + 90 - view.w / 2, y: y + 12 - view.h / 2 };
      apply();
    }
  });
  document.documentElement.dataset.traceReady = 'true';
  performance.mark('holdfast-trace-ready');
}
