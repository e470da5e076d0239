import EventLog
@testable import SwitchboardEvents
import Foundation
import Projections
import Testing

/// Every record the engine writes decodes to the same value with the direct payload decoder and with
/// Foundation's `JSONDecoder`.
@Suite("Payload decoder differential")
struct PayloadDecoderDifferentialTests {
    static func same<E: EventPayload>(_ type: E.Type, _ payload: [UInt8]) throws -> Bool {
        let foundation = try JSONDecoder().decode(E.self, from: Data(payload))
        return try PayloadJSONDecoding_probe(E.self, payload) == foundation
    }

    @Test func everyRecordOfABusyLogDecodesTheSameBothWays() async throws {
        let dir = TemporaryDirectory()
        let clock = TestClock()
        var settings = EngineSettings.defaults()
        settings.deliveries.rateLimits = [:]
        let engine = try openEngine(
            dir.path, settings: settings, clock: clock, sessionKey: Data(repeating: 1, count: 32).base64EncodedString())
        let grant = try #require(try await engine.acquireLease("whatsapp/default").grant)
        for n in 0..<20 {
            var message = InboundMessage(
                channel: "whatsapp", accountID: "default", externalID: "wamid.\(n)",
                contactID: "+1555\(n % 3)", text: "héllo \"\(n)\"\n✓")
            message.providerTimestamp = clock.now
            _ = try await engine.ingest(message)
            if let claim = try await engine.claimJob() {
                _ = try await engine.enqueueDelivery(
                    NewDelivery(
                        idempotencyKey: "a\(n):0", channel: "whatsapp",
                        accountID: "default", recipient: "+1555\(n % 3)", conversationID: claim.job.conversationID,
                        text: "r\(n)"))
                if n % 4 == 0 {
                    _ = try await engine.failJob(
                        claim.job.jobID, token: claim.token, reason: "timeout", message: "t", retryable: true)
                } else {
                    _ = try await engine.completeJob(claim.job.jobID, token: claim.token, result: "ok", modelUsed: "m")
                }
            }
            clock.advance(.seconds(7))
            if case .claimed(let d) = try await engine.claimDelivery(
                channel: "whatsapp", accountID: "default", leaseToken: grant.token)
            {
                _ = try await engine.attemptDelivery(d.delivery.deliveryID, token: d.token, leaseToken: grant.token)
                _ = try await engine.deliveryFailed(
                    d.delivery.deliveryID, token: d.token, permanent: false,
                    retryAfter: clock.now.advanced(by: .seconds(1)), errorCode: "429", message: "slow down")
            }
            _ = try await engine.renewLease("whatsapp/default", token: grant.token)
            _ = try await SessionStore(backend: .log, engine: engine).write(
                ["creds": Data([UInt8(n)]), "old": nil], namespace: "whatsapp/default", leaseToken: grant.token)
        }
        try await engine.startPairing(
            channel: "telegram", accountID: "default", contactID: "-100", code: "1234", by: "op")
        let records = try engine.log.records(from: 1)
        #expect(Set(records.map(\.type)).count >= 14)
        for record in records {
            guard let kind = EventCatalog.types[record.type] else { continue }
            #expect(try Self.same(kind, record.payload), "seq \(record.seq) \(record.type): \(record.payloadText)")
        }
        await engine.close()
    }
}

private func PayloadJSONDecoding_probe<E: EventPayload>(_ type: E.Type, _ payload: [UInt8]) throws -> E {
    // Record.decode tries the direct decoder first; a record whose direct decode fails would silently use
    // Foundation, so go through the direct decoder alone here.
    try DirectPayloadDecoder.decode(type, payload)
}
