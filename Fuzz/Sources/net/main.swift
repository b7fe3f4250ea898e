import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `net_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("net_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzNet($0, $1) }
}
