/* neuroflow_native._spawn: start a program the way glibc's posix_spawn does (a clone that
 * shares the parent's memory and suspends the calling thread until the child execs or
 * exits), with the set-up a sandbox needs done in the child, in order, every call checked:
 *
 *   signal handlers back to their defaults, the fd map, setsid, chdir, join the run's
 *   cgroups (through files the caller may have opened), the rest of the fds closed,
 *   rlimits, an optional private view of the work directory (mount namespace), an IPC
 *   namespace and a session keyring of its own, no_new_privs, drop privileges, execve.
 *
 * The child shares the parent's memory, so it only reads what the parent prepared before
 * the clone (argument arrays, paths, numbers) and it never allocates, takes a lock or
 * touches a Python object.  Privileges are dropped with raw system calls: glibc's
 * setuid()/setgid()/setgroups() broadcast the change to every thread of the process,
 * and in a child that shares the parent's memory that "process" is the parent's.
 *
 * A failing step is reported as (errno, step, index), written into the parent's memory
 * (which the child shares) before _exit(127).  The parent resumes only once the child has
 * exec'd or exited (CLONE_VFORK), so no step is left to report then: no pipe is needed,
 * and none can be refused by a memory cgroup too full to charge its buffer to.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
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

#define CHILD_STACK_SIZE (256 * 1024)

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* <linux/keyctl.h>, which not every system installs */
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_SETPERM 5
#define KEYCTL_DESCRIBE 6
#define KEYCTL_CLEAR 7
#define KEYCTL_LINK 8
#define KEYCTL_GET_PERSISTENT 22
#define KEY_SPEC_SESSION_KEYRING (-3)
#define KEY_SPEC_USER_KEYRING (-4)
#define KEY_SPEC_USER_SESSION_KEYRING (-5)

enum step {
    STEP_SIGNALS,
    STEP_FD_MAP,
    STEP_CLOSE_FDS,
    STEP_SETSID,
    STEP_CHDIR,
    STEP_CGROUP,
    STEP_SETRLIMIT,
    STEP_VIEW_UNSHARE,
    STEP_VIEW_PRIVATE,
    STEP_VIEW_TMPFS,
    STEP_VIEW_MKDIR,
    STEP_VIEW_BIND,
    STEP_VIEW_CHDIR,
    STEP_NEW_IPC,
    STEP_SESSION_KEYRING,
    STEP_NO_NEW_PRIVS,
    STEP_SETGROUPS,
    STEP_SETRESGID,
    STEP_SETRESUID,
    STEP_CLEAR_KEYRINGS,
    STEP_SIGMASK,
    STEP_EXEC,
    STEP_COUNT
};

static const char *const step_names[STEP_COUNT] = {
    [STEP_SIGNALS] = "signals",
    [STEP_FD_MAP] = "fd_map",
    [STEP_CLOSE_FDS] = "close_fds",
    [STEP_SETSID] = "setsid",
    [STEP_CHDIR] = "chdir",
    [STEP_CGROUP] = "cgroup",
    [STEP_SETRLIMIT] = "setrlimit",
    [STEP_VIEW_UNSHARE] = "view: unshare(CLONE_NEWNS)",
    [STEP_VIEW_PRIVATE] = "view: mount private",
    [STEP_VIEW_TMPFS] = "view: mount tmpfs",
    [STEP_VIEW_MKDIR] = "view: mkdir",
    [STEP_VIEW_BIND] = "view: bind work dir",
    [STEP_VIEW_CHDIR] = "view: chdir",
    [STEP_NEW_IPC] = "unshare(CLONE_NEWIPC)",
    [STEP_SESSION_KEYRING] = "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
    [STEP_NO_NEW_PRIVS] = "no_new_privs",
    [STEP_SETGROUPS] = "setgroups",
    [STEP_SETRESGID] = "setresgid",
    [STEP_SETRESUID] = "setresuid",
    [STEP_CLEAR_KEYRINGS] = "keyctl: emptying and locking the uid's keyrings",
    [STEP_SIGMASK] = "sigmask",
    [STEP_EXEC] = "exec",
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
    int *fds;
    int nfds;
    int max_fd; /* for closing without close_range */
    const char *const *procs; /* NULL where proc_fds[i] is given */
    const int *proc_fds;      /* an open file of procs[i] (>= nfds), or -1 */
    int nprocs;
    const int *rl_resource;
    const struct rlimit *rl_value;
    int nrl;
    const char *view_top; /* NULL: no view */
    const char *const *view_steps;
    int nview_steps;
    int no_new_privs;
    int new_session;
    int new_ipc;           /* an IPC namespace of its own */
    int keyrings;          /* 1: a session keyring of its own; 2: and the uid's cleared */
    int nomem_kill; /* end the child with SIGKILL when its exec lacks memory */
    int args_fit;   /* argv and envp are within the kernel's limits: E2BIG means memory */
    long uid; /* -1: unchanged */
    long gid;
    int set_groups;
    const gid_t *groups;
    int ngroups;
    sigset_t child_mask;
    /* The child's report of a failed step (step -1: none), read by the parent once the
     * child has exec'd or exited. */
    struct report *shared;
};

/* ---- the child: no allocation, no locks, no Python ------------------------------------ */

static void __attribute__((noreturn)) child_fail(const struct plan *p, int step, int index)
{
    struct report r;
    r.err = errno;
    r.step = step;
    r.index = index;
    *p->shared = r;
    _exit(127);
}

/* A step that failed for lack of memory: with nomem_kill, report it and end by SIGKILL,
 * the way the kernel's OOM killer ends a forked child (it skips one that still shares
 * its parent's memory). */
static void __attribute__((noreturn)) child_fail_nomem(const struct plan *p, int step,
                                                        int index)
{
    if (errno == ENOMEM && p->nomem_kill) {
        struct report r = {ENOMEM, step, index};
        *p->shared = r;
        syscall(SYS_kill, syscall(SYS_getpid), SIGKILL);
    }
    child_fail(p, step, index);
}

/* keyctl(2) refused as a whole: a kernel without keys (ENOSYS), or a seccomp filter that
 * blocks the key system calls (EPERM: Docker's default profile) -- which then binds the
 * program as well, so there is nothing it could read or leave there. */
static int no_keyrings(int err)
{
    return err == ENOSYS || err == EPERM;
}

/* Possessor and user may view, read and search; nobody may write (add, link, revoke) or
 * set attributes (permissions): <linux/key.h>'s KEY_{POS,USR}_{VIEW,READ,SEARCH}. */
#define LOCKED_KEYRING_PERM 0x0b0b0000u

/* The permission field of KEYCTL_DESCRIBE's "type;uid;gid;perm;description" (hex), or -1. */
static long described_perm(const char *text, long len)
{
    long i = 0, value = 0;
    int fields = 0, digits = 0;
    for (; i < len && fields < 3; i++)
        if (text[i] == ';')
            fields++;
    for (; i < len && text[i] != ';' && digits < 9; i++, digits++) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        value = value * 16 + v;
    }
    return fields == 3 && digits == 8 ? value : -1;
}

/* Empty ``ring`` and, with ``lock``, lock it (LOCKED_KEYRING_PERM), unless it is locked
 * already (then nothing was added since it was emptied) or unusable (revoked, expired or
 * invalidated: nobody can add to it or read it).  0 on success; -1 with errno. */
static int lock_keyring(long ring, int lock)
{
    char text[256];
    long len = syscall(SYS_keyctl, KEYCTL_DESCRIBE, ring, text, sizeof text);
    if (len < 0)
        return errno == EKEYREVOKED || errno == EKEYEXPIRED || errno == ENOKEY ||
                       no_keyrings(errno) ? 0 : -1;  /* ENOKEY: invalidated */
    if (len > (long)sizeof text)
        len = sizeof text;
    if (described_perm(text, len) == (long)LOCKED_KEYRING_PERM)
        return 0;
    if (syscall(SYS_keyctl, KEYCTL_CLEAR, ring) != 0)
        return -1;
    if (lock && syscall(SYS_keyctl, KEYCTL_SETPERM, ring, LOCKED_KEYRING_PERM) != 0)
        return -1;
    return 0;
}

static int close_from(const struct plan *p, unsigned int first, unsigned int last)
{
    if (first > last)
        return 0;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
#endif
    for (unsigned int fd = first; fd <= last && (int)fd <= p->max_fd; fd++)
        close((int)fd); /* EBADF for the fds that are not open */
    return 0;
}

static int child_main(void *arg)
{
    const struct plan *p = (const struct plan *)arg;
    struct sigaction dfl;
    int i;

    /* Handlers the parent installed must not run here (they would touch the parent's
     * memory); ignored SIGPIPE and SIGXFSZ go back to the default, as subprocess does. */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, NULL, &old) != 0)
            continue; /* the C library's internal signals */
        if (old.sa_handler == SIG_DFL)
            continue;
        if (old.sa_handler == SIG_IGN && sig != SIGPIPE && sig != SIGXFSZ)
            continue;
        if (sigaction(sig, &dfl, NULL) != 0)
            child_fail(p, STEP_SIGNALS, sig);
    }

    /* The fd map: first move sources that sit in the target range out of the way. */
    for (i = 0; i < p->nfds; i++) {
        int fd = p->fds[i];
        if (fd >= 0 && fd < p->nfds && fd != i) {
            int moved = fcntl(fd, F_DUPFD_CLOEXEC, p->nfds);
            if (moved < 0)
                child_fail(p, STEP_FD_MAP, i);
            p->fds[i] = moved;
        }
    }
    for (i = 0; i < p->nfds; i++) {
        int fd = p->fds[i];
        if (fd < 0) {
            close(i);
        } else if (fd == i) {
            int flags = fcntl(i, F_GETFD);
            if (flags < 0 || fcntl(i, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                child_fail(p, STEP_FD_MAP, i);
        } else if (dup2(fd, i) < 0) {
            child_fail(p, STEP_FD_MAP, i);
        }
    }
    /* A session of its own: no controlling terminal, and SIGCONT (which a process may
     * send to anyone in its session, whatever the uid) cannot reach the caller's. */
    if (p->new_session && setsid() < 0)
        child_fail(p, STEP_SETSID, 0);
    if (p->cwd != NULL && chdir(p->cwd) != 0)
        child_fail(p, STEP_CHDIR, 0);

    /* A file the caller opened for us (proc_fds[i] >= 0, above the fd map) saves an open
     * and a close; it is closed with the rest below. */
    for (i = 0; i < p->nprocs; i++) {
        int given = p->proc_fds[i] >= 0;
        int fd = given ? p->proc_fds[i] : open(p->procs[i], O_WRONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0)
            child_fail(p, STEP_CGROUP, i);
        do {
            n = write(fd, "0", 1); /* "0": the writing process itself */
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            if (n >= 0)
                errno = EIO;
            child_fail_nomem(p, STEP_CGROUP, i); /* a memory cgroup too full to join */
        }
        if (!given && close(fd) != 0 && errno != EINTR)
            child_fail(p, STEP_CGROUP, i);
    }

    if (close_from(p, (unsigned int)p->nfds, ~0U) != 0)
        child_fail(p, STEP_CLOSE_FDS, 0);

    for (i = 0; i < p->nrl; i++) {
        if (setrlimit(p->rl_resource[i], &p->rl_value[i]) != 0)
            child_fail(p, STEP_SETRLIMIT, i);
    }

    if (p->view_top != NULL) {
        /* The work directory keeps its path, but view_top (a directory above it the
         * run's uid may not search) becomes an empty tmpfs holding only the way down. */
        if (unshare(CLONE_NEWNS) != 0)
            child_fail(p, STEP_VIEW_UNSHARE, 0);
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            child_fail(p, STEP_VIEW_PRIVATE, 0);
        if (mount("tmpfs", p->view_top, "tmpfs", MS_NOSUID | MS_NODEV,
                  "mode=0755,size=64k") != 0)
            child_fail(p, STEP_VIEW_TMPFS, 0);
        for (i = 0; i < p->nview_steps; i++) {
            if (mkdir(p->view_steps[i], 0755) != 0)
                child_fail(p, STEP_VIEW_MKDIR, i);
        }
        if (mount(".", p->cwd, NULL, MS_BIND | MS_REC, NULL) != 0)
            child_fail(p, STEP_VIEW_BIND, 0);
        if (chdir(p->cwd) != 0)
            child_fail(p, STEP_VIEW_CHDIR, 0);
    }

    /* SysV IPC objects and POSIX message queues the program makes live and die with its
     * processes; the host's are out of its reach. */
    if (p->new_ipc && unshare(CLONE_NEWIPC) != 0)
        child_fail(p, STEP_NEW_IPC, 0);

    /* A process possesses its session keyring whatever its uid: the caller's would stay
     * readable after the privilege drop.  A new, empty one (made while still the caller,
     * so no quota of the run's uid can refuse it). */
    if (p->keyrings && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 &&
        !no_keyrings(errno))
        child_fail(p, STEP_SESSION_KEYRING, 0);

    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(p, STEP_NO_NEW_PRIVS, 0);

    /* Raw system calls: they change this task's credentials only. */
    if (p->set_groups && syscall(NF_SYS_SETGROUPS, (size_t)p->ngroups, p->groups) != 0)
        child_fail(p, STEP_SETGROUPS, 0);
    if (p->gid >= 0 &&
        syscall(NF_SYS_SETRESGID, (gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid) != 0)
        child_fail(p, STEP_SETRESGID, 0);
    if (p->uid >= 0 &&
        syscall(NF_SYS_SETRESUID, (uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid) != 0)
        child_fail(p, STEP_SETRESUID, 0);

    /* The uid's own keyrings (user, user-session, persistent) outlive its processes: what
     * a run stashed there would be there for the next run given the uid.  The user and
     * user-session keyrings are emptied once and then made read-only to everyone, setattr
     * included (see lock_keyring), so no later run can add to them, revoke them or change
     * that; the persistent keyring is emptied before every run.  EOPNOTSUPP: no
     * persistent keyrings in this kernel. */
    if (p->keyrings >= 2) {
        /* Linked into the (new) session keyring, the persistent keyring is possessed,
         * which emptying and locking it need; the links go again at the end. */
        long ring = syscall(SYS_keyctl, KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING);
        if (ring >= 0) {
            /* Emptied only: the kernel makes it without the attribute permission, so no
             * one can lock it, nor unlock it; a run can add to it (emptied here before
             * the next run) or revoke it (the next run then gets a new one). */
            if (lock_keyring(ring, 0) != 0)
                child_fail(p, STEP_CLEAR_KEYRINGS, 2);
        } else if (errno != EOPNOTSUPP && errno != EKEYREVOKED && errno != EKEYEXPIRED &&
                   !no_keyrings(errno)) {
            child_fail(p, STEP_CLEAR_KEYRINGS, 2);
        }
        /* The same for the user and user-session keyrings: linked into the session
         * keyring they are possessed too (a locked one refuses the link, and needs none). */
        syscall(SYS_keyctl, KEYCTL_LINK, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING);
        syscall(SYS_keyctl, KEYCTL_LINK, KEY_SPEC_USER_SESSION_KEYRING,
                KEY_SPEC_SESSION_KEYRING);
        if (lock_keyring(KEY_SPEC_USER_KEYRING, 1) != 0)
            child_fail(p, STEP_CLEAR_KEYRINGS, 0);
        if (lock_keyring(KEY_SPEC_USER_SESSION_KEYRING, 1) != 0)
            child_fail(p, STEP_CLEAR_KEYRINGS, 1);
        if (syscall(SYS_keyctl, KEYCTL_CLEAR, KEY_SPEC_SESSION_KEYRING) != 0)
            child_fail(p, STEP_CLEAR_KEYRINGS, 3);
    }

    if (sigprocmask(SIG_SETMASK, &p->child_mask, NULL) != 0)
        child_fail(p, STEP_SIGMASK, 0);
    execve(p->path, p->argv, p->envp);
    if (errno == E2BIG && p->args_fit)
        errno = ENOMEM; /* the argument pages could not be charged to the memory cgroup */
    child_fail_nomem(p, STEP_EXEC, 0);
}

/* ---- the parent ------------------------------------------------------------------------ */

/* One child stack kept for the next spawn: a fresh mapping costs two system calls and a
 * page fault for each page the child touches.  A spawn takes it (or maps a new one when
 * another thread's spawn holds it) and gives it back once its child has exec'd or exited,
 * when nothing uses it any more. */
static void *spare_stack = NULL;

static void *take_stack(void)
{
    void *stack = __atomic_exchange_n(&spare_stack, NULL, __ATOMIC_ACQ_REL);
    if (stack != NULL)
        return stack;
    stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return stack == MAP_FAILED ? NULL : stack;
}

static void give_back_stack(void *stack)
{
    void *none = NULL;
    if (!__atomic_compare_exchange_n(&spare_stack, &none, stack, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        munmap(stack, CHILD_STACK_SIZE);
}

/* Turning Python arguments into C buffers. */

/* A NULL-terminated array of the encoded items of ``seq``; the bytes objects go to
 * ``keep`` (which owns them until the spawn is over). */
static char **to_strings(PyObject *seq, PyObject *keep, const char *what, Py_ssize_t *count)
{
    PyObject *fast = PySequence_Fast(seq, what);
    Py_ssize_t n, i;
    char **out;

    if (fast == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *bytes = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &bytes)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_Format(PyExc_TypeError, "%s[%zd]: expected a str, bytes or path without "
                         "NUL bytes (%S)", what, i, value ? value : Py_None);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            goto fail;
        }
        if (PyList_Append(keep, bytes) != 0) {
            Py_DECREF(bytes);
            goto fail;
        }
        out[i] = PyBytes_AS_STRING(bytes);
        Py_DECREF(bytes);
    }
    Py_DECREF(fast);
    if (count != NULL)
        *count = n;
    return out;
fail:
    Py_DECREF(fast);
    PyMem_Free(out);
    return NULL;
}

static const char *to_path(PyObject *obj, PyObject *keep, const char *what)
{
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(obj, &bytes)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_TypeError, "%s: expected a str, bytes or path without NUL bytes "
                     "(%S)", what, value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return NULL;
    }
    if (PyList_Append(keep, bytes) != 0) {
        Py_DECREF(bytes);
        return NULL;
    }
    Py_DECREF(bytes);
    return PyBytes_AS_STRING(bytes);
}

static int to_id(PyObject *obj, const char *what, long *out)
{
    long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got %R", what, obj);
        return -1;
    }
    if (value < -1 || value > (long long)UINT32_MAX - 1) {
        PyErr_Format(PyExc_ValueError, "%s: expected -1 (unchanged) or 0..%u, got %lld", what,
                     (unsigned int)(UINT32_MAX - 1), value);
        return -1;
    }
    *out = (long)value;
    return 0;
}

static int to_rlim(PyObject *obj, Py_ssize_t i, const char *which, rlim_t *out)
{
    long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        unsigned long long big = PyLong_AsUnsignedLongLong(obj);
        if (big == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "rlimits[%zd]: %s limit: expected an int "
                         "(RLIM_INFINITY for none), got %R", i, which, obj);
            return -1;
        }
        *out = (rlim_t)big;
        return 0;
    }
    if (value < -1) {
        PyErr_Format(PyExc_ValueError, "rlimits[%zd]: %s limit: expected >= 0 or "
                     "RLIM_INFINITY, got %lld", i, which, value);
        return -1;
    }
    *out = value == -1 ? RLIM_INFINITY : (rlim_t)value;
    return 0;
}

static PyObject *step_error(const struct report *r, const struct plan *p)
{
    const char *name = (r->step >= 0 && r->step < STEP_COUNT) ? step_names[r->step] : "?";
    const char *file = NULL;
    PyObject *message, *filename, *exc;

    switch (r->step) {
    case STEP_CHDIR:
        file = p->cwd;
        break;
    case STEP_CGROUP:
        if (r->index >= 0 && r->index < p->nprocs)
            file = p->procs[r->index]; /* NULL for a file given open */
        break;
    case STEP_VIEW_TMPFS:
        file = p->view_top;
        break;
    case STEP_VIEW_MKDIR:
        if (r->index >= 0 && r->index < p->nview_steps)
            file = p->view_steps[r->index];
        break;
    case STEP_VIEW_BIND:
    case STEP_VIEW_CHDIR:
        file = p->cwd;
        break;
    case STEP_EXEC:
        file = p->path;
        break;
    default:
        break;
    }
    if (r->step == STEP_SETRLIMIT && r->index >= 0 && r->index < p->nrl)
        message = PyUnicode_FromFormat("setrlimit(resource %d): %s", p->rl_resource[r->index],
                                       strerror(r->err));
    else if (r->step == STEP_FD_MAP || r->step == STEP_SIGNALS)
        message = PyUnicode_FromFormat("%s (%d): %s", name, r->index, strerror(r->err));
    else
        message = PyUnicode_FromFormat("%s: %s", name, strerror(r->err));
    if (message == NULL)
        return NULL;
    if (file != NULL) {
        filename = PyUnicode_DecodeFSDefault(file);
        if (filename == NULL) {
            Py_DECREF(message);
            return NULL;
        }
    } else {
        filename = Py_NewRef(Py_None);
    }
    exc = PyObject_CallFunction(PyExc_OSError, "iOO", r->err, message, filename);
    Py_DECREF(message);
    Py_DECREF(filename);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyDoc_STRVAR(spawn_doc,
"spawn(executable, argv, envp, cwd=None, fd_map=(0, 1, 2), cgroup_procs=(), uid=-1, gid=-1,\n"
"      groups=None, rlimits=(), no_new_privs=False, new_session=False, *, view=None,\n"
"      nomem_kill=False, new_ipc=False, keyrings=0, pidfd=False) -> int | (int, int)\n"
"--\n\n"
"Start ``executable`` with ``argv`` and the environment ``envp`` (``\"NAME=value\"``\n"
"strings) in a child that shares this process's memory until its exec (``clone`` with\n"
"``CLONE_VM | CLONE_VFORK``, as posix_spawn), and return its pid -- with ``pidfd``, the\n"
"pair ``(pid, pidfd)``: a close-on-exec pidfd of the child made by the clone itself\n"
"(``CLONE_PIDFD``), which the caller closes.\n\n"
"In the child, in this order: signal handlers back to their defaults; ``fd_map[i]``\n"
"becomes fd ``i`` (``-1``: closed); ``setsid()`` when\n"
"``new_session``; ``chdir(cwd)``; ``\"0\"`` written to each ``cgroup_procs`` file (a path,\n"
"or an fd open for writing above the fd map: the child joins those cgroups itself); the\n"
"fds outside the map closed; ``setrlimit`` for each ``(resource, soft, hard)`` of\n"
"``rlimits``; with ``view=(top, dirs)``: a private mount namespace in which ``top`` is an\n"
"empty tmpfs, ``dirs`` are made in it and ``cwd`` is bound back at its own path;\n"
"``unshare(CLONE_NEWIPC)`` when ``new_ipc`` (SysV IPC and POSIX message queues of its own);\n"
"with ``keyrings`` >= 1 a new, empty session keyring (the caller's is no longer possessed);\n"
"``PR_SET_NO_NEW_PRIVS`` when ``no_new_privs``; ``setgroups(groups)`` (unless ``None``),\n"
"``setresgid(gid)`` and ``setresuid(uid)`` (unless ``-1``) as raw system calls; with\n"
"``keyrings=2`` the new uid's user and user-session keyrings emptied and locked read-only\n"
"and its persistent keyring emptied; then\n"
"``execve`` (no PATH search: ``executable`` is a path).\n\n"
"An exec that fails for lack of memory is reported as ENOMEM, also where the kernel says\n"
"E2BIG for arguments well within its limits (the child's memory cgroup could not hold\n"
"them).  ``nomem_kill``: when the exec or joining a cgroup fails with ENOMEM, the child\n"
"ends by SIGKILL instead of exit status 127 (the OSError is raised all the same), as the\n"
"OOM killer ends a forked child (it skips one that still shares its parent's memory).\n\n"
"Raises OSError(errno, \"<step>: <reason>\", filename) when a step fails (the child is\n"
"reaped); TypeError/ValueError naming the argument for a bad argument.");

static PyObject *spawn(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"executable", "argv", "envp", "cwd", "fd_map",
                               "cgroup_procs", "uid", "gid", "groups", "rlimits",
                               "no_new_privs", "new_session", "view", "nomem_kill",
                               "new_ipc", "keyrings", "pidfd", NULL};
    PyObject *executable, *argv_obj, *envp_obj, *cwd_obj = Py_None, *fd_obj = NULL;
    PyObject *procs_obj = NULL, *uid_obj = NULL, *gid_obj = NULL, *groups_obj = Py_None;
    PyObject *rl_obj = NULL, *view_obj = Py_None;
    int no_new_privs = 0, new_session = 0, nomem_kill = 0, new_ipc = 0, keyrings = 0;
    PyObject *keep = NULL, *fast = NULL, *result = NULL;
    struct plan plan;
    char **argv = NULL, **envp = NULL, **procs = NULL, **view_steps = NULL;
    int *fds = NULL, *rl_resource = NULL, *proc_fds = NULL;
    struct rlimit *rl_value = NULL;
    gid_t *groups = NULL;
    void *stack = NULL;
    int pidfd = -1, want_pidfd = 0;
    Py_ssize_t n, i;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|OOOOOOOpp$Oppip:spawn", keywords,
                                     &executable, &argv_obj, &envp_obj, &cwd_obj, &fd_obj,
                                     &procs_obj, &uid_obj, &gid_obj, &groups_obj, &rl_obj,
                                     &no_new_privs, &new_session, &view_obj, &nomem_kill,
                                     &new_ipc, &keyrings, &want_pidfd))
        return NULL;
    memset(&plan, 0, sizeof plan);
    plan.uid = plan.gid = -1;
    plan.no_new_privs = no_new_privs;
    plan.new_session = new_session;
    plan.nomem_kill = nomem_kill;
    plan.new_ipc = new_ipc;
    if (keyrings < 0 || keyrings > 2) {
        PyErr_Format(PyExc_ValueError, "keyrings: expected 0, 1 or 2, got %d", keyrings);
        goto done;
    }
    plan.keyrings = keyrings;
    keep = PyList_New(0);
    if (keep == NULL)
        return NULL;

    if ((plan.path = to_path(executable, keep, "executable")) == NULL)
        goto done;
    if (PyUnicode_Check(argv_obj) || PyBytes_Check(argv_obj)) {
        PyErr_SetString(PyExc_TypeError, "argv: expected a sequence of strings, got a string");
        goto done;
    }
    if ((argv = to_strings(argv_obj, keep, "argv", &n)) == NULL)
        goto done;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "argv: expected at least one item (argv[0])");
        goto done;
    }
    if (PyUnicode_Check(envp_obj) || PyBytes_Check(envp_obj)) {
        PyErr_SetString(PyExc_TypeError, "envp: expected a sequence of 'NAME=value' strings");
        goto done;
    }
    if ((envp = to_strings(envp_obj, keep, "envp", &n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        if (strchr(envp[i], '=') == NULL || envp[i][0] == '=') {
            PyErr_Format(PyExc_ValueError, "envp[%zd]: expected 'NAME=value', got %s", i,
                         envp[i]);
            goto done;
        }
    }
    plan.argv = argv;
    plan.envp = envp;
    {
        /* Whether the kernel could refuse these arguments for their size (execve's E2BIG):
         * each string within MAX_ARG_STRLEN (32 pages), all of them within a quarter of
         * the stack limit (at least ARG_MAX), with room to spare. */
        size_t total = 0, longest = 0;
        long page = sysconf(_SC_PAGESIZE), arg_max = sysconf(_SC_ARG_MAX);
        for (char **list = argv; list != NULL; list = list == argv ? envp : NULL)
            for (char **item = list; *item != NULL; item++) {
                size_t len = strlen(*item) + 1;
                total += len + sizeof(char *);
                if (len > longest)
                    longest = len;
            }
        plan.args_fit = page > 0 && arg_max > 0 && longest < (size_t)page * 32 &&
                        total < (size_t)arg_max / 2;
    }
    if (cwd_obj != Py_None && (plan.cwd = to_path(cwd_obj, keep, "cwd")) == NULL)
        goto done;

    /* fd_map */
    if (fd_obj == NULL) {
        plan.nfds = 3;
        fds = PyMem_Malloc(3 * sizeof(int));
        if (fds == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        fds[0] = 0, fds[1] = 1, fds[2] = 2;
    } else {
        if ((fast = PySequence_Fast(fd_obj, "fd_map: expected a sequence of ints")) == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        if (n > 1024) {
            PyErr_SetString(PyExc_ValueError, "fd_map: expected at most 1024 entries");
            goto done;
        }
        fds = PyMem_Malloc(((size_t)n + 1) * sizeof(int));
        if (fds == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
            if (fd == -1 && PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "fd_map[%zd]: expected an int (an open fd, "
                             "or -1 to close)", i);
                goto done;
            }
            if (fd < -1 || fd > INT_MAX) {
                PyErr_Format(PyExc_ValueError, "fd_map[%zd]: expected an open fd or -1, "
                             "got %ld", i, fd);
                goto done;
            }
            if (fd >= 0 && fcntl((int)fd, F_GETFD) < 0) {
                PyErr_Format(PyExc_ValueError, "fd_map[%zd]: fd %ld is not open", i, fd);
                goto done;
            }
            fds[i] = (int)fd;
        }
        plan.nfds = (int)n;
        Py_CLEAR(fast);
    }
    plan.fds = fds;

    /* cgroup_procs: paths, or files opened for writing (fds above the fd map) */
    if (procs_obj != NULL) {
        if (PyUnicode_Check(procs_obj) || PyBytes_Check(procs_obj)) {
            PyErr_SetString(PyExc_TypeError,
                            "cgroup_procs: expected a list of paths or fds, got a string");
            goto done;
        }
        if ((fast = PySequence_Fast(procs_obj, "cgroup_procs: expected a list of paths or "
                                    "fds")) == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        procs = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        proc_fds = PyMem_Calloc((size_t)n + 1, sizeof(int));
        if (procs == NULL || proc_fds == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
            proc_fds[i] = -1;
            if (PyLong_Check(item)) {
                long fd = PyLong_AsLong(item);
                if (fd == -1 && PyErr_Occurred())
                    goto done;
                if (fd < plan.nfds || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0) {
                    PyErr_Format(PyExc_ValueError, "cgroup_procs[%zd]: expected a path or an "
                                 "open fd >= %d (above the fd map), got %ld", i, plan.nfds,
                                 fd);
                    goto done;
                }
                proc_fds[i] = (int)fd;
            } else {
                char what[40];
                PyOS_snprintf(what, sizeof what, "cgroup_procs[%zd]", i);
                if ((procs[i] = (char *)to_path(item, keep, what)) == NULL)
                    goto done;
            }
        }
        plan.procs = (const char *const *)procs;
        plan.proc_fds = proc_fds;
        plan.nprocs = (int)n;
        Py_CLEAR(fast);
    }

    if (uid_obj != NULL && to_id(uid_obj, "uid", &plan.uid) != 0)
        goto done;
    if (gid_obj != NULL && to_id(gid_obj, "gid", &plan.gid) != 0)
        goto done;
    if (groups_obj != Py_None) {
        if ((fast = PySequence_Fast(groups_obj, "groups: expected None or a list of gids"))
            == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        if (n > 65536) {
            PyErr_SetString(PyExc_ValueError, "groups: expected at most 65536 gids");
            goto done;
        }
        groups = PyMem_Malloc(((size_t)n + 1) * sizeof(gid_t));
        if (groups == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            long value;
            char what[32];
            PyOS_snprintf(what, sizeof what, "groups[%zd]", i);
            if (to_id(PySequence_Fast_GET_ITEM(fast, i), what, &value) != 0)
                goto done;
            if (value < 0) {
                PyErr_Format(PyExc_ValueError, "groups[%zd]: expected a gid >= 0", i);
                goto done;
            }
            groups[i] = (gid_t)value;
        }
        plan.set_groups = 1;
        plan.groups = groups;
        plan.ngroups = (int)n;
        Py_CLEAR(fast);
    }

    /* rlimits */
    if (rl_obj != NULL) {
        if ((fast = PySequence_Fast(rl_obj, "rlimits: expected a list of "
                                    "(resource, soft, hard)")) == NULL)
            goto done;
        n = PySequence_Fast_GET_SIZE(fast);
        rl_resource = PyMem_Malloc(((size_t)n + 1) * sizeof(int));
        rl_value = PyMem_Malloc(((size_t)n + 1) * sizeof(struct rlimit));
        if (rl_resource == NULL || rl_value == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
            long which;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
                PyErr_Format(PyExc_TypeError, "rlimits[%zd]: expected a (resource, soft, "
                             "hard) tuple, got %R", i, item);
                goto done;
            }
            which = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
            if (which == -1 && PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "rlimits[%zd]: resource: expected an int "
                             "(resource.RLIMIT_*)", i);
                goto done;
            }
            if (which < 0 || which >= RLIM_NLIMITS) {
                PyErr_Format(PyExc_ValueError, "rlimits[%zd]: resource: expected 0..%d, "
                             "got %ld", i, RLIM_NLIMITS - 1, which);
                goto done;
            }
            rl_resource[i] = (int)which;
            if (to_rlim(PyTuple_GET_ITEM(item, 1), i, "soft", &rl_value[i].rlim_cur) != 0 ||
                to_rlim(PyTuple_GET_ITEM(item, 2), i, "hard", &rl_value[i].rlim_max) != 0)
                goto done;
            if (rl_value[i].rlim_cur > rl_value[i].rlim_max) {
                PyErr_Format(PyExc_ValueError, "rlimits[%zd]: soft limit above the hard "
                             "limit", i);
                goto done;
            }
        }
        plan.rl_resource = rl_resource;
        plan.rl_value = rl_value;
        plan.nrl = (int)n;
        Py_CLEAR(fast);
    }

    /* view */
    if (view_obj != Py_None) {
        if (!PyTuple_Check(view_obj) || PyTuple_GET_SIZE(view_obj) != 2) {
            PyErr_SetString(PyExc_TypeError, "view: expected None or a (top, dirs) tuple");
            goto done;
        }
        if (plan.cwd == NULL) {
            PyErr_SetString(PyExc_ValueError, "view: needs cwd (the directory to bind)");
            goto done;
        }
        if ((plan.view_top = to_path(PyTuple_GET_ITEM(view_obj, 0), keep, "view[0]")) == NULL)
            goto done;
        if ((view_steps = to_strings(PyTuple_GET_ITEM(view_obj, 1), keep, "view[1]", &n))
            == NULL)
            goto done;
        plan.view_steps = (const char *const *)view_steps;
        plan.nview_steps = (int)n;
    }

    if (PySys_Audit("neuroflow_native.spawn", "OO", executable, argv_obj) < 0)
        goto done;

    {
        struct rlimit nofile;
        plan.max_fd = 65535;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
            nofile.rlim_cur < (rlim_t)INT_MAX)
            plan.max_fd = (int)nofile.rlim_cur;
    }
    sigemptyset(&plan.child_mask);

    stack = take_stack();
    if (stack == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }

    {
        sigset_t all, old;
        struct report shared = {0, -1, 0};
        pid_t pid;
        int clone_errno = 0, status, flags = CLONE_VM | CLONE_VFORK | SIGCHLD;

        if (want_pidfd)
            flags |= CLONE_PIDFD;
        Py_BEGIN_ALLOW_THREADS
        /* Nothing may run a handler of ours in the child before its exec. */
        plan.shared = &shared;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE, flags, &plan, &pidfd);
        clone_errno = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* Here the child has exec'd or exited: a failed step has left its report. */
        if (pid > 0 && shared.step >= 0) {
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        }
        Py_END_ALLOW_THREADS

        if (pid < 0) {
            errno = clone_errno;
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
        if (shared.step >= 0) {
            step_error(&shared, &plan);
            goto done;
        }
        if (!want_pidfd) {
            result = PyLong_FromLong((long)pid);
            goto done;
        }
        if (pidfd < 0) {
            /* A kernel that ignored CLONE_PIDFD: the child cannot have been reaped yet
             * (only we may reap it), so its pid still names it. */
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            if (pidfd < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                    ;
                goto done;
            }
        }
        result = Py_BuildValue("(ii)", (int)pid, pidfd);
        if (result != NULL)
            pidfd = -1; /* the caller's now */
    }

done:
    if (pidfd >= 0)
        close(pidfd);
    if (stack != NULL)
        give_back_stack(stack);
    Py_XDECREF(fast);
    PyMem_Free(argv);
    PyMem_Free(envp);
    PyMem_Free(procs);
    PyMem_Free(proc_fds);
    PyMem_Free(view_steps);
    PyMem_Free(fds);
    PyMem_Free(groups);
    PyMem_Free(rl_resource);
    PyMem_Free(rl_value);
    Py_DECREF(keep);
    return result;
}

PyDoc_STRVAR(deadline_fd_doc,
"deadline_fd(seconds) -> int\n"
"--\n\n"
"A close-on-exec, non-blocking timerfd (``CLOCK_MONOTONIC``) that turns readable once\n"
"``seconds`` (> 0, finite) have passed, for the caller to close: a deadline that an epoll\n"
"set can wait on with the rest.\n\n"
"Raises ValueError for a bad ``seconds``, OSError when the timer cannot be made.");

static PyObject *deadline_fd(PyObject *module, PyObject *arg)
{
    struct itimerspec when;
    double seconds = PyFloat_AsDouble(arg);
    int fd;

    (void)module;
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(seconds > 0.0) || seconds > 1e12) {
        PyErr_Format(PyExc_ValueError, "seconds: expected a positive, finite number, got %R",
                     arg);
        return NULL;
    }
    memset(&when, 0, sizeof when);
    when.it_value.tv_sec = (time_t)seconds;
    when.it_value.tv_nsec = (long)((seconds - (double)when.it_value.tv_sec) * 1e9);
    if (when.it_value.tv_nsec >= 1000000000L)
        when.it_value.tv_nsec = 999999999L;
    if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0)
        when.it_value.tv_nsec = 1; /* zero would disarm it */
    fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (timerfd_settime(fd, 0, &when, NULL) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(fd);
        return NULL;
    }
    return PyLong_FromLong(fd);
}

/* ---- chown_tree: a bounded walk, relative to open directories ----------------------- */

struct walk_entry {
    int dir;      /* index into the open directories */
    size_t name;  /* offset into the names buffer */
    int change;   /* owned by the owner (and not a hand-over's extra hard link) */
};

struct walk {
    int *dirs;
    size_t ndirs, cap_dirs;
    struct walk_entry *entries;
    size_t nentries, cap_entries;
    char *names;
    size_t used, cap_names;
};

static int walk_grow(void **buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t next = *cap ? *cap * 2 : 16;
    while (next < need)
        next *= 2;
    void *grown = PyMem_RawRealloc(*buf, next * size);
    if (grown == NULL)
        return -1;
    *buf = grown;
    *cap = next;
    return 0;
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->ndirs; i++)
        close(w->dirs[i]);
    PyMem_RawFree(w->dirs);
    PyMem_RawFree(w->entries);
    PyMem_RawFree(w->names);
}

/* 1: done (or nothing to do), 0: more than ``limit`` entries (nothing changed),
 * -1: failed with errno (nothing changed but what the error says). */
static int chown_walk(const char *path, long owner, uid_t uid, gid_t gid, int hand_over,
                      size_t limit)
{
    struct walk w;
    struct stat top;
    char buf[16384];
    size_t seen = 0;
    int result = 1;

    memset(&w, 0, sizeof w);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 1; /* gone, not a directory, or a link: nothing to hand over */
    if (fstat(fd, &top) != 0 || walk_grow((void **)&w.dirs, &w.cap_dirs, 1, sizeof(int)) != 0) {
        close(fd);
        return 1;
    }
    w.dirs[w.ndirs++] = fd;
    for (size_t d = 0; d < w.ndirs; d++) {
        for (;;) {
            long got = syscall(SYS_getdents64, w.dirs[d], buf, sizeof buf);
            if (got <= 0)
                break; /* the end, or a directory that cannot be read: skipped */
            for (long at = 0; at < got;) {
                struct dirent64 *ent = (struct dirent64 *)(buf + at);
                struct stat st;
                at += ent->d_reclen;
                if (ent->d_name[0] == '.' &&
                    (ent->d_name[1] == 0 || (ent->d_name[1] == '.' && ent->d_name[2] == 0)))
                    continue;
                if (++seen > limit) {
                    result = 0;
                    goto done;
                }
                if (fstatat(w.dirs[d], ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                    continue;
                size_t len = strlen(ent->d_name) + 1;
                if (walk_grow((void **)&w.entries, &w.cap_entries, w.nentries + 1,
                              sizeof(struct walk_entry)) != 0 ||
                    walk_grow((void **)&w.names, &w.cap_names, w.used + len, 1) != 0) {
                    errno = ENOMEM;
                    result = -1;
                    goto done;
                }
                memcpy(w.names + w.used, ent->d_name, len);
                w.entries[w.nentries].dir = (int)d;
                w.entries[w.nentries].name = w.used;
                w.entries[w.nentries].change =
                    (long)st.st_uid == owner &&
                    !(hand_over && st.st_nlink > 1 && !S_ISDIR(st.st_mode));
                w.nentries++;
                w.used += len;
                if (S_ISDIR(st.st_mode) && st.st_dev == top.st_dev) {
                    int sub = openat(w.dirs[d], ent->d_name,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (sub < 0)
                        continue;
                    if (walk_grow((void **)&w.dirs, &w.cap_dirs, w.ndirs + 1,
                                  sizeof(int)) != 0) {
                        close(sub);
                        errno = ENOMEM;
                        result = -1;
                        goto done;
                    }
                    w.dirs[w.ndirs++] = sub;
                }
            }
        }
    }
    if ((long)top.st_uid == owner && fchown(w.dirs[0], uid, gid) != 0) {
        result = -1;
        goto done;
    }
    for (size_t i = 0; i < w.nentries; i++) {
        if (w.entries[i].change)  /* a failure is left as it is, as chown_tree does */
            (void)fchownat(w.dirs[w.entries[i].dir], w.names + w.entries[i].name, uid, gid,
                           AT_SYMLINK_NOFOLLOW);
    }
done:
    {
        int saved = errno;
        walk_free(&w);
        errno = saved;
    }
    return result;
}

PyDoc_STRVAR(chown_tree_doc,
"chown_tree(path, owner, uid, gid, hand_over=False, limit=256) -> bool\n"
"--\n\n"
"Give what ``owner`` owns of the directory ``path`` and everything under it (one file\n"
"system, links not followed) to ``uid:gid``, every step relative to an open directory (a\n"
"path swapped for a link meanwhile is not followed).  ``hand_over``: a file with more than\n"
"one hard link is left as it is.  The tree is read first: one of more than ``limit``\n"
"entries is left unchanged and ``False`` returned; otherwise ``True`` (also when ``path``\n"
"is not a directory, or gone).\n\n"
"Raises OSError when ``path`` itself cannot be changed; ValueError for a bad argument.");

static PyObject *chown_tree(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"path", "owner", "uid", "gid", "hand_over", "limit", NULL};
    PyObject *path_obj, *bytes = NULL;
    long owner, uid, gid;
    int hand_over = 0, result;
    Py_ssize_t limit = 256;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Olll|pn:chown_tree", keywords, &path_obj,
                                     &owner, &uid, &gid, &hand_over, &limit))
        return NULL;
    if (owner < 0 || uid < 0 || gid < 0 || owner > (long)UINT32_MAX - 1 ||
        uid > (long)UINT32_MAX - 1 || gid > (long)UINT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "owner, uid, gid: expected ids 0..4294967294");
        return NULL;
    }
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit: expected a number of entries >= 0");
        return NULL;
    }
    if (!PyUnicode_FSConverter(path_obj, &bytes))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    result = chown_walk(PyBytes_AS_STRING(bytes), owner, (uid_t)uid, (gid_t)gid, hand_over,
                        (size_t)limit);
    Py_END_ALLOW_THREADS
    if (result < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_obj);
        Py_DECREF(bytes);
        return NULL;
    }
    Py_DECREF(bytes);
    return PyBool_FromLong(result);
}

static PyMethodDef methods[] = {
    {"chown_tree", (PyCFunction)(void (*)(void))chown_tree, METH_VARARGS | METH_KEYWORDS,
     chown_tree_doc},
    {"spawn", (PyCFunction)(void (*)(void))spawn, METH_VARARGS | METH_KEYWORDS, spawn_doc},
    {"deadline_fd", deadline_fd, METH_O, deadline_fd_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "neuroflow_native._spawn",
    "A vfork-style spawn that sets the child up (cgroups, rlimits, privileges) before "
    "its exec.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spawn(void)
{
    return PyModule_Create(&module);
}
