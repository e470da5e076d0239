(function () {
  'use strict';
  var thread = document.getElementById('thread');
  var stateNode = document.getElementById('thread-state');
  setupSidebar();
  if (!thread || !stateNode) { return; }
  var state = JSON.parse(stateNode.textContent);
  var conversationID = state.conversationID;
  var lastSeq = state.after;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  var composer = document.getElementById('composer');
  var sendButton = document.getElementById('send');
  var reasonNode = document.getElementById('composer-reason');
  var connectionNode = document.getElementById('connection');
  var jumpButton = document.getElementById('jump-latest');
  var TYPES = ['message.received', 'job.enqueued', 'job.claimed', 'job.completed', 'job.failed', 'job.retried',
    'job.dead', 'job.requeued', 'assistant.delta', 'assistant.message', 'tool.call', 'tool.approval',
    'tool.result', 'delivery.enqueued', 'job.cancelled', 'conversation.renamed', 'conversation.deleted',
    'job.retriggered', 'command.handled', 'delivery.failed'];

  var sending = 0;
  var live = document.getElementById('announcer');
  function announce(text) { if (live) { live.textContent = text; } }
  var stopButton = document.getElementById('stop');
  var sidebar = ChatSidebar({ conversationID: conversationID, csrf: csrf, announce: announce });
  var view = ChatThread({ thread: thread, state: state, jumpButton: jumpButton, composer: composer,
    announce: announce, onChange: function () { updateStop(); },
    onRenamed: function (title) { sidebar.setTitle(title); },
    onDeleted: function () {
      state.writable = false;
      reasonNode.setAttribute('data-fixed', 'This conversation was deleted.');
      sidebar.deleted();
      updateComposer();
    } });
  var element = view.element;
  var users = view.users;
  var replies = view.replies;
  var userElement = view.userElement;
  var append = view.append;
  var setApprovalStatus = view.setApprovalStatus;
  var DECIDED = view.decided;

  // ---- Event stream ----
  var source = null, retryDelay = 2000, retryTimer = 0;
  function setConnection(text) { connectionNode.textContent = text; updateComposer(); }
  function onEvent(e) {
    var seq = Number(e.lastEventId);
    if (!(seq > lastSeq)) { return; }  // never applied twice
    lastSeq = seq;
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    view.apply(e.type, data, seq);
  }
  function connect() {
    retryTimer = 0;
    source = new EventSource('/api/conversations/' + encodeURIComponent(conversationID) + '/events?sidebar=1&after=' + lastSeq);
    var reopened = retryDelay !== 2000 || connectionNode.textContent !== '';
    source.onopen = function () {
      retryDelay = 2000; setConnection('');
      if (reopened) { sidebar.reload(); }  // its changes while disconnected are not replayed
    };
    source.addEventListener('conversation', function (e) {
      try { sidebar.update(JSON.parse(e.data)); } catch (err) { /* a malformed frame changes nothing */ }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setConnection('Reconnecting…');
        fetch('/api/session', { credentials: 'same-origin' }).then(function (res) {
          if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
          scheduleReconnect();
        }, scheduleReconnect);
      } else {
        setConnection('Reconnecting…');
      }
    };
    TYPES.forEach(function (t) { source.addEventListener(t, onEvent); });
  }
  function scheduleReconnect() {
    if (retryTimer) { return; }
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }
  connect();

  // ---- Composer ----
  // ---- The message limit: counted as the server counts (grapheme clusters), shown before it matters ----
  var MAX_TEXT = state.maxText || 16000;
  var countNode = document.getElementById('composer-count');
  var segmenter = window.Intl && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
  function characters(text) {
    if (!segmenter) { return Array.from(text).length; }  // code points: never fewer than the server counts
    var n = 0;
    for (var it = segmenter.segment(text)[Symbol.iterator](), s = it.next(); !s.done; s = it.next()) { n++; }
    return n;
  }
  function grouped(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f'); }

  var notice = '';  // why the last message was refused, until the text is edited
  function updateComposer() {
    if (!composer) { return; }
    var count = characters(composer.value);
    var over = count - MAX_TEXT;
    var reason = '';
    if (!state.writable) { reason = reasonNode.getAttribute('data-fixed') || 'Sending is not possible here.'; }
    else if (over > 0) {
      reason = 'Too long to send: ' + grouped(over) + (over === 1 ? ' character' : ' characters') +
        ' over the limit of ' + grouped(MAX_TEXT) + '. Shorten it, or send it in parts.';
    }
    else if (!navigator.onLine) { reason = 'You are offline: sending resumes when the connection is back.'; }
    else if (sending > 0) { reason = 'Sending…'; }
    composer.disabled = !state.writable;
    sendButton.disabled = reason !== '' || composer.value.trim() === '';
    reasonNode.textContent = reason || notice;
    if (countNode) {
      countNode.hidden = count < MAX_TEXT * 0.9;
      countNode.textContent = grouped(count) + ' / ' + grouped(MAX_TEXT);
      countNode.classList.toggle('over', over > 0);
    }
  }

  // ---- The draft: kept per conversation until it is sent, so a reload loses nothing ----
  // A new chat (`/`) gets a new id at every load: its draft is the new chat's, not the id's.
  function draftKey() { return 'switchboard.draft.' + (location.pathname === '/' ? 'new' : conversationID); }
  function saveDraft() {
    try {
      if (composer.value) { sessionStorage.setItem(draftKey(), composer.value); }
      else { sessionStorage.removeItem(draftKey()); }
    } catch (e) { /* storage unavailable: the draft lives in the page only */ }
  }
  function restoreDraft() {
    try {
      var draft = sessionStorage.getItem(draftKey());
      if (draft && !composer.value) { composer.value = draft; }
    } catch (e) { /* as above */ }
  }
  function grow() {
    composer.style.height = 'auto';
    composer.style.height = Math.min(composer.scrollHeight + 2, window.innerHeight * 0.4) + 'px';
  }
  function newID() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
  }
  function addToSidebar(text) {
    var list = document.getElementById('conversations');
    var href = '/c/' + encodeURIComponent(conversationID);
    if (!list || list.querySelector('a.conversation[href="' + href + '"]')) { return; }
    var li = element('li');
    var a = element('a', { 'class': 'conversation', href: href, 'aria-current': 'page' },
      '<span class="title"></span><span class="sub"><span class="channel">web</span> <time></time></span>');
    a.querySelector('.title').textContent = ChatMarkdown.title(text, conversationID);
    var t = a.querySelector('time'); t.setAttribute('datetime', new Date().toISOString()); t.textContent = 'just now';
    li.appendChild(a);
    list.insertBefore(li, list.firstChild);
    var heading = document.querySelector('.main-head h1');
    if (heading) { heading.textContent = a.querySelector('.title').textContent; }
    document.title = a.querySelector('.title').textContent + ' · Switchboard';
  }
  function post(url, body) {
    return fetch(url, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify(body) });
  }
  function sendMessage(clientID, text, el) {
    sending++; updateComposer();
    var old = el.querySelector('.send-error'); if (old) { old.remove(); }
    var body = { clientID: clientID, text: text };
    if (el.hasAttribute('data-place-parent')) {
      body.parentSeq = Number(el.getAttribute('data-place-parent'));
      if (el.getAttribute('data-place-after')) { body.afterJobID = el.getAttribute('data-place-after'); }
    }
    post('/api/conversations/' + encodeURIComponent(conversationID) + '/messages', body)
      .then(function (res) {
        if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
        if (res.ok) {
          if (location.pathname === '/') { history.replaceState(null, '', '/c/' + encodeURIComponent(conversationID)); }
          addToSidebar(text);
          sidebar.exists();
          return;
        }
        // A refusal (4xx) cannot succeed by retrying: the text goes back into the composer, nothing is lost.
        var final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
        return res.json().then(function (j) { sendFailed(el, j.error || ('HTTP ' + res.status), final); },
          function () { sendFailed(el, 'HTTP ' + res.status, final); });
      }, function () { sendFailed(el, 'the server could not be reached'); })
      .then(function () { sending--; updateComposer(); });
  }
  function sendFailed(el, why, final) {
    if (final) {
      var text = el.getAttribute('data-text') || '';
      el.remove();
      delete users[el.getAttribute('data-client-id')];
      if (composer && !composer.value) { composer.value = text; saveDraft(); grow(); }
      notice = 'Not sent: ' + why;
      updateComposer();
      return;
    }
    var box = element('div', { 'class': 'send-error', role: 'alert' });
    box.textContent = 'Not sent: ' + why + ' ';
    var again = element('button', { type: 'button', 'data-action': 'resend' });
    again.textContent = 'Retry';
    box.appendChild(again);
    el.appendChild(box);
  }
  function send() {
    var text = composer.value;
    if (!text.trim() || sendButton.disabled) { return; }
    composer.value = '';
    saveDraft();
    grow();
    sendText(text);
  }
  // Posts `text` as the owner's next message: shown at once, reconciled with its record by clientID. It follows
  // the last message shown and the reply version shown (`place`: an edit's own place instead); while another
  // message of ours is still unconfirmed, the server's newest (so two quick messages stay in order).
  function sendText(text, place) {
    var clientID = newID();
    var el = userElement(clientID, text, 0, true);
    el.setAttribute('data-text', text);
    var leaf = view.leaf();
    if (!place && leaf && !thread.querySelector('.msg[data-role="user"][data-pending]')) {
      place = { parentSeq: leaf.seq, afterJobID: leaf.afterJobID };
    }
    if (place) {
      el.setAttribute('data-place-parent', place.parentSeq);
      if (place.afterJobID) { el.setAttribute('data-place-after', place.afterJobID); }
    }
    users[clientID] = el;
    append(el);
    thread.scrollTop = thread.scrollHeight;
    sendMessage(clientID, text, el);
  }
  if (composer) {
    composer.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    });
    composer.addEventListener('input', function () { notice = ''; grow(); updateComposer(); saveDraft(); });
    restoreDraft();
    grow();
    document.getElementById('composer-form').addEventListener('submit', function (e) { e.preventDefault(); send(); });
    window.addEventListener('online', updateComposer);
    window.addEventListener('offline', updateComposer);
    updateComposer();
    if (state.writable) { composer.focus(); }
  }

  // ---- Stop: the replies shown that are being written end now (Escape does the same) ----
  function updateStop() {
    if (!stopButton || !view) { return; }
    var live = state.writable && view.streaming().length > 0;
    stopButton.hidden = !live;
    sendButton.hidden = live;
  }
  function stop() {
    var jobs = view.streaming();
    if (!jobs.length) { return false; }
    stopButton.disabled = true;
    Promise.all(jobs.map(function (jobID) {
      return post('/api/conversations/' + encodeURIComponent(conversationID) + '/stop', { jobID: jobID });
    })).then(function () { stopButton.disabled = false; announce('Stopped'); },
      function () { stopButton.disabled = false; notice = 'Not stopped: the server could not be reached'; updateComposer(); });
    return true;
  }
  if (stopButton) { stopButton.addEventListener('click', stop); }
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape' || e.defaultPrevented) { return; }
    var side = document.querySelector('.sidebar.open');
    if (side || e.target.closest('.edit-box') || e.target.id === 'rename-input') { return; }
    if (stop()) { e.preventDefault(); }
  });
  updateStop();

  // ---- Edit: a sent message, changed and sent again, starts a branch beside it ----
  function startEdit(el) {
    if (el.querySelector('.edit-box')) { return; }
    var body = el.querySelector('.body');
    var box = element('div', { 'class': 'edit-box' });
    var area = element('textarea', { 'aria-label': 'Edit the message', rows: '3' });
    area.value = body.textContent;
    box.appendChild(area);
    box.appendChild(element('div', { 'class': 'edit-actions' },
      '<button type="button" class="primary" data-action="edit-send">Send</button> ' +
      '<button type="button" data-action="edit-cancel">Cancel</button>'));
    body.hidden = true;
    el.insertBefore(box, body.nextSibling);
    area.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); box.querySelector('[data-action="edit-send"]').click(); }
      if (e.key === 'Escape') { e.preventDefault(); endEdit(el); }
    });
    area.focus();
  }
  function endEdit(el) {
    var box = el.querySelector('.edit-box');
    if (box) { box.remove(); }
    el.querySelector('.body').hidden = false;
  }

  // ---- Buttons in the thread ----
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) { return navigator.clipboard.writeText(text); }
    var area = element('textarea'); area.value = text; document.body.appendChild(area); area.select();
    try { document.execCommand('copy'); } finally { area.remove(); }
    return Promise.resolve();
  }
  thread.addEventListener('click', function (e) {
    var button = e.target.closest('button[data-action]');
    if (!button) { return; }
    var action = button.getAttribute('data-action');
    if (action === 'approve' || action === 'reject') {
      var card = button.closest('.approval');
      var callID = card.getAttribute('data-call-id');
      card.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
      var old = card.querySelector('.refusal'); if (old) { old.remove(); }
      post('/api/approvals/' + encodeURIComponent(callID), { approve: action === 'approve' }).then(function (res) {
        return res.json().then(function (j) {
          if (res.ok) { setApprovalStatus(card, j.status, 'web:owner'); announce(DECIDED[j.status]); return; }
          var note = element('span', { 'class': 'refusal', role: 'alert' });
          note.textContent = j.error || ('HTTP ' + res.status);
          card.querySelector('.approval-foot').appendChild(note);
          if (j.status && DECIDED[j.status]) { setApprovalStatus(card, j.status); }
          else { setApprovalStatus(card, card.getAttribute('data-status')); }
        });
      }, function () {
        setApprovalStatus(card, card.getAttribute('data-status'));
      });
    } else if (action === 'copy') {
      var msg = button.closest('.msg');
      var r = replies[msg.getAttribute('data-job-id')];
      copy(r && r.text ? r.text : msg.querySelector('.body').innerText).then(function () { button.textContent = 'Copied'; });
    } else if (action === 'copy-code') {
      var code = button.closest('pre').querySelector('code');
      copy(code ? code.textContent : '').then(function () { button.textContent = 'Copied'; });
    } else if (action === 'page') {
      view.page(button.closest('.msg'), Number(button.getAttribute('data-step')));
    } else if (action === 'regenerate') {
      var rm = button.closest('.msg');
      button.disabled = true;
      post('/api/conversations/' + encodeURIComponent(conversationID) + '/regenerate',
        { triggerSeq: Number(rm.getAttribute('data-trigger')), requestID: newID() }).then(function (res) {
        button.disabled = false;
        if (!res.ok) { return res.json().then(function (j) { notice = 'Not regenerated: ' + (j.error || res.status); updateComposer(); announce(notice); }); }
      }, function () { button.disabled = false; notice = 'Not regenerated: the server could not be reached'; updateComposer(); });
    } else if (action === 'edit') {
      startEdit(button.closest('.msg'));
    } else if (action === 'edit-cancel') {
      endEdit(button.closest('.msg'));
    } else if (action === 'edit-send') {
      var em = button.closest('.msg');
      var area = em.querySelector('.edit-box textarea');
      var text = area.value;
      if (!text.trim() || characters(text) > MAX_TEXT) { area.focus(); return; }
      var place = { parentSeq: Number(em.getAttribute('data-parent') || 0), afterJobID: em.getAttribute('data-after-job') || null };
      endEdit(em);
      view.showUpTo(em);
      sendText(text, place);
    } else if (action === 'continue') {
      // The model continues from its own history: the cut reply is the last thing it wrote.
      button.disabled = true;
      sendText('Continue.');
    } else if (action === 'resend') {
      var um = button.closest('.msg');
      sendMessage(um.getAttribute('data-client-id'), um.getAttribute('data-text') || um.querySelector('.body').textContent, um);
    }
  });
})();

// On a narrow screen the sidebar slides over the chat: Menu opens it; its Close button, a touch on the dimmed
// chat beside it and Escape close it.
function setupSidebar() {
  var toggle = document.getElementById('sidebar-toggle');
  var sidebar = document.querySelector('.sidebar');
  var closeButton = document.getElementById('sidebar-close');
  var scrim = document.getElementById('sidebar-scrim');
  if (!toggle || !sidebar) { return; }
  function setOpen(open) {
    sidebar.classList.toggle('open', open);
    toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (scrim) { scrim.hidden = !open; }
  }
  toggle.addEventListener('click', function () {
    var open = !sidebar.classList.contains('open');
    setOpen(open);
    if (open) { var first = sidebar.querySelector('a, button'); if (first) { first.focus(); } }
  });
  function close() { setOpen(false); toggle.focus(); }
  if (closeButton) { closeButton.addEventListener('click', close); }
  if (scrim) { scrim.addEventListener('click', close); }
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && sidebar.classList.contains('open')) { close(); }
  });
}
