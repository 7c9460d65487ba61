/// A poem the slow poetry servers send.
public struct Poem: Sendable {
    /// Its name for `--poem`.
    public let name: String
    /// Its bytes (UTF-8).
    public let bytes: [UInt8]

    public init(name: String, text: String) {
        self.name = name
        self.bytes = Array(text.utf8)
    }

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    /// The built-in poems, in the tutorial's order (3003, 615 and 653 bytes).
    public static let builtIn: [Poem] = [.loopThatWaits, .fiftyBytes, .theThirdServer]

    /// The built-in poem called `name`.
    public static func named(_ name: String) -> Poem? {
        builtIn.first { $0.name == name }
    }

    /// How many chunks of `chunkSize` bytes the poem is sent in.
    public func chunks(of chunkSize: Int) -> Int {
        (bytes.count + chunkSize - 1) / chunkSize
    }
}

/// What a download turned out to be, judged against the built-in poems.
public enum PoemCheck: Equatable, Sendable {
    /// Byte for byte one of the built-in poems.
    case intact(String)
    /// The start of a built-in poem, cut short: `received` of `expected` bytes.
    case cutShort(String, received: Int, expected: Int)
    /// Not a built-in poem: nothing to compare with.
    case unknown

    /// Checks `received` against the built-in poems (and `expected`, if given).
    public static func of(_ received: [UInt8], expected: Poem? = nil) -> PoemCheck {
        let candidates = expected.map { [$0] } ?? Poem.builtIn
        for poem in candidates {
            if received == poem.bytes { return .intact(poem.name) }
            if !received.isEmpty, received.count < poem.bytes.count, poem.bytes.starts(with: received) {
                return .cutShort(poem.name, received: received.count, expected: poem.bytes.count)
            }
        }
        if let expected, received.isEmpty { return .cutShort(expected.name, received: 0, expected: expected.bytes.count) }
        return .unknown
    }
}
