/// Values by descriptor number - a loop's registrations, a server's
/// connections: an array as long as the highest descriptor in use, as
/// libev's own `anfds` is, so a lookup is an index (no hashing on the hot
/// path) and an entry costs the value's own size (8 bytes for a class
/// reference: about 13 with the array's spare capacity, against about 25
/// for a dictionary entry at C10k).
///
/// The one table of the package: the epoll loop's ``Selector``-style keys,
/// libev's per-descriptor records and the examples' connection tables are
/// all this type. It only stores: telling a reused number from the file it
/// had is the owner's (a registration generation on epoll, see `Epoll.Selector`).
///
/// Not for apps: an SPI (`@_spi(EventLoops) import EventCore`) that is
/// public only so that it can be inlined. Used from the loops' and the
/// examples' modules, it ran unspecialized there - looking its generic
/// metadata up at each access, 15 % of a server's user time per connection
/// - and the compiler specializes a `package` declaration across modules
/// only when it is public.
@_spi(EventLoops) @frozen
public struct DescriptorTable<Value> {
    @usableFromInline var slots: [Value?] = []
    @usableFromInline var storedCount = 0

    @inlinable
    public init() {}

    /// How many descriptors have a value.
    @inlinable
    public var count: Int { storedCount }

    /// Whether no descriptor has a value.
    @inlinable
    public var isEmpty: Bool { storedCount == 0 }

    /// The value of `descriptor`; nil for a number with none (a negative one too).
    /// Setting a value grows the table up to its number only: the array's own
    /// growth is amortized, and the capacity beyond stays untouched (not
    /// resident) until descriptors get there.
    @inlinable
    public subscript(descriptor: FileDescriptor) -> Value? {
        @inline(__always) get {
            let fd = descriptor.rawValue
            return fd >= 0 && Int(fd) < slots.count ? slots[Int(fd)] : nil
        }
        set {
            precondition(descriptor.rawValue >= 0, "a descriptor is not negative")
            let index = Int(descriptor.rawValue)
            if index >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: index + 1 - slots.count))
            }
            if slots[index] == nil, newValue != nil { storedCount += 1 }
            if slots[index] != nil, newValue == nil { storedCount -= 1 }
            slots[index] = newValue
        }
    }

    /// Changes the value of `descriptor` in place (nil: none); returns what `body` returns.
    @inlinable @inline(__always)
    public mutating func update<Result>(_ descriptor: FileDescriptor, _ body: (inout Value?) -> Result) -> Result {
        var value = self[descriptor]
        defer { self[descriptor] = value }
        return body(&value)
    }

    /// The descriptors that have a value, lowest first.
    @inlinable
    public var descriptors: [FileDescriptor] {
        slots.indices.compactMap { slots[$0] == nil ? nil : FileDescriptor(rawValue: Int32($0)) }
    }

    /// The values, in descriptor order: a copy, so the caller may add and
    /// remove while it goes through them.
    @inlinable
    public var values: [Value] { slots.compactMap { $0 } }

    /// Empties the table.
    @inlinable
    public mutating func removeAll() {
        slots = []
        storedCount = 0
    }
}
