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
    'tool.result', 'delivery.enqueued'];

  var users = {};      // clientID -> element
  var replies = {};    // jobID -> {el, state, status, token, nextIndex, text, failure, model, parts, fromParts}
  var approvals = {};  // callID -> element
  var calls = {};      // callID -> tool.call payload
  var sending = 0;

  // ---- Markdown (the subset of Markdown.swift) ----
  var ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; }); }
  function isWord(c) { return c !== undefined && /[\p{L}\p{N}]/u.test(c); }
  function safeURL(u) {
    var l = u.toLowerCase();
    return (l.indexOf('https://') === 0 || l.indexOf('http://') === 0 || l.indexOf('mailto:') === 0) &&
      !/[\s"<>]/.test(u);
  }
  function link(u, label) {
    return '<a href="' + esc(u) + '" rel="noopener noreferrer" target="_blank">' + label + '</a>';
  }
  function inline(text) {
    var chars = Array.from(text), out = '', i = 0, end, close;
    function find(m, from) {
      for (var j = from; j + m.length <= chars.length; j++) {
        var ok = true;
        for (var k = 0; k < m.length; k++) { if (chars[j + k] !== m[k]) { ok = false; break; } }
        if (ok) { return j; }
      }
      return -1;
    }
    while (i < chars.length) {
      var c = chars[i];
      if (c === '`' && (end = find(['`'], i + 1)) > i + 1) {
        out += '<code>' + esc(chars.slice(i + 1, end).join('')) + '</code>'; i = end + 1; continue;
      }
      if (c === '[' && (close = find([']', '('], i + 1)) >= 0 && (end = find([')'], close + 2)) >= 0) {
        var label = chars.slice(i + 1, close).join(''), url = chars.slice(close + 2, end).join('').trim();
        if (safeURL(url) && label) { out += link(url, inline(label)); i = end + 1; continue; }
      }
      // `__` is strong only between word boundaries (CommonMark): `window.__x__y` stays literal.
      if ((c === '*' || c === '_') && chars[i + 1] === c && (c === '*' || !isWord(chars[i - 1])) &&
          (end = find([c, c], i + 2)) > i + 2 && (c === '*' || !isWord(chars[end + 2]))) {
        out += '<strong>' + inline(chars.slice(i + 2, end).join('')) + '</strong>'; i = end + 2; continue;
      }
      // A run of underscores that is not strong stays literal as a whole (it is never half emphasis).
      if (c === '_' && chars[i + 1] === '_') {
        end = i;
        while (chars[end] === '_') { end++; }
        out += chars.slice(i, end).join(''); i = end; continue;
      }
      if ((c === '*' || c === '_') && i + 1 < chars.length && chars[i + 1] !== ' ' && chars[i + 1] !== c &&
          (c === '*' || !isWord(chars[i - 1])) && (end = find([c], i + 1)) >= 0 && chars[end - 1] !== ' ' &&
          (c === '*' || !isWord(chars[end + 1]))) {
        out += '<em>' + inline(chars.slice(i + 1, end).join('')) + '</em>'; i = end + 1; continue;
      }
      if (c === 'h' && !isWord(chars[i - 1])) {
        var rest = chars.slice(i, i + 8).join('');
        if (rest.indexOf('https://') === 0 || rest.indexOf('http://') === 0) {
          end = i;
          while (end < chars.length && !/\s/.test(chars[end]) && chars[end] !== '<' && chars[end] !== '>') { end++; }
          while (end > i && '.,;:!?)"\''.indexOf(chars[end - 1]) >= 0) { end--; }
          var u = chars.slice(i, end).join('');
          if (u.length > 8) { out += link(u, esc(u)); i = end; continue; }
        }
      }
      out += esc(c); i++;
    }
    return out;
  }
  function listItem(line) {
    var m = /^([-*+]) (.*)$/.exec(line);
    if (m) { return { ordered: false, text: m[2] }; }
    m = /^(\d{1,9})[.)] (.*)$/.exec(line);
    return m ? { ordered: true, text: m[2] } : null;
  }
  function markdown(text) {
    var out = '', paragraph = [], list = null, quote = [], fence = null;
    function flushParagraph() {
      if (paragraph.length) { out += '<p>' + paragraph.map(inline).join('<br>') + '</p>'; paragraph = []; }
    }
    function flushList() {
      if (!list) { return; }
      var tag = list.ordered ? 'ol' : 'ul';
      out += '<' + tag + '>' + list.items.map(function (t) { return '<li>' + inline(t) + '</li>'; }).join('') +
        '</' + tag + '>';
      list = null;
    }
    function flushQuote() { if (quote.length) { out += '<blockquote>' + markdown(quote.join('\n')) + '</blockquote>'; quote = []; } }
    function flushAll() { flushParagraph(); flushList(); flushQuote(); }
    String(text).split('\n').forEach(function (line) {
      var trimmed = line.replace(/^ +/, '');
      if (fence) {
        if (trimmed.indexOf('```') === 0) {
          out += '<pre><code' + (fence.info ? ' class="language-' + esc(fence.info) + '"' : '') + '>' +
            esc(fence.lines.join('\n')) + '</code></pre>';
          fence = null;
        } else { fence.lines.push(line); }
        return;
      }
      if (trimmed.indexOf('```') === 0) {
        flushAll();
        var info = /^[A-Za-z0-9+-]*/.exec(trimmed.slice(3).trim())[0];
        fence = { info: info, lines: [] };
        return;
      }
      if (trimmed === '') { flushAll(); return; }
      if (trimmed[0] === '>') { flushParagraph(); flushList(); quote.push(trimmed.slice(1).replace(/^ +/, '')); return; }
      flushQuote();
      var item = listItem(trimmed);
      if (item) {
        flushParagraph();
        if (list && list.ordered !== item.ordered) { flushList(); }
        if (!list) { list = { ordered: item.ordered, items: [] }; }
        list.items.push(item.text);
        return;
      }
      var h = /^(#{1,6}) (.*)$/.exec(trimmed);
      if (h) {
        flushAll();
        var level = Math.min(6, h[1].length + 2);
        out += '<h' + level + '>' + inline(h[2].replace(/^ +/, '')) + '</h' + level + '>';
        return;
      }
      if (list && line.indexOf('  ') === 0) { list.items[list.items.length - 1] += ' ' + trimmed; return; }
      flushList();
      paragraph.push(line);
    });
    if (fence) { out += '<pre><code>' + esc(fence.lines.join('\n')) + '</code></pre>'; }
    flushAll();
    return out;
  }

  // ---- Time ----
  function relative(date) {
    var s = Math.floor((Date.now() - date.getTime()) / 1000);
    if (s < 60) { return 'just now'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ago'; }
    if (s < 86400) { return Math.floor(s / 3600) + ' h ago'; }
    if (s < 7 * 86400) { return Math.floor(s / 86400) + ' d ago'; }
    return date.toISOString().slice(0, 10);
  }
  function refreshTimes() {
    document.querySelectorAll('time[datetime]').forEach(function (t) {
      t.textContent = relative(new Date(t.getAttribute('datetime')));
    });
  }
  setInterval(refreshTimes, 30000);

  // ---- Scrolling ----
  function nearBottom() { return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80; }
  function follow(wasNearBottom) {
    if (wasNearBottom) { thread.scrollTop = thread.scrollHeight; jumpButton.hidden = true; }
    else { jumpButton.hidden = false; }
  }
  thread.addEventListener('scroll', function () { if (nearBottom()) { jumpButton.hidden = true; } });
  jumpButton.addEventListener('click', function () { thread.scrollTop = thread.scrollHeight; jumpButton.hidden = true; composer && composer.focus(); });
  thread.scrollTop = thread.scrollHeight;

  // ---- Thread elements ----
  function element(tag, attrs, html) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (html !== undefined) { el.innerHTML = html; }
    return el;
  }
  function append(el) {
    var empty = thread.querySelector('.empty-thread');
    if (empty) { empty.remove(); }
    var before = nearBottom();
    thread.insertBefore(el, jumpButton);
    follow(before);
  }
  function userElement(clientID, text, seq, pending) {
    var el = element('div', { 'class': 'msg', 'data-role': 'user', 'data-client-id': clientID });
    if (seq) { el.setAttribute('data-seq', seq); }
    if (pending) { el.setAttribute('data-pending', ''); }
    var meta = element('div', { 'class': 'meta' }, '<span class="who">You</span> ');
    var time = element('time', { datetime: new Date().toISOString() });
    time.textContent = 'just now';
    meta.appendChild(time);
    var body = element('div', { 'class': 'body' });
    body.textContent = text;
    el.appendChild(meta);
    el.appendChild(body);
    return el;
  }
  function decorateCode(body) {
    body.querySelectorAll('pre').forEach(function (pre) {
      if (pre.querySelector('.copy-code')) { return; }
      var b = element('button', { type: 'button', 'class': 'copy-code', 'data-action': 'copy-code' });
      b.textContent = 'Copy';
      pre.appendChild(b);
    });
  }
  function renderReply(r) {
    r.el.setAttribute('data-state', r.state);
    r.el.setAttribute('aria-busy', r.state === 'streaming' ? 'true' : 'false');
    r.el.querySelector('.status').textContent = r.status;
    r.el.querySelector('.model').textContent = r.model ? ' · ' + r.model : '';
    var html;
    if (r.state === 'failed') {
      html = (r.text ? markdown(r.text) : '') + '<p class="failure">' + esc(r.failure || 'The reply failed.') + '</p>';
    } else if (r.state === 'final') {
      html = r.text ? markdown(r.text) : '<p class="empty">(no text)</p>';
    } else {
      html = markdown(r.text);
    }
    var body = r.el.querySelector('.body');
    var before = nearBottom();
    body.innerHTML = html;
    decorateCode(body);
    follow(before);
  }
  var dirty = {};
  var frame = 0;
  function scheduleRender(r) {
    dirty[r.jobID] = r;
    if (frame) { return; }
    frame = requestAnimationFrame(function () {
      frame = 0;
      var list = dirty; dirty = {};
      Object.keys(list).forEach(function (k) { renderReply(list[k]); });
    });
  }
  function reply(jobID) {
    if (replies[jobID]) { return replies[jobID]; }
    var el = element('div', { 'class': 'msg', 'data-role': 'assistant', 'data-state': 'streaming',
      'data-message-id': 'reply:' + jobID, 'data-job-id': jobID, 'aria-busy': 'true' },
      '<div class="meta"><span class="who">Assistant</span><span class="model"></span> <span class="status"></span></div>' +
      '<div class="body"></div><div class="actions"><button type="button" class="copy" data-action="copy">Copy</button></div>');
    var r = { jobID: jobID, el: el, state: 'streaming', status: 'queued', token: 0, nextIndex: 0, text: '',
      failure: null, model: null, parts: {}, fromParts: false };
    replies[jobID] = r;
    append(el);
    return r;
  }
  function joinedParts(r) {
    return Object.keys(r.parts).map(Number).sort(function (a, b) { return a - b; })
      .map(function (k) { return r.parts[k]; }).join('\n');
  }
  var FAILURES = { rate_limit: 'the model is rate limited', timeout: 'the model did not answer in time',
    server_error: "the model's server failed", network: 'the model could not be reached',
    claim_expired: 'the worker stopped answering', permanent: 'the request was refused' };
  function failureText(reason, message) {
    var why = FAILURES[reason] || reason;
    return message ? 'The reply failed: ' + why + ' — ' + message : 'The reply failed: ' + why + '.';
  }
  function approvalElement(d, call) {
    var risk = call ? call.risk : 'unknown';
    var args = call ? call.inputJSON : '{}';
    try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (e) { /* shown as given */ }
    var el = element('div', { 'class': 'approval', 'data-call-id': d.callID, 'data-status': 'awaiting',
      role: 'group', 'aria-label': 'Approval for ' + (call ? call.toolName : 'tool') },
      '<div class="approval-head"><span class="tool"></span> <span class="risk risk-' + esc(risk) + '">' +
      esc(risk) + ' risk</span></div><pre class="args"></pre><div class="approval-foot">' +
      '<span class="approval-state">Waiting for your answer</span> <span class="countdown"></span> ' +
      '<button type="button" data-action="approve">Approve</button> ' +
      '<button type="button" data-action="reject">Reject</button></div>');
    el.querySelector('.tool').textContent = call ? call.toolName : 'tool';
    el.querySelector('.args').textContent = args;
    return el;
  }
  var DECIDED = { awaiting: 'Waiting for your answer', approved: 'Approved', rejected: 'Rejected',
    expired: 'Expired unanswered' };
  function setApprovalStatus(el, status, by) {
    el.setAttribute('data-status', status);
    el.querySelector('.approval-state').textContent = DECIDED[status] + (by && status !== 'expired' ? ' by ' + by : '');
    el.querySelectorAll('button').forEach(function (b) { b.disabled = status !== 'awaiting'; });
    if (status !== 'awaiting') { el.querySelector('.countdown').textContent = ''; }
  }

  // ---- Folding events (as ThreadFold does) ----
  function apply(type, d, seq) {
    var r;
    switch (type) {
      case 'message.received':
        var u = users[d.externalID];
        if (u) {
          u.removeAttribute('data-pending');
          var err = u.querySelector('.send-error'); if (err) { err.remove(); }
        } else {
          u = userElement(d.externalID, d.text, seq, false);
          users[d.externalID] = u;
          append(u);
        }
        u.setAttribute('data-seq', seq);
        break;
      case 'job.enqueued':
        if (d.kind === 'subagent') { return; }
        r = reply(d.jobID); r.status = 'queued'; scheduleRender(r);
        break;
      case 'job.claimed':
        r = replies[d.jobID];
        if (r && r.state === 'streaming') { r.status = d.attempt > 1 ? 'thinking (attempt ' + d.attempt + ')' : 'thinking'; scheduleRender(r); }
        break;
      case 'assistant.delta':
        r = reply(d.jobID);
        if (r.state !== 'streaming' || d.jobToken < r.token) { return; }
        if (d.jobToken > r.token) { r.token = d.jobToken; r.text = ''; r.nextIndex = 0; }
        if (d.index < r.nextIndex) { return; }
        r.text += d.text; r.nextIndex = d.index + 1; r.status = 'writing';
        scheduleRender(r);
        break;
      case 'assistant.message':
        r = reply(d.jobID);
        if (d.final) {
          r.state = 'final'; r.text = d.text; r.model = d.modelUsed || null; r.status = ''; r.failure = null;
        } else if (r.state === 'streaming' && d.jobToken >= r.token) {
          r.token = d.jobToken; r.text = d.text;
        }
        scheduleRender(r);
        break;
      case 'tool.call':
        calls[d.callID] = d;
        r = reply(d.jobID);
        if (r.state === 'streaming') { r.status = 'using ' + d.toolName; scheduleRender(r); }
        break;
      case 'tool.approval':
        var status = { requested: 'awaiting', approved: 'approved', rejected: 'rejected', expired: 'expired' }[d.decision];
        if (!status) { return; }
        var card = approvals[d.callID];
        if (!card) {
          card = approvalElement(d, calls[d.callID]);
          approvals[d.callID] = card;
          append(card);
        }
        if (d.expiresAt) { card.setAttribute('data-expires-at', Math.floor(d.expiresAt / 1000)); }
        setApprovalStatus(card, status, d.decidedBy);
        tick();
        r = replies[d.jobID];
        if (r && r.state === 'streaming') { r.status = status === 'awaiting' ? 'waiting for your approval' : 'thinking'; scheduleRender(r); }
        break;
      case 'tool.result':
        r = replies[d.jobID];
        if (r && r.state === 'streaming') { r.status = 'thinking'; scheduleRender(r); }
        break;
      case 'job.failed':
        r = replies[d.jobID];
        if (r && r.state === 'streaming') { r.status = 'attempt ' + d.attempt + ' failed (' + d.reason + ')'; scheduleRender(r); }
        break;
      case 'job.retried':
        r = replies[d.jobID];
        if (r && r.state === 'streaming') { r.status = 'retrying (attempt ' + d.attempt + ') after ' + d.reason; scheduleRender(r); }
        break;
      case 'job.dead':
        r = replies[d.jobID];
        if (r && r.state !== 'final') {
          r.state = 'failed'; r.status = 'failed'; r.failure = failureText(d.lastReason, d.lastMessage);
          scheduleRender(r);
          announce(r.failure);
        }
        break;
      case 'job.requeued':
        r = replies[d.jobID];
        if (r && r.state !== 'final') { r.state = 'streaming'; r.status = 'queued'; r.failure = null; scheduleRender(r); }
        break;
      case 'job.completed':
        r = replies[d.jobID];
        if (r && r.state !== 'final') {
          r.state = 'final'; r.status = '';
          if (!r.text && Object.keys(r.parts).length) { r.text = joinedParts(r); r.fromParts = true; }
          if (!r.model) { r.model = d.modelUsed || null; }
          scheduleRender(r);
        }
        break;
      case 'delivery.enqueued':
        if (!d.jobID) { return; }
        r = reply(d.jobID);
        r.parts[d.part] = d.text;
        if (r.state === 'final' && (!r.text || r.fromParts)) { r.text = joinedParts(r); r.fromParts = true; scheduleRender(r); }
        break;
    }
  }

  // Server-rendered items: pick up where the page left off.
  thread.querySelectorAll('.msg[data-role="user"]').forEach(function (el) { users[el.getAttribute('data-client-id')] = el; });
  thread.querySelectorAll('.approval').forEach(function (el) { approvals[el.getAttribute('data-call-id')] = el; });
  thread.querySelectorAll('.msg[data-role="assistant"]').forEach(function (el) {
    var jobID = el.getAttribute('data-job-id');
    var s = state.replies[jobID] || {};
    replies[jobID] = { jobID: jobID, el: el, state: el.getAttribute('data-state'),
      status: el.querySelector('.status').textContent, token: s.token || 0, nextIndex: s.nextIndex || 0,
      text: s.text || '', failure: null, parts: {}, fromParts: false,
      model: el.querySelector('.model').textContent.replace(/^ · /, '') || null };
    decorateCode(el.querySelector('.body'));
  });

  // ---- Live region for things worth announcing once ----
  var live = document.getElementById('announcer');
  function announce(text) { if (live) { live.textContent = text; } }

  // ---- Event stream ----
  var source = null, retryDelay = 2000, retryTimer = 0;
  function setConnection(text) { connectionNode.textContent = text; updateComposer(); }
  function onEvent(e) {
    var seq = Number(e.lastEventId);
    if (!(seq > lastSeq)) { return; }  // never applied twice
    lastSeq = seq;
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    apply(e.type, data, seq);
  }
  function connect() {
    retryTimer = 0;
    source = new EventSource('/api/conversations/' + encodeURIComponent(conversationID) + '/events?after=' + lastSeq);
    source.onopen = function () { retryDelay = 2000; setConnection(''); };
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
  function updateComposer() {
    if (!composer) { return; }
    var reason = '';
    if (!state.writable) { reason = reasonNode.getAttribute('data-fixed') || 'Sending is not possible here.'; }
    else if (!navigator.onLine) { reason = 'You are offline: sending resumes when the connection is back.'; }
    else if (sending > 0) { reason = 'Sending…'; }
    composer.disabled = !state.writable;
    sendButton.disabled = reason !== '' || composer.value.trim() === '';
    reasonNode.textContent = reason;
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
    a.querySelector('.title').textContent = text.slice(0, 80);
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
    post('/api/conversations/' + encodeURIComponent(conversationID) + '/messages', { clientID: clientID, text: text })
      .then(function (res) {
        if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
        if (res.ok) {
          if (location.pathname === '/') { history.replaceState(null, '', '/c/' + encodeURIComponent(conversationID)); }
          addToSidebar(text);
          return;
        }
        return res.json().then(function (j) { sendFailed(el, j.error || ('HTTP ' + res.status)); },
          function () { sendFailed(el, 'HTTP ' + res.status); });
      }, function () { sendFailed(el, 'the server could not be reached'); })
      .then(function () { sending--; updateComposer(); });
  }
  function sendFailed(el, why) {
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
    var clientID = newID();
    var el = userElement(clientID, text, 0, true);
    el.setAttribute('data-text', text);
    users[clientID] = el;
    append(el);
    thread.scrollTop = thread.scrollHeight;
    composer.value = '';
    grow();
    sendMessage(clientID, text, el);
  }
  if (composer) {
    composer.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    });
    composer.addEventListener('input', function () { grow(); updateComposer(); });
    document.getElementById('composer-form').addEventListener('submit', function (e) { e.preventDefault(); send(); });
    window.addEventListener('online', updateComposer);
    window.addEventListener('offline', updateComposer);
    updateComposer();
    if (state.writable) { composer.focus(); }
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
    } else if (action === 'resend') {
      var um = button.closest('.msg');
      sendMessage(um.getAttribute('data-client-id'), um.getAttribute('data-text') || um.querySelector('.body').textContent, um);
    }
  });

  // ---- Approval countdowns ----
  function tick() {
    thread.querySelectorAll('.approval[data-status="awaiting"][data-expires-at]').forEach(function (card) {
      var left = Math.round((Number(card.getAttribute('data-expires-at')) - Date.now()) / 1000);
      var node = card.querySelector('.countdown');
      if (left <= 0) {
        node.textContent = 'expired';
        card.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
      } else {
        node.textContent = 'expires in ' + Math.floor(left / 60) + ':' + ('0' + (left % 60)).slice(-2);
      }
    });
  }
  tick();
  setInterval(tick, 1000);
})();

function setupSidebar() {
  var toggle = document.getElementById('sidebar-toggle');
  var sidebar = document.querySelector('.sidebar');
  if (!toggle || !sidebar) { return; }
  toggle.addEventListener('click', function () {
    var open = sidebar.classList.toggle('open');
    toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) { var first = sidebar.querySelector('a, button'); if (first) { first.focus(); } }
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && sidebar.classList.contains('open')) {
      sidebar.classList.remove('open'); toggle.setAttribute('aria-expanded', 'false'); toggle.focus();
    }
  });
}