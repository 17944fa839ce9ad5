/* neuroflow_native._namespace: start a program in a fresh set of Linux namespaces.
 *
 * launch() clones the calling process straight into new user, pid, mount, ipc, uts and
 * (optionally) network namespaces -- no helper binary is executed -- and the clone becomes
 * PID 1 of the new pid namespace.  The parent opens the run's cgroup files, maps the run's
 * uid/gid, then lets the clone go on.  PID 1, every call checked, in this order:
 *
 *   parent-death signal, close every other fd, join the run's cgroups (before anything
 *   else runs), wait for the parent, signals back to their defaults, setsid, the bind sources
 *   opened (no symlink followed on the way), the run's ids, a new session keyring, a new cgroup namespace, hostname, every mount private, a tmpfs root, pivot_root into it, the
 *   mounts of the plan (read-only binds, tmpfs, proc, device binds, symlinks), the old root
 *   detached, the new root read-only, chdir, loopback up, not dumpable; then it forks the
 *   command and waits, reaping every zombie, until the command ends, writes the command's
 *   wait status to the status pipe and exits (which kills whatever is left in the
 *   namespace).
 *
 * PID 1 takes the run's ids first (setgroups([]) when the caller may map any id, setresgid,
 * setresuid).  The command, in order: its fds 0-2 (every other fd closed), every
 * capability dropped (bounding, ambient, effective, permitted, inheritable), no_new_privs,
 * rlimits, the seccomp filter, execve.
 *
 * The clone is a copy of the caller (fork semantics) made with a raw system call, so the
 * child never returns to Python, never allocates and only uses what the parent prepared;
 * credentials change through raw system calls (glibc's wrappers would try to signal the
 * parent's other threads, which the child does not have).  A failing step is reported on a
 * close-on-exec pipe as (errno, step, index); end of file means the command was exec'd.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

#if defined(__x86_64__)
#define NF_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NF_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "neuroflow_native._namespace supports x86_64 and aarch64"
#endif

#if defined(SYS_setgroups32)
#define NF_SYS_SETGROUPS SYS_setgroups32
#define NF_SYS_SETRESGID SYS_setresgid32
#define NF_SYS_SETRESUID SYS_setresuid32
#else
#define NF_SYS_SETGROUPS SYS_setgroups
#define NF_SYS_SETRESGID SYS_setresgid
#define NF_SYS_SETRESUID SYS_setresuid
#endif

/* How long PID 1 may take to set up (mounts, ids) before the caller gives up on it. */
#define SETUP_TIMEOUT_MS 30000

/* Namespace flags a sandboxed clone() may not use. */
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | \
                  CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)

enum step {
    STEP_PDEATHSIG, STEP_SYNC, STEP_CGROUP, STEP_SIGNALS, STEP_CLOSE_FDS, STEP_SETSID, STEP_CGROUPNS,
    STEP_HOSTNAME, STEP_PRIVATE, STEP_ROOT_TMPFS, STEP_PIVOT, STEP_MOUNT, STEP_MKDIR,
    STEP_DETACH_OLDROOT, STEP_ROOT_READONLY, STEP_CHDIR, STEP_LOOPBACK, STEP_DUMPABLE,
    STEP_FORK, STEP_FD_MAP, STEP_SETGROUPS, STEP_SETRESGID, STEP_SETRESUID, STEP_CAPS,
    STEP_NO_NEW_PRIVS, STEP_SETRLIMIT, STEP_SECCOMP, STEP_EXEC, STEP_HIDE_ARGS, STEP_KEYRING, STEP_COUNT
};

static const char *const step_names[STEP_COUNT] = {
    [STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)", [STEP_SYNC] = "waiting for the parent",
    [STEP_CGROUP] = "cgroup",
    [STEP_SIGNALS] = "signals", [STEP_CLOSE_FDS] = "close_fds", [STEP_SETSID] = "setsid",
    [STEP_CGROUPNS] = "unshare(CLONE_NEWCGROUP)", [STEP_HOSTNAME] = "sethostname",
    [STEP_PRIVATE] = "making mounts private", [STEP_ROOT_TMPFS] = "mounting the root tmpfs",
    [STEP_PIVOT] = "pivot_root", [STEP_MOUNT] = "mount", [STEP_MKDIR] = "making a mount point",
    [STEP_DETACH_OLDROOT] = "detaching the old root",
    [STEP_ROOT_READONLY] = "making the root read-only", [STEP_CHDIR] = "chdir",
    [STEP_LOOPBACK] = "bringing up loopback", [STEP_DUMPABLE] = "prctl(PR_SET_DUMPABLE)",
    [STEP_FORK] = "fork", [STEP_FD_MAP] = "fd_map", [STEP_SETGROUPS] = "setgroups",
    [STEP_SETRESGID] = "setresgid", [STEP_SETRESUID] = "setresuid",
    [STEP_CAPS] = "dropping capabilities", [STEP_NO_NEW_PRIVS] = "prctl(PR_SET_NO_NEW_PRIVS)",
    [STEP_SETRLIMIT] = "setrlimit", [STEP_SECCOMP] = "seccomp", [STEP_EXEC] = "exec",
    [STEP_HIDE_ARGS] = "wiping the caller's command line and environment",
    [STEP_KEYRING] = "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
};

/* What a mount of the plan is. */
enum kind {
    M_RO_BIND = 0,  /* bind src (not its submounts) read-only, nosuid, nodev */
    M_RW_BIND = 1,  /* bind src read-write, nosuid, nodev */
    M_TMPFS = 2,    /* a tmpfs, nosuid, nodev; data = its options ("size=...,mode=...") */
    M_PROC = 3,     /* a fresh proc for the new pid namespace */
    M_DEV_BIND = 4, /* bind a device node (read-write, nosuid, noexec) */
    M_SYMLINK = 5,  /* a symlink at dst pointing to src */
    M_DIR = 6,      /* an empty directory */
    M_REMOUNT_RO = 7, /* make the mount at dst read-only */
    M_KIND_COUNT
};

struct mnt {
    int kind;
    int src_fd;       /* binds: an O_PATH fd of src, opened before the ids change */
    const char *src;  /* host path (binds) or link target */
    const char *dst;  /* path in the new root */
    const char *data; /* tmpfs options */
};

struct report {
    int err;
    int step;
    int index;
};

struct plan {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *hostname;
    int fds[3];
    struct mnt *mounts;
    Py_ssize_t nmounts;
    int nrl;
    int *rl_resource;
    struct rlimit *rl_value;
    uid_t uid;
    gid_t gid;
    int drop_groups;
    int seccomp;
    int loopback;
    int sync_fd;   /* read end: the parent's go */
    int report_fd; /* write end, close-on-exec */
    int status_fd; /* write end: the command's wait status */
    int *cg_fds;   /* the run's cgroup.procs / tasks files, opened by the caller */
    int ncg;
};

/* --- the seccomp filter --------------------------------------------------------------- */

#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define DENY_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

static const int denied_syscalls[] = {
#ifdef SYS_mount
    SYS_mount,
#endif
#ifdef SYS_umount2
    SYS_umount2,
#endif
#ifdef SYS_umount
    SYS_umount,
#endif
#ifdef SYS_pivot_root
    SYS_pivot_root,
#endif
#ifdef SYS_chroot
    SYS_chroot,
#endif
#ifdef SYS_fsopen
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree,
#endif
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
#ifdef SYS_open_tree_attr
    SYS_open_tree_attr,
#endif
    SYS_unshare, SYS_setns, SYS_ptrace,
#ifdef SYS_process_vm_readv
    SYS_process_vm_readv, SYS_process_vm_writev,
#endif
#ifdef SYS_kcmp
    SYS_kcmp,
#endif
#ifdef SYS_bpf
    SYS_bpf,
#endif
#ifdef SYS_perf_event_open
    SYS_perf_event_open,
#endif
    SYS_keyctl, SYS_add_key, SYS_request_key,
#ifdef SYS_kexec_load
    SYS_kexec_load,
#endif
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_init_module, SYS_finit_module, SYS_delete_module,
#ifdef SYS_create_module
    SYS_create_module,
#endif
    SYS_reboot, SYS_swapon, SYS_swapoff,
#ifdef SYS_userfaultfd
    SYS_userfaultfd,
#endif
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_open_by_handle_at
    SYS_open_by_handle_at, SYS_name_to_handle_at,
#endif
    SYS_acct, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex,
    SYS_quotactl, SYS_syslog, SYS_vhangup, SYS_sethostname, SYS_setdomainname,
#ifdef SYS_iopl
    SYS_iopl, SYS_ioperm,
#endif
#ifdef SYS_lookup_dcookie
    SYS_lookup_dcookie,
#endif
#ifdef SYS_uselib
    SYS_uselib,
#endif
#ifdef SYS_ustat
    SYS_ustat,
#endif
#ifdef SYS_sysfs
    SYS_sysfs,
#endif
#ifdef SYS__sysctl
    SYS__sysctl,
#endif
#ifdef SYS_nfsservctl
    SYS_nfsservctl,
#endif
#ifdef SYS_fanotify_init
    SYS_fanotify_init,
#endif
#ifdef SYS_pidfd_getfd
    SYS_pidfd_getfd,
#endif
#ifdef SYS_quotactl_fd
    SYS_quotactl_fd,
#endif
#ifdef SYS_lsm_set_self_attr
    SYS_lsm_set_self_attr,
#endif
};

#define NDENIED ((int)(sizeof denied_syscalls / sizeof denied_syscalls[0]))
/* arch check (4) + x32 check (2) + denied (2 each) + ioctl (6) + clone (5) + clone3 (2)
 * + personality (9) + socket (6) + allow (1) */
#define FILTER_MAX (2 * NDENIED + 48)

static struct sock_filter filter[FILTER_MAX];
static unsigned short filter_len;

#define PUT(code, k, jt, jf) (filter[n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define PUTS(code, k) (filter[n++] = (struct sock_filter)BPF_STMT(code, k))

static void build_filter(void)
{
    unsigned short n = 0;
    int i;

    /* Another architecture's system call numbers mean other calls: kill. */
    PUTS(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    PUT(BPF_JMP | BPF_JEQ | BPF_K, NF_AUDIT_ARCH, 1, 0);
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    PUTS(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* The x32 ABI (numbers with bit 30 set) would bypass every check below. */
    PUT(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
#endif
    for (i = 0; i < NDENIED; i++) {
        PUT(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied_syscalls[i], 0, 1);
        PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
    }
    /* ioctl(fd, TIOCSTI | TIOCLINUX, ...): pushing input into a terminal. */
    PUT(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 5);
    PUTS(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1));
    PUT(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0);
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
    /* clone() with any namespace flag; clone3's flags are in memory the filter cannot
     * read, so it says ENOSYS and libc falls back to clone(). */
    PUT(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
    PUTS(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0));
    PUT(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 1, 0);
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
#ifdef SYS_clone3
    PUT(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(ENOSYS));
#endif
    /* personality(): only the values Docker's profile allows (the default, PER_LINUX32,
     * UNAME26, both, and the query); the other bits switch off hardening for the
     * sandboxed programs (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO...). */
    PUT(BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, 0, 8);
    PUTS(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0));
    PUT(BPF_JMP | BPF_JEQ | BPF_K, 0x0, 5, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, 0x8, 4, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, 0x20000, 3, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, 0x20008, 2, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffU, 1, 0);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    /* socket(AF_ALG | AF_VSOCK, ...) */
    PUT(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 5);
    PUTS(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0));
    PUT(BPF_JMP | BPF_JEQ | BPF_K, AF_ALG, 2, 0);
    PUT(BPF_JMP | BPF_JEQ | BPF_K, AF_VSOCK, 1, 0);
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    PUTS(BPF_RET | BPF_K, DENY_ERRNO(EPERM));
    PUTS(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter_len = n;
}

/* --- the child: PID 1 and the command ---------------------------------------------- */

static void __attribute__((noreturn)) fail(const struct plan *p, int step, int index)
{
    struct report r = {errno, step, index};
    ssize_t unused = write(p->report_fd, &r, sizeof r);

    (void)unused;
    _exit(127);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *at = buf;

    while (len > 0) {
        ssize_t done = write(fd, at, len);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        at += done;
        len -= (size_t)done;
    }
    return 0;
}

/* mkdir -p for dst (an absolute path in the new root, at most PATH_MAX). */
static int make_dirs(const char *path, int last_too)
{
    char buf[4096];
    size_t len = strlen(path), i;

    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] == '/' || (buf[i] == '\0' && last_too)) {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            buf[i] = saved;
        }
    }
    return 0;
}

/* A bind source, opened without following any symlink on the way (ELOOP if there is
 * one): a source the sandboxed code can reach (below the work directory or a writable bind)
 * could otherwise be swapped for a link to any host directory between two runs, and the
 * host's root would open it for the next run.  Kernels without openat2 walk the path one
 * component at a time with O_NOFOLLOW. */
static int open_source(const char *path)
{
    struct open_how how;
    char part[256];
    const char *at = path;
    int dir, fd;

    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
        return fd;
    dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    while (dir >= 0) {
        size_t len;
        while (*at == '/')
            at++;
        if (*at == '\0')
            return dir;
        len = strcspn(at, "/");
        if (len >= sizeof part) {
            close(dir);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(part, at, len);
        part[len] = '\0';
        at += len;
        fd = openat(dir, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        close(dir);
        if (fd >= 0) {
            struct stat st;
            if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
                close(fd);
                errno = ELOOP;
                return -1;
            }
        }
        dir = fd;
    }
    return -1;
}

static int is_bind(int kind)
{
    return kind == M_RO_BIND || kind == M_RW_BIND || kind == M_DEV_BIND;
}

/* "/oldroot/proc/self/fd/N": what fd N refers to, as a path mount(2) takes. */
static void fd_path(char link[64], int fd)
{
    static const char prefix[] = "/oldroot/proc/self/fd/";
    char digits[16];
    int nd = 0, at = (int)sizeof prefix - 1;

    memcpy(link, prefix, sizeof prefix);
    do {
        digits[nd++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd > 0);
    while (nd > 0)
        link[at++] = digits[--nd];
    link[at] = '\0';
}

/* The mount point dst (absolute, in the new root), made where missing -- a directory, or
 * an empty file when !dir -- and opened (O_PATH) without following any symlink: a path
 * below the work directory or a writable bind is the sandboxed code's to change, and a
 * link planted there must neither create anything outside (an intermediate link to
 * /oldroot/...) nor carry the mount elsewhere.  ELOOP when a component is a link. */
static int open_mount_point(const char *dst, int dir)
{
    char part[256];
    const char *at = dst;
    int d = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    while (d >= 0) {
        size_t len;
        int fd, last;
        struct stat st;

        while (*at == '/')
            at++;
        if (*at == '\0')
            return d;
        len = strcspn(at, "/");
        if (len >= sizeof part) {
            close(d);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(part, at, len);
        part[len] = '\0';
        at += len;
        last = at[strspn(at, "/")] == '\0';
        if (!last || dir) {
            if (mkdirat(d, part, 0755) < 0 && errno != EEXIST)
                goto bad;
        } else if (mknodat(d, part, S_IFREG | 0644, 0) < 0 && errno != EEXIST) {
            /* Made, not opened: opening a FIFO planted there would block forever. */
            goto bad;
        }
        fd = openat(d, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            goto bad;
        close(d);
        d = fd;
        if (fstat(d, &st) < 0)
            goto bad;
        if (S_ISLNK(st.st_mode)) {
            errno = ELOOP;
            goto bad;
        }
    }
    return -1;
bad:
    {
        int saved = errno;
        close(d);
        errno = saved;
    }
    return -1;
}

/* Remount the mount at path (a path or an fd_path) with flags, keeping the flags the
 * kernel locked on it (in a user namespace a remount may add restrictions but not lift
 * the ones it inherited); keep: which of its current flags to keep. */
static int remount(const char *path, unsigned long flags, unsigned long keep)
{
    struct statvfs sv;

    if (statvfs(path, &sv) < 0)
        return -1;
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | flags | (sv.f_flag & keep), NULL);
}

#define KEEP_FLAGS (ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME)

/* Mount src_path (or a new fs of type) at dst, by an fd of the mount point opened
 * without following links; -2: the mount point could not be made. */
static int mount_at(const char *src_path, const char *dst, int dir, const char *type,
                    unsigned long flags, const char *data)
{
    char link[64];
    int target = open_mount_point(dst, dir), rc, saved;

    if (target < 0)
        return -2;
    fd_path(link, target);
    rc = mount(src_path, link, type, flags, data);
    saved = errno;
    close(target);
    errno = saved;
    return rc;
}

static int do_mount(const struct mnt *m)
{
    char link[64];
    int rc, top, saved;
    struct stat st;

    switch (m->kind) {
    case M_RO_BIND:
    case M_RW_BIND:
    case M_DEV_BIND:
        /* The source, by the fd opened while our ids could still reach it (a 0700
         * directory of the host's root above a work directory, say).  Read-only binds
         * are not recursive: a mount below the source (with flags of its own, maybe
         * writable) stays out of sight instead of coming along read-write. */
        fd_path(link, m->src_fd);
        rc = mount_at(link, m->dst, fstat(m->src_fd, &st) < 0 || S_ISDIR(st.st_mode), NULL,
                      MS_BIND | (m->kind == M_RO_BIND ? 0 : MS_REC), NULL);
        if (rc < 0)
            return rc;
        /* The new mount, found again the same way, for its flags. */
        top = open_source(m->dst);
        if (top < 0)
            return -1;
        fd_path(link, top);
        if (m->kind == M_RO_BIND)
            rc = remount(link, MS_RDONLY | MS_NOSUID | MS_NODEV, KEEP_FLAGS);
        else if (m->kind == M_DEV_BIND)
            rc = remount(link, MS_NOSUID | MS_NOEXEC, (KEEP_FLAGS | ST_RDONLY) & ~ST_NODEV);
        else
            rc = remount(link, MS_NOSUID | MS_NODEV, KEEP_FLAGS | ST_RDONLY);
        saved = errno;
        close(top);
        errno = saved;
        return rc;
    case M_TMPFS:
        return mount_at("tmpfs", m->dst, 1, "tmpfs", MS_NOSUID | MS_NODEV, m->data);
    case M_PROC:
        return mount_at("proc", m->dst, 1, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    case M_SYMLINK:
        if (make_dirs(m->dst, 0) < 0)
            return -2;
        if (symlink(m->src, m->dst) < 0 && errno != EEXIST)
            return -1;
        return 0;
    case M_DIR:
        top = open_mount_point(m->dst, 1);
        if (top < 0)
            return -2;
        close(top);
        return 0;
    case M_REMOUNT_RO:
        return remount(m->dst, MS_RDONLY, KEEP_FLAGS);
    default:
        errno = EINVAL;
        return -1;
    }
}

static int loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/* Close every fd but the (sorted, distinct) ones in keep. */
static int close_others(int *keep, int n)
{
    int i, j, low = 0;

    for (i = 1; i < n; i++) /* insertion sort: n is tiny */
        for (j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    for (i = 0; i < n; i++) {
        if (keep[i] < 0 || keep[i] < low)
            continue;
        if (keep[i] > low && syscall(SYS_close_range, (unsigned)low, (unsigned)keep[i] - 1,
                                     0) < 0)
            return -1;
        low = keep[i] + 1;
    }
    return (int)syscall(SYS_close_range, (unsigned)low, ~0U, 0);
}

static void __attribute__((noreturn)) run_command(const struct plan *p)
{
    int i, moved[3];
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    struct sock_fprog prog = {filter_len, filter};

    /* The fd map: first out of the way (above 2), then into place. */
    for (i = 0; i < 3; i++) {
        moved[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 3);
        if (moved[i] < 0)
            fail(p, STEP_FD_MAP, i);
    }
    for (i = 0; i < 3; i++)
        if (dup2(moved[i], i) < 0)
            fail(p, STEP_FD_MAP, i);
    {
        int keep[4] = {0, 1, 2, p->report_fd};
        if (close_others(keep, 4) < 0)
            fail(p, STEP_CLOSE_FDS, 0);
    }
    /* Capabilities are numbered 0 .. cap_last_cap without gaps: the first EINVAL is
     * the end of the list (not 64 calls when the kernel knows 41). */
    for (i = 0; i <= 63; i++)
        if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0) {
            if (errno != EINVAL)
                fail(p, STEP_CAPS, i);
            break;
        }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail(p, STEP_CAPS, 64);
    memset(caps, 0, sizeof caps);
    if (syscall(SYS_capset, &head, caps) < 0)
        fail(p, STEP_CAPS, 65);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(p, STEP_NO_NEW_PRIVS, 0);
    for (i = 0; i < p->nrl; i++)
        if (setrlimit(p->rl_resource[i], &p->rl_value[i]) < 0)
            fail(p, STEP_SETRLIMIT, i);
    if (p->seccomp && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        fail(p, STEP_SECCOMP, 0);
    execve(p->path, p->argv, p->envp);
    fail(p, STEP_EXEC, 0);
}

static char cmd_stack[64 * 1024] __attribute__((aligned(64)));

static int command_main(void *arg)
{
    const struct plan *p = arg;

    run_command(p);
}

/* PID 1 is a copy of the caller: its /proc/1/cmdline -- readable by anyone, whatever
 * the dumpable flag -- would show the caller's command line (tokens, passwords given as
 * arguments), and its environment block is the caller's.  Zero both areas of our copy
 * (fields 48-51 of /proc/self/stat: arg_start, arg_end, env_start, env_end). */
static int wipe_args(void)
{
    char buf[2048], *at;
    unsigned long v[4];
    ssize_t got = 0, n;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field, i;

    if (fd < 0)
        return -1;
    while ((n = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0)
        got += n;
    close(fd);
    if (n < 0)
        return -1;
    buf[got] = '\0';
    at = strrchr(buf, ')'); /* the name (field 2) may hold spaces and parentheses */
    if (at == NULL) {
        errno = EINVAL;
        return -1;
    }
    at++;
    for (field = 3; field < 48 && at != NULL; field++)
        at = strchr(at + 1, ' ');
    for (i = 0; i < 4; i++) {
        char *end;
        if (at == NULL) {
            errno = EINVAL;
            return -1;
        }
        v[i] = strtoul(at + 1, &end, 10);
        at = *end == ' ' ? end : NULL;
        if (i < 3 && at == NULL) {
            errno = EINVAL;
            return -1;
        }
    }
    if (v[1] < v[0] || v[3] < v[2]) {
        errno = EINVAL;
        return -1;
    }
    memset((void *)v[0], 0, v[1] - v[0]);
    memset((void *)v[2], 0, v[3] - v[2]);
    return 0;
}

static void __attribute__((noreturn)) pid1(const struct plan *p, pid_t parent)
{
    char go;
    Py_ssize_t i;
    int sig, status = 0, code;
    pid_t cmd, done;
    struct sigaction dfl;
    sigset_t all;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(p, STEP_PDEATHSIG, 0);
    (void)parent;
    {
        int keep[6 + 8], nkeep = 6, j;
        keep[0] = p->fds[0];
        keep[1] = p->fds[1];
        keep[2] = p->fds[2];
        keep[3] = p->sync_fd;
        keep[4] = p->report_fd;
        keep[5] = p->status_fd;
        for (j = 0; j < p->ncg; j++)
            keep[nkeep++] = p->cg_fds[j];
        if (close_others(keep, nkeep) < 0)
            fail(p, STEP_CLOSE_FDS, 0);
        /* Join the run's cgroups: "0" is ourselves, which skips the global lock a write
         * of another pid takes (it can wait for an RCU grace period: milliseconds).  The
         * files were opened by the caller, whose credentials the kernel checks. */
        for (j = 0; j < p->ncg; j++) {
            if (write(p->cg_fds[j], "0", 1) != 1)
                fail(p, STEP_CGROUP, j);
            close(p->cg_fds[j]);
        }
    }
    if (wipe_args() < 0)
        fail(p, STEP_HIDE_ARGS, 0);
    /* The parent writes our id maps, then one byte; end of file without it means the
     * parent gave up (or died before the death signal was armed). */
    for (;;) {
        ssize_t got = read(p->sync_fd, &go, 1);
        if (got == 1)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        _exit(127);
    }
    close(p->sync_fd);
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, &dfl, NULL) < 0 && errno != EINVAL)
            fail(p, STEP_SIGNALS, sig);
    }
    sigemptyset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
        fail(p, STEP_SIGNALS, 0);
    if (setsid() < 0)
        fail(p, STEP_SETSID, 0);
    /* The bind sources, looked up while we still have the caller's ids (the host's root
     * can search its 0700 directories; the run's uid cannot). */
    for (i = 0; i < p->nmounts; i++) {
        struct mnt *m = &p->mounts[i];
        if (!is_bind(m->kind))
            continue;
        m->src_fd = open_source(m->src);
        if (m->src_fd < 0)
            fail(p, STEP_MOUNT, (int)i);
    }
    /* Our ids now, before anything is created: files can only be made by a mapped id
     * (the caller's root is not mapped).  The capabilities of the namespace stay until
     * the command drops them. */
    if (p->drop_groups && syscall(NF_SYS_SETGROUPS, 0, NULL) < 0)
        fail(p, STEP_SETGROUPS, 0);
    if (syscall(NF_SYS_SETRESGID, p->gid, p->gid, p->gid) < 0)
        fail(p, STEP_SETRESGID, 0);
    if (syscall(NF_SYS_SETRESUID, p->uid, p->uid, p->uid) < 0)
        fail(p, STEP_SETRESUID, 0);
    /* A new, empty session keyring of the run's own: the caller's (inherited across
     * clone, and "possessed" by whoever has it as session keyring) may hold its keys. */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS)
        fail(p, STEP_KEYRING, 0);
    /* Changing ids cleared the parent-death signal: arm it again, then make sure the
     * parent did not die in between (it holds the report pipe's read end until the
     * command is exec'd: a pipe without readers polls POLLERR). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(p, STEP_PDEATHSIG, 1);
    {
        struct pollfd alive = {p->report_fd, POLLOUT, 0};
        if (poll(&alive, 1, 0) < 0 || (alive.revents & (POLLERR | POLLHUP)))
            _exit(127);
    }
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(p, STEP_CGROUPNS, 0);
    if (sethostname(p->hostname, strlen(p->hostname)) < 0)
        fail(p, STEP_HOSTNAME, 0);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(p, STEP_PRIVATE, 0);
    /* The new root: a small tmpfs holding only mount points, stacked on the host's /tmp
     * (in this mount namespace only); the host's root stays reachable at /oldroot until
     * everything is bound. */
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
        < 0)
        fail(p, STEP_ROOT_TMPFS, 0);
    if (chdir("/tmp") < 0)
        fail(p, STEP_CHDIR, -1);
    if (mkdir("oldroot", 0700) < 0)
        fail(p, STEP_MKDIR, -1);
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0)
        fail(p, STEP_PIVOT, 0);
    if (chdir("/") < 0)
        fail(p, STEP_CHDIR, -1);
    for (i = 0; i < p->nmounts; i++) {
        int rc = do_mount(&p->mounts[i]);
        if (rc == -2)
            fail(p, STEP_MKDIR, (int)i);
        if (rc < 0)
            fail(p, STEP_MOUNT, (int)i);
    }
    for (i = 0; i < p->nmounts; i++)
        if (is_bind(p->mounts[i].kind))
            close(p->mounts[i].src_fd);
    if (umount2("/oldroot", MNT_DETACH) < 0)
        fail(p, STEP_DETACH_OLDROOT, 0);
    if (rmdir("/oldroot") < 0)
        fail(p, STEP_DETACH_OLDROOT, 1);
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL)
        < 0)
        fail(p, STEP_ROOT_READONLY, 0);
    if (chdir(p->cwd) < 0)
        fail(p, STEP_CHDIR, 0);
    if (p->loopback && loopback_up() < 0)
        fail(p, STEP_LOOPBACK, 0);
    /* Nothing in the sandbox may trace us or read our memory. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fail(p, STEP_DUMPABLE, 0);

    /* The command shares our memory until its exec, on a stack of its own: no page
     * tables are copied.  We do not wait for its exec (no CLONE_VFORK): our copy of the
     * report pipe is closed at once, so the caller sees end of file the moment the
     * command's exec closes the last copy, without a trip through us.  From here on we
     * only close fds and wait -- nothing that writes memory the command reads (the plan,
     * its stack), and no call that can fail and leave a value in the errno the command
     * may still read. */
    cmd = clone(command_main, cmd_stack + sizeof cmd_stack, CLONE_VM | SIGCHLD, (void *)p);
    if (cmd < 0)
        fail(p, STEP_FORK, 0);
    close(p->report_fd);
    close(p->fds[0]);
    close(p->fds[1]);
    close(p->fds[2]);
    /* Reap everything; when the command ends, report and go (the kernel then kills every
     * other process of the namespace). */
    for (;;) {
        done = waitpid(-1, &status, __WALL);
        if (done == cmd)
            break;
        if (done < 0 && errno != EINTR)
            _exit(126);
    }
    write_all(p->status_fd, &status, sizeof status);
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    _exit(code);
}

/* --- the parent ------------------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return -1;
    if (write_all(fd, text, strlen(text)) < 0)
        rc = -1;
    if (close(fd) < 0 && rc == 0)
        rc = -1;
    return rc;
}

static const char *to_path(PyObject *obj, PyObject *keep, const char *what)
{
    PyObject *bytes = NULL;

    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: expected a path, got None", what);
        return NULL;
    }
    if (!PyUnicode_FSConverter(obj, &bytes))
        return NULL;
    if (PyList_Append(keep, bytes) < 0) {
        Py_DECREF(bytes);
        return NULL;
    }
    Py_DECREF(bytes);
    return PyBytes_AS_STRING(bytes);
}

static char **to_strings(PyObject *seq, PyObject *keep, const char *what, Py_ssize_t *count)
{
    PyObject *fast = PySequence_Fast(seq, what);
    Py_ssize_t n, i;
    char **out;

    if (fast == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    out = PyMem_Calloc((size_t)n + 1, sizeof *out);
    if (out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *s = to_path(PySequence_Fast_GET_ITEM(fast, i), keep, what);
        if (s == NULL) {
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        out[i] = (char *)s;
    }
    Py_DECREF(fast);
    *count = n;
    return out;
}

static PyObject *step_error(const struct report *r, const struct plan *p)
{
    const char *name = (r->step >= 0 && r->step < STEP_COUNT) ? step_names[r->step] : "?";
    PyObject *message, *exc;

    if ((r->step == STEP_MOUNT || r->step == STEP_MKDIR) && r->index >= 0 &&
        r->index < p->nmounts) {
        const struct mnt *m = &p->mounts[r->index];
        if (r->step == STEP_MKDIR && r->err == ELOOP)
            message = PyUnicode_FromFormat(
                "making a mount point: %s leads through a symbolic link (refused: a link "
                "the sandboxed code planted could lead out of the sandbox)", m->dst);
        else if (r->step == STEP_MOUNT && r->err == ELOOP && is_bind(m->kind))
            message = PyUnicode_FromFormat(
                "mount: the bind source %s leads through a symbolic link (refused: it could "
                "point anywhere on the host); bind its real path", m->src);
        else
            message = PyUnicode_FromFormat("%s: %s (%s%s%s)", name, strerror(r->err),
                                           m->src ? m->src : "", m->src ? " -> " : "",
                                           m->dst);
    } else if (r->step == STEP_SETRLIMIT && r->index >= 0 && r->index < p->nrl) {
        message = PyUnicode_FromFormat("setrlimit(resource %d): %s", p->rl_resource[r->index],
                                       strerror(r->err));
    } else if (r->step == STEP_EXEC) {
        message = PyUnicode_FromFormat("exec: %s (%s)", strerror(r->err), p->path);
    } else if (r->step == STEP_CHDIR && r->index == 0) {
        message = PyUnicode_FromFormat("chdir: %s (%s)", strerror(r->err), p->cwd);
    } else {
        message = PyUnicode_FromFormat("%s: %s", name, strerror(r->err));
    }
    if (message == NULL)
        return NULL;
    exc = PyObject_CallFunction(PyExc_OSError, "iO", r->err, message);
    Py_DECREF(message);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyDoc_STRVAR(launch_doc,
"launch(executable, argv, envp, cwd, fds, mounts, ids, cgroup_files=(), rlimits=(),\n"
"       seccomp=True, network=False, hostname='sandbox') -> (pid, status_fd)\n"
"--\n\n"
"Start ``executable`` in new user, pid, mount, ipc, uts, cgroup and (unless ``network``)\n"
"network namespaces; return the pid of the namespace's PID 1 (a child of the caller) and\n"
"the read end of a pipe on which PID 1 writes the command's wait status (an ``int``)\n"
"before it exits.\n\n"
"``fds``: the command's (stdin, stdout, stderr).  ``mounts``: ``(kind, src, dst, data)``\n"
"tuples applied in order in the new root (kinds: 0 read-only bind, 1 read-write bind,\n"
"2 tmpfs with options ``data``, 3 proc, 4 device bind, 5 symlink ``dst`` -> ``src``,\n"
"6 directory, 7 remount read-only); bind sources are host paths.  ``ids``:\n"
"``(inside_uid, outside_uid, inside_gid, outside_gid, drop_groups)``; the caller writes\n"
"the one-line uid/gid maps (``drop_groups``: the caller may map any id, so the command\n"
"calls ``setgroups([])``; otherwise ``setgroups`` is denied in the namespace).\n"
"``cgroup_files``: the run's ``cgroup.procs`` (or v1 ``tasks``) files: opened here, and\n"
"PID 1 writes itself (\"0\") into each before anything else.\n"
"``rlimits``: ``(resource, soft, hard)`` for the command (-1: infinity).\n\n"
"Blocks until the command was exec'd.  Raises OSError(errno, '<step>: <reason>') when a\n"
"step fails (PID 1 is reaped).");

static PyObject *launch(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"executable", "argv", "envp", "cwd", "fds", "mounts", "ids",
                               "cgroup_files", "rlimits", "seccomp", "network", "hostname",
                               NULL};
    PyObject *executable, *argv_obj, *envp_obj, *cwd_obj, *fds_obj, *mounts_obj, *ids_obj;
    PyObject *cg_obj = NULL, *rl_obj = NULL, *host_obj = NULL;
    int seccomp = 1, network = 0;
    PyObject *keep = NULL, *result = NULL;
    struct plan plan;
    char **argv = NULL, **envp = NULL, **cg = NULL;
    struct mnt *mounts = NULL;
    int *rl_resource = NULL;
    struct rlimit *rl_value = NULL;
    int sync_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
    int *cg_fds = NULL;
    Py_ssize_t n, i, ncg = 0;
    long long in_uid, out_uid, in_gid, out_gid;
    int drop_groups;
    pid_t pid = -1, parent = getpid();
    unsigned long flags;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOO|OOppO:launch", keywords,
                                     &executable, &argv_obj, &envp_obj, &cwd_obj, &fds_obj,
                                     &mounts_obj, &ids_obj, &cg_obj, &rl_obj, &seccomp,
                                     &network, &host_obj))
        return NULL;
    memset(&plan, 0, sizeof plan);
    plan.sync_fd = plan.report_fd = plan.status_fd = -1;
    keep = PyList_New(0);
    if (keep == NULL)
        return NULL;
    if ((plan.path = to_path(executable, keep, "executable")) == NULL)
        goto done;
    if ((argv = to_strings(argv_obj, keep, "argv", &n)) == NULL)
        goto done;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "argv: expected at least one item (argv[0])");
        goto done;
    }
    if ((envp = to_strings(envp_obj, keep, "envp", &n)) == NULL)
        goto done;
    plan.argv = argv;
    plan.envp = envp;
    if ((plan.cwd = to_path(cwd_obj, keep, "cwd")) == NULL)
        goto done;
    if (host_obj == NULL || host_obj == Py_None)
        plan.hostname = "sandbox";
    else if ((plan.hostname = to_path(host_obj, keep, "hostname")) == NULL)
        goto done;
    if (!PyArg_ParseTuple(fds_obj, "iii;fds: expected (stdin, stdout, stderr)", &plan.fds[0],
                          &plan.fds[1], &plan.fds[2]))
        goto done;
    if (!PyArg_ParseTuple(ids_obj, "LLLLp;ids: expected (inside_uid, outside_uid, inside_gid, "
                          "outside_gid, drop_groups)", &in_uid, &out_uid, &in_gid, &out_gid,
                          &drop_groups))
        goto done;
    plan.uid = (uid_t)in_uid;
    plan.gid = (gid_t)in_gid;
    plan.drop_groups = drop_groups;
    plan.seccomp = seccomp;
    plan.loopback = !network;
    {
        PyObject *fast = PySequence_Fast(mounts_obj, "mounts: expected a sequence");
        if (fast == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        mounts = PyMem_Calloc((size_t)n + 1, sizeof *mounts);
        if (mounts == NULL) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *src, *dst, *data;
            int kind;
            if (!PyArg_ParseTuple(item, "iOOO;mounts: expected (kind, src, dst, data)", &kind,
                                  &src, &dst, &data)) {
                Py_DECREF(fast);
                goto done;
            }
            if (kind < 0 || kind >= M_KIND_COUNT) {
                PyErr_Format(PyExc_ValueError, "mounts[%zd]: unknown kind %d", i, kind);
                Py_DECREF(fast);
                goto done;
            }
            mounts[i].kind = kind;
            if ((src != Py_None && (mounts[i].src = to_path(src, keep, "mounts")) == NULL) ||
                (mounts[i].dst = to_path(dst, keep, "mounts")) == NULL ||
                (data != Py_None && (mounts[i].data = to_path(data, keep, "mounts")) == NULL)) {
                Py_DECREF(fast);
                goto done;
            }
            if (mounts[i].dst[0] != '/' ||
                (is_bind(kind) && (mounts[i].src == NULL || mounts[i].src[0] != '/'))) {
                PyErr_Format(PyExc_ValueError, "mounts[%zd]: expected absolute paths", i);
                Py_DECREF(fast);
                goto done;
            }
        }
        Py_DECREF(fast);
        plan.mounts = mounts;
        plan.nmounts = n;
    }
    if (cg_obj != NULL && (cg = to_strings(cg_obj, keep, "cgroup_files", &ncg)) == NULL)
        goto done;
    if (rl_obj != NULL) {
        PyObject *fast = PySequence_Fast(rl_obj, "rlimits: expected a sequence");
        if (fast == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        rl_resource = PyMem_Calloc((size_t)n + 1, sizeof *rl_resource);
        rl_value = PyMem_Calloc((size_t)n + 1, sizeof *rl_value);
        if (rl_resource == NULL || rl_value == NULL) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            long long which, soft, hard;
            PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
            if (!PyArg_ParseTuple(item, "LLL;rlimits: expected (resource, soft, hard)", &which,
                                  &soft, &hard)) {
                Py_DECREF(fast);
                goto done;
            }
            rl_resource[i] = (int)which;
            rl_value[i].rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
            rl_value[i].rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
        }
        Py_DECREF(fast);
        plan.nrl = (int)n;
        plan.rl_resource = rl_resource;
        plan.rl_value = rl_value;
    }

    if (ncg > 8) {
        PyErr_SetString(PyExc_ValueError, "cgroup_files: at most 8");
        goto done;
    }
    cg_fds = PyMem_Calloc((size_t)ncg + 1, sizeof *cg_fds);
    if (cg_fds == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < ncg; i++)
        cg_fds[i] = -1;
    for (i = 0; i < ncg; i++) {
        cg_fds[i] = open(cg[i], O_WRONLY | O_CLOEXEC);
        if (cg_fds[i] < 0) {
            PyObject *exc = PyObject_CallFunction(
                PyExc_OSError, "iN", errno, PyUnicode_FromFormat(
                    "cgroup: opening %s: %s", cg[i], strerror(errno)));
            if (exc != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
            goto done;
        }
    }
    plan.cg_fds = cg_fds;
    plan.ncg = (int)ncg;
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(report_pipe, O_CLOEXEC) < 0 ||
        pipe2(status_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    plan.sync_fd = sync_pipe[0];
    plan.report_fd = report_pipe[1];
    plan.status_fd = status_pipe[1];

    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if (!network)
        flags |= CLONE_NEWNET;
    {
        sigset_t all, old;
        int saved;
        /* No Python signal handler may run in the clone: block everything around it (the
         * clone sets its own mask once its handlers are back to the defaults). */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            pid1(&plan, parent); /* never returns */
        saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
    }
    if (pid < 0) {
        if (errno == EPERM || errno == ENOSPC || errno == EUSERS)
            PyErr_Format(PyExc_PermissionError,
                         "clone(CLONE_NEWUSER|CLONE_NEWPID|...): %s: this kernel or its "
                         "settings forbid new user namespaces for this process "
                         "(check the sysctls user.max_user_namespaces and "
                         "kernel.unprivileged_userns_clone / "
                         "kernel.apparmor_restrict_unprivileged_userns)", strerror(errno));
        else
            PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    close(sync_pipe[0]);
    sync_pipe[0] = -1;
    close(report_pipe[1]);
    report_pipe[1] = -1;
    close(status_pipe[1]);
    status_pipe[1] = -1;
    {
        char path[64], text[64];
        const char *failed = NULL;
        int err = 0;

        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        snprintf(text, sizeof text, "%lld %lld 1\n", in_uid, out_uid);
        if (write_file(path, text) < 0) {
            failed = "uid_map";
            err = errno;
        }
        if (failed == NULL && !drop_groups) {
            snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
            if (write_file(path, "deny") < 0) {
                failed = "setgroups";
                err = errno;
            }
        }
        if (failed == NULL) {
            snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
            snprintf(text, sizeof text, "%lld %lld 1\n", in_gid, out_gid);
            if (write_file(path, text) < 0) {
                failed = "gid_map";
                err = errno;
            }
        }
        if (failed != NULL) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
            pid = -1;
            {
                PyObject *exc = PyObject_CallFunction(
                    PyExc_OSError, "iN", err, PyUnicode_FromFormat(
                        "id map: writing %s: %s", failed, strerror(err)));
                if (exc != NULL) {
                    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                    Py_DECREF(exc);
                }
            }
            goto done;
        }
    }
    {
        char go = 1;
        struct report r;
        ssize_t got = -1;
        int timed_out = 0;

        if (write_all(sync_pipe[1], &go, 1) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
            pid = -1;
            goto done;
        }
        close(sync_pipe[1]);
        sync_pipe[1] = -1;
        /* Bounded: a set-up step that hangs (a FIFO or a hung file system where a path
         * was expected) must not hang the caller. */
        Py_BEGIN_ALLOW_THREADS
        {
            struct pollfd ready = {report_pipe[0], POLLIN, 0};
            int rc;
            do {
                rc = poll(&ready, 1, SETUP_TIMEOUT_MS);
            } while (rc < 0 && errno == EINTR);
            if (rc == 0)
                timed_out = 1;
            else
                do {
                    got = read(report_pipe[0], &r, sizeof r);
                } while (got < 0 && errno == EINTR);
        }
        Py_END_ALLOW_THREADS
        if (timed_out) {
            PyErr_Format(PyExc_TimeoutError, "launch: the sandbox's PID 1 did not finish "
                         "setting up within %d s (killed)", SETUP_TIMEOUT_MS / 1000);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
            pid = -1;
            goto done;
        }
        if (got == (ssize_t)sizeof r) {
            /* A step failed: PID 1 ends (directly, or once the failed command did). */
            Py_BEGIN_ALLOW_THREADS
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
            Py_END_ALLOW_THREADS
            pid = -1;
            step_error(&r, &plan);
            goto done;
        }
        if (got != 0) {
            PyErr_SetString(PyExc_OSError, "launch: short report from the sandbox's PID 1");
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
            pid = -1;
            goto done;
        }
    }
    result = Py_BuildValue("(ii)", (int)pid, status_pipe[0]);
    if (result != NULL)
        status_pipe[0] = -1;

done:
    for (i = 0; i < 2; i++) {
        if (sync_pipe[i] >= 0)
            close(sync_pipe[i]);
        if (report_pipe[i] >= 0)
            close(report_pipe[i]);
        if (status_pipe[i] >= 0)
            close(status_pipe[i]);
    }
    PyMem_Free(argv);
    PyMem_Free(envp);
    if (cg_fds != NULL)
        for (i = 0; i < ncg; i++)
            if (cg_fds[i] >= 0)
                close(cg_fds[i]);
    PyMem_Free(cg_fds);
    PyMem_Free(cg);
    PyMem_Free(mounts);
    PyMem_Free(rl_resource);
    PyMem_Free(rl_value);
    Py_XDECREF(keep);
    return result;
}

PyDoc_STRVAR(filter_doc,
"seccomp_filter() -> bytes\n--\n\n"
"The seccomp-bpf program the command runs under (``struct sock_filter`` array), for "
"inspection and tests.");

static PyObject *seccomp_filter(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBytes_FromStringAndSize((const char *)filter,
                                     (Py_ssize_t)(filter_len * sizeof filter[0]));
}

static PyMethodDef methods[] = {
    {"launch", (PyCFunction)(void (*)(void))launch, METH_VARARGS | METH_KEYWORDS, launch_doc},
    {"seccomp_filter", seccomp_filter, METH_NOARGS, filter_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "neuroflow_native._namespace",
    "Start programs in fresh Linux namespaces (the namespace sandbox's launcher).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__namespace(void)
{
    PyObject *m;

    build_filter();
    m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "RO_BIND", M_RO_BIND) < 0 ||
        PyModule_AddIntConstant(m, "RW_BIND", M_RW_BIND) < 0 ||
        PyModule_AddIntConstant(m, "TMPFS", M_TMPFS) < 0 ||
        PyModule_AddIntConstant(m, "PROC", M_PROC) < 0 ||
        PyModule_AddIntConstant(m, "DEV_BIND", M_DEV_BIND) < 0 ||
        PyModule_AddIntConstant(m, "SYMLINK", M_SYMLINK) < 0 ||
        PyModule_AddIntConstant(m, "DIR", M_DIR) < 0 ||
        PyModule_AddIntConstant(m, "REMOUNT_RO", M_REMOUNT_RO) < 0 ||
        PyModule_AddIntConstant(m, "AUDIT_ARCH", NF_AUDIT_ARCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
