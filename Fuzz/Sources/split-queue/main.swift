import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `split_queue_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("split_queue_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzSplitQueue($0, $1) }
}
