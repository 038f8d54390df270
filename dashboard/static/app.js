// Proxmox Monitor's one script, served by the binary at a hashed URL (see
// dashboard/src/assets.rs). The Content-Security-Policy allows no inline script or event
// handler, so pages say what they want with data- attributes:
// - <body data-live="overview">: live cards (SSE) replace the overview's cards.
// - <body data-live="host" data-host="ID">: the host page refreshes when its card changes.
// - <form data-confirm="...">: asks before submitting.
(function () {
  'use strict';

  document.addEventListener('submit', (e) => {
    const question = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  const mode = document.body.dataset.live;
  const live = document.getElementById('live');
  if (!mode || !live) { return; }
  const es = new EventSource('/events');
  es.onopen = () => { live.textContent = 'live'; };
  es.onerror = () => { live.textContent = 'reconnecting…'; };
  es.addEventListener('card', (e) => {
    const tpl = document.createElement('template');
    tpl.innerHTML = e.data.trim();
    const card = tpl.content.firstElementChild;
    if (!card) { return; }
    if (mode === 'host') { refreshHost(card); } else { replaceCard(card); }
  });

  // The overview: the server pushes each changed card, already rendered.
  function replaceCard(card) {
    const old = document.getElementById(card.id);
    if (old) {
      // A live card comes without sparklines (they take a query): keep the ones shown.
      const sparks = card.querySelector('.sparks');
      const shown = old.querySelector('.sparks');
      if (sparks && shown && sparks.children.length === 0) { sparks.replaceWith(shown); }
      old.replaceWith(card);
    }
    // Keep the status counts true without a reload.
    if (new URLSearchParams(location.search).get('status')) { return; }
    for (const name of ['online', 'warning', 'critical', 'offline']) {
      const link = document.getElementById('count-' + name);
      const n = document.querySelectorAll('.card[data-status=' + name + ']').length;
      if (link) { link.textContent = name + ' ' + n; }
    }
  }

  // A host page: refresh its content in place (no reload, scroll position kept).
  function refreshHost(card) {
    if (card.id !== 'card-' + document.body.dataset.host) { return; }
    fetch(location.href, { headers: { Accept: 'text/html' } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const next = new DOMParser().parseFromString(html, 'text/html').querySelector('main');
        if (next) { document.querySelector('main').replaceWith(next); }
      })
      .catch(() => {});
  }
})();
