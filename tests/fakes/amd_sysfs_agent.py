"""Runs `cuagent <args>` in a private mount namespace whose /sys/class, /sys/devices and
/sys/module are a synthetic amdgpu tree (fakes.amd_sysfs.AmdSysfs) and whose /dev/shm is
empty, so the real librocm_smi64 finds the synthetic device and no other, and its mutex
files (/dev/shm/rocm_smi_card*) never meet the host's or another test's:

    python amd_sysfs_agent.py <sysfs root> [--hide-pci-ids] run --driver rocm_smi ...

--hide-pci-ids also hides the PCI id database (/dev/null over each pci.ids the library
looks for), as in a minimal container image.

Needs root (CI runs as root). Every step execs the next, so the agent keeps this
process's pid and the test's signals reach it.
"""

from __future__ import annotations

import os
import sys

# The PCI id databases librocm_smi64 5.2.3 names a device from.
PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids", "/var/lib/pciutils/pci.ids")
MOUNT = ('mount --bind "$1" /sys/class && mount --bind "$2" /sys/devices && mount --bind "$3" /sys/module '
         '&& mount -t tmpfs -o size=1m cuagent-test-shm /dev/shm && shift 3 && exec "$@"')


def main() -> None:
    root, *args = sys.argv[1:]
    script = MOUNT
    if args[:1] == ["--hide-pci-ids"]:
        args = args[1:]
        hide = "".join(f"mount --bind /dev/null {path} && " for path in PCI_IDS if os.path.exists(path))
        script = hide + MOUNT
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh",
                          f"{root}/class", f"{root}/devices", f"{root}/module",
                          sys.executable, "-m", "cuagent.cli", *args])


if __name__ == "__main__":
    main()
