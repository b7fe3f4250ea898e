// libFuzzer defines LLVMFuzzerRunDriver (include/fuzz.h); the net target's tap is made here, in C,
// because struct ifreq's unions do not import into Swift, and because it must not fork a process
// (`ip`) from inside a fresh network namespace.
#define _GNU_SOURCE
#include "fuzz.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t written = write(fd, text, strlen(text));
    close(fd);
    return written < 0 ? -1 : 0;
}

int ebb_fuzz_private_tap(const char *name) {
    if (unshare(CLONE_NEWNET) != 0) return -1;
    // New interfaces in this namespace get no IPv6 (no router solicitations into the tap).
    (void)write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    (void)write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");

    int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(tun, TUNSETIFF, &request) != 0 || ioctl(tun, TUNSETPERSIST, 1) != 0) {
        int saved = errno;
        close(tun);
        errno = saved;
        return -1;
    }
    close(tun);

    int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) return -1;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int up = ioctl(control, SIOCGIFFLAGS, &request);
    if (up == 0) {
        request.ifr_flags |= IFF_UP;
        up = ioctl(control, SIOCSIFFLAGS, &request);
    }
    int index = 0;
    if (up == 0) {
        up = ioctl(control, SIOCGIFINDEX, &request);
        index = request.ifr_ifindex;
    }
    int saved = errno;
    close(control);
    if (up != 0) {
        errno = saved;
        return -1;
    }

    int packet = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (packet < 0) return -1;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = index;
    if (bind(packet, (struct sockaddr *)&address, sizeof address) != 0) {
        saved = errno;
        close(packet);
        errno = saved;
        return -1;
    }
    return packet;
}
