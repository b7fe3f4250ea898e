#ifndef EBB_FUZZ_H
#define EBB_FUZZ_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for a program with a main of its own: runs the fuzzing loop (or replays the
/// files named in argv) with `callback` as LLVMFuzzerTestOneInput.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
