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
        var resources = try resources("""
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
        // The agentless reclaim (on by default) reads the guest's statistics every second.
        #expect(configuration.balloon == BalloonDevice.Options(freePageReporting: true, deflateOnOOM: false,
                                                                statisticsInterval: .seconds(1), targetBytes: 64 << 20))
        resources.idleReclaim = nil
        #expect(try resources.configuration().balloon?.statisticsInterval == .seconds(5), "without it, the file's interval stands")
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
        #expect(throws: ResourcesError.invalid("'vsock' is not supported by Ebb yet")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "vsock": {"guest_cid": 3, "uds_path": "/v"}}"#)
        }
        #expect(throws: BodyError("missing field 'network-interfaces.Index 0.host_dev_name'")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "network-interfaces": [{"iface_id": "eth0"}]}"#)
        }
        #expect(throws: ResourcesError.invalid("network interface 'eth0': rate limiters are not supported")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}}]}"#)
        }
        #expect(throws: ResourcesError.invalid("network interface 'eth0': guest_mac 'nope' is not a unicast MAC address")) {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "nope"}]}"#)
        }
        #expect(throws: BodyError("missing field 'drives.Index 0.is_root_device'")) {
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

    /// Firecracker's drives: the root drive is /dev/vda and named on the command line, as
    /// Firecracker does it; the drive_id is the serial.
    @Test func drivesBecomeDisksWithTheRootFirst() throws {
        let resources = try resources("""
            {"boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0"},
             "drives": [{"drive_id": "data", "path_on_host": "/d.img", "is_root_device": false, "is_read_only": true},
                        {"drive_id": "rootfs", "path_on_host": "/r.img", "is_root_device": true, "is_read_only": false,
                         "cache_type": "Unsafe", "io_engine": "Sync", "rate_limiter": null}]}
            """)
        let configuration = try resources.configuration()
        #expect(configuration.commandLine == "console=ttyS0 root=/dev/vda rw")
        // No balloon section, no balloon: the disks are all the devices.
        #expect(configuration.devices.count == 2)
        let disks = configuration.devices.compactMap { device -> BlockDevice.Options? in
            if case let .block(options) = device { return options }
            return nil
        }
        #expect(disks == [BlockDevice.Options(path: "/r.img", serial: "rootfs"),
                          BlockDevice.Options(path: "/d.img", readOnly: true, serial: "data")])
    }

    @Test func aRootDriveWithAPartUUIDAndOneOnTheCommandLine() throws {
        let partuuid = try resources("""
            {"boot-source": {"kernel_image_path": "/k"},
             "drives": [{"drive_id": "r", "path_on_host": "/r.img", "is_root_device": true, "is_read_only": true, "partuuid": "0eaa91a0-01"}]}
            """)
        #expect(try partuuid.configuration().commandLine == "root=PARTUUID=0eaa91a0-01 ro")
        let named = try resources("""
            {"boot-source": {"kernel_image_path": "/k", "boot_args": "root=/dev/vdb1"},
             "drives": [{"drive_id": "r", "path_on_host": "/r.img", "is_root_device": true}]}
            """)
        #expect(try named.configuration().commandLine == "root=/dev/vdb1")
    }

    @Test func drivesEbbCannotHonourAreRefused() {
        func drive(_ fields: String) throws {
            try resources(#"{"boot-source": {"kernel_image_path": "/k"}, "drives": [{"drive_id": "d", "is_root_device": false, "# + fields + "}]}")
        }
        #expect(throws: ResourcesError.invalid("drive 'd': rate_limiter is not supported")) {
            try drive(#""path_on_host": "/d.img", "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}"#)
        }
        #expect(throws: ResourcesError.invalid("drive 'd': vhost-user drives (socket) are not supported")) { try drive(#""socket": "/s""#) }
        #expect(throws: ResourcesError.invalid("drive 'd': path_on_host is missing")) { try drive(#""is_read_only": true"#) }
        #expect(throws: ResourcesError.invalid("drive 'd': cache_type 'None' is not one of Unsafe, Writeback")) {
            try drive(#""path_on_host": "/d.img", "cache_type": "None""#)
        }
        #expect(throws: BodyError("unknown field 'readonly' in 'drives.Index 0'")) { try drive(#""path_on_host": "/d.img", "readonly": true"#) }
        #expect(throws: ResourcesError.invalid("a root drive already exists ('a')")) {
            try resources("""
                {"boot-source": {"kernel_image_path": "/k"},
                 "drives": [{"drive_id": "a", "path_on_host": "/a", "is_root_device": true}, {"drive_id": "b", "path_on_host": "/b", "is_root_device": true}]}
                """)
        }
    }
}
