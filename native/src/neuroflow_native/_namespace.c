/* neuroflow_native._namespace: start a program in a fresh set of Linux namespaces.
 *
 * launch() makes PID 1 of new user, pid, mount, ipc, uts and (optionally) network
 * namespaces, a child of the caller.  By default PID 1 does not start as a copy of the
 * caller (a large interpreter: copying its page tables, then the copy-on-write faults
 * of both while the run lasts, cost more than the rest of a start): the calling thread
 * clones PID 1 sharing its memory (see launch_shared for what that asks of it), writes
 * PID 1's uid/gid maps and waits for its report.  PID 1, every call checked, in order:
 *
 *   parent-death signal, close every other fd, wait for the go, signals back to their
 *   defaults, setsid, the bind sources opened (no symlink followed on the way), the run's
 *   ids, a new session keyring, the parent-death signal again (and the caller checked),
 *   hostname, every mount private, a tmpfs root, pivot_root into it, the mounts of the
 *   plan (read-only binds, tmpfs, proc, device binds, symlinks), the old root detached,
 *   the new root read-only, chdir, loopback up; then its fds become the init program's,
 *   the run's rlimits, every capability dropped but CAP_SYS_ADMIN (kept ambient), and it
 *   executes the init program (_ns_init.c, embedded here and run from a sealed,
 *   unreadable memfd) -- a static program of a few pages, so PID 1 shares nothing of the
 *   caller any more.  The init program makes itself undumpable, joins the run's cgroups
 *   (only now: an out-of-memory kill in the run's memory cgroup kills every process that
 *   shares the victim's memory), makes a new cgroup namespace, drops the rest of its
 *   capabilities, sets no_new_privs and the seccomp filter, forks the command and execs
 *   it, reaps every zombie until the command ends, writes the command's wait status to
 *   the status pipe and exits (which kills whatever is left in the namespace).
 *
 * With the network off, PID 1's network namespace is one made ahead where this process
 * may make them (a root host): a thread of its own keeps two ready, loopback up, each for
 * one run only (it ends after a few idle seconds); the calling thread enters one for the
 * clone and goes back right after.
 *
 * Where the init program cannot be executed (a security module refusing a memfd, say),
 * PID 1 is a copy of the caller (fork semantics, a raw clone): it joins the cgroups
 * first, wipes its copy of the caller's command line and environment, makes the cgroup
 * namespace itself, does the same set-up, makes itself undumpable, and starts the
 * command sharing its memory, which drops every capability, sets no_new_privs, its
 * rlimits and the seccomp filter before its exec.
 *
 * The clones never return to Python, never allocate and only use what the parent
 * prepared; credentials change through raw system calls (glibc's wrappers would try to
 * signal the caller's other threads).  A failing step is reported on a close-on-exec pipe
 * as (errno, step, index); end of file means the command was exec'd.
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
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "_ns_common.h"
#include "_ns_filter.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
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
    [STEP_INIT_EXEC] = "executing the PID 1 program",
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
    /* How PID 1 is made: shared (a clone sharing the caller's memory, which executes the
     * init program once set up) or a copy of the caller (fork semantics). */
    int shared;
    int init_fd;          /* shared: the init program (a sealed memfd) */
    char *const *init_argv; /* shared: its argv: name, path, the command's argv */
    unsigned long clone_flags;
    long long ids[4];     /* inside uid, outside uid, inside gid, outside gid */
    pid_t pid1;           /* shared: PID 1, once started */
    int net_fd;           /* a fresh network namespace made ahead (lo up), or -1 */
};

/* --- the seccomp filter (_ns_filter.h) ------------------------------------------------ */

static struct sock_filter filter[FILTER_MAX];
static unsigned short filter_len;

/* --- the child: PID 1 and the command ---------------------------------------------- */

static void __attribute__((noreturn)) fail_to(int report_fd, int step, int index)
{
    struct report r = {errno, step, index};
    ssize_t unused = write(report_fd, &r, sizeof r);

    (void)unused;
    _exit(127);
}

#define fail(p, step, index) fail_to((p)->report_fd, step, index)

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

/* The fd-based mount calls (Linux 5.2; mount_setattr 5.12), by number: libc headers
 * differ on them. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define NF_OPEN_TREE_CLONE 1
#define NF_AT_RECURSIVE 0x8000
#define NF_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define NF_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define NF_MOUNT_ATTR_RDONLY 0x1
#define NF_MOUNT_ATTR_NOSUID 0x2
#define NF_MOUNT_ATTR_NODEV 0x4
#define NF_MOUNT_ATTR_NOEXEC 0x8

struct nf_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Whether binds may use the fd-based calls at all (tests turn them off to exercise the
 * mount(2) way, which kernels before 5.12 take). */
static int binds_by_fds = 1;

/* These calls refused as a whole (missing, or a seccomp profile of the host's that does
 * not know them): mount(2) does the same. */
static int refused(int err)
{
    return err == ENOSYS || err == EPERM || err == EINVAL;
}

/* A bind with the fd-based calls: a detached copy of the source's mount (open_tree),
 * its flags set before anyone can see it (mount_setattr: only the flags asked for change,
 * the ones the kernel locked stay), attached at the mount point's fd (move_mount).  No
 * path is walked.  0, -1 (errno), -2 (the mount point), -3: the calls are refused here
 * (the caller falls back to mount(2)). */
static int bind_by_fds(const struct mnt *m, int dir)
{
    struct nf_mount_attr attr;
    int tree, target, rc, saved;

    memset(&attr, 0, sizeof attr);
    if (m->kind == M_RO_BIND)
        attr.attr_set = NF_MOUNT_ATTR_RDONLY | NF_MOUNT_ATTR_NOSUID | NF_MOUNT_ATTR_NODEV;
    else if (m->kind == M_DEV_BIND) {
        attr.attr_set = NF_MOUNT_ATTR_NOSUID | NF_MOUNT_ATTR_NOEXEC;
        attr.attr_clr = NF_MOUNT_ATTR_NODEV;
    } else
        attr.attr_set = NF_MOUNT_ATTR_NOSUID | NF_MOUNT_ATTR_NODEV;
    tree = (int)syscall(SYS_open_tree, m->src_fd, "",
                        NF_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH |
                            (m->kind == M_RO_BIND ? 0 : NF_AT_RECURSIVE));
    if (tree < 0)
        return refused(errno) ? -3 : -1;
    /* On the top mount only, as a remount would. */
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
        saved = errno;
        close(tree);
        errno = saved;
        return refused(saved) ? -3 : -1;
    }
    target = open_mount_point(m->dst, dir);
    if (target < 0) {
        saved = errno;
        close(tree);
        errno = saved;
        return -2;
    }
    rc = (int)syscall(SYS_move_mount, tree, "", target, "",
                      NF_MOVE_MOUNT_F_EMPTY_PATH | NF_MOVE_MOUNT_T_EMPTY_PATH);
    saved = errno;
    close(tree);
    close(target);
    errno = saved;
    return rc;
}

/* *by_fds: whether binds may use the fd-based calls (cleared once they are missing). */
static int do_mount(const struct mnt *m, int *by_fds)
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
        if (*by_fds) {
            rc = bind_by_fds(m, fstat(m->src_fd, &st) < 0 || S_ISDIR(st.st_mode));
            if (rc != -3)
                return rc;
            *by_fds = 0;
        }
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

/* Every capability (bounding, ambient, effective, permitted, inheritable), then
 * no_new_privs, the run's rlimits and the seccomp filter: what the command runs under. */
static void drop_privileges(const struct plan *p, int report_fd)
{
    int i;
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    struct sock_fprog prog = {filter_len, filter};

    /* Capabilities are numbered 0 .. cap_last_cap without gaps: the first EINVAL is
     * the end of the list (not 64 calls when the kernel knows 41). */
    for (i = 0; i <= 63; i++)
        if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0) {
            if (errno != EINVAL)
                fail_to(report_fd, STEP_CAPS, i);
            break;
        }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail_to(report_fd, STEP_CAPS, 64);
    memset(caps, 0, sizeof caps);
    if (syscall(SYS_capset, &head, caps) < 0)
        fail_to(report_fd, STEP_CAPS, 65);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail_to(report_fd, STEP_NO_NEW_PRIVS, 0);
    for (i = 0; i < p->nrl; i++)
        if (setrlimit(p->rl_resource[i], &p->rl_value[i]) < 0)
            fail_to(report_fd, STEP_SETRLIMIT, i);
    if (p->seccomp && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        fail_to(report_fd, STEP_SECCOMP, 0);
}

/* A copy-made PID 1's command: its fds 0-2 (every other fd closed), privileges, exec. */
static void __attribute__((noreturn)) run_command(const struct plan *p)
{
    int i, moved[3];

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
    drop_privileges(p, p->report_fd);
    execve(p->path, p->argv, p->envp);
    fail(p, STEP_EXEC, 0);
}

/* A shared PID 1, its file system set up: its fds become the init program's (0-2 the
 * command's, the report and status pipes at NF_INIT_REPORT_FD and NF_INIT_STATUS_FD, the
 * run's cgroup files after them, nothing else), it sets the run's rlimits, keeps only
 * CAP_SYS_ADMIN (ambient, for the init program's cgroup namespace; the bounding set goes)
 * and executes the init program (_ns_init.c) -- from then on it no longer shares the
 * caller's memory.  The init program joins the cgroups and drops the rest. */
static void __attribute__((noreturn)) exec_init(const struct plan *p)
{
    int i, n = 5 + p->ncg, moved[5 + 8 + 1], from[5 + 8 + 1];
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    const unsigned admin = CAP_TO_MASK(CAP_SYS_ADMIN);

    from[0] = p->fds[0];
    from[1] = p->fds[1];
    from[2] = p->fds[2];
    from[3] = p->report_fd;
    from[4] = p->status_fd;
    for (i = 0; i < p->ncg; i++)
        from[5 + i] = p->cg_fds[i];
    from[n] = p->init_fd;
    /* First out of the way, then into place (dup2: without close-on-exec, the init
     * program keeps them); the program's own fd stays close-on-exec (an ELF file may be
     * executed through one). */
    for (i = 0; i <= n; i++) {
        moved[i] = fcntl(from[i], F_DUPFD_CLOEXEC, n + 1);
        if (moved[i] < 0)
            fail(p, STEP_FD_MAP, i);
    }
    for (i = 0; i < n; i++)
        if (dup2(moved[i], i) < 0)
            fail_to(moved[3], STEP_FD_MAP, i);
    if (dup3(moved[n], n, O_CLOEXEC) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_FD_MAP, n);
    if (syscall(SYS_close_range, (unsigned)n + 1, ~0U, 0) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_CLOSE_FDS, 0);
    for (i = 0; i < p->nrl; i++)
        if (setrlimit(p->rl_resource[i], &p->rl_value[i]) < 0)
            fail_to(NF_INIT_REPORT_FD, STEP_SETRLIMIT, i);
    /* CAP_SYS_ADMIN inheritable and ambient (it then survives the exec of a program
     * without file capabilities by a uid other than 0), the bounding set emptied, then
     * every other capability dropped. */
    if (syscall(SYS_capget, &head, caps) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_CAPS, 66);
    caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable |= admin;
    if (syscall(SYS_capset, &head, caps) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_CAPS, 67);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_CAPS, 64);
    for (i = 0; i <= 63; i++)
        if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0) {
            if (errno != EINVAL)
                fail_to(NF_INIT_REPORT_FD, STEP_CAPS, i);
            break;
        }
    memset(caps, 0, sizeof caps);
    caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective = admin;
    caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted = admin;
    caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable = admin;
    if (syscall(SYS_capset, &head, caps) < 0)
        fail_to(NF_INIT_REPORT_FD, STEP_CAPS, 65);
    syscall(SYS_execveat, n, "", p->init_argv, p->envp, AT_EMPTY_PATH);
    fail_to(NF_INIT_REPORT_FD, STEP_INIT_EXEC, 0);
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

static void __attribute__((noreturn)) pid1(const struct plan *p)
{
    char go;
    Py_ssize_t i;
    int by_fds = binds_by_fds;
    int sig, status = 0, code;
    pid_t cmd, done;
    struct sigaction dfl;
    sigset_t all;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(p, STEP_PDEATHSIG, 0);
    {
        int keep[7 + 8], nkeep = 6, j;
        keep[0] = p->fds[0];
        keep[1] = p->fds[1];
        keep[2] = p->fds[2];
        keep[3] = p->sync_fd;
        keep[4] = p->report_fd;
        keep[5] = p->status_fd;
        if (p->shared)
            keep[nkeep++] = p->init_fd;
        for (j = 0; j < p->ncg; j++)
            keep[nkeep++] = p->cg_fds[j];
        if (close_others(keep, nkeep) < 0)
            fail(p, STEP_CLOSE_FDS, 0);
        /* Join the run's cgroups: "0" is ourselves, which skips the global lock a write
         * of another pid takes (it can wait for an RCU grace period: milliseconds).  The
         * files were opened by the caller, whose credentials the kernel checks.  A shared
         * PID 1 leaves that to the init program: in a memory cgroup, an out-of-memory
         * kill of a process sharing the caller's memory would kill the caller too. */
        for (j = 0; j < p->ncg && !p->shared; j++) {
            if (write(p->cg_fds[j], "0", 1) != 1)
                fail(p, STEP_CGROUP, j);
            close(p->cg_fds[j]);
        }
    }
    /* A copy of the caller carries its command line and environment; a shared PID 1
     * gets the init program's before anything of the sandbox runs. */
    if (!p->shared && wipe_args() < 0)
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
     * parent did not die in between (it alone holds the status pipe's read end: a pipe
     * without readers polls POLLERR; the caller's fds are closed before its death
     * signal is sent). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(p, STEP_PDEATHSIG, 1);
    {
        struct pollfd alive = {p->status_fd, POLLOUT, 0};
        if (poll(&alive, 1, 0) < 0 || (alive.revents & (POLLERR | POLLHUP)))
            _exit(127);
    }
    /* The cgroup namespace, rooted where we are: in the run's cgroups (a shared PID 1's
     * init program makes it once it joined them). */
    if (!p->shared && unshare(CLONE_NEWCGROUP) < 0)
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
        int rc = do_mount(&p->mounts[i], &by_fds);
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
    if (p->shared)
        exec_init(p); /* the init program makes itself undumpable and runs the command */
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

/* The init program (_ns_init.c, built by setup.py). */
#include "_ns_init_image.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

/* The stack of a shared PID 1 (below it, a guard page). */
#define GUARD_SIZE 4096
#define PID1_STACK (192 * 1024)

static int init_fd = -1;
static int init_state; /* 0: not made yet, 1: usable, -1: cannot be used here */

/* The init program in a sealed memfd, made once per process (under the GIL).  Mode
 * 0111: nobody may read it, which also makes the kernel start PID 1's new address
 * space undumpable at its exec.  -1 where it cannot be made (PID 1 is then a copy). */
static int init_program(void)
{
    int fd;

    if (init_state != 0)
        return init_state > 0 ? init_fd : -1;
    init_state = -1;
    fd = (int)syscall(SYS_memfd_create, "neuroflow-init",
                      MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 knows no MFD_EXEC */
        fd = (int)syscall(SYS_memfd_create, "neuroflow-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (write_all(fd, init_image, sizeof init_image) < 0 || fchmod(fd, 0111) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        close(fd);
        return -1;
    }
    init_fd = fd;
    init_state = 1;
    return fd;
}

/* Decimal digits of v (>= 0) at `at`; return the end (used while PID 1 shares our
 * memory: nothing that allocates or takes a lock). */
static char *put_num(char *at, long long v)
{
    char digits[24];
    int n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *at++ = digits[--n];
    return at;
}

static char *put_str(char *at, const char *s)
{
    while (*s)
        *at++ = *s++;
    return at;
}

static int write_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return -1;
    if (write_all(fd, text, len) < 0)
        rc = -1;
    if (close(fd) < 0 && rc == 0)
        rc = -1;
    return rc;
}

/* Write PID 1's one-line uid map, "deny" to its setgroups (unless the caller may map any
 * id) and its gid map; 0, or -1 with errno and *what naming the file. */
static int write_maps(pid_t pid, const struct plan *p, const char **what)
{
    static const char *const names[3] = {"uid_map", "setgroups", "gid_map"};
    char path[64], text[64], *end;
    int k;

    for (k = 0; k < 3; k++) {
        if (k == 1 && p->drop_groups)
            continue;
        end = put_str(put_str(put_num(put_str(path, "/proc/"), pid), "/"), names[k]);
        *end = '\0';
        if (k == 1)
            end = put_str(text, "deny");
        else
            end = put_str(put_num(put_str(put_num(text, p->ids[k]), " "), p->ids[k + 1]),
                          " 1\n");
        if (write_file(path, text, (size_t)(end - text)) < 0) {
            *what = names[k];
            return -1;
        }
    }
    return 0;
}

/* PID 1's report: end of file (the command was exec'd), a report of the step that failed,
 * or nothing within SETUP_TIMEOUT_MS (a step that hangs: a FIFO or a hung file system
 * where a path was expected). */
static void await_report(int fd, struct report *r, ssize_t *got, int *timed_out)
{
    struct pollfd ready = {fd, POLLIN, 0};
    int rc;

    *got = -1;
    *timed_out = 0;
    do {
        rc = poll(&ready, 1, SETUP_TIMEOUT_MS);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        *timed_out = 1;
        return;
    }
    do {
        *got = read(fd, r, sizeof *r);
    } while (*got < 0 && errno == EINTR);
}

/* Kill PID 1 and reap it (a failed or abandoned start). */
static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
}

/* --- fresh network namespaces, made ahead --------------------------------------------- */

/* Making a network namespace is most of what the clone of PID 1 costs (its loopback,
 * every protocol's per-namespace set-up): a thread of its own makes a few ahead, with
 * the loopback up, and each one goes to one run, never to another.  Only where this
 * process may make network namespaces (CAP_SYS_ADMIN: a root host); elsewhere the clone
 * makes PID 1's.  The namespaces belong to this process's user namespace, so nothing in
 * the sandbox may change their configuration (it could not before either: the command
 * holds no capability). */
#define NET_POOL 2
#define NET_IDLE_S 5

static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t net_wanted = PTHREAD_COND_INITIALIZER;
static int net_pool[NET_POOL];
static int net_count;
static int net_state; /* 0: no maker yet, 1: the maker runs, -1: none can be made here */

/* A new network namespace with its loopback up (an fd of it), made by this thread, which
 * then goes back to its own; -1 when that cannot be done here. */
static int make_net_namespace(void)
{
    int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1;

    if (back < 0)
        return -1;
    if (unshare(CLONE_NEWNET) == 0) {
        if (loopback_up() == 0)
            fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (setns(back, CLONE_NEWNET) < 0 && fd >= 0) {
            close(fd); /* we would still be in it: not one to give away */
            fd = -1;
        }
    }
    close(back);
    return fd;
}

/* The maker: keeps NET_POOL namespaces ready; after NET_IDLE_S seconds without a run
 * taking one it ends (the next run starts it again), so a process that starts sandboxes
 * now and then does not keep a thread for it. */
static void *net_maker(void *unused)
{
    sigset_t all;
    int fd;

    (void)unused;
    sigfillset(&all); /* no signal of the process is handled here */
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_NAME, "nf-netns", 0, 0, 0);
    for (;;) {
        pthread_mutex_lock(&net_lock);
        while (net_count >= NET_POOL && net_state == 1) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += NET_IDLE_S;
            if (pthread_cond_timedwait(&net_wanted, &net_lock, &until) == ETIMEDOUT &&
                net_count >= NET_POOL)
                net_state = 0; /* idle: the next take starts a maker again */
        }
        if (net_state != 1) {
            pthread_mutex_unlock(&net_lock);
            return NULL;
        }
        pthread_mutex_unlock(&net_lock);
        fd = make_net_namespace();
        pthread_mutex_lock(&net_lock);
        if (fd < 0 || net_state != 1) {
            if (fd >= 0)
                close(fd);
            if (fd < 0)
                net_state = -1; /* none can be made here */
            pthread_mutex_unlock(&net_lock);
            return NULL;
        }
        net_pool[net_count++] = fd;
        pthread_mutex_unlock(&net_lock);
    }
}

/* A network namespace made ahead for one run (the caller closes the fd once PID 1 is in
 * it), or -1: PID 1's clone makes one.  The first call starts the maker. */
static int take_net_namespace(void)
{
    int fd = -1;

    pthread_mutex_lock(&net_lock);
    if (net_state == 0) {
        pthread_t thread;
        pthread_attr_t attr;
        net_state = -1;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, 64 * 1024);
            if (pthread_create(&thread, &attr, net_maker, NULL) == 0)
                net_state = 1;
            pthread_attr_destroy(&attr);
        }
    }
    if (net_count > 0) {
        fd = net_pool[--net_count];
        pthread_cond_signal(&net_wanted);
    }
    pthread_mutex_unlock(&net_lock);
    return fd;
}

/* fork(): the child has no maker, and the namespaces made for the parent are the
 * parent's to give out (one run each): the child closes its copies. */
static void net_before_fork(void)
{
    pthread_mutex_lock(&net_lock);
}

static void net_after_fork_parent(void)
{
    pthread_mutex_unlock(&net_lock);
}

static void net_after_fork_child(void)
{
    int i;

    for (i = 0; i < net_count; i++)
        close(net_pool[i]);
    net_count = 0;
    net_state = 0;
    pthread_mutex_init(&net_lock, NULL);
    pthread_cond_init(&net_wanted, NULL);
}

/* Put this thread in the run's network namespace made ahead, for PID 1's clone to
 * inherit (it then makes none, and finds the loopback up); *back: an fd of this
 * thread's own, to go back to right after the clone (-1: nothing to undo). */
static void enter_net(struct plan *p, int *back)
{
    *back = -1;
    if (p->net_fd < 0)
        return;
    *back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (*back >= 0 && setns(p->net_fd, CLONE_NEWNET) == 0) {
        p->clone_flags &= ~(unsigned long)CLONE_NEWNET;
        p->loopback = 0;
        return;
    }
    if (*back >= 0)
        close(*back);
    *back = -1;
}

/* Back to this thread's network namespace; -1 (errno set) if that failed.  The plan is
 * left as PID 1 saw it: a shared PID 1 reads it after the clone. */
static int leave_net(int back)
{
    int rc;

    if (back < 0)
        return 0;
    rc = setns(back, CLONE_NEWNET);
    close(back);
    return rc;
}

static int pid1_main(void *arg)
{
    pid1(arg);
}

static void clone_error(int err)
{
    if (err == EPERM || err == ENOSPC || err == EUSERS)
        PyErr_Format(PyExc_PermissionError,
                     "clone(CLONE_NEWUSER|CLONE_NEWPID|...): %s: this kernel or its "
                     "settings forbid new user namespaces for this process "
                     "(check the sysctls user.max_user_namespaces and "
                     "kernel.unprivileged_userns_clone / "
                     "kernel.apparmor_restrict_unprivileged_userns)", strerror(err));
    else {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
}

static void os_error(int err, PyObject *message)
{
    PyObject *exc;

    if (message == NULL)
        return;
    exc = PyObject_CallFunction(PyExc_OSError, "iN", err, message);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

static PyObject *step_error(const struct report *r, const struct plan *p);

/* The outcome of a start, once the caller knows PID 1's pid (or that there is none):
 * 0 (the command was exec'd), 1 (the init program cannot be executed here: the caller
 * retries with a copy), -1 (a Python error is set; PID 1 was reaped). */
static int outcome(const struct plan *p, pid_t pid, const char *failed, int err,
                   int timed_out, ssize_t got, const struct report *r)
{
    if (failed != NULL) {
        if (pid > 0) {
            Py_BEGIN_ALLOW_THREADS
            kill_and_reap(pid);
            Py_END_ALLOW_THREADS
        }
        if (strcmp(failed, "clone") == 0)
            clone_error(err);
        else if (strcmp(failed, "uid_map") == 0 || strcmp(failed, "gid_map") == 0 ||
                 strcmp(failed, "setgroups") == 0)
            os_error(err, PyUnicode_FromFormat("id map: writing %s: %s", failed,
                                               strerror(err)));
        else
            os_error(err, PyUnicode_FromFormat("launch: %s: %s", failed, strerror(err)));
        return -1;
    }
    if (timed_out || got != 0) {
        if (pid > 0) {
            Py_BEGIN_ALLOW_THREADS
            kill_and_reap(pid);
            Py_END_ALLOW_THREADS
        }
        if (timed_out)
            PyErr_Format(PyExc_TimeoutError, "launch: the sandbox's PID 1 did not finish "
                         "setting up within %d s (killed)", SETUP_TIMEOUT_MS / 1000);
        else if (got == (ssize_t)sizeof *r) {
            if (r->step == STEP_INIT_EXEC && (r->err == EACCES || r->err == EPERM ||
                                              r->err == ENOEXEC || r->err == ETXTBSY))
                return 1;
            step_error(r, p);
        } else
            PyErr_SetString(PyExc_OSError, "launch: short report from the sandbox's PID 1");
        return -1;
    }
    return 0;
}

/* PID 1 as a clone sharing our memory (see the top of this file); 0, 1 or -1 as
 * outcome().
 *
 * Until PID 1 has executed the init program (or failed) it also shares this thread's
 * thread-local storage -- errno among it.  So this thread releases the GIL before the
 * clone (no Python code runs here meanwhile), blocks every signal (no handler runs here,
 * no call is interrupted), and makes only calls that do not fail in the normal course
 * (writing the id maps, one byte, poll, read): it never writes errno while PID 1 may read
 * its own; a failure here ends PID 1. */
static int launch_shared(struct plan *p, int status_r)
{
    size_t size = GUARD_SIZE + PID1_STACK;
    char *stack;
    int sync_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1}, k, dumpable, rc, net_back;
    const char *failed = NULL;
    int err = 0, timed_out = 0;
    ssize_t got = -1;
    struct report r;
    pid_t pid = -1;
    sigset_t all, old;
    char go = 1;

    (void)status_r;
    stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (mprotect(stack, GUARD_SIZE, PROT_NONE) < 0 || pipe2(sync_pipe, O_CLOEXEC) < 0 ||
        pipe2(report_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        rc = -1;
        goto done;
    }
    p->sync_fd = sync_pipe[0];
    p->report_fd = report_pipe[1];
    /* PID 1 takes the run's ids while it shares our memory: when that changes its
     * effective uid (a caller that is root), the kernel marks the memory undumpable --
     * ours.  Put back below. */
    dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    Py_BEGIN_ALLOW_THREADS
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    enter_net(p, &net_back);
    pid = clone(pid1_main, stack + size, (int)(p->clone_flags | CLONE_VM | SIGCHLD), p);
    if (pid < 0)
        err = errno;
    if (leave_net(net_back) < 0 && pid > 0) {
        /* Cannot happen (our own namespace, as root); this thread would stay in the
         * run's: that is fatal for a caller that uses the network. */
        kill_and_reap(pid);
        pid = -1;
        err = errno;
        failed = "setns(back to the caller's network namespace)";
    } else if (pid < 0) {
        failed = "clone";
    } else {
        close(sync_pipe[0]);
        sync_pipe[0] = -1;
        close(report_pipe[1]);
        report_pipe[1] = -1;
        if (write_maps(pid, p, &failed) < 0)
            err = errno;
        else if (write_all(sync_pipe[1], &go, 1) < 0) {
            err = errno;
            failed = "sync";
        } else
            await_report(report_pipe[0], &r, &got, &timed_out);
        if (failed != NULL || timed_out || got != 0)
            kill_and_reap(pid); /* before PID 1's stack goes */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    Py_END_ALLOW_THREADS
    if ((dumpable == 0 || dumpable == 1) && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != dumpable)
        prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    rc = outcome(p, -1, failed, err, timed_out, got, &r);
    p->pid1 = pid;
done:
    for (k = 0; k < 2; k++) {
        if (sync_pipe[k] >= 0)
            close(sync_pipe[k]);
        if (report_pipe[k] >= 0)
            close(report_pipe[k]);
    }
    /* PID 1 no longer runs on this stack: it was exec'd (end of file comes only once the
     * command, which the init program starts, is exec'd) or it was reaped. */
    munmap(stack, size);
    return rc;
}

/* PID 1 as a copy of this process (fork semantics), where the init program cannot be
 * executed; 0 or -1 as outcome(). */
static int launch_copy(struct plan *p, int status_r, pid_t *pid_out)
{
    int sync_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1}, k, rc = -1;
    pid_t pid = -1;
    const char *failed = NULL;
    struct report r;
    ssize_t got = -1;
    int timed_out = 0, err = 0;
    char go = 1;

    (void)status_r;
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(report_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    p->sync_fd = sync_pipe[0];
    p->report_fd = report_pipe[1];
    {
        sigset_t all, old;
        int saved;
        /* No Python signal handler may run in the clone: block everything around it (the
         * clone sets its own mask once its handlers are back to the defaults). */
        int back;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        enter_net(p, &back);
        pid = (pid_t)syscall(SYS_clone, p->clone_flags | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            pid1(p); /* never returns */
        saved = errno;
        if (leave_net(back) < 0) {
            err = errno;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (pid > 0) {
                Py_BEGIN_ALLOW_THREADS
                kill_and_reap(pid);
                Py_END_ALLOW_THREADS
            }
            os_error(err, PyUnicode_FromFormat(
                "launch: setns(back to the caller's network namespace): %s", strerror(err)));
            goto done;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
    }
    if (pid < 0) {
        clone_error(errno);
        goto done;
    }
    close(sync_pipe[0]);
    sync_pipe[0] = -1;
    close(report_pipe[1]);
    report_pipe[1] = -1;
    if (write_maps(pid, p, &failed) < 0)
        err = errno;
    else if (write_all(sync_pipe[1], &go, 1) < 0) {
        err = errno;
        failed = "sync";
    } else {
        close(sync_pipe[1]);
        sync_pipe[1] = -1;
        Py_BEGIN_ALLOW_THREADS
        await_report(report_pipe[0], &r, &got, &timed_out);
        Py_END_ALLOW_THREADS
    }
    rc = outcome(p, pid, failed, err, timed_out, got, &r);
    if (rc == 0)
        *pid_out = pid;
done:
    for (k = 0; k < 2; k++) {
        if (sync_pipe[k] >= 0)
            close(sync_pipe[k]);
        if (report_pipe[k] >= 0)
            close(report_pipe[k]);
    }
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
        else if (r->step == STEP_MOUNT && r->err == EINVAL && m->kind == M_RO_BIND)
            message = PyUnicode_FromFormat(
                "mount: Invalid argument (%s -> %s): a read-only bind is not recursive, and "
                "the kernel refuses one whose source has other mounts below it (it would "
                "show what those mounts hide); bind the directories below it instead", m->src,
                m->dst);
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
"       seccomp=True, network=False, hostname='sandbox', init_program=True)\n"
"       -> (pid, status_fd)\n"
"--\n\n"
"Start ``executable`` in new user, pid, mount, ipc, uts, cgroup and (unless ``network``)\n"
"network namespaces; return the pid of the namespace's PID 1 (a child of the caller) and\n"
"the read end of a pipe on which PID 1 writes the command's wait status (an ``int``)\n"
"before it exits.\n\n"
"``fds``: the command's (stdin, stdout, stderr).  ``mounts``: ``(kind, src, dst, data)``\n"
"tuples applied in order in the new root (kinds: 0 read-only bind, 1 read-write bind,\n"
"2 tmpfs with options ``data``, 3 proc, 4 device bind, 5 symlink ``dst`` -> ``src``,\n"
"6 directory, 7 remount read-only); bind sources are host paths.  ``ids``:\n"
"``(inside_uid, outside_uid, inside_gid, outside_gid, drop_groups)``; the caller's side\n"
"writes the one-line uid/gid maps (``drop_groups``: the caller may map any id, so PID 1\n"
"calls ``setgroups([])``; otherwise ``setgroups`` is denied in the namespace).\n"
"``cgroup_files``: the run's ``cgroup.procs`` (or v1 ``tasks``) files: opened here, and\n"
"PID 1 writes itself (\"0\") into each before the command starts.\n"
"``rlimits``: ``(resource, soft, hard)`` for the command (-1: infinity).\n"
"``init_program``: PID 1 sets up sharing this process's memory, then executes the\n"
"embedded init program (False, or where that program cannot be executed: PID 1 is a\n"
"copy of this process).\n\n"
"Blocks until the command was exec'd.  Raises OSError(errno, '<step>: <reason>') when a\n"
"step fails (PID 1 is reaped).");

static PyObject *launch(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"executable", "argv", "envp", "cwd", "fds", "mounts", "ids",
                               "cgroup_files", "rlimits", "seccomp", "network", "hostname",
                               "init_program", NULL};
    static char *const counts[9] = {"0", "1", "2", "3", "4", "5", "6", "7", "8"};
    PyObject *executable, *argv_obj, *envp_obj, *cwd_obj, *fds_obj, *mounts_obj, *ids_obj;
    PyObject *cg_obj = NULL, *rl_obj = NULL, *host_obj = NULL;
    int seccomp = 1, network = 0, use_init = 1, rc;
    PyObject *keep = NULL, *result = NULL;
    struct plan plan;
    char **argv = NULL, **envp = NULL, **cg = NULL, **init_argv = NULL;
    struct mnt *mounts = NULL;
    int *rl_resource = NULL;
    struct rlimit *rl_value = NULL;
    int status_pipe[2] = {-1, -1};
    int *cg_fds = NULL;
    Py_ssize_t n, nargs, i, ncg = 0;
    long long in_uid, out_uid, in_gid, out_gid;
    int drop_groups;
    pid_t pid = -1;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOO|OOppOp:launch", keywords,
                                     &executable, &argv_obj, &envp_obj, &cwd_obj, &fds_obj,
                                     &mounts_obj, &ids_obj, &cg_obj, &rl_obj, &seccomp,
                                     &network, &host_obj, &use_init))
        return NULL;
    memset(&plan, 0, sizeof plan);
    plan.sync_fd = plan.report_fd = plan.status_fd = plan.net_fd = -1;
    keep = PyList_New(0);
    if (keep == NULL)
        return NULL;
    if ((plan.path = to_path(executable, keep, "executable")) == NULL)
        goto done;
    if ((argv = to_strings(argv_obj, keep, "argv", &nargs)) == NULL)
        goto done;
    if (nargs < 1) {
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
            int err = errno;
            os_error(err, PyUnicode_FromFormat("cgroup: opening %s: %s", cg[i], strerror(err)));
            goto done;
        }
    }
    plan.cg_fds = cg_fds;
    plan.ncg = (int)ncg;
    plan.ids[0] = in_uid;
    plan.ids[1] = out_uid;
    plan.ids[2] = in_gid;
    plan.ids[3] = out_gid;
    plan.clone_flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    plan.net_fd = -1;
    if (!network) {
        plan.clone_flags |= CLONE_NEWNET;
        plan.net_fd = take_net_namespace();
    }
    if (pipe2(status_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    plan.status_fd = status_pipe[1];
    /* The init program's argv: its name, the number of cgroup files, seccomp, the
     * command's path and argv. */
    init_argv = PyMem_Calloc((size_t)nargs + 5, sizeof *init_argv);
    if (init_argv == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    init_argv[0] = "neuroflow-init";
    init_argv[1] = counts[ncg];
    init_argv[2] = seccomp ? "1" : "0";
    init_argv[3] = (char *)plan.path;
    for (i = 0; i < nargs; i++)
        init_argv[4 + i] = argv[i];
    plan.init_argv = init_argv;
    rc = 1;
    if (use_init && (plan.init_fd = init_program()) >= 0) {
        plan.shared = 1;
        rc = launch_shared(&plan, status_pipe[0]);
        pid = plan.pid1;
        if (rc == 1)
            init_state = -1; /* refused here (a security module, say): copies from now on */
    }
    if (rc == 1) {
        plan.shared = 0;
        plan.init_fd = -1;
        if (plan.net_fd >= 0) { /* the failed PID 1's: not for another */
            close(plan.net_fd);
            plan.net_fd = -1;
            plan.clone_flags |= CLONE_NEWNET;
            plan.loopback = 1;
        }
        rc = launch_copy(&plan, status_pipe[0], &pid);
    }
    if (rc == 0) {
        result = Py_BuildValue("(ii)", (int)pid, status_pipe[0]);
        if (result != NULL)
            status_pipe[0] = -1;
        else {
            Py_BEGIN_ALLOW_THREADS
            kill_and_reap(pid);
            Py_END_ALLOW_THREADS
        }
    }

done:
    if (plan.net_fd >= 0)
        close(plan.net_fd);
    for (i = 0; i < 2; i++)
        if (status_pipe[i] >= 0)
            close(status_pipe[i]);
    PyMem_Free(argv);
    PyMem_Free(envp);
    PyMem_Free(init_argv);
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

static PyObject *set_init_program(PyObject *module, PyObject *arg)
{
    (void)module;
    if (arg == Py_None) {
        if (init_state > 0)
            close(init_fd);
        init_fd = -1;
        init_state = 0; /* made again at the next launch */
        Py_RETURN_NONE;
    }
    init_fd = PyLong_AsLong(arg);
    if (init_fd == -1 && PyErr_Occurred())
        return NULL;
    init_state = 1;
    Py_RETURN_NONE;
}

static PyObject *init_program_usable(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(init_program() >= 0);
}

static PyObject *set_binds_by_fds(PyObject *module, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);

    (void)module;
    if (on < 0)
        return NULL;
    binds_by_fds = on;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"launch", (PyCFunction)(void (*)(void))launch, METH_VARARGS | METH_KEYWORDS, launch_doc},
    {"seccomp_filter", seccomp_filter, METH_NOARGS, filter_doc},
    {"init_program_usable", init_program_usable, METH_NOARGS,
     "init_program_usable() -> bool\n--\n\nWhether PID 1 runs the embedded init program "
     "here (False: it is a copy of this process: the memfd cannot be made, or executing it "
     "was refused once)."},
    {"_set_init_program", set_init_program, METH_O,
     "For tests: PID 1 executes this fd (the caller keeps it open) as the init program; "
     "None: the embedded one again."},
    {"_set_binds_by_fds", set_binds_by_fds, METH_O,
     "For tests: make binds with open_tree/mount_setattr/move_mount (True, the default "
     "where the kernel has them) or with mount(2) (False)."},
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

    filter_len = build_filter(filter);
    if (pthread_atfork(net_before_fork, net_after_fork_parent, net_after_fork_child) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return NULL;
    }
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
