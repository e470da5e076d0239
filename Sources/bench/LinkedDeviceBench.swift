import ArgumentParser
import EventLog
import Foundation
import Projections
import SwitchboardEvents
import TestSupport

/// `bench sidecar-bridge --connect HOST:PORT`: the linked-device scenario's stand-in sidecar (see
/// ``SidecarBridge``): the agents run it as their sidecar, and it relays to this bench's fake sidecar server.
struct SidecarBridgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sidecar-bridge", abstract: "Internal: the linked-device scenario's stand-in sidecar.")

    @Option(help: "The fake sidecar server, HOST:PORT.") var connect: String

    func run() { SidecarBridge.run(connect: connect) }
}

extension Runner {
    /// The WhatsApp linked device (`WHATSAPP_TRANSPORT=web`) between agent processes, each sidecar a bridge to this
    /// process: how long after its tenure ends a holder's sidecar is gone, and the handoffs G and H.
    func linkedDevice() async throws {
        let rounds = 10
        let ttlMilliseconds = 1_000
        let data = scratch + "/linked"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let server = try FakeSidecarServer()
        defer { server.stop() }
        let bench = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let environment = [
            "AGENT_ROLE": "whatsapp", "WHATSAPP_TRANSPORT": "web", "AGENT_TEST_SHORT_LEASES": "1",
            "WHATSAPP_LEASE_TTL_MS": "\(ttlMilliseconds)", "WHATSAPP_HEARTBEAT_MS": "200",
            "WHATSAPP_SIDECAR_COMMAND": server.command(executable: bench),
        ]
        let engine = try Switchboard(
            EventLogConfiguration(directory: data, writer: WriterIdentity(role: "bench", workerID: "observer")),
            logger: logger)
        defer { closeBlocking(engine) }
        let log = engine.log
        let agents = HandoffAgents(runner: self, log: log, data: data, environment: environment, prefix: "ld")
        /// The next sidecar, started and connected.
        func connected() async throws -> FakeSidecar {
            let sidecar = try await server.next()
            while try await !sidecar.commandLine().contains(#""type":"start""#) {}
            sidecar.emit(line: #"{"jid":"4915100000000:1@s.whatsapp.net","name":"Bench","type":"connected"}"#)
            return sidecar
        }
        func micros(since start: UInt64) -> UInt64 { (RawLMDBBaseline.monotonicNanoseconds() - start) / 1000 }

        var holder = try agents.start()
        var sidecar = try await connected()
        var stopToClosed: [UInt64] = []  // SIGTERM -> the holder's sidecar gone
        var closedToNext: [UInt64] = []  // gone -> the next holder's sidecar started (G)
        var killToClosed: [UInt64] = []  // SIGKILL -> gone (its stdin closed)
        var killToNext: [UInt64] = []  // SIGKILL -> the next holder's sidecar started (H: the TTL)
        var stuckToClosed: [UInt64] = []  // the holder cannot write (the log's writer lock held) -> its sidecar gone
        for round in 0..<(3 * rounds) {
            let from = try log.lastSeq() + 1
            let standby = try agents.start()
            try await agents.contending(standby.name, from: from)
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            switch round / rounds {
            case 0:
                kill(holder.child.pid, SIGTERM)
                try await sidecar.closed()
                stopToClosed.append(micros(since: t0))
                let t1 = RawLMDBBaseline.monotonicNanoseconds()
                let next = try await connected()
                closedToNext.append(micros(since: t1))
                holder.child.process.waitUntilExit()
                sidecar = next
            case 1:
                kill(holder.child.pid, SIGKILL)
                try await sidecar.closed()
                killToClosed.append(micros(since: t0))
                sidecar = try await connected()
                killToNext.append(micros(since: t0))
                holder.child.process.waitUntilExit()
            default:
                // The holder is alive but its renewals cannot be written: its tenure ends at its local deadline.
                async let blocked = engine.log.transact { _ in usleep(UInt32(2 * ttlMilliseconds * 1000)) }
                try await sidecar.closed(within: 5)
                stuckToClosed.append(micros(since: t0))
                _ = try await blocked
                sidecar = try await connected()
                holder.child.signal(SIGKILL)
            }
            holder = standby
        }
        holder.child.signal(SIGTERM)
        let heartbeat = 200.0
        try report([
            "scenario": Scenario.linkedDevice.rawValue, "case": "tenure-end-to-socket-closed", "rounds": rounds,
            "value": round(percentile(stuckToClosed, 0.99)), "unit": "ms (p99, writer blocked -> sidecar gone)",
            "p50_ms": round(percentile(stuckToClosed, 0.5)), "ttl_ms": ttlMilliseconds,
            "note": "the holder's renewals cannot commit: its sidecar must be gone before the TTL runs out",
            "target": "< TTL",
        ])
        try report([
            "scenario": Scenario.linkedDevice.rawValue, "case": "graceful", "rounds": rounds,
            "value": round(percentile(stopToClosed, 0.99)), "unit": "ms (p99, SIGTERM -> sidecar gone)",
            "p50_ms": round(percentile(stopToClosed, 0.5)),
            "closed_to_next_sidecar_p50_ms": round(percentile(closedToNext, 0.5)),
            "closed_to_next_sidecar_p99_ms": round(percentile(closedToNext, 0.99)),
            "heartbeat_ms": heartbeat, "target": "well under the heartbeat",
        ])
        try report([
            "scenario": Scenario.linkedDevice.rawValue, "case": "crash", "rounds": rounds,
            "value": round(percentile(killToClosed, 0.99)), "unit": "ms (p99, SIGKILL -> sidecar gone)",
            "p50_ms": round(percentile(killToClosed, 0.5)),
            "sigkill_to_next_sidecar_p50_ms": round(percentile(killToNext, 0.5)),
            "sigkill_to_next_sidecar_p99_ms": round(percentile(killToNext, 0.99)), "ttl_ms": ttlMilliseconds,
            "target": "next sidecar within TTL + 100 ms",
        ])
    }
}
