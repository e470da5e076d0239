import Foundation

// Sending through the linked device: the outbound loop's sender calls these.
extension LinkedDevice {

    /// Sends `text` to `jid` through the sidecar, quoting `quoted`: `uncertain` when the sidecar does not answer
    /// within the send timeout or goes away meanwhile (the message may have reached WhatsApp).
    func send(deliveryID: String, jid: String, text: String, quoted: String?) async -> SendOutcome {
        let timeout = settings.sendTimeout
        return await withTaskGroup(of: SendOutcome?.self) { group in
            group.addTask { await self.submit(deliveryID: deliveryID, jid: jid, text: text, quoted: quoted) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.resolve(deliveryID, .uncertain(reason: "timeout"), sentID: nil) }
                return nil
            }
            var outcome: SendOutcome = .uncertain(reason: "timeout")
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                }
            }
            return outcome
        }
    }

    func submit(deliveryID: String, jid: String, text: String, quoted: String?) async -> SendOutcome {
        await withCheckedContinuation { continuation in
            let process = state.withLock { state -> SidecarProcess? in
                guard state.connected, let process = state.process, state.pending[deliveryID] == nil else { return nil }
                state.pending[deliveryID] = continuation
                return process
            }
            guard let process else {
                continuation.resume(
                    returning: .failed(
                        SendFailure(
                            permanent: false, code: "not_connected", message: "the linked device is not connected")))
                return
            }
            process.send(.send(id: deliveryID, jid: jid, text: text, quoted: quoted))
        }
    }

    /// Marks `answering` read (blue ticks: the assistant has seen it) and shows typing to `jid` (best effort).
    func typing(jid: String, answering: String?) -> Bool {
        guard let process = state.withLock({ $0.connected ? $0.process : nil }) else { return false }
        if let answering { process.send(.read(jid: jid, ids: [answering])) }
        process.send(.presence(jid: jid, state: "composing"))
        return true
    }

    func resolve(_ id: String, _ outcome: SendOutcome, sentID: String?) {
        let continuation = state.withLock { state -> CheckedContinuation<SendOutcome, Never>? in
            if let sentID {
                state.sentIDs.append(sentID)
                if state.sentIDs.count > 512 { state.sentIDs.removeFirst(state.sentIDs.count - 512) }
            }
            return state.pending.removeValue(forKey: id)
        }
        continuation?.resume(returning: outcome)
    }

    func failPending(uncertain: Bool, reason: String) {
        let pending = state.withLock { state in
            defer { state.pending = [:] }
            return state.pending
        }
        for (_, continuation) in pending {
            continuation.resume(
                returning: uncertain
                    ? .uncertain(reason: reason) : .failed(SendFailure(permanent: false, code: reason, message: reason))
            )
        }
    }
}
