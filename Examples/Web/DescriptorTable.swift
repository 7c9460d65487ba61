/// A loop's connections by descriptor number: an array as long as the
/// highest descriptor, as libev's own table is - 8 bytes a descriptor
/// (about 13 per connection with the array's spare capacity, against about
/// 25 for a dictionary entry at C10k), and no hashing on the request path.
struct DescriptorTable<Value: AnyObject> {
    private var slots: [Value?] = []
    /// How many descriptors have a value.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(fd: Int32) -> Value? {
        get { fd >= 0 && Int(fd) < slots.count ? slots[Int(fd)] : nil }
        set {
            precondition(fd >= 0, "a descriptor is not negative")
            let index = Int(fd)
            if index >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: index + 1 - slots.count))
            }
            if slots[index] == nil, newValue != nil { count += 1 }
            if slots[index] != nil, newValue == nil { count -= 1 }
            slots[index] = newValue
        }
    }

    /// The values, in descriptor order: a copy, so the caller may add and
    /// remove while it goes through them.
    var values: [Value] { slots.compactMap { $0 } }
}
