// The thread's layout: which messages the page shows, and the pagers between versions and branches — as
// ThreadLayout computes it on the server (ThreadLayoutParityTests runs both on the same trees).
//   users:   [{id, seq, parentSeq, afterJobID}]   replies: [{id, triggerSeq, enqueueSeq}]
//   focus:   null (the newest branch) | {user: seq} | {reply: jobID}
var ChatTree = (function () {
  'use strict';
  function index(users, replies) {
    var bySeq = {};
    users.forEach(function (u) { bySeq[u.seq] = u; });
    var versions = {};
    replies.slice().sort(function (a, b) { return a.enqueueSeq - b.enqueueSeq; }).forEach(function (r) {
      if (bySeq[r.triggerSeq]) { (versions[r.triggerSeq] = versions[r.triggerSeq] || []).push(r); }
    });
    return { bySeq: bySeq, versions: versions };
  }
  // The user messages from the first to `seq`, following parents.
  function pathTo(bySeq, seq) {
    var path = [];
    var next = seq;
    while (next !== null && bySeq[next]) {
      var node = bySeq[next];
      path.push(node);
      next = node.parentSeq !== 0 && node.parentSeq < node.seq ? node.parentSeq : null;
    }
    return path.reverse();
  }
  function layout(users, replies, focus) {
    var ix = index(users, replies), bySeq = ix.bySeq, versions = ix.versions;
    var chosen = {}, end = null;
    if (focus && focus.user !== undefined) { end = focus.user; }
    else if (focus && focus.reply !== undefined) {
      var fr = replies.filter(function (r) { return r.id === focus.reply; })[0];
      if (fr && bySeq[fr.triggerSeq]) { end = fr.triggerSeq; chosen[fr.triggerSeq] = fr.id; }
    }
    if (end === null) {
      var newestUser = null, newestReply = null;
      users.forEach(function (u) { if (!newestUser || u.seq > newestUser.seq) { newestUser = u; } });
      Object.keys(versions).forEach(function (k) {
        versions[k].forEach(function (r) { if (!newestReply || r.enqueueSeq > newestReply.enqueueSeq) { newestReply = r; } });
      });
      if (newestReply && newestReply.enqueueSeq > (newestUser ? newestUser.seq : 0)) {
        end = newestReply.triggerSeq; chosen[end] = newestReply.id;
      } else { end = newestUser ? newestUser.seq : null; }
    }
    var path = end === null ? [] : pathTo(bySeq, end);
    path.forEach(function (u, i) {
      if (chosen[u.seq] !== undefined) { return; }
      var list = versions[u.seq] || [];
      var named = i + 1 < path.length ? path[i + 1].afterJobID : null;
      var hit = list.filter(function (r) { return r.id === named; })[0];
      chosen[u.seq] = hit ? hit.id : (list.length ? list[list.length - 1].id : undefined);
    });
    var shownUsers = {}, shownReplies = {};
    path.forEach(function (u) { shownUsers[u.id] = true; if (chosen[u.seq] !== undefined) { shownReplies[chosen[u.seq]] = true; } });
    var out = { hiddenUsers: {}, hiddenReplies: {}, userPagers: {}, replyPagers: {}, lastReply: null, leaf: null };
    users.forEach(function (u) { if (!shownUsers[u.id]) { out.hiddenUsers[u.id] = true; } });
    replies.forEach(function (r) { if (bySeq[r.triggerSeq] && !shownReplies[r.id]) { out.hiddenReplies[r.id] = true; } });
    path.forEach(function (u) {
      var siblings = users.filter(function (s) {
        return s.parentSeq === u.parentSeq && (s.afterJobID || null) === (u.afterJobID || null);
      }).sort(function (a, b) { return a.seq - b.seq; });
      if (siblings.length > 1) { out.userPagers[u.id] = { index: siblings.indexOf(u) + 1, count: siblings.length, list: siblings }; }
      var list = versions[u.seq] || [];
      var id = chosen[u.seq];
      if (list.length > 1 && id !== undefined) {
        var at = list.map(function (r) { return r.id; }).indexOf(id);
        out.replyPagers[id] = { index: at + 1, count: list.length, list: list };
      }
    });
    if (path.length) {
      var last = path[path.length - 1];
      out.lastReply = chosen[last.seq] === undefined ? null : chosen[last.seq];
      out.leaf = { seq: last.seq, afterJobID: out.lastReply };
    }
    return out;
  }
  // The focus that shows the branch of `target` ({user: node} or {reply: node, triggerSeq}): its newest node.
  function focusOn(users, replies, target) {
    var ix = index(users, replies), bySeq = ix.bySeq;
    var best = target.user ? { seq: target.user.seq, focus: { user: target.user.seq } }
      : { seq: target.reply.enqueueSeq, focus: { reply: target.reply.id } };
    users.forEach(function (u) {
      var path = pathTo(bySeq, u.seq);
      var inside = path.some(function (p) {
        return target.user ? p.seq === target.user.seq
          : p.parentSeq === target.reply.triggerSeq && p.afterJobID === target.reply.id;
      });
      if (!inside) { return; }
      if (u.seq > best.seq) { best = { seq: u.seq, focus: { user: u.seq } }; }
      (ix.versions[u.seq] || []).forEach(function (r) {
        if (r.enqueueSeq > best.seq) { best = { seq: r.enqueueSeq, focus: { reply: r.id } }; }
      });
    });
    return best.focus;
  }
  // The page's side of it: lays out `thread`'s messages (hidden, pagers, the last reply), pages versions and
  // branches, and says where the next message goes. `options`: {announce(text), onChange()}.
  function view(thread, options) {
    var focus = null;    // null: the newest branch; else what the owner paged to
    var current = null;  // the last layout and the nodes it was computed from
    function nodes() {
      var us = [], rs = [];
      thread.querySelectorAll('.msg[data-role="user"][data-seq]').forEach(function (el) {
        var seq = Number(el.getAttribute('data-seq'));
        if (!seq) { return; }
        us.push({ id: el.getAttribute('data-client-id'), seq: seq, parentSeq: Number(el.getAttribute('data-parent') || 0),
          afterJobID: el.getAttribute('data-after-job') || null, el: el });
      });
      thread.querySelectorAll('.msg[data-role="assistant"]').forEach(function (el) {
        rs.push({ id: el.getAttribute('data-job-id'), triggerSeq: Number(el.getAttribute('data-trigger') || 0),
          enqueueSeq: Number(el.getAttribute('data-enqueue-seq') || 0), el: el });
      });
      return { users: us, replies: rs };
    }
    // ThreadFold.pagerHTML's markup.
    function pagerHTML(p, noun) {
      if (!p || p.count < 2) { return ''; }
      return '<button type="button" data-action="page" data-step="-1" aria-label="Previous ' + noun + '"' +
        (p.index <= 1 ? ' disabled' : '') + '>\u2039</button><span class="pos">' + p.index + '/' + p.count +
        '</span><button type="button" data-action="page" data-step="1" aria-label="Next ' + noun + '"' +
        (p.index >= p.count ? ' disabled' : '') + '>\u203a</button>';
    }
    function setPager(el, p, noun) {
      var node = el.querySelector('.meta .pager');
      var html = pagerHTML(p, noun);
      if (node && node.innerHTML !== html) { node.innerHTML = html; }
    }
    function layout() {
      var n = nodes();
      var l = ChatTree.layout(n.users, n.replies, focus);
      n.users.forEach(function (u) { u.el.hidden = Boolean(l.hiddenUsers[u.id]); setPager(u.el, l.userPagers[u.id], 'edit'); });
      n.replies.forEach(function (r) {
        r.el.hidden = Boolean(l.hiddenReplies[r.id]);
        setPager(r.el, l.replyPagers[r.id], 'version');
        r.el.toggleAttribute('data-last', l.lastReply === r.id);
      });
      thread.querySelectorAll('.approval').forEach(function (a) { a.hidden = Boolean(l.hiddenReplies[a.getAttribute('data-job-id')]); });
      current = { layout: l, nodes: n };
      options.onChange();
    }
    // The owner paged a message's versions (a reply) or branches (a user message) by `step`.
    function page(el, step) {
      if (!current) { layout(); }
      var l = current.layout, n = current.nodes, p, target;
      if (el.getAttribute('data-role') === 'user') {
        p = l.userPagers[el.getAttribute('data-client-id')];
        target = p && p.list[p.index - 1 + step];
        if (target) { focus = ChatTree.focusOn(n.users, n.replies, { user: target }); }
      } else {
        p = l.replyPagers[el.getAttribute('data-job-id')];
        target = p && p.list[p.index - 1 + step];
        if (target) { focus = ChatTree.focusOn(n.users, n.replies, { reply: target }); }
      }
      if (target) { layout(); options.announce((el.getAttribute('data-role') === 'user' ? 'Branch ' : 'Version ') + (p.index + step) + ' of ' + p.count); }
    }
    // Shows the branch as it was where `el` (a user message being edited) was written: up to its parent.
    function showUpTo(el) {
      var after = el.getAttribute('data-after-job');
      var parent = Number(el.getAttribute('data-parent') || 0);
      focus = after ? { reply: after } : { user: parent || -1 };
      layout();
    }
    // Where the owner's next message goes: after the last message shown and the reply version shown.
    function leaf() { if (!current) { layout(); } return current.layout.leaf; }
    return { layout: layout, page: page, showUpTo: showUpTo, leaf: leaf,
      // A new message or reply: the page shows the newest branch again.
      showNewest: function () { focus = null; layout(); } };
  }
  return { layout: layout, focusOn: focusOn, view: view };
})();
