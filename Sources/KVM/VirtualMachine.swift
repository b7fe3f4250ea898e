#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// A KVM virtual machine: memory slots, the in-kernel interrupt controllers, interrupt lines and vCPUs.
public final class VirtualMachine: Sendable {
    let fd: FileDescriptor
    let runMmapSize: Int

    init(fd: FileDescriptor, runMmapSize: Int) {
        self.fd = fd
        self.runMmapSize = runMmapSize
    }

    /// Where KVM keeps the three-page TSS it needs for real-mode emulation on Intel (`KVM_SET_TSS_ADDR`).
    public func setTSSAddress(_ address: UInt64) throws {
        _ = try fd.ioctl("KVM_SET_TSS_ADDR", EBB_KVM_SET_TSS_ADDR, UInt(address))
    }

    /// Where KVM keeps the identity page table for unrestricted guests (`KVM_SET_IDENTITY_MAP_ADDR`).
    public func setIdentityMapAddress(_ address: UInt64) throws {
        var value = address
        try fd.ioctl("KVM_SET_IDENTITY_MAP_ADDR", EBB_KVM_SET_IDENTITY_MAP_ADDR, &value)
    }

    /// The in-kernel PIC, IOAPIC and local APICs (`KVM_CREATE_IRQCHIP`).
    public func createInterruptController() throws {
        _ = try fd.ioctl("KVM_CREATE_IRQCHIP", EBB_KVM_CREATE_IRQCHIP)
    }

    /// The in-kernel i8254 timer (`KVM_CREATE_PIT2`).
    public func createPIT() throws {
        var config = kvm_pit_config()
        try fd.ioctl("KVM_CREATE_PIT2", EBB_KVM_CREATE_PIT2, &config)
    }

    /// Maps `sizeBytes` of host memory at `hostAddress` into the guest at `guestAddress`.
    public func setMemoryRegion(slot: UInt32, guestAddress: UInt64, sizeBytes: UInt64, hostAddress: UInt64) throws {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: 0, guest_phys_addr: guestAddress, memory_size: sizeBytes, userspace_addr: hostAddress)
        try fd.ioctl("KVM_SET_USER_MEMORY_REGION(slot \(slot))", EBB_KVM_SET_USER_MEMORY_REGION, &region)
    }

    /// Drives interrupt line `gsi` of the in-kernel PIC/IOAPIC to `level` (`KVM_IRQ_LINE`).
    public func setInterruptLine(_ gsi: UInt32, high level: Bool) throws {
        var line = kvm_irq_level()
        line.irq = gsi
        line.level = level ? 1 : 0
        try fd.ioctl("KVM_IRQ_LINE", EBB_KVM_IRQ_LINE, &line)
    }

    /// An edge on `gsi`: high then low.
    public func pulseInterruptLine(_ gsi: UInt32) throws {
        try setInterruptLine(gsi, high: true)
        try setInterruptLine(gsi, high: false)
    }

    /// Signalling `eventFD` raises `gsi` in the kernel, with no exit to Ebb (`KVM_IRQFD`).
    public func attachInterruptEvent(_ eventFD: Int32, gsi: UInt32) throws {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD)
        request.gsi = gsi
        try fd.ioctl("KVM_IRQFD(gsi \(gsi))", EBB_KVM_IRQFD, &request)
    }

    /// A guest write of `length` bytes at MMIO `address` signals `eventFD` in the kernel, without an
    /// exit to Ebb's vCPU thread (`KVM_IOEVENTFD`). With `value`, only writes of that value match.
    public func attachWriteEvent(_ eventFD: Int32, mmioAddress address: UInt64, length: UInt32, value: UInt64?) throws {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = eventFD
        if let value {
            request.datamatch = value
            request.flags = UInt32(1 << kvm_ioeventfd_flag_nr_datamatch)
        }
        try fd.ioctl("KVM_IOEVENTFD(0x\(String(address, radix: 16)))", EBB_KVM_IOEVENTFD, &request)
    }

    /// The guest TSC frequency KVM uses, in kHz, or nil when this KVM cannot say.
    public func tscKHz() -> UInt32? {
        guard let value = try? fd.ioctl("KVM_GET_TSC_KHZ", EBB_KVM_GET_TSC_KHZ), value > 0 else { return nil }
        return UInt32(value)
    }

    public func createVCPU(id: UInt32) throws -> VCPU {
        let raw = try fd.ioctl("KVM_CREATE_VCPU(\(id))", EBB_KVM_CREATE_VCPU, UInt(id))
        return try VCPU(id: id, fd: FileDescriptor(raw: raw), runMmapSize: runMmapSize)
    }
}
