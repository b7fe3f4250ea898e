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

from vmrun import MIB, VMRun, guest_ram_resident_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def debian_guest():
    """BZIMAGE, VMLINUX, INITRAMFS, KERNEL_VERSION from guest/fetch-debian-linux.sh (cached)."""
    result = subprocess.run([os.path.join(ROOT, "guest", "fetch-debian-linux.sh")], check=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    return dict(line.split("=", 1) for line in result.stdout.split())


def scenario_cmdline(touch_mib, hold_s, scenario="reclaim"):
    return f"console=ttyS0 ebb.scenario={scenario} ebb.touch={touch_mib} ebb.hold={hold_s}"


def ebb_argv(ebb, kernel, initramfs, memory_mib, cpus, cmdline, reporting_order=None):
    argv = [ebb, "run", "--kernel", kernel, "--initrd", initramfs, "--memory", f"{memory_mib}M",
            "--cpus", str(cpus), "--cmdline", cmdline]
    if reporting_order is not None:
        argv += ["--reporting-order", str(reporting_order)]
    return argv


def qemu_argv(kernel, initramfs, memory_mib, cpus, cmdline, reporting_order=None):
    """QEMU's microvm with the same balloon (free page reporting on) and the same kernel options."""
    if reporting_order is not None:
        cmdline += f" page_reporting.page_reporting_order={reporting_order}"
    return ["qemu-system-x86_64", "-M", "microvm,acpi=on", "-accel", "kvm", "-cpu", "host",
            "-m", f"{memory_mib}M", "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-serial", "stdio", "-global", "virtio-mmio.force-legacy=false",
            "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
            "-device", "virtio-balloon-device,free-page-reporting=on"]


def meminfo_kib(line, field):
    found = re.search(rf"\b{field}=(\d+)kB", line)
    return int(found.group(1)) if found else None


def run_reclaim(argv, memory_mib, timeout_s=300, echo=None):
    """Runs the scenario once; returns a dict of the figures above plus status, output and why it
    failed (`error`), if it did."""
    run = VMRun(argv, echo=echo)
    result = {"argv": argv, "error": None}

    def stage(prefix, limit_s):
        found = run.wait_for(prefix, limit_s)
        if found is None and result["error"] is None:
            result["error"] = f"no '{prefix}' line within {limit_s} s"
        return found

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
    before = run.samples_between(0, start[0])
    baseline = before[-1][1] if before else None
    peak = max((mib for _, mib in run.samples_between(touched[0] - 1, freed[0] + 0.5)), default=None)
    after = run.samples_between(freed[0], after_hold[0])
    lowest = min((mib for _, mib in after), default=None)
    if baseline is None or peak is None or lowest is None or peak <= baseline:
        result["error"] = "too few RSS samples"
        return result
    result.update(baseline_mib=baseline, peak_mib=peak, lowest_mib=lowest)
    result["returned-pct"] = (peak - lowest) / (peak - baseline) * 100
    threshold = peak - 0.9 * (peak - lowest)
    result["t90-s"] = next((at - freed[0] for at, mib in after if mib <= threshold), None)
    pcp = [run.first(f"reclaim: pcp {when}") for when in ("before", "after-hold")]
    pages = [re.search(r"pages=(\d+)", found[1]) if found else None for found in pcp]
    if all(pages):
        result["pcp-growth-mib"] = (int(pages[1].group(1)) - int(pages[0].group(1))) * 4096 / MIB
    mem_free = meminfo_kib(after_hold[1], "MemFree")
    if guest_ram is not None and mem_free is not None:
        result["guest_ram_mib"] = guest_ram / MIB
        result["resident-free-mib"] = guest_ram / MIB - (memory_mib - mem_free / 1024)
    return result


def figure(result, key, digits=1):
    value = result.get(key)
    return "-" if value is None else f"{value:.{digits}f}"
