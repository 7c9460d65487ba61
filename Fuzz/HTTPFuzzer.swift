// libFuzzer target: arbitrary bytes through the server's request path, the
// crawler's response parser, its URL resolver and its link extractor - one
// binary, the target chosen by the FUZZ_TARGET environment variable
// (request, response, url, links; see HTTPFuzzDriver).
//
//     make fuzz                     # 15 s each, as `make test` runs it
//     make fuzz FUZZ_SECONDS=300    # five minutes each
//
// Built with the sources of Examples/HTTP (no event loop: the path from
// bytes received to bytes answered is all there), `-sanitize=fuzzer,address`.
// Each target's seeds are in Fuzz/corpus/TARGET; a crasher goes there too,
// and the tests replay them all (HTTPTests).
#if canImport(Glibc)
import Glibc
#endif

private let target: HTTPFuzzDriver.Target = {
    let name = getenv("FUZZ_TARGET").map { String(cString: $0) } ?? "request"
    guard let target = HTTPFuzzDriver.Target(rawValue: name) else {
        fatalError("FUZZ_TARGET must be one of \(HTTPFuzzDriver.Target.allCases.map(\.rawValue)); got \(name)")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    HTTPFuzzDriver.run(target, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
