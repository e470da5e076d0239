import EventLog
import Foundation
import Logging
import Testing
@_exported import TestSupport

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

func openLog(
    _ directory: String, worker: String = "tester", tables: [String] = [],
    configure: (inout EventLogConfiguration) -> Void = { _ in }
) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: directory, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.tables = tables
    configure(&configuration)
    return try EventLog(configuration, logger: quietLogger)
}

func testEvent(_ index: Int, writer: String = "tester") -> PendingEvent {
    PendingEvent(type: "test.appended", payload: Array("{\"i\":\(index),\"writer\":\"\(writer)\"}".utf8))
}

/// The payload fields the helper and `testEvent` write.
struct TestPayload: Decodable, Equatable {
    var i: Int
    var writer: String
}

func testPayload(_ record: Record) throws -> TestPayload {
    try JSONDecoder().decode(TestPayload.self, from: Data(record.payload))
}

/// A spawned `switchboard-test-helper` process.
typealias HelperProcess = SpawnedProcess

extension SpawnedProcess {
    convenience init(_ arguments: [String]) throws {
        try self.init("switchboard-test-helper", arguments)
    }
}

/// Runs the helper to completion.
func runHelper(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
    try await SpawnedProcess.run("switchboard-test-helper", arguments)
}
