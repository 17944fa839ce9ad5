/* What the namespace launcher (_namespace.c) and the PID 1 program it executes
 * (_ns_init.c) share: the steps a failure is reported for, the report, and the fds the
 * PID 1 program finds open. */
#ifndef NF_NS_COMMON_H
#define NF_NS_COMMON_H

enum step {
    STEP_PDEATHSIG, STEP_SYNC, STEP_CGROUP, STEP_SIGNALS, STEP_CLOSE_FDS, STEP_SETSID, STEP_CGROUPNS,
    STEP_HOSTNAME, STEP_PRIVATE, STEP_ROOT_TMPFS, STEP_PIVOT, STEP_MOUNT, STEP_MKDIR,
    STEP_DETACH_OLDROOT, STEP_ROOT_READONLY, STEP_CHDIR, STEP_LOOPBACK, STEP_DUMPABLE,
    STEP_FORK, STEP_FD_MAP, STEP_SETGROUPS, STEP_SETRESGID, STEP_SETRESUID, STEP_CAPS,
    STEP_NO_NEW_PRIVS, STEP_SETRLIMIT, STEP_SECCOMP, STEP_EXEC, STEP_HIDE_ARGS, STEP_KEYRING,
    STEP_INIT_EXEC, STEP_COUNT
};

/* A failed step, written to the report pipe before the failing process exits. */
struct report {
    int err;
    int step;
    int index;
};

/* The PID 1 program's fds besides the command's 0-2. */
#define NF_INIT_REPORT_FD 3
#define NF_INIT_STATUS_FD 4

#endif
