import ACPI
import Devices
import GuestMemory
import KVM
import Synchronization
import Virtio

/// One virtio device as the machine holds it: where it sits, its transport (which owns the device
/// model) and the thread that serves it.
struct AttachedVirtioDevice: Sendable {
    let slot: VirtioSlot
    let transport: VirtioMMIOTransport
    let eventLoop: DeviceEventLoop
}

/// Creates the machine's devices, assigns their ports, addresses and interrupt lines, and says how
/// the DSDT describes each one.
struct DeviceManager {
    let serial: Serial8250
    let keyboard: I8042Device
    /// The devices' delayed work; `Machine.run` starts it.
    let timers: TimerThread
    let ioBus: Bus
    let mmioBus: Bus
    let acpiDevices: [ACPIDevice]
    let virtioDevices: [AttachedVirtioDevice]

    init(vm: VirtualMachine, memory: GuestMemory, devices: [VirtioDeviceConfiguration],
         output: @escaping @Sendable (UInt8) -> Void,
         onSystemRequest: @escaping @Sendable (SystemRequest) -> Void) throws {
        let serial = Serial8250(output: output, interrupt: {
            // A failed interrupt cannot be reported to the guest; the UART still works by polling.
            do { try vm.pulseInterruptLine(Layout.serialIRQ) } catch { SerialInterruptFailure.report(error) }
        })
        self.serial = serial
        let timers = TimerThread()
        self.timers = timers
        let keyboard = I8042Device(onRequest: onSystemRequest, interrupt: {
            do { try vm.pulseInterruptLine(Layout.keyboardIRQ) } catch { KeyboardInterruptFailure.report(error) }
        }, timer: timers)
        self.keyboard = keyboard
        ioBus = try Bus(name: "port I/O", windows: [
            .init(base: UInt64(Layout.serialPort), length: Serial8250.windowLength, device: serial),
            .init(base: UInt64(Layout.i8042Port), length: I8042Device.windowLength, device: keyboard),
            .init(base: UInt64(Layout.acpiPowerPort), length: ACPIPowerDevice.windowLength, device: ACPIPowerDevice(onRequest: onSystemRequest)),
        ])
        var acpiDevices = [
            ACPIDevice(name: "COM1", hardwareID: .eisa("PNP0501"), uniqueID: 0, resources: [
                .ioPorts(base: Layout.serialPort, count: UInt8(Serial8250.windowLength)),
                .isaIRQ(UInt8(Layout.serialIRQ)),
            ]),
            // Linux's i8042 driver finds the controller by this PNP id (with no AUX device beside
            // it, it probes no mouse): its data and command ports and IRQ 1.
            ACPIDevice(name: "KBD0", hardwareID: .eisa("PNP0303"), uniqueID: 0, resources: [
                .ioPorts(base: Layout.i8042Port, count: 1),
                .ioPorts(base: Layout.i8042Port + UInt16(I8042Device.commandOffset), count: 1),
                .isaIRQ(UInt8(Layout.keyboardIRQ)),
            ]),
        ]
        var allocator = DeviceResourceAllocator()
        var attached: [AttachedVirtioDevice] = []
        for configuration in devices {
            let slot = try allocator.allocate()
            attached.append(try Self.attach(configuration.makeDevice(), at: slot, vm: vm, memory: memory))
            acpiDevices.append(Self.acpiDevice(for: slot))
        }
        mmioBus = try Bus(name: "MMIO", windows: attached.map {
            .init(base: $0.slot.mmioBase, length: VirtioMMIORegister.windowLength, device: $0.transport)
        })
        self.acpiDevices = acpiDevices
        virtioDevices = attached
    }

    /// How Linux's virtio_mmio finds the device: "LNRO0005" with its window and interrupt.
    static func acpiDevice(for slot: VirtioSlot) -> ACPIDevice {
        ACPIDevice(name: slot.acpiName, hardwareID: .string("LNRO0005"), uniqueID: UInt64(slot.index), resources: [
            .memory32Fixed(base: UInt32(slot.mmioBase), sizeBytes: UInt32(VirtioMMIORegister.windowLength), writable: true),
            .interrupt(slot.gsi, edgeTriggered: true, activeLow: false),
        ])
    }

    /// Connects a virtio device to KVM: its interrupt through an irqfd (edge, like its ACPI
    /// description), each queue's QueueNotify write through an ioeventfd served by the device's
    /// event thread. Where KVM refuses an ioeventfd, or the device serves that queue on the vCPU
    /// (`VirtioDevice.servesOnVCPU`), the notify write exits to the vCPU thread.
    static func attach(_ device: sending any VirtioDevice, at slot: VirtioSlot, vm: VirtualMachine, memory: GuestMemory) throws -> AttachedVirtioDevice {
        let interrupt = try EventNotifier()
        try vm.attachInterruptEvent(interrupt.fd, gsi: slot.gsi)
        let name = device.name
        let queueCount = device.queueCount(features: device.offeredFeatures)
        let transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: { interrupt.signal() },
                                            onBroken: { reportFromGuest("\(name): device needs reset: \($0)", level: .warning) },
                                            onDriverReady: { reportFromGuest("\(name): driver ready, features 0x\(String($0, radix: 16))") })
        var notifiers: [EventNotifier] = []
        let notifyAddress = slot.mmioBase + VirtioMMIORegister.queueNotify
        for queue in 0..<queueCount {
            let notifier = try EventNotifier()
            notifiers.append(notifier)
            // A queue the device serves on the vCPU gets no ioeventfd: its notify write exits.
            guard !transport.queuesServedOnVCPU.contains(queue) else { continue }
            do {
                try vm.attachWriteEvent(notifier.fd, mmioAddress: notifyAddress, length: 4, value: UInt64(queue))
            } catch {
                report("\(name): no ioeventfd for queue \(queue) (\(error)); notifications exit to the vCPU thread")
            }
        }
        return AttachedVirtioDevice(slot: slot, transport: transport,
                                    eventLoop: try DeviceEventLoop(transport: transport, queueNotifiers: notifiers))
    }

    /// The ACPI tables describing this machine, to be copied to `Layout.acpiTablesAddress`.
    func acpiTables(cpuCount: Int) -> ACPITables {
        let dsdt = makeDSDT(devices: acpiDevices, sleepTypeS5: ACPIPowerDevice.softOffSleepType)
        let madt = MADT(localAPICAddress: UInt32(Layout.localAPICAddress),
                        apicIDs: (0..<cpuCount).map { UInt8($0) },
                        ioAPIC: (id: UInt8(cpuCount), address: UInt32(Layout.ioAPICAddress), gsiBase: 0))
        let port = Layout.acpiPowerPort
        return ACPITables(baseAddress: Layout.acpiTablesAddress, dsdt: dsdt, makeFADT: { dsdtAddress in
            FADT(dsdtAddress: dsdtAddress,
                 sleepControl: .ioPort(port + UInt16(ACPIPowerDevice.Register.sleepControl)),
                 sleepStatus: .ioPort(port + UInt16(ACPIPowerDevice.Register.sleepStatus)),
                 resetRegister: .ioPort(port + UInt16(ACPIPowerDevice.Register.reset)),
                 resetValue: ACPIPowerDevice.resetValue)
        }, madt: madt)
    }
}

/// The keyboard's interrupt could not be raised: said once; Ctrl+Alt+Del then waits for a guest
/// that polls the controller.
enum KeyboardInterruptFailure {
    private static let reported = Atomic<Bool>(false)

    static func report(_ error: any Error) {
        guard !reported.exchange(true, ordering: .relaxed) else { return }
        VMM.report("i8042: cannot raise IRQ \(Layout.keyboardIRQ): \(error)", level: .warning)
    }
}

/// The serial port's interrupt could not be raised (KVM refused the IRQ line): said once, since
/// it would repeat with every byte; the UART still works for a guest that polls it.
enum SerialInterruptFailure {
    private static let reported = Atomic<Bool>(false)

    static func report(_ error: any Error) {
        guard !reported.exchange(true, ordering: .relaxed) else { return }
        VMM.report("serial port: cannot raise IRQ \(Layout.serialIRQ): \(error); the guest must poll the UART")
    }
}
