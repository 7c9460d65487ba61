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
    init(engine: String, delay: Double, numBytes: Int, poem: String = "the-loop-that-waits",
         descriptorLimit: Int? = nil) throws {
        let arguments = ["poetry", "--engine", engine, "--delay", "\(delay)", "--num-bytes", "\(numBytes)", "--poem", poem]
        if let descriptorLimit {
            process = try SpawnedProcess("/usr/bin/prlimit", ["--nofile=\(descriptorLimit):\(descriptorLimit)", Program.server] + arguments)
        } else {
            process = try SpawnedProcess(Program.server, arguments)
        }
        let banner = process.waitForOutput(containing: "Serving")
        guard let range = banner.range(of: #"port (\d+)"#, options: .regularExpression),
              let port = UInt16(banner[range].dropFirst(5)) else {
            process.send(SIGKILL)
            throw EventLoopError.system("server banner: \(banner)", .ioError)
        }
        self.port = port
    }

    /// Stops the server (SIGTERM) and returns how it ended.
    @discardableResult
    func stop() throws -> ProcessOutput {
        process.send(SIGTERM)
        return try process.wait(timeout: 10)
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
