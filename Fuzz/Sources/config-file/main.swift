import FuzzSupport

/// The program's entry: SwiftPM links an executable's `main` to its module's `config_file_main`, which
/// with -parse-as-library (libFuzzer's builds) only this defines.
@_cdecl("config_file_main")
func fuzzTargetMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzzConfigFile($0, $1) }
}
