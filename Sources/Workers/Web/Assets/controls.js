// The sidebar and the conversation's own controls: search, the live list (a conversation with new activity moves
// to the top without a reload), Rename and Delete. `ChatSidebar(options)` returns what chat.js drives it with.
function ChatSidebar(options) {
  'use strict';
  var conversationID = options.conversationID;
  var list = document.getElementById('conversations');
  var results = document.getElementById('search-results');
  var search = document.getElementById('search');
  var heading = document.querySelector('.main-head h1');
  var controls = document.getElementById('conversation-controls');
  var confirmBox = document.getElementById('delete-confirm');

  function post(url, body) {
    return fetch(url, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': options.csrf }, body: JSON.stringify(body || {}) });
  }
  function path(id) { return '/c/' + encodeURIComponent(id); }
  function relative(date) {
    var s = Math.floor((Date.now() - date.getTime()) / 1000);
    if (s < 60) { return 'just now'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ago'; }
    if (s < 86400) { return Math.floor(s / 3600) + ' h ago'; }
    return date.toISOString().slice(0, 10);
  }

  // ---- The list: one entry per conversation, newest activity first ----
  function entry(summary) {
    var li = document.createElement('li');
    var a = document.createElement('a');
    a.className = 'conversation';
    a.setAttribute('href', path(summary.conversationID));
    a.innerHTML = '<span class="title"></span><span class="sub"><span class="channel"></span> <time></time></span>';
    li.appendChild(a);
    return li;
  }
  function fill(li, summary) {
    var a = li.querySelector('a.conversation');
    a.querySelector('.title').textContent = summary.title;
    a.querySelector('.channel').textContent = summary.channel;
    var t = a.querySelector('time');
    if (summary.lastActive) {
      var date = new Date(summary.lastActive);
      t.setAttribute('datetime', summary.lastActive); t.textContent = relative(date); t.title = date.toLocaleString();
    }
    li.setAttribute('data-last-seq', summary.lastSeq);
    if (summary.conversationID === conversationID) { a.setAttribute('aria-current', 'page'); }
  }
  function find(id) {
    var a = list && list.querySelector('a.conversation[href="' + path(id).replace(/"/g, '\\"') + '"]');
    return a ? a.parentNode : null;
  }
  function update(summary) {
    if (!list) { return; }
    var li = find(summary.conversationID);
    if (summary.deleted) { if (li) { li.remove(); } return; }
    var moved = !li || Number(li.getAttribute('data-last-seq') || 0) < summary.lastSeq;
    if (!li) { li = entry(summary); }
    fill(li, summary);
    if (moved && list.firstChild !== li) { list.insertBefore(li, list.firstChild); }
    if (summary.conversationID === conversationID) { setHeading(summary.title); }
  }
  function reload() {
    fetch('/api/conversations', { credentials: 'same-origin' }).then(function (res) {
      if (!res.ok) { return; }
      return res.json().then(function (all) {
        var keep = {};
        all.forEach(function (s) { keep[s.conversationID] = true; });
        list.querySelectorAll('li').forEach(function (li) {
          var href = li.querySelector('a.conversation').getAttribute('href');
          var id = decodeURIComponent(href.slice(3));
          if (!keep[id]) { li.remove(); }
        });
        all.slice().reverse().forEach(function (s) {
          var li = find(s.conversationID) || entry(s);
          fill(li, s);
          list.insertBefore(li, list.firstChild);
        });
      });
    }, function () { /* the next reconnect tries again */ });
  }
  function setHeading(title) {
    if (heading && !document.getElementById('rename-input')) { heading.textContent = title; }
    document.title = title + ' · Switchboard';
  }

  // ---- Search: titles and text, as you type ----
  var timer = 0, asked = '';
  function runSearch() {
    var q = search.value.trim();
    if (q === asked) { return; }
    asked = q;
    if (!q) { results.hidden = true; results.innerHTML = ''; list.hidden = false; return; }
    fetch('/api/search?q=' + encodeURIComponent(q), { credentials: 'same-origin' }).then(function (res) {
      return res.ok ? res.json() : [];
    }).then(function (hits) {
      if (q !== asked) { return; }  // a newer query is on its way
      results.innerHTML = '';
      if (!hits.length) {
        var none = document.createElement('li'); none.className = 'note'; none.textContent = 'No conversation matches.';
        results.appendChild(none);
      }
      hits.forEach(function (hit) {
        var li = document.createElement('li');
        var a = document.createElement('a');
        a.className = 'conversation search-hit';
        a.setAttribute('href', path(hit.conversationID));
        a.innerHTML = '<span class="title"></span><span class="sub snippet"></span>';
        a.querySelector('.title').textContent = hit.title;
        a.querySelector('.snippet').textContent = hit.field === 'title' ? hit.channel : hit.snippet;
        li.appendChild(a);
        results.appendChild(li);
      });
      results.hidden = false;
      list.hidden = true;
    }, function () { /* offline: the list stays */ });
  }
  if (search && results && list) {
    search.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(runSearch, 200); });
    search.addEventListener('keydown', function (e) {
      if (e.key === 'Escape' && search.value) { e.preventDefault(); e.stopPropagation(); search.value = ''; runSearch(); }
    });
  }

  // ---- Rename (the heading becomes a field) and Delete (asked once) ----
  var renameButton = document.getElementById('rename');
  if (renameButton && heading) {
    renameButton.addEventListener('click', function () {
      if (document.getElementById('rename-input')) { return; }
      var input = document.createElement('input');
      input.id = 'rename-input'; input.type = 'text'; input.maxLength = 200; input.value = heading.textContent;
      input.setAttribute('aria-label', 'Conversation title');
      var before = heading.textContent;
      heading.textContent = '';
      heading.appendChild(input);
      input.focus(); input.select();
      function finish(save) {
        var title = input.value.trim();
        input.remove();
        heading.textContent = save && title ? title : before;
        if (!save || !title || title === before) { return; }
        post(path(conversationID).replace('/c/', '/api/conversations/') + '/rename', { title: title }).then(function (res) {
          if (!res.ok) { heading.textContent = before; res.json().then(function (j) { options.announce('Not renamed: ' + j.error); }); }
        }, function () { heading.textContent = before; });
      }
      input.addEventListener('keydown', function (e) {
        if (e.key === 'Enter') { e.preventDefault(); finish(true); }
        if (e.key === 'Escape') { e.preventDefault(); finish(false); }
      });
      input.addEventListener('blur', function () { if (input.isConnected) { finish(true); } });
    });
  }
  var deleteButton = document.getElementById('delete');
  if (deleteButton && confirmBox) {
    deleteButton.addEventListener('click', function () { confirmBox.hidden = false; document.getElementById('delete-no').focus(); });
    document.getElementById('delete-no').addEventListener('click', function () { confirmBox.hidden = true; deleteButton.focus(); });
    document.getElementById('delete-yes').addEventListener('click', function () {
      post(path(conversationID).replace('/c/', '/api/conversations/') + '/delete').then(function (res) {
        if (res.ok) { location.href = '/'; return; }
        res.json().then(function (j) { options.announce('Not deleted: ' + j.error); });
      });
    });
  }

  return {
    update: update, reload: reload, setTitle: setHeading,
    // The conversation exists (its first message was taken): Rename and Delete apply.
    exists: function () { if (controls) { controls.hidden = false; } },
    deleted: function () {
      var li = find(conversationID); if (li) { li.remove(); }
      if (controls) { controls.hidden = true; }
      if (confirmBox) { confirmBox.hidden = true; }
    }
  };
}
