import FuzzSupport
import GuestMemory
import LinuxBoot
import VMM

/// A kernel image from a user's file: recognized as a bzImage (setup header) or an ELF (program
/// headers, PVH note), validated, then loaded into a 32 MiB guest with a command line and an
/// initrd, as `ebb run --kernel` does. Whatever the header claims, loading stays inside RAM.
let ramLayout = GuestRAMLayout(memoryBytes: 32 << 20)
let memory: GuestMemory = {
    do { return try GuestMemory(regions: ramLayout.regions) } catch { fatalError("fuzz guest RAM: \(error)") }
}()

func fuzzBootImage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var input = FuzzInput(start, count)
    // The first byte picks the initrd's size (none, small or large) and the command line's length.
    let shape = input.byte()
    let image = input.rest()
    guard let kernel = try? KernelImage(bytes: image) else { return 0 }
    let initrd: [UInt8]? = switch shape % 3 {
    case 0: nil
    case 1: [UInt8](repeating: 0x5a, count: 4096)
    default: [UInt8](repeating: 0x5a, count: Int(shape) << 16)
    }
    let commandLine = String(repeating: "x", count: Int(shape) * 8)
    _ = try? BootLoader(memory: memory, ramLayout: ramLayout).load(kernel: kernel, commandLine: commandLine, initrd: initrd, rsdpAddress: 0xe0000)
    return 0
}
