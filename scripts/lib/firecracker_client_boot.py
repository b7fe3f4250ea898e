"""Boots a guest through Ebb with firecracker-python (PyPI, unmodified), the way its MicroVM.create
does, step for step, with the package's own classes: ProcessManager starts the binary at the
package's fixed path (/usr/local/bin/firecracker, here Ebb) with `--api-sock --id --log-path`,
NetworkManager makes the tap with pyroute2, Api and Resource send every request, VMMManager pauses,
resumes and reads the configuration, and ProcessManager.stop ends it with SIGTERM.

MicroVM itself cannot run here: its constructor asks ifconfig.me for the host's public IP and a
Docker daemon for images. What it would do besides is NAT with nftables, which the test has no use
for. Its default data path (/var/lib/firecracker) and binary path are fixed, so the Swift test runs
this script in a mount and network namespace of its own (see FirecrackerClientTests.swift).

Prints one line per step, "client: <step> ..." and last "client: done" or "client: failed <why>".
"""
import argparse
import os
import signal
import subprocess
import sys
import time

from firecracker.api import Resource
from firecracker.config import MicroVMConfig
from firecracker.network import NetworkManager
from firecracker.process import ProcessManager
from firecracker.utils import generate_id
from firecracker.vmm import VMMManager


def say(*words):
    print("client:", *words, flush=True)


def wait_for(what, check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timeout waiting for {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--disk", required=True)
    parser.add_argument("--guest-ip", default="172.16.0.2")
    parser.add_argument("--gateway-ip", default="172.16.0.1")
    options = parser.parse_args()

    config = MicroVMConfig()
    vm_id = generate_id()
    vmm, process, network = VMMManager(), ProcessManager(), NetworkManager()
    vmm_dir = f"{config.data_path}/{vm_id}"
    # As MicroVM._run_firecracker: the socket path, the VM's directories, the log file.
    socket = vmm.socket_file(vm_id)
    for path in (vmm_dir, f"{vmm_dir}/rootfs", f"{vmm_dir}/logs"):
        vmm.create_vmm_dir(path)
    vmm.create_log_file(vm_id, f"{vm_id}.log")
    tap = f"tap_{vm_id}"
    network.create_tap(tap, None, options.gateway_ip)
    say("tap", tap, "up with", options.gateway_ip)

    pid = process.start(vm_id, ["--api-sock", socket, "--id", vm_id, "--log-path", f"{vmm_dir}/logs/{vm_id}.log"])
    # This script is the VMM's parent, so it reaps it (MicroVM's users leave that to init): a
    # zombie would look alive to ProcessManager.stop's kill(pid, 0).
    status = {}

    def reap(_signum, _frame):
        try:
            done, code = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done == pid:
            status["code"] = os.waitstatus_to_exitcode(code)

    signal.signal(signal.SIGCHLD, reap)
    reap(None, None)
    say("started", config.binary_path, "pid", pid, "comm", open(f"/proc/{pid}/comm").read().strip())
    api = vmm.get_api(vm_id)
    wait_for("the API", lambda: os.path.exists(socket), 15)
    say("state", vmm.get_vmm_state(vm_id))

    # MicroVM.create's requests, in its order, then the balloon (a Resource of the package's own).
    boot_args = (f"console=ttyS0 reboot=k pci=off panic=1 "
                 f"ip={options.guest_ip}::{options.gateway_ip}:255.255.255.0:{vm_id}:eth0:on "
                 f"ebb.scenario=net-echo ebb.ip={options.guest_ip}")
    api.boot.put(kernel_image_path=options.kernel, boot_args=boot_args)
    api.drive.put(drive_id="rootfs", path_on_host=options.disk, is_root_device=True, is_read_only=False)
    api.machine_config.put(vcpu_count=1, mem_size_mib=256)
    api.network.put(iface_id="eth0", host_dev_name=tap)
    balloon = Resource(api, "/balloon")
    balloon.put(amount_mib=0, deflate_on_oom=True, stats_polling_interval_s=1)
    say("configured")
    api.actions.put(action_type="InstanceStart")
    serial = f"{vmm_dir}/firecracker.log"
    wait_for("the guest's NIC", lambda: "net: ready" in open(serial).read(), 120)
    say("state", vmm.get_vmm_state(vm_id))

    ping = subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "5", options.guest_ip], capture_output=True, text=True, timeout=60)
    received = [line for line in ping.stdout.splitlines() if "received" in line]
    say("ping", received[0] if received else ping.stdout.strip() + ping.stderr.strip())

    balloon.patch(amount_mib=16)
    statistics = Resource(api, "/balloon/statistics")
    say("balloon target_mib", statistics.get().json()["target_mib"])
    statistics.patch(stats_polling_interval_s=2)
    say("balloon stats_polling_interval_s", balloon.get().json()["stats_polling_interval_s"])

    vmm.update_vmm_state(vm_id, "Paused")
    say("state", vmm.get_vmm_state(vm_id))
    vmm.update_vmm_state(vm_id, "Resumed")
    say("state", vmm.get_vmm_state(vm_id))
    drives = vmm.get_vmm_config(vm_id)["drives"]
    say("drives", " ".join(f"{d['drive_id']}={d['path_on_host']}" for d in drives))
    api.close()

    say("stopped", process.stop(vm_id))
    wait_for("the VMM's exit status", lambda: "code" in status, 10)
    say("exit", status["code"])
    say("serial", open(serial).read().strip().splitlines()[-1])
    log = open(f"{vmm_dir}/logs/{vm_id}.log").read().strip().splitlines()
    say("log", next((line for line in log if "stopped by" in line), log[-1] if log else "(empty)"))


if __name__ == "__main__":
    try:
        main()
        say("done")
    except Exception as error:  # one line for the Swift test, whatever the client raised
        say("failed", type(error).__name__, error)
        sys.exit(1)
