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
}
