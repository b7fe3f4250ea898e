import ACPI
import Devices
import GuestMemory
import KVM
import Virtio

/// Creates the machine's devices, assigns their ports, addresses and interrupt lines, and says how
/// the DSDT describes each one.
struct DeviceManager {
    let serial: Serial8250
    let ioBus: Bus
    let mmioBus: Bus
    let acpiDevices: [ACPIDevice]
    let balloon: (device: BalloonDevice, transport: VirtioMMIOTransport)?
    let eventLoops: [VirtioEventLoop]

    init(vm: VirtualMachine, memory: GuestMemory, balloonOptions: BalloonDevice.Options?,
         output: @escaping @Sendable (UInt8) -> Void,
         onSystemRequest: @escaping @Sendable (SystemRequest) -> Void) throws {
        let serial = Serial8250(output: output, interrupt: {
            // A failed interrupt cannot be reported to the guest; the UART still works by polling.
            try? vm.pulseInterruptLine(Layout.serialIRQ)
        })
        self.serial = serial
        ioBus = try Bus(name: "port I/O", windows: [
            .init(base: UInt64(Layout.serialPort), length: Serial8250.windowLength, device: serial),
            .init(base: UInt64(Layout.i8042Port), length: I8042Device.windowLength, device: I8042Device(onRequest: onSystemRequest)),
            .init(base: UInt64(Layout.acpiPowerPort), length: ACPIPowerDevice.windowLength, device: ACPIPowerDevice(onRequest: onSystemRequest)),
        ])
        var acpiDevices = [
            ACPIDevice(name: "COM1", hardwareID: .eisa("PNP0501"), uniqueID: 0, resources: [
                .ioPorts(base: Layout.serialPort, count: UInt8(Serial8250.windowLength)),
                .isaIRQ(UInt8(Layout.serialIRQ)),
            ]),
        ]
        var mmioWindows: [Bus.Window] = []
        var eventLoops: [VirtioEventLoop] = []
        if let balloonOptions {
            let balloon = BalloonDevice(options: balloonOptions)
            let (transport, loop) = try Self.attachVirtio(balloon, slot: 0, vm: vm, memory: memory)
            mmioWindows.append(.init(base: Self.virtioAddress(slot: 0), length: VirtioMMIORegister.windowLength, device: transport))
            acpiDevices.append(Self.virtioACPIDevice(slot: 0))
            eventLoops.append(loop)
            self.balloon = (balloon, transport)
        } else {
            self.balloon = nil
        }
        mmioBus = try Bus(name: "MMIO", windows: mmioWindows)
        self.acpiDevices = acpiDevices
        self.eventLoops = eventLoops
    }

    static func virtioAddress(slot: Int) -> UInt64 { Layout.virtioMMIOBase + UInt64(slot) * Layout.virtioMMIOStride }
    static func virtioIRQ(slot: Int) -> UInt32 { Layout.firstDeviceIRQ + UInt32(slot) }

    /// How Linux's virtio_mmio finds the device: "LNRO0005" with its window and interrupt.
    static func virtioACPIDevice(slot: Int) -> ACPIDevice {
        ACPIDevice(name: "VR0\(slot)", hardwareID: .string("LNRO0005"), uniqueID: UInt64(slot), resources: [
            .memory32Fixed(base: UInt32(virtioAddress(slot: slot)), sizeBytes: UInt32(VirtioMMIORegister.windowLength), writable: true),
            .interrupt(virtioIRQ(slot: slot), edgeTriggered: true, activeLow: false),
        ])
    }

    /// Connects a virtio device to KVM: its interrupt through an irqfd (edge, like its ACPI
    /// description), each queue's QueueNotify write through an ioeventfd served by an event thread.
    /// Where KVM refuses an ioeventfd, the notify write exits to the vCPU thread instead.
    static func attachVirtio(_ device: any VirtioDevice, slot: Int, vm: VirtualMachine, memory: GuestMemory) throws -> (VirtioMMIOTransport, VirtioEventLoop) {
        let interrupt = try EventNotifier()
        try vm.attachInterruptEvent(interrupt.fd, gsi: virtioIRQ(slot: slot))
        let name = device.deviceID == BalloonDevice.id ? "virtio-balloon" : "virtio device \(device.deviceID)"
        let transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: { interrupt.signal() },
                                            onBroken: { report("\(name): device needs reset: \($0)") },
                                            onDriverReady: { report("\(name): driver ready, features 0x\(String($0, radix: 16))") })
        var notifiers: [EventNotifier] = []
        let notifyAddress = virtioAddress(slot: slot) + VirtioMMIORegister.queueNotify
        for queue in 0..<device.queueCount(features: device.offeredFeatures) {
            let notifier = try EventNotifier()
            do {
                try vm.attachWriteEvent(notifier.fd, mmioAddress: notifyAddress, length: 4, value: UInt64(queue))
            } catch {
                report("\(name): no ioeventfd for queue \(queue) (\(error)); notifications exit to the vCPU thread")
            }
            notifiers.append(notifier)
        }
        return (transport, try VirtioEventLoop(transport: transport, queueNotifiers: notifiers))
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
