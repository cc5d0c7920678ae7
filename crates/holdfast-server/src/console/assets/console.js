// The console's small behaviours: live hold countdowns and copy buttons. No data is ever
// inserted as HTML: only textContent is written.

function tick() {
  const now = Math.floor(Date.now() / 1000);
  for (const el of document.querySelectorAll('[data-release-at]')) {
    const at = Number(el.dataset.releaseAt);
    const left = Math.max(0, at - now);
    const m = Math.floor(left / 60);
    const s = left % 60;
    el.textContent = left > 0 ? `${m} min ${String(s).padStart(2, '0')} s` : 'due: being released';
  }
}

function copyButtons() {
  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        b.dataset.copied = 'yes';
        b.setAttribute('aria-label', 'Copied');
      } catch {
        // Clipboard refused (no user activation or permission): select the value instead.
        const code = b.previousElementSibling;
        if (code) window.getSelection().selectAllChildren(code);
      }
    });
  }
}

document.addEventListener('DOMContentLoaded', () => {
  copyButtons();
  tick();
  if (document.querySelector('[data-release-at]')) setInterval(tick, 1000);
});
