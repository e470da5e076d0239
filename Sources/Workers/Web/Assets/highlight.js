// Syntax highlighting of code blocks: `SBHighlight.highlight(code, language)` is the code as HTML, every character
// escaped as markdown.js's `esc` does (the same five entities), tokens wrapped in `<span class="tok-…">` and nothing
// else added — so the element's textContent stays the code. A small tokenizer per language family, one pass, no
// backtracking regular expressions (linear in the input); an unclosed string or comment (a reply still streaming)
// runs to the end. An unknown language is only escaped. Served between markdown.js and thread.js (WebAssets).
var SBHighlight = (function () {
  'use strict';
  var ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; }); }
  function set(words) {
    var m = Object.create(null); words.split(' ').forEach(function (w) { m[w] = true; }); return m;
  }

  // ---- Languages ----
  // kw, lit, types, fns: words (shown as keyword, literal, type, function); line, block: comment syntaxes; str:
  // string delimiters (`q(open, close, escape, spans lines)`); caps: a Capitalized word is a type, an ALL_CAPS one
  // a constant; at: `@name` is an annotation; hash: `#name` a directive; more: characters words may also contain.
  function q(o, c, e, ml) { return { o: o, c: c, e: e, ml: Boolean(ml) }; }
  var DQ = q('"', '"', '\\'), SQ = q("'", "'", '\\'), C_STR = [DQ, SQ];
  var SLASH = { line: ['//'], block: [['/*', '*/']] }, HASH = { line: ['#'] };
  var C_KW = 'break case const continue default do else enum extern for goto if inline register restrict return ' +
    'sizeof static struct switch typedef union volatile while ';
  var C_TYPES = 'void char short int long float double signed unsigned bool size_t ssize_t int8_t int16_t int32_t ' +
    'int64_t uint8_t uint16_t uint32_t uint64_t FILE wchar_t ';
  var JS_KW = 'break case catch class const continue debugger default delete do else export extends finally for ' +
    'function if import in instanceof let new return super switch throw try typeof var void while with yield ' +
    'async await of static get set from as';
  var JS_STR = [q('`', '`', '\\', true), DQ, SQ], JS_LIT = 'true false null undefined NaN Infinity this';
  var SPECS = {
    swift: lang(SLASH, {
      kw: 'associatedtype class deinit enum extension fileprivate func import init inout internal let open operator ' +
        'private precedencegroup protocol public rethrows static struct subscript typealias var break case catch ' +
        'continue default defer do else fallthrough for guard if in repeat return throw throws switch where while ' +
        'as is try async await actor some any convenience dynamic final indirect lazy mutating nonmutating optional ' +
        'override required unowned weak willSet didSet get set nonisolated isolated consuming borrowing sending ' +
        'package macro',
      lit: 'true false nil self Self super', caps: true, at: true, hash: true,
      str: [q('"""', '"""', '\\', true), q('#"', '"#', ''), DQ]
    }),
    js: lang(SLASH, { kw: JS_KW, lit: JS_LIT, caps: true, at: true, dollar: true, str: JS_STR,
      fns: 'console require parseInt parseFloat setTimeout setInterval fetch' }),
    ts: lang(SLASH, { kw: JS_KW + ' interface type enum implements namespace declare readonly private public ' +
      'protected abstract keyof infer is satisfies module', lit: JS_LIT, caps: true, at: true, dollar: true,
      types: 'any unknown never string number boolean object symbol bigint', str: JS_STR }),
    python: lang(HASH, {
      kw: 'and as assert async await break class continue def del elif else except finally for from global if ' +
        'import in is lambda nonlocal not or pass raise return try while with yield match case',
      lit: 'True False None self cls', caps: true, at: true, prefix: true,
      fns: 'print len range int str float list dict set tuple bool open isinstance enumerate zip map filter sorted ' +
        'sum min max any all super type repr abs iter next getattr setattr hasattr object',
      str: [q('"""', '"""', '\\', true), q("'''", "'''", '\\', true), DQ, SQ]
    }),
    json: lang(SLASH, { lit: 'true false null', keys: true, str: [DQ] }),
    shell: lang(HASH, {
      kw: 'if then else elif fi for while until do done case esac function in return select time export local ' +
        'readonly declare unset break continue',
      fns: 'echo printf cd pwd source alias read test exit exec eval set shift trap cat grep sed awk ls cp mv rm ' +
        'mkdir chmod chown curl wget git sudo apt apt-get brew npm npx node swift make docker kubectl tar find ' +
        'xargs sort uniq head tail tee touch ln which env ssh python python3 pip',
      wordComment: true, vars: true, more: '-',
      str: [q("'", "'", '', true), q('"', '"', '\\', true), q('`', '`', '\\', true)]
    }),
    go: lang(SLASH, {
      kw: 'break case chan const continue default defer else fallthrough for func go goto if import interface map ' +
        'package range return select struct switch type var',
      lit: 'true false nil iota', caps: true, str: [q('`', '`', '', true), DQ, SQ],
      types: 'bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string uint ' +
        'uint8 uint16 uint32 uint64 uintptr any',
      fns: 'append cap close copy delete len make new panic print println recover'
    }),
    rust: lang(SLASH, {
      kw: 'as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move ' +
        'mut pub ref return static struct super trait type unsafe use where while yield',
      lit: 'true false self Self None Some Ok Err', caps: true, rust: true,
      types: 'i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str',
      str: [q('r#"', '"#', '', true), q('br"', '"', '', true), q('r"', '"', '', true), q('b"', '"', '\\', true),
        q('"', '"', '\\', true)]
    }),
    c: lang(SLASH, { kw: C_KW, types: C_TYPES, lit: 'NULL true false', caps: true, preproc: true, str: C_STR }),
    cpp: lang(SLASH, {
      kw: C_KW + 'class namespace template typename public private protected virtual override final new delete ' +
        'this operator friend using try catch throw noexcept constexpr auto decltype explicit mutable static_cast ' +
        'dynamic_cast reinterpret_cast const_cast co_await co_return co_yield concept requires',
      types: C_TYPES + 'std string vector map', lit: 'NULL nullptr true false', caps: true, preproc: true, str: C_STR
    }),
    java: lang(SLASH, {
      kw: 'abstract assert break case catch class continue default do else enum extends final finally for if ' +
        'implements import instanceof interface native new package private protected public return static ' +
        'strictfp super switch synchronized this throw throws transient try volatile while var record sealed ' +
        'permits yield const',
      types: 'boolean byte char double float int long short void', lit: 'true false null', caps: true, at: true,
      str: [q('"""', '"""', '\\', true)].concat(C_STR)
    }),
    kotlin: lang(SLASH, {
      kw: 'as break class continue do else for fun if in interface is object package return super this throw try ' +
        'typealias val var when while by catch constructor data enum finally get import init internal lateinit ' +
        'open override private protected public sealed set suspend companion inline reified',
      lit: 'true false null', caps: true, at: true, str: [q('"""', '"""', '', true)].concat(C_STR)
    }),
    csharp: lang(SLASH, {
      kw: 'abstract as base break case catch class const continue default delegate do else enum event explicit ' +
        'extern finally fixed for foreach goto if implicit in interface internal is lock namespace new operator ' +
        'out override params private protected public readonly ref return sealed sizeof stackalloc static struct ' +
        'switch this throw try typeof unchecked unsafe using virtual volatile while async await var record get ' +
        'set init where yield',
      types: 'bool byte char decimal double float int long object sbyte short string uint ulong ushort void',
      lit: 'true false null', caps: true, preproc: true, str: [q('@"', '"', '', true), q('$"', '"', '\\')].concat(C_STR)
    }),
    sql: lang({ line: ['--'], block: [['/*', '*/']] }, {
      kw: 'select from where and or not insert into values update set delete create table drop alter add column ' +
        'index primary key foreign references join inner left right outer full cross on as group by order ' +
        'having limit offset union all distinct case when then else end is like in between exists view trigger ' +
        'begin commit rollback transaction if with returning default unique check constraint asc desc cascade ' +
        'database schema grant revoke replace explain',
      lit: 'null true false', ci: true, str: [q("'", "'", '', true), q('"', '"', ''), q('`', '`', '')],
      types: 'int integer bigint smallint text varchar char boolean date timestamp real float double numeric ' +
        'decimal blob serial uuid json jsonb'
    }),
    yaml: lang(HASH, {
      lit: 'true false null yes no on off True False Null', keys: true, wordComment: true, quoteAtWord: true,
      more: '-./', str: [DQ, q("'", "'", '')]
    }),
    css: lang({ block: [['/*', '*/']] }, { css: true, more: '-', str: C_STR }),
    markup: { markup: true },
    diff: { diff: true }
  };
  function lang(comments, spec) {
    spec.line = comments.line || []; spec.block = comments.block || [];
    ['kw', 'lit', 'types', 'fns'].forEach(function (k) { spec[k] = set(spec[k] || ''); });
    return spec;
  }
  // A fence's info string (lower case) → [tokenizer, label].
  var NAMES = Object.create(null);
  [['swift', 'swift', 'Swift'], ['js javascript mjs cjs node', 'js', 'JavaScript'], ['jsx', 'js', 'JSX'],
    ['ts typescript', 'ts', 'TypeScript'], ['tsx', 'ts', 'TSX'], ['py python python3', 'python', 'Python'],
    ['json jsonc', 'json', 'JSON'], ['json5', 'json', 'JSON5'], ['sh bash shell zsh console', 'shell', 'Shell'],
    ['go golang', 'go', 'Go'], ['rust rs', 'rust', 'Rust'], ['c h', 'c', 'C'], ['cpp c++ cc cxx hpp', 'cpp', 'C++'],
    ['java', 'java', 'Java'], ['kotlin kt', 'kotlin', 'Kotlin'], ['csharp cs', 'csharp', 'C#'],
    ['sql mysql postgres postgresql psql sqlite', 'sql', 'SQL'], ['html xhtml', 'markup', 'HTML'],
    ['xml plist', 'markup', 'XML'], ['svg', 'markup', 'SVG'], ['css', 'css', 'CSS'], ['scss', 'css', 'SCSS'],
    ['less', 'css', 'Less'], ['yaml yml', 'yaml', 'YAML'], ['diff patch', 'diff', 'Diff']
  ].forEach(function (row) { row[0].split(' ').forEach(function (name) { NAMES[name] = [row[1], row[2]]; }); });
  function info(language) { return String(language === undefined || language === null ? '' : language).trim(); }
  function known(language) { return NAMES[info(language).split(/\s/)[0].replace(/^[{.]+/, '').toLowerCase()] || null; }
  function languageLabel(language) { var k = known(language); return k ? k[1] : (info(language) || 'Code'); }

  // ---- Output: the pieces escaped as `esc` does (no regular expression per piece); consecutive pieces of one
  // class merge into one span ----
  function Out(s) { this.s = s; this.h = ''; this.cls = ''; this.start = 0; this.end = 0; }
  Out.prototype.add = function (cls, start, end) {
    if (end <= start) { return; }
    if (cls === this.cls && start === this.end) { this.end = end; return; }
    this.flush(); this.cls = cls; this.start = start; this.end = end;
  };
  Out.prototype.flush = function () {
    var s = this.s, a = this.start, b = this.end, h = this.h, c;
    if (b <= a) { return; }
    if (this.cls) { h += OPEN[this.cls] || (OPEN[this.cls] = '<span class="tok-' + this.cls + '">'); }
    for (var j = a; j < b; j++) {
      if ((c = s.charCodeAt(j)) < 128 && SPECIAL[c]) { h += s.slice(a, j) + ENTITIES[s[j]]; a = j + 1; }
    }
    h += s.slice(a, b);
    this.h = this.cls ? h + '</span>' : h;
    this.start = this.end;
  };
  Out.prototype.raw = function (html, end) { this.flush(); this.h += html; this.start = this.end = end; };
  Out.prototype.html = function () { this.flush(); return this.h; };

  // ---- Characters ----
  function codes(chars) {  // ASCII code → whether it is one of `chars`
    for (var m = [], k = 0; k < 128; k++) { m.push(chars.indexOf(String.fromCharCode(k)) >= 0); }
    return m;
  }
  var OPEN = {};  // class → its span's start tag, made once
  var SPECIAL = codes('&<>"\''), PUNCT = codes('{}[]()<>=+-*/%!&|^~?:;,.@#\\');
  function isDigit(c) { return c >= 48 && c <= 57; }
  function isAlpha(c) { return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 0x80; }
  function isSpace(c) { return c === 32 || (c >= 9 && c <= 13); }
  // The ASCII characters that may start a comment, string or other token of `spec`; the others are read in runs.
  function starters(spec) {
    if (!spec.starts) {
      var open = spec.line.concat(spec.block.map(function (b) { return b[0]; }),
        spec.str.map(function (d) { return d.o; }));
      spec.starts = codes('.' + open.map(function (o) { return o[0]; }).join('') + (spec.at ? '@' : '') +
        (spec.hash || spec.preproc || spec.rust ? '#' : '') + (spec.vars ? '$' : '') + (spec.rust ? "'" : '') +
        (spec.css ? '@!.#:{};-' : ''));
    }
    return spec.starts;
  }
  function identEnd(s, i, spec) {
    var n = s.length, c;
    while (i < n && (isAlpha(c = s.charCodeAt(i)) || isDigit(c) || (spec.dollar && c === 36) ||
      (spec.more && spec.more.indexOf(s[i]) >= 0))) { i++; }
    return i;
  }
  // The end of a string opened by `d` at i: past its close, at the line's end (a one-line string), or the end.
  function stringEnd(s, i, d) {
    var n = s.length, j = i + d.o.length;
    while (j < n) {
      if (d.e && s[j] === d.e) { j += 2; continue; }
      if (s.startsWith(d.c, j)) { return j + d.c.length; }
      if (!d.ml && s[j] === '\n') { return j; }
      j++;
    }
    return n;
  }
  function findString(s, i, spec) {
    for (var k = 0; k < spec.str.length; k++) { if (s.startsWith(spec.str[k].o, i)) { return spec.str[k]; } }
  }
  function lineEnd(s, i) { var e = s.indexOf('\n', i); return e < 0 ? s.length : e; }
  function onlySpaceBefore(s, i) {
    while (--i >= 0 && s[i] !== '\n') { if (s[i] !== ' ' && s[i] !== '\t') { return false; } }
    return true;
  }
  function through(s, i, ch) {  // past the next `ch` on this line, else the line's end
    while (i < s.length && s[i] !== '\n') { if (s[i++] === ch) { return i; } }
    return i;
  }
  function nextNonBlank(s, i) { while (s[i] === ' ' || s[i] === '\t') { i++; } return i; }
  // Whether the CSS statement at i is a rule's selector (goes on with `{`, not `;` or `}`).
  function cssSelector(s, i, depth) {
    for (; i < s.length; i++) { if ('{;}'.indexOf(s[i]) >= 0) { return s[i] === '{'; } }
    return depth === 0;
  }

  // ---- Languages with words, comments, strings and numbers ----
  function code(s, spec) {
    var out = new Out(s), n = s.length, starts = starters(spec), i = 0, depth = 0, stmt = true, selector = true;
    var d, e, k, c, ch, x;
    while (i < n) {
      c = s.charCodeAt(i);
      if (c < 128 && !starts[c] && !isAlpha(c) && !isDigit(c) && !(stmt && spec.css && !isSpace(c))) {
        for (e = i + 1; e < n && (x = s.charCodeAt(e)) < 128 && !starts[x] && !isAlpha(x) && !isDigit(x) &&
          PUNCT[x] === PUNCT[c]; e++) { /* a run of punctuation, or of other characters */ }
        out.add(PUNCT[c] ? 'punct' : '', i, e); i = e; continue;
      }
      ch = s[i];
      var wordStart = i === 0 || isSpace(s.charCodeAt(i - 1));
      // Comments (a shell or YAML `#` only where a word starts).
      for (k = 0, e = -1; k < spec.line.length && e < 0; k++) {
        if (s.startsWith(spec.line[k], i) && (!spec.wordComment || wordStart)) { e = lineEnd(s, i); }
      }
      for (k = 0; k < spec.block.length && e < 0; k++) {
        if (s.startsWith(spec.block[k][0], i)) {
          e = s.indexOf(spec.block[k][1], i + spec.block[k][0].length);
          e = e < 0 ? n : e + spec.block[k][1].length;
        }
      }
      if (e >= 0) { out.add('com', i, e); i = e; continue; }
      // Strings (a YAML quote only where a value starts; a Rust `'` is a char only when it closes soon).
      if ((d = findString(s, i, spec)) && (!spec.quoteAtWord || wordStart || ':[{,-'.indexOf(s[i - 1]) >= 0)) {
        e = stringEnd(s, i, d);
        out.add(spec.keys && s[nextNonBlank(s, e)] === ':' ? 'attr' : 'str', i, e); i = e; continue;
      }
      if (spec.rust && ch === "'") {
        var hi = s.charCodeAt(i + 1), isChar = s[i + 1] === '\\' || s[i + 2] === "'" ||
          (s[i + 3] === "'" && hi >= 0xD800 && hi < 0xDC00);
        e = Math.max(i + 1, isChar ? stringEnd(s, i, SQ) : identEnd(s, i + 1, spec));  // a char, or a lifetime
        out.add(isChar ? 'str' : e > i + 1 ? 'type' : 'punct', i, e); i = e; continue;
      }
      // Annotations, directives, attributes, preprocessor lines, variables.
      if ((spec.at && ch === '@' || spec.hash && ch === '#') && isAlpha(s.charCodeAt(i + 1))) {
        e = identEnd(s, i + 1, spec); out.add('meta', i, e); i = e; continue;
      }
      if ((spec.preproc && ch === '#' && onlySpaceBefore(s, i)) ||
        (spec.rust && ch === '#' && (s[i + 1] === '[' || (s[i + 1] === '!' && s[i + 2] === '[')))) {
        e = spec.rust ? through(s, i, ']') : lineEnd(s, i); out.add('meta', i, e); i = e; continue;
      }
      if (spec.vars && ch === '$') {
        if (s[i + 1] === '{') { e = through(s, i, '}'); }
        else if (isAlpha(s.charCodeAt(i + 1))) { e = identEnd(s, i + 1, {}); }
        else { e = i + (i + 1 < n && '0123456789@#?*$!-'.indexOf(s[i + 1]) >= 0 ? 2 : 1); }
        out.add(e > i + 1 ? 'type' : 'punct', i, e); i = e; continue;
      }
      // CSS: at-rules and !important, selectors (in a statement that goes on with `{`), colours.
      if (spec.css) {
        if (stmt && !isSpace(c)) { selector = ch !== '@' && cssSelector(s, i, depth); stmt = false; }
        k = s.charCodeAt(i + 1);
        if ((ch === '@' || ch === '!') && isAlpha(k)) {
          e = identEnd(s, i + 1, spec); out.add('kw', i, e); i = e; continue;
        }
        if ((ch === '.' || ch === '#') && selector && isAlpha(k)) {
          e = identEnd(s, i + 1, spec); out.add('type', i, e); i = e; continue;
        }
        if (ch === '#' && !selector && HEX.test(s[i + 1] || '')) {
          e = identEnd(s, i + 1, spec); out.add('num', i, e); i = e; continue;
        }
        if (ch === ':' && selector && (isAlpha(k) || k === 58)) {
          e = identEnd(s, i + (k === 58 ? 2 : 1), spec); out.add('fn', i, e); i = e; continue;
        }
        if ((k = '};{'.indexOf(ch)) >= 0) { stmt = true; depth = Math.max(0, depth + k - 1); }  // -1, 0, +1
      }
      // Numbers: digits, letters (hex, suffixes, units), a `.` before a digit, a sign after an exponent.
      if (isDigit(c) || (ch === '.' && isDigit(s.charCodeAt(i + 1)) && !isAlpha(s.charCodeAt(i - 1)))) {
        var hex = ch === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X');
        for (e = i + 1; e < n; e++) {
          x = s.charCodeAt(e);
          if (isDigit(x) || (isAlpha(x) && x < 0x80) || (spec.css && x === 37)) { continue; }
          if (x === 46 && isDigit(s.charCodeAt(e + 1))) { continue; }
          if ((x === 43 || x === 45) && !hex && (s[e - 1] === 'e' || s[e - 1] === 'E')) { continue; }
          break;
        }
        out.add('num', i, e); i = e; continue;
      }
      // Words (and a Python string's prefix: f"…", rb'…').
      if (isAlpha(c) || (spec.dollar && c === 36) || (spec.css && ch === '-' && (isAlpha(s.charCodeAt(i + 1)) ||
        s[i + 1] === '-'))) {
        var word = s.slice(i, e = identEnd(s, i + 1, spec));
        if (spec.prefix && e - i <= 2 && PREFIX.test(word) && (d = findString(s, e, spec))) {
          k = stringEnd(s, e, d); out.add('str', i, k); i = k; continue;
        }
        out.add(wordClass(spec, s, word, e, selector), i, e); i = e; continue;
      }
      out.add(c < 128 && PUNCT[c] ? 'punct' : '', i, i + 1); i++;
    }
    return out.html();
  }
  var CONSTANT = /^[A-Z][A-Z0-9_]+$/, PREFIX = /^[rRbBuUfF]+$/, HEX = /[0-9a-fA-F]/;
  function wordClass(spec, s, word, end, selector) {
    var key = spec.ci ? word.toLowerCase() : word, after = s[nextNonBlank(s, end)], c = word.charCodeAt(0);
    if (spec.keys && s[end] === ':' && (end + 1 >= s.length || isSpace(s.charCodeAt(end + 1)))) { return 'attr'; }
    if (spec.css) { return selector ? 'kw' : after === ':' ? 'attr' : after === '(' ? 'fn' : ''; }
    if (spec.kw[key]) { return 'kw'; }
    if (spec.lit[key]) { return 'lit'; }
    if (spec.types[key]) { return 'type'; }
    if (after === '(' || (spec.rust && s[end] === '!') || spec.fns[key]) { return 'fn'; }
    if (spec.caps && c >= 65 && c <= 90) { return CONSTANT.test(word) ? 'lit' : 'type'; }
    return '';
  }

  // ---- HTML and XML: tags, attributes, comments, entities; a <script> or <style> element's content as JS / CSS ----
  function markup(s) {
    var out = new Out(s), n = s.length, i = 0, e, k, ch;
    function upTo(cls, close) {
      e = s.indexOf(close, i + 1); e = e < 0 ? n : e + close.length; out.add(cls, i, e); i = e;
    }
    while (i < n) {
      ch = s[i];
      if (s.startsWith('<!--', i)) { upTo('com', '-->'); continue; }
      if (s.startsWith('<![CDATA[', i)) { upTo('str', ']]>'); continue; }
      if (ch === '<' && (s[i + 1] === '!' || s[i + 1] === '?')) { upTo('meta', '>'); continue; }
      var closing = s[i + 1] === '/';
      if (ch === '<' && isAlpha(s.charCodeAt(i + (closing ? 2 : 1)))) {
        k = i + (closing ? 2 : 1);
        e = identEnd(s, k, { more: ':-.' });
        out.add('punct', i, k); out.add('kw', k, e);
        var name = s.slice(k, e).toLowerCase(), value = false;
        for (i = e; i < n && s[i] !== '>' && !s.startsWith('/>', i);) {  // attributes
          ch = s[i];
          if (ch === '"' || ch === "'") { upTo('str', ch); value = false; continue; }
          if (ch === '=' || ch === '/' || isSpace(s.charCodeAt(i))) {
            out.add(isSpace(s.charCodeAt(i)) ? '' : 'punct', i, i + 1); value = ch === '='; i++; continue;
          }
          e = i;  // a name, or an unquoted value
          while (e < n && !isSpace(s.charCodeAt(e)) && '=>"\''.indexOf(s[e]) < 0 && !s.startsWith('/>', e)) { e++; }
          out.add(value ? 'str' : 'attr', i, e); i = e; value = false;
        }
        e = Math.min(n, i + (s[i] === '/' ? 2 : 1));
        out.add('punct', i, e); i = e;
        if (!closing && (name === 'script' || name === 'style') && s[e - 2] !== '/') {
          e = closingTag(s, i, name);
          out.raw(code(s.slice(i, e), SPECS[name === 'script' ? 'js' : 'css']), e); i = e;
        }
        continue;
      }
      if (ch === '&') {
        for (e = i + 1; e < n && e < i + 32 && (isAlpha(k = s.charCodeAt(e)) || isDigit(k) || k === 35); e++) { /* */ }
        if (s[e] === ';' && e > i + 1) { out.add('lit', i, e + 1); i = e + 1; continue; }
      }
      out.add('', i, i + 1); i++;
    }
    return out.html();
  }
  function closingTag(s, i, name) {  // the next `</name` (any case) from i, or the end
    for (var j = s.indexOf('</', i); j >= 0; j = s.indexOf('</', j + 2)) {
      if (s.substr(j + 2, name.length).toLowerCase() === name) { return j; }
    }
    return s.length;
  }

  // ---- Diffs: whole lines ----
  function diff(s) {
    var out = new Out(s), n = s.length, i = 0, e, cls;
    for (; i < n; i = e + 1) {
      e = lineEnd(s, i);
      cls = /^(\+\+\+|---|@@|diff |index )/.test(s.slice(i, Math.min(e, i + 6))) ? 'meta' :
        s[i] === '+' ? 'add' : s[i] === '-' ? 'del' : '';
      out.add(cls, i, e); out.add('', e, Math.min(e + 1, n));
    }
    return out.html();
  }

  function highlight(text, language) {
    var s = String(text === undefined || text === null ? '' : text), k = known(language), spec = k && SPECS[k[0]];
    return !spec ? esc(s) : spec.markup ? markup(s) : spec.diff ? diff(s) : code(s, spec);
  }

  return { highlight: highlight, languageLabel: languageLabel };
})();
