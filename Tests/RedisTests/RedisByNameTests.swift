import EV
import Epoll
import EventCore
import Redis
import Resolver
import Testing
import TestSupport

/// The Redis client finds its server by name on the loop (c-ares), not with
/// a blocking getaddrinfo: against a real DNS server (dnsmasq) and redis-server.
@Suite struct RedisByNameTests {
    func scenario<L: EventLoop>(_ loop: L, _ host: String, _ port: UInt16, _ dns: SocketAddress) throws -> [String] {
        var log: [String] = []
        let client = try RedisClient(loop: loop, host: host, port: port,
                                     resolverOptions: ResolverOptions(servers: [dns], timeout: .seconds(2), usesHostsFile: false))
        client.onClose = { log.append("closed: \($0.map { "\($0)" } ?? "cleanly")") }
        client.send(["SET", "name", "resolved"]) { log.append("SET: \($0.map { "\($0)" })") }
        client.send(["GET", "name"]) { result in
            log.append("GET: \(result.map { "\($0)" })")
            client.close()
        }
        loop.runUntilDone()
        return log
    }

    @Test(arguments: ["libev", "epoll"])
    func aServerNamedByDNS(_ kind: String) throws {
        let redis = try RedisServer()
        // Nothing listens on ::1 or 127.0.0.2 at the port: whichever order the
        // addresses come in, the refused ones are passed over.
        let dns = try DNSServer(records: ["::1 redis.test", "127.0.0.2 redis.test", "127.0.0.1 redis.test"])
        let log = kind == "libev" ? try scenario(try Loop(), "redis.test", redis.port, dns.address)
            : try scenario(try EpollLoop(), "redis.test", redis.port, dns.address)
        #expect(log.first?.hasPrefix("SET: success") == true, "\(log)")
        #expect(log.count == 3 && log[1].contains("resolved") && log[2] == "closed: cleanly", "\(log)")
    }

    @Test(arguments: ["libev", "epoll"])
    func aNameWhoseEveryAddressRefusesFailsTheCommands(_ kind: String) throws {
        let port = try unusedPort()
        let dns = try DNSServer(records: ["127.0.0.2 refusing.test", "127.0.0.1 refusing.test"])
        let log = kind == "libev" ? try scenario(try Loop(), "refusing.test", port, dns.address)
            : try scenario(try EpollLoop(), "refusing.test", port, dns.address)
        #expect(log.count == 3 && log.allSatisfy { $0.contains("Connection refused") }, "\(log)")
    }

    @Test(arguments: ["libev", "epoll"])
    func aNameThatDoesNotExistFailsTheCommandsAndSaysWhy(_ kind: String) throws {
        let dns = try DNSServer(records: ["127.0.0.1 redis.test"])
        let log = kind == "libev" ? try scenario(try Loop(), "gone.test", 6379, dns.address)
            : try scenario(try EpollLoop(), "gone.test", 6379, dns.address)
        #expect(log.count == 3, "\(log)")
        #expect(log.allSatisfy { $0.contains("resolve(gone.test): the name does not exist (NXDOMAIN)") }, "\(log)")
    }
}
