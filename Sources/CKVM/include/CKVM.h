// The only C in Ebb: fixed-arity wrappers for the variadic ioctl(2) and fcntl(2), the KVM ioctl
// numbers, which are function-like macros Swift cannot import, and the few file calls glibc
// declares only under _GNU_SOURCE. No logic lives here.
#ifndef EBB_CKVM_H
#define EBB_CKVM_H

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <errno.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

static inline int ebb_ioctl_none(int fd, unsigned long request) { return ioctl(fd, request, 0); }
static inline int ebb_ioctl_value(int fd, unsigned long request, unsigned long value) { return ioctl(fd, request, value); }
static inline int ebb_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

// prctl(2) is variadic too: names the calling thread (at most 15 characters are kept).
static inline int ebb_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

// The kernel's id of the calling thread (per-thread CPU time, seccomp by role).
static inline int ebb_gettid(void) { return (int)syscall(SYS_gettid); }

// CPU time of thread `tid` of this process in nanoseconds, or -1: its per-thread CPU clock, the
// clock id glibc's pthread_getcpuclockid makes ((~tid << 3) | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED).
// Exact, where /proc's schedstat lags until the scheduler next accounts the thread.
static inline long long ebb_thread_cpu_nanoseconds(int tid) {
    struct timespec time;
    clockid_t clock = (clockid_t)((~(unsigned)tid << 3) | 6);
    if (clock_gettime(clock, &time) != 0) return -1;
    return (long long)time.tv_sec * 1000000000LL + time.tv_nsec;
}

// epoll for device event threads: struct epoll_event is packed and holds a union, so Swift sees
// only tokens (the event's data.u64) and readability.
static inline int ebb_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
static inline int ebb_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = token };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}
enum { EBB_EPOLL_BATCH = 16 };
// Waits for up to EBB_EPOLL_BATCH readable sources; their tokens go to `tokens`.
// Edge-triggered: reported once each time more data arrives (a tap), not while any is unread.
static inline int ebb_epoll_add_edge(int epfd, int fd, uint64_t token) {
    struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.u64 = token };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}
static inline int ebb_epoll_wait(int epfd, uint64_t tokens[EBB_EPOLL_BATCH], int timeout_ms) {
    struct epoll_event events[EBB_EPOLL_BATCH];
    int count = epoll_wait(epfd, events, EBB_EPOLL_BATCH, timeout_ms);
    for (int i = 0; i < count; i++) tokens[i] = events[i].data.u64;
    return count;
}

// A periodic CLOCK_MONOTONIC timerfd, non-blocking.
static inline int ebb_timerfd_create(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK); }
// Its first expiry after `first`, then every `period`.
static inline int ebb_timerfd_set(int fd, long first_seconds, long first_nanoseconds, long seconds, long nanoseconds) {
    struct itimerspec setting = { .it_interval = { seconds, nanoseconds }, .it_value = { first_seconds, first_nanoseconds } };
    return timerfd_settime(fd, 0, &setting, 0);
}

// eventfd flags, for KVM_IOEVENTFD / KVM_IRQFD notifiers.
static const int EBB_EFD_CLOEXEC = EFD_CLOEXEC;
static const int EBB_EFD_NONBLOCK = EFD_NONBLOCK;

// madvise advice values, named here so Swift sees plain integers on every libc.
static const int EBB_MADV_DONTNEED = MADV_DONTNEED;
static const int EBB_MADV_HUGEPAGE = MADV_HUGEPAGE;
static const int EBB_MAP_NORESERVE = MAP_NORESERVE;

// Where KVM puts MMIO data inside kvm_run: the member sits in an anonymous union, which Swift's
// MemoryLayout.offset(of:) cannot see through.
static const unsigned long EBB_KVM_RUN_MMIO_DATA_OFFSET = __builtin_offsetof(struct kvm_run, mmio.data);

// System ioctls (/dev/kvm).
static const unsigned long EBB_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long EBB_KVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long EBB_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long EBB_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long EBB_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;

// VM ioctls.
static const unsigned long EBB_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long EBB_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long EBB_KVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long EBB_KVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long EBB_KVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long EBB_KVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long EBB_KVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long EBB_KVM_IRQFD = KVM_IRQFD;
static const unsigned long EBB_KVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long EBB_KVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;

// vCPU ioctls.
static const unsigned long EBB_KVM_RUN = KVM_RUN;
static const unsigned long EBB_KVM_GET_REGS = KVM_GET_REGS;
static const unsigned long EBB_KVM_SET_REGS = KVM_SET_REGS;
static const unsigned long EBB_KVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long EBB_KVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long EBB_KVM_SET_FPU = KVM_SET_FPU;
static const unsigned long EBB_KVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long EBB_KVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long EBB_KVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long EBB_KVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long EBB_KVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long EBB_KVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long EBB_KVM_TRANSLATE = KVM_TRANSLATE;
// VM and vCPU: a file of binary statistics (Documentation/virt/kvm/api.rst, 4.133).
static const unsigned long EBB_KVM_GET_STATS_FD = KVM_GET_STATS_FD;

// Disk images. O_DIRECT and the open file description locks are _GNU_SOURCE names; their values
// are the kernel's ABI on x86-64.
static const int EBB_O_DIRECT = 040000;
static const int EBB_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
static const int EBB_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
static const int EBB_FALLOC_FL_ZERO_RANGE = FALLOC_FL_ZERO_RANGE;

static inline int ebb_fallocate(int fd, int mode, long long offset, long long length) {
    return (int)syscall(SYS_fallocate, fd, mode, offset, length);
}

// Locks the whole file through its open file description (F_OFD_SETLK, as QEMU locks images):
// shared or exclusive, without waiting. 0, or -1 with errno (EAGAIN: another holder).
static inline int ebb_lock_whole_file(int fd, int exclusive) {
    struct flock lock = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    return fcntl(fd, 37 /* F_OFD_SETLK */, &lock);
}


// Tap devices (Documentation/networking/tuntap.rst). struct ifreq holds a union Swift cannot
// fill, so the calls that take one live here whole.
static const unsigned int EBB_TUN_F_CSUM = TUN_F_CSUM;
static const unsigned int EBB_TUN_F_TSO4 = TUN_F_TSO4;
static const unsigned int EBB_TUN_F_TSO6 = TUN_F_TSO6;
static const unsigned long EBB_TUNSETOFFLOAD = TUNSETOFFLOAD;

// Attaches `fd` (an open /dev/net/tun) to the tap `name`: a tap without packet information,
// with a virtio-net header of `header_bytes` before each frame. 0, or -1 with errno (EBUSY: in
// use by another process; EINVAL: `name` is not a tap; EPERM: not allowed).
static inline int ebb_tap_attach(int fd, const char *name, int header_bytes) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &request) < 0) return -1;
    return ioctl(fd, TUNSETVNETHDRSZ, &header_bytes);
}

// The offloads the tap may hand us in the header (TUN_F_*): 0, or -1 with errno.
static inline int ebb_tap_set_offload(int fd, unsigned int offloads) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads);
}

// The MTU of interface `name`, or -1 with errno.
static inline int ebb_interface_mtu(const char *name) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(sock, SIOCGIFMTU, &request);
    int saved = errno;
    close(sock);
    errno = saved;
    return result < 0 ? -1 : request.ifr_mtu;
}

#endif
