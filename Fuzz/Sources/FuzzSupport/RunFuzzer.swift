import CFuzz

/// Runs libFuzzer with `body` as the target; libFuzzer's flags and corpus directories come from
/// the command line, as `scripts/fuzz` passes them.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, body)
}
