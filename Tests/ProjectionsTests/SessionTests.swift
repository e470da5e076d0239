import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

@Suite("Session store")
struct SessionTests {
    static let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
    static let secret = Data("noise-key-SECRET-abc123".utf8)

    @Test(arguments: [SessionBackend.log, .local])
    func theLeaseHolderWritesABatchAndReadsItBack(backend: SessionBackend) async throws {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"), sessionKey: Self.key)
        let store = try SessionStore(backend: backend, engine: engine, directory: dir.sub("sessions"))
        let grant = try #require(try await engine.acquireLease("whatsapp/default").grant)
        let result = try await store.write(
            ["creds": Self.secret, "app-state-sync-key-1": Data([1, 2, 3])], namespace: "whatsapp/default",
            leaseToken: grant.token)
        #expect(result == .accepted)
        #expect(
            try store.entries("whatsapp/default") == ["creds": Self.secret, "app-state-sync-key-1": Data([1, 2, 3])])
        #expect(try store.listing("whatsapp/default").map(\.key) == ["app-state-sync-key-1", "creds"])
        // Removing is part of a batch too.
        #expect(
            try await store.write(["app-state-sync-key-1": nil], namespace: "whatsapp/default", leaseToken: grant.token)
                == .accepted)
        #expect(try store.entries("whatsapp/default").keys.sorted() == ["creds"])
        // Encrypted at rest: the secret's bytes appear nowhere in the log or the session files.
        for file in try FileManager.default.subpathsOfDirectory(atPath: dir.path) {
            let path = dir.sub(file)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(bytes.range(of: Self.secret) == nil, "plaintext secret found in \(file)")
        }
        await engine.close()
    }

    @Test(arguments: [SessionBackend.log, .local])
    func onlyTheCurrentLeaseHolderMayWrite(backend: SessionBackend) async throws {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"))
        let store = try SessionStore(backend: backend, engine: engine, directory: dir.sub("sessions"))
        let holder = Owner(workerID: "wa-1", instance: "A")
        let sameIDOtherProcess = Owner(workerID: "wa-1", instance: "B")
        let grant = try #require(try await engine.acquireLease("whatsapp/default", as: holder).grant)
        #expect(
            try await store.write(
                ["creds": Data([1])], namespace: "whatsapp/default", leaseToken: grant.token, as: holder) == .accepted)
        // Same WORKER_ID, another process: refused, nothing written.
        let refused = try await store.write(
            ["creds": Data([9])], namespace: "whatsapp/default", leaseToken: grant.token, as: sameIDOtherProcess)
        #expect(refused == .rejected(reason: .notOwner))
        // A token from an earlier tenure: refused.
        _ = try await engine.releaseLease("whatsapp/default", token: grant.token, as: holder)
        let next = try #require(try await engine.acquireLease("whatsapp/default", as: holder).grant)
        #expect(next.token > grant.token)
        let stale = try await store.write(
            ["creds": Data([8])], namespace: "whatsapp/default", leaseToken: grant.token, as: holder)
        #expect(stale == .rejected(reason: .staleLease))
        #expect(try store.value("creds", namespace: "whatsapp/default") == Data([1]))
        await engine.close()
    }

    @Test func aBatchIsOneAtomicCommitInTheLog() async throws {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"))
        let store = try SessionStore(backend: .log, engine: engine)
        let grant = try #require(try await engine.acquireLease("telegram/default").grant)
        let changes: SessionChanges = Dictionary(
            uniqueKeysWithValues: (0..<20).map { ("key-\($0)", Data([UInt8($0)])) })
        _ = try await store.write(changes, namespace: "telegram/default", leaseToken: grant.token)
        let sets = try engine.log.records(from: 1).filter { $0.type == "session.entry.set" }
        #expect(sets.count == 20)
        #expect(Set(sets.map(\.timestamp)).count == 1, "one write transaction")
        #expect(sets.map(\.seq) == Array(sets[0].seq...sets[0].seq + 19))
        await engine.close()
    }

    @Test func aWrongKeyIsAClearErrorNotGarbage() async throws {
        let dir = TemporaryDirectory()
        var engine = try openEngine(dir.sub("log"), sessionKey: Self.key)
        let grant = try #require(try await engine.acquireLease("whatsapp/default").grant)
        _ = try await SessionStore(backend: .log, engine: engine).write(
            ["creds": Self.secret], namespace: "whatsapp/default", leaseToken: grant.token)
        await engine.close()
        let other = Data(repeating: 7, count: 32).base64EncodedString()
        engine = try openEngine(dir.sub("log"), sessionKey: other)
        #expect(throws: ProjectionError(.crypto, "")) {
            try SessionStore(backend: .log, engine: engine).value("creds", namespace: "whatsapp/default")
        }
        await engine.close()
    }

    @Test(arguments: ["short", "bm90IDMyIGJ5dGVz", ""])
    func aMalformedKeyIsRefusedAtStart(key: String) throws {
        #expect(throws: ProjectionError(.invalidArgument, "")) { try SessionSealer(keyBase64: key) }
    }
}
