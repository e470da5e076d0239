import AsyncHTTPClient
import EventLog
import Foundation
import SwitchboardEvents
import Testing
import Workers

/// Many providers' retries at once: nothing lost, nothing stored twice.
@Suite("Webhook burst", .serialized, .timeLimit(.minutes(3)))
struct WebhookBurstTests {
    @Test func aThousandCallsFromFiftyClientsAreAllStoredOnce() async throws {
        let harness = try await WebhookHarness.start()
        defer { harness.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 50
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let webhook = WebhookClient(baseURL: harness.client.baseURL, client: client)
        let clients = 50
        let perClient = 20
        func update(_ n: Int) -> String {
            #"{"update_id":\#(100_000 + n),"message":{"message_id":\#(n),"date":1700000000,"from":{"id":\#(1000 + n % 97),"is_bot":false,"first_name":"U"},"chat":{"id":\#(1000 + n % 97),"type":"private"},"text":"burst \#(n)"}}"#
        }
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for c in 0..<clients {
                group.addTask {
                    var answers: [Int] = []
                    for i in 0..<perClient {
                        let n = c * perClient + i
                        answers.append(
                            try await webhook.telegram(update(n), secret: WebhookHarness.telegramSecret).status)
                    }
                    // A provider retry of one the client already sent, and one another client sent.
                    answers.append(
                        try await webhook.telegram(update(c * perClient), secret: WebhookHarness.telegramSecret).status)
                    answers.append(
                        try await webhook.telegram(
                            update(((c + 1) % clients) * perClient + 1), secret: WebhookHarness.telegramSecret
                        )
                        .status)
                    return answers
                }
            }
            var all: [Int] = []
            for try await answers in group { all += answers }
            return all
        }
        try await client.shutdown()
        #expect(statuses.count == clients * (perClient + 2))
        #expect(statuses.allSatisfy { $0 == 200 })
        let received = try harness.events(MessageReceived.self)
        #expect(received.count == clients * perClient)
        #expect(Set(received.map(\.externalID)).count == clients * perClient)
        #expect(try harness.events(JobEnqueued.self).count == clients * perClient)
    }
}
