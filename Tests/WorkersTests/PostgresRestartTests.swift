import EventLog
import EventLogPostgres
import Foundation
import SwitchboardEvents
import TestSupport
import Testing

/// The workers carry on by themselves when PostgreSQL goes away under them (issue 26): an agent answering
/// Telegram, its database's sessions killed and then the server restarted; each later message is answered once,
/// without restarting the agent.
@Suite("Agents through a PostgreSQL restart", .serialized, .timeLimit(.minutes(3)))
struct PostgresRestartTests {
    @Test func anAgentAnswersAfterItsSessionsAreKilledAndTheServerRestarts() async throws {
        // A cluster of its own: the restart would disturb the other suites' shared one.
        let cluster = try PostgresCluster()
        defer { cluster.stop() }
        let schema = PostgresCluster.uniqueSchemaName()
        let place = Deployment(
            kind: .postgres, root: TemporaryDirectory().path, url: cluster.url(overTCP: true), schema: schema)
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess(
            "tg-1", data: place.data(for: "tg-1"),
            place.environment(
                ChannelProcessTests.telegram(
                    bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "QUEUE_MODE": "followup", "INBOUND_DEBOUNCE_MS": "0"])))
        try await agent.waitFor("[telegram] Polling for updates")
        bot.pushText("before", chat: 42, messageID: 1)
        _ = try await bot.waitForSent(1)

        // Every session of the agent killed at once: writer, listener, readers.
        _ = try cluster.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                + "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        bot.pushText("after the sessions were killed", chat: 42, messageID: 2)
        _ = try await bot.waitForSent(2, within: 30)

        try cluster.restart()
        bot.pushText("after the restart", chat: 42, messageID: 3)
        let sent = try await bot.waitForSent(3, within: 60)
        #expect(await agent.stop() == 0)
        #expect(sent.map(\.text).filter { $0.contains("after the restart") }.count == 1, "\(sent.map(\.text))")

        let log = try TestLog(place)
        defer { log.close() }
        #expect(try ChannelProcessTests.received(log).map(\.externalID) == ["42:1", "42:2", "42:3"])
        #expect(bot.sent.count == 3)
        let verify = try await SpawnedProcess.run("replay", ["verify"] + place.replayArguments)
        #expect(verify.status == 0, "\(verify.lines)")
    }
}
