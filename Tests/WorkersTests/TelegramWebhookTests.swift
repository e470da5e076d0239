import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// `POST /telegram/webhook` over real HTTP: the original's webhook checklist (§8.5) and the fail-closed additions.
@Suite("Telegram webhook", .serialized)
struct TelegramWebhookTests {
    static let secret = WebhookHarness.telegramSecret

    /// The seed runbook's update, verbatim (no `update_id`, no `from`).
    static let runbookUpdate = """
        {
            "message": {
              "message_id": 100,
              "date": 1700000000,
              "text": "hello from integration test",
              "chat": { "id": 123456789 }
            }
          }
        """

    @Test func aWrongOrMissingSecretIs401AndRecorded() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        #expect(try await harness.client.telegram(Self.runbookUpdate, secret: nil).status == 401)
        #expect(try await harness.client.telegram(Self.runbookUpdate, secret: Self.secret + "x").status == 401)
        #expect(try await harness.client.telegram(Self.runbookUpdate, secret: "").status == 401)
        let rejected = try harness.events(WebhookRejected.self)
        #expect(rejected.map(\.reason) == ["missing_secret", "bad_secret", "bad_secret"])
        #expect(rejected.allSatisfy { $0.status == 401 && $0.channel == "telegram" && $0.workerID == "webhook" })
        #expect(try harness.events(MessageReceived.self).isEmpty)
        // The secret is never written down.
        #expect(!(try harness.log.events().contains { $0.record.payloadText.contains(Self.secret) }))
    }

    @Test func refusalsAreCoalescedWithACountOfTheRest() async throws {
        let harness = try await WebhookHarness.start(refusalInterval: .seconds(3600))
        defer { harness.stop() }
        for _ in 0..<5 { #expect(try await harness.client.telegram("{}", secret: "nope").status == 401) }
        // One record for the burst; the next one carries the count of those not recorded.
        #expect(try harness.events(WebhookRejected.self).map(\.suppressed) == [0])
    }

    @Test func theSeedRunbookUpdateIsRecordedWithItsFields() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let answer = try await harness.client.telegram(Self.runbookUpdate, secret: Self.secret)
        #expect(answer.status == 200)
        let received = try harness.events(MessageReceived.self)
        #expect(received.count == 1)
        let message = try #require(received.first)
        #expect(message.channel == "telegram" && message.accountID == "default")
        #expect(message.externalID == "123456789:100")
        #expect(message.contactID == "123456789")
        #expect(message.text == "hello from integration test")
        #expect(message.providerTimestamp == LogTimestamp(microseconds: 1_700_000_000_000_000))
        #expect(try harness.events(JobEnqueued.self).count == 1)
    }

    @Test func textIsTrimmedAndACaptionOfAnEditedChannelPostCounts() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let text = #"""
            {"update_id":10,"message":{"message_id":7,"date":1700000100,"from":{"id":42,"is_bot":false,"first_name":"Alice","last_name":"Tester"},"chat":{"id":42,"type":"private","first_name":"Alice"},"text":"  hi there \n","reply_to_message":{"message_id":5,"date":1700000000,"chat":{"id":42,"type":"private"}}}}
            """#
        #expect(try await harness.client.telegram(text, secret: Self.secret).status == 200)
        let caption = #"""
            {"update_id":11,"edited_channel_post":{"message_id":9,"date":1700000200,"edit_date":1700000300,"chat":{"id":-1001234,"type":"channel","title":"News","username":"botUser"},"photo":[{"file_id":"small","file_unique_id":"a","width":90,"height":90},{"file_id":"big","file_unique_id":"b","width":800,"height":800}],"caption":"  look at this "}}
            """#
        #expect(try await harness.client.telegram(caption, secret: Self.secret).status == 200)
        let received = try harness.events(MessageReceived.self)
        #expect(received.map(\.text) == ["hi there", "look at this"])
        #expect(received.map(\.externalID) == ["42:7", "-1001234:9:edit:1700000300"])
        #expect(received.map(\.replyToExternalID) == ["42:5", "-1001234:9"])
        #expect(received[1].media == MediaDescriptor(kind: "image", mimeType: "image/jpeg", providerMediaID: "big"))
        #expect(received[1].providerTimestamp == LogTimestamp(microseconds: 1_700_000_300_000_000))
    }

    @Test func otherUpdatesAreAcknowledgedAndRecordedAsIgnoredOnce() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        let callback = #"""
            {"update_id":500,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":42,"is_bot":false,"first_name":"Alice"},"chat_instance":"-123","data":"yes"}}
            """#
        let sticker = #"""
            {"update_id":501,"message":{"message_id":8,"date":1700000100,"chat":{"id":42,"type":"private"},"sticker":{"file_id":"CAAC","file_unique_id":"x","type":"regular","width":512,"height":512,"is_animated":false,"is_video":false}}}
            """#
        for body in [callback, sticker, callback] {
            #expect(try await harness.client.telegram(body, secret: Self.secret).status == 200)
        }
        // Nothing recognisable at all: acknowledged, nothing recorded.
        #expect(try await harness.client.telegram("{}", secret: Self.secret).status == 200)
        let ignored = try harness.events(InboundIgnored.self)
        #expect(ignored.map(\.externalID) == ["update:500", "42:8"])
        #expect(ignored.map(\.reason) == ["unsupported_kind", "no_text"])
        #expect(ignored.map(\.kind) == ["callback_query", "message"])
        #expect(try harness.events(MessageReceived.self).isEmpty)
    }

    @Test func aReplayedUpdateIsStoredOnce() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        for _ in 0..<3 {
            #expect(try await harness.client.telegram(Self.runbookUpdate, secret: Self.secret).status == 200)
        }
        #expect(try harness.events(MessageReceived.self).count == 1)
        #expect(try harness.events(JobEnqueued.self).count == 1)
    }

    @Test func badBodiesGetTheRightStatusAndNothingIsStored() async throws {
        let harness = try await WebhookHarness.start(maxBodyBytes: 2048)
        defer { harness.stop() }
        let client = harness.client
        let headers = [("X-Telegram-Bot-Api-Secret-Token", Self.secret)]
        // Invalid JSON.
        #expect(
            try await client.post("/telegram/webhook", body: Array("{\"message\":".utf8), headers: headers).status
                == 400)
        // JSON that is not an update object.
        #expect(try await client.post("/telegram/webhook", body: Array("[1,2]".utf8), headers: headers).status == 400)
        // Wrong content type.
        #expect(
            try await client.post(
                "/telegram/webhook", body: Array(Self.runbookUpdate.utf8), headers: headers,
                contentType: "application/x-www-form-urlencoded"
            ).status == 415)
        // Oversize (the secret is checked first: an unauthenticated oversize body is a 401).
        let big = #"{"message":{"message_id":1,"chat":{"id":1},"text":""# + String(repeating: "a", count: 4096) + "\"}}"
        #expect(try await client.post("/telegram/webhook", body: Array(big.utf8), headers: headers).status == 413)
        #expect(try await client.post("/telegram/webhook", body: Array(big.utf8)).status == 401)
        #expect(try harness.events(MessageReceived.self).isEmpty)
        #expect(try harness.events(InboundIgnored.self).isEmpty)
        // The server still answers.
        #expect(try await client.telegram(Self.runbookUpdate, secret: Self.secret).status == 200)
    }

    @Test func otherMethodsOnTheWebhookPathAre405WithAllow() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        for method in ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let answer = try await harness.client.send(method, "/telegram/webhook")
            #expect(answer.status == 405, "\(method)")
            #expect(answer.allow == "POST", "\(method)")
        }
        // POST is still the webhook (here without its secret), and a path next to it is still unknown.
        #expect(try await harness.client.telegram(Self.runbookUpdate, secret: nil).status == 401)
        #expect(try await harness.client.send("GET", "/telegram/webhooks").status == 404)
    }

    @Test func aLogThatCannotBeWrittenIs500SoTelegramRetries() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        harness.log.close()
        let answer = try await harness.client.telegram(Self.runbookUpdate, secret: Self.secret)
        #expect(answer.status == 500)
    }

    @Test func theUnknownSenderOfADirectMessageGetsAPairingCodeOnce() async throws {
        let harness = try await WebhookHarness.start(telegramPolicy: .pairing, telegramAllowed: ["777"])
        defer { harness.stop() }
        func update(_ id: Int, chat: Int) -> String {
            #"{"update_id":\#(id),"message":{"message_id":\#(id),"date":1700000000,"from":{"id":\#(chat),"is_bot":false,"first_name":"X"},"chat":{"id":\#(chat),"type":"private"},"text":"hi \#(id)"}}"#
        }
        for (id, chat) in [(1, 555), (2, 555), (3, 777), (4, 555)] {
            #expect(try await harness.client.telegram(update(id, chat: chat), secret: Self.secret).status == 200)
        }
        let deliveries = try harness.events(DeliveryEnqueued.self)
        #expect(deliveries.count == 1)
        #expect(deliveries.first?.recipient == "555")
        #expect(deliveries.first?.kind == "pairing_code")
        #expect(deliveries.first?.text.contains("agent pairing approve telegram") == true)
        // The allowlisted chat is answered; the unknown one is recorded three times and answered never.
        let jobs = try harness.events(JobEnqueued.self)
        #expect(jobs.count == 1)
        #expect(try harness.events(MessageReceived.self).filter { $0.contactID == "555" }.count == 3)
    }
}
