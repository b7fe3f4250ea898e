/// Parses sizes the way VMM users write them: "512M", "2G", "1536MiB", "65536K"; a bare number
/// is MiB, as with QEMU's -m.
func parseSize(_ text: String) -> UInt64? {
    var digits = Substring(text.trimmingCharacters(in: " "))
    var unitShift: UInt64 = 20
    let units: [(String, UInt64)] = [("KIB", 10), ("MIB", 20), ("GIB", 30), ("TIB", 40),
                                     ("KB", 10), ("MB", 20), ("GB", 30), ("TB", 40),
                                     ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("B", 0)]
    for (suffix, shift) in units where digits.uppercased().hasSuffix(suffix) {
        digits = digits.dropLast(suffix.count)
        unitShift = shift
        break
    }
    guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits), value > 0 else { return nil }
    let (result, overflow) = value.multipliedReportingOverflow(by: 1 << unitShift)
    return overflow ? nil : result
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
