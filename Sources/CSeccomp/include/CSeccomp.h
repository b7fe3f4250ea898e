// libseccomp (Debian's libseccomp-dev) for the Seccomp module, and the SIGSYS reporter, which runs
// in a signal handler and so must be async-signal-safe C rather than Swift.
#ifndef EBB_CSECCOMP_H
#define EBB_CSECCOMP_H

#include <seccomp.h>
#include <stdint.h>

// The actions libseccomp spells as function-like macros, which Swift cannot import.
static inline uint32_t ebb_seccomp_action_errno(uint16_t error) { return SCMP_ACT_ERRNO(error); }
static const uint32_t EBB_SECCOMP_ACTION_TRAP = SCMP_ACT_TRAP;
static const uint32_t EBB_SECCOMP_ACTION_ALLOW = SCMP_ACT_ALLOW;
static const uint32_t EBB_SECCOMP_ACTION_LOG = SCMP_ACT_LOG;

// Installs the SIGSYS handler: a call a filter refuses (SCMP_ACT_TRAP) prints one line naming the
// system call and the calling thread, then ends the process with `exit_status`. The system call
// names are looked up here, once, because the handler may not allocate. 0, or -1 with errno.
int ebb_seccomp_install_reporter(int exit_status);

// The name the reporter gives the calling thread (at most 31 bytes kept); set before its filter.
void ebb_seccomp_name_this_thread(const char *name);

#endif
