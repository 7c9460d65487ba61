// server: the slow poetry server on every engine (and, with `http`, an HTTP server).
//
//     swift run server poetry                          # the classic: blocking, one client at a time
//     swift run server poetry --engine async --port 10000 --delay 0.2 --num-bytes 50
//     swift run server poetry --poem fifty-bytes
//     swift run server poetry path/to/poem.txt
//
// See Examples/Server/README.md.
import ArgumentParser
import EventCore
import Foundation
import Glibc
import SlowPoetry

struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Servers for the package's examples.",
        subcommands: [PoetryServerCommand.self])
}

extension ServerEngine: ExpressibleByArgument {}

struct PoetryServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poetry",
        abstract: "A slow poetry server: sends the next N bytes, sleeps, repeats, closes at the end.")

    @Option(help: "How to serve: \(ServerEngine.allCases.map(\.rawValue).joined(separator: ", ")). blocking serves one client at a time, as the classic does.")
    var engine: ServerEngine = .blocking

    @Option(help: "The port to listen on (0, the default: any free port).")
    var port: Int = 0

    @Option(help: "The interface to listen on.")
    var iface: String = "localhost"

    @Option(help: "Seconds between chunks.")
    var delay: Double = 0.7

    @Option(name: .customLong("num-bytes"), help: "Bytes per chunk.")
    var numBytes: Int = 10

    @Option(help: "A built-in poem: \(Poem.builtIn.map(\.name).joined(separator: ", ")) (when no FILE is given).")
    var poem: String = Poem.builtIn[0].name

    @Argument(help: "A text file to serve instead of a built-in poem.")
    var file: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535; got \(port)") }
        guard delay >= 0, delay.isFinite else { throw ValidationError("--delay must be a number of seconds, not negative; got \(delay)") }
        guard numBytes > 0 else { throw ValidationError("--num-bytes must be at least 1; got \(numBytes)") }
        if file == nil && Poem.named(poem) == nil {
            throw ValidationError("unknown poem \"\(poem)\"; the built-in poems are \(Poem.builtIn.map(\.name).joined(separator: ", "))")
        }
        if let file, !FileManager.default.isReadableFile(atPath: file) {
            throw ValidationError("cannot read the poem file \"\(file)\"")
        }
        do { _ = try SocketAddress(host: iface, port: UInt16(port)) } catch { throw ValidationError("invalid --iface \"\(iface)\": \(error)") }
    }

    func run() throws {
        ignoreSIGPIPE()
        raiseDescriptorLimit()
        let bytes: [UInt8]
        let name: String
        if let file {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            name = file
        } else {
            bytes = Poem.named(poem)!.bytes
            name = poem
        }
        // Block SIGINT and SIGTERM in every thread; the main thread waits for them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        let options = PoetryServerOptions(
            poem: bytes, chunkSize: numBytes, delay: delay,
            address: try SocketAddress(host: iface, port: UInt16(port)),
            log: { line in FileHandle.standardError.write("\(line)\n".data(using: .utf8)!) })
        let server = try PoetryServer(engine: engine, options: options)
        print("Serving \(name) on port \(server.address.port).")
        fflush(nil)

        var signal: Int32 = 0
        sigwait(&stopSignals, &signal)
        FileHandle.standardError.write("stopping on signal \(signal)\n".data(using: .utf8)!)
        server.stop()
    }
}

/// Raises the soft limit on open descriptors to the hard one, as Go's
/// runtime does: a server of thousands of clients needs a descriptor each.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

ServerCommand.main()
