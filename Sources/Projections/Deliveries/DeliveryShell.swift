import EventLog
import SwitchboardEvents

/// The delivery deciders' shell: loads their state through ``WriteContext/tables`` inside the write transaction,
/// calls the pure decider with the transaction's log time and next seq, and appends its events.
public enum DeliveryShell {
    typealias T = ProjectionTables

    static func load(_ id: String, _ tables: some TableReading) throws -> DeliveryState? {
        try tables.load(DeliveryState.self, T.deliveries, Key(id))
    }

    static func loadLease(_ resource: String, _ tables: some TableReading) throws -> LeaseState? {
        try tables.load(LeaseState.self, T.leases, Key(resource))
    }

    /// Enqueues an outbound message unless its idempotency key was seen before.
    public static func enqueue(
        _ delivery: NewDelivery, settings: DeliverySettings, _ context: inout WriteContext
    ) throws -> DeliveryEnqueue {
        let tables = context.tables
        let existing =
            delivery.idempotencyKey.isEmpty
            ? nil
            : try tables.get(tables.table(T.deliveryKeys), Key(delivery.idempotencyKey).bytes).map {
                String(decoding: $0, as: UTF8.self)
            }
        return try context.commit(DeliveryDecider.enqueue(delivery, existingDeliveryID: existing, settings: settings))
    }

    /// Settles the account's expired claims (when `owner` holds its lease live under `leaseToken`), then claims
    /// its next deliverable message against the queues as the settlements left them, in one transaction (see
    /// ``DeliveryDecider/reclaimExpired(channel:accountID:settings:queue:now:)`` and
    /// ``DeliveryDecider/claim(channel:accountID:owner:leaseToken:lease:settings:queue:now:nextSeq:)``).
    public static func claim(
        channel: String, accountID: String, owner: Owner, leaseToken: UInt64, settings: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> DeliveryClaimResult {
        let batch = try claim(
            channel: channel, accountID: accountID, owner: owner, leaseToken: leaseToken, settings: settings,
            limit: 1, &context)
        return batch.claims.first.map { .claimed($0) } ?? batch.stop ?? .empty(retryAt: nil)
    }

    /// Settles the expired claims as ``claim(channel:accountID:owner:leaseToken:settings:_:)`` does, then takes up
    /// to `limit` claims in the same transaction, each decided against what the ones before it left (their
    /// recipients are in flight, the account's window counts them): what a sender with free slots takes at once.
    /// Stops at the first result that is not a claim, returned as ``DeliveryClaims/stop``.
    public static func claim(
        channel: String, accountID: String, owner: Owner, leaseToken: UInt64, settings: DeliverySettings, limit: Int,
        _ context: inout WriteContext
    ) throws -> DeliveryClaims {
        // Claims change no lease: it is read once.
        let lease = try loadLease("\(channel)/\(accountID)", context.tables)
        if DeliveryDecider.leaseRefusal(lease, owner: owner, leaseToken: leaseToken, now: context.now) == nil {
            _ = try context.commit(
                DeliveryDecider.reclaimExpired(
                    channel: channel, accountID: accountID, settings: settings,
                    queue: TableDeliveryQueue(tables: context.tables), now: context.now))
        }
        var batch = DeliveryClaims(claims: [], stop: nil)
        for _ in 0..<max(1, limit) {
            let result = try context.commit(
                DeliveryDecider.claim(
                    channel: channel, accountID: accountID, owner: owner, leaseToken: leaseToken, lease: lease,
                    settings: settings, queue: TableDeliveryQueue(tables: context.tables), now: context.now,
                    nextSeq: context.nextSeq))
            guard case .claimed(let claim) = result else {
                batch.stop = result
                break
            }
            batch.claims.append(claim)
        }
        return batch
    }

    /// ``DeliveryDecider/settleEarlierTenures(channel:accountID:leaseToken:settings:queue:now:)`` for the channel account whose
    /// lease is `resource` (`<channel>/<account>`), now that `leaseToken` is its tenure; other resources hold no
    /// deliveries.
    @discardableResult
    public static func settleEarlierTenures(
        resource: String, leaseToken: UInt64, settings: DeliverySettings, _ context: inout WriteContext
    ) throws -> Int {
        guard let slash = resource.firstIndex(of: "/") else { return 0 }
        let channel = String(resource[..<slash])
        let accountID = String(resource[resource.index(after: slash)...])
        return try context.commit(
            DeliveryDecider.settleEarlierTenures(
                channel: channel, accountID: accountID, leaseToken: leaseToken, settings: settings,
                queue: TableDeliveryQueue(tables: context.tables), now: context.now))
    }

    public static func attempt(
        _ deliveryID: String, token: UInt64, leaseToken: UInt64, owner: Owner, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        let tables = context.tables
        let delivery = try load(deliveryID, tables)
        let lease = try delivery.flatMap { try loadLease($0.leaseResource, tables) }
        return try context.commit(
            DeliveryDecider.attempt(
                delivery, deliveryID: deliveryID, token: token, leaseToken: leaseToken, owner: owner, lease: lease,
                now: context.now))
    }

    public static func sent(
        _ deliveryID: String, token: UInt64, providerMessageID: String?, owner: Owner, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        let delivery = try load(deliveryID, context.tables)
        return try context.commit(
            DeliveryDecider.sent(
                delivery, deliveryID: deliveryID, token: token, providerMessageID: providerMessageID, owner: owner))
    }

    public static func failed(
        _ deliveryID: String, token: UInt64, owner: Owner, permanent: Bool, retryAfter: LogTimestamp?,
        errorCode: String?, message: String, settings: DeliverySettings, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        let delivery = try load(deliveryID, context.tables)
        return try context.commit(
            DeliveryDecider.failed(
                delivery, deliveryID: deliveryID, token: token, owner: owner, permanent: permanent,
                retryAfter: retryAfter, errorCode: errorCode, message: message, settings: settings, now: context.now))
    }

    public static func uncertain(
        _ deliveryID: String, token: UInt64, owner: Owner, reason: String, settings: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        let delivery = try load(deliveryID, context.tables)
        return try context.commit(
            DeliveryDecider.uncertain(
                delivery, deliveryID: deliveryID, token: token, owner: owner, reason: reason, settings: settings,
                now: context.now))
    }
}

/// ``DeliveryQueueView`` over the projection's indexes in the write transaction.
struct TableDeliveryQueue<Tables: TableReading>: DeliveryQueueView {
    typealias T = ProjectionTables
    let tables: Tables

    /// The delivery under `id`, the UTF-8 bytes of its id (a one-part ``Key``).
    private func delivery(_ id: [UInt8]) throws -> DeliveryState? {
        try tables.get(tables.table(T.deliveries), id).map { try StateCoding.decode(DeliveryState.self, $0) }
    }

    func forEachReady(channel: String, accountID: String, _ body: (DeliveryState) throws -> Bool) throws {
        let prefix = SwitchboardProjector.accountKey(channel, accountID).prefix
        try tables.scan(tables.table(T.deliveryReady), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            guard let delivery = try delivery(value) else { return true }
            return try body(delivery)
        }
    }

    func forEachExpiredClaim(
        channel: String, accountID: String, before now: LogTimestamp, _ body: (DeliveryState) throws -> Bool
    ) throws {
        let prefix = SwitchboardProjector.accountKey(channel, accountID).prefix
        let nowKey = orderKey(now)
        try tables.scan(tables.table(T.deliveryInflight), from: prefix) { key, value in
            guard hasPrefix(key, prefix), key.count >= prefix.count + 8 else { return false }
            let until = UInt64(
                bigEndian: key[prefix.count..<prefix.count + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            if until >= nowKey { return false }
            guard let delivery = try delivery(value) else { return true }
            return try body(delivery)
        }
    }

    func accountSendTimes(channel: String, accountID: String) throws -> [Int64] {
        try tables.load([Int64].self, T.accountRate, SwitchboardProjector.accountKey(channel, accountID)) ?? []
    }

    func recipientSendTimes(channel: String, accountID: String, recipient: String) throws -> [Int64] {
        let key = SwitchboardProjector.accountKey(channel, accountID).appending(recipient)
        return try tables.load([Int64].self, T.recipientRate, key) ?? []
    }
}
