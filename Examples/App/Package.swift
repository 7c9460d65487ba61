// swift-tools-version: 6.2
// An app that links swift-libev as any app would: by package, EV and
// EventCore products only. Built and run by the package's `make test`.
import PackageDescription

let package = Package(
    name: "EchoApp",
    dependencies: [
        // An app elsewhere writes:
        // .package(url: "https://github.com/<owner>/swift-libev", from: "<version>")
        .package(name: "swift-libev", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "echo-app",
            dependencies: [
                .product(name: "EV", package: "swift-libev"),
                .product(name: "EventCore", package: "swift-libev"),
            ],
            path: "Sources/EchoApp"
        ),
    ],
    swiftLanguageModes: [.v6]
)
