import Virtio

/// Parses `--disk PATH[,readonly=on|off][,cache=none|writeback][,serial=ID]` as QEMU's `-drive`
/// writes its options: comma-separated, a doubled comma (",,") standing for a comma in the path.
func parseDisk(_ text: String) throws(ArgumentError) -> BlockDevice.Options {
    var fields: [String] = []
    var current = ""
    var characters = text.makeIterator()
    var pending = characters.next()
    while let character = pending {
        pending = characters.next()
        if character == "," {
            if pending == "," {
                current.append(",")
                pending = characters.next()
            } else {
                fields.append(current)
                current = ""
            }
        } else {
            current.append(character)
        }
    }
    fields.append(current)
    guard let path = fields.first, !path.isEmpty else { throw ArgumentError("--disk needs a path: --disk PATH[,readonly=on][,cache=none|writeback][,serial=ID]") }
    var options = BlockDevice.Options(path: path)
    for field in fields.dropFirst() {
        let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ArgumentError("--disk option '\(field)' is not KEY=VALUE") }
        switch (parts[0], parts[1]) {
        case ("readonly", "on"): options.readOnly = true
        case ("readonly", "off"): options.readOnly = false
        case ("readonly", let value): throw ArgumentError("--disk readonly must be on or off, not '\(value)'")
        case ("cache", let value):
            guard let cache = DiskCache(rawValue: value) else { throw ArgumentError("--disk cache must be none or writeback, not '\(value)'") }
            options.cache = cache
        case ("serial", let value): options.serial = value
        default: throw ArgumentError("--disk has no option '\(parts[0])' (readonly, cache, serial)")
        }
    }
    return options
}

/// A `--disk` or `--net` value that does not parse, in one line for the user.
struct ArgumentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
