import Foundation
import Projections

/// The server-rendered pages. Every dynamic value is escaped with ``HTML/escape(_:)``; the DOM ids and classes
/// are the contract the browser test drives (see docs/web.md).
enum WebPages {
    static func document(
        title: String, assets: WebAssets, csrf: String?, body: String, bodyClass: String = "", refresh: Int? = nil
    ) -> String {
        var csrfMeta = csrf.map { "<meta name=\"csrf-token\" content=\"\(HTML.escape($0))\">" } ?? ""
        if let refresh { csrfMeta += "<meta http-equiv=\"refresh\" content=\"\(refresh)\">" }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">\
            <meta name="viewport" content="width=device-width, initial-scale=1">\
            <meta name="color-scheme" content="light dark">\
            <title>\(HTML.escape(title)) · Switchboard</title>\(csrfMeta)\
            <link rel="stylesheet" href="\(assets.style.path)">\
            <link rel="icon" type="image/svg+xml" href="\(assets.icon.path)">\
            <script src="\(assets.script.path)" defer></script></head>\
            <body class="\(bodyClass)">\(body)</body></html>
            """
    }

    // MARK: Login

    static func login(assets: WebAssets, error: String?, next: String, hint: String) -> String {
        let body = """
            <main class="login"><h1>Switchboard</h1>\
            <form method="post" action="/login"><input type="hidden" name="next" value="\(HTML.escape(next))">\
            <label for="login-secret">Owner secret</label>\
            <input id="login-secret" name="secret" type="password" autocomplete="current-password" required autofocus>\
            <p id="login-error" role="alert">\(HTML.escape(error ?? ""))</p>\
            <button id="login-submit" class="primary" type="submit">Sign in</button></form>\
            <p class="note">\(HTML.escape(hint))</p></main>
            """
        return document(title: "Sign in", assets: assets, csrf: nil, body: body)
    }

    // MARK: Chat

    /// A conversation in the sidebar.
    struct SidebarEntry {
        var conversationID: String
        var channel: String
        var title: String
        var lastActive: Date?
    }

    struct Chat {
        var conversationID: String
        var title: String
        var entries: [SidebarEntry]
        var thread: ThreadFold
        var after: UInt64
        /// Why the composer is disabled, or `nil` when the owner can write here.
        var readOnlyReason: String?
        /// A server-made id for the no-script form (a double submit is deduplicated by it).
        var formClientID: String
        /// Which model answers (escaped HTML).
        var model: String = ""
        /// Who deleted the conversation and when, when it was deleted (and nothing was written since).
        var deletion: (by: String, at: Date)?
        var now: Date
    }

    static func chat(_ chat: Chat, assets: WebAssets, csrf: String) -> String {
        let entries = chat.entries.map { entry -> String in
            let current = entry.conversationID == chat.conversationID ? " aria-current=\"page\"" : ""
            let time = entry.lastActive.map {
                " <time datetime=\"\(HTML.isoTime($0))\">\(HTML.relativeTime($0, now: chat.now))</time>"
            }
            return """
                <li><a class="conversation" href="/c/\(HTML.pathSegment(entry.conversationID))"\(current)>\
                <span class="title">\(HTML.escape(entry.title))</span><span class="sub">\
                <span class="channel">\(HTML.escape(entry.channel))</span>\(time ?? "")</span></a></li>
                """
        }.joined()
        let threadHTML: String
        if let deletion = chat.deletion {
            threadHTML =
                "<p class=\"deleted-thread\">This conversation was deleted "
                + "<time datetime=\"\(HTML.isoTime(deletion.at))\" title=\"\(HTML.absoluteTime(deletion.at))\">"
                + "\(HTML.relativeTime(deletion.at, now: chat.now))</time>\(HTML.escape(ThreadFold.decidedBy(deletion.by)))."
                + "</p>"
        } else if chat.thread.items.isEmpty {
            threadHTML = "<p class=\"empty-thread\">Ask anything. Enter sends, Shift+Enter adds a line.</p>"
        } else {
            threadHTML = chat.thread.html(now: chat.now)
        }
        let exists = !chat.thread.items.isEmpty
        let controls =
            chat.deletion == nil
            ? "<span id=\"conversation-controls\"\(exists ? "" : " hidden")><button id=\"rename\" type=\"button\">"
                + "Rename</button> <button id=\"delete\" type=\"button\">Delete</button></span>" : ""
        let state = chat.thread.scriptState(
            conversationID: chat.conversationID, after: chat.after, writable: chat.readOnlyReason == nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let stateJSON = HTML.scriptJSON((try? encoder.encode(state)) ?? Data("{}".utf8))
        let disabled = chat.readOnlyReason == nil ? "" : " disabled"
        let reason = chat.readOnlyReason.map(HTML.escape) ?? ""
        let body = """
            <a class="skip" href="#composer">Skip to the message box</a>\
            <div class="app"><div id="sidebar-scrim" hidden></div>\
            <aside class="sidebar" id="sidebar" aria-label="Conversations">\
            <div class="sidebar-head"><a id="new-chat" class="button primary" href="/">New chat</a>\
            <button id="sidebar-close" type="button" aria-controls="sidebar">Close</button></div>\
            <div class="search"><label class="visually-hidden" for="search">Search conversations</label>\
            <input id="search" type="search" placeholder="Search" autocomplete="off" maxlength="200"></div>\
            <ul id="search-results" aria-label="Search results" hidden></ul>\
            <ul id="conversations">\(entries)</ul>\
            \(navigation(csrf: csrf))</aside>\
            <main class="main"><div class="main-head">\
            <button id="sidebar-toggle" type="button" aria-controls="sidebar" aria-expanded="false">\
            Menu</button><h1>\(HTML.escape(chat.title))</h1>\(controls)<span id="connection" role="status"></span></div>\
            <div id="delete-confirm" role="alertdialog" aria-label="Delete this conversation" hidden>\
            Delete this conversation? Its messages can no longer be read, here, in the API or in replay. \
            <button id="delete-yes" type="button" class="danger">Delete</button> \
            <button id="delete-no" type="button">Cancel</button></div>\
            <div id="thread" role="log" aria-live="polite" aria-label="Messages" tabindex="0"\
            \(chat.readOnlyReason == nil ? " data-writable" : "")>\(threadHTML)\
            <button id="jump-latest" type="button" hidden>Jump to latest</button></div>\
            <div class="composer"><form id="composer-form" method="post" \
            action="/c/\(HTML.pathSegment(chat.conversationID))/send">\
            <input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
            <input type="hidden" name="clientID" value="\(HTML.escape(chat.formClientID))">\
            <label class="visually-hidden" for="composer">Message</label>\
            <textarea id="composer" name="text" rows="1" placeholder="Message the assistant" \
            aria-describedby="composer-reason"\(disabled)></textarea>\
            <button id="send" class="primary" type="submit"\(disabled)>Send</button>\
            <button id="stop" type="button" hidden aria-keyshortcuts="Escape">Stop</button></form>\
            <p id="composer-reason" data-fixed="\(reason)" aria-live="polite">\(reason)</p>\
            <p id="composer-count" class="note" aria-live="polite" hidden></p>\
            <p id="model-line" class="note">\(chat.model) <a href="/settings">Change</a></p></div>\
            <div id="announcer" class="visually-hidden" aria-live="assertive"></div></main></div>\
            <script type="application/json" id="thread-state">\(stateJSON)</script>
            """
        return document(title: chat.title, assets: assets, csrf: csrf, body: body)
    }

    /// How to choose another model (the README's "Choosing a model" says more).
    static let switchHint =
        "To switch: AI_BASE_URL and AI_MODEL for any OpenAI-compatible server (Ollama, vLLM, llama.cpp, a cloud "
        + "provider), LLM_GGUF for another local GGUF file, AI_PROVIDER=offline for the offline assistant."

    /// The chat page's line saying which model answers.
    static func modelLine(_ model: WebSettings.ModelDisplay) -> String {
        if let answering = model.answering { return "Answering: \(HTML.escape(answering))." }
        if let name = model.model { return "Answering: \(HTML.escape(name))." }
        return "Answering: the configured core."
    }

    static func navigation(csrf: String) -> String {
        """
        <nav class="links" aria-label="Pages"><a href="/">Chat</a><a href="/status">Status</a>\
        <a href="/settings">Settings</a><form method="post" action="/logout">\
        <input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
        <button type="submit">Log out</button></form></nav>
        """
    }

    // MARK: Status

    static func status(_ status: WebStatus, assets: WebAssets, csrf: String) -> String {
        func table(_ headers: [String], _ rows: [[String]], empty: String) -> String {
            guard !rows.isEmpty else { return "<p class=\"note\">\(HTML.escape(empty))</p>" }
            let head = headers.map { "<th scope=\"col\">\(HTML.escape($0))</th>" }.joined()
            let body = rows.map { row in "<tr>" + row.map { "<td>\(HTML.escape($0))</td>" }.joined() + "</tr>" }
                .joined()
            return
                "<div class=\"table-wrap\"><table><thead><tr>\(head)</tr></thead><tbody>\(body)</tbody></table></div>"
        }
        let leases = table(
            ["resource", "holder", "token", "expires at", "state"],
            status.leases.map { [$0.resource, $0.owner, "\($0.token)", $0.expiresAt, $0.state.rawValue] },
            empty: "No lease was ever taken.")
        let q = status.queues
        let queues = table(
            ["jobs ready", "jobs running", "deliveries pending", "deliveries in flight", "approvals awaiting"],
            [
                [
                    "\(q.jobsReady)", "\(q.jobsRunning)", "\(q.deliveriesPending)", "\(q.deliveriesInFlight)",
                    "\(q.approvalsAwaiting)",
                ]
            ],
            empty: "")
        let dead = table(
            ["job", "conversation", "attempts", "last reason", "last message"],
            status.deadJobs.map {
                [
                    $0.jobID, $0.conversationID, "\($0.attempt)/\($0.maxAttempts)", $0.lastReason ?? "",
                    $0.lastMessage ?? "",
                ]
            }, empty: "No dead jobs.")
        let uncertain = table(
            ["delivery", "account", "recipient", "attempt", "last error"],
            status.uncertainDeliveries.map {
                [$0.deliveryID, $0.account, $0.recipient, "\($0.attempt)", $0.lastError ?? ""]
            }, empty: "No uncertain deliveries.")
        let alerts =
            "<ul>"
            + status.alerts.map {
                "<li class=\"\($0.alert ? "alert" : "ok")\">[\($0.alert ? "ALERT" : "OK")] "
                    + "\(HTML.escape($0.check.rawValue)): \(HTML.escape($0.detail))</li>"
            }.joined() + "</ul>"
        let modelServer: String
        if let model = status.model {
            modelServer = table(
                ["model", "state", "API", "restarts", "last error"],
                [[model.model, model.state.rawValue, model.baseURL, "\(model.restarts)", model.lastError ?? ""]],
                empty: "")
        } else {
            modelServer = "<p class=\"note\">This process supervises no local model server.</p>"
        }
        let body = """
            <div class="page">\(navigation(csrf: csrf))<h1>Status</h1>\
            <p class="note">Log seq \(status.lastSeq) at \(HTML.escape(status.time)). \
            Alerts cover the last \(HTML.escape(status.alertWindow)). JSON: <a href="/api/status">/api/status</a>. \
            Timelines: <code>replay timeline --from &lt;seq&gt;</code>.</p>\
            <section id="leases" aria-labelledby="h-leases"><h2 id="h-leases">Leases</h2>\(leases)</section>\
            <section id="queues" aria-labelledby="h-queues"><h2 id="h-queues">Queues</h2>\(queues)</section>\
            <section id="dead-jobs" aria-labelledby="h-dead"><h2 id="h-dead">Dead jobs</h2>\(dead)</section>\
            <section id="uncertain" aria-labelledby="h-uncertain"><h2 id="h-uncertain">Uncertain deliveries</h2>\
            \(uncertain)</section>\
            <section id="alerts" aria-labelledby="h-alerts"><h2 id="h-alerts">Recent alerts</h2>\(alerts)</section>\
            <section id="model-server" aria-labelledby="h-model"><h2 id="h-model">Local model server</h2>\
            \(modelServer)</section></div>
            """
        return document(title: "Status", assets: assets, csrf: csrf, body: body)
    }

    // MARK: Settings

    struct SettingsView {
        enum Todoist {
            case notConfigured(missing: [String])
            case connected
            case notConnected
        }

        var todoist: Todoist
        var todoistOverride: Bool
        var message: String?
        var model: WebSettings.ModelDisplay
        /// The WhatsApp section's HTML, when this agent has a WhatsApp account.
        var whatsapp: String?
        /// Reload the page after this many seconds (a QR code to scan).
        var refresh: Int?
    }

    static func settings(_ view: SettingsView, assets: WebAssets, csrf: String) -> String {
        let status: String
        let action: String
        switch view.todoist {
        case .notConfigured(let missing):
            status =
                "Todoist not configured (set \(missing.joined(separator: " and ")), "
                + "and TODOIST_OAUTH_REDIRECT_URI when the default callback is not the one registered)."
            action =
                "<button id=\"todoist-connect\" type=\"button\" disabled aria-disabled=\"true\">Connect Todoist</button>"
        case .connected:
            status = "Todoist connected."
            action = """
                <a id="todoist-connect" class="button" href="/settings/todoist/connect">Reconnect Todoist</a> \
                <form method="post" action="/settings/todoist/disconnect" class="inline">\
                <input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
                <button id="todoist-disconnect" type="submit">Disconnect</button></form>
                """
        case .notConnected:
            status = "Todoist not connected."
            action =
                "<a id=\"todoist-connect\" class=\"button primary\" href=\"/settings/todoist/connect\">Connect Todoist</a>"
        }
        let override =
            view.todoistOverride
            ? "<p class=\"note\">TODOIST_API_TOKEN is set in the environment: the assistant uses it instead of a "
                + "connected account.</p>" : ""
        let message = view.message.map { "<p role=\"status\">\(HTML.escape($0))</p>" } ?? ""
        let model: String
        if let answering = view.model.answering {
            model = "Replies come from <strong>\(HTML.escape(answering))</strong>. " + switchHint
        } else if let name = view.model.model {
            var text = "Replies come from <strong>\(HTML.escape(name))</strong>"
            if let host = view.model.providerHost { text += " at \(HTML.escape(host))" }
            if let lite = view.model.liteModel { text += "; lite model \(HTML.escape(lite))" }
            if !view.model.fallbackModels.isEmpty {
                text += "; fallbacks " + view.model.fallbackModels.map(HTML.escape).joined(separator: ", ")
            }
            model = text + "."
        } else {
            model = "No model is configured (AI_BASE_URL is not set): the built-in offline assistant answers."
        }
        let body = """
            <div class="page">\(navigation(csrf: csrf))<h1>Settings</h1>\(message)\
            <section aria-labelledby="h-model"><h2 id="h-model">Model</h2><p id="model">\(model)</p></section>\
            <section aria-labelledby="h-todoist"><h2 id="h-todoist">Todoist</h2>\
            <p id="todoist-status">\(HTML.escape(status))</p>\(action)\(override)</section>\(view.whatsapp ?? "")</div>
            """
        return document(title: "Settings", assets: assets, csrf: csrf, body: body, refresh: view.refresh)
    }

    // MARK: OAuth hop

    /// The page a cross-site OAuth redirect lands on when the browser withheld the `SameSite=Strict` cookie: it
    /// reloads the same URL from this site, which sends the cookie.
    static func sameSiteHop(url: String, assets: WebAssets) -> String {
        let body = """
            <main class="login"><h1>Connecting…</h1><p>\
            <a id="continue" href="\(HTML.escape(url))">Continue</a></p></main>
            """
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8">\
            <meta http-equiv="refresh" content="0;url=\(HTML.escape(url))">\
            <title>Connecting · Switchboard</title><link rel="stylesheet" href="\(assets.style.path)"></head>\
            <body>\(body)</body></html>
            """
    }
}
