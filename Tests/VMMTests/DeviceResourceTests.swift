import ACPI
import LinuxBoot
import Testing
@testable import VMM

@Suite struct DeviceResourceTests {
    /// Slots for 1 to the maximum number of devices: distinct windows, GSIs and four-character ACPI
    /// names (the 11th device once got the 2nd one's "VR01"), and no GSI the IOAPIC lacks.
    @Test func everyDeviceCountGetsDistinctWindowsGSIsAndNames() throws {
        for count in 1...DeviceResourceAllocator.maximumDevices {
            var allocator = DeviceResourceAllocator()
            let slots = try (0..<count).map { _ in try allocator.allocate() }
            #expect(Set(slots.map(\.mmioBase)).count == count)
            #expect(Set(slots.map(\.gsi)).count == count)
            #expect(Set(slots.map(\.acpiName)).count == count)
            for slot in slots {
                #expect(slot.acpiName.count == 4 && slot.acpiName.hasPrefix("VR"), "\(slot.acpiName)")
                #expect(slot.acpiName.allSatisfy { $0.isUppercase || $0.isNumber })
                #expect(slot.gsi >= Layout.firstDeviceIRQ && slot.gsi < Layout.ioAPICPins)
                #expect(slot.gsi != Layout.serialIRQ)
                #expect(slot.mmioBase >= Layout.virtioMMIOBase && slot.mmioBase + Layout.virtioMMIOStride <= Layout.ioAPICAddress)
            }
        }
        var allocator = DeviceResourceAllocator()
        let first = try allocator.allocate()
        // The first device keeps what the balloon always had.
        #expect(first == VirtioSlot(index: 0, mmioBase: 0xd000_0000, gsi: 5, acpiName: "VR00"))
        for _ in 1..<DeviceResourceAllocator.maximumDevices { _ = try allocator.allocate() }
        #expect(throws: ResourceError.tooManyDevices(maximum: DeviceResourceAllocator.maximumDevices)) { try allocator.allocate() }
    }

    /// Each device's GSI is the one its DSDT entry names and one the MP table routes to that pin.
    @Test func theDSDTAndTheMPTableAgreeOnEveryDeviceGSI() throws {
        var allocator = DeviceResourceAllocator()
        let slots = try (0..<DeviceResourceAllocator.maximumDevices).map { _ in try allocator.allocate() }
        let table = Array(MPTable(localAPICAddress: 0xfee0_0000, apicIDs: [0], ioAPIC: (id: 1, address: 0xfec0_0000),
                                  ioAPICPins: UInt8(Layout.ioAPICPins), cpuSignature: 0, cpuFeatures: 0)
            .bytes(at: 0xf0000).dropFirst(MPTable.floatingPointerBytes))
        var routedPins: [UInt8: UInt8] = [:]   // pin -> source IRQ, for vectored IO interrupts
        var offset = 44
        while offset < table.count {
            if table[offset] == 3, table[offset + 1] == 0 { routedPins[table[offset + 7]] = table[offset + 5] }
            offset += table[offset] == 0 ? 20 : 8
        }
        for slot in slots {
            let device = DeviceManager.acpiDevice(for: slot)
            #expect(device.name == slot.acpiName)
            #expect(device.resources.contains(.interrupt(slot.gsi, edgeTriggered: true, activeLow: false)))
            #expect(routedPins[UInt8(slot.gsi)] == UInt8(slot.gsi), "GSI \(slot.gsi) is not routed by the MP table")
        }
    }
}
