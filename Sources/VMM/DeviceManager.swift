import ACPI
import Devices
import KVM

/// Creates the machine's devices, assigns their ports, addresses and interrupt lines, and says how
/// the DSDT describes each one.
struct DeviceManager {
    let serial: Serial8250
    let ioBus: Bus
    let mmioBus: Bus
    let acpiDevices: [ACPIDevice]

    init(vm: VirtualMachine, output: @escaping @Sendable (UInt8) -> Void,
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
        mmioBus = try Bus(name: "MMIO", windows: [])
        acpiDevices = [
            ACPIDevice(name: "COM1", hardwareID: .eisa("PNP0501"), uniqueID: 0, resources: [
                .ioPorts(base: Layout.serialPort, count: UInt8(Serial8250.windowLength)),
                .isaIRQ(UInt8(Layout.serialIRQ)),
            ]),
        ]
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
