import Foundation
import Synchronization
import Testing

/// Where the checkout is: this file is <root>/Tests/IntegrationTests/EbbProcess.swift.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let testKernelELF = packageRoot.appendingPathComponent("guest/build/ebb-test-kernel.elf").path
let testKernelBzImage = packageRoot.appendingPathComponent("guest/build/ebb-test-kernel.bzImage").path

/// Tests that need KVM run only where /dev/kvm exists; the reason shows in the test report.
let kvmAvailable = FileManager.default.fileExists(atPath: "/dev/kvm")
let kvmSkipReason: Comment = "/dev/kvm is absent on this host: KVM tests skipped"
/// kvm_pvm is the nested KVM without VT-x/AMD-V of Ebb's CI hosts (see the README).
let isPagetableKVM = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")

/// The `ebb` binary `swift build` put beside the test bundle.
func ebbExecutable() throws -> String {
    let candidates = [
        Bundle.main.bundleURL.appendingPathComponent("ebb").path,
        packageRoot.appendingPathComponent(".build/debug/ebb").path,
    ]
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("ebb is not built: run `swift build` first (scripts/test does)")
    }
    return path
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One `ebb` process whose output is collected as it arrives, so a test can wait for a line,
/// sample the process, then stop it.
final class EbbProcess: @unchecked Sendable {
    struct Result { let stdout: String; let stderr: String; let status: Int32 }

    private let process = Process()
    private let output = Mutex<(stdout: Data, stderr: Data)>((Data(), Data()))
    private let input = Pipe()

    /// `launcher` runs ebb (e.g. `ip netns exec NAME`, which execs it: the pid stays ebb's).
    init(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws {
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [try ebbExecutable()] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: try ebbExecutable())
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            self.output.withLock { $0.stdout.append(data) }
        }
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            self.output.withLock { $0.stderr.append(data) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { output.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    var stderr: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    func type(_ text: String) {
        input.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Polls until `condition` holds on the output so far, the process ends, or the time is up.
    @discardableResult
    func wait(seconds: Double, until condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(stdout) { return true }
            if !process.isRunning { return condition(stdout) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition(stdout)
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to end (killing it after `seconds`) and returns everything it printed.
    func finish(seconds: Double = 60) -> Result {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            process.terminate()
            Thread.sleep(forTimeInterval: 1)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        // Let the readability handlers drain what is left in the pipes, then let go of them.
        Thread.sleep(forTimeInterval: 0.05)
        for pipe in [process.standardOutput, process.standardError].compactMap({ $0 as? Pipe }) {
            pipe.fileHandleForReading.readabilityHandler = nil
        }
        return Result(stdout: stdout, stderr: stderr, status: process.terminationStatus)
    }
}

/// Runs `ebb` to completion.
func runEbb(_ arguments: [String], seconds: Double = 60, environment: [String: String] = [:]) throws -> EbbProcess.Result {
    try EbbProcess(arguments, environment: environment).finish(seconds: seconds)
}

func requireTestKernel() throws {
    guard FileManager.default.fileExists(atPath: testKernelELF), FileManager.default.fileExists(atPath: testKernelBzImage) else {
        throw TestFailure("the test kernel is not built: run guest/build-test-kernel.sh (scripts/test does)")
    }
}
