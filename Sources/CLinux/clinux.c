// CLinux is a header of inline functions; SwiftPM wants a source file in every C target.
#include "clinux.h"
