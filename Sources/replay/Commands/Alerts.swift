import ArgumentParser
import EventLog
import SwitchboardEvents
import Foundation
import Projections

struct Alerts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The operational alert check over log events. Exit 0 healthy, 2 alert, 1 error.")
    @OptionGroup var options: LogOptions
    @OptionGroup var at: AtOption
    @Option(help: "Window for disconnect bursts (e.g. 10m).") var burstWindow = "10m"
    @Option(help: "How far back to look (e.g. 24h).") var lookback = "24h"
    @Option(help: "Disconnects within one burst window that raise an alert.") var threshold = 10

    func run() async throws {
        guard let window = parseDuration(burstWindow), let back = parseDuration(lookback) else {
            fail("--burst-window and --lookback take durations like 10m, 24h, 30s")
        }
        let log = try options.open()
        try await log.closeAfter {
            let now: LogTimestamp
            if let seq = try at.seq(in: log) {
                now = try clock(log, upTo: seq)
            } else {
                now = max(LogTimestamp.wallClock(), try clock(log, upTo: nil))
            }
            let lines = try AlertCheck.run(
                log, now: now, lookback: back, burstWindow: window, threshold: threshold, windowLabel: burstWindow)
            options.output(lines) { $0.map(\.description) }
            if lines.contains(where: \.alert) { throw ExitCode(2) }
        }
    }
}
