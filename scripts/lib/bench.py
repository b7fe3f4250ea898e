"""What the benchmarks in scripts/ (bench-reclaim, bench-linux) share: the machine they measure on,
what they need on it, and a VMM process watched from outside.

- The machine: other VMs, test runners and Swift builds on it ("neighbours"), its CPU load from
  /proc/stat, and waiting until both have gone before a build or a run, since either skews the
  figures on a 2-CPU host.
- What a run needs: .build/release/ebb rebuilt with scripts/build-release when it is missing or
  older than Sources/ or Package.swift, QEMU installed with scripts/install-host-packages, /dev/kvm.
- Identity lines: a file's path, hash, size and time, the tree's git revision, QEMU's version, the
  host.
- WatchedVMM: one VMM process whose stdout (the guest's serial) and stderr are read line by line
  on threads and whose VmRSS is sampled at a steady period, all timestamped in seconds from
  process start, with the neighbours seen while it ran.
- print_table: labelled rows of one cell per VMM, as both benchmarks print their medians.
"""
import datetime
import hashlib
import os
import platform
import shutil
import subprocess
import threading
import time

from vmrun import MIB, die, say, status_kib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EBB = os.path.join(ROOT, ".build", "release", "ebb")
QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"  # the Debian package that has QEMU
TAIL_LINES = 25                   # lines of a failed command's output shown with the error
MAX_BUSY_CPUS = 0.5               # CPUs' worth of use by others above which the machine is not quiet
QUIET_POLL_S = 1.0                # between looks while waiting for the machine to be quiet
WAIT_DEFAULT_S = 600              # --wait-for-others when not given
# Process names (/proc/PID/comm) that compete with a benchmark's VM: VMMs, Ebb's test runner and
# the Swift compiler.
NEIGHBOUR_NAMES = ("ebb", "swift-build")
NEIGHBOUR_PREFIXES = ("qemu-system", "ebbPackageTest", "swift-frontend")


def out(text=""):
    """Prints a line of the benchmark's own output (identities, runs, tables) as it is."""
    print(text, flush=True)


# ---- the machine and its neighbours

def comm(pid):
    """The name /proc/PID/comm gives the process (15 characters at most), or None once it has gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def is_neighbour(name):
    return name in NEIGHBOUR_NAMES or name.startswith(NEIGHBOUR_PREFIXES)


def neighbours(ignore=()):
    """Other VMs, test runners and Swift builds running now, as "name (pid N)": they compete for the CPUs."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or int(entry) in ignore:
            continue
        name = comm(entry)
        if name is not None and is_neighbour(name):
            found.append(f"{name} (pid {entry})")
    return found


def cpu_ticks():
    """(busy, all) clock ticks summed over the CPUs since boot, from /proc/stat.

    Busy is user, nice, system, irq and softirq (guest time is inside user). Idle and iowait are
    not busy, and neither is steal: steal is time the hypervisor ran something else on the host
    CPU under one of our vCPUs, not work done on this machine, so counting it as busy (as one of
    the benchmarks used to) would make this machine look loaded whenever its host is. It stays in
    `all`, because it is time that passed.
    """
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return user + nice + system + irq + softirq, user + nice + system + idle + iowait + irq + softirq + steal


def busy_cpus(window_s=0.5):
    """How many CPUs' worth of work the machine did over the next window_s seconds."""
    busy0, all0 = cpu_ticks()
    time.sleep(window_s)
    busy1, all1 = cpu_ticks()
    if all1 <= all0:
        return 0.0
    return (busy1 - busy0) / (all1 - all0) * (os.cpu_count() or 1)


def not_quiet():
    """Why the machine is not quiet now (neighbours, CPU load), or [] if it is."""
    found = neighbours()
    load = busy_cpus()
    if load > MAX_BUSY_CPUS:
        found.append(f"{load:.1f} CPUs busy")
    return found


def wait_until_quiet(prog, limit_s):
    """Waits up to limit_s seconds until no neighbour runs and the CPUs are mostly idle; measures anyway after that."""
    found = not_quiet()
    if not found:
        return
    say(prog, f"waiting for other VMs, builds or load to end: {', '.join(found)}")
    started = time.monotonic()
    while found and time.monotonic() - started < limit_s:
        time.sleep(QUIET_POLL_S)
        found = not_quiet()
    if found:
        say(prog, f"warning: still not quiet after {limit_s:.0f} s; measuring anyway: {', '.join(found)}")
    else:
        say(prog, f"quiet again after {time.monotonic() - started:.0f} s")


def add_wait_option(parser):
    """--wait-for-others S, the limit for wait_until_quiet, as both benchmarks take it."""
    parser.add_argument("--wait-for-others", type=float, default=WAIT_DEFAULT_S, metavar="S",
                        help="before a build or run, wait up to S seconds for other VMs, Swift builds or CPU "
                             f"load on this machine to end (default {WAIT_DEFAULT_S})")


# ---- what the runs need

def run_or_die(prog, argv, product):
    """Runs a build command with its output captured; dies showing the output's end if it fails or
    `product` (the file it builds) is not there afterwards."""
    result = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not os.path.exists(product):
        last = "\n".join("  | " + line for line in result.stdout.splitlines()[-TAIL_LINES:])
        die(prog, f"{os.path.relpath(argv[0], ROOT)} failed (exit status {result.returncode}); its last lines:\n{last}")


def newest_mtime(paths):
    """The latest modification time of the files at or under `paths` (0 if there are none)."""
    newest = 0.0
    for path in paths:
        if os.path.isfile(path):
            newest = max(newest, os.path.getmtime(path))
            continue
        for top, _, names in os.walk(path):
            for name in names:
                newest = max(newest, os.path.getmtime(os.path.join(top, name)))
    return newest


def ebb_staleness():
    """Why .build/release/ebb needs building ("missing", "older than Sources/"), or None if it does not."""
    if not os.access(EBB, os.X_OK):
        return "missing"
    sources = [os.path.join(ROOT, "Sources"), os.path.join(ROOT, "Package.swift")]
    if os.path.getmtime(EBB) < newest_mtime(sources):
        return "older than Sources/"
    return None


def build_ebb_if_stale(prog, wait_s):
    """Builds .build/release/ebb with scripts/build-release if it is missing or older than its sources.
    Waits for quiet first: the build takes both CPUs and should not slow another benchmark down."""
    why = ebb_staleness()
    if why is None:
        return
    if shutil.which("swift") is None:
        die(prog, f".build/release/ebb is {why} and swift is not on PATH to build it")
    wait_until_quiet(prog, wait_s)
    say(prog, f".build/release/ebb is {why}; building it: scripts/build-release")
    started = time.monotonic()
    run_or_die(prog, [os.path.join(ROOT, "scripts", "build-release")], EBB)
    say(prog, f"built in {time.monotonic() - started:.0f} s")


def ensure_qemu(prog):
    """Installs Debian's QEMU package if qemu-system-x86_64 is not on PATH."""
    if shutil.which(QEMU) is not None:
        return
    say(prog, f"{QEMU} is missing; installing it: scripts/install-host-packages {QEMU_PACKAGE}")
    installer = os.path.join(ROOT, "scripts", "install-host-packages")
    status = subprocess.run([installer, QEMU_PACKAGE], stdin=subprocess.DEVNULL).returncode
    if status != 0 or shutil.which(QEMU) is None:
        die(prog, f"{QEMU} is not installed and could not be installed "
                  f"(scripts/install-host-packages {QEMU_PACKAGE}: exit status {status})")


def require_kvm(prog):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        die(prog, "/dev/kvm is missing or not readable and writable")


# ---- identity lines

def first_output_line(argv):
    """The first line a command prints on stdout, or "unknown" if it prints nothing or cannot run."""
    try:
        result = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return (result.stdout.strip().splitlines() or ["unknown"])[0]


def git_revision():
    return first_output_line(["git", "-C", ROOT, "describe", "--always", "--dirty"])


def qemu_version():
    return first_output_line([QEMU, "--version"])


def utc_now():
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def host_summary():
    return f"{platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs"


def sha256_prefix(path):
    """The first 16 hex digits of the file's SHA-256, read in 1 MiB blocks (a vmlinux is tens of MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def describe_file(path):
    """The file as an identity line shows it: path (relative inside the checkout), hash, size, time."""
    modified = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    return (f"{shown} (sha256 {sha256_prefix(path)}, {os.path.getsize(path) / MIB:.1f} MiB, "
            f"modified {modified:%Y-%m-%d %H:%M:%S} UTC)")


# ---- one VMM process, watched from outside

def exec_rss_bytes(pid, name):
    """VmRSS in bytes of pid once it runs the program `name`, else None: before exec the child is
    still the forked Python, whose RSS is not the VMM's; a zombie has no VmRSS."""
    if comm(pid) != name:
        return None
    kib = status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


class WatchedVMM:
    """One VMM process: its serial and stderr lines and its VmRSS samples, timestamped from process start.

    A subclass reacts to lines in on_serial/on_stderr (called on the reader threads, after the line
    is stored), decides when to stop in the `stop_reason` it passes to sample_until, and calls
    stop_threads once the process has exited. Lists and `others` are shared with the threads:
    change them under `lock`.
    """

    def __init__(self, argv, neighbour_check_s):
        self.argv = argv
        # What /proc/PID/comm says once the child has exec'd argv[0] (the kernel keeps 15 characters).
        self.exec_name = os.path.basename(argv[0])[:15]
        self.neighbour_check_s = neighbour_check_s
        self.serial = []    # (seconds, text) from stdout: the guest's serial console
        self.errors = []    # (seconds, text) from stderr: the VMM's own messages
        self.samples = []   # (seconds, VmRSS bytes)
        self.others = set()  # neighbours seen while this VMM ran
        self.lock = threading.Lock()
        self.done = threading.Event()  # set by stop_threads: watcher threads end
        self.process = None
        self.t0 = None
        self.threads = []

    def now(self):
        return time.monotonic() - self.t0

    def rss(self):
        return exec_rss_bytes(self.process.pid, self.exec_name)

    def on_serial(self, t, text):
        pass

    def on_stderr(self, t, text):
        pass

    def start(self, *workers):
        """Starts the VMM and threads that read its stdout and stderr, note neighbours, and run
        each of `workers` (callables that loop until `done` is set)."""
        self.t0 = time.monotonic()
        self.process = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        jobs = [(self._read, (self.process.stdout, self.serial, self.on_serial)),
                (self._read, (self.process.stderr, self.errors, self.on_stderr)),
                (self._watch_neighbours, ())] + [(worker, ()) for worker in workers]
        self.threads = [threading.Thread(target=target, args=args, daemon=True) for target, args in jobs]
        for thread in self.threads:
            thread.start()

    def _read(self, stream, lines, react):
        # Bytes, decoded per line: a guest may print anything, and a bad byte must not end the reader.
        for raw in iter(stream.readline, b""):
            t = self.now()
            text = raw.decode(errors="replace").rstrip("\r\n")
            with self.lock:
                lines.append((t, text))
            react(t, text)

    def _watch_neighbours(self):
        while not self.done.wait(self.neighbour_check_s):
            found = neighbours(ignore={self.process.pid})
            with self.lock:
                self.others.update(found)

    def sample(self):
        """Appends one VmRSS sample (none before the exec or after the exit)."""
        rss = self.rss()
        if rss is not None:
            with self.lock:
                self.samples.append((self.now(), rss))

    def sample_until(self, period_s, stop_reason):
        """Samples VmRSS every period_s until the VMM exits ("exited") or stop_reason(), asked after
        each sample, names a reason to stop; returns that reason. The VMM is left running."""
        next_sample = time.monotonic()
        while self.process.poll() is None:
            self.sample()
            reason = stop_reason()
            if reason:
                return reason
            next_sample += period_s
            pause = next_sample - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_sample = time.monotonic()  # fell behind: no burst of catch-up samples
        return "exited"

    def stop_threads(self):
        """Ends the watcher threads and waits (a few seconds) for the readers to see end of file."""
        self.done.set()
        for thread in self.threads:
            thread.join(5)

    def tail(self):
        """The last lines of serial and stderr, merged in time order, for an error message."""
        merged = sorted([(t, "serial", text) for t, text in self.serial] +
                        [(t, "stderr", text) for t, text in self.errors])
        return "\n".join(f"  {t:7.3f}s {kind:6} | {text}" for t, kind, text in merged[-TAIL_LINES:]) or "  (no output)"


# ---- output

def print_table(names, rows, widths):
    """A header of `names` and rows of (label, cells), one cell per name: labels left-aligned, each
    cell right-aligned in its column's width from `widths`."""
    label_width = max(len(label) for label, _ in rows)
    out("  " + " " * label_width + "".join(f"  {name:>{widths[i]}}" for i, name in enumerate(names)))
    for label, cells in rows:
        out("  " + label.ljust(label_width) + "".join(f"  {cell:>{widths[i]}}" for i, cell in enumerate(cells)))
