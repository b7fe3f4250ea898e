import Foundation
import Testing

/// A network namespace of the test's own with a tap in it: no frame leaves the machine.
final class NetworkNamespace {
    let name: String
    let tap = "ebbtap0"
    static let hostIP = "10.0.2.2"
    static let guestIP = "10.0.2.15"
    static let guestMAC = "06:00:0a:00:02:0f"

    init(_ label: String) throws {
        name = "ebb-\(label)-\(getpid())"
        _ = try? Self.ip(["netns", "del", name])
        try Self.ip(["netns", "add", name])
        try Self.ip(["-n", name, "link", "set", "lo", "up"])
        try Self.ip(["-n", name, "tuntap", "add", "dev", tap, "mode", "tap"])
        try Self.ip(["-n", name, "addr", "add", "\(Self.hostIP)/24", "dev", tap])
        try Self.ip(["-n", name, "link", "set", tap, "up"])
    }

    deinit { _ = try? Self.ip(["netns", "del", name]) }

    var launcher: [String] { ["/usr/sbin/ip", "netns", "exec", name] }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        try run("/usr/sbin/ip", arguments)
    }

    /// Runs a program to its end; throws with what it printed unless it exits 0.
    @discardableResult
    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let (status, output) = try outcome(program, arguments)
        guard status == 0 else { throw TestFailure("\(program) \(arguments.joined(separator: " ")): exit \(status): \(output)") }
        return output
    }

    /// A program's exit status and everything it printed (stdout and stderr together).
    static func outcome(_ program: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// scripts/lib/net_peer.py in the namespace; its output, whatever its exit status.
    func peer(_ options: [String]) throws -> String {
        try Self.outcome("/usr/sbin/ip", ["netns", "exec", name, "python3", packageRoot.appendingPathComponent("scripts/lib/net_peer.py").path,
                                          tap, Self.guestIP, "--host-ip", Self.hostIP] + options).1
    }
}

/// The test kernel's virtio-net driver on a real tap: the host ARPs for the guest, pings it with
/// every frame size up to the MTU (each reply checked byte for byte), sends frames no peer should,
/// and the guest's own hostile transmits break at most the NIC, which its driver resets.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct NetDeviceTests {
    func start(_ namespace: NetworkNamespace, extra: String = "") throws -> EbbProcess {
        try requireTestKernel()
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", "256M",
                                  "--net", "tap=\(namespace.tap),mac=\(NetworkNamespace.guestMAC)",
                                  "--cmdline", "ebb.scenario=net-echo ebb.ip=\(NetworkNamespace.guestIP) \(extra)"],
                                 launcher: namespace.launcher)
        #expect(ebb.wait(seconds: 120) { $0.contains("net: ready") }, "\(ebb.stdout.suffix(2000))")
        return ebb
    }

    @Test func theGuestAnswersARPAndEveryFrameSizeUpToTheMTU() throws {
        let namespace = try NetworkNamespace("echo")
        let ebb = try start(namespace)
        let peer = try namespace.peer(["--burst", "--hostile", "--stop"])
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(peer.contains("net-peer: arp answered, guest \(NetworkNamespace.guestMAC)"), "\(peer)")
        #expect(peer.contains("sent=1473 answered=1473 mismatched=0 lost=0"), "\(peer.suffix(2000)) \(result.stdout.suffix(2000))")
        #expect(result.stdout.contains("net: ready mac=6:0:a:0:2:f ip=\(NetworkNamespace.guestIP) mtu=1500"), "\(result.stdout)")
        #expect(result.stdout.contains("net: stop frame"), "\(result.stdout)")
        // The hostile frames: the broken checksum counted, the rest dropped, nothing else lost.
        #expect(result.stdout.contains("bad-checksum=1"), "\(result.stdout)")
        #expect(result.stdout.contains("multi-buffer=0 short=0 tx-timeouts=0"), "\(result.stdout)")
        #expect(result.stderr.contains("net 'ebbtap0': "), "\(result.stderr)")
        #expect(result.stderr.contains("0 malformed and 0 refused by the tap dropped, 0 bad receive chains"), "\(result.stderr)")
    }

    /// A real `ping` from the host side, when iputils is installed (scripts/install-host-packages).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ping") || FileManager.default.isExecutableFile(atPath: "/bin/ping"),
                   "iputils-ping is not installed: scripts/install-host-packages installs it"))
    func pingReachesTheGuest() throws {
        let namespace = try NetworkNamespace("ping")
        let ebb = try start(namespace)
        let ping = try? NetworkNamespace.run("/usr/sbin/ip", ["netns", "exec", namespace.name, "ping", "-c", "3", "-i", "0.2", "-W", "5", NetworkNamespace.guestIP])
        _ = try namespace.peer(["--stop"])
        let result = ebb.finish(seconds: 60)
        #expect(ping?.contains("3 received") == true, "\(ping ?? "ping failed") \(result.stdout.suffix(1000))")
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test func hostileTransmitsBreakOnlyTheNICWhichItsDriverResets() throws {
        let namespace = try NetworkNamespace("hostile")
        let ebb = try start(namespace, extra: "ebb.net_hostile=1")
        let peer = try namespace.peer(["--stop"])
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("net-hostile: writable-tx=returned runt=returned oversized=returned ufo=returned"), "\(result.stdout)")
        #expect(result.stdout.contains("needs-reset=1"), "\(result.stdout)")
        #expect(result.stdout.contains("net-hostile: reset and set up again"), "\(result.stdout)")
        #expect(peer.contains("net-peer: arp answered"), "after the reset the NIC still works: \(peer)")
        #expect(result.stderr.contains("virtio-net 'ebbtap0': device needs reset"), "\(result.stderr)")
        #expect(result.stderr.contains("4 malformed"), "\(result.stderr)")
    }

    /// What a user gets wrong: one line each, exit 1, no guest started.
    @Test func aTapThatCannotBeHadIsOneLine() throws {
        let missing = try runEbb(["run", "--net", "tap=ebbnosuch0"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("tap 'ebbnosuch0': no such network interface (create it: ip tuntap add dev ebbnosuch0 mode tap)"), "\(missing.stderr)")
        let loopback = try runEbb(["run", "--net", "tap=lo"])
        #expect(loopback.stderr.contains("tap 'lo': not a tap device"), "\(loopback.stderr)")
        let badMAC = try runEbb(["run", "--net", "tap=x,mac=01:00:00:00:00:01"])
        #expect(badMAC.stderr.contains("is not a unicast MAC address"), "\(badMAC.stderr)")
        // A tap another process holds.
        let namespace = try NetworkNamespace("busy")
        let first = try start(namespace)
        let second = try EbbProcess(["run", "--kernel", testKernelELF, "--net", "tap=\(namespace.tap)"], launcher: namespace.launcher).finish(seconds: 30)
        #expect(second.stderr.contains("tap 'ebbtap0': in use by another process"), "\(second.stderr)")
        _ = try namespace.peer(["--stop"])
        #expect(first.finish(seconds: 60).status == 0)
    }
}

/// The NIC as Firecracker's clients give it: PUT /network-interfaces/{iface_id} before
/// InstanceStart, in firecracker-go-sdk's order, and the guest on the tap answers.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct NetworkInterfaceAPITests {
    @Test func aNICPutOverTheAPIIsTheGuests() throws {
        try requireTestKernel()
        let namespace = try NetworkNamespace("api")
        let scratch = try DiskScratch("net-api")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let metrics = scratch.directory.appendingPathComponent("metrics.json").path
        let ebb = try EbbProcess(["--api-sock", socket, "--id", "net-vm"], launcher: namespace.launcher)
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: socket) { Thread.sleep(forTimeInterval: 0.05) }
        let requests: [(String, String, String)] = [
            ("PUT", "/metrics", #"{"metrics_path": "\#(metrics)"}"#),
            ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 256}"#),
            ("PUT", "/boot-source", #"{"kernel_image_path": "\#(testKernelELF)", "boot_args": "ebb.scenario=net-echo ebb.ip=\#(NetworkNamespace.guestIP)"}"#),
            ("PUT", "/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "\#(namespace.tap)", "guest_mac": "\#(NetworkNamespace.guestMAC)"}"#),
            ("PUT", "/actions", #"{"action_type": "InstanceStart"}"#),
        ]
        for (method, path, body) in requests {
            let answer = try unixHTTP(socket, method, path, body: body)
            #expect(answer.status == 204, "\(method) \(path): \(answer.status) \(answer.body)")
        }
        #expect(ebb.wait(seconds: 120) { $0.contains("net: ready") }, "\(ebb.stdout.suffix(2000)) \(ebb.stderr)")
        let config = try unixHTTP(socket, "GET", "/vm/config")
        #expect(config.body.contains(#""host_dev_name":"\#(namespace.tap)","iface_id":"eth0""#), "\(config.body)")
        let late = try unixHTTP(socket, "PUT", "/network-interfaces/eth1", body: #"{"iface_id": "eth1", "host_dev_name": "tap9"}"#)
        #expect(late.status == 400 && late.body.contains("not supported after starting the microVM"), "\(late.body)")
        let peer = try namespace.peer(["--stop"])
        let result = ebb.finish(seconds: 60)
        #expect(peer.contains("net-peer: arp answered, guest \(NetworkNamespace.guestMAC)"), "\(peer)")
        #expect(result.status == 0, "\(result.stderr)")
        let line = (try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        let eth0 = object?["net_eth0"] as? [String: Int]
        #expect((eth0?["rx_packets_count"] ?? 0) >= 1 && (eth0?["tx_packets_count"] ?? 0) >= 1, "\(line)")
        #expect(object?["net"] != nil, "\(line)")
    }
}
