import EV
import EventCore
import Glibc
import SlowPoetry

/// The tutorial's three slow poetry servers, started in this process: the
/// built-in poems in chunks of 200, 50 and 50 bytes, every `delay` seconds,
/// served by the libev engine on a thread of their own.
struct EmbeddedServers {
    /// The servers, in the tutorial's order.
    let servers: [PoetryServer]
    /// Their options, for the floors and the checks.
    let options: [PoetryServerOptions]

    static let chunkSizes = [200, 50, 50]

    init(delay: Duration) throws {
        var servers: [PoetryServer] = []
        var options: [PoetryServerOptions] = []
        for (poem, chunk) in zip(Poem.builtIn, Self.chunkSizes) {
            let option = PoetryServerOptions(poem: poem.bytes, chunkSize: chunk, delay: delay,
                                             address: try SocketAddress(parsing: "0"))
            servers.append(try PoetryServer(engine: .libev, options: option))
            options.append(option)
        }
        self.servers = servers
        self.options = options
    }

    var addresses: [SocketAddress] { servers.map(\.address) }

    /// The floor of a way: the sum of the downloads if they run one after
    /// another, the slowest one if they run at once.
    func floor(sequential: Bool) -> Double {
        let durations = options.map(\.downloadTime.inSeconds)
        return sequential ? durations.reduce(0, +) : durations.max() ?? 0
    }

    func stop() {
        servers.forEach { $0.stop() }
    }
}
