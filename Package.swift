// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-libev",
    products: [
        .library(name: "EV", targets: ["EV"]),
        .library(name: "EventCore", targets: ["EventCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // libev from the system (Debian's libev-dev); the shim turns its macros into functions.
        .systemLibrary(
            name: "CLibev",
            path: "CLibev",
            providers: [.apt(["libev-dev"])]
        ),
        // Linux system calls Swift's Glibc module leaves out (epoll, eventfd, accept4, ...).
        .target(name: "CLinux"),
        // What both loops share: errno errors, sockets, addresses, async sockets.
        .target(
            name: "EventCore",
            dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // libev from Swift: the loop and every watcher as closures.
        .target(
            name: "EV",
            dependencies: ["CLibev", "EventCore"]
        ),

        // Examples.
        .executableTarget(
            name: "ev-tour",
            dependencies: ["EV", "EventCore"],
            path: "Examples/Tour"
        ),

        // Test support: descriptors, real processes.
        .target(
            name: "TestSupport",
            dependencies: ["EventCore"],
            path: "Tests/TestSupport"
        ),
        // A single-threaded helper process for fork and child-process tests.
        .executableTarget(
            name: "EVTestHelper",
            dependencies: ["EV", "EventCore", "TestSupport"],
            path: "Tests/EVTestHelper"
        ),
        .testTarget(
            name: "EventCoreTests",
            dependencies: ["EventCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "EVTests",
            dependencies: ["EV", "TestSupport", "EVTestHelper"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
