import API
import VMM

/// Firecracker's `--config-file` JSON, decoded and applied to a machine's resources as `ebb
/// --config-file` does: any bytes either configure a machine or are refused with an error.
func fuzzConfigFile(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let file = try? ConfigFile.decode(bytes) else { return 0 }
    var resources = MachineResources()
    if (try? file.apply(to: &resources)) != nil { _ = try? resources.configuration() }
    return 0
}
