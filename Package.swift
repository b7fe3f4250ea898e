// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Ebb",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ebb", targets: ["ebb"]),
        // Ebb's modules for the fuzz targets (Fuzz/Package.swift), which build apart with libFuzzer.
        .library(name: "EbbModules", targets: ["GuestMemory", "Devices", "Virtio", "LinuxBoot", "VMM", "API"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        // The only C: fixed-arity ioctl wrappers and ioctl numbers from <linux/kvm.h>.
        .target(name: "CKVM"),
        .target(name: "KVM", dependencies: ["CKVM"]),
        .target(name: "GuestMemory", dependencies: ["CKVM"]),
        // seccomp-bpf filters, compiled by Debian's libseccomp; the SIGSYS reporter is C because it
        // runs in a signal handler.
        .target(name: "CSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),
        .target(name: "Seccomp", dependencies: ["CSeccomp"]),
        // Little-endian integers and checksums, for everything that lays out guest structures.
        .target(name: "ByteOrder"),
        .target(name: "LinuxBoot", dependencies: ["GuestMemory", "ByteOrder"]),
        .target(name: "ACPI", dependencies: ["ByteOrder"]),
        .target(name: "Devices", dependencies: ["ByteOrder"]),
        .target(name: "Virtio", dependencies: ["CKVM", "GuestMemory", "Devices", "ByteOrder", "Seccomp"]),
        .target(name: "VMM", dependencies: ["CKVM", "KVM", "Seccomp", "GuestMemory", "ByteOrder", "LinuxBoot", "ACPI", "Devices", "Virtio"]),
        // The control API (Firecracker's conventions) on a Unix socket.
        .target(name: "API", dependencies: [
            "VMM", "Virtio",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "ebb", dependencies: [
            "VMM", "API",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GuestMemoryTests", dependencies: ["GuestMemory"]),
        .testTarget(name: "SeccompTests", dependencies: ["Seccomp", "VMM"]),
        // Boot images built in memory, for the LinuxBoot and VMM tests.
        .target(name: "BootImageFixtures", path: "Tests/BootImageFixtures"),
        .testTarget(name: "LinuxBootTests", dependencies: ["LinuxBoot", "GuestMemory", "BootImageFixtures"]),
        .testTarget(name: "ACPITests", dependencies: ["ACPI"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices"]),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "GuestMemory"]),
        .testTarget(name: "APITests", dependencies: ["API"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "KVM", "GuestMemory", "LinuxBoot", "BootImageFixtures"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VMM", "API"]),
    ]
)
