import Testing
import Virtio
import VMM
@testable import API

/// Firecracker's --config-file format, applied through the same setters as the command line.
@Suite struct ConfigFileTests {
    func resources(_ json: String) throws -> MachineResources {
        var resources = MachineResources()
        try decodeBody(ConfigFile.self, from: Array(json.utf8)).apply(to: &resources)
        return resources
    }

    @Test func aFirecrackerConfigSetsTheMachine() throws {
        let resources = try resources("""
            {"boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0", "initrd_path": "/i"},
             "machine-config": {"vcpu_count": 2, "mem_size_mib": 1024, "smt": false, "huge_pages": "None"},
             "balloon": {"amount_mib": 64, "deflate_on_oom": false, "stats_polling_interval_s": 5},
             "drives": [], "network-interfaces": []}
            """)
        let configuration = try resources.configuration()
        #expect(configuration.kernelPath == "/k" && configuration.initrdPath == "/i")
        #expect(configuration.commandLine == "console=ttyS0")
        #expect(configuration.cpuCount == 2 && configuration.memoryBytes == 1 << 30)
        #expect(!configuration.hugePages)
        #expect(configuration.balloon == BalloonDevice.Options(freePageReporting: true, deflateOnOOM: false,
                                                                statisticsInterval: .seconds(5), targetBytes: 64 << 20))
    }

    @Test func withoutABalloonSectionThereIsNoBalloonAndDefaultsStand() throws {
        let configuration = try resources(#"{"boot-source": {"kernel_image_path": "/k"}}"#).configuration()
        #expect(configuration.balloon == nil)
        #expect(configuration.memoryBytes == MachineResources.Defaults.memoryBytes)
        #expect(configuration.cpuCount == MachineResources.Defaults.cpuCount)
    }

    @Test func unknownFieldsMissingFieldsAndUnsupportedSectionsAreOneLineErrors() {
        #expect(throws: BodyError("unknown field 'kernel' in 'boot-source'")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k", "kernel": 1}}"#)
        }
        #expect(throws: BodyError("unknown field 'boot_source'")) { try resources(#"{"boot_source": {}}"#) }
        #expect(throws: BodyError("missing field 'boot-source.kernel_image_path'")) { try resources(#"{"boot-source": {}}"#) }
        #expect(throws: BodyError("field 'machine-config.vcpu_count' has the wrong type")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": "two"}}"#)
        }
        #expect(throws: ResourcesError.invalid("'drives' is not supported by Ebb yet")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "drives": [{"drive_id": "root"}]}"#)
        }
        #expect(throws: ResourcesError.invalid("0 vCPUs requested: Ebb supports 1 to 254")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 0, "mem_size_mib": 128}}"#)
        }
        #expect(throws: ResourcesError.balloonTargetTooLarge(target: 1 << 30, memory: 512 << 20)) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 1024, "deflate_on_oom": true}}"#)
        }
        #expect(throws: ResourcesError.self) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 0, "deflate_on_oom": true, "free_page_hinting": true}}"#)
        }
    }
}
