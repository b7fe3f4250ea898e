#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import KVM
import VMM

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a kernel (by default Ebb's test kernel) with its serial console on this terminal.",
        discussion: """
            Exit status: 0 the guest powered off (or Ctrl-A x), 1 Ebb could not start or run the guest, \
            2 the guest asked for a reset, 3 the guest crashed (triple fault), 128+N stopped by signal N, \
            64 bad arguments.
            """)

    @Option(help: "Kernel to boot: a bzImage, or an ELF with a PVH entry (vmlinux). Default: the test kernel.")
    var kernel: String?

    @Option(help: "Initial ramdisk for the kernel.")
    var initrd: String?

    @Option(help: "Kernel command line.")
    var cmdline: String?

    @Option(help: "Guest RAM, e.g. 512M or 2G (a bare number is MiB).")
    var memory: String = "512M"

    @Option(help: "Number of vCPUs.")
    var cpus: Int = 1

    @Option(help: "KVM device (also $EBB_KVM_DEVICE).")
    var kvmDevice: String?

    @Flag(help: "Populate all guest RAM before boot, so the guest takes no page faults at run time.")
    var prefault = false

    func validate() throws {
        guard parseSize(memory) != nil else {
            throw ValidationError("memory '\(memory)' is not a size (use e.g. 512M or 2G)")
        }
        guard cpus >= 1 else { throw ValidationError("--cpus must be at least 1, not \(cpus)") }
    }

    func run() throws {
        guard let kernelPath = kernel ?? DefaultGuest.kernelPath() else {
            fail("no --kernel given and the default guest is not built: run guest/build-test-kernel.sh (or scripts/run)")
        }
        let configuration = MachineConfiguration(
            kernelPath: kernelPath,
            initrdPath: initrd,
            commandLine: cmdline ?? (kernel == nil ? "ebb.scenario=hello" : "console=ttyS0"),
            memoryBytes: parseSize(memory) ?? 0,
            cpuCount: cpus,
            kvmPath: kvmDevice ?? environment("EBB_KVM_DEVICE") ?? KVMDevice.defaultPath,
            prefault: prefault)

        let machine: Machine
        do {
            machine = try Machine(configuration: configuration, output: writeToStandardOutput)
        } catch {
            fail("\(error)")
        }
        if KVMDevice.isPagetableVirtualMachine {
            note("this host's KVM is kvm_pvm (nested, no VT-x/AMD-V): guest kernel code is emulated, so unmodified kernels run slowly or not at all")
        }
        let exit: MachineExit
        do {
            exit = try machine.run()
        } catch {
            fail("\(error)")
        }
        let memory = machine.sampleHostMemory()
        let unclaimed = machine.unclaimedAccesses
        note("\(exit); host RSS \(formatBytes(memory.residentBytes)) (peak \(formatBytes(memory.peakResidentBytes)), \(formatBytes(memory.overheadBytes)) outside guest RAM); unclaimed accesses: \(unclaimed.io) port, \(unclaimed.mmio) MMIO")
        throw ExitCode(exit.exitCode)
    }
}

@Sendable func writeToStandardOutput(_ byte: UInt8) {
    var value = byte
    _ = write(STDOUT_FILENO, &value, 1)
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

func note(_ message: String) {
    let line = "ebb: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    note("error: \(message)")
    // The console's atexit handler restores the terminal if it was put in raw mode.
    exit(1)
}
