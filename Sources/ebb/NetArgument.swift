import Virtio

/// Parses `--net tap=NAME[,mac=MAC]`, QEMU's `-netdev tap,ifname=` reduced to what Ebb has.
func parseNet(_ text: String) throws(ArgumentError) -> NetDevice.Options {
    let usage = "--net tap=NAME[,mac=MAC]"
    var tap: String?
    var mac: MACAddress?
    for field in text.split(separator: ",", omittingEmptySubsequences: false) {
        let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ArgumentError("--net option '\(field)' is not KEY=VALUE: \(usage)") }
        switch parts[0] {
        case "tap", "ifname":
            guard !parts[1].isEmpty, parts[1].utf8.count < 16 else { throw ArgumentError("--net tap name '\(parts[1])' must be 1 to 15 characters") }
            tap = parts[1]
        case "mac":
            guard let address = MACAddress(parts[1]) else {
                throw ArgumentError("--net mac '\(parts[1])' is not a unicast MAC address like 06:00:0a:00:02:0f")
            }
            mac = address
        default:
            throw ArgumentError("--net has no option '\(parts[0])' (tap, mac)")
        }
    }
    guard let tap else { throw ArgumentError("--net needs a tap: \(usage)") }
    return NetDevice.Options(tap: tap, mac: mac)
}
