// swift-tools-version: 6.1
// The package's benchmarks, kept out of the main package so that it carries
// no benchmark dependency. Run them with `make bench` from the top level.
import PackageDescription

let package = Package(
    name: "swift-libev-benchmarks",
    dependencies: [
        .package(name: "swift-libev", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // package-benchmark: statistics, malloc and syscall counts, baselines
        // (`make bench-micro`). Its default traits would also pull in a runtime
        // interposer that is not needed here; malloc counting is.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The peers in C: raw libev and raw epoll, doing the same work.
        .target(
            name: "CBenchmarks",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("ev")]
        ),
        // The micro workloads (timers, readiness, async round trips, cross-thread
        // wake-ups), each the same work as a C function of CBenchmarks: run by
        // ev-bench (bench.py's tables) and by the package-benchmark suite Micro.
        .target(
            name: "MicroWorkloads",
            dependencies: [
                "CBenchmarks",
                .product(name: "EV", package: "swift-libev"),
                .product(name: "EventCore", package: "swift-libev"),
                .product(name: "Epoll", package: "swift-libev"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        .executableTarget(
            name: "Micro",
            dependencies: [
                "CBenchmarks",
                "MicroWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Micro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ev-bench",
            dependencies: [
                "CBenchmarks",
                "MicroWorkloads",
                .product(name: "EV", package: "swift-libev"),
                .product(name: "EventCore", package: "swift-libev"),
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
