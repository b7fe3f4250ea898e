import Testing
import Virtio
@testable import VMM

@Suite struct MachineResourcesTests {
    @Test func defaultsLiveInOnePlaceAndANewMachineHasABalloon() throws {
        var resources = MachineResources()
        #expect(throws: ResourcesError.missing("a kernel (boot source)")) { try resources.configuration() }
        try resources.setBootSource(kernelPath: "/k")
        let configuration = try resources.configuration()
        #expect(configuration.memoryBytes == MachineResources.Defaults.memoryBytes)
        #expect(configuration.cpuCount == MachineResources.Defaults.cpuCount)
        // The agentless reclaim is on, and asks the balloon for statistics every second.
        var balloon = MachineResources.Defaults.balloon
        balloon.statisticsInterval = MachineResources.Defaults.reclaimStatisticsInterval
        #expect(configuration.devices == [.balloon(balloon)])
        #expect(configuration.idleReclaim == MachineResources.Defaults.idleReclaim)
        #expect(configuration.hugePages == MachineResources.Defaults.hugePages)
    }

    @Test func settersRefuseWhatNoMachineCouldBe() throws {
        var resources = MachineResources()
        #expect(throws: ResourcesError.self) { try resources.setBootSource(kernelPath: "") }
        #expect(throws: ResourcesError.self) { try resources.setMachine(cpuCount: 0) }
        #expect(throws: ResourcesError.self) { try resources.setMachine(cpuCount: 255) }
        #expect(throws: ResourcesError.self) { try resources.setMachine(memoryBytes: 8 << 20) }
        #expect(throws: ResourcesError.self) { try resources.setMachine(memoryBytes: (64 << 20) + 1) }
        try resources.setBalloon(BalloonDevice.Options(targetBytes: 256 << 20))
        // Memory may not shrink under the balloon's target, nor the target grow past the memory.
        #expect(throws: ResourcesError.balloonTargetTooLarge(target: 256 << 20, memory: 128 << 20)) {
            try resources.setMachine(memoryBytes: 128 << 20)
        }
        #expect(throws: ResourcesError.self) { try resources.setBalloon(BalloonDevice.Options(targetBytes: 1 << 30)) }
        try resources.setBalloon(nil)
        try resources.setMachine(cpuCount: 4, memoryBytes: 128 << 20)
        try resources.setBootSource(kernelPath: "/k")
        #expect(try resources.configuration().devices.isEmpty)
    }
}
