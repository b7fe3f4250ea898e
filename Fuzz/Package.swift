// swift-tools-version: 6.1
// Ebb's fuzz targets: one executable per parser a guest or a client feeds, built with libFuzzer and
// the address sanitizer by `scripts/fuzz` (which passes -sanitize=fuzzer,address). Each target's main.swift hands its
// function to libFuzzer's driver (SwiftPM links every executable to its module's own main).
// Apart from the main package so that `swift build` there never needs libFuzzer.
import PackageDescription

let targets = ["split-queue", "mmio-transport", "balloon", "block", "net", "boot-image", "api-request", "config-file"]

let package = Package(
    name: "EbbFuzz",
    dependencies: [.package(name: "Ebb", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: ["CFuzz", .product(name: "EbbModules", package: "Ebb")]),
        // libFuzzer's driver entry, which Swift's Glibc does not declare.
        .target(name: "CFuzz"),
    ] + targets.map { name in
        // lld: gold fails with an internal error on libFuzzer's archive (format_file_lineno).
        .executableTarget(name: name, dependencies: ["FuzzSupport", "CFuzz", .product(name: "EbbModules", package: "Ebb")],
                          linkerSettings: [.unsafeFlags(["-use-ld=lld"])])
    }
)
