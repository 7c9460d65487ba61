import EventCore
import Testing

@Suite("SocketAddress")
struct SocketAddressTests {
    @Test func aBarePortMeansLocalhost() throws {
        let address = try SocketAddress(parsing: "8000")
        #expect(address.host == "127.0.0.1")
        #expect(address.port == 8000)
        #expect(address.family == .ipv4)
        #expect(address.description == "127.0.0.1:8000")
    }

    @Test func hostAndPort() throws {
        #expect(try SocketAddress(parsing: "10.1.2.3:80").description == "10.1.2.3:80")
        #expect(try SocketAddress(parsing: ":81").description == "127.0.0.1:81")
        #expect(try SocketAddress(parsing: "localhost:82").port == 82)
    }

    @Test func bracketedIPv6() throws {
        let address = try SocketAddress(parsing: "[::1]:8001")
        #expect(address.family == .ipv6)
        #expect(address.host == "::1")
        #expect(address.description == "[::1]:8001")
    }

    @Test(arguments: [
        ("http", "invalid port \"http\" in \"http\""),
        ("127.0.0.1:70000", "invalid port \"70000\" in \"127.0.0.1:70000\""),
        ("127.0.0.1:", "invalid port \"\" in \"127.0.0.1:\""),
        ("::1:80", "\"::1:80\" is not an address"),
        ("[::1]80", "\"[::1]80\" is not an address"),
        ("no.such.host.invalid:80", "invalid host \"no.such.host.invalid\""),
    ])
    func badAddressesNameWhatIsWrong(_ text: String, _ says: String) {
        let error = #expect(throws: EventLoopError.self) { try SocketAddress(parsing: text) }
        #expect(error?.code == .invalidAddress)
        #expect(error?.description.contains(says) == true, "\(String(describing: error))")
    }

    @Test func equalityIgnoresTheSpelling() throws {
        #expect(try SocketAddress(parsing: "8000") == SocketAddress(parsing: "127.0.0.1:8000"))
        #expect(try SocketAddress(parsing: "8000") != SocketAddress(parsing: "8001"))
    }
}
