#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// One virtual CPU and its `kvm_run` page. Runs on one thread at a time (its own); the other
/// threads only touch `requestExit()`, which is why it is `@unchecked Sendable`.
public final class VCPU: @unchecked Sendable {
    public let id: UInt32
    let fd: FileDescriptor
    private let shared: UnsafeMutablePointer<kvm_run>
    private let runSize: Int

    init(id: UInt32, fd: FileDescriptor, runMmapSize: Int) throws {
        guard runMmapSize >= MemoryLayout<kvm_run>.size else {
            throw KVMError("KVM_GET_VCPU_MMAP_SIZE (\(runMmapSize) bytes)", errno: EINVAL)
        }
        let pointer = mmap(nil, runMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.raw, 0)
        guard let pointer, pointer != MAP_FAILED else { throw KVMError("mmap(kvm_run)", errno: errno) }
        self.id = id
        self.fd = fd
        self.shared = pointer.bindMemory(to: kvm_run.self, capacity: 1)
        self.runSize = runMmapSize
    }

    deinit { munmap(shared, runSize) }

    /// Enters the guest until the next exit. EINTR is not an error: it is how another thread
    /// (through a signal) makes this one look at the machine's state.
    public func run() throws -> VCPUExit {
        if ebb_ioctl_none(fd.raw, EBB_KVM_RUN) < 0 {
            let error = errno
            if error == EINTR || error == EAGAIN {
                shared.pointee.immediate_exit = 0
                return .interrupted
            }
            throw KVMError("KVM_RUN(vcpu \(id))", errno: error)
        }
        return decodeExit()
    }

    /// Makes the next (or current, once a signal lands) `KVM_RUN` return at once.
    public func requestExit() {
        shared.pointee.immediate_exit = 1
    }

    private func decodeExit() -> VCPUExit {
        let raw = UnsafeMutableRawPointer(shared)
        switch Int32(shared.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let io = shared.pointee.io
            let size = Int(io.size)
            let bytes = size * Int(io.count)
            let offset = Int(io.data_offset)
            // The data offset comes from the kernel, but check it anyway before building a pointer.
            guard [1, 2, 4].contains(size), offset >= 0, bytes > 0, offset <= runSize - bytes else {
                return .unhandled(reason: UInt32(KVM_EXIT_IO))
            }
            let buffer = UnsafeMutableRawBufferPointer(start: raw + offset, count: bytes)
            return .io(port: io.port, size: size, isWrite: io.direction == UInt8(KVM_EXIT_IO_OUT), data: buffer)
        case KVM_EXIT_MMIO:
            let length = min(Int(shared.pointee.mmio.len), 8)
                        let buffer = UnsafeMutableRawBufferPointer(start: raw + Int(EBB_KVM_RUN_MMIO_DATA_OFFSET), count: length)
            return .mmio(address: shared.pointee.mmio.phys_addr, isWrite: shared.pointee.mmio.is_write != 0, data: buffer)
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: shared.pointee.system_event.type)
        case KVM_EXIT_INTERNAL_ERROR:
            let failureInfo = shared.pointee.internal
            let count = min(Int(failureInfo.ndata), 16)
            let data = withUnsafeBytes(of: failureInfo.data) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
            var instruction: [UInt8] = []
            let failure = shared.pointee.emulation_failure
            if failureInfo.suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION), count >= 3,
               failure.flags & UInt64(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
                let length = min(Int(failure.insn_size), 15)
                instruction = withUnsafeBytes(of: failure.insn_bytes) { Array($0.prefix(length)) }
            }
            return .internalError(suberror: failureInfo.suberror, data: data, instruction: instruction)
        case KVM_EXIT_FAIL_ENTRY:
            return .failedEntry(reason: shared.pointee.fail_entry.hardware_entry_failure_reason)
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unhandled(reason: shared.pointee.exit_reason)
        }
    }

    // MARK: Register state

    /// KVM's statistics of this vCPU (halt_wait_ns, exits, ...), read from outside the guest.
    public func statistics() throws -> KVMStatistics { try KVMStatistics(owner: fd) }

    public func registers() throws -> kvm_regs {
        var value = kvm_regs()
        try fd.ioctl("KVM_GET_REGS", EBB_KVM_GET_REGS, &value)
        return value
    }

    public func setRegisters(_ registers: kvm_regs) throws {
        var value = registers
        try fd.ioctl("KVM_SET_REGS", EBB_KVM_SET_REGS, &value)
    }

    public func specialRegisters() throws -> kvm_sregs {
        var value = kvm_sregs()
        try fd.ioctl("KVM_GET_SREGS", EBB_KVM_GET_SREGS, &value)
        return value
    }

    public func setSpecialRegisters(_ registers: kvm_sregs) throws {
        var value = registers
        try fd.ioctl("KVM_SET_SREGS", EBB_KVM_SET_SREGS, &value)
    }

    public func setFPU(_ fpu: kvm_fpu) throws {
        var value = fpu
        try fd.ioctl("KVM_SET_FPU", EBB_KVM_SET_FPU, &value)
    }

    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws {
        try CPUIDTable.withTable(entries) { header in
            _ = try fd.ioctl("KVM_SET_CPUID2", EBB_KVM_SET_CPUID2, header)
        }
    }

    /// Sets model-specific registers; fails unless KVM accepted every one.
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws {
        let header = MemoryLayout<kvm_msrs>.size
        let stride = MemoryLayout<kvm_msr_entry>.stride
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: header + msrs.count * stride, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: header + msrs.count * stride)
        buffer.storeBytes(of: UInt32(msrs.count), as: UInt32.self)
        for (position, msr) in msrs.enumerated() {
            var entry = kvm_msr_entry()
            entry.index = msr.index
            entry.data = msr.value
            buffer.storeBytes(of: entry, toByteOffset: header + position * stride, as: kvm_msr_entry.self)
        }
        let written = try fd.ioctl("KVM_SET_MSRS", EBB_KVM_SET_MSRS, buffer)
        guard written == msrs.count else {
            let rejected = msrs[Int(written)].index
            throw KVMError("KVM_SET_MSRS (MSR 0x\(String(rejected, radix: 16)) rejected)", errno: EINVAL)
        }
    }

    public func localAPIC() throws -> kvm_lapic_state {
        var value = kvm_lapic_state()
        try fd.ioctl("KVM_GET_LAPIC", EBB_KVM_GET_LAPIC, &value)
        return value
    }

    public func setLocalAPIC(_ state: kvm_lapic_state) throws {
        var value = state
        try fd.ioctl("KVM_SET_LAPIC", EBB_KVM_SET_LAPIC, &value)
    }

    /// Queues exception `vector` for delivery at the next entry, as if the current instruction raised it.
    public func injectException(vector: UInt8) throws {
        var events = kvm_vcpu_events()
        try fd.ioctl("KVM_GET_VCPU_EVENTS", EBB_KVM_GET_VCPU_EVENTS, &events)
        events.exception.injected = 1
        events.exception.nr = vector
        events.exception.has_error_code = 0
        events.exception.error_code = 0
        events.flags = 0
        try fd.ioctl("KVM_SET_VCPU_EVENTS", EBB_KVM_SET_VCPU_EVENTS, &events)
    }

    /// Guest-physical address of linear `address` under the vCPU's current paging, or nil if unmapped.
    public func translate(linear address: UInt64) throws -> UInt64? {
        var translation = kvm_translation()
        translation.linear_address = address
        try fd.ioctl("KVM_TRANSLATE", EBB_KVM_TRANSLATE, &translation)
        return translation.valid != 0 ? translation.physical_address : nil
    }
}
