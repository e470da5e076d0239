import Foundation

/// An `AsyncSequence` of committed records from a seq on, waiting for new commits at the end.
///
/// A slow consumer never blocks writers: each batch is read in a short read transaction. Iteration ends
/// (returns `nil`) when the task is cancelled or the log is closed.
public struct LogTail: AsyncSequence, Sendable {
    public typealias Element = Record
    let log: EventLog
    let start: UInt64
    /// Records read per read transaction.
    public var batchSize = 256

    public func makeAsyncIterator() -> Iterator { Iterator(log: log, next: start, batchSize: batchSize) }

    /// The iterator of a ``LogTail``.
    public struct Iterator: AsyncIteratorProtocol {
        let log: EventLog
        /// The seq of the next record to deliver.
        public private(set) var next: UInt64
        let batchSize: Int
        private var buffer: [Record] = []
        private var index = 0

        init(log: EventLog, next: UInt64, batchSize: Int) {
            self.log = log
            self.next = next
            self.batchSize = batchSize
        }

        public mutating func next() async throws -> Record? {
            while true {
                if index < buffer.count {
                    let record = buffer[index]
                    index += 1
                    return record
                }
                if Task.isCancelled { return nil }
                let generation = log.notifier.generation
                do {
                    buffer = try log.records(from: next, limit: batchSize)
                } catch let error as EventLogError where error.code == .closed {
                    return nil
                } catch  where log.isTransient(error) {
                    // The backend is away for now (a database restart): read again from the same seq shortly.
                    try? await Task.sleep(for: log.configuration.pollInterval * 5)
                    continue
                }
                index = 0
                if let last = buffer.last {
                    next = last.seq + 1
                    continue
                }
                await log.notifier.wait(afterGeneration: generation)
            }
        }
    }
}
