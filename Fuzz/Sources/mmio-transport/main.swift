import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `mmio_transport_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("mmio_transport_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzMMIOTransport($0, $1) }
}
