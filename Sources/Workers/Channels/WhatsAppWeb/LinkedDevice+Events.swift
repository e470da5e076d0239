import Foundation
import Logging
import Projections
import QRCode
import SwitchboardJSON

// The linked device's events from its sidecar: what each one does.
extension LinkedDevice {
    /// Handles one event; returns how the tenure's sidecar ends, or `nil` to go on.
    func handle(_ event: SidecarEvent, _ process: SidecarProcess, _ tenure: Tenure, closes: inout Int) async
        -> End?
    {
        switch event {
        case .ready(let version):
            logger.info("[whatsapp] Sidecar ready (baileys \(version ?? "unknown"))", metadata: metadata)
            if let phone = state.withLock({ $0.pairPhone }) { process.send(.pair(phone: phone)) }
        case .qr(let qr, let expires):
            state.withLock { $0.qr = qr }
            await showQR(qr, expiresIn: .milliseconds(expires ?? 20_000), tenure)
        case .pairingCode(let code):
            state.withLock { $0.pairingCode = code }
            logger.notice(
                "[whatsapp] Pairing code: \(code) — on the phone: Linked devices → Link with phone number",
                metadata: metadata)
        case .connected(let jid, let name):
            closes = 0
            let waiters = state.withLock { state in
                state.connected = true
                state.jid = jid
                state.qr = nil
                state.pairingCode = nil
                defer { state.linkWaiters = [] }
                return state.linkWaiters
            }
            for waiter in waiters { waiter.resume(returning: jid) }
            let entries = session.entries()
            var changes: SessionChanges = [:]
            if entries[LinkedSessionLayout.linkedJID].map({ String(decoding: $0, as: UTF8.self) }) != jid {
                changes[LinkedSessionLayout.linkedJID] = Data(jid.utf8)
            }
            if entries[LinkedSessionLayout.linkQR] != nil { changes[LinkedSessionLayout.linkQR] = .some(nil) }
            if !changes.isEmpty { await session.write(changes, under: tenure) }
            await health.up(
                detail: "linked device \(WhatsAppWebInbound.user(of: jid))\(name.map { " (\($0))" } ?? "")",
                leaseToken: tenure.token)
        case .disconnected(let code, let name, let message):
            closes += 1
            failPending(uncertain: true, reason: "disconnected")
            state.withLock { $0.connected = false }
            let reason = LinkedDevicePolicy.reason(code: code, name: name)
            let action = LinkedDevicePolicy.afterClose(code: code, failures: closes, jitter: .random(in: 0..<1))
            var fields = metadata
            fields["whatsapp.disconnect_code"] = "\(code)"
            if let message { fields["whatsapp.disconnect_message"] = "\(message.prefix(200))" }
            switch action {
            case .reconnectNow:
                logger.info("[whatsapp] Socket closed (\(reason)): reconnecting now", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: true)
                process.send(.connect)
            case .reconnect(let wait):
                logger.warning("[whatsapp] Socket closed (\(reason)): reconnecting in \(wait)", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: true)
                // Waits without reading (the sidecar sends nothing until told to connect); the watch cancels it.
                try? await Task.sleep(for: wait)
                guard !Task.isCancelled, keeper.current()?.token == tenure.token, !stopping.isSet else {
                    return stopping.isSet ? .stopping : .tenureEnded
                }
                process.send(.connect)
            case .unlinked where state.withLock({ $0.loggingOut }):
                // The owner's own Unlink: expected, nothing to alert about.
                logger.notice("[whatsapp] Logged out: the device is unlinked", metadata: fields)
                await health.down(reason: "unlinked", code: code, willReconnect: false)
                return .paused
            case .unlinked:
                logger.error(
                    "[whatsapp] The device was unlinked (\(reason)): the session is cleared; link again with `agent whatsapp link` or on /settings",
                    metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .unlinked }
                await clearSession(under: tenure)
                process.send(.stop)
                return .paused
            case .replaced:
                logger.error(
                    "[whatsapp] Another client took this number (connection replaced): stopped, not reconnecting; press Link again on /settings, or restart",
                    metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .replaced }
                process.send(.stop)
                return .paused
            case .refused:
                logger.error("[whatsapp] WhatsApp refused the account (\(reason)): stopped", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .refused }
                process.send(.stop)
                return .paused
            }
        case .auth(let batch):
            // Durable before the socket goes on: the sidecar waits for this answer.
            if await session.write(LinkedSessionLayout.changes(batch), under: tenure) {
                process.send(.authCommitted(batch: batch.batch))
            } else {
                process.send(.authRefused(batch: batch.batch, reason: "not_committed"))
                logger.error("[whatsapp] An auth write was refused: the linked device stops", metadata: metadata)
                return keeper.current()?.token == tenure.token ? .exited : .tenureEnded
            }
        case .message(let message):
            let own = state.withLock { state in (jid: state.jid, sent: state.sentIDs.contains(message.id)) }
            guard let item = inbound.item(message, ownJID: own.jid, sentByThisDevice: own.sent) else { break }
            await ingest([item])
        case .receipt(let id, let chat, let status):
            guard let item = inbound.receipt(id: id, chat: chat, status: status) else { break }
            await ingest([item])
        case .sent(let id, let messageID):
            resolve(id, .sent(providerMessageID: messageID), sentID: messageID)
        case .sendFailed(let id, let uncertain, let reason):
            resolve(
                id,
                uncertain
                    ? .uncertain(reason: reason)
                    : .failed(SendFailure(permanent: false, code: "whatsapp_web", message: reason)),
                sentID: nil)
        case .stale(let since):
            logger.warning(
                "[whatsapp] Connected but nothing arrives (\(since / 1000) s since a send): reconnecting",
                metadata: metadata)
        case .unknown:
            break
        }
        return nil
    }

    func ingest(_ items: [IngressItem]) async {
        // The socket does not redeliver what it handed over: retry a failed write a few times.
        for attempt in 1...5 {
            do {
                try await ingress.ingest(items, channel: Channel.whatsapp.rawValue)
                return
            } catch {
                logger.error(
                    "whatsapp.ingest.failed",
                    metadata: metadata.merging(["error": "\(error)", "attempt": "\(attempt)"]) { $1 })
                try? await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }

    /// Shows the QR to scan: in the session first (for /settings in any process), then on the log and the terminal.
    func showQR(_ qr: String, expiresIn: Duration, _ tenure: Tenure) async {
        let expiresAt = Int(Date().timeIntervalSince1970) + Int(expiresIn.components.seconds)
        let value: JSONValue = .object(["qr": .string(qr), "expiresAt": .int(Int64(expiresAt))])
        await session.write([LinkedSessionLayout.linkQR: Data(value.jsonText.utf8)], under: tenure)
        logger.notice(
            "[whatsapp] Scan this QR code with WhatsApp on your phone: Settings → Linked devices → Link a device",
            metadata: metadata)
        // On the terminal, beside the log lines (stderr).
        if settings.printQR, let code = try? QRCode(qr) {
            FileHandle.standardError.write(Data(code.terminalText().utf8))
        }
    }
}
