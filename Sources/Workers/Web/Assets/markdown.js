// The chat's Markdown: the subset Markdown.swift renders, rendered the same way (every character of model text is
// escaped before markup is added). The Swift tests render both and compare (docs/web.md, "The code").
// Served as one script with thread.js and chat.js, in that order (WebAssets).
var ChatMarkdown = (function () {
  'use strict';
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

  // Tool arguments for reading: the JSON text re-indented (two spaces, `": "`), keys and numbers exactly as the
  // model wrote them; the text as given when it is not JSON. `JSONIndent` in ThreadView.swift is the same
  // algorithm (MarkdownParityTests compares them).
  function indentJSON(text) {
    try { JSON.parse(text); } catch (e) { return text; }
    var out = '', depth = 0, i = 0, n = text.length;
    function newline() { out += '\n' + '  '.repeat(depth); }
    function nextSignificant(from) {
      while (from < n && ' \t\n\r'.indexOf(text[from]) >= 0) { from++; }
      return text[from];
    }
    while (i < n) {
      var c = text[i];
      if (c === '"') {
        var j = i + 1;
        while (j < n && text[j] !== '"') { j += text[j] === '\\' ? 2 : 1; }
        out += text.slice(i, j + 1);
        i = j + 1;
        continue;
      }
      if (' \t\n\r'.indexOf(c) >= 0) { i++; continue; }
      if (c === '{' || c === '[') {
        var close = c === '{' ? '}' : ']';
        if (nextSignificant(i + 1) === close) {
          out += c + close;
          i = text.indexOf(close, i + 1) + 1;
          continue;
        }
        out += c; depth++; newline();
      } else if (c === '}' || c === ']') {
        depth--; newline(); out += c;
      } else if (c === ',') {
        out += ','; newline();
      } else if (c === ':') {
        out += ': ';
      } else {
        out += c;
      }
      i++;
    }
    return out;
  }

  // Who decided an approval, as a person reads it: the web chat's owner is "you".
  function decidedBy(by) {
    if (!by) { return ''; }
    return by === 'web:owner' ? ' by you' : ' by ' + by;
  }

  // A conversation's title: the first line of its first message, at most 60 characters (grapheme clusters, as
  // Swift counts them) — `ChatViews.title` is the same rule (MarkdownParityTests compares them).
  function title(text, fallback) {
    var line = String(text).split(/\r\n|\r|\n|\u2028|\u2029|\u0085|\u000b|\u000c/).find(function (l) {
      return l.length > 0;
    });
    line = (line || '').replace(/^[\t\p{Zs}]+|[\t\p{Zs}]+$/gu, '');
    if (!line) { return fallback; }
    var parts = graphemes(line);
    return parts.length > 60 ? parts.slice(0, 59).join('') + '\u2026' : line;
  }
  function graphemes(text) {
    if (typeof Intl !== 'undefined' && Intl.Segmenter) {
      var out = [];
      var it = new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)[Symbol.iterator]();
      for (var s = it.next(); !s.done; s = it.next()) { out.push(s.value.segment); }
      return out;
    }
    return Array.from(text);
  }

  // Why a reply failed (ThreadFold.failureText).
  var FAILURES = { rate_limit: 'the model is rate limited', timeout: 'the model did not answer in time',
    server_error: "the model's server failed", network: 'the model could not be reached',
    claim_expired: 'the worker stopped answering', permanent: 'the request was refused' };
  // Why a reply never reached the contact (ThreadFold.undeliveredText).
  function undeliveredText(code, message) {
    if (code === '131047') {
      return 'Not delivered: WhatsApp takes only template messages more than 24 hours after the contact last wrote.';
    }
    return 'Not delivered: ' + message + (code ? ' (' + code + ')' : '');
  }
  function failureText(reason, message) {
    var why = FAILURES[reason] || reason;
    return message ? 'The reply failed: ' + why + ' — ' + message : 'The reply failed: ' + why + '.';
  }
  return { esc: esc, markdown: markdown, indentJSON: indentJSON, decidedBy: decidedBy, title: title,
    failureText: failureText, undeliveredText: undeliveredText };
})();
