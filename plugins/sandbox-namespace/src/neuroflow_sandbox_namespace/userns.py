"""Whether this kernel lets this process create user namespaces, and if not, which setting
says no (read from ``/proc/sys``: nothing is created to find out)."""

from __future__ import annotations

import os


def _read(root: str, name: str) -> str | None:
    try:
        with open(os.path.join(root, name)) as fh:
            return fh.read().strip()
    except OSError:
        return None


def userns_problem(sys_root: str = "/proc/sys", euid: int | None = None) -> str | None:
    """``None`` when user namespaces can be made, else why not, naming the sysctl to change.

    Args:
        sys_root: where the kernel's sysctls are (``/proc/sys``).
        euid: whose view (default: this process's); root is not bound by the settings
            for unprivileged users.
    """
    euid = os.geteuid() if euid is None else euid
    limit = _read(sys_root, "user/max_user_namespaces")
    if limit is None:
        return f"{sys_root}/user/max_user_namespaces is missing: this kernel has no user " \
               "namespaces (CONFIG_USER_NS)"
    if limit == "0":
        return "user namespaces are disabled: sysctl user.max_user_namespaces=0 (set it to " \
               "a positive number, e.g. sysctl -w user.max_user_namespaces=15000)"
    if euid == 0:
        return None
    if _read(sys_root, "kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are disabled: sysctl " \
               "kernel.unprivileged_userns_clone=0 (set it to 1, or run as root)"
    if _read(sys_root, "kernel/apparmor_restrict_unprivileged_userns") == "1":
        return "AppArmor restricts unprivileged user namespaces: sysctl " \
               "kernel.apparmor_restrict_unprivileged_userns=1 (set it to 0, or give the " \
               "Python interpreter an AppArmor profile allowing userns)"
    return None
