import Engines
import EventCore
import Foundation
import Glibc
import TestSupport

/// The package's example programs, as built next to the test binary.
enum Program {
    static var crawler: String { builtProductsDirectory() + "/crawler" }
    static var server: String { builtProductsDirectory() + "/server" }
}

/// A `server poetry` process, started and asked for its port.
final class PoetryServerProcess {
    let process: SpawnedProcess
    let port: UInt16

    /// Starts `server poetry`; with `descriptorLimit`, under `prlimit --nofile=N:N`.
    /// A SIGTERM lets the poems in flight end for `stopTimeout` seconds (the
    /// server's default is 10): ``stop()`` waits for it.
    ///
    /// `detectLeaks: false` turns LeakSanitizer off in the server of an
    /// AddressSanitizer run (`make test-asan`); its memory errors are still
    /// checked. For a test that is not about leaks and whose server trips
    /// LeakSanitizer's known false positive on Swift (a weak reference's
    /// side table, which the object's refcount word points to through a
    /// bit-packed pointer LeakSanitizer cannot read: llvm/llvm-project#56751,
    /// swiftlang/swift-corelibs-xctest#342).
    init(engine: String, delay: Double, numBytes: Int, poem: String = "the-loop-that-waits",
         descriptorLimit: Int? = nil, stopTimeout: Double = 1, detectLeaks: Bool = true) throws {
        let arguments = ["poetry", "--engine", engine, "--delay", "\(delay)", "--num-bytes", "\(numBytes)", "--poem", poem,
                         "--stop-timeout", "\(stopTimeout)"]
        var environment: [String: String] = [:]
        if !detectLeaks {
            let options = ProcessInfo.processInfo.environment["ASAN_OPTIONS"].map { $0 + ":" } ?? ""
            environment["ASAN_OPTIONS"] = options + "detect_leaks=0"
        }
        if let descriptorLimit {
            process = try SpawnedProcess("/usr/bin/prlimit", ["--nofile=\(descriptorLimit):\(descriptorLimit)", Program.server] + arguments,
                                         environment: environment)
        } else {
            process = try SpawnedProcess(Program.server, arguments, environment: environment)
        }
        let banner = process.waitForOutput(containing: "Serving")
        guard let range = banner.range(of: #"port (\d+)"#, options: .regularExpression),
              let port = UInt16(banner[range].dropFirst(5)) else {
            process.send(SIGKILL)
            throw EventLoopError.system("server banner: \(banner)", .ioError)
        }
        self.port = port
    }

    /// Stops the server (SIGTERM: gracefully, within its stop timeout) and returns how it ended.
    @discardableResult
    func stop() throws -> ProcessOutput {
        process.send(SIGTERM)
        return try process.wait(timeout: 30)
    }
}

/// `Examples/Server/scripts/slow_clients.py`: N concurrent Python clients, checked byte for byte.
let slowClientsScript = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Examples/Server/scripts/slow_clients.py").path

/// What `slow_clients.py` prints.
struct SlowClientsReport: Decodable {
    var clients: Int
    var intact: Int
    var failed: [String: Int]
    var seconds: Double
    var serverCpuSeconds: Double?
}

/// The JSON the crawler prints with `--json`.
struct CrawlerReport: Decodable {
    struct WayResult: Decodable {
        var way: String
        var wallSeconds: Double
        var cpuSeconds: Double
        var floorSeconds: Double
        var poems: [PoemResult]
    }

    struct PoemResult: Decodable {
        var address: String
        var bytes: Int
        var intact: Bool
        var error: String?
    }

    var ways: [WayResult]

    static func parse(_ output: ProcessOutput) throws -> CrawlerReport {
        try JSONDecoder().decode(CrawlerReport.self, from: Data(output.standardOutput.utf8))
    }

    func way(_ name: String) -> WayResult? { ways.first { $0.way == name } }
}

let allWays = ["blocking", "processes", "threads", "busy", "epoll", "libev", "async", "async-epoll"]
/// Every engine of the slow poetry server: all of them.
let allEngines = Engine.allCases.map(\.rawValue)
/// The evented engines: the web crawler's.
let eventedEngines = Engine.allCases.filter { $0.loop != nil }.map(\.rawValue)
