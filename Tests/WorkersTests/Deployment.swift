import EventLog
import EventLogPostgres
import Foundation
import TestSupport
import Testing

/// Where a test's spawned agents keep the log: one LMDB directory they all share (one host), or one PostgreSQL
/// schema with a directory of its own per process, sharing no disk (the split runtime of docs/deploy.md).
enum DeploymentKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case lmdb
    case postgres

    var testDescription: String { rawValue }
}

/// One test's log place; made by ``withDeployment(_:_:)``, which removes it afterwards.
struct Deployment: Sendable {
    let kind: DeploymentKind
    let root: String
    /// The database and schema (PostgreSQL only).
    let url: String?
    let schema: String?

    /// The `DATA_DIR` of process `name`: the shared directory on LMDB, its own on PostgreSQL.
    func data(for name: String) -> String {
        switch kind {
        case .lmdb: return root
        case .postgres:
            let directory = root + "/" + name
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return directory
        }
    }

    /// `environment` with the backend's settings added.
    func environment(_ environment: [String: String]) -> [String: String] {
        guard let url, let schema else { return environment }
        return environment.merging(
            ["EVENTLOG_BACKEND": "postgres", "DATABASE_URL": url, "EVENTLOG_SCHEMA": schema, "SNAPSHOT_EVERY": "0"]
        ) { $1 }
    }

    /// The engine's choice, for the test's own log.
    var backend: LogBackendChoice {
        guard let url, let schema, let parsed = try? PostgresURL(url) else { return .lmdb }
        return .postgres(parsed, schema: schema)
    }

    /// `replay`'s arguments that name the log.
    var replayArguments: [String] {
        guard let url, let schema else { return ["--data-dir", root] }
        return ["--database-url", url, "--schema", schema]
    }
}

/// Runs `body` with a fresh log place of `kind`, then removes it (the directory; the schema on PostgreSQL).
func withDeployment<R>(
    _ kind: DeploymentKind, _ body: (Deployment) async throws -> R
) async throws -> R {
    let directory = TemporaryDirectory()
    defer { withExtendedLifetime(directory) {} }
    switch kind {
    case .lmdb:
        return try await body(Deployment(kind: .lmdb, root: directory.path, url: nil, schema: nil))
    case .postgres:
        // Over TCP, as processes on other hosts would reach it.
        let cluster = try await PostgresCluster.shared()
        let schema = PostgresCluster.uniqueSchemaName()
        let result: Result<R, any Error>
        do {
            result = .success(
                try await body(
                    Deployment(kind: .postgres, root: directory.path, url: cluster.url(overTCP: true), schema: schema)))
        } catch {
            result = .failure(error)
        }
        await cluster.dropSchema(schema)
        return try result.get()
    }
}
