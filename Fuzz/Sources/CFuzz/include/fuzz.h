#ifndef EBB_FUZZ_H
#define EBB_FUZZ_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for a program with a main of its own: runs the fuzzing loop (or replays the
/// files named in argv) with `callback` as LLVMFuzzerRunDriver's LLVMFuzzerTestOneInput.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// The net target's network, made once per process: a network namespace of its own (no frame
/// leaves it), IPv6 off (so the kernel sends nothing of its own into the tap), and a persistent
/// tap named `name`, up. Returns a packet socket bound to the tap, which sends frames into it
/// for the device to read (non-blocking), or -1 with errno.
int ebb_fuzz_private_tap(const char *name);

#endif
