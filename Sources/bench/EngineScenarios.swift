import ArgumentParser
import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections

extension Runner {
    func openEngine(_ name: String) throws -> Switchboard {
        var configuration = EventLogConfiguration(
            directory: scratch + "/" + name, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.initialMapSize = 4 << 30
        return try Switchboard(configuration, logger: logger)
    }

    func jobCycle() async throws {
        let engine = try openEngine("ours")
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let cpuStart = processCPUSeconds()
        let completed = try await runJobCycles(engine, workers: jobWorkers, cycles: 19_200 / jobWorkers, prefix: "p")
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let cpu = processCPUSeconds() - cpuStart
        let events = try engine.log.lastSeq()
        let commits = engine.log.commitCount
        let writerCPU = engine.log.writerCPUSeconds
        await engine.close()
        let batch = max(1, Int((Double(events) / Double(max(1, commits))).rounded()))
        let raw = try RawLMDBBaseline.append(
            directory: scratch + "/raw", count: Int(events), batch: batch, valueSize: 300, durability: .durable)
        let ours = Double(completed) / seconds
        let baseline = Double(events) / raw.seconds / (Double(events) / Double(completed))
        try report([
            "scenario": Scenario.jobCycle.rawValue, "value": round(ours), "unit": "cycles/s",
            "baseline": round(baseline),
            "ratio": round(ours / baseline, 3), "cycles": completed, "events": events, "commits": commits,
            "effective_batch": batch, "target_value": 20_000, "workers": jobWorkers,
            "cpu_us_per_cycle": round(cpu / Double(completed) * 1e6, 1),
            "writer_cpu_us_per_cycle": round(writerCPU / Double(completed) * 1e6, 1),
            "baseline_note": "raw LMDB appending the same number of records at the same records per commit",
        ])
    }

    func jobCycleProcesses() async throws {
        let dir = scratch + "/ours"
        // Create the log once so the processes share it.
        try await openEngine("ours").close()
        let processes = (0..<4).map { index -> (Process, Pipe) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = [
                "job-worker", "--dir", dir, "--name", "w\(index)", "--workers", "16", "--cycles", "300",
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            return (process, pipe)
        }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        for (process, _) in processes { try process.run() }
        var completed = 0
        for (process, pipe) in processes {
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            for line in text.split(separator: "\n") where line.hasPrefix("cycles ") {
                completed += Int(line.dropFirst(7)) ?? 0
            }
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        try report([
            "scenario": Scenario.jobCycle4.rawValue, "value": round(Double(completed) / seconds), "unit": "cycles/s",
            "cycles": completed, "processes": 4, "workers_per_process": 16,
            "note":
                "includes process start-up; each process has its own writer thread contending for LMDB's writer lock",
        ])
    }

    func leaseOps() async throws {
        let engine = try openEngine("ours")
        let resources = 64
        let renewals = 100
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let ops = try await withThrowingTaskGroup(of: Int.self) { group in
            for r in 0..<resources {
                group.addTask {
                    guard let grant = try await engine.acquireLease("bench/\(r)").grant else { return 0 }
                    var done = 1
                    for _ in 0..<renewals
                    where try await engine.renewLease("bench/\(r)", token: grant.token).grant != nil {
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let events = try engine.log.lastSeq()
        let commits = engine.log.commitCount
        await engine.close()
        let batch = max(1, Int((Double(events) / Double(max(1, commits))).rounded()))
        let raw = try RawLMDBBaseline.append(
            directory: scratch + "/raw", count: Int(events), batch: batch, valueSize: 250, durability: .durable)
        let ours = Double(ops) / seconds
        let baseline = Double(events) / raw.seconds
        try report([
            "scenario": Scenario.leaseOps.rawValue, "value": round(ours), "unit": "ops/s", "baseline": round(baseline),
            "ratio": round(ours / baseline, 3), "ops": ops, "resources": resources, "effective_batch": batch,
        ])
    }

    func rebuild() async throws {
        // A realistic mix: job cycles, deliveries with claims/attempts/sends, leases.
        let engine = try openEngine("ours")
        var settings = DeliverySettings()
        settings.rateLimits = [:]
        _ = try await engine.acquireLease("whatsapp/default")  // a lease in the mix
        _ = try await runJobCycles(engine, workers: 64, cycles: 1_200, prefix: "r")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<32 {
                group.addTask {
                    for c in 0..<200 {
                        _ = try await engine.enqueueDelivery(
                            NewDelivery(
                                idempotencyKey: "m-\(w)-\(c)", channel: "web", accountID: "default",
                                recipient: "u\(w)-\(c)", conversationID: "c\(w)", text: "hello there"))
                    }
                }
            }
            try await group.waitForAll()
        }
        let events = try engine.log.lastSeq()
        func seconds(since start: UInt64) -> Double { Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9 }
        // The digest of the same state, timed on its own: the rebuild ends with one.
        var start = RawLMDBBaseline.monotonicNanoseconds()
        let live = try engine.digest()
        let digestSeconds = seconds(since: start)
        // Reading and decoding every payload on one thread (the rebuild spreads this over the cores).
        start = RawLMDBBaseline.monotonicNanoseconds()
        var next: UInt64 = 1
        while next <= events {
            let records = try engine.log.records(from: next, limit: 20_000)
            for record in records { _ = try record.event() }
            next = (records.last?.seq ?? events) + 1
        }
        let decodeSeconds = seconds(since: start)
        var runs: [Double] = []
        var cpu: [Double] = []
        var matches = true
        for run in 0..<rebuildRepeat {
            let directory = scratch + "/scratch-\(run)"
            start = RawLMDBBaseline.monotonicNanoseconds()
            let cpuStart = processCPUSeconds()
            let rebuilt = try await Rebuild.digest(of: engine.log, scratchDirectory: directory, logger: logger)
            runs.append(seconds(since: start))
            cpu.append(processCPUSeconds() - cpuStart)
            matches = matches && live == rebuilt
            try? FileManager.default.removeItem(atPath: directory)
        }
        await engine.close()
        let best = runs.min() ?? 0
        try report([
            "scenario": Scenario.rebuild.rawValue, "value": round(Double(events) / best), "unit": "events/s",
            "events": events, "digest_matches": matches, "target_value": 500_000,
            "runs_seconds": runs.map { round($0, 3) }, "digest_seconds": round(digestSeconds, 3),
            "cpu_seconds": cpu.map { round($0, 3) },
            "decode_us_per_event_one_thread": round(decodeSeconds / Double(events) * 1e6, 2),
            "note": "value: the fastest of runs_seconds, each a whole rebuild from seq 1 ending with the digest",
        ])
    }
}

extension Runner {
    /// Generates a 1,000,000-event log through the deciders (job cycles and deliveries with claims, attempts,
    /// sends), taking a projection snapshot every 100,000 events as an agent with the default `SNAPSHOT_EVERY`
    /// does, then times what `replay state --at` runs (from the nearest snapshot, and from seq 1) and what
    /// `replay audit duplicates` runs, and finally the in-place rebuild a projection format upgrade runs.
    func replayOneMillion() async throws {
        let directory = scratch + "/ours"
        let engine = try openEngine("ours")
        let target: UInt64 = 1_000_000
        let every: UInt64 = 100_000
        let snapshots = StateSnapshots(logDirectory: directory)
        var snapshotSeconds: [Double] = []
        let grant = try await engine.acquireLease("web/default").grant!
        var pass = 0
        while try engine.log.lastSeq() < target {
            pass += 1
            _ = try await runJobCycles(engine, workers: 256, cycles: 40, prefix: "r\(pass)")
            let current = pass
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<64 {
                    group.addTask {
                        let id = try await engine.enqueueDelivery(
                            NewDelivery(
                                idempotencyKey: "m\(current)-\(w)", channel: "web", accountID: "default",
                                recipient: "u\(current)-\(w)", conversationID: "c\(w)", text: "hello")
                        ).deliveryID
                        _ = id
                    }
                }
                try await group.waitForAll()
            }
            for _ in 0..<64 {
                guard
                    case .claimed(let claim) = try await engine.claimDelivery(
                        channel: "web", accountID: "default", leaseToken: grant.token)
                else { break }
                _ = try await engine.attemptDelivery(
                    claim.delivery.deliveryID, token: claim.token, leaseToken: grant.token)
                _ = try await engine.deliverySent(claim.delivery.deliveryID, token: claim.token, providerMessageID: "p")
                _ = try await engine.renewLease("web/default", token: grant.token)
            }
            let start = RawLMDBBaseline.monotonicNanoseconds()
            if try snapshots.take(of: engine.log, minimumGap: every, logger: logger) != nil {
                snapshotSeconds.append(Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9)
            }
        }
        let events = try engine.log.lastSeq()
        let taken = snapshots.list()
        try report([
            "scenario": "snapshot-take", "value": round(snapshotSeconds.max() ?? 0, 3), "unit": "s (slowest)",
            "snapshots": taken.count, "events": events, "largest_bytes": taken.map(\.bytes).max() ?? 0,
            "largest_entries": taken.map(\.entries).max() ?? 0,
            "mean_s": round(snapshotSeconds.reduce(0, +) / Double(max(1, snapshotSeconds.count)), 3),
        ])
        // The worst case for a snapshot interval: just before the newest snapshot, a whole interval after the one
        // before it.
        let beforeNewest = (taken.last?.seq ?? events) - 1
        for (label, seq) in [("mid", events / 2), ("before-newest-snapshot", beforeNewest), ("end", events)] {
            for useSnapshots in [true, false] {
                let start = RawLMDBBaseline.monotonicNanoseconds()
                let (reader, base) = try await Rebuild.state(
                    of: engine.log, upTo: seq, snapshots: useSnapshots ? snapshots : nil,
                    scratchDirectory: scratch + "/state-\(label)-\(useSnapshots)", logger: logger)
                let jobs = try reader.jobs().count
                await reader.log.close()
                let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
                try report([
                    "scenario": useSnapshots ? "replay-state-at" : "replay-state-at-from-seq-1",
                    "value": round(seconds, 3), "unit": "s", "at_seq": seq, "events": events, "jobs": jobs,
                    "rebuilt_from_seq": (base?.seq ?? 0) + 1, "target_note": "a few seconds",
                ])
            }
        }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let findings = try DuplicateAudit.run(engine.log)
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        await engine.close()
        try report([
            "scenario": "replay-audit-duplicates", "value": round(seconds, 3), "unit": "s", "events": events,
            "findings": findings.findings.count, "target_value": 10,
        ])
        // What the first process of a build with a newer projection format runs when it opens this log.
        var configuration = EventLogConfiguration(
            directory: directory, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.projector = NextFormat()
        let upgradeStart = RawLMDBBaseline.monotonicNanoseconds()
        let upgraded = try EventLog(configuration, logger: logger)
        let upgradeSeconds = Double(RawLMDBBaseline.monotonicNanoseconds() - upgradeStart) / 1e9
        await upgraded.close()
        try report([
            "scenario": "projection-upgrade-in-place", "value": round(Double(events) / upgradeSeconds),
            "unit": "events/s",
            "seconds": round(upgradeSeconds, 2), "events": events,
        ])
    }
}

/// The Switchboard projector under the next format version: opening a log with it runs the in-place rebuild.
struct NextFormat: Projector {
    let inner = SwitchboardProjector()
    var tables: [String] { inner.tables }
    var format: ProjectionFormat {
        ProjectionFormat(name: SwitchboardProjector.format.name, version: SwitchboardProjector.format.version + 1)
    }
    func decode(_ record: Record) throws -> SwitchboardEvent? { try inner.decode(record) }
    func apply<Tables: TableWriting>(_ event: SwitchboardEvent, _ meta: RecordMeta, to tables: Tables) throws {
        try inner.apply(event, meta, to: tables)
    }
}
