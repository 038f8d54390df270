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

  // The overview: the server pushes each changed card, already rendered; the cards of
  // this page are replaced in place.
  function replaceCard(card) {
    const old = document.getElementById(card.id);
    if (!old) { return; }
    // A live card comes without sparklines (they take a query): keep the ones shown.
    const sparks = card.querySelector('.sparks');
    const shown = old.querySelector('.sparks');
    if (sparks && shown && sparks.children.length === 0) { sparks.replaceWith(shown); }
    // A host that changes status moves from one count to the other. Only the cards shown
    // say what a host was; changes of hosts on other pages show at the next load.
    if (old.dataset.status !== card.dataset.status) {
      bump(old.dataset.status, -1);
      bump(card.dataset.status, 1);
    }
    old.replaceWith(card);
  }

  function bump(name, by) {
    const link = document.getElementById('count-' + name);
    if (!link) { return; }
    const n = Number(link.dataset.count) + by;
    link.dataset.count = String(n);
    link.textContent = name + ' ' + n;
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
