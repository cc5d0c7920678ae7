// The live alerts feed: server-sent events from /v1/alerts/stream (the session cookie
// authenticates it), starting after the outbox event the page was rendered at. Each new
// alert is added at the top of the table; only textContent is written.

const live = document.getElementById('live');
const body = document.getElementById('alerts');

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (cls) td.className = cls;
  return td;
}

function add(event) {
  const e = JSON.parse(event.data);
  const a = e.alert ?? {};
  const tr = document.createElement('tr');
  tr.dataset.alertId = e.alert_id ?? '';
  tr.dataset.receivedAt = String(Date.now());
  tr.className = `${a.severity ?? ''} new`;
  tr.append(
    cell(new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC'),
    cell(a.severity, 'severity'),
    cell(a.rule),
  );
  const what = document.createElement('td');
  const title = document.createElement('strong');
  title.textContent = a.title ?? '';
  const summary = document.createElement('div');
  summary.className = 'small';
  summary.textContent = a.summary ?? '';
  what.append(title, summary);
  const tx = cell(a.tx_hash, 'mono small');
  const links = document.createElement('div');
  links.className = 'alert-links small';
  const decoding = document.createElement('a');
  decoding.href = `/console/alerts/${encodeURIComponent(e.alert_id ?? '')}`;
  decoding.className = 'decoding';
  decoding.textContent = 'What it did';
  links.append(decoding);
  if (a.tx_hash) {
    const trace = document.createElement('a');
    trace.href = `/console/trace?seed=${encodeURIComponent(a.tx_hash)}`;
    trace.className = 'trace';
    trace.textContent = 'Trace from this transaction';
    links.append(' · ', trace);
  }
  tx.append(links);
  tr.append(
    what,
    cell(`${a.chain_id ?? ''} #${a.block_number ?? ''}`),
    tx,
    cell(event.type === 'raised' ? 'open (reload to acknowledge)' : event.type),
  );
  body.prepend(tr);
  live.textContent = `Live: ${a.rule ?? 'an alert'} (${a.severity ?? ''}) just now.`;
}

if (live && body && window.EventSource) {
  const source = new EventSource(`/v1/alerts/stream?after=${encodeURIComponent(live.dataset.after)}`);
  for (const kind of ['raised', 'retracted', 'confirmed']) source.addEventListener(kind, add);
  source.addEventListener('gap', (event) => {
    let d = {};
    try { d = JSON.parse(event.data); } catch (e) { /* shown without the numbers */ }
    live.textContent = `Some alert events (${d.missing_from ?? '?'} to ${d.missing_to ?? '?'}) were missed while this page was away: reload it to see every alert.`;
  });
  source.addEventListener('error', () => {
    live.textContent = 'Live feed interrupted; reconnecting…';
  });
}
