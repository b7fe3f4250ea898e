// The SIGSYS reporter: one line on standard error, then _exit. Only write(2) and _exit(2) run in the
// handler, and every filter Ebb installs allows both, so the report itself cannot be refused.
#define _GNU_SOURCE
#include "CSeccomp.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

enum { NAMES = 512, THREAD_NAME_BYTES = 32 };

static const char *syscall_names[NAMES];
static int reporter_exit_status = 148;
static __thread char thread_name[THREAD_NAME_BYTES] = "unnamed";

void ebb_seccomp_name_this_thread(const char *name) {
    strncpy(thread_name, name, THREAD_NAME_BYTES - 1);
    thread_name[THREAD_NAME_BYTES - 1] = 0;
}

static size_t append(char *line, size_t used, size_t capacity, const char *text) {
    while (*text && used + 1 < capacity) line[used++] = *text++;
    return used;
}

static size_t append_number(char *line, size_t used, size_t capacity, long value) {
    char digits[24];
    int count = 0;
    unsigned long magnitude = value < 0 ? (unsigned long)(-value) : (unsigned long)value;
    do { digits[count++] = (char)('0' + magnitude % 10); magnitude /= 10; } while (magnitude && count < 23);
    if (value < 0 && used + 1 < capacity) line[used++] = '-';
    while (count > 0 && used + 1 < capacity) line[used++] = digits[--count];
    return used;
}

static void on_sigsys(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)context;
    int number = info->si_syscall;
    const char *name = number >= 0 && number < NAMES && syscall_names[number] ? syscall_names[number] : "unknown";
    char line[256];
    size_t used = 0;
    used = append(line, used, sizeof line, "ebb: seccomp: the ");
    used = append(line, used, sizeof line, thread_name);
    used = append(line, used, sizeof line, " thread called ");
    used = append(line, used, sizeof line, name);
    used = append(line, used, sizeof line, " (system call ");
    used = append_number(line, used, sizeof line, number);
    used = append(line, used, sizeof line, "), which its filter refuses; stopping with status ");
    used = append_number(line, used, sizeof line, reporter_exit_status);
    used = append(line, used, sizeof line, " (--seccomp off runs without filters)\n");
    ssize_t ignored = write(STDERR_FILENO, line, used);
    (void)ignored;
    _exit(reporter_exit_status);
}

int ebb_seccomp_install_reporter(int exit_status) {
    reporter_exit_status = exit_status;
    for (int number = 0; number < NAMES; number++) {
        // Allocated once and kept: the handler only reads them.
        if (!syscall_names[number]) syscall_names[number] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, number);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigsys;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSYS, &action, NULL) != 0) return -1;
    sigset_t unblocked;
    sigemptyset(&unblocked);
    sigaddset(&unblocked, SIGSYS);
    return pthread_sigmask(SIG_UNBLOCK, &unblocked, NULL) == 0 ? 0 : -1;
}
