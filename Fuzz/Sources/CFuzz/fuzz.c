// Declarations only (include/fuzz.h): libFuzzer defines LLVMFuzzerRunDriver.
#include "fuzz.h"
