// swift-tools-version: 6.2
import PackageDescription

/// Swift 6.2's default for new code: a nonisolated async function (or closure)
/// runs on its caller's executor instead of hopping to the generic one. The
/// loops' awaits depend on it: they must stay on the loop's thread, whether
/// the caller is a task with the loop as its executor preference or an actor
/// whose executor is the loop, and must not pay an executor switch per call.
let approachableConcurrency: [SwiftSetting] = [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]

let package = Package(
    name: "swift-libev",
    products: [
        .library(name: "EV", targets: ["EV"]),
        .library(name: "EventCore", targets: ["EventCore"]),
        .library(name: "Epoll", targets: ["Epoll"]),
        .library(name: "Resolver", targets: ["Resolver"]),
        .library(name: "TLS", targets: ["TLS"]),
        // A loop for tests whose clock moves only when told.
        .library(name: "EventLoopTesting", targets: ["EventLoopTesting"]),
        // Opt in: the loops in the Swift server ecosystem (ServiceLifecycle,
        // swift-log, swift-metrics), behind the trait of the same name. An
        // app that does not enable it resolves, fetches and builds none of
        // those packages (SwiftPM prunes a dependency only a disabled trait
        // uses); one that does writes
        // `.package(url: ..., from: ..., traits: ["EventLoopServices"])`.
        .library(name: "EventLoopServices", targets: ["EventLoopServices"]),
    ],
    traits: [
        .trait(name: "EventLoopServices",
               description: "The EventLoopServices product: loop groups as ServiceLifecycle services, loop metrics for swift-metrics, logs for swift-log."),
        // None by default: the loops' one dependency stays swift-system.
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // EventLoopServices, and the server's /metrics (swift-prometheus).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // `make docs`: the DocC catalogs of EV, EventCore and Epoll. A plugin only:
        // no target depends on it, so a package that depends on this one does not resolve it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // libev from the system (Debian's libev-dev); the shim turns its macros into functions.
        .systemLibrary(
            name: "CLibev",
            path: "CLibev",
            providers: [.apt(["libev-dev"])]
        ),
        // Node.js's HTTP parser from the system (Debian's libhttp-parser-dev); the
        // shim reads the parser's bit fields.
        .systemLibrary(
            name: "CHTTPParser",
            path: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),
        // libcurl from the system (Debian's libcurl4-openssl-dev), for the test that
        // drives its multi-socket API with the package's watchers; the shim types
        // curl's variadic setopt and getinfo calls.
        .systemLibrary(
            name: "CCurl",
            path: "CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // hiredis from the system (Debian's libhiredis-dev), the C client of Redis,
        // for the crawler's shared frontier; its own libev adapter comes along.
        .systemLibrary(
            name: "CHiredis",
            path: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // c-ares from the system (Debian's libc-ares-dev), the asynchronous DNS
        // resolver libev programs pair with libev; the shim sets its options.
        .systemLibrary(
            name: "CAres",
            path: "CAres",
            providers: [.apt(["libc-ares-dev"])]
        ),
        // zlib from the system (Debian's zlib1g-dev): the crawler's gzip and deflate.
        .systemLibrary(
            name: "CZlib",
            path: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // OpenSSL from the system (Debian's libssl-dev); the shim turns its macros
        // into functions and holds its ALPN and session callbacks.
        .systemLibrary(
            name: "CSSL",
            path: "CSSL",
            providers: [.apt(["libssl-dev"])]
        ),
        // Linux system calls Swift's Glibc module leaves out (epoll, eventfd, accept4, ...).
        .target(name: "CLinux"),
        // What both loops share: errno errors, sockets, addresses, async sockets.
        .target(
            name: "EventCore",
            dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: approachableConcurrency
        ),
        // libev from Swift: the loop and every watcher as closures.
        .target(
            name: "EV",
            dependencies: ["CLibev", "CLinux", "EventCore"],
            swiftSettings: approachableConcurrency
        ),

        // The hand-written epoll loop: the tutorial's selector and event loop, no libev.
        .target(
            name: "Epoll",
            dependencies: ["CLinux", "EventCore"],
            swiftSettings: approachableConcurrency
        ),

        // Host names without blocking the loop: c-ares on either loop's watches and timers.
        .target(
            name: "Resolver",
            dependencies: ["CAres", "EventCore"],
            swiftSettings: approachableConcurrency
        ),

        // TLS on the loop: OpenSSL over the package's non-blocking sockets.
        .target(
            name: "TLS",
            dependencies: ["CSSL", "EventCore", "Resolver"],
            swiftSettings: approachableConcurrency
        ),

        // A loop for tests: the same callback and async code on a clock that
        // moves only when the test says (SwiftNIO's EmbeddedEventLoop).
        .target(
            name: "EventLoopTesting",
            dependencies: ["CLinux", "EventCore"],
            swiftSettings: approachableConcurrency
        ),

        // The loops in the Swift server ecosystem: a loop group as a
        // ServiceLifecycle service, the loops' monitors reported to swift-metrics,
        // slow callbacks logged to a swift-log Logger.
        .target(
            name: "EventLoopServices",
            dependencies: ["EventCore",
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle",
                                    condition: .when(traits: ["EventLoopServices"])),
                           .product(name: "UnixSignals", package: "swift-service-lifecycle",
                                    condition: .when(traits: ["EventLoopServices"])),
                           .product(name: "Logging", package: "swift-log", condition: .when(traits: ["EventLoopServices"])),
                           .product(name: "Metrics", package: "swift-metrics", condition: .when(traits: ["EventLoopServices"]))],
            swiftSettings: approachableConcurrency
        ),

        // Examples.
        .executableTarget(
            name: "ev-tour",
            dependencies: ["EV", "EventCore"],
            path: "Examples/Tour",
            swiftSettings: approachableConcurrency
        ),

        // The engines the examples share: one list, one order, one spelling.
        .target(
            name: "Engines",
            path: "Examples/Engines",
            swiftSettings: approachableConcurrency
        ),
        // The tutorial's slow poetry: the built-in poems and the server on every engine.
        .target(
            name: "SlowPoetry",
            dependencies: ["Engines", "EV", "Epoll", "EventCore", "EventLoopServices"],
            path: "Examples/SlowPoetry",
            swiftSettings: approachableConcurrency
        ),
        // HTTP without I/O: http_parser with the checks it leaves out, the server's
        // connection (bytes in, bytes out) and its site. Also built by the fuzzer.
        .target(
            name: "HTTP",
            dependencies: ["CHTTPParser", "CZlib"],
            path: "Examples/HTTP",
            swiftSettings: approachableConcurrency
        ),
        // Redis on any of the package's loops: its own socket, hiredis's reply reader.
        .target(
            name: "Redis",
            dependencies: ["CHiredis", "EventCore", "Resolver", "TLS"],
            path: "Examples/Redis",
            exclude: ["scripts"],
            swiftSettings: approachableConcurrency
        ),
        // The HTTP server and the web crawler on every engine.
        .target(
            name: "Web",
            dependencies: ["Engines", "HTTP", "Redis", "Resolver", "TLS", "EV", "Epoll", "EventCore", "EventLoopServices",
                           .product(name: "Metrics", package: "swift-metrics")],
            path: "Examples/Web",
            swiftSettings: approachableConcurrency
        ),
        // crawler: the poetry client in every way of the tutorial, and the web crawler.
        .executableTarget(
            name: "crawler",
            dependencies: ["Engines", "SlowPoetry", "Web", "HTTP", "Resolver", "EV", "Epoll", "EventCore",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Crawler",
            exclude: ["README.md", "scripts"],
            swiftSettings: approachableConcurrency
        ),
        // server: the slow poetry server and the HTTP server, on every engine.
        .executableTarget(
            name: "server",
            dependencies: ["Engines", "SlowPoetry", "Web", "HTTP", "TLS", "EV", "Epoll", "EventCore", "EventLoopServices",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Examples/Server",
            exclude: ["README.md", "scripts"],
            swiftSettings: approachableConcurrency
        ),

        // evcat: a netcat on the package alone (TCP, UDP, Unix sockets, --exec).
        .executableTarget(
            name: "evcat",
            dependencies: ["Engines", "EV", "Epoll", "EventCore", "Resolver", "TLS",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Netcat",
            exclude: ["README.md", "scripts"],
            swiftSettings: approachableConcurrency
        ),

        // Test support: descriptors, real processes.
        .target(
            name: "TestSupport",
            dependencies: ["CLinux", "EventCore"],
            path: "Tests/TestSupport",
            swiftSettings: approachableConcurrency
        ),
        // A single-threaded helper process for fork and child-process tests.
        .executableTarget(
            name: "EVTestHelper",
            dependencies: ["EV", "Epoll", "EventCore", "TestSupport"],
            path: "Tests/EVTestHelper",
            swiftSettings: approachableConcurrency
        ),
        // The testing loop, and the examples' timer-driven logic on it (the
        // poetry servers' pacing, the HTTP server's timeouts): no real waiting.
        .testTarget(
            name: "EventLoopTestingTests",
            dependencies: ["EventLoopTesting", "EventCore", "SlowPoetry", "Web", "HTTP"],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "EventCoreTests",
            dependencies: ["EventCore", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "LoopScenarioTests",
            dependencies: ["EV", "Epoll", "EventCore", "Resolver", "TLS", "TestSupport", "EVTestHelper", "EventLoopServices",
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "MetricsTestKit", package: "swift-metrics")],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "EpollTests",
            dependencies: ["Epoll", "EventCore", "TestSupport"],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Engines", "SlowPoetry", "HTTP", "EV", "EventCore", "TestSupport", "CCurl", "crawler", "server", "evcat"],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "RedisTests",
            dependencies: ["Redis", "CHiredis", "EV", "Epoll", "EventCore", "Resolver", "TestSupport"],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "HTTPTests",
            dependencies: ["HTTP", "TestSupport"],
            swiftSettings: approachableConcurrency
        ),
        .testTarget(
            name: "EVTests",
            dependencies: ["EV", "TestSupport", "EVTestHelper"],
            swiftSettings: approachableConcurrency
        ),
    ],
    swiftLanguageModes: [.v6]
)
