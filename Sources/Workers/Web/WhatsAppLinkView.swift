import Foundation
import Projections
import QRCode
import SwitchboardJSON

/// The WhatsApp section of `/settings`: the linked number, or the QR code to scan while linking (read from the
/// session store, where the lease holder's linked device writes it, so a `web` process shows it too), and Unlink
/// or Resume when this process runs the linked device.
public struct WebWhatsApp: Sendable {
    public let account: String
    let store: SessionStore
    /// The linked device, when this process runs it (`AGENT_ROLE=all`).
    let device: LinkedDevice?

    public init(account: String, store: SessionStore, device: LinkedDevice?) {
        self.account = account
        self.store = store
        self.device = device
    }

    enum State: Equatable {
        case linked(number: String, connected: Bool?)
        case scan(svg: String, expiresAt: Date)
        case waiting
        case paused(LinkedDevice.Pause)
        case notLinked
        /// The session store could not be read: the page says so instead of showing "not linked".
        case unreadable(String)
    }

    /// What the page shows now.
    func state(now: Date = Date()) -> State {
        let entries: [String: Data]
        do {
            entries = try store.entries("whatsapp/\(account)")
        } catch {
            return .unreadable("\(error)")
        }
        let snapshot = device?.snapshot
        if let paused = snapshot?.paused { return .paused(paused) }
        if LinkedSessionLayout.isLinked(entries), let jid = entries[LinkedSessionLayout.linkedJID] {
            return .linked(
                number: WhatsAppWebInbound.user(of: String(decoding: jid, as: UTF8.self)),
                connected: snapshot?.connected)
        }
        if let data = entries[LinkedSessionLayout.linkQR], let json = JSONValue(json: Array(data)),
            let qr = json["qr"]?.stringValue, let expires = json["expiresAt"]?.doubleValue,
            Date(timeIntervalSince1970: expires) > now, let code = try? QRCode(qr)
        {
            return .scan(svg: code.svg(moduleSize: 6), expiresAt: Date(timeIntervalSince1970: expires))
        }
        return snapshot?.running == true ? .waiting : .notLinked
    }

    /// The section's HTML.
    func section(csrf: String, now: Date = Date()) -> String {
        let form = { (action: String, id: String, label: String) in
            """
            <form method="post" action="/settings/whatsapp/\(action)" class="inline">\
            <input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
            <button id="\(id)" type="submit">\(label)</button></form>
            """
        }
        var body: String
        switch state(now: now) {
        case .linked(let number, let connected):
            let link = connected.map { $0 ? " — connected" : " — not connected right now" } ?? ""
            body = "<p id=\"whatsapp-status\">Linked to <strong>+\(HTML.escape(number))</strong>\(link).</p>"
            body +=
                device == nil
                ? "<p class=\"note\">To unlink, run <code>agent whatsapp unlink</code> where the WhatsApp role runs.</p>"
                : form("unlink", "whatsapp-unlink", "Unlink")
        case .scan(let svg, _):
            body = """
                <p id="whatsapp-status">Scan this code with WhatsApp on your phone: Settings → Linked devices → \
                Link a device. It changes every 20 seconds; this page reloads itself.</p>\
                <div id="whatsapp-qr" class="qr">\(svg)</div>
                """
        case .waiting:
            body = "<p id=\"whatsapp-status\">Starting the linked device: the QR code appears here in a moment.</p>"
        case .paused(.notStarted):
            body =
                "<p id=\"whatsapp-status\">Put the assistant on your own WhatsApp number: it becomes a linked device, "
                + "like WhatsApp Web. Node 20 is needed on this machine; the first link installs a small helper "
                + "(about 30 MB).</p>" + form("resume", "whatsapp-link", "Link WhatsApp")
        case .paused(let pause):
            let why =
                switch pause {
                case .unlinked: "The device was unlinked (logged out on the phone). Link it again."
                case .replaced: "Another client took this number, so the assistant stopped instead of fighting back."
                case .refused: "WhatsApp refused the account."
                case .notStarted: ""
                }
            body = "<p id=\"whatsapp-status\">\(HTML.escape(why))</p>" + form("resume", "whatsapp-resume", "Link again")
        case .unreadable(let error):
            body =
                "<p id=\"whatsapp-status\" role=\"alert\">The WhatsApp session could not be read: \(HTML.escape(error))</p>"
        case .notLinked:
            body = """
                <p id="whatsapp-status">Not linked. To put the assistant on your own number, set \
                <code>WHATSAPP_TRANSPORT=web</code> and restart, or run <code>agent whatsapp link</code>.</p>
                """
        }
        return """
            <section aria-labelledby="h-whatsapp"><h2 id="h-whatsapp">WhatsApp</h2>\(body)</section>
            """
    }

    /// Whether the page should reload itself (a QR code, or one about to appear).
    func refreshes(now: Date = Date()) -> Bool {
        switch state(now: now) {
        case .scan, .waiting: true
        case .linked, .paused, .notLinked, .unreadable: false
        }
    }
}
