// swift-tools-version: 6.2
// An app that runs swift-libev's loops the Swift server ecosystem's way:
// ServiceLifecycle starts and stops them, swift-log takes their messages,
// swift-metrics their numbers. It enables the package's EventLoopServices
// trait, which brings that product and its dependencies (Examples/App, which
// does not, resolves swift-system only). Built and run by `make test`.
import PackageDescription

let package = Package(
    name: "EchoServiceApp",
    dependencies: [
        // An app elsewhere writes:
        // .package(url: "https://github.com/<owner>/swift-libev", from: "<version>", traits: ["EventLoopServices"])
        .package(name: "swift-libev", path: "../..", traits: ["EventLoopServices"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
    ],
    targets: [
        .executableTarget(
            name: "echo-service",
            dependencies: [
                .product(name: "EV", package: "swift-libev"),
                .product(name: "EventCore", package: "swift-libev"),
                .product(name: "EventLoopServices", package: "swift-libev"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                // The self-test reads the loops' numbers back through swift-metrics' own test backend.
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            path: "Sources/EchoService"
        ),
    ],
    swiftLanguageModes: [.v6]
)
