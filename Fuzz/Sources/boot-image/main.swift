import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `boot_image_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("boot_image_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzBootImage($0, $1) }
}
