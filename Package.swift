// swift-tools-version:6.0
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "EventLogPostgres", targets: ["EventLogPostgres"]),
        .library(name: "SwitchboardEvents", targets: ["SwitchboardEvents"]),
        .library(name: "Projections", targets: ["Projections"]),
        .library(name: "Workers", targets: ["Workers"]),
        .library(name: "Assistant", targets: ["Assistant"]),
        .executable(name: "agent", targets: ["agent"]),
        .executable(name: "replay", targets: ["replay"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
    ],
    targets: [
        // LMDB from Debian's liblmdb-dev (ships lmdb.pc). Only EventLog imports it.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // CRC32C (Castagnoli) with SSE4.2 hardware path and a portable fallback.
        .target(name: "CRC32C"),
        .target(
            name: "EventLog",
            dependencies: [
                "CLMDB",
                "CRC32C",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The event log on PostgreSQL (issue 26): DATABASE_URL, a blocking connection with a watchdog, the schema.
        .target(
            name: "EventLogPostgres",
            dependencies: [
                "EventLog",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // A JSON value without `Any`, shared by the assistant (tools) and the inspection reports.
        .target(name: "SwitchboardJSON", swiftSettings: strictSettings),
        // QR code encoder (ISO/IEC 18004), terminal and SVG rendering: the WhatsApp linking code.
        .target(name: "QRCode", swiftSettings: strictSettings),
        // Switchboard's event vocabulary: the event structs, their payload codec and the one enum of all events.
        .target(
            name: "SwitchboardEvents",
            dependencies: ["EventLog"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Projections",
            dependencies: [
                "EventLog",
                "SwitchboardEvents",
                "SwitchboardJSON",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Workers",
            dependencies: [
                "EventLog",
                "EventLogPostgres",
                "SwitchboardJSON",
                "Projections",
                "Assistant",
                "SwitchboardEvents",
                "QRCode",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The sidecar's own tests and notes are not part of the agent.
            exclude: ["Channels/WhatsAppWeb/Sidecar/test", "Channels/WhatsAppWeb/Sidecar/README.md"],
            // The web chat's script and style sheet, compiled into the binary as byte arrays (`PackageResources`):
            // no bundle to ship beside it, no CDN. See docs/web.md.
            resources: [
                .embedInCode("Web/Assets/markdown.js"), .embedInCode("Web/Assets/highlight.js"),
                .embedInCode("Web/Assets/tree.js"),
                .embedInCode("Web/Assets/thread.js"), .embedInCode("Web/Assets/controls.js"),
                .embedInCode("Web/Assets/chat.js"), .embedInCode("Web/Assets/chat.css"),
                .embedInCode("Web/Assets/icon.svg"),
                // The WhatsApp linked device's Node sidecar, written to DATA_DIR on first use.
                .embedInCode("Channels/WhatsAppWeb/Sidecar/package.json"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/index.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/sidecar.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/auth-store.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/commands.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/connection.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/lines.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/logging.mjs"),
                .embedInCode("Channels/WhatsAppWeb/Sidecar/messages.mjs"),
            ],
            swiftSettings: strictSettings
        ),
        // The assistant's model providers (OpenAI-compatible streaming) and tools; knows no event or projection.
        .target(
            name: "Assistant",
            dependencies: [
                "SwitchboardJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "agent",
            dependencies: [
                "EventLog",
                "SwitchboardEvents",
                "Projections",
                "Workers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "replay",
            dependencies: [
                "Projections",
                "SwitchboardEvents",
                "EventLog",
                "EventLogPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "bench",
            dependencies: [
                "EventLog",
                "EventLogPostgres",
                "TestSupport",
                "SwitchboardEvents",
                "Projections",
                "Workers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Spawned by the tests as a separate process (multi-process append, crash, tail, bad input).
        .executableTarget(
            name: "switchboard-test-helper",
            dependencies: [
                "EventLog", "EventLogPostgres", "SwitchboardEvents", "Projections", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Test support: temporary directories, spawned executables, raw hostile HTTP clients, the fake WhatsApp
        // sidecar (also used by bench).
        .target(name: "TestSupport", swiftSettings: strictSettings),
        .testTarget(
            name: "QRCodeTests", dependencies: ["QRCode"], exclude: ["Fixtures/generate.py"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "EventLogTests",
            dependencies: [
                "EventLog", "TestSupport", "switchboard-test-helper", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The PostgreSQL backend against a throwaway cluster (TestSupport's `PostgresCluster`).
        .testTarget(
            name: "EventLogPostgresTests",
            dependencies: [
                "EventLogPostgres", "EventLog", "TestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The event vocabulary's payload codec, alone.
        .testTarget(
            name: "SwitchboardEventsTests",
            dependencies: ["SwitchboardEvents", "EventLog"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ProjectionsTests",
            dependencies: [
                "Projections", "SwitchboardEvents", "EventLog", "EventLogPostgres", "TestSupport",
                "switchboard-test-helper",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WorkersTests",
            dependencies: [
                "Workers", "SwitchboardEvents", "SwitchboardJSON", "EventLog", "EventLogPostgres", "Projections",
                "Assistant", "TestSupport",
                "agent",
                "replay",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AssistantTests",
            dependencies: [
                "Assistant",
                "SwitchboardJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
