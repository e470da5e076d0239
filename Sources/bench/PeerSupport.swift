import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// User + system CPU time of this process's waited-for children, in seconds.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The first executable `name` on PATH.
func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

#if canImport(Glibc)
    let socketStream = Int32(SOCK_STREAM.rawValue)
#else
    let socketStream = SOCK_STREAM
#endif

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// The machine's CPU time from `/proc/stat`, from creation to `since(measured:)`.
struct MachineCPU {
    private let start: [Double]
    private let startNanoseconds = RawLMDBBaseline.monotonicNanoseconds()

    init() { start = MachineCPU.read() }

    /// `machine_busy_percent`, `machine_iowait_percent` and `machine_steal_percent` (of all cores: steal is time
    /// the hypervisor gave this VM's vCPUs to others), and `other_cpu_percent`: the CPU the rest of the machine
    /// (kernel threads, other processes) used meanwhile: busy time less `measured` CPU seconds, in percent of one
    /// core.
    func since(measured: Double) -> [String: Double] {
        let end = MachineCPU.read()
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - startNanoseconds) / 1e9
        guard start.count >= 8, end.count >= 8, seconds > 0 else { return [:] }
        let delta = zip(end, start).map { $0 - $1 }
        let total = max(delta.reduce(0, +), 1)
        let busy = total - delta[3] - delta[4] - delta[7]
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return [
            "machine_busy_percent": busy / total * 100, "machine_iowait_percent": delta[4] / total * 100,
            "machine_steal_percent": delta[7] / total * 100,
            "other_cpu_percent": max(0, busy / ticks - measured) / seconds * 100,
        ]
    }

    /// user nice system idle iowait irq softirq steal (guest time is inside user).
    private static func read() -> [Double] {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let first = text.split(separator: "\n").first
        else { return [] }
        return first.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
    }
}

/// Fields of `/proc/<pid>/stat` after the command name (index 0 is the state, 1 the parent pid).
func procStat(_ pid: Int32) -> [Substring]? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

/// CPU seconds of a process (all its threads); with `children`, plus those of its exited, waited-for children.
func processCPUSeconds(of pid: Int32, children: Bool = false) -> Double {
    guard let fields = procStat(pid), fields.count > 14 else { return 0 }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let indexes = children ? [11, 12, 13, 14] : [11, 12]
    return indexes.compactMap { Double(fields[$0]) }.reduce(0, +) / ticks
}

/// Samples the scheduler state (R running or runnable, S sleeping, D in uninterruptible disk wait…) of some
/// processes every `interval` on a thread of its own, until stopped. With `together`, each sample counts once for
/// the whole set: D if any of them is in D, else R if any runs, else S.
final class StateSampler: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(interval: Duration, together: Bool = false, pids: @escaping @Sendable () -> [Int32]) {
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                let states = pids().compactMap { procStat($0)?.first.map(String.init) }
                counts.withLock { counts in
                    if !together {
                        for state in states { counts[state, default: 0] += 1 }
                    } else if !states.isEmpty {
                        counts[states.contains("D") ? "D" : states.contains("R") ? "R" : "S", default: 0] += 1
                    }
                }
                Thread.sleep(
                    forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds)
                        / 1e18)
            }
            finished.signal()
        }
        thread.start()
    }

    /// Stops sampling; returns each state's share of the samples in percent, keyed `<prefix>_<state>_percent`.
    func stop(prefix: String) -> [String: Double] {
        running.store(false, ordering: .relaxed)
        finished.wait()
        let counts = counts.withLock { $0 }
        let total = Double(max(1, counts.values.reduce(0, +)))
        var shares: [String: Double] = [:]
        for state in ["R", "S", "D"] { shares["\(prefix)_\(state)_percent"] = Double(counts[state] ?? 0) / total * 100 }
        return shares
    }
}

/// Runs a tool to completion with its output in a file (a daemon it starts cannot hold a pipe open); throws with
/// the output's tail when it fails. `user` runs it as that user through `runuser` (we are root).
@discardableResult
func runTool(
    _ executable: String, _ arguments: [String], user: String? = nil, directory: String
) throws -> String {
    let process = try makeProcess(executable, arguments, user: user, directory: directory)
    let outputPath = directory + "/.tool-output-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    guard let output = FileHandle(forWritingAtPath: outputPath) else { throw BenchError("cannot write \(outputPath)") }
    process.standardOutput = output
    process.standardError = output
    try process.run()
    process.waitUntilExit()
    try? output.close()
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        let name = URL(fileURLWithPath: executable).lastPathComponent
        throw BenchError("\(name) exited \(process.terminationStatus): \(text.suffix(800))")
    }
    return text
}

/// A process of `executable` in `directory`, as `user` through `runuser` when given (we are root).
func makeProcess(_ executable: String, _ arguments: [String], user: String?, directory: String) throws -> Process {
    let process = Process()
    if let user {
        guard
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { throw BenchError("runuser not found: needed to run \(executable) as \(user)") }
        process.executableURL = URL(fileURLWithPath: runuser)
        process.arguments = ["-u", user, "--", executable] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    }
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.standardInput = FileHandle.nullDevice
    return process
}

/// SIGTERM, then up to `seconds` for the process to exit, then SIGKILL.
func stopProcess(_ process: Process, seconds: Double = 20) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}
