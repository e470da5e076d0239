import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// `GET`/`POST /whatsapp/webhook` over real HTTP: the handshake, the signature over the raw body, fail-closed
/// refusals, message types, statuses and routing.
@Suite("WhatsApp webhook", .serialized)
struct WhatsAppWebhookTests {
    static let secret = WebhookHarness.appSecret

    static func text(
        _ id: String, from: String = "16505551234", body: String = "hello", phone: String = WebhookHarness.phoneNumberID
    )
        -> String
    {
        ChannelPayloadCorpusTests.notification(
            ChannelPayloadCorpusTests.contacts
                + #","messages":[{"from":"\#(from)","id":"\#(id)","timestamp":"1749416383","type":"text","text":{"body":"\#(body)"}}]"#,
            phoneNumberID: phone)
    }

    @Test func theVerifyHandshakeEchoesTheChallengeOnlyForTheRightToken() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let token = WebhookHarness.verifyToken
        let ok = try await harness.client.get(
            "/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=\(token)")
        #expect(ok.status == 200)
        #expect(ok.body == "1158201444")
        // The original's path works too.
        #expect(
            try await harness.client.get(
                "/whatsapp-cloud/webhook?hub.mode=subscribe&hub.challenge=7&hub.verify_token=\(token)"
            ).body == "7")
        #expect(
            try await harness.client.get("/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope")
                .status == 403)
        #expect(
            try await harness.client.get(
                "/whatsapp/webhook?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=\(token)"
            )
            .status == 403)
        #expect(try harness.events(WebhookRejected.self).map(\.reason) == ["bad_verify_token", "bad_verify_token"])
    }

    @Test func withoutAVerifyTokenOrAppSecretEverythingIsRefusedAndRecorded() async throws {
        let harness = try await WebhookHarness.start(whatsappSecret: nil, verifyToken: nil)
        defer { harness.stop() }
        #expect(
            try await harness.client.get("/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x")
                .status == 503)
        // The original answered 200 here and lost the message; 503 makes Meta retry until it is configured.
        #expect(try await harness.client.whatsapp(Self.text("wamid.A"), secret: "whatever").status == 503)
        #expect(try harness.events(WebhookRejected.self).map(\.reason) == ["not_configured", "not_configured"])
        #expect(try harness.events(MessageReceived.self).isEmpty)
    }

    @Test func theSignatureIsCheckedOverTheRawBody() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let client = harness.client
        let body = Self.text("wamid.SIG", body: "caf\\u00e9 \\/ ok")
        let raw = Array(body.utf8)
        // Missing.
        #expect(try await client.post("/whatsapp/webhook", body: raw).status == 401)
        // All zeros.
        #expect(
            try await client.post(
                "/whatsapp/webhook", body: raw,
                headers: [("X-Hub-Signature-256", "sha256=" + String(repeating: "0", count: 64))]
            ).status == 401)
        // Another secret.
        #expect(try await client.whatsapp(body, secret: "not-the-secret").status == 401)
        // Tampered body under the original signature.
        let signature = WhatsAppWebhook.signature(of: raw, secret: Self.secret)
        #expect(
            try await client.post(
                "/whatsapp/webhook", body: Array(body.replacingOccurrences(of: "ok", with: "ko").utf8),
                headers: [("X-Hub-Signature-256", signature)]
            ).status == 401)
        // Computed over re-serialized JSON instead of the raw bytes (escapes and spacing differ).
        let reserialized = try JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: Data(raw)))
        #expect(Array(reserialized) != raw)
        #expect(
            try await client.post(
                "/whatsapp/webhook", body: raw,
                headers: [
                    ("X-Hub-Signature-256", WhatsAppWebhook.signature(of: Array(reserialized), secret: Self.secret))
                ]
            ).status == 401)
        #expect(try harness.events(MessageReceived.self).isEmpty)
        #expect(
            try harness.events(WebhookRejected.self).map(\.reason)
                == ["missing_signature", "bad_signature", "bad_signature", "bad_signature", "bad_signature"])
        // The right signature over the raw bytes; bare hex is accepted too.
        #expect(
            try await client.post("/whatsapp/webhook", body: raw, headers: [("X-Hub-Signature-256", signature)]).status
                == 200)
        #expect(
            try await client.post(
                "/whatsapp/webhook", body: raw, headers: [("X-Hub-Signature-256", String(signature.dropFirst(7)))]
            ).status == 200)
        let received = try harness.events(MessageReceived.self)
        #expect(received.map(\.text) == ["café / ok"])
    }

    @Test func signedButBadBodiesGetTheRightStatus() async throws {
        let harness = try await WebhookHarness.start(maxBodyBytes: 2048)
        defer { harness.stop() }
        let client = harness.client
        func signed(_ text: String, contentType: String = "application/json") async throws -> Int {
            let raw = Array(text.utf8)
            return try await client.post(
                "/whatsapp/webhook", body: raw,
                headers: [("X-Hub-Signature-256", WhatsAppWebhook.signature(of: raw, secret: Self.secret))],
                contentType: contentType
            ).status
        }
        #expect(try await signed("{not json") == 400)
        #expect(try await signed(#"{"object":"whatsapp_business_account","entry":"nope"}"#) == 400)
        #expect(try await signed(Self.text("wamid.CT"), contentType: "text/plain") == 415)
        #expect(try await signed(Self.text("wamid.BIG", body: String(repeating: "x", count: 4000))) == 413)
        #expect(try await signed(#"{"object":"page","entry":[]}"#) == 200)
        #expect(try harness.events(MessageReceived.self).isEmpty)
    }

    @Test func messagesAreDedupedByWamidAndStatusesByWamidAndStatus() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let client = harness.client
        for _ in 0..<3 { #expect(try await client.whatsapp(Self.text("wamid.DUP"), secret: Self.secret).status == 200) }
        let statuses = ChannelPayloadCorpusTests.notification(
            #""statuses":[{"id":"wamid.OUT","status":"read","timestamp":"2","recipient_id":"16505551234"},{"id":"wamid.OUT","status":"delivered","timestamp":"1","recipient_id":"16505551234"}]"#,
            phoneNumberID: WebhookHarness.phoneNumberID)
        for _ in 0..<2 { #expect(try await client.whatsapp(statuses, secret: Self.secret).status == 200) }
        #expect(try harness.events(MessageReceived.self).count == 1)
        #expect(try harness.events(DeliveryStatusReported.self).map(\.status) == ["read", "delivered"])
        // Another number's message: acknowledged and recorded as ignored, never a message.
        #expect(try await client.whatsapp(Self.text("wamid.ELSE", phone: "123"), secret: Self.secret).status == 200)
        #expect(try harness.events(InboundIgnored.self).map(\.reason) == ["other_phone_number"])
    }

    @Test func aBatchIsAllOrNothingAndAFailedWriteIs500() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let two = ChannelPayloadCorpusTests.notification(
            ChannelPayloadCorpusTests.contacts
                + #","messages":[{"from":"1","id":"wamid.B1","timestamp":"1","type":"text","text":{"body":"a"}},{"from":"2","id":"wamid.B2","timestamp":"1","type":"text","text":{"body":"b"}}]"#,
            phoneNumberID: WebhookHarness.phoneNumberID)
        #expect(try await harness.client.whatsapp(two, secret: Self.secret).status == 200)
        let seqs = try harness.log.events().filter { $0.record.type == MessageReceived.eventType }.map(\.record)
        #expect(seqs.count == 2)
        // One write transaction: both share the log time.
        #expect(seqs[0].timestamp == seqs[1].timestamp)
        harness.log.close()
        #expect(try await harness.client.whatsapp(Self.text("wamid.LATE"), secret: Self.secret).status == 500)
    }

    // MARK: One bad item costs only itself

    /// A notification of the messages (JSON objects) for the harness's number.
    static func batch(_ messages: [String]) -> String {
        ChannelPayloadCorpusTests.notification(
            ChannelPayloadCorpusTests.contacts + #","messages":[\#(messages.joined(separator: ","))]"#,
            phoneNumberID: WebhookHarness.phoneNumberID)
    }

    /// A text message; `timestamp` is JSON (a string literal by default).
    static func message(_ id: String, _ body: String, timestamp: String = #""1749416383""#) -> String {
        #"{"from":"16505551234","id":"\#(id)","timestamp":\#(timestamp),"type":"text","text":{"body":"\#(body)"}}"#
    }

    @Test func aLoneSurrogateInOneMessageCostsOnlyThatMessage() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        // `\ud800` with no low surrogate after it: Foundation's JSON parser refuses the whole document for it.
        let body = Self.batch([
            Self.message("wamid.S1", "first"), Self.message("wamid.S2", #"broken \ud800 text"#),
            Self.message("wamid.S3", "third"),
        ])
        // Twice: Meta's retry of the same notification records nothing new.
        for _ in 0..<2 { #expect(try await harness.client.whatsapp(body, secret: Self.secret).status == 200) }
        #expect(try harness.events(MessageReceived.self).map(\.externalID) == ["wamid.S1", "wamid.S3"])
        var ignored = try harness.events(InboundIgnored.self)
        #expect(ignored.map(\.externalID) == ["wamid.S2"])
        #expect(ignored.first?.reason == "malformed")
        #expect(ignored.first?.kind == "text")
        #expect(ignored.first?.contactID == "16505551234")
        #expect(ignored.first?.detail == "text.body: invalid text (lone surrogate or invalid UTF-8)")

        // Raw bytes that are not UTF-8 (no escape at all) are the same: only their message is malformed.
        let text = Self.batch([Self.message("wamid.U1", "fine"), Self.message("wamid.U2", "bad ##")])
        var raw = Array(text.utf8)
        let at = try #require(raw.firstIndex(of: UInt8(ascii: "#")))
        raw[at] = 0xFF
        raw[at + 1] = 0xC0
        let answer = try await harness.client.post(
            "/whatsapp/webhook", body: raw,
            headers: [("X-Hub-Signature-256", WhatsAppWebhook.signature(of: raw, secret: Self.secret))])
        #expect(answer.status == 200)
        #expect(try harness.events(MessageReceived.self).map(\.externalID) == ["wamid.S1", "wamid.S3", "wamid.U1"])
        ignored = try harness.events(InboundIgnored.self)
        #expect(ignored.map(\.externalID) == ["wamid.S2", "wamid.U2"])
        #expect(ignored.last?.detail == "text.body: invalid text (lone surrogate or invalid UTF-8)")
    }

    @Test func aNonsenseTimestampOrAMissingIDMakesOnlyThatMessageMalformed() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let body = Self.batch([
            Self.message("wamid.T0", "good"),
            Self.message("wamid.T1", "huge", timestamp: #""1e308""#),
            Self.message("wamid.T2", "negative", timestamp: #""-5""#),
            Self.message("wamid.T3", "a number, too large", timestamp: "1e308"),
            #"{"from":"16505551234","timestamp":"1749416383","type":"text","text":{"body":"who sent me?"}}"#,
            Self.message("wamid.T4", "a JSON integer is a time too", timestamp: "1749416384"),
        ])
        for _ in 0..<2 { #expect(try await harness.client.whatsapp(body, secret: Self.secret).status == 200) }
        let received = try harness.events(MessageReceived.self)
        #expect(received.map(\.externalID) == ["wamid.T0", "wamid.T4"])
        #expect(received.map(\.providerTimestamp?.microseconds) == [1_749_416_383_000_000, 1_749_416_384_000_000])
        let ignored = try harness.events(InboundIgnored.self)
        #expect(ignored.map(\.reason) == ["malformed", "malformed", "malformed", "malformed"])
        #expect(
            ignored.prefix(3).map { "\($0.externalID) \($0.detail ?? "-")" } == [
                "wamid.T1 timestamp: not a sane number of seconds",
                "wamid.T2 timestamp: not a sane number of seconds",
                "wamid.T3 timestamp: not a sane number of seconds",
            ])
        // No id: recorded under the item's fingerprint (the same for Meta's retry), never dropped.
        let anonymous = try #require(ignored.last)
        #expect(anonymous.externalID.hasPrefix("malformed:") && anonymous.externalID.count == "malformed:".count + 32)
        #expect(anonymous.detail == "id: missing")
        #expect(anonymous.contactID == "16505551234")
    }

    @Test func anUnknownStatusValueIsRecordedAsMalformedNotAsAStatus() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let statuses = ChannelPayloadCorpusTests.notification(
            #""statuses":[{"id":"wamid.OUT9","status":"sent","timestamp":"1","recipient_id":"16505551234"},"#
                + #"{"id":"wamid.OUT9","status":"played","timestamp":"2","recipient_id":"16505551234"},"#
                + #"{"id":"wamid.OUT9","timestamp":"3","recipient_id":"16505551234"},"#
                + #"{"id":"wamid.OUT9","status":"read","timestamp":"1e308","recipient_id":"16505551234"}]"#,
            phoneNumberID: WebhookHarness.phoneNumberID)
        for _ in 0..<2 { #expect(try await harness.client.whatsapp(statuses, secret: Self.secret).status == 200) }
        #expect(try harness.events(DeliveryStatusReported.self).map(\.status) == ["sent"])
        let ignored = try harness.events(InboundIgnored.self)
        #expect(ignored.map(\.kind) == ["status", "status", "status"])
        #expect(ignored.map(\.reason) == ["malformed", "malformed", "malformed"])
        #expect(
            ignored.map(\.detail) == [
                #"status: unknown value "played""#, "status: missing", "timestamp: not a sane number of seconds",
            ])
        #expect(ignored.first?.externalID == "status:wamid.OUT9:played")
        #expect(ignored.last?.externalID == "status:wamid.OUT9:read")
    }

    @Test func otherMethodsOnTheWebhookPathsAre405WithAllow() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        for path in ["/whatsapp/webhook", "/whatsapp-cloud/webhook"] {
            for method in ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
                let answer = try await harness.client.send(method, path)
                #expect(answer.status == 405, "\(method) \(path)")
                #expect(answer.allow == "GET, POST", "\(method) \(path)")
            }
        }
        #expect(try await harness.client.send("PUT", "/whatsapp/webhooks").status == 404)
        #expect(try harness.events(WebhookRejected.self).isEmpty)
    }

    /// Bodies that have broken parsers: each is either refused as a whole (400) or read item by item, and none
    /// traps.
    @Test func noBodyMakesTheReaderTrap() throws {
        func items(_ body: [UInt8]) -> [String]? {
            guard let notification = try? WhatsAppNotification(json: body) else { return nil }
            let inbound = WhatsAppInbound(
                accountID: "default", phoneNumberID: nil, access: ChannelAccess(channel: "whatsapp", policy: .open))
            return inbound.items(notification).map { ChannelPayloadCorpusTests.describe($0, nil) }
        }
        // Inside a string: that message is malformed, the notification is read.
        for text in [#"\ud800"#, #"\udc00\ud800"#, #"\ud800\u0041"#, #"\u12"#, #"\u"#, #"\x"#, "\u{01}"] {
            #expect(
                items(Array(Self.batch([Self.message("wamid.X", text)]).utf8)) == [
                    "ignored wamid.X text malformed (text.body: invalid text (lone surrogate or invalid UTF-8))"
                ], "\(text)")
        }
        #expect(
            items(Array(Self.batch([Self.message("wamid.E", #"\ud83d\ude00 \u00e9"#)]).utf8)) == ["message wamid.E 😀 é"]
        )
        // Of duplicate keys the last counts, for the item's fields as for its id.
        #expect(
            items(
                Array(
                    Self.batch([#"{"id":"wamid.D1","from":"1","type":"text","text":{"body":"a"},"id":"wamid.D2"}"#])
                        .utf8)) == ["message wamid.D2 a"])
        // A damaged key counts as damage of its item.
        #expect(
            items(Array(Self.batch([#"{"id":"wamid.K","from":"1","type":"text","text":{"b\udfffody":"x"}}"#]).utf8))
                == ["ignored wamid.K text malformed (text.(key): invalid text (lone surrogate or invalid UTF-8))"])
        // A key that is not a plain short name is never copied into the record.
        let longKey = String(repeating: "k", count: 40)
        #expect(
            items(Array(Self.batch([#"{"id":"wamid.L","from":"1","type":"text","\#(longKey)":"\ud800"}"#]).utf8))
                == ["ignored wamid.L text malformed ((key): invalid text (lone surrogate or invalid UTF-8))"])
        // The structure itself: refused as a whole.
        let broken = [
            "", " ", "{", "[", "nul", "01", "-", "1.", "1e", "[1,]", "{,}", #"{"a" 1}"#, #"{"a":"x"#, #"{"a":"\"#,
            #"{"object":"whatsapp_business_account"} x"#, String(repeating: "[", count: 100_000),
            String(repeating: "{\"a\":", count: 10_000), #"[{"object":1}]"#,
            #"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":{}}}]}]}"#,
        ]
        for body in broken { #expect(items(Array(body.utf8)) == nil, "\(body.prefix(40))") }
        // Numbers of any size are only text until a field reads them.
        #expect(items(Array(#"{"object":"page","n":-1e999999,"entry":[]}"#.utf8)) == [])
        #expect(items(Array("\u{FEFF}{\"object\":\"page\"}".utf8)) == [])
    }
}
