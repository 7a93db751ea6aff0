// Linux calls Swift cannot make or does not see: prctl is variadic, and Glibc's module map leaves
// out <sys/xattr.h> and <malloc.h>. Imported by SystemBase only.
#ifndef BKLOGFS_CLINUX_H
#define BKLOGFS_CLINUX_H

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/xattr.h>

// Marks the process not dumpable: no core dump, and /proc/PID/mem, environ and maps, which hold
// the credentials the daemon works with, become readable by root alone (proc(5), PR_SET_DUMPABLE).
// Returns 0, or -1 with errno set.
static inline int clinux_set_not_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

#endif
