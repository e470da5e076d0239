import AsyncHTTPClient
@testable import EventLog
import Foundation
import NIOCore
import Projections
import SwitchboardEvents
import SwitchboardJSON
import TestSupport
import Testing
import Workers

/// The WhatsApp linked device's pure parts: the disconnect policy, the session layout of the auth state, the
/// inbound mapping and the protocol's codec.
@Suite("Linked device (pure)")
struct LinkedDevicePureTests {
    @Test func everyCloseReasonHasItsAction() {
        typealias P = LinkedDevicePolicy
        #expect(P.afterClose(code: 515, failures: 1, jitter: 0) == .reconnectNow)
        #expect(P.afterClose(code: 401, failures: 1, jitter: 0) == .unlinked)
        #expect(P.afterClose(code: 411, failures: 1, jitter: 0) == .unlinked)
        #expect(P.afterClose(code: 440, failures: 1, jitter: 0) == .replaced)
        #expect(P.afterClose(code: 403, failures: 1, jitter: 0) == .refused)
        for code in [408, 428, 500, 503, 0] {
            #expect(P.afterClose(code: code, failures: 1, jitter: 0) == .reconnect(after: .seconds(1)), "\(code)")
        }
        // Backoff doubles to 60 s, jitter adds at most a quarter, and a restart loop is not hot either.
        #expect(P.afterClose(code: 408, failures: 3, jitter: 0) == .reconnect(after: .seconds(4)))
        #expect(P.afterClose(code: 408, failures: 30, jitter: 1) == .reconnect(after: .seconds(75)))
        #expect(P.afterClose(code: 515, failures: 5, jitter: 0) == .reconnect(after: .seconds(2)))
        #expect(P.reason(code: 440, name: "connectionReplaced") == "connection_replaced")
        #expect(P.reason(code: 0, name: "stale") == "stale")
    }

    static let creds: JSONValue = .object([
        "noiseKey": .object(["private": .object(["type": .string("Buffer"), "data": .string("AAEC")])]),
        "registrationId": .int(4242), "registered": .bool(true),
        "me": .object(["id": .string("4915112345678:7@s.whatsapp.net")]),
    ])

    @Test func authBatchesRoundTripThroughTheSessionLayout() {
        let batch = SidecarAuthBatch(
            batch: 1, creds: Self.creds,
            keys: [
                "pre-key": ["1": .object(["public": .string("x")]), "2": .object(["public": .string("y")])],
                "session": ["4915112345678.0": .string("s")],
            ])
        var entries: [String: Data] = [:]
        for (key, value) in LinkedSessionLayout.changes(batch) { entries[key] = value }
        #expect(
            entries.keys.sorted() == [
                "web.creds", "web.key.pre-key.1", "web.key.pre-key.2", "web.key.session.4915112345678.0",
            ])
        let state = LinkedSessionLayout.authState(entries)
        #expect(state?.creds == Self.creds)
        #expect(state?.keys["session"]?["4915112345678.0"] == .string("s"))
        #expect(state?.keys["pre-key"]?.count == 2)
        // A later batch deletes a key with null and leaves the others.
        let delete = LinkedSessionLayout.changes(SidecarAuthBatch(batch: 2, keys: ["pre-key": ["1": .null]]))
        #expect(delete.count == 1 && delete["web.key.pre-key.1"] == .some(nil))
        #expect(LinkedSessionLayout.unlink(entries).count == 4)
        #expect(LinkedSessionLayout.authState([:]) == nil)
    }

    @Test func inboundMessagesBecomeIngressItems() throws {
        let inbound = WhatsAppWebInbound(
            accountID: "default", access: ChannelAccess(channel: "whatsapp", policy: .open, allowlist: []),
            selfChat: true)
        let own = "4915100000000:3@s.whatsapp.net"
        func item(_ message: SidecarMessage, sent: Bool = false) -> IngressItem? {
            inbound.item(message, ownJID: own, sentByThisDevice: sent)
        }
        let text = item(
            SidecarMessage(
                upsert: "append", id: "ABC", chat: "4917612345678@s.whatsapp.net", timestamp: 1_700_000_000,
                text: " hi ", kind: "reply", quotedID: "Q1"))
        guard case .message(let message, _, _) = text else {
            Issue.record("not a message: \(String(describing: text))")
            return
        }
        #expect(message.externalID == "4917612345678@s.whatsapp.net/ABC")
        #expect(message.contactID == "4917612345678" && message.text == "hi")
        #expect(message.replyToExternalID == "4917612345678@s.whatsapp.net/Q1")
        #expect(WhatsAppWebMessageRef.messageID(message.replyToExternalID ?? "") == "Q1")
        // A group message goes to the group rules: not allowed here (no WHATSAPP_ALLOWED_GROUP_IDS).
        guard
            case .message(let group, let groupAccess, _) = item(
                SidecarMessage(id: "G", chat: "123@g.us", sender: "49@s.whatsapp.net", pushName: "Ann", text: "x"))
        else {
            Issue.record("group")
            return
        }
        #expect(group.contactID == "123@g.us" && group.group == GroupMessage(addressed: false, senderName: "Ann"))
        #expect(!groupAccess.groupAllowed && groupAccess.groupPolicy == .mention)
        guard
            case .ignored(let empty) = item(
                SidecarMessage(id: "E", chat: "49@s.whatsapp.net", text: nil, kind: "other"))
        else {
            Issue.record("other")
            return
        }
        #expect(empty.reason == "unsupported_kind")
        // Own messages: only the owner's self chat, never this device's own sends.
        #expect(item(SidecarMessage(id: "M", chat: "4917612345678@s.whatsapp.net", fromMe: true, text: "mine")) == nil)
        #expect(
            item(SidecarMessage(id: "S", chat: "4915100000000@s.whatsapp.net", fromMe: true, text: "note"), sent: true)
                == nil)
        guard
            case .message(let selfNote, _, _) = item(
                SidecarMessage(id: "S", chat: "4915100000000@s.whatsapp.net", fromMe: true, text: "note"))
        else {
            Issue.record("self chat")
            return
        }
        #expect(selfNote.contactID == "4915100000000")
        // Receipts: server ack, delivered, read, played; pending is not recorded.
        #expect(inbound.receipt(id: "W", chat: "49@s.whatsapp.net", status: 1) == nil)
        guard case .status(let read) = inbound.receipt(id: "W", chat: "49@s.whatsapp.net", status: 4) else {
            Issue.record("receipt")
            return
        }
        #expect(read.status == "read" && read.providerMessageID == "W" && read.recipient == "49")
        #expect(WhatsAppWebInbound.jid(forRecipient: "+49 176 1234") == "491761234@s.whatsapp.net")
    }

    /// What addresses the owner in a group: an @-mention of the owner's jid (any device suffix), a quote of the
    /// owner's message, the owner's number written out, a command; not a mention of someone else.
    @Test(arguments: [
        (SidecarMessage(id: "1", chat: "9@g.us", text: "hi", mentions: ["4915100000000@s.whatsapp.net"]), true),
        (SidecarMessage(id: "2", chat: "9@g.us", text: "hi", mentions: ["4917600000000@s.whatsapp.net"]), false),
        (
            SidecarMessage(
                id: "3", chat: "9@g.us", text: "ok", quotedID: "Q", quotedSender: "4915100000000:7@s.whatsapp.net"),
            true
        ),
        (
            SidecarMessage(
                id: "4", chat: "9@g.us", text: "ok", quotedID: "Q", quotedSender: "4917600000000@s.whatsapp.net"), false
        ),
        (SidecarMessage(id: "5", chat: "9@g.us", text: "ask +49 151 00000000 please"), true),
        (SidecarMessage(id: "6", chat: "9@g.us", text: "/status"), true),
        (SidecarMessage(id: "7", chat: "9@g.us", text: "lunch at 1?"), false),
    ])
    func groupMessagesAddressTheOwner(message: SidecarMessage, addressed: Bool) {
        let groups = WhatsAppWebGroups(policy: .mention, allowed: ["9@g.us"])
        let inbound = WhatsAppWebInbound(
            accountID: "default", access: ChannelAccess(channel: "whatsapp", policy: .pairing, allowlist: []),
            selfChat: false, groups: groups)
        guard
            case .message(let received, let access, _) = inbound.item(
                message, ownJID: "4915100000000:3@s.whatsapp.net", sentByThisDevice: false)
        else {
            Issue.record("not a message")
            return
        }
        #expect(received.group?.addressed == addressed)
        #expect(access.groupAllowed)
        #expect(!groups.addressed(message, text: message.text ?? "", ownJID: nil) || message.text == "/status")
    }

    @Test func theProtocolsLinesDecodeAndEncode() throws {
        let events: [SidecarEvent] = [
            .ready(version: "6.7.23"), .qr("2@x,y", expiresInMs: 60000), .pairingCode("ABCD1234"),
            .connected(jid: "1@s.whatsapp.net", name: "A"),
            .disconnected(code: 515, reason: "restartRequired", message: nil),
            .auth(SidecarAuthBatch(batch: 3, creds: .object(["a": .int(1)]), keys: ["session": ["x": .null]])),
            .message(SidecarMessage(id: "1", chat: "c", text: "t")), .receipt(id: "1", chat: "c", status: 3),
            .sent(id: "d", messageID: "m"), .sendFailed(id: "d", uncertain: false, reason: "r"),
            .stale(sinceMs: 120_000),
        ]
        for event in events {
            let line = try JSONEncoder().encode(event)
            #expect(try SidecarProtocol.event(Array(line)) == event)
        }
        #expect(try SidecarProtocol.event(Array(#"{"type":"future_thing"}"#.utf8)) == nil)
        #expect(throws: SidecarProtocolError.self) { try SidecarProtocol.event(Array("not json".utf8)) }
        let start = String(
            decoding: SidecarProtocol.line(
                .start(account: "a", auth: nil, browser: ["b"], staleAfterMs: 5, waWebSocketUrl: nil)), as: UTF8.self)
        #expect(start == #"{"account":"a","auth":null,"browser":["b"],"staleAfterMs":5,"type":"start"}"# + "\n")
        #expect(
            String(decoding: SidecarProtocol.line(.authCommitted(batch: 2)), as: UTF8.self)
                == #"{"batch":2,"type":"auth_committed"}"# + "\n")
    }
}

/// The linked device on spawned `agent` processes, each sidecar a `sidecar-bridge` to the test's fake: linking,
/// restarts without a QR (K, L), one socket per number (C, G, H), every close reason, a refused auth write, and
/// many messages answered once (J).
@Suite("Linked device processes", .serialized, .timeLimit(.minutes(3)))
struct LinkedDeviceProcessTests {
    static func web(_ fake: FakeSidecarServer, _ extra: [String: String] = [:]) -> [String: String] {
        [
            "AGENT_ROLE": "whatsapp", "WHATSAPP_TRANSPORT": "web", "WHATSAPP_SIDECAR_COMMAND": fake.command,
            "TELEGRAM_MODE": "off", "PROVIDER_TIMEOUT_MS": "5000",
        ].merging(extra) { $1 }
    }

    static let jid = "4915112345678:12@s.whatsapp.net"

    /// Links `sidecar` as a phone would: a QR, the creds and keys written, then connected.
    static func link(_ sidecar: FakeSidecar, _ agent: AgentProcess) async throws {
        let start = try await sidecar.command("start")
        #expect(start["auth"] == .null, "a new link starts without auth")
        sidecar.emit(.ready(version: "fake"))
        sidecar.emit(.qr("2@fakeRef,fakeNoise,fakeIdentity,fakeAdv", expiresInMs: 60000))
        try await agent.waitFor("[whatsapp] Scan this QR code")
        sidecar.emit(
            .auth(
                SidecarAuthBatch(
                    batch: 1, creds: LinkedDevicePureTests.creds,
                    keys: ["pre-key": ["1": .object(["public": .string("AQID")])], "session": ["49.0": .string("s")]])))
        let committed = try await sidecar.command("auth_committed")
        #expect(committed["batch"] == .int(1))
        sidecar.emit(.connected(jid: jid, name: "Owner"))
        try await agent.waitFor("[whatsapp] Connected (linked device 4915112345678 (Owner))")
    }

    // K and L: linked once, the agent restarts and connects with the stored keys, without a QR.
    @Test(arguments: ["log", "local"])
    func linkingOnceThenRestartingConnectsWithoutAQR(backend: String) async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let environment = Self.web(fake, ["SESSION_STORE": backend])
        let first = try AgentProcess("wa-1", data: dir.path, environment)
        try await first.waitFor("[whatsapp] Transport: web (WHATSAPP_TRANSPORT=web)")
        let s1 = try await fake.next()
        try await Self.link(s1, first)
        // Each renewal is passed on: the sidecar's own deadline, within the TTL (1 s in these tests).
        let leases = s1.commands.filter { $0["type"] == .string("lease") }.compactMap { $0["validForMs"]?.doubleValue }
        #expect(!leases.isEmpty && leases.allSatisfy { $0 >= 1 && $0 <= 1000 }, "\(leases)")
        // The QR was drawn on the terminal (half blocks), and the log has no key material.
        #expect(first.lines.contains { $0.contains("▀") || $0.contains("▄") })
        #expect(await first.stop() == 0)
        try await s1.closed()
        #expect(s1.received("stop"))
        #expect(!first.lines.contains { $0.contains("AQID") || $0.contains("noiseKey") })

        // Restarted without WHATSAPP_TRANSPORT: the stored session chooses the linked device.
        var again = environment
        again["WHATSAPP_TRANSPORT"] = nil
        let second = try AgentProcess("wa-1", data: dir.path, again)
        try await second.waitFor("[whatsapp] Transport: web (a linked session is stored)")
        let s2 = try await fake.next()
        let start = try await s2.command("start")
        let auth = try #require(start["auth"])
        #expect(auth["creds"] == LinkedDevicePureTests.creds)
        #expect(auth["keys"]?["pre-key"]?["1"] == .object(["public": .string("AQID")]))
        s2.emit(.connected(jid: Self.jid, name: "Owner"))
        try await second.waitFor("[whatsapp] Connected (linked device 4915112345678")
        #expect(!second.lines.contains { $0.contains("Scan this QR code") || $0.contains("Not linked yet") })
        #expect(await second.stop() == 0)
    }

    // C, G and H: only the holder runs a sidecar; on a handoff the old sidecar is gone before the new one starts.
    @Test func oneSidecarPerNumberThroughGracefulAndCrashHandoffs() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let wa1 = try AgentProcess("wa-1", data: dir.path, Self.web(fake))
        try await wa1.waitFor("[whatsapp] Lease acquired for account 'default' by 'wa-1'")
        let s1 = try await fake.next()
        _ = try await s1.command("start")
        let wa2 = try AgentProcess("wa-2", data: dir.path, Self.web(fake))
        try await wa2.waitFor("Lease held by 'wa-1' for account 'default', retrying...")
        // C: the standby started nothing.
        #expect(fake.all.value.withLock { $0.count } == 1)

        // G: SIGTERM — the holder stops its sidecar, then releases; the standby's sidecar starts after.
        wa1.signal(SIGTERM)
        let s2 = try await fake.next()
        #expect(s1.isClosed, "the old holder's sidecar was gone before the new holder's connected")
        try await s1.closed()
        #expect(s1.received("stop"))
        #expect(await wa1.finish() == 0)
        _ = try await s2.command("start")
        try await wa2.waitFor("[whatsapp] Lease acquired for account 'default' by 'wa-2'")

        // H: SIGKILL — the dead holder's sidecar reads the end of its stdin and exits; the TTL passes; then the
        // next holder's starts.
        let wa3 = try AgentProcess("wa-3", data: dir.path, Self.web(fake))
        try await wa3.waitFor("Lease held by 'wa-2' for account 'default', retrying...")
        wa2.kill()
        try await s2.closed()
        let s3 = try await fake.next()
        #expect(s2.isClosed)
        _ = try await s3.command("start")
        #expect(fake.all.value.withLock { $0.count } == 3)
        #expect(await wa3.stop() == 0)
        _ = await wa2.finish()
    }

    // Every close reason: 515 reconnects at once, 408 after a backoff, 440 stops without fighting back, 401 clears
    // the session and pauses.
    @Test func eachCloseReasonIsHandledAsDocumented() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let agent = try AgentProcess("wa-1", data: dir.path, Self.web(fake))
        let s1 = try await fake.next()
        try await Self.link(s1, agent)

        s1.emit(.disconnected(code: 515, reason: "restartRequired", message: "Stream Errored (restart required)"))
        _ = try await s1.command("connect")
        try await agent.waitFor("Socket closed (restart_required): reconnecting now")
        s1.emit(.connected(jid: Self.jid, name: "Owner"))

        let closedAt = ContinuousClock.now
        s1.emit(.disconnected(code: 408, reason: "timedOut", message: "Connection was lost"))
        _ = try await s1.command("connect")
        #expect(ContinuousClock.now - closedAt >= .milliseconds(900), "a lost connection is retried after a backoff")
        s1.emit(.connected(jid: Self.jid, name: "Owner"))

        let before = s1.commands.count
        s1.emit(.disconnected(code: 440, reason: "connectionReplaced", message: "Stream Errored (conflict)"))
        _ = try await s1.command("stop")
        try await s1.closed()
        try await agent.waitFor("Another client took this number")
        #expect(!s1.commands.dropFirst(before).contains { $0["type"] == .string("connect") })
        #expect(await agent.stop() == 0)

        // 401 on the next start: the session is cleared, nothing reconnects, the alert says to link again.
        let again = try AgentProcess("wa-1", data: dir.path, Self.web(fake))
        let s2 = try await fake.next()
        #expect(try await s2.command("start")["auth"] != .null)
        s2.emit(.disconnected(code: 401, reason: "loggedOut", message: "Connection Failure"))
        _ = try await s2.command("stop")
        try await s2.closed()
        try await again.waitFor("The device was unlinked (logged_out)")
        #expect(await again.stop() == 0)
        let log = try TestLog(dir.path)
        defer { log.close() }
        let store = try SessionStore(backend: .log, engine: log.engine)
        #expect(try store.entries("whatsapp/default").keys.filter { $0.hasPrefix("web.") }.isEmpty)
        let reasons = try log.events().compactMap { entry -> String? in
            if case .channelDisconnected(let e) = entry.event { return e.reason }
            return nil
        }
        #expect(reasons.contains("connection_replaced") && reasons.contains("logged_out"), "\(reasons)")
        // `replay alerts` says the account stopped and stays so until linked again.
        let alerts = try await SpawnedProcess.run("replay", ["alerts", "--data-dir", dir.path])
        #expect(
            alerts.lines.contains { $0.hasPrefix("[ALERT] channel stopped: whatsapp/default logged_out") },
            "\(alerts.lines)")
        #expect(fake.all.value.withLock { $0.count } == 2, "no sidecar was started after 440 or 401")
    }

    // A sidecar that crashes is restarted with backoff; one that hangs while the lease is lost is killed.
    @Test func aCrashedSidecarIsRestartedAndAStaleTenureCommitsNoAuth() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let agent = try AgentProcess("wa-1", data: dir.path, Self.web(fake))
        let s1 = try await fake.next()
        try await Self.link(s1, agent)
        kill(try await s1.pid(), SIGKILL)
        let s2 = try await fake.next()
        try await agent.waitFor("The sidecar exited: restarting in")
        #expect(try await s2.command("start")["auth"] != .null)
        s2.emit(.connected(jid: Self.jid, name: "Owner"))

        // The agent freezes past its lease (SIGSTOP); another owner takes the lease; an auth write the sidecar
        // made meanwhile must not be committed under the old tenure, and the sidecar is killed when it wakes.
        let log = try TestLog(dir.path)
        defer { log.close() }
        try await agent.freeze(holdingTheWriterLockOf: log)
        let grant = try await waitForLease(log)
        s2.emit(.auth(SidecarAuthBatch(batch: 7, creds: .object(["stale": .bool(true)]))))
        agent.signal(SIGCONT)
        try await s2.closed()
        #expect(!s2.commands.contains { $0["type"] == .string("auth_committed") && $0["batch"] == .int(7) })
        let store = try SessionStore(backend: .log, engine: log.engine)
        #expect(
            try store.entries("whatsapp/default")["web.creds"].flatMap { JSONValue(json: Array($0)) }
                == LinkedDevicePureTests.creds)
        _ = try await log.engine.releaseLease("whatsapp/default", token: grant)
        agent.kill()
        _ = await agent.finish()
    }

    /// Takes the whatsapp lease for the test's own owner as soon as it expires; its token.
    func waitForLease(_ log: TestLog) async throws -> UInt64 {
        try await within(10, "the frozen holder's lease to expire") {
            while true {
                if let grant = try await log.engine.acquireLease("whatsapp/default").grant { return grant.token }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    // Linking from the browser, as a new user would: the one-process agent with no WhatsApp settings offers Link
    // WhatsApp on /settings; the QR the holder's sidecar shows is drawn in the page; once linked, the number;
    // Unlink logs the device out and clears its keys.
    @Test func theSettingsPageLinksShowsTheNumberAndUnlinks() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        var environment = Self.web(fake, ["AGENT_ROLE": "all", "WEB_PASSWORD": "settings-password"])
        environment["WHATSAPP_TRANSPORT"] = nil
        let agent = try AgentProcess("wa-1", data: dir.path, environment)
        let port = try await ChannelProcessTests.port(of: agent)
        try await agent.waitFor("[whatsapp] Link your own number on the web chat's /settings page")
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let base = "http://127.0.0.1:\(port)"
        func get(_ path: String, _ cookie: String?) async throws -> (status: UInt, body: String) {
            var request = HTTPClientRequest(url: base + path)
            if let cookie { request.headers.add(name: "Cookie", value: cookie) }
            let response = try await client.execute(request, timeout: .seconds(10))
            return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        func post(_ path: String, _ cookie: String, _ page: String) async throws -> UInt {
            let csrf = try #require(
                page.components(separatedBy: #"name="csrf-token" content=""#).dropFirst().first?.prefix { $0 != "\"" })
            var request = HTTPClientRequest(url: base + path)
            request.method = .POST
            request.headers.add(name: "Cookie", value: cookie)
            request.headers.add(name: "Origin", value: base)
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: "csrf=\(csrf)"))
            return try await client.execute(request, timeout: .seconds(10)).status.code
        }
        let result = await outcome {
            var login = HTTPClientRequest(url: base + "/login")
            login.method = .POST
            login.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            login.body = .bytes(ByteBuffer(string: "secret=settings-password"))
            let answer = try await client.execute(login, timeout: .seconds(10))
            let cookie = try #require(answer.headers["Set-Cookie"].first?.split(separator: ";").first.map(String.init))

            // Nothing runs until asked: no sidecar, a Link WhatsApp button.
            let idle = try await get("/settings", cookie)
            #expect(idle.body.contains(#"id="whatsapp-link""#), "\(idle.body.suffix(800))")
            #expect(fake.all.value.withLock { $0.count } == 0)
            // ... and nothing holds the number: another process may use it until Link WhatsApp is pressed.
            let observer = try TestLog(dir.path)
            #expect(try observer.engine.lease("whatsapp/default") == nil)
            observer.close()
            #expect(try await post("/settings/whatsapp/resume", cookie, idle.body) == 303)

            let s1 = try await fake.next()
            _ = try await s1.command("start")
            s1.emit(.qr("2@settingsRef,noise,identity,adv", expiresInMs: 60000))
            try await agent.waitFor("[whatsapp] Scan this QR code")
            // The session write of the QR is committed before the log line: the page shows it now.
            let scanning = try await get("/settings", cookie)
            #expect(scanning.status == 200)
            #expect(scanning.body.contains(#"<div id="whatsapp-qr" class="qr"><svg"#), "\(scanning.body.suffix(600))")
            #expect(scanning.body.contains(#"http-equiv="refresh""#))

            s1.emit(.auth(SidecarAuthBatch(batch: 1, creds: LinkedDevicePureTests.creds)))
            _ = try await s1.command("auth_committed")
            s1.emit(.connected(jid: Self.jid, name: "Owner"))
            try await agent.waitFor("[whatsapp] Connected (linked device 4915112345678")
            let linked = try await get("/settings", cookie)
            #expect(
                linked.body.contains("Linked to <strong>+4915112345678</strong> — connected"),
                "\(linked.body.suffix(600))")
            #expect(!linked.body.contains("whatsapp-qr"))

            async let unlinked = post("/settings/whatsapp/unlink", cookie, linked.body)
            _ = try await s1.command("logout")
            s1.emit(.disconnected(code: 401, reason: "loggedOut", message: "logged out"))
            s1.hangUp()  // the sidecar exits after a logout
            #expect(try await unlinked == 303)
            let after = try await get("/settings", cookie)
            #expect(after.body.contains("Link again"), "\(after.body.suffix(600))")
        }
        try? await client.shutdown()
        #expect(await agent.stop() == 0)
        try result.get()
        let log = try TestLog(dir.path)
        defer { log.close() }
        let store = try SessionStore(backend: .log, engine: log.engine)
        #expect(try store.entries("whatsapp/default").keys.filter { $0.hasPrefix("web.") }.isEmpty)
        // The owner's own Unlink is no incident: `replay alerts` stays quiet about it.
        let alerts = try await SpawnedProcess.run("replay", ["alerts", "--data-dir", dir.path])
        #expect(alerts.lines.contains { $0.hasPrefix("[OK] channel stopped") }, "\(alerts.lines)")
    }

    // J on the linked device: 200 messages (live and caught up after a reconnect), each answered exactly once.
    @Test func twoHundredMessagesAreEachAnsweredOnce() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let agent = try AgentProcess(
            "wa-1", data: dir.path,
            Self.web(
                fake,
                [
                    "AGENT_ROLE": "all", "AI_PROVIDER": "offline", "WHATSAPP_DM_POLICY": "open",
                    "WHATSAPP_WEB_SENDS_PER_SECOND": "50",
                    // Each message answered on its own: the replies count the messages processed.
                    "QUEUE_MODE": "followup", "INBOUND_DEBOUNCE_MS": "0",
                ]))
        let s1 = try await fake.next()
        try await Self.link(s1, agent)
        var answered: [String: Int] = [:]
        for index in 0..<200 {
            let chat = "49170\(1000 + index % 20)@s.whatsapp.net"
            s1.emit(
                .message(
                    SidecarMessage(
                        upsert: index % 3 == 0 ? "append" : "notify", id: "IN-\(index)", chat: chat,
                        timestamp: 1_700_000_000 + Int64(index), text: "question \(index)")))
        }
        // The same message again (a redelivery) is recorded once.
        s1.emit(.message(SidecarMessage(id: "IN-0", chat: "491701000@s.whatsapp.net", text: "question 0")))
        var sends = 0
        while sends < 200 {
            let command = try await s1.command(within: 60)
            guard command["type"] == .string("send"), let id = command["id"]?.stringValue else { continue }
            sends += 1
            answered[id, default: 0] += 1
            s1.emit(.sent(id: id, messageID: "OUT-\(sends)"))
        }
        #expect(answered.count == 200 && answered.values.allSatisfy { $0 == 1 })
        let log = try TestLog(dir.path)
        _ = try await log.waitForEvent("the 200th delivery.sent") { _, _ in
            (try? log.events().filter { if case .deliverySent = $0.event { true } else { false } }.count) == 200
        }
        #expect(await agent.stop() == 0)
        #expect(try ChannelProcessTests.received(log).count == 200)
        log.close()
        let audit = try await SpawnedProcess.run("replay", ["audit", "duplicates", "--data-dir", dir.path])
        #expect(audit.status == 0, "\(audit.lines.suffix(5))")
    }
}

extension LinkedDeviceProcessTests {
    // Groups on the linked device: an allowed group's lines are kept, and only one that @-mentions the owner is
    // answered, in the group; a group that is not allowed is recorded as ignored.
    @Test func inAnAllowedGroupOnlyAMentionOfTheOwnerIsAnswered() async throws {
        let dir = TemporaryDirectory()
        let fake = try FakeSidecarServer()
        let agent = try AgentProcess(
            "wa-1", data: dir.path,
            Self.web(
                fake,
                [
                    "AGENT_ROLE": "all", "AI_PROVIDER": "offline", "WHATSAPP_ALLOWED_GROUP_IDS": "120363001@g.us",
                    "INBOUND_DEBOUNCE_MS": "0",
                ]))
        let s1 = try await fake.next()
        try await Self.link(s1, agent)
        let group = "120363001@g.us"
        s1.emit(
            .message(
                SidecarMessage(
                    id: "G1", chat: group, sender: "4917600000001@s.whatsapp.net", pushName: "Ann",
                    text: "who is coming saturday?")))
        s1.emit(
            .message(
                SidecarMessage(
                    id: "G2", chat: "120363999@g.us", sender: "4917600000002@s.whatsapp.net",
                    text: "@4915112345678 hi", mentions: ["4915112345678@s.whatsapp.net"])))
        s1.emit(
            .message(
                SidecarMessage(
                    id: "G3", chat: group, sender: "4917600000002@s.whatsapp.net", pushName: "Carl",
                    text: "@4915112345678 are you?", mentions: ["4915112345678@s.whatsapp.net"])))
        var sent: [JSONValue] = []
        while sent.isEmpty {
            let command = try await s1.command(within: 30)
            if command["type"] == .string("send") { sent.append(command) }
        }
        #expect(sent[0]["jid"] == .string(group), "\(sent)")
        #expect(sent[0]["text"]?.stringValue?.contains("are you?") == true, "\(sent)")
        s1.emit(.sent(id: sent[0]["id"]?.stringValue ?? "", messageID: "OUT-1"))
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = try await log.waitForEvent("the reply's delivery.sent") { _, event in
            if case .deliverySent = event { return true }
            return false
        }
        #expect(await agent.stop() == 0)
        let received = try log.engine.log.records(from: 1).filter { $0.type == MessageReceived.eventType }
            .compactMap { try? $0.decode(MessageReceived.self) }
        #expect(received.map(\.unanswered) == ["not_addressed", nil])
        #expect(received.map(\.senderName) == ["Ann", "Carl"])
        let ignored = try log.engine.log.records(from: 1).filter { $0.type == InboundIgnored.eventType }
            .compactMap { try? $0.decode(InboundIgnored.self) }
        #expect(ignored.map(\.reason) == ["group_not_allowed"])
        #expect(!s1.commands.contains { $0["type"] == .string("send") && $0["jid"] != .string(group) })
    }
}

/// The Node sidecar's own tests (`node --test`, against a fake Baileys module: the real package needs the npm
/// registry, see docs/channels.md), run from `swift test` so CI runs them.
@Suite("Linked device sidecar script")
struct LinkedDeviceSidecarScriptTests {
    @Test func theSidecarsNodeTestsPass() async throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Workers/Channels/WhatsAppWeb/Sidecar").path
        let output = try await ChannelProcessTests.system(
            "cd '\(directory)' && node --test test/ 2>&1; echo \"exit=$?\"", [:])
        #expect(output.contains("# fail 0"), "\(output.suffix(2000))")
        #expect(output.hasSuffix("exit=0\n"), "\(output.suffix(2000))")
        // The suites ran (not an empty folder).
        let passed = output.split(separator: "\n").first { $0.hasPrefix("# pass ") }.flatMap { Int($0.dropFirst(7)) }
        #expect((passed ?? 0) >= 60, "\(output.suffix(500))")
    }

    /// Without the registry the install fails with one line that says so (npm's own output names the cause).
    @Test func anUnreachableRegistryIsOneClearLine() async throws {
        let dir = TemporaryDirectory()
        // Given to npm only: setenv here once crashed another test spawning a process (it read the environment
        // while setenv moved it).
        let npm = ["npm_config_registry": "http://127.0.0.1:9/", "npm_config_fetch_retries": "0"]
        var progress: [String] = []
        do {
            try WhatsAppSidecar.install(dir.path, environment: npm) { progress.append($0) }
            Issue.record("installed without a registry")
        } catch {
            #expect(error.message.contains("the npm registry cannot be reached"), "\(error.message)")
            #expect(error.message.contains("ECONNREFUSED"), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
        #expect(progress.count == 1 && progress[0].contains("Installing the linked-device sidecar"), "\(progress)")
        #expect(!WhatsAppSidecar.isInstalled(dir.path))
    }

    /// The files compiled into the agent are the whole program: written to a folder, every module it imports
    /// resolves, and without the package it says so in one line and exits 3.
    @Test func theEmbeddedFilesAreACompleteProgram() async throws {
        let dir = TemporaryDirectory()
        try WhatsAppSidecar.writeFiles(dir.path)
        #expect(!WhatsAppSidecar.isInstalled(dir.path))
        let output = try await ChannelProcessTests.system(
            "cd '\(dir.path)' && node index.mjs </dev/null 2>&1; echo \"exit=$?\"", [:])
        #expect(output.contains("baileys is not installed"), "\(output)")
        #expect(output.hasSuffix("exit=3\n"), "\(output)")
        #expect(!output.contains("ERR_MODULE_NOT_FOUND") || output.contains("'baileys'"), "\(output)")
    }
}
