// The chat's style sheet, served as /assets/chat.<hash>.css. Light and dark follow prefers-color-scheme; the
// sidebar collapses on narrow screens. Colors meet WCAG AA contrast on their backgrounds.
extension WebAssets {
    static let chatCSS = #"""
        :root {
          --bg: #ffffff; --fg: #1a1a1a; --muted: #595959; --line: #d9d9d9; --panel: #f5f5f4;
          --accent: #0b57d0; --accent-fg: #ffffff; --user: #e8f0fe; --danger: #b3261e; --ok: #1e6b34;
          --warn: #8a5300; --code: #f0f0f0; --focus: #0b57d0;
          color-scheme: light dark;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --bg: #131314; --fg: #e8e8e8; --muted: #a8a8a8; --line: #3c3c3c; --panel: #1e1f20;
            --accent: #8ab4f8; --accent-fg: #0b1a33; --user: #23304a; --danger: #f2b8b5; --ok: #8fd3a0;
            --warn: #f0c070; --code: #2a2a2b; --focus: #8ab4f8;
          }
        }
        * { box-sizing: border-box; }
        html, body { height: 100%; margin: 0; }
        body {
          background: var(--bg); color: var(--fg);
          font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
        }
        a { color: var(--accent); }
        :focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
        button, .button {
          font: inherit; border: 1px solid var(--line); background: var(--panel); color: var(--fg);
          border-radius: 8px; padding: .4rem .8rem; cursor: pointer; text-decoration: none; display: inline-block;
        }
        button.primary, .button.primary { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); }
        button:disabled { opacity: .55; cursor: not-allowed; }
        .skip { position: absolute; left: -999px; }
        .skip:focus { left: .5rem; top: .5rem; z-index: 10; background: var(--bg); padding: .4rem; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }

        /* Layout */
        .app { display: grid; grid-template-columns: 280px 1fr; height: 100vh; height: 100dvh; }
        .sidebar { border-right: 1px solid var(--line); background: var(--panel); display: flex; flex-direction: column; min-height: 0; }
        .sidebar-head { display: flex; gap: .5rem; padding: .75rem; align-items: center; }
        .sidebar-head form { margin: 0; }
        #conversations { list-style: none; margin: 0; padding: 0 .5rem .5rem; overflow-y: auto; flex: 1; }
        #conversations li { margin: 0; }
        a.conversation {
          display: block; padding: .5rem .6rem; border-radius: 8px; color: var(--fg); text-decoration: none;
        }
        a.conversation:hover { background: var(--line); }
        a.conversation[aria-current="page"] { background: var(--user); }
        a.conversation .title { display: block; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        a.conversation .sub { display: block; font-size: .8rem; color: var(--muted); }
        .channel { font-size: .75rem; border: 1px solid var(--line); border-radius: 4px; padding: 0 .3rem; }
        nav.links { padding: .75rem; border-top: 1px solid var(--line); display: flex; gap: .75rem; flex-wrap: wrap; align-items: center; }
        nav.links form { margin: 0; display: inline; }
        nav.links button { padding: .1rem .5rem; }
        .main { display: flex; flex-direction: column; min-width: 0; min-height: 0; }
        .main-head { display: flex; align-items: center; gap: .5rem; padding: .5rem 1rem; border-bottom: 1px solid var(--line); }
        .main-head h1 { font-size: 1rem; margin: 0; flex: 1; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        #sidebar-toggle { display: none; }
        #connection { font-size: .85rem; color: var(--warn); }
        #connection:empty { display: none; }

        /* Thread */
        #thread { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .75rem; }
        .empty-thread { color: var(--muted); margin: auto; text-align: center; }
        .msg { max-width: 52rem; width: fit-content; min-width: 6rem; border-radius: 12px; padding: .5rem .8rem; }
        .msg[data-role="user"] { align-self: flex-end; background: var(--user); }
        .msg[data-role="user"] .body { white-space: pre-wrap; overflow-wrap: anywhere; }
        .msg[data-role="assistant"] { align-self: flex-start; background: var(--panel); border: 1px solid var(--line); }
        .msg[data-state="failed"] { border-color: var(--danger); }
        .msg .meta { font-size: .8rem; color: var(--muted); }
        .msg .status:not(:empty)::before { content: "· "; }
        .msg[data-state="streaming"] .status { color: var(--warn); }
        .msg .body { overflow-wrap: anywhere; }
        .msg .body > :first-child { margin-top: .25rem; }
        .msg .body > :last-child { margin-bottom: .25rem; }
        .msg[data-pending] { opacity: .75; }
        .msg .send-error { color: var(--danger); font-size: .85rem; }
        .failure { color: var(--danger); }
        .msg .actions { display: flex; gap: .4rem; }
        .msg[data-role="assistant"]:not([data-state="final"]) .actions { display: none; }
        .msg .actions button { font-size: .75rem; padding: .1rem .5rem; }
        pre { background: var(--code); padding: .6rem; border-radius: 8px; overflow-x: auto; position: relative; }
        code { background: var(--code); padding: 0 .2rem; border-radius: 4px; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .9em; }
        pre code { padding: 0; background: none; }
        pre .copy-code { position: absolute; top: .3rem; right: .3rem; font-size: .7rem; padding: .05rem .4rem; }
        blockquote { margin: .5rem 0; padding-left: .8rem; border-left: 3px solid var(--line); color: var(--muted); }
        table { border-collapse: collapse; }
        td, th { border: 1px solid var(--line); padding: .2rem .5rem; }

        /* Approval cards */
        .approval { align-self: flex-start; max-width: 52rem; border: 2px solid var(--warn); border-radius: 12px; padding: .6rem .8rem; background: var(--bg); }
        .approval[data-status="approved"] { border-color: var(--ok); }
        .approval[data-status="rejected"], .approval[data-status="expired"] { border-color: var(--line); }
        .approval .tool { font-weight: 600; }
        .approval .risk { font-size: .8rem; border-radius: 4px; padding: 0 .3rem; border: 1px solid currentColor; }
        .approval .risk-high { color: var(--danger); }
        .approval .risk-medium { color: var(--warn); }
        .approval .risk-low { color: var(--ok); }
        .approval .args { margin: .4rem 0; max-height: 16rem; }
        .approval-foot { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
        .approval .countdown { color: var(--muted); font-size: .85rem; }
        .approval .refusal { color: var(--danger); font-size: .85rem; }

        /* Composer */
        .composer { border-top: 1px solid var(--line); padding: .6rem 1rem; }
        .composer form { display: flex; gap: .5rem; align-items: flex-end; margin: 0; }
        #composer {
          flex: 1; resize: none; font: inherit; color: var(--fg); background: var(--bg);
          border: 1px solid var(--line); border-radius: 10px; padding: .5rem .7rem; max-height: 40vh; min-height: 2.6rem;
        }
        #composer-reason { font-size: .85rem; color: var(--muted); margin: .3rem 0 0; }
        #composer-reason:empty { display: none; }
        #jump-latest { position: sticky; bottom: .5rem; align-self: center; }
        #jump-latest[hidden] { display: none; }

        /* Other pages */
        .page { max-width: 60rem; margin: 0 auto; padding: 1rem; }
        .page nav.links { border-top: none; border-bottom: 1px solid var(--line); padding: 0 0 .75rem; }
        .page h1 { font-size: 1.4rem; }
        .page table { width: 100%; margin-bottom: 1rem; font-size: .9rem; }
        .page th { text-align: left; background: var(--panel); }
        .alert { color: var(--danger); font-weight: 600; }
        .ok { color: var(--ok); }
        .login { max-width: 24rem; margin: 10vh auto; padding: 1.5rem; border: 1px solid var(--line); border-radius: 12px; }
        .login input { width: 100%; font: inherit; padding: .5rem; margin: .5rem 0 1rem; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); color: var(--fg); }
        #login-error { color: var(--danger); min-height: 1.5rem; }
        .note { color: var(--muted); font-size: .9rem; }

        @media (max-width: 760px) {
          .app { grid-template-columns: 1fr; }
          .sidebar { position: fixed; inset: 0 20% 0 0; z-index: 5; transform: translateX(-105%); transition: transform .15s; }
          .sidebar.open { transform: none; box-shadow: 0 0 24px rgba(0,0,0,.35); }
          #sidebar-toggle { display: inline-block; }
          .msg, .approval { max-width: 100%; }
        }
        @media (prefers-reduced-motion: reduce) { .sidebar { transition: none; } }
        """#
}
