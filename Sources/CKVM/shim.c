#include "CKVM.h"
