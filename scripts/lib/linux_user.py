"""The user-space reclaim scenario on Debian's stock kernel, for Ebb or QEMU, measured from outside.

The guest is Debian's cloud kernel with the busybox initramfs of guest/fetch-debian-linux.sh; its
/init (ebb.scenario=reclaim) runs guest/initramfs/anon-touch.c, which maps, touches and unmaps
`touch_mib` of anonymous memory, then drops caches, holds `hold_s` while free page reporting hands
the memory back, prints its meminfo and powers off. Needs a KVM that runs Linux user space (VT-x,
AMD-V, or the emulated AMD-V host of scripts/svm-host).

Figures of one run (seconds from the VMM's start unless said):
  init-s             the guest's "init: scenario=" line
  touch-s            the guest's own time to touch the memory (anon-touch's clock)
  t90-s              from anon-touch's "freed" line to the first RSS sample at or below
                     peak - 0.9 * (peak - lowest), lowest being the least RSS until the hold ends
  returned-pct       (peak - lowest) / (peak - RSS at "reclaim: start"), in %
  resident-free-mib  the guest-RAM mapping's resident size after the hold minus the memory the guest
                     does not count as free (guest RAM - MemFree): free guest memory still on the host
  pcp-growth-mib     how much more the guest holds on its per-CPU free lists after the hold than at
                     "reclaim: start": free memory outside MemFree that free page reporting never sees
                     (the growth a VMM cannot get back)
"""
import os
import re
import subprocess
import sys

from vmrun import (MIB, VMRun, die, guest_ram_resident_bytes, guest_ram_resident_map, host_idle_seconds, kvm_statistics,
                   median, say, thread_cpu_seconds)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hardware_kvm():
    """Whether this machine's KVM runs Linux user space (VT-x/AMD-V, not kvm_pvm)."""
    return os.path.exists("/dev/kvm") and not os.path.exists("/sys/module/kvm_pvm")


def git_revision():
    result = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def prepare_benchmark(prog, script, arguments, disk=None):
    """Outside the emulated host: builds Ebb's release binary and the guest, then, unless this
    machine's KVM runs Linux user space, runs `script --inside ARGUMENTS` again on an emulated
    AMD-V host (scripts/svm-host; `disk` becomes its /dev/vda) and does not return."""
    say(prog, "scripts/build-release")
    subprocess.run([os.path.join(ROOT, "scripts", "build-release")], check=True, stdin=subprocess.DEVNULL)
    debian_guest()
    if hardware_kvm():
        return
    say(prog, "this KVM cannot run Linux user space: running on an emulated AMD-V host (scripts/svm-host)")
    disk_options = ["--disk", disk] if disk else []
    os.execv(os.path.join(ROOT, "scripts", "svm-host"),
             ["svm-host"] + disk_options + ["--", sys.executable, os.path.abspath(script), "--inside"] + arguments)


def debian_guest():
    """BZIMAGE, VMLINUX, INITRAMFS, KERNEL_VERSION from guest/fetch-debian-linux.sh (cached)."""
    result = subprocess.run([os.path.join(ROOT, "guest", "fetch-debian-linux.sh")], check=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    return dict(line.split("=", 1) for line in result.stdout.split())


NET_PINGS = 20
"""Echo requests the net scenario sends (guest/initramfs/init)."""


def scenario_cmdline(touch_mib, hold_s, scenario="reclaim", busy=False, agent=None, rounds=None, transfer_mib=None):
    line = f"console=ttyS0 ebb.scenario={scenario} ebb.touch={touch_mib} ebb.hold={hold_s}"
    if rounds:
        line += f" ebb.rounds={rounds}"
    if transfer_mib:
        line += f" ebb.mib={transfer_mib}"
    if busy:
        line += " ebb.busy=1"
    if agent:
        line += f" ebb.agent={agent}"
    return line


def ebb_argv(ebb, kernel, initramfs, memory_mib, cpus, cmdline, reporting_order=None, disk=None):
    argv = [ebb, "run", "--kernel", kernel, "--initrd", initramfs, "--memory", f"{memory_mib}M",
            "--cpus", str(cpus), "--cmdline", cmdline]
    if reporting_order is not None:
        argv += ["--reporting-order", str(reporting_order)]
    if disk is not None:
        argv += ["--disk", disk]
    return argv


def qemu_argv(kernel, initramfs, memory_mib, cpus, cmdline, reporting_order=None, disk=None):
    """QEMU's microvm with the same balloon (free page reporting on), the same kernel options and,
    given a disk, a virtio-blk disk with cache=none (O_DIRECT), as Ebb's default."""
    if reporting_order is not None:
        cmdline += f" page_reporting.page_reporting_order={reporting_order}"
    argv = ["qemu-system-x86_64", "-M", "microvm,acpi=on", "-accel", "kvm", "-cpu", "host",
            "-m", f"{memory_mib}M", "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-serial", "stdio", "-global", "virtio-mmio.force-legacy=false",
            # Threads by role ("CPU 0/KVM" and the main loop), for the CPU figures.
            "-name", "qemu,debug-threads=on",
            "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
            "-device", "virtio-balloon-device,free-page-reporting=on"]
    if disk is not None:
        argv += ["-drive", f"if=none,id=disk0,file={disk},format=raw,cache=none",
                 "-device", "virtio-blk-device,drive=disk0"]
    return argv


def meminfo_kib(line, field):
    found = re.search(rf"\b{field}=(\d+)kB", line)
    return int(found.group(1)) if found else None


def start_run(argv, echo, on_line=None):
    """Starts the VMM; returns the run, the result dict to fill, and `stage(prefix, limit_s)`,
    which waits for a line and, the first time one does not come, says so in result["error"]."""
    run = VMRun(argv, echo=echo, on_line=on_line)
    result = {"argv": argv, "error": None}

    def stage(prefix, limit_s):
        found = run.wait_for(prefix, limit_s)
        if found is None and result["error"] is None:
            result["error"] = f"no '{prefix}' line within {limit_s} s"
        return found

    return run, result, stage


def run_reclaim(argv, memory_mib, timeout_s=300, echo=None):
    """Runs the scenario once; returns a dict of the figures above plus status, output and why it
    failed (`error`), if it did."""
    run, result, stage = start_run(argv, echo)

    init = stage("init: scenario=", timeout_s)
    start = stage("reclaim: start", 60) if init else None
    touched = stage("anon-touch: touched", 120) if start else None
    freed = stage("anon-touch: freed", 60) if touched else None
    after_hold = stage("reclaim: meminfo after-hold", 120) if freed else None
    guest_ram = guest_ram_resident_bytes(run.pid, memory_mib * MIB) if after_hold else None
    status, killed = run.finish(60 if after_hold else 5)
    result.update(status=status, killed=killed, output=run.text())
    result["init-s"] = init[0] if init else None
    if not (start and touched and freed and after_hold):
        return result

    seconds = re.search(r"in ([0-9.]+) s", touched[1])
    result["touch-s"] = float(seconds.group(1)) if seconds else None
    fall = fall_figures(run, start[0], (touched[0] - 1, freed[0] + 0.5), (freed[0], after_hold[0]))
    if fall is None:
        result["error"] = "too few RSS samples"
        return result
    result.update(fall)
    result["returned-pct"] = fall["returned_pct"]
    result["t90-s"] = fall["t90_s"]
    pcp = [run.first(f"reclaim: pcp {when}") for when in ("before", "after-hold")]
    pages = [re.search(r"pages=(\d+)", found[1]) if found else None for found in pcp]
    if all(pages):
        result["pcp-growth-mib"] = (int(pages[1].group(1)) - int(pages[0].group(1))) * 4096 / MIB
    mem_free = meminfo_kib(after_hold[1], "MemFree")
    if guest_ram is not None and mem_free is not None:
        result["guest_ram_mib"] = guest_ram / MIB
        result["resident-free-mib"] = guest_ram / MIB - (memory_mib - mem_free / 1024)
    return result


def fall_figures(run, baseline_at, peak_window, fall_window):
    """How far the VMM's RSS fell, and how fast: baseline is the last sample before `baseline_at`,
    peak the most within `peak_window`, lowest the least within `fall_window`; returned_pct is
    (peak - lowest) / (peak - baseline) in %, t90_s the time from the window's start to the first
    sample at or below peak - 0.9 * (peak - lowest). None if the samples do not say."""
    before = run.samples_between(0, baseline_at)
    baseline = before[-1][1] if before else None
    peak = max((mib for _, mib in run.samples_between(*peak_window)), default=None)
    after = run.samples_between(*fall_window)
    lowest = min((mib for _, mib in after), default=None)
    if baseline is None or peak is None or lowest is None or peak <= baseline:
        return None
    threshold = peak - 0.9 * (peak - lowest)
    return {"baseline_mib": baseline, "peak_mib": peak, "lowest_mib": lowest,
            "returned_pct": (peak - lowest) / (peak - baseline) * 100,
            "t90_s": next((at - fall_window[0] for at, mib in after if mib <= threshold), None)}


def host_cache_mib(path):
    """How much of `path` the host's page cache holds (util-linux fincore), or None."""
    found = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                           capture_output=True, text=True)
    try:
        return int(found.stdout.split()[0]) / MIB
    except (IndexError, ValueError):
        return None


def run_page_cache(argv, memory_mib, disk, timeout_s=300, echo=None):
    """The page-cache scenario once (ebb.scenario=page-cache, the disk `disk` holding the ext4
    image of guest/build-page-cache-image.sh). Figures: cache-growth-mib (the guest's Cached
    after the read minus before), cache-returned-pct and t90-s (as returned-pct and t90-s of the
    reclaim scenario, from the RSS at "page-cache: meminfo before", the peak between the read and
    the drop, and the fall from "page-cache: dropped" to the end of the hold), host-cache-mib
    (the host's page cache for `disk`, the most seen after the read)."""
    run, result, stage = start_run(argv, echo)

    before = stage("page-cache: meminfo before", timeout_s)
    read = stage("page-cache: meminfo read", 300) if before else None
    host_cache = host_cache_mib(disk) if read else None
    dropped = stage("page-cache: dropped", 60) if read else None
    after_hold = stage("page-cache: meminfo after-hold", 120) if dropped else None
    if after_hold:
        seen = [value for value in (host_cache, host_cache_mib(disk)) if value is not None]
        host_cache = max(seen) if seen else None
    status, killed = run.finish(60 if after_hold else 5)
    result.update(status=status, killed=killed, output=run.text())
    if not (before and read and dropped and after_hold):
        return result
    cached = [meminfo_kib(line, "Cached") for _, line in (before, read)]
    if None not in cached:
        result["cache-growth-mib"] = (cached[1] - cached[0]) / 1024
    fall = fall_figures(run, before[0], (read[0] - 0.5, dropped[0] + 0.2), (dropped[0], after_hold[0]))
    if fall is None:
        result["error"] = "too few RSS samples"
        return result
    result.update(fall)
    result["cache-returned-pct"] = fall["returned_pct"]
    result["t90-s"] = fall["t90_s"]
    result["host-cache-mib"] = host_cache
    return result


def api_request(socket_path, method, path, body):
    """One request to a VMM's API on its Unix socket (Firecracker's convention); returns
    (status, body)."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(socket_path)

    connection = UnixConnection("localhost")
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def run_ctrl_alt_del(argv, socket_path, timeout_s=300, echo=None):
    """The ctrl-alt-del scenario once (ebb.scenario=ctrl-alt-del; the VMM serves its API on
    `socket_path`): once init waits, `PUT /actions {"action_type": "SendCtrlAltDel"}`. Figures:
    api-status (the answer's HTTP status) and cad-s (from the request to the VMM's exit)."""
    run, result, stage = start_run(argv, echo)
    waiting = stage("init: waiting for ctrl-alt-del", timeout_s)
    sent_at = None
    if waiting:
        status, body = api_request(socket_path, "PUT", "/actions", '{"action_type": "SendCtrlAltDel"}')
        result["api-status"] = status
        if status != 204:
            result["error"] = f"SendCtrlAltDel answered {status}: {body}"
        sent_at = run.now()
    status, killed = run.finish(120 if waiting else 5)
    result.update(status=status, killed=killed, output=run.text())
    if sent_at is not None and not killed:
        result["cad-s"] = run.now() - sent_at
    return result


def run_idle_reclaim(argv, memory_mib, timeout_s=300, echo=None):
    """The idle-reclaim scenario once (ebb.scenario=idle-reclaim, the disk of
    guest/build-page-cache-image.sh): the guest reads 260 MiB of files into its page cache and
    keeps them there; nothing in the guest gives them back (unless ebb.agent=wsl). Figures, from
    the "meminfo after-hold" line and the samples before it:
      final-mib          the VMM's RSS at the end of the hold
      guest-ram-mib      the guest-RAM mapping's resident size then
      pcp-mib            free memory on the guest's per-CPU lists then, which MemFree leaves out
      noncache-mib       what the guest uses for anything but cache: guest RAM - MemFree - pcp-mib
                         - Buffers - (Cached - Shmem) (tmpfs, the initramfs here, is memory in use,
                         not cache)
      cache-resident-mib guest-ram-mib - noncache-mib: cache and free memory the host still backs
      resident-free-mib  guest-ram-mib - (guest RAM - MemFree - pcp-mib): free memory the host still
                         backs (the reclaim scenario leaves pcp-mib out: counted as in use, the
                         lists' free pages the host no longer backs hid up to 37 MiB of resident
                         free memory elsewhere)
      cached-mib         the guest's Buffers + Cached - Shmem then
      t90-s              from the end of the reads to the first sample at or below 90% of the fall
                         to the hold's lowest RSS; none when RSS fell by less than 32 MiB
      settle-s           how long after the hold the guest waited for a squeeze in progress to
                         end (its balloon back to empty) before reading its figures
      balloon-mib        what its balloon still held then (0 unless the wait gave up)
      hot-majflt         major faults mapping and reading /hot again after the hold
      oom-lines          kernel log lines about the OOM killer"""
    run, result, stage = start_run(argv, echo)
    before = stage("idle-reclaim: meminfo before", timeout_s)
    read = stage("idle-reclaim: meminfo read", 300) if before else None
    settled = stage("idle-reclaim: settled", 600) if read else None
    after_hold = stage("idle-reclaim: meminfo after-hold", 60) if settled else None
    guest_ram = guest_ram_resident_bytes(run.pid, memory_mib * MIB) if after_hold else None
    if echo and after_hold:
        # Where the resident memory is: MiB backed in each 16 MiB of guest RAM from address 0.
        slices = guest_ram_resident_map(run.pid, memory_mib * MIB, 16 * MIB) or []
        echo("resident MiB per 16 MiB of guest RAM " + " ".join(f"{b / MIB:.1f}" for b in slices))
    hot = stage("idle-reclaim: hot", 120) if after_hold else None
    oom = stage("idle-reclaim: oom", 60) if hot else None
    status, killed = run.finish(60 if oom else 5)
    result.update(status=status, killed=killed, output=run.text())
    if not (before and read and after_hold and hot and oom):
        return result
    samples = run.samples_between(read[0], after_hold[0])
    if not samples:
        result["error"] = "too few RSS samples"
        return result
    result["final-mib"] = samples[-1][1]
    if echo:
        # The fall as it came: RSS each half second from the end of the reads on (s:MiB).
        shown, last = [], None
        for at, mib in samples:
            if last is None or at - last >= 0.5:
                shown.append(f"{at - read[0]:.1f}:{mib:.0f}")
                last = at
        echo("RSS after the reads (s:MiB) " + " ".join(shown))
    free, buffers, cached, shmem = (meminfo_kib(after_hold[1], field) for field in ("MemFree", "Buffers", "Cached", "Shmem"))
    pcp = run.first("idle-reclaim: pcp after-hold")
    pages = re.search(r"pages=(\d+)", pcp[1]) if pcp else None
    if guest_ram is not None and pages and None not in (free, buffers, cached, shmem):
        free += int(pages.group(1)) * 4
        result["pcp-mib"] = int(pages.group(1)) * 4096 / MIB
        result["guest-ram-mib"] = guest_ram / MIB
        result["noncache-mib"] = memory_mib - (free + buffers + cached - shmem) / 1024
        result["cache-resident-mib"] = result["guest-ram-mib"] - result["noncache-mib"]
        result["resident-free-mib"] = guest_ram / MIB - (memory_mib - free / 1024)
        result["cached-mib"] = (buffers + cached - shmem) / 1024
    peak = max((mib for _, mib in run.samples_between(read[0] - 1, read[0] + 1)), default=None)
    lowest = min(mib for _, mib in samples)
    result["peak_mib"], result["lowest_mib"] = peak, lowest
    if peak is not None and peak - lowest >= 32:
        threshold = peak - 0.9 * (peak - lowest)
        result["t90-s"] = next((at - read[0] for at, mib in samples if mib <= threshold), None)
    waited = re.search(r"after=(\d+)s balloon_pages=(-?\d+)", settled[1])
    if waited:
        result["settle-s"] = int(waited.group(1))
        result["balloon-mib"] = int(waited.group(2)) * 4096 / MIB
    faults = re.search(r"majflt=(\d+)", hot[1])
    result["hot-majflt"] = int(faults.group(1)) if faults else None
    lines = re.search(r"lines=(\d+)", oom[1])
    result["oom-lines"] = int(lines.group(1)) if lines else None
    return result


def compare_vmms(prog, commands, run_once, keys, labels, runs, attempts=2, detail=None, last_line=True):
    """Runs each VMM's command `runs` times, interleaved, the order rotating from run to run
    (ebb, qemu; then qemu, ebb; ...: the emulated host's speed drifts, and in three bench-net
    runs of four the last run of all, always QEMU's, was the slowest by far), retrying a failed
    run once; prints a line per run, a table of medians and, last, for scripts, one line
    `ebb key=N ... | qemu key=N ...` (unless not `last_line`). `run_once(argv)` returns a result
    dict of figures with "error" and "status"; `detail(result)` adds to a run's line. Returns the
    medians."""
    results = {vmm: [] for vmm in commands}
    order = list(commands.items())
    for number in range(1, runs + 1):
        shift = (number - 1) % len(order)
        for vmm, argv in order[shift:] + order[:shift]:
            for attempt in range(1, attempts + 1):
                result = run_once(argv)
                if not result["error"] and result["status"] == 0:
                    break
                say(prog, f"{vmm} run {number} failed ({result['error'] or 'exit ' + str(result['status'])}); "
                    f"its last lines:\n" + "\n".join("  | " + line for line in result["output"].splitlines()[-15:]))
            else:
                die(prog, f"{vmm} failed {attempts} times in a row")
            results[vmm].append(result)
            say(prog, f"{vmm} run {number}/{runs}: " + " ".join(f"{key}={figure(result, key)}" for key in keys)
                + (f" ({detail(result)})" if detail else ""))
    medians = {vmm: {key: median(r.get(key) for r in rs) for key in keys} for vmm, rs in results.items()}
    say(prog)
    say(prog, f"medians of {runs} runs each   " + "".join(f"{vmm:>11}" for vmm in commands))
    for key in keys:
        say(prog, f"  {labels[key]:<34}" + "".join(f"{figure(medians[vmm], key):>11}" for vmm in commands))
    if last_line:
        print(" | ".join(f"{vmm} " + " ".join(f"{key}={figure(medians[vmm], key)}" for key in keys) for vmm in commands), flush=True)
    return medians


def figure(result, key, digits=1):
    value = result.get(key)
    return "-" if value is None else f"{value:.{digits}f}"


def run_net(argv, server, timeout_s=300, echo=None, tap_counters=None):
    """The net scenario once (ebb.scenario=net): the VMM (`argv`, started in the namespace of
    `server`, net_host.Namespace.serve's process) gives the guest a NIC on the namespace's tap.
    Figures:
      ping-received   of NET_PINGS echo requests to the host, after one to warm the path
      rtt-ms          their median round trip (the replies' times, as busybox ping prints them)
      rtt-avg-ms      their average round trip, as ping's summary prints it
      rx-ok / tx-ok   1 when every transfer arrived with the SHA-256 of what was sent (GET /blob
                      to the guest, POST /upload from it, ebb.rounds times each), else 0
      rx-mbps / tx-mbps  megabits per second of each way's transfers, as the host's server timed
                      them: the median of the rounds (one transfer swings by 2x on the emulated host)
      rx-mbps-rounds / tx-mbps-rounds  each round's figure, in order
      squeezes        Ebb only: the squeezes its agentless reclaim made during the run
      rx-host-ms-per-mib / tx-host-ms-per-mib  CPU time the VMM's threads other than its vCPUs'
                      (device work: Ebb's device threads, QEMU's main loop) took per MiB moved
                      each way: on the emulated host's one CPU it is time the guest does not get
      rx-host-user-ms-per-mib / tx-host-user-ms-per-mib  the part of it in user space (the rest
                      is the host kernel's: the tap, and the host's network stack behind it)
      rx-vcpu-ms-per-mib / tx-vcpu-ms-per-mib  the same for the vCPU thread (the guest's own
                      time, and the exits the VMM serves on it)
      rx-server-ms-per-mib / tx-server-ms-per-mib  the same for the host's HTTP server (Python:
                      its own work and the socket's)
      rx-idle-ms-per-mib / tx-idle-ms-per-mib  this host's CPUs' idle time per MiB: what no one
                      used, waiting on the other side (on one CPU, a transfer's time per MiB is
                      the VMM's, the server's, the rest of the host's and this)
      rx-frames-per-mib / tx-frames-per-mib  frames through the tap per MiB moved each way, from
                      the tap's own counters (`tap_counters`, net_host.Namespace's): fewer, larger
                      frames cost the host's network stack less
      host-threads    the VMM's threads other than vCPUs by name, CPU seconds over the transfers
      rx-exits-per-mib / tx-exits-per-mib, and -mmio-exits- (those served in the VMM's user space),
                      -irq-injections-  KVM's counters per MiB moved each way (its debugfs: the
                      same for both VMMs; absent where the host has none)"""
    import threading

    from net_host import parse_line
    # Thread CPU times at the end of each transfer (the guest's line after it) and before the
    # first: a transfer's share is the difference from the line before it.
    marks = []

    def mark(run, at, line):
        if line.startswith(("net: tx-file", "net: rx bytes", "net: rx failed", "net: tx reply")):
            marks.append({"line": line, "threads": thread_cpu_seconds(run.pid),
                          "kvm": kvm_statistics(run.pid, KVM_COUNTERS),
                          "server": sum(total for total, _ in thread_cpu_seconds(server.pid).values()),
                          "idle": host_idle_seconds(), "tap": tap_counters() if tap_counters else {}})
    run, result, stage = start_run(argv, echo, on_line=mark)
    host_lines = []

    def read_server():
        for line in server.stdout:
            host_lines.append(line.strip())
            if echo:
                echo(line.rstrip())
    reader = threading.Thread(target=read_server, daemon=True)
    reader.start()
    done = stage("net: done", timeout_s)
    status, killed = run.finish(60 if done else 5)
    result.update(status=status, killed=killed, output=run.text())
    server.terminate()
    server.wait()
    reader.join(5)
    if not done:
        return result
    ping = run.first("net: ping ")
    if ping:
        received = re.search(r"(\d+) packets received", ping[1])
        rtt = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", ping[1])
        result["ping-received"] = int(received.group(1)) if received else 0
        result["rtt-avg-ms"] = float(rtt.group(1)) if rtt else None
    times = run.first("net: ping-times")
    replies = [float(t) for t in times[1].split()[2:]] if times else []
    result["rtt-ms"] = median(replies) if replies else None
    # Ebb's exit summary: whether its reclaim squeezed the guest during the run (QEMU has none).
    reclaim = run.first("ebb: idle reclaim:")
    squeezes = re.search(r"(\d+) squeezes? returned", reclaim[1]) if reclaim else None
    if squeezes:
        result["squeezes"] = int(squeezes.group(1))
    started = run.first("net: start")
    rounds = int(re.search(r"rounds=(\d+)", started[1]).group(1)) if started and "rounds=" in started[1] else 1
    blobs = [parse_line(line) for line in host_lines if line.startswith("net-host: blob")]
    uploads = [parse_line(line) for line in host_lines if line.startswith("net-host: upload")]
    tx = run.first("net: tx-file")
    guest_tx = dict(part.split("=", 1) for part in tx[1].split()[2:]) if tx else {}
    arrived = [dict(part.split("=", 1) for part in line.split()[2:]) for line in run.text().splitlines()
               if line.startswith("net: rx bytes=")]
    result["rx-ok"] = int(len(blobs) == rounds and len(arrived) == rounds and all(
        r.get("sha256") == b.get("sha256") and r.get("bytes") == b.get("bytes") for r, b in zip(arrived, blobs)))
    result["tx-ok"] = int(len(uploads) == rounds and all(
        u.get("sha256") == guest_tx.get("sha256") and u.get("bytes") == guest_tx.get("bytes") for u in uploads))
    for key, transfers in (("rx-mbps", blobs), ("tx-mbps", uploads)):
        rates = [int(t["bytes"]) * 8 / float(t["seconds"]) / 1e6 for t in transfers if float(t.get("seconds", 0)) > 0]
        if rates:
            result[key] = median(rates)
            result[key + "-rounds"] = rates
    result.update(transfer_cpu_figures(marks, blobs, uploads))
    return result


KVM_COUNTERS = ("exits", "mmio_exits", "irq_injections")


def transfer_cpu_figures(marks, blobs, uploads):
    """run_net's CPU, exit and frame figures from its marks, in order: dicts of the guest's
    "line", the VMM's "threads" (CPU times by name), its "kvm" counters, the "server"'s CPU
    seconds, this host's "idle" CPU seconds and the "tap"'s counters."""
    vcpu = lambda name: name.startswith(("ebb-vcpu", "CPU "))  # noqa: E731 (Ebb's and QEMU's names)
    parts = ("host", "host-user", "vcpu", "server", "idle")
    spent = {way: {part: 0.0 for part in parts} for way in ("rx", "tx")}
    counted = {way: {name: 0 for name in KVM_COUNTERS} for way in ("rx", "tx")}
    frames = {"rx": 0, "tx": 0}
    host_threads = {}
    for earlier, later in zip(marks, marks[1:]):
        way = "tx" if later["line"].startswith("net: tx reply") else "rx"
        spent[way]["server"] += max(0.0, later["server"] - earlier["server"])
        if earlier["idle"] is not None and later["idle"] is not None:
            spent[way]["idle"] += later["idle"] - earlier["idle"]
        # The tap's rx is what the VMM wrote into it: the guest's transmissions.
        counter = "rx_packets" if way == "tx" else "tx_packets"
        if counter in earlier["tap"] and counter in later["tap"]:
            frames[way] += later["tap"][counter] - earlier["tap"][counter]
        for name in KVM_COUNTERS:
            if name in later["kvm"] and name in earlier["kvm"]:
                counted[way][name] += later["kvm"][name] - earlier["kvm"][name]
        before = earlier["threads"]
        for name, (seconds, user) in later["threads"].items():
            used = seconds - before.get(name, (0.0, 0.0))[0]
            if vcpu(name):
                spent[way]["vcpu"] += used
                continue
            spent[way]["host"] += used
            spent[way]["host-user"] += user - before.get(name, (0.0, 0.0))[1]
            host_threads[name] = host_threads.get(name, 0.0) + used
    figures = {}
    for way, transfers in (("rx", blobs), ("tx", uploads)):
        mib = sum(int(t.get("bytes", 0)) for t in transfers) / MIB
        if mib > 0 and len(marks) > 1:
            for part in parts:
                figures[f"{way}-{part}-ms-per-mib"] = spent[way][part] * 1000 / mib
            if marks[0]["tap"]:
                figures[f"{way}-frames-per-mib"] = frames[way] / mib
            if all(name in marks[0]["kvm"] for name in KVM_COUNTERS):
                for name in KVM_COUNTERS:
                    figures[f"{way}-{name.replace('_', '-')}-per-mib"] = counted[way][name] / mib
    if host_threads:
        figures["host-threads"] = host_threads
    return figures
