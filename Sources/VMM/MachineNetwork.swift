import Virtio

/// One network interface as the summary and the API see it.
public struct NetworkInterfaceStatus: Sendable {
    public let tap: String
    public let mac: MACAddress?
    public let counters: NetDevice.Counters
    /// Why the guest broke the device, if it did (DEVICE_NEEDS_RESET).
    public let brokenReason: String?
}

extension Machine {
    /// Every network interface, in order (the first is the guest's eth0).
    public var networkInterfaces: [NetworkInterfaceStatus] {
        virtioDevices.compactMap { attached in
            attached.transport.withDevice(NetDevice.self) { nic in
                (tap: nic.options.tap, mac: nic.options.mac, counters: nic.counters)
            }.map { NetworkInterfaceStatus(tap: $0.tap, mac: $0.mac, counters: $0.counters, brokenReason: attached.transport.brokenReason) }
        }
    }
}
