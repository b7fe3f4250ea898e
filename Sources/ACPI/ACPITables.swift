/// Every table Ebb gives a guest, laid out back to back from one guest-physical base address.
public struct ACPITables: Sendable {
    /// The bytes to copy to `baseAddress`.
    public let bytes: [UInt8]
    public let baseAddress: UInt64
    /// Where the RSDP is (== `baseAddress`, so a guest that scans the BIOS area finds it too).
    public let rsdpAddress: UInt64

    static let alignment = 16

    /// Lays out RSDP, DSDT, FADT, MADT and XSDT. `makeFADT` receives the DSDT's address.
    public init(baseAddress: UInt64, dsdt: SystemDescriptionTable, makeFADT: (UInt64) -> FADT, madt: MADT) {
        var image: [UInt8] = []
        func place(_ table: [UInt8]) -> UInt64 {
            while image.count % Self.alignment != 0 { image.append(0) }
            let address = baseAddress + UInt64(image.count)
            image += table
            return address
        }
        // The RSDP's own size is fixed, so reserve it first and fill it in once the XSDT is placed.
        _ = place([UInt8](repeating: 0, count: RSDP.sizeBytes))
        let dsdtAddress = place(dsdt.encoded)
        let fadtAddress = place(makeFADT(dsdtAddress).table.encoded)
        let madtAddress = place(madt.table.encoded)
        let xsdtAddress = place(makeXSDT(entries: [fadtAddress, madtAddress]).encoded)
        image.replaceSubrange(0..<RSDP.sizeBytes, with: RSDP(xsdtAddress: xsdtAddress).encoded)
        self.bytes = image
        self.baseAddress = baseAddress
        self.rsdpAddress = baseAddress
    }
}
