// The thread: its elements, and the fold of the conversation's events into them (as ThreadFold folds the log;
// the same states and status texts, so a page rendered by the server and one built here look the same).
// `ChatThread(options)` takes over the server-rendered thread and returns what chat.js drives it with.
function ChatThread(options) {
  'use strict';
  var thread = options.thread;
  var state = options.state;
  var jumpButton = options.jumpButton;
  var composer = options.composer;
  var announce = options.announce;
  var esc = ChatMarkdown.esc;
  var markdown = ChatMarkdown.markdown;

  var users = {};      // clientID -> element
  var replies = {};    // jobID -> {el, state, status, token, nextIndex, text, failure, model, parts, fromParts}
  var approvals = {};  // callID -> element
  var calls = {};      // callID -> tool.call payload

  // ---- Time ----
  function relative(date) {
    var s = Math.floor((Date.now() - date.getTime()) / 1000);
    if (s < 60) { return 'just now'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ago'; }
    if (s < 86400) { return Math.floor(s / 3600) + ' h ago'; }
    if (s < 7 * 86400) { return Math.floor(s / 86400) + ' d ago'; }
    return date.toISOString().slice(0, 10);
  }
  // Every message's time: relative, and the absolute one in the reader's own zone on hover.
  function refreshTimes() {
    document.querySelectorAll('time[datetime]').forEach(function (t) {
      var date = new Date(t.getAttribute('datetime'));
      t.textContent = relative(date);
      t.title = date.toLocaleString();
    });
  }
  function stamp(t, date) {
    t.setAttribute('datetime', date.toISOString());
    t.title = date.toLocaleString();
    t.textContent = relative(date);
    return t;
  }
  function timeElement(date) { return stamp(document.createElement('time'), date); }
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
    meta.appendChild(timeElement(new Date()));
    meta.appendChild(document.createTextNode(' '));
    meta.appendChild(element('span', { 'class': 'pager' }));
    var body = element('div', { 'class': 'body' });
    body.textContent = text;
    el.appendChild(meta);
    el.appendChild(body);
    el.appendChild(element('div', { 'class': 'actions' }, '<button type="button" data-action="edit">Edit</button>'));
    return el;
  }
  // Code blocks: highlighted (highlight.js: spans only, so the code's textContent — what Copy copies — is the code as
  // written), under a header with the language and a Copy button. A fence still open at the end of a streaming reply
  // has no language class yet (markdown.js adds it when the fence closes): `openInfo` is its info string.
  function decorateCode(body, openInfo) {
    var pres = body.querySelectorAll('pre');
    pres.forEach(function (pre, k) {
      var code = pre.querySelector('code');
      if (!code || code.hasAttribute('data-highlighted')) { return; }
      var cls = code.getAttribute('class') || '';
      var language = cls.indexOf('language-') === 0 ? cls.slice(9) : (k === pres.length - 1 && openInfo) || '';
      code.setAttribute('data-highlighted', '');
      code.innerHTML = SBHighlight.highlight(code.textContent, language);
      var head = element('span', { 'class': 'code-head' }, '<span class="code-lang"></span>' +
        '<button type="button" class="copy-code" data-action="copy-code">Copy</button>');
      head.firstChild.textContent = SBHighlight.languageLabel(language);
      pre.insertBefore(head, code);
    });
  }
  // The info string of a fence left open at the end of `text` (as markdown.js reads fences), else null.
  function openFence(text) {
    var info = null;
    String(text || '').split('\n').forEach(function (line) {
      var trimmed = line.replace(/^ +/, '');
      if (trimmed.indexOf('```') !== 0) { return; }
      info = info === null ? /^[A-Za-z0-9+-]*/.exec(trimmed.slice(3).trim())[0] : null;
    });
    return info;
  }
  function renderReply(r) {
    r.el.setAttribute('data-state', r.state);
    r.el.setAttribute('aria-busy', r.state === 'streaming' ? 'true' : 'false');
    r.el.querySelector('.status').textContent = r.status;
    r.el.querySelector('.model').textContent = r.model ? ' · ' + r.model : '';
    var html;
    r.el.toggleAttribute('data-stopped', Boolean(r.stopped));
    if (r.state === 'failed') {
      html = (r.text ? markdown(r.text) : '') + '<p class="failure">' + esc(r.failure || 'The reply failed.') + '</p>';
    } else if (r.state === 'final') {
      html = (r.text ? markdown(r.text) : '<p class="empty">(no text)</p>') + (r.stopped ? STOPPED : r.cut ? CUT : '') +
        (r.undelivered ? '<p class="failure undelivered">' + esc(r.undelivered) + '</p>' : '');
      r.el.toggleAttribute('data-cut', Boolean(r.cut));
    } else {
      html = markdown(r.text);
    }
    var body = r.el.querySelector('.body');
    var before = nearBottom();
    body.innerHTML = html;
    decorateCode(body, r.state === 'streaming' ? openFence(r.text) : null);
    follow(before);
  }
  // Under a reply cut at the length limit (ThreadView's `cutHTML`, the same markup).
  var CUT = '<p class="cut">The reply was cut at the model\u2019s length limit. ' +
    '<button type="button" data-action="continue">Continue</button></p>';
  // Under a stopped reply (ThreadView's `stoppedHTML`).
  var STOPPED = '<p class="stopped">Stopped.</p>';
  var dirty = {};
  var frame = 0;
  function scheduleRender(r) {
    dirty[r.jobID] = r;
    if (frame) { return; }
    frame = requestAnimationFrame(function () {
      frame = 0;
      var list = dirty; dirty = {};
      Object.keys(list).forEach(function (k) { renderReply(list[k]); });
      if (options.onChange) { options.onChange(); }
    });
  }
  function reply(jobID) {
    if (replies[jobID]) { return replies[jobID]; }
    var el = element('div', { 'class': 'msg', 'data-role': 'assistant', 'data-state': 'streaming',
      'data-message-id': 'reply:' + jobID, 'data-job-id': jobID, 'data-trigger': '0', 'data-enqueue-seq': '0',
      'aria-busy': 'true' },
      '<div class="meta"><span class="who">Assistant</span><span class="model"></span> <time></time> ' +
      '<span class="status"></span> <span class="pager"></span></div>' +
      '<div class="body"></div><div class="actions"><button type="button" class="copy" data-action="copy">Copy</button> ' +
      '<button type="button" data-action="regenerate">Regenerate</button></div>');
    var r = { jobID: jobID, el: el, state: 'streaming', status: 'queued', token: 0, nextIndex: 0, text: '',
      failure: null, model: null, parts: {}, fromParts: false };
    stamp(el.querySelector('time'), new Date());
    replies[jobID] = r;
    append(el);
    return r;
  }
  function joinedParts(r) {
    return Object.keys(r.parts).map(Number).sort(function (a, b) { return a - b; })
      .map(function (k) { return r.parts[k]; }).join('\n');
  }
  var failureText = ChatMarkdown.failureText, undeliveredText = ChatMarkdown.undeliveredText, deliveryJobs = {};
  function approvalElement(d, call) {
    var risk = call ? call.risk : 'unknown';
    var args = call ? call.inputJSON : '{}';
    args = ChatMarkdown.indentJSON(args);
    var el = element('div', { 'class': 'approval', 'data-call-id': d.callID, 'data-job-id': d.jobID, 'data-status': 'awaiting',
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
    el.querySelector('.approval-state').textContent =
      DECIDED[status] + (status !== 'expired' ? ChatMarkdown.decidedBy(by) : '');
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
        u.setAttribute('data-parent', d.parentSeq !== undefined && d.parentSeq !== null ? d.parentSeq : lastUserSeq);
        if (d.afterJobID) { u.setAttribute('data-after-job', d.afterJobID); } else { u.removeAttribute('data-after-job'); }
        lastUserSeq = seq;
        branches.showNewest();  // a new message: the page shows its branch
        break;
      case 'job.enqueued':
        if (d.kind === 'subagent' || d.kind === 'scheduled') { return; }
        r = reply(d.jobID); r.status = 'queued';
        r.el.setAttribute('data-trigger', d.triggeringMessageSeq || 0);
        r.el.setAttribute('data-enqueue-seq', seq);
        scheduleRender(r);
        branches.showNewest();
        break;
      case 'job.cancelled':
        r = replies[d.jobID];
        if (r) {
          r.stopped = true;
          if (r.state !== 'final') {
            r.state = 'final'; r.status = ''; r.failure = null;
            stamp(r.el.querySelector('.meta time'), new Date());
          }
          scheduleRender(r);
        }
        break;
      case 'job.retriggered':
        r = replies[d.jobID];
        if (r) { r.el.setAttribute('data-trigger', d.messageSeq); branches.showNewest(); }
        break;
      case 'command.handled':
        if (!thread.querySelector('.command-note[data-seq="' + d.messageSeq + '"]')) {
          var note = element('p', { 'class': 'command-note', 'data-command': d.command, 'data-seq': String(d.messageSeq) });
          note.textContent = d.answer;
          append(note);
        }
        break;
      case 'conversation.renamed':
        if (options.onRenamed) { options.onRenamed(d.title); }
        break;
      case 'conversation.deleted':
        Object.keys(users).forEach(function (k) { delete users[k]; });
        Object.keys(replies).forEach(function (k) { delete replies[k]; });
        Object.keys(approvals).forEach(function (k) { delete approvals[k]; });
        thread.querySelectorAll('.msg, .approval, .empty-thread').forEach(function (el) { el.remove(); });
        var gone = element('p', { 'class': 'deleted-thread' }, 'This conversation was deleted ');
        gone.appendChild(timeElement(new Date()));
        gone.appendChild(document.createTextNode(ChatMarkdown.decidedBy(d.by) + '.'));
        thread.insertBefore(gone, jumpButton);
        if (options.onDeleted) { options.onDeleted(d); }
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
          if (r.state !== 'final') { stamp(r.el.querySelector('.meta time'), new Date()); }
          r.cut = d.finishReason === 'length';
          r.stopped = d.finishReason === 'stopped';
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
          // Above the reply it controls (the reply's text follows from the approved call).
          if (replies[d.jobID]) { thread.insertBefore(card, replies[d.jobID].el); } else { append(card); }
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
      case 'delivery.failed':
        r = replies[deliveryJobs[d.deliveryID]];
        if (d.permanent && r) { r.undelivered = undeliveredText(d.errorCode, d.message); scheduleRender(r); }
        break;
      case 'delivery.enqueued':
        if (!d.jobID) { return; }
        deliveryJobs[d.deliveryID] = d.jobID;
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
      text: s.text || '', failure: null, parts: {}, fromParts: false, cut: el.hasAttribute('data-cut'),
      stopped: el.hasAttribute('data-stopped'),
      model: el.querySelector('.model').textContent.replace(/^ · /, '') || null };
    decorateCode(el.querySelector('.body'), el.getAttribute('data-state') === 'streaming' ? openFence(s.text) : null);
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

  // ---- Versions and branches: which messages are shown (ChatTree.view) ----
  var lastUserSeq = 0;
  thread.querySelectorAll('.msg[data-role="user"][data-seq]').forEach(function (el) {
    lastUserSeq = Math.max(lastUserSeq, Number(el.getAttribute('data-seq')) || 0);
  });
  var branches = ChatTree.view(thread, { announce: announce, onChange: function () { if (options.onChange) { options.onChange(); } } });
  // The replies shown that are still being written.
  function streaming() {
    return Object.keys(replies).filter(function (id) {
      return replies[id].state === 'streaming' && !replies[id].el.hidden;
    });
  }
  branches.layout();

  return { apply: apply, element: element, append: append, userElement: userElement, users: users,
    replies: replies, setApprovalStatus: setApprovalStatus, decided: DECIDED, page: branches.page,
    leaf: branches.leaf, streaming: streaming, showUpTo: branches.showUpTo };
}
