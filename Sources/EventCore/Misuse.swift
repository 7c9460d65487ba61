/// Stops the program with `message`, in release builds too: for misuse of
/// the package that cannot be reported as an error (a loop's state touched
/// off its thread, two tasks waiting for the same readiness, closing a loop
/// from inside its own run). `precondition` would do the same in debug
/// builds only - an optimized build drops its message and prints a bare
/// backtrace - so every such check of the package goes through here.
@inline(never)
package func misuse(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError(message(), file: file, line: line)
}

/// Stops the program with `message` unless `condition` holds (``misuse(_:file:line:)``).
@inline(__always)
package func checkUsage(_ condition: Bool, _ message: @autoclosure () -> String,
                        file: StaticString = #fileID, line: UInt = #line) {
    if !condition { misuse(message(), file: file, line: line) }
}
