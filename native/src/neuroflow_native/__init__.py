"""NeuroFlow's native launchers (Linux).

:func:`spawn` starts a program the way ``posix_spawn`` does (the child shares this
process's memory until its exec, so starting it costs about as much as a bare spawn), but
lets the child set itself up first: the fd map, a new session, its work directory, the
run's cgroups, rlimits, a private view of the work directory, ``no_new_privs`` and a
privilege drop done with raw system calls (which change the child's credentials only,
never the parent's threads').  The process sandbox uses it when it is installed, with
:func:`deadline_fd` (a timerfd) for a run's wall-clock deadline and :func:`chown_tree`
to hand the work directory to a run's uid and back.

``neuroflow_native._namespace.launch`` is the namespace sandbox's launcher: it clones the
caller into fresh Linux namespaces, builds a minimal root and runs the command under a
tiny PID 1, without capabilities and under a seccomp filter.
"""

from neuroflow_native._spawn import chown_tree, deadline_fd, spawn

__all__ = ["chown_tree", "deadline_fd", "spawn"]
__version__ = "0.1.0"
