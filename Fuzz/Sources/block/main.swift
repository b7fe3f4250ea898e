import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `block_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("block_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzBlock($0, $1) }
}
