import Foundation
import Testing

/// An existing Firecracker client from PyPI, unmodified: firecracker-python 0.0.5
/// (scripts/install-firecracker-python), which starts the binary at its fixed path
/// /usr/local/bin/firecracker and keeps its state in /var/lib/firecracker. The test gives it both
/// in a mount namespace of its own (a tmpfs on each, `firecracker` a link to Ebb) and a network
/// namespace for its tap, so nothing of the host changes; scripts/lib/firecracker_client_boot.py
/// then drives Ebb with the package's own classes (what each step does is said there).
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct FirecrackerClientTests {
    static let venv = (ProcessInfo.processInfo.environment["EBB_CACHE"] ?? NSHomeDirectory() + "/.cache/ebb") + "/firecracker-python-0.0.5"

    /// Mounts over the client's fixed paths, then runs the rest of the arguments.
    static let namespaceSetUp = """
        set -e
        mount -t tmpfs -o mode=0755 ebb-client-bin /usr/local/bin
        ln -s "$1" /usr/local/bin/firecracker
        mount -t tmpfs -o mode=0755 ebb-client-state /var/lib
        shift
        exec "$@"
        """

    @Test func firecrackerPythonBootsAGuestThroughEbb() throws {
        try requireTestKernel()
        let python = Self.venv + "/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestFailure("firecracker-python is not installed: run scripts/install-firecracker-python (scripts/test does)")
        }
        let scratch = try DiskScratch("firecracker-python")
        let disk = try scratch.image()
        let driver = packageRoot.appendingPathComponent("scripts/lib/firecracker_client_boot.py").path
        let (status, output) = try NetworkNamespace.outcome("/usr/bin/timeout", [
            "300", "unshare", "--mount", "--net", "--propagation", "private", "--", "/bin/sh", "-c", Self.namespaceSetUp, "client",
            try ebbExecutable(), python, driver, "--kernel", testKernelELF, "--disk", disk,
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("client: started /usr/local/bin/firecracker pid"), "\(output)")
        #expect(output.contains("comm firecracker"), "the client finds its VMM by the process name: \(output)")
        #expect(output.contains("client: state Not started\nclient: configured\nclient: state Running"), "\(output)")
        #expect(output.contains("client: ping 3 packets transmitted, 3 received"), "\(output)")
        #expect(output.contains("client: balloon target_mib 16"), "\(output)")
        #expect(output.contains("client: balloon stats_polling_interval_s 2"), "\(output)")
        #expect(output.contains("client: state Paused\nclient: state Running"), "\(output)")
        #expect(output.contains("client: drives rootfs=\(disk)"), "\(output)")
        #expect(output.contains("client: stopped True\nclient: exit 143"), "\(output)")
        #expect(output.contains("stopped by signal 15"), "\(output)")
        #expect(output.hasSuffix("client: done\n"), "\(output)")
    }
}
