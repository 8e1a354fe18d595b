// The console's only script: live parts of a page (#live[data-refresh]) are fetched again and
// replaced every few seconds, and a form with data-confirm asks before it is sent. Pages work
// without it.
'use strict';

(function () {
  const live = document.getElementById('live');
  if (live && live.dataset.refresh) {
    const every = Math.max(1000, Number(live.dataset.refresh) || 3000);
    const refresh = async () => {
      try {
        const res = await fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' });
        if (res.ok) {
          const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
          const next = doc.getElementById('live');
          if (next) {
            live.innerHTML = next.innerHTML;
            document.body.dataset.refreshed = String(Date.now());
          }
        }
      } catch (e) {
        // The node may be restarting: try again at the next tick.
      }
      setTimeout(refresh, every);
    };
    setTimeout(refresh, every);
  }
  document.addEventListener('submit', (ev) => {
    const msg = ev.target.dataset && ev.target.dataset.confirm;
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
})();
