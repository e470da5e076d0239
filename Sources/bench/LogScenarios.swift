import ArgumentParser
import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections

extension Runner {

    func appendDurable() async throws {
        let count = 3000
        let log = try openLog("ours")
        let recordSize = try log.storedSize(of: benchEvent())
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        let start = RawLMDBBaseline.monotonicNanoseconds()
        for _ in 0..<count {
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            try await log.append([benchEvent()])
            latencies.append(RawLMDBBaseline.monotonicNanoseconds() - t0)
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        await log.close()
        let raw = try RawLMDBBaseline.append(
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
        let recordSize = try log.storedSize(of: benchEvent())
        let start = RawLMDBBaseline.monotonicNanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<appenders {
                group.addTask {
                    for _ in 0..<perAppender { try await log.append([benchEvent()]) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let total = appenders * perAppender
        let commits = log.commitCount
        await log.close()
        let effectiveBatch = max(1, Int((Double(total) / Double(commits)).rounded()))
        let raw = try RawLMDBBaseline.append(
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
            committed[seq] = RawLMDBBaseline.monotonicNanoseconds()
            try await Task.sleep(for: .microseconds(1000))  // pacing: one commit per ~1 ms, reader idle between
        }
        let rest = output.readDataToEndOfFile()
        reader.waitUntilExit()
        await log.close()
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
        let recordSize = try log.storedSize(of: benchEvent())
        var written = 0
        while written < count {
            let n = min(batch, count - written)
            try await log.append(Array(repeating: benchEvent(), count: n))
            written += n
        }
        var decoded = 0
        var payloadBytes = 0
        let start = RawLMDBBaseline.monotonicNanoseconds()
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                decoded += 1
                payloadBytes &+= record.payload.count
                return true
            }
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        await log.close()
        precondition(decoded == count)
        _ = try RawLMDBBaseline.append(
            directory: scratch + "/raw", count: count, batch: batch, valueSize: recordSize, durability: .durable)
        let raw = try RawLMDBBaseline.scan(directory: scratch + "/raw")
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
        let recordSize = try log.storedSize(of: benchEvent())
        let ourBytes = log.dataFileBytes
        await log.close()
        let raw = try RawLMDBBaseline.append(
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
