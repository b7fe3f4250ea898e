import Devices

/// What a CPU finds at the x86 reset vector (F000:FFF0, physical 0xffff0), where a firmware would
/// start: Ebb has no firmware, so these few real-mode instructions ask the VMM for a reset through
/// the ACPI reset register, as a firmware's restart would end.
///
/// Why: Linux on a hardware-reduced ACPI machine reboots by the EFI method first (its
/// `efi_reboot_required()` says so, even without EFI), then `machine_real_restart`, which drops to
/// real mode and jumps here. With nothing here the guest ran whatever bytes lay at 0xffff0 and
/// never reset (seen with Debian's kernel and `reboot -f` on the emulated AMD-V host).
enum ResetVector {
    static let address: UInt64 = 0xf_fff0

    /// mov al, value; mov dx, port; out dx, al; then hlt forever if the write was not taken.
    static func code(resetPort: UInt16, value: UInt8 = ACPIPowerDevice.resetValue) -> [UInt8] {
        [0xb0, value,                                           // mov al, imm8
         0xba, UInt8(resetPort & 0xff), UInt8(resetPort >> 8),  // mov dx, imm16
         0xee,                                                  // out dx, al
         0xf4,                                                  // hlt
         0xeb, 0xfd]                                            // jmp to the hlt
    }
}
