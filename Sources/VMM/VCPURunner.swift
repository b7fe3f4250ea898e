import CKVM
import Devices
import GuestMemory
import KVM

/// The loop each vCPU thread runs: enter the guest, dispatch the exit, repeat until the machine stops.
struct VCPURunner {
    let vcpu: VCPU
    let machine: Machine

    /// `KVM_EXIT_INTERNAL_ERROR` suberror for "the emulator could not handle the instruction".
    static let emulationFailure = UInt32(KVM_INTERNAL_ERROR_EMULATION)
    /// KVM_SYSTEM_EVENT_SHUTDOWN / _RESET / _CRASH.
    enum SystemEvent { static let shutdown: UInt32 = 1; static let reset: UInt32 = 2; static let crash: UInt32 = 3 }
    static let int3Opcode: UInt8 = 0xcc
    static let breakpointVector: UInt8 = 3

    func loop() {
        while !machine.isStopping {
            machine.pauseGate.parkIfRequested { !machine.isStopping }
            guard !machine.isStopping else { return }
            let exit: VCPUExit
            do {
                exit = try vcpu.run()
            } catch {
                machine.requestStop(.vcpuFault(vcpu: vcpu.id, reason: "\(error)"))
                return
            }
            switch exit {
            case let .io(port, size, isWrite, data):
                // String I/O (`rep outsb`) delivers several items in one exit.
                for start in stride(from: 0, to: data.count, by: size) {
                    let item = UnsafeMutableRawBufferPointer(rebasing: data[start..<start + size])
                    if isWrite {
                        machine.ioBus.write(address: UInt64(port), data: UnsafeRawBufferPointer(item))
                    } else {
                        machine.ioBus.read(address: UInt64(port), data: item)
                    }
                }
            case let .mmio(address, isWrite, data):
                if isWrite {
                    machine.mmioBus.write(address: address, data: UnsafeRawBufferPointer(data))
                } else {
                    machine.mmioBus.read(address: address, data: data)
                }
            case .interrupted:
                continue
            case .shutdown:
                machine.requestStop(.tripleFault(vcpu: vcpu.id))
            case let .systemEvent(type):
                switch type {
                case SystemEvent.shutdown: machine.requestStop(.powerOff)
                case SystemEvent.reset: machine.requestStop(.reset)
                default: machine.requestStop(.tripleFault(vcpu: vcpu.id))
                }
            case let .internalError(suberror, data, instruction):
                if suberror == Self.emulationFailure, HostProfile.current.emulatesBreakpoints, handleBreakpoint(instruction: instruction) { continue }
                machine.requestStop(.vcpuFault(vcpu: vcpu.id, reason: describeInternalError(suberror: suberror, data: data, instruction: instruction)))
            case .halt, .failedEntry, .unhandled:
                machine.requestStop(.vcpuFault(vcpu: vcpu.id, reason: "unexpected exit: \(exit)"))
            }
        }
    }

    /// On kvm_pvm, `int3` at CPL0 is an emulation failure. A real CPU would raise #BP with RIP after
    /// the int3, so do exactly that: step over the byte and inject vector 3 (docs/hosts.md).
    private func handleBreakpoint(instruction: [UInt8]) -> Bool {
        guard let state = try? instructionState(), state.bytes.first == Self.int3Opcode || instruction.first == Self.int3Opcode else {
            return false
        }
        do {
            var regs = state.regs
            regs.rip &+= 1
            try vcpu.setRegisters(regs)
            try vcpu.injectException(vector: Self.breakpointVector)
            machine.countBreakpointInjected()
            return true
        } catch {
            return false
        }
    }

    /// The registers and up to 15 instruction bytes at RIP, read through the guest's page tables.
    private func instructionState() throws -> (regs: kvm_regs, bytes: [UInt8]) {
        let regs = try vcpu.registers()
        let sregs = try vcpu.specialRegisters()
        guard let physical = try vcpu.translate(linear: sregs.cs.base &+ regs.rip) else { return (regs, []) }
        // Fetch what is readable: the instruction may end at the edge of RAM.
        var bytes: [UInt8] = []
        for offset in 0..<UInt64(15) {
            guard let byte = try? machine.memory.load(UInt8.self, at: GuestAddress(physical &+ offset)) else { break }
            bytes.append(byte)
        }
        return (regs, bytes)
    }

    private func describeInternalError(suberror: UInt32, data: [UInt64], instruction: [UInt8]) -> String {
        let state = try? instructionState()
        let bytes = instruction.isEmpty ? (state?.bytes ?? []) : instruction
        let hex = bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
        let rip = state.map { "0x" + String($0.regs.rip, radix: 16) } ?? "unknown"
        let what = suberror == Self.emulationFailure ? "KVM could not emulate an instruction" : "KVM internal error, suberror \(suberror)"
        var text = "\(what) at RIP \(rip), bytes [\(hex)]"
        if !data.isEmpty { text += ", data [\(data.map { "0x" + String($0, radix: 16) }.joined(separator: " "))]" }
        if HostProfile.current == .pagetableVirtualization {
            text += " (this host's kvm_pvm emulates guest kernel code and cannot run some instructions: see the README)"
        }
        return text
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
