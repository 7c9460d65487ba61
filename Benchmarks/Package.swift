// swift-tools-version: 6.1
// The package's benchmarks, kept out of the main package so that it carries
// no benchmark dependency. Run them with `make bench` from the top level.
import PackageDescription

let package = Package(
    name: "swift-libev-benchmarks",
    dependencies: [
        .package(name: "swift-libev", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The peers in C: raw libev and raw epoll, doing the same work.
        .target(
            name: "CBenchmarks",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("ev")]
        ),
        .executableTarget(
            name: "ev-bench",
            dependencies: [
                "CBenchmarks",
                .product(name: "EV", package: "swift-libev"),
                .product(name: "EventCore", package: "swift-libev"),
                .product(name: "Epoll", package: "swift-libev"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // Swift 6.2's "approachable concurrency": nonisolated async functions
            // run on their caller's executor instead of hopping at every call.
            swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        // The HTTP peers: C libev and C epoll with http_parser, and SwiftNIO's NIOHTTP1.
        .target(
            name: "CHTTPPeer",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("http_parser")]
        ),
        .executableTarget(
            name: "c-libev-http",
            dependencies: ["CHTTPPeer"],
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("ev")]
        ),
        .executableTarget(
            name: "c-epoll-http",
            dependencies: ["CHTTPPeer"],
            cSettings: [.unsafeFlags(["-O2"])]
        ),
        .executableTarget(
            name: "nio-http",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
