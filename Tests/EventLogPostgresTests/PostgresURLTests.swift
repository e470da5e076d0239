import EventLogPostgres
import Foundation
import PostgresNIO
import Testing

@Suite struct PostgresURLTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let text: String
        let endpoint: PostgresURL.Endpoint
        var user = "postgres"
        var password: String?
        var database: String?
        var tlsMode = PostgresURL.TLSMode.prefer
        var applicationName: String?
        var connectTimeout: Duration?
        var rootCertificates: String?
        var testDescription: String { text }
    }

    static let valid: [Valid] = [
        Valid(
            text: "postgres://u:p@db.example.com:6543/app?sslmode=require",
            endpoint: .tcp(host: "db.example.com", port: 6543),
            user: "u", password: "p", database: "app", tlsMode: .require),
        Valid(
            text: "postgresql://u@localhost/app", endpoint: .tcp(host: "localhost", port: 5432), user: "u",
            database: "app"),
        Valid(
            text: "POSTGRES://al%40ice:p%40ss%2Fw%3Ard%3F%23@h/my%20db", endpoint: .tcp(host: "h", port: 5432),
            user: "al@ice", password: "p@ss/w:rd?#", database: "my db"),
        Valid(text: "postgres://h", endpoint: .tcp(host: "h", port: 5432)),
        Valid(text: "postgres://h:5433/", endpoint: .tcp(host: "h", port: 5433)),
        Valid(
            text: "postgres://u:@h/app", endpoint: .tcp(host: "h", port: 5432), user: "u", password: "", database: "app"
        ),
        Valid(
            text: "postgres://u@/app?host=/var/run/postgresql",
            endpoint: .unixSocket(directory: "/var/run/postgresql", port: 5432), user: "u", database: "app"),
        Valid(
            text: "postgres://u@%2Ftmp%2Fsock:5433/app", endpoint: .unixSocket(directory: "/tmp/sock", port: 5433),
            user: "u", database: "app"),
        Valid(
            text: "postgres://u@[::1]:5433/app?sslmode=disable", endpoint: .tcp(host: "::1", port: 5433), user: "u",
            database: "app", tlsMode: .disable),
        Valid(
            text: "postgres://a:b@h:1/d?user=x&password=y%26z&port=7000&dbname=other&host=h2&application_name=core%201"
                + "&connect_timeout=5",
            endpoint: .tcp(host: "h2", port: 7000), user: "x", password: "y&z", database: "other",
            applicationName: "core 1", connectTimeout: .seconds(5)),
        Valid(
            text: "postgres://h/app?sslmode=verify-full&sslrootcert=/etc/ca.pem", endpoint: .tcp(host: "h", port: 5432),
            database: "app", tlsMode: .verifyFull, rootCertificates: "/etc/ca.pem"),
        Valid(
            text: "postgres://h/app?sslmode=verify-ca", endpoint: .tcp(host: "h", port: 5432), database: "app",
            tlsMode: .verifyCA),
    ]

    @Test(arguments: valid)
    func parses(_ expected: Valid) throws {
        let url = try PostgresURL(expected.text)
        #expect(url.endpoint == expected.endpoint)
        #expect(url.user == expected.user)
        #expect(url.password == expected.password)
        #expect(url.database == expected.database)
        #expect(url.tlsMode == expected.tlsMode)
        #expect(url.applicationName == expected.applicationName)
        #expect(url.connectTimeout == expected.connectTimeout)
        #expect(url.tlsRootCertificates == expected.rootCertificates)
        // The redacted form parses back to the same URL, the password aside.
        var reparsed = try PostgresURL(url.redacted)
        if url.password != nil { #expect(reparsed.password == "***") }
        reparsed.password = url.password
        #expect(reparsed == url)
    }

    static let invalid: [(text: String, reason: String)] = [
        ("mysql://u:s3cret@h/db", "scheme"),
        ("u:s3cret@h/db", "postgres://"),
        ("postgres://u:s3cret@h:notaport/db", "port"),
        ("postgres://u:s3cret@h:0/db", "port"),
        ("postgres://u:s3cret@h:70000/db", "port"),
        // An unencoded '/' in the password ends the authority: the error must not quote the password's pieces.
        ("postgres://u:s3cr/et@h/db", "port"),
        ("postgres://u:s3cret@/db", "no host"),
        ("postgres://u:s3cret@h1,h2/db", "several hosts"),
        ("postgres://u:s3cret@h/db?sslmode=maybe", "sslmode"),
        ("postgres://u:s3cret@h/db?sslmde=require", "unknown parameter 'sslmde'"),
        ("postgres://u:s3cret@h/db#fragment", "'#'"),
        ("postgres://u:s3%ZZcret@h/db", "password has a malformed percent-encoding"),
        ("postgres://u:s3cret@h/db?connect_timeout=soon", "connect_timeout"),
        ("postgres://u:s3cret@[::1/db", "IPv6"),
        ("postgres://u:s3cret@[::1]x/db", "IPv6"),
    ]

    @Test(arguments: invalid)
    func refuses(_ text: String, reason: String) {
        let error = #expect(throws: EventLogPostgresError.self) { try PostgresURL(text) }
        #expect(error?.code == .invalidURL)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        for secret in ["s3cret", "s3cr", "et@h", "s3%ZZ"] {
            #expect(error?.message.contains(secret) == false)
        }
    }

    @Test func neverShowsThePassword() throws {
        let url = try PostgresURL("postgres://app:s3cret@db:5432/main?application_name=core")
        var dumped = ""
        dump(url, to: &dumped)
        for text in [url.description, url.redacted, String(reflecting: url), "\(url)", dumped] {
            #expect(!text.contains("s3cret"), "\(text)")
        }
        #expect(url.redacted == "postgres://app:***@db:5432/main?sslmode=prefer&application_name=core")
    }

    @Test func readsDatabaseURLFromTheEnvironment() throws {
        let url = try PostgresURL(environment: ["DATABASE_URL": "postgres://u@h/db"])
        #expect(url.endpoint == .tcp(host: "h", port: 5432))
        for environment in [[:], ["DATABASE_URL": ""]] {
            let error = #expect(throws: EventLogPostgresError.self) { try PostgresURL(environment: environment) }
            #expect(error?.code == .invalidURL)
            #expect(error?.message.contains("DATABASE_URL is not set") == true)
        }
    }

    @Test(arguments: [
        (PostgresURL.TLSMode.disable, false, false), (.prefer, true, false), (.require, true, true),
        (.verifyCA, true, true), (.verifyFull, true, true),
    ])
    func makesATCPConfiguration(mode: PostgresURL.TLSMode, allowed: Bool, enforced: Bool) throws {
        let url = try PostgresURL(
            "postgres://u:p@db:6000/app?sslmode=\(mode.rawValue)&application_name=core&connect_timeout=3")
        let configuration = try url.makeConfiguration()
        #expect(configuration.host == "db")
        #expect(configuration.port == 6000)
        #expect(configuration.unixSocketPath == nil)
        #expect(configuration.username == "u")
        #expect(configuration.password == "p")
        #expect(configuration.database == "app")
        #expect(configuration.tls.isAllowed == allowed)
        #expect(configuration.tls.isEnforced == enforced)
        #expect(configuration.options.connectTimeout == .seconds(3))
        #expect(
            configuration.options.additionalStartupParameters.map { "\($0.0)=\($0.1)" } == ["application_name=core"])
    }

    @Test func makesAUnixSocketConfigurationWithoutTLS() throws {
        let url = try PostgresURL("postgres://u@/app?host=/run/pg/&port=5444&sslmode=require")
        let configuration = try url.makeConfiguration()
        #expect(configuration.unixSocketPath == "/run/pg/.s.PGSQL.5444")
        #expect(configuration.host == nil)
        #expect(configuration.password == nil)
        #expect(!configuration.tls.isAllowed)
        #expect(configuration.options.additionalStartupParameters.isEmpty)
    }

    @Test func anUnreadableRootCertificateIsATLSError() throws {
        let url = try PostgresURL("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        let error = #expect(throws: EventLogPostgresError.self) { try url.makeConfiguration() }
        #expect(error?.code == .tls)
    }
}
