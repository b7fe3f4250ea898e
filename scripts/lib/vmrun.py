"""Run a VMM as a child process and watch it from outside, as a host operator would.

Shared by the scripts in scripts/: a run timestamps every line the VMM prints (the guest's serial
console and the VMM's own messages) in seconds from process start, samples the process's VmRSS
from /proc/PID/status every `sample_s`, and can read the resident size of the guest-RAM mapping
from /proc/PID/smaps on demand (too costly to read at every sample on an emulated host).
"""
import os
import statistics
import subprocess
import sys
import threading
import time

MIB = 1 << 20


def say(prog, text=""):
    print(f"{prog}: {text}" if text else "", flush=True)


def echo_printer(enabled):
    """What a script's --echo passes to a run as `echo`: each line printed as it comes, marked
    "  | " apart from the script's own; None when not `enabled`."""
    return (lambda line: print("  | " + line, flush=True)) if enabled else None


def die(prog, text, status=1):
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    sys.exit(status)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def status_kib(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def guest_ram_resident_bytes(pid, ram_bytes):
    """Rss of the guest-RAM mapping: the largest anonymous mapping at least `ram_bytes` long (Ebb's
    and QEMU's both map guest RAM in one piece), or None."""
    found = guest_ram_mapping(pid, ram_bytes)
    return found[2] if found else None


def guest_ram_resident_map(pid, ram_bytes, slice_bytes):
    """Where in guest RAM the host backs pages: the resident bytes of each `slice_bytes` of the
    guest-RAM mapping from its start (guest physical address 0), from /proc/PID/pagemap's
    present bits; None when it cannot be read."""
    found = guest_ram_mapping(pid, ram_bytes)
    if not found:
        return None
    start, size, _ = found
    page = os.sysconf("SC_PAGE_SIZE")
    slices = []
    try:
        with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for offset in range(0, min(size, ram_bytes), slice_bytes):
                pages = min(slice_bytes, size - offset) // page
                pagemap.seek((start + offset) // page * 8)
                entries = pagemap.read(pages * 8)
                present = sum(entries[i + 7] >> 7 & 1 for i in range(0, len(entries), 8))
                slices.append(present * page)
    except OSError:
        return None
    return slices


def guest_ram_mapping(pid, ram_bytes):
    """(start address, size, Rss) in bytes of the guest-RAM mapping (above), or None."""
    best = None
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            size = rss = start = None
            anonymous = False
            for line in smaps:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    if anonymous and size is not None and size * 1024 >= ram_bytes and (best is None or size > best[0]):
                        best = (size, rss or 0, start)
                    fields = line.split()
                    anonymous = len(fields) < 6
                    start = int(head.split("-")[0], 16)
                    size = rss = None
                elif head == "Size:":
                    size = int(line.split()[1])
                elif head == "Rss:":
                    rss = int(line.split()[1])
            if anonymous and size is not None and size * 1024 >= ram_bytes and (best is None or size > best[0]):
                best = (size, rss or 0, start)
    except OSError:
        return None
    return (best[2], best[0] * 1024, best[1] * 1024) if best else None


def thread_cpu_seconds(pid):
    """The CPU time the threads of `pid` have run, summed by thread name ({} once it is gone), as
    (seconds in all, seconds in user space): the first field of /proc/PID/task/TID/schedstat in
    nanoseconds, and utime of its stat (in clock ticks)."""
    seconds = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm, open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat, \
                    open(f"/proc/{pid}/task/{tid}/stat") as stat:
                name, nanoseconds = comm.read().strip(), int(schedstat.read().split()[0])
                # Fields after the name, which may hold spaces: state is field 3, utime field 14.
                user_ticks = int(stat.read().rsplit(")", 1)[1].split()[11])
        except (OSError, ValueError, IndexError):
            continue
        total, user = seconds.get(name, (0.0, 0.0))
        seconds[name] = (total + nanoseconds / 1e9, user + user_ticks / tick)
    return seconds


def host_idle_seconds():
    """The seconds this host's CPUs have been idle since boot, all of them together (iowait
    counted as idle), from /proc/stat's first line; None if unread."""
    try:
        with open("/proc/stat") as stat:
            # cpu user nice system idle iowait ...
            fields = [int(f) for f in stat.readline().split()[1:6]]
    except (OSError, ValueError):
        return None
    return (fields[3] + fields[4]) / os.sysconf("SC_CLK_TCK")


KVM_DEBUGFS = "/sys/kernel/debug/kvm"


def kvm_statistics(pid, names):
    """KVM's counters `names` for the VM that process `pid` runs, summed over its vCPUs (exits,
    mmio_exits: those that went to the VMM's user space, irq_injections, ...), as the host
    kernel's debugfs shows them in KVM_DEBUGFS/PID-FD/: the same for any VMM ({} where there is no
    such folder). Mounts debugfs first if it is not (root only)."""
    if not os.path.isdir(KVM_DEBUGFS) and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"], capture_output=True)
    try:
        folders = [name for name in os.listdir(KVM_DEBUGFS) if name.startswith(f"{pid}-")]
    except OSError:
        return {}
    counters = {}
    for folder in folders:
        path = os.path.join(KVM_DEBUGFS, folder)
        for name in names:
            try:
                with open(os.path.join(path, name)) as counter:
                    counters[name] = counters.get(name, 0) + int(counter.read().strip())
            except (OSError, ValueError):
                continue
    return counters


class VMRun:
    """One VMM process: its lines with their times, and its VmRSS over time (MiB). `on_line(run,
    seconds, line)`, if given, is called on the reader's thread as each line arrives (to take a
    measurement at that moment)."""

    def __init__(self, argv, sample_s=0.1, echo=None, on_line=None):
        self.argv = argv
        self.on_line = on_line
        self.started = time.monotonic()
        # stdout (the guest's console) and stderr (the VMM's messages) apart: a VMM writes the
        # console byte by byte, and a message could land in the middle of a guest's line.
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="replace")
        self.lines = []       # (seconds, text)
        self.samples = []     # (seconds, MiB)
        self.echo = echo
        self._lock = threading.Lock()
        self._sampler = threading.Thread(target=self._sample, args=(sample_s,), daemon=True)
        self._sampler.start()
        self._readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                         for stream in (self.process.stdout, self.process.stderr)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self):
        return self.process.pid

    def now(self):
        return time.monotonic() - self.started

    def _sample(self, period):
        while self.process.poll() is None:
            kib = status_kib(self.process.pid, "VmRSS")
            if kib is not None:
                with self._lock:
                    self.samples.append((self.now(), kib / 1024))
            time.sleep(period)

    def _read(self, stream):
        for line in stream:
            line = line.rstrip("\r\n")
            at = self.now()
            with self._lock:
                self.lines.append((at, line))
            if self.on_line:
                self.on_line(self, at, line)
            if self.echo:
                self.echo(line)

    def rss_mib(self):
        with self._lock:
            return self.samples[-1][1] if self.samples else None

    def first(self, prefix):
        """(seconds, line) of the first line that starts with `prefix`, or None."""
        with self._lock:
            return next(((at, text) for at, text in self.lines if text.startswith(prefix)), None)

    def wait_for(self, prefix, timeout_s):
        """The first line starting with `prefix`, waiting up to `timeout_s` or until the VMM exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.first(prefix)
            if found or (self.process.poll() is not None and not any(r.is_alive() for r in self._readers)):
                return found or self.first(prefix)
            time.sleep(0.05)
        return None

    def finish(self, timeout_s):
        """Wait for the VMM to exit (SIGKILL after `timeout_s`); returns (exit status, killed)."""
        killed = False
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            killed = True
        for reader in self._readers:
            reader.join(timeout=5)
        return self.process.returncode, killed

    def samples_between(self, start, end=None):
        with self._lock:
            return [(at, mib) for at, mib in self.samples if at >= start and (end is None or at <= end)]

    def text(self):
        with self._lock:
            return "\n".join(text for _, text in self.lines)
