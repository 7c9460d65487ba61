/// The bounds of the examples' numeric command-line options, checked in one
/// place so that every one has both ends: a value past an upper bound once
/// trapped (`crawler web --lease 1e17` converted it to milliseconds in an
/// Int) or asked for absurd resources; now it is a usage error naming the
/// option, its range and the value (exit 64).
public enum OptionBounds {
    /// A day: the most any timeout, delay or lease of the examples may be.
    public static let longestSeconds = 86_400.0
    /// 1 GiB: the most any byte limit of the examples may be.
    public static let mostBytes = 1 << 30

    /// Why `value` is not a number of seconds in `range` (NaN and infinity
    /// are not), or nil if it is.
    public static func seconds(_ name: String, _ value: Double, in range: ClosedRange<Double>) -> String? {
        guard value.isFinite, range.contains(value) else {
            return "\(name) must be a number of seconds in \(format(range.lowerBound))...\(format(range.upperBound)); got \(value)"
        }
        return nil
    }

    /// Why `value` is not in `range`, or nil if it is.
    public static func count(_ name: String, _ value: Int, in range: ClosedRange<Int>) -> String? {
        guard range.contains(value) else { return "\(name) must be in \(range.lowerBound)...\(range.upperBound); got \(value)" }
        return nil
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
