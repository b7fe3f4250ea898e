import Testing

/// The suites that boot Linux for minutes, run one after the other: the small Linux kernel on
/// kvm_pvm (two emulated vCPUs) and the emulated AMD-V host (which takes a core of its own). Side
/// by side on a 2-core machine, the 2-vCPU Linux guest once stalled for minutes during boot.
@Suite(.serialized) struct HeavyGuestTests {}
