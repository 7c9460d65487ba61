import EV
import Epoll
import EventCore
import Glibc
import Resolver
import Testing
import TestSupport

/// Names on the loop: c-ares driven by each loop's watches and timers,
/// against a real DNS server (dnsmasq, started here), the hosts file, and
/// servers that misbehave.
@Suite("Resolver")
struct ResolverTests {
    /// A resolver on the loop of `executor`, asking `server` only.
    func resolver(_ executor: any EventLoopExecutor, _ server: SocketAddress, timeout: Duration = .seconds(2), tries: Int = 2,
                  hostsFile: Bool = false, maximum: Int = 64) throws -> any NameResolving {
        func make<E: EventLoopExecutor>(_ executor: E) throws -> any NameResolving {
            try NameResolver(on: executor.runningLoop, options: ResolverOptions(servers: [server], timeout: timeout, tries: tries,
                                                                                usesHostsFile: hostsFile, maximumAddresses: maximum))
        }
        return try make(executor)
    }

    static let records = ["10.0.0.1 one.test", "10.0.0.2 one.test", "fd00::1 one.test", "fd00::2 six.test",
                          "::1 both.test", "127.0.0.1 both.test", "::1 nowhere.test", "127.0.0.1 nowhere.test"]

    @Test(arguments: LoopKind.allCases)
    func aNameResolvesToEveryAddressOfADNSServer(_ kind: LoopKind) throws {
        let server = try DNSServer(records: Self.records)
        let (all, ipv4, six) = try kind.run { executor in
            let resolver = try resolver(executor, server.address)
            defer { resolver.close() }
            return (try await resolver.resolve("one.test", port: 80, family: nil),
                    try await resolver.resolve("one.test", port: 80, family: .ipv4),
                    try await resolver.resolve("six.test", port: 443, family: nil))
        }
        #expect(Set(all.map(\.description)) == ["10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:80"])
        #expect(Set(ipv4.map(\.description)) == ["10.0.0.1:80", "10.0.0.2:80"])
        #expect(six.map(\.description) == ["[fd00::2]:443"])
    }

    @Test(arguments: LoopKind.allCases)
    func errorsNameTheHostAndTheReason(_ kind: LoopKind) throws {
        let server = try DNSServer(records: Self.records)
        let errors = try kind.run { executor in
            let resolver = try resolver(executor, server.address)
            defer { resolver.close() }
            var errors: [EventLoopError] = []
            for name in ["missing.test", "elsewhere.example", "one.test"] {
                do {
                    _ = try await resolver.resolve(name, port: 1, family: name == "one.test" ? .ipv6 : .ipv4)
                    if name != "one.test" { Issue.record("\(name) resolved") }
                } catch let error as EventLoopError {
                    errors.append(error)
                }
            }
            return errors
        }
        #expect(errors.map(\.code) == [.nameResolution(.notFound), .nameResolution(.refused)])
        #expect(errors.first?.description == "resolve(missing.test): the name does not exist (NXDOMAIN)")
        #expect(errors.last?.description.contains("resolve(elsewhere.example)") == true)
    }

    @Test(arguments: LoopKind.allCases)
    func theHostsFileComesFirst(_ kind: LoopKind) throws {
        // The only server never answers: localhost comes from /etc/hosts.
        let silent = try HostileDNSServer(.silent)
        let (fromFile, withoutFile) = try kind.run { executor in
            let withFile = try resolver(executor, silent.address, timeout: .milliseconds(100), tries: 1, hostsFile: true)
            let without = try resolver(executor, silent.address, timeout: .milliseconds(100), tries: 1, hostsFile: false)
            defer { withFile.close(); without.close() }
            let fromFile = try await withFile.resolve("localhost", port: 8, family: .ipv4)
            let error = await #expect(throws: EventLoopError.self) { try await without.resolve("localhost", port: 8, family: .ipv4) }
            return (fromFile, error?.code)
        }
        #expect(fromFile.map(\.description) == ["127.0.0.1:8"])
        // Without the file, DNS only: the silent server (c-ares 1.18 gives up
        // on "localhost" without asking, as if refused; later ones ask).
        #expect(withoutFile == .nameResolution(.noAnswer) || withoutFile == .nameResolution(.refused))
    }

    @Test(arguments: LoopKind.allCases)
    func numericAddressesAreTheirOwnAnswer(_ kind: LoopKind) throws {
        let silent = try HostileDNSServer(.silent)
        let answers = try kind.run { executor in
            let resolver = try resolver(executor, silent.address, timeout: .seconds(30))
            defer { resolver.close() }
            return [try await resolver.resolve("127.0.0.1", port: 5, family: nil), try await resolver.resolve("::1", port: 6, family: nil)]
        }
        #expect(answers.map { $0.map(\.description) } == [["127.0.0.1:5"], ["[::1]:6"]])
    }

    @Test(arguments: LoopKind.allCases)
    func misbehavingServersEndTheLookupWithAnError(_ kind: LoopKind) throws {
        for behaviour in [HostileDNSServer.Behaviour.silent, .garbage, .truncated] {
            let server = try HostileDNSServer(behaviour)
            let (code, watches, waitsLeft) = try kind.runChecked { executor in
                let resolver = try resolver(executor, server.address, timeout: .milliseconds(200), tries: 2)
                defer { resolver.close() }
                let error = await #expect(throws: EventLoopError.self) { try await resolver.resolve("some.test", port: 1, family: nil) }
                return error?.code
            }
            switch code {
            case .nameResolution(.noAnswer), .nameResolution(.badReply), .nameResolution(.refused): break
            default: Issue.record("\(behaviour): \(String(describing: code))")
            }
            #expect(watches == 0 && !waitsLeft, "\(behaviour): the resolver left \(watches) watches")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aThousandAddressesAreCutToTheMaximum(_ kind: LoopKind) throws {
        let records = (0..<1000).map { "10.7.\($0 / 250).\($0 % 250 + 1) many.test" }
        let server = try DNSServer(records: records)
        let (capped, all) = try kind.run { executor in
            let small = try resolver(executor, server.address)
            let large = try resolver(executor, server.address, maximum: 5000)
            defer { small.close(); large.close() }
            return (try await small.resolve("many.test", port: 1, family: .ipv4), try await large.resolve("many.test", port: 1, family: .ipv4))
        }
        #expect(capped.count == 64)
        #expect(all.count == 1000 && Set(all).count == 1000)
    }

    @Test(arguments: LoopKind.allCases)
    func namesThatAreNotNamesAreRefusedWithoutAsking(_ kind: LoopKind) throws {
        let silent = try HostileDNSServer(.silent)
        let errors = try kind.run { executor in
            let resolver = try resolver(executor, silent.address, timeout: .seconds(30))
            defer { resolver.close() }
            var errors: [EventLoopError] = []
            for name in [String(repeating: "a", count: 10_000), "evil\u{0}.test", "", "a..b", String(repeating: "b", count: 64) + ".test"] {
                do { _ = try await resolver.resolve(name, port: 1, family: nil) } catch let error as EventLoopError { errors.append(error) }
            }
            return errors
        }
        #expect(errors.count == 5 && errors.allSatisfy { $0.code == .nameResolution(.badName) }, "\(errors)")
        #expect(errors.first?.description.contains("10000 bytes") == true, "\(errors.first.map { "\($0)" } ?? "")")
        #expect(errors.first!.description.count < 300, "a long name is shortened in the message")
        #expect(errors[1].description.contains("NUL"))
    }

    @Test(arguments: LoopKind.allCases)
    func aDeadlineAndCancellationEndAPendingLookup(_ kind: LoopKind) throws {
        let silent = try HostileDNSServer(.silent)
        let ((timeoutCode, cancelled, watches), _, waitsLeft) = try kind.runChecked { executor in
            let resolver = try resolver(executor, silent.address, timeout: .seconds(60))
            defer { resolver.close() }
            let timedOut = await #expect(throws: EventLoopError.self) {
                try await withTimeout(.milliseconds(100)) { try await resolver.resolve("slow.test", port: 1, family: nil) }
            }
            let address = silent.address
            let task = Task(executorPreference: executor) { () -> (Bool, Int) in
                let resolver = try self.resolver(executor, address, timeout: .seconds(60))
                defer { resolver.close() }
                do {
                    _ = try await resolver.resolve("slow.test", port: 1, family: nil)
                    return (false, resolver.watchCount)
                } catch {
                    return (error is CancellationError, resolver.watchCount)
                }
            }
            try await executor.sleep(for: .milliseconds(50))
            task.cancel()
            let (cancelled, watchesAfterCancel) = try await task.value
            #expect(watchesAfterCancel == 0)
            return (timedOut?.code, cancelled, resolver.watchCount)
        }
        #expect(timeoutCode == .timedOut)
        #expect(cancelled)
        #expect(watches == 0, "nobody waits: c-ares stopped asking")
        #expect(!waitsLeft)
    }

    @Test(arguments: LoopKind.allCases)
    func aCancelledLookupIsNotCalledBackAndClosingEndsTheRest(_ kind: LoopKind) throws {
        let silent = try HostileDNSServer(.silent)
        let loop = try kind.make()
        func run<L: EventLoop>(_ loop: L) throws -> [String] {
            var calls: [String] = []
            let resolver = try NameResolver(on: loop, options: ResolverOptions(servers: [silent.address], timeout: .seconds(60), usesHostsFile: false))
            let first = resolver.resolve("one.test", port: 1) { _ in calls.append("first") }
            resolver.resolve("two.test", port: 1) { result in
                if case .failure(let error) = result { calls.append("second: \(error.code == .loopClosed)") }
            }
            resolver.resolve("127.0.0.1", port: 1) { result in calls.append("numeric: \((try? result.get())?.count ?? -1)") }
            calls.append("returned")
            loop.schedule(after: .milliseconds(50)) {
                first.cancel()
                resolver.close()
            }
            loop.runUntilDone()
            return calls
        }
        let calls = try run(loop)
        #expect(calls == ["returned", "numeric: 1", "second: true"])
    }

    @Test(arguments: LoopKind.allCases)
    func connectByNameTriesEachAddressInTurn(_ kind: LoopKind) throws {
        let server = try DNSServer(records: Self.records)
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"))
        defer { listener.close() }
        let port = try listener.localAddress().port
        let (peer, failure) = try kind.run { executor in
            let resolver = try resolver(executor, server.address)
            defer { resolver.close() }
            // both.test is ::1 (nothing listens there: refused) and 127.0.0.1.
            let socket = try await resolver.connect("both.test", port: port)
            defer { socket.close() }
            let failure = await #expect(throws: EventLoopError.self) { try await resolver.connect("both.test", port: try unusedPort()) }
            return (socket.peer, failure)
        }
        #expect(peer?.description == "127.0.0.1:\(port)")
        #expect(failure?.errno == .connectionRefused)
        #expect(failure?.description.contains("tried 2 addresses") == true, "\(failure.map { "\($0)" } ?? "")")
    }
}

/// A resolver on either loop, without its loop's type.
protocol NameResolving {
    func resolve(_ host: String, port: UInt16, family: SocketAddress.Family?) async throws -> [SocketAddress]
    func connect(_ host: String, port: UInt16) async throws -> AsyncSocket
    func close()
    var watchCount: Int { get }
}

extension NameResolver: NameResolving {
    func connect(_ host: String, port: UInt16) async throws -> AsyncSocket {
        try await AsyncSocket.connect(toHost: host, port: port, using: self, attemptTimeout: .seconds(5))
    }
}
