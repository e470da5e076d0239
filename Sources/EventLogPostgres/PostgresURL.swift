import Foundation
import PostgresNIO

/// A PostgreSQL connection URL, as in `DATABASE_URL`: the subset of libpq's URI form the event log needs.
///
/// ```
/// postgres://user:password@host:5432/database?sslmode=require&application_name=core
/// postgresql://user@/database?host=/var/run/postgresql          (a Unix socket directory)
/// ```
/// - The scheme is `postgres` or `postgresql`. One host only (`h1,h2` is refused).
/// - The user name, password, host and database are percent-decoded: write `@` as `%40`, `/` as `%2F`, `:` as
///   `%3A`, `?` as `%3F` and `#` as `%23` in them.
/// - Query parameters: `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`), `host` (a name, or
///   a directory when it starts with `/`), `port`, `user`, `password`, `dbname`, `application_name`,
///   `connect_timeout` (whole seconds) and `sslrootcert` (a PEM file of trusted roots). Another parameter is an
///   error, so a typo is not silently ignored. A parameter overrides the same field of the authority.
/// - Defaults: port 5432, user `postgres`, database the user's name (the server's rule), `sslmode=prefer` over
///   TCP. A Unix socket never uses TLS.
/// - As in libpq, `prefer` and `require` encrypt without checking the server's certificate; `verify-ca` checks
///   the chain and `verify-full` also the host name.
///
/// ``description``, ``redacted`` and `dump` never show the password.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable {
        /// A host name or IP address and a TCP port.
        case tcp(host: String, port: Int)
        /// A directory holding the server's socket file `.s.PGSQL.<port>`.
        case unixSocket(directory: String, port: Int)

        /// The socket file's path, for a Unix socket.
        public var socketPath: String? {
            guard case .unixSocket(let directory, let port) = self else { return nil }
            return (directory.hasSuffix("/") ? directory : directory + "/") + ".s.PGSQL.\(port)"
        }

        /// The port (TCP) or the number in the socket file's name.
        public var port: Int {
            switch self {
            case .tcp(_, let port), .unixSocket(_, let port): port
            }
        }
    }

    /// libpq's `sslmode` values this client supports.
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Never TLS.
        case disable
        /// TLS if the server offers it, without checking its certificate; plain otherwise.
        case prefer
        /// TLS or no connection, without checking the server's certificate.
        case require
        /// TLS, the certificate chain checked against the trusted roots.
        case verifyCA = "verify-ca"
        /// TLS, the chain and the host name checked.
        case verifyFull = "verify-full"
    }

    /// The environment variable read by ``init(environment:key:)``.
    public static let environmentKey = "DATABASE_URL"
    /// The port when the URL names none.
    public static let defaultPort = 5432
    /// The user when the URL names none.
    public static let defaultUser = "postgres"

    /// Where the server listens.
    public var endpoint: Endpoint
    /// The role to log in as.
    public var user: String
    /// The password, if any (`""` is an empty password, `nil` none).
    public var password: String?
    /// The database; `nil` lets the server pick the one named like the user.
    public var database: String?
    /// TLS over TCP (ignored on a Unix socket).
    public var tlsMode: TLSMode
    /// A PEM file of trusted root certificates for `verify-ca` and `verify-full`; the system's roots when `nil`.
    public var tlsRootCertificates: String?
    /// Sent as the session's `application_name` (what `pg_stat_activity` shows).
    public var applicationName: String?
    /// How long a connection attempt may take; postgres-nio's default (10 s) when `nil`.
    public var connectTimeout: Duration?

    /// Parses a URL.
    ///
    /// - Throws: ``EventLogPostgresError`` with code ``EventLogPostgresError/Code/invalidURL``; its message names
    ///   the part that is wrong and never quotes the user name or the password.
    public init(_ text: String) throws {
        guard let schemeEnd = text.range(of: "://") else { throw Self.invalid("it does not start with postgres://") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw Self.invalid("the scheme must be postgres:// or postgresql://")
        }
        let rest = text[schemeEnd.upperBound...]
        guard !rest.contains("#") else { throw Self.invalid("a '#' must be percent-encoded (%23)") }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = rest[authorityEnd...]
        var query = Substring("")
        if let mark = path.firstIndex(of: "?") {
            query = path[path.index(after: mark)...]
            path = path[..<mark]
        }

        var user: String?
        var password: String?
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], "the user name")
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], "the password")
            } else {
                user = try Self.decode(userInfo, "the user name")
            }
        }
        var (host, port) = try Self.splitHostPort(hostPort)
        var database = path.isEmpty ? nil : try Self.decode(path.dropFirst(), "the database name")

        var tlsMode: TLSMode?
        var fields = Fields()
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(parts[0], "a parameter name")
            let value = try Self.decode(parts.count > 1 ? parts[1] : "", "the value of \(key)")
            switch key {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    let modes = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw Self.invalid("sslmode '\(value)' is not one of \(modes)")
                }
                tlsMode = mode
            case "host": host = value
            case "port": port = try Self.port(value)
            case "user": user = value
            case "password": password = value
            case "dbname": database = value
            case "application_name": fields.applicationName = value
            case "sslrootcert": fields.rootCertificates = value
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0 else {
                    throw Self.invalid("connect_timeout must be a whole number of seconds above 0")
                }
                fields.connectTimeout = .seconds(seconds)
            default:
                throw Self.invalid(
                    "unknown parameter '\(key)' (supported: sslmode, host, port, user, password, dbname, "
                        + "application_name, connect_timeout, sslrootcert)")
            }
        }

        guard let host, !host.isEmpty else {
            throw Self.invalid(
                "no host: name one (postgres://user@host/db) or a socket directory (?host=/var/run/postgresql)")
        }
        guard !host.contains(",") else { throw Self.invalid("several hosts are not supported") }
        let resolvedPort = port ?? Self.defaultPort
        endpoint =
            host.hasPrefix("/")
            ? .unixSocket(directory: host, port: resolvedPort) : .tcp(host: host, port: resolvedPort)
        self.user = user.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultUser
        self.password = password
        self.database = database.flatMap { $0.isEmpty ? nil : $0 }
        self.tlsMode = tlsMode ?? .prefer
        tlsRootCertificates = fields.rootCertificates
        applicationName = fields.applicationName
        connectTimeout = fields.connectTimeout
    }

    /// Parses the URL in `environment[key]` (`DATABASE_URL`).
    ///
    /// - Throws: ``EventLogPostgresError/Code/invalidURL`` when it is missing, empty or malformed.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, key: String = environmentKey)
        throws
    {
        guard let text = environment[key], !text.isEmpty else {
            throw EventLogPostgresError(.invalidURL, "\(key) is not set (postgres://user:password@host:port/db)")
        }
        try self.init(text)
    }

    /// The URL with the password replaced by `***`: safe for logs and error messages. It parses back to the same
    /// URL except for the password.
    public var redacted: String {
        var text = Self.schemePrefix + Self.encode(user)
        if password != nil { text += ":***" }
        text += "@"
        var parameters: [String] = []
        switch endpoint {
        case .tcp(let host, let port):
            text += host.contains(":") ? "[\(host)]" : Self.encode(host)
            text += ":\(port)"
        case .unixSocket(let directory, let port):
            parameters += ["host=" + Self.encode(directory, keeping: "/"), "port=\(port)"]
        }
        text += "/" + Self.encode(database ?? "")
        if case .tcp = endpoint { parameters.append("sslmode=" + tlsMode.rawValue) }
        if let tlsRootCertificates {
            parameters.append("sslrootcert=" + Self.encode(tlsRootCertificates, keeping: "/"))
        }
        if let applicationName { parameters.append("application_name=" + Self.encode(applicationName)) }
        if let connectTimeout { parameters.append("connect_timeout=\(connectTimeout.components.seconds)") }
        return parameters.isEmpty ? text : text + "?" + parameters.joined(separator: "&")
    }

    /// ``redacted``.
    public var description: String { redacted }
    /// ``redacted``.
    public var debugDescription: String { redacted }
    /// Only ``redacted``: `dump` must not print the password.
    public var customMirror: Mirror { Mirror(self, children: ["url": redacted]) }

    /// The postgres-nio configuration: TCP with TLS per ``tlsMode``, or the Unix socket without; the
    /// `application_name` and connect timeout as startup options.
    ///
    /// - Throws: ``EventLogPostgresError/Code/tls`` when the TLS context cannot be made (an unreadable
    ///   `sslrootcert`).
    public func makeConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            configuration = .init(
                host: host, port: port, username: user, password: password, database: database, tls: try makeTLS())
        case .unixSocket:
            configuration = .init(
                unixSocketPath: endpoint.socketPath ?? "", username: user, password: password, database: database)
        }
        if let applicationName {
            configuration.options.additionalStartupParameters.append(("application_name", applicationName))
        }
        if let connectTimeout { configuration.options.connectTimeout = TimeAmount(connectTimeout) }
        return configuration
    }

    private func makeTLS() throws -> PostgresConnection.Configuration.TLS {
        var settings = TLSConfiguration.makeClientConfiguration()
        switch tlsMode {
        case .disable: return .disable
        case .prefer, .require: settings.certificateVerification = .none
        case .verifyCA: settings.certificateVerification = .noHostnameVerification
        case .verifyFull: settings.certificateVerification = .fullVerification
        }
        if let tlsRootCertificates { settings.trustRoots = .file(tlsRootCertificates) }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: settings)
        } catch {
            throw EventLogPostgresError(.tls, "cannot set up TLS (sslmode=\(tlsMode.rawValue)): \(error)", cause: error)
        }
        return tlsMode == .prefer ? .prefer(context) : .require(context)
    }

    // MARK: - Parsing

    private static let schemePrefix = "postgres://"

    /// The optional fields read from the query.
    private struct Fields {
        var applicationName: String?
        var rootCertificates: String?
        var connectTimeout: Duration?
    }

    private static func invalid(_ reason: String) -> EventLogPostgresError {
        EventLogPostgresError(.invalidURL, "invalid PostgreSQL URL: \(reason)")
    }

    /// Percent-decodes `text`; `what` names it in the error, whose message never quotes it.
    private static func decode(_ text: Substring, _ what: String) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw invalid("\(what) has a malformed percent-encoding")
        }
        return decoded
    }

    /// Splits `host:port`, `[v6]:port`, `host` or ``; the host percent-decoded (`%2Fvar%2Frun` is a directory).
    private static func splitHostPort(_ text: Substring) throws -> (host: String?, port: Int?) {
        if text.isEmpty { return (nil, nil) }
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { throw invalid("an IPv6 address lacks its ']'") }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { return (host, nil) }
            guard after.first == ":" else { throw invalid("unexpected text after the IPv6 address") }
            return (host, try port(String(after.dropFirst())))
        }
        guard let colon = text.lastIndex(of: ":") else { return (try decode(text, "the host"), nil) }
        let host = try decode(text[..<colon], "the host")
        return (host, try port(String(text[text.index(after: colon)...])))
    }

    private static func port(_ text: String) throws -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else {
            throw invalid(
                "the port is not a number from 1 to 65535 (percent-encode '@', ':', '/', '?' and '#' in the user "
                    + "name and password)")
        }
        return port
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters and `keeping`.
    private static func encode(_ text: String, keeping: String = "") -> String {
        var allowed = CharacterSet(charactersIn: "-._~" + keeping)
        allowed.formUnion(CharacterSet(charactersIn: "a"..."z"))
        allowed.formUnion(CharacterSet(charactersIn: "A"..."Z"))
        allowed.formUnion(CharacterSet(charactersIn: "0"..."9"))
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
