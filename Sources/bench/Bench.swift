// Benchmarks of the event log, each beside a raw LMDB C-API baseline measured in the same run.
// Output contract: one JSON object per line with at least `scenario`, `value`, `unit`, and where a baseline
// exists `baseline` and `ratio` (ours ÷ baseline, higher is better); latencies as `p50_us`/`p99_us`.
import ArgumentParser
import EventLog
import Foundation
import Logging

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Event-log benchmarks with a raw LMDB baseline in the same run.",
        subcommands: [List.self, Run.self, TailReader.self])
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Names the scenarios.")
    func run() {
        for scenario in Scenario.allCases { print("\(scenario.rawValue)\t\(scenario.summary)") }
    }
}

enum Scenario: String, CaseIterable, ExpressibleByArgument {
    case appendDurable = "append-durable"
    case groupCommit = "group-commit-64"
    case tailLatency = "tail-latency"
    case scan = "scan"
    case storage = "storage"

    var summary: String {
        switch self {
        case .appendDurable: "durable append, one record per commit: ops/s and commit latency (target >= 0.8x raw)"
        case .groupCommit: "64 concurrent appenders, durable group commit: events/s (target >= 100k/s, >= 0.5x raw)"
        case .tailLatency: "commit to delivery in another process, doorbell-woken: p50/p99 (target p99 <= 1 ms)"
        case .scan: "full scan of 1,000,000 records with decode and checksum: events/s (target >= 1M/s)"
        case .storage: "stored bytes per event vs payload bytes, and vs raw LMDB storing the payload alone"
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs one scenario, or all.")

    @Argument(help: "A scenario name from `bench list`, or `all`.")
    var name: String

    @Option(help: "Scratch directory for the environments (removed afterwards).")
    var scratch: String = NSTemporaryDirectory() + "switchboard-bench"

    @Option(help: "Records for the scan scenario.")
    var scanRecords = 1_000_000

    func run() async throws {
        let scenarios: [Scenario]
        if name == "all" {
            scenarios = Scenario.allCases
        } else if let scenario = Scenario(rawValue: name) {
            scenarios = [scenario]
        } else {
            throw ValidationError("unknown scenario \(name); see `bench list`")
        }
        let runner = Runner(scratch: scratch, scanRecords: scanRecords)
        for scenario in scenarios {
            try? FileManager.default.removeItem(atPath: scratch)
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            try await runner.run(scenario)
        }
    }
}

/// `bench tail-reader`: the other process of the tail-latency scenario. Prints `seq monotonic-ns` per record.
struct TailReader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: the reading process of tail-latency.")
    @Option var dir: String
    @Option var from: UInt64
    @Option var count: Int

    func run() async throws {
        let log = try EventLog(
            EventLogConfiguration(directory: dir, writer: WriterIdentity(role: "bench", workerID: "tail-reader")),
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        var lines: [String] = []
        lines.reserveCapacity(count)
        emit("ready")
        var received = 0
        for try await record in log.tail(from: from) {
            lines.append("\(record.seq) \(_RawLMDBBaseline.monotonicNanoseconds())")
            received += 1
            if received == count { break }
        }
        log.close()
        emit(lines.joined(separator: "\n"))
    }
}

func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

/// A payload the size of a typical job or delivery event (about 200 bytes of JSON).
let benchPayload = Array(
    ("{\"conversationID\":\"whatsapp/default/+15550001234\",\"idempotencyKey\":\"msg-0001:0\","
        + "\"jobID\":\"6f1c2a9e-2c57-4d8e-9a51-0c7f3b1e9d42\",\"kind\":\"reply\",\"maxAttempts\":3,"
        + "\"priority\":0,\"text\":\"hello there, how are you today?\"}").utf8)

func benchEvent() -> PendingEvent { PendingEvent(type: "bench.event", payload: benchPayload) }

struct Runner {
    let scratch: String
    let scanRecords: Int
    let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })

    func openLog(_ name: String, durability: Durability = .durable) throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: scratch + "/" + name, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.durability = durability
        configuration.initialMapSize = 4 << 30
        return try EventLog(configuration, logger: logger)
    }

    func run(_ scenario: Scenario) async throws {
        switch scenario {
        case .appendDurable: try await appendDurable()
        case .groupCommit: try await groupCommit()
        case .tailLatency: try await tailLatency()
        case .scan: try await scan()
        case .storage: try await storage()
        }
    }

    func report(_ fields: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        emit(String(decoding: data, as: UTF8.self))
    }

    func percentile(_ values: [UInt64], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return Double(sorted[index]) / 1000
    }

    func round(_ x: Double, _ places: Int = 2) -> Double {
        let m = pow(10, Double(places))
        return (x * m).rounded() / m
    }

    func appendDurable() async throws {
        let count = 3000
        let log = try openLog("ours")
        let recordSize = try log._storedSize(of: benchEvent())
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        let start = _RawLMDBBaseline.monotonicNanoseconds()
        for _ in 0..<count {
            let t0 = _RawLMDBBaseline.monotonicNanoseconds()
            try await log.append([benchEvent()])
            latencies.append(_RawLMDBBaseline.monotonicNanoseconds() - t0)
        }
        let seconds = Double(_RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        log.close()
        let raw = try _RawLMDBBaseline.append(
            directory: scratch + "/raw", count: count, batch: 1, valueSize: recordSize, durability: .durable)
        let ours = Double(count) / seconds
        let baseline = Double(count) / raw.seconds
        try report([
            "scenario": Scenario.appendDurable.rawValue, "value": round(ours), "unit": "ops/s",
            "baseline": round(baseline), "ratio": round(ours / baseline, 3),
            "p50_us": round(percentile(latencies, 0.5)), "p99_us": round(percentile(latencies, 0.99)),
            "baseline_p50_us": round(percentile(raw.commitLatenciesNanoseconds, 0.5)),
            "baseline_p99_us": round(percentile(raw.commitLatenciesNanoseconds, 0.99)),
            "records": count, "record_bytes": recordSize, "target_ratio": 0.8,
        ])
    }

    func groupCommit() async throws {
        let appenders = 64
        let perAppender = 1500
        let log = try openLog("ours")
        let recordSize = try log._storedSize(of: benchEvent())
        let start = _RawLMDBBaseline.monotonicNanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<appenders {
                group.addTask {
                    for _ in 0..<perAppender { try await log.append([benchEvent()]) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(_RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let total = appenders * perAppender
        let commits = log._commitCount
        log.close()
        let effectiveBatch = max(1, Int((Double(total) / Double(commits)).rounded()))
        let raw = try _RawLMDBBaseline.append(
            directory: scratch + "/raw", count: total, batch: effectiveBatch, valueSize: recordSize,
            durability: .durable)
        let ours = Double(total) / seconds
        let baseline = Double(total) / raw.seconds
        try report([
            "scenario": Scenario.groupCommit.rawValue, "value": round(ours), "unit": "events/s",
            "baseline": round(baseline), "ratio": round(ours / baseline, 3), "appenders": appenders,
            "events": total, "commits": commits, "effective_batch": effectiveBatch, "record_bytes": recordSize,
            "target_value": 100_000, "target_ratio": 0.5,
        ])
    }

    func tailLatency() async throws {
        let count = 1000
        let log = try openLog("ours")
        try await log.append([benchEvent()])
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        reader.arguments = ["tail-reader", "--dir", scratch + "/ours", "--from", "2", "--count", "\(count)"]
        let pipe = Pipe()
        reader.standardOutput = pipe
        try reader.run()
        let output = pipe.fileHandleForReading
        // Wait for the reader's "ready" before committing.
        var buffered = Data()
        while !buffered.contains(UInt8(ascii: "\n")) {
            let chunk = output.availableData
            if chunk.isEmpty { break }
            buffered.append(chunk)
        }
        try await Task.sleep(for: .milliseconds(200))  // let the reader reach its first wait
        var committed: [UInt64: UInt64] = [:]
        for _ in 0..<count {
            let seq = try await log.append([benchEvent()]).lowerBound
            committed[seq] = _RawLMDBBaseline.monotonicNanoseconds()
            try await Task.sleep(for: .microseconds(1000))  // pacing: one commit per ~1 ms, reader idle between
        }
        let rest = output.readDataToEndOfFile()
        reader.waitUntilExit()
        log.close()
        let text = String(decoding: buffered + rest, as: UTF8.self)
        var latencies: [UInt64] = []
        for line in text.split(separator: "\n") where line != "ready" {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let seq = UInt64(parts[0]), let seen = UInt64(parts[1]),
                let at = committed[seq]
            else { continue }
            latencies.append(seen > at ? seen - at : 0)
        }
        try report([
            "scenario": Scenario.tailLatency.rawValue, "value": round(percentile(latencies, 0.99)), "unit": "us",
            "p50_us": round(percentile(latencies, 0.5)), "p99_us": round(percentile(latencies, 0.99)),
            "max_us": round(percentile(latencies, 1.0)), "records": latencies.count, "expected": count,
            "target_p99_us": 1000,
        ])
    }

    func scan() async throws {
        let count = scanRecords
        let batch = 10_000
        let log = try openLog("ours")
        let recordSize = try log._storedSize(of: benchEvent())
        var written = 0
        while written < count {
            let n = min(batch, count - written)
            try await log.append(Array(repeating: benchEvent(), count: n))
            written += n
        }
        var decoded = 0
        var payloadBytes = 0
        let start = _RawLMDBBaseline.monotonicNanoseconds()
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                decoded += 1
                payloadBytes &+= record.payload.count
                return true
            }
        }
        let seconds = Double(_RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        log.close()
        precondition(decoded == count)
        _ = try _RawLMDBBaseline.append(
            directory: scratch + "/raw", count: count, batch: batch, valueSize: recordSize, durability: .durable)
        let raw = try _RawLMDBBaseline.scan(directory: scratch + "/raw")
        let ours = Double(decoded) / seconds
        let baseline = Double(raw.count) / raw.seconds
        try report([
            "scenario": Scenario.scan.rawValue, "value": round(ours), "unit": "events/s",
            "baseline": round(baseline), "ratio": round(ours / baseline, 3), "records": count,
            "record_bytes": recordSize, "target_value": 1_000_000,
        ])
    }

    func storage() async throws {
        let count = 100_000
        let batch = 1000
        let log = try openLog("ours")
        var written = 0
        while written < count {
            try await log.append(Array(repeating: benchEvent(), count: batch))
            written += batch
        }
        let recordSize = try log._storedSize(of: benchEvent())
        let ourBytes = log.dataFileBytes
        log.close()
        let raw = try _RawLMDBBaseline.append(
            directory: scratch + "/raw", count: count, batch: batch, valueSize: benchPayload.count,
            durability: .durable)
        let ours = Double(ourBytes) / Double(count)
        let baseline = Double(raw.fileBytes) / Double(count)
        try report([
            "scenario": Scenario.storage.rawValue, "value": round(ours), "unit": "bytes/event",
            "baseline": round(baseline), "ratio": round(baseline / ours, 3),
            "payload_bytes": benchPayload.count, "record_bytes": recordSize,
            "overhead_vs_payload": round(ours / Double(benchPayload.count), 3), "events": count,
        ])
    }
}
