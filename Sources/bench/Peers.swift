import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

/// One round of one system in the `peers` scenario.
struct PeerRound {
    var cyclesPerSecond: Double
    var cycles: Int
    var seconds: Double
    /// Extra per-round measurements (CPU of the server and of this process, the machine's busy and iowait
    /// shares, where the server's time went), reported as arrays over the rounds.
    var details: [String: Double] = [:]
}

/// Where a peer stands: not installed, usable, or failed (then it is not run again).
enum PeerState<Peer> {
    case skipped
    case ready(Peer)
    case failed(String)
}

extension Runner {
    /// `peers`: our job cycle beside the same cycle on Redis Streams (AOF, `appendfsync always`) and on a
    /// PostgreSQL `FOR UPDATE SKIP LOCKED` queue (`fsync=on`, `synchronous_commit=on`), both started here from the
    /// installed packages, `peerRounds` rounds interleaved, each round on fresh state.
    func peers() async throws {
        signal(SIGPIPE, SIG_IGN)
        let workers = jobWorkers
        let cycles = peerCycles
        var redis: PeerState<RedisPeer> = .skipped
        if let executable = findExecutable("redis-server") {
            do { redis = .ready(try RedisPeer(executable: executable)) } catch { redis = .failed("\(error)") }
        } else {
            note(
                "peers: redis-server not found on PATH; Redis Streams skipped: not installed (apt-get install redis-server)"
            )
        }
        var postgres: PeerState<PostgresPeer> = .skipped
        if let bin = PostgresPeer.locate() {
            do {
                postgres = .ready(try PostgresPeer(bin: bin, directory: scratch + "/postgres", workers: workers))
            } catch {
                postgres = .failed("\(error)")
            }
        } else {
            note(
                "peers: initdb, pg_ctl, postgres, psql and pgbench not found together in /usr/lib/postgresql/*/bin or "
                    + "on PATH; PostgreSQL skipped: not installed (apt-get install postgresql)")
        }
        var ours: [PeerRound] = []
        var redisRounds: [PeerRound] = []
        var postgresRounds: [PeerRound] = []
        var oursPostgres: [PeerRound] = []
        var oursPostgresError: String?
        for index in 1...peerRounds {
            ours.append(try await oursRound(index, workers: workers, cycles: cycles))
            if case .ready(let peer) = redis {
                do {
                    redisRounds.append(
                        try await peer.round(
                            directory: scratch + "/redis-\(index)", workers: workers, cycles: cycles,
                            client: redisClient))
                } catch {
                    redis = .failed("round \(index): \(error)")
                }
            }
            if case .ready(let peer) = postgres {
                do {
                    postgresRounds.append(try peer.round(index, workers: workers, cycles: cycles))
                } catch {
                    postgres = .failed("round \(index): \(error)")
                }
            }
            if case .ready(let peer) = postgres, oursPostgresError == nil {
                do {
                    oursPostgres.append(
                        try await peer.switchboardRound(index, workers: workers, cycles: cycles, runner: self))
                } catch {
                    oursPostgresError = "round \(index): \(error)"
                }
            }
        }
        let oursMedian = median(ours.map(\.cyclesPerSecond))
        func ratio(_ rounds: [PeerRound]) -> Double? {
            rounds.count == ours.count ? round(oursMedian / max(median(rounds.map(\.cyclesPerSecond)), 0.001), 3) : nil
        }
        var oursLine = line(system: "switchboard", ours)
        oursLine["note"] = "the job-cycle scenario's cycle: enqueue, claim, complete, each its own durable command"
        if let value = ratio(redisRounds) { oursLine["ratio_vs_redis"] = value }
        if let value = ratio(postgresRounds) { oursLine["ratio_vs_postgres"] = value }
        try report(oursLine)
        try reportPeer("redis", redis, redisRounds, ours: ours) { peer in
            [
                "version": peer.version,
                "setup": "appendonly yes, appendfsync always, save \"\"; XADD, XREADGROUP COUNT 1, XACK per cycle, "
                    + "\(workers) connections",
                "client": redisClient == .events
                    ? "one thread, non-blocking sockets, poll(2)" : "a blocking connection per thread",
            ]
        }
        try reportPeer("postgres", postgres, postgresRounds, ours: ours) { peer in
            [
                "version": peer.version,
                "setup": "fsync=on, synchronous_commit=on; pgbench -M prepared, per cycle three autocommit "
                    + "statements: INSERT, UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1), "
                    + "UPDATE status = 'done'",
            ]
        }
        if case .ready(let peer) = postgres {
            try reportOursOnPostgres(
                peer, oursPostgres, error: oursPostgresError, lmdb: ours, skipLocked: postgresRounds)
        }
    }

    /// The `switchboard-postgres` line: our cycle on the PostgreSQL backend, on the server of the SKIP LOCKED
    /// queue, with its ratio to that queue and to our cycle on LMDB (higher is better for ours on PostgreSQL).
    private func reportOursOnPostgres(
        _ peer: PostgresPeer, _ rounds: [PeerRound], error: String?, lmdb: [PeerRound], skipLocked: [PeerRound]
    ) throws {
        var fields = line(system: "switchboard-postgres", rounds)
        fields["version"] = peer.version
        fields["setup"] =
            "our job cycle (enqueue, claim, complete: three durable commands, group-committed) on the PostgreSQL "
            + "backend, schema switchboard, on the SKIP LOCKED queue's server (fsync=on, synchronous_commit=on)"
        if let error {
            note("peers: switchboard-postgres failed: \(error)")
            fields["error"] = error
        }
        let value = median(rounds.map(\.cyclesPerSecond))
        func pair(_ other: [PeerRound], _ name: String) {
            guard other.count == rounds.count, !rounds.isEmpty else { return }
            fields["ratio_vs_\(name)"] = round(value / max(median(other.map(\.cyclesPerSecond)), 0.001), 3)
            fields["round_ratios_vs_\(name)"] = zip(rounds, other).map {
                round($0.cyclesPerSecond / max($1.cyclesPerSecond, 0.001), 3)
            }
        }
        pair(skipLocked, "postgres")
        pair(lmdb, "lmdb")
        fields["ratio_note"] = "switchboard-postgres ÷ postgres (the SKIP LOCKED queue) and ÷ switchboard (LMDB)"
        try report(fields)
    }

    private func reportPeer<Peer>(
        _ system: String, _ state: PeerState<Peer>, _ rounds: [PeerRound], ours: [PeerRound],
        _ describe: (Peer) -> [String: Any]
    ) throws {
        switch state {
        case .skipped:
            try report([
                "scenario": Scenario.peers.rawValue, "system": system, "skipped": "not installed",
                "install": system == "redis" ? "apt-get install redis-server" : "apt-get install postgresql",
            ])
        case .failed(let message):
            note("peers: \(system) failed: \(message)")
            var fields = line(system: system, rounds)
            fields["error"] = message
            try report(fields)
        case .ready(let peer):
            var fields = line(system: system, rounds).merging(describe(peer)) { $1 }
            let value = median(rounds.map(\.cyclesPerSecond))
            let oursMedian = median(ours.map(\.cyclesPerSecond))
            fields["ours_value"] = round(oursMedian)
            fields["ratio"] = round(oursMedian / max(value, 0.001), 3)
            fields["round_ratios"] = zip(ours, rounds).map {
                round($0.cyclesPerSecond / max($1.cyclesPerSecond, 0.001), 3)
            }
            fields["ratio_note"] = "ours ÷ \(system) (medians); round_ratios: each round's pair"
            try report(fields)
        }
    }

    private func line(system: String, _ rounds: [PeerRound]) -> [String: Any] {
        var fields: [String: Any] = [
            "scenario": Scenario.peers.rawValue, "system": system, "unit": "cycles/s",
            "value": round(median(rounds.map(\.cyclesPerSecond))), "rounds": rounds.map { round($0.cyclesPerSecond) },
            "workers": jobWorkers, "cycles_per_round": rounds.map(\.cycles),
            "seconds_per_round": rounds.map { round($0.seconds, 2) },
        ]
        for key in Set(rounds.flatMap(\.details.keys)) {
            fields[key] = rounds.map { round($0.details[key] ?? 0, 1) }
        }
        return fields
    }

    func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// The job-cycle scenario's cycle on a fresh log.
    private func oursRound(_ round: Int, workers: Int, cycles: Int) async throws -> PeerRound {
        let name = "ours-\(round)"
        defer { try? FileManager.default.removeItem(atPath: scratch + "/" + name) }
        let engine = try openEngine(name)
        let machine = MachineCPU()
        let cpuStart = processCPUSeconds()
        // Only the writer thread syncs: a sample with one of our threads in D is (almost always) its fdatasync.
        let sampler = StateSampler(interval: .milliseconds(5), together: true) {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
        }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let completed: Int
        do {
            completed = try await runJobCycles(engine, workers: workers, cycles: cycles, prefix: "p")
        } catch {
            _ = sampler.stop(prefix: "threads")
            throw error
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let states = sampler.stop(prefix: "threads")
        let cpu = processCPUSeconds() - cpuStart
        var details = machine.since(measured: cpu)
        details["any_thread_D_percent"] = states["threads_D_percent"]
        details["process_cpu_percent"] = cpu / seconds * 100
        details["cycles_per_commit"] = Double(completed) / Double(max(1, engine.log.commitCount))
        await engine.close()
        return PeerRound(
            cyclesPerSecond: Double(completed) / seconds, cycles: completed, seconds: seconds, details: details)
    }
}
