/* The namespace sandbox's PID 1 once its file system is set up: a tiny static program,
 * without libc, that the launcher (_namespace.c) executes from a sealed memfd.
 *
 * Why a program of its own: PID 1 builds the sandbox's root as a clone that shares the
 * caller's memory (no copy of a large interpreter's page tables, no copy-on-write faults
 * in the caller while the run lasts).  It must stop sharing that memory before it enters
 * the run's memory cgroup (an out-of-memory kill of a process kills every process that
 * shares its memory) and before anything of the sandboxed command runs: it executes this
 * program, which has an address space of a few pages of its own.
 *
 * What the launcher did before the exec: the run's ids, a new session keyring, the new
 * root, fds (below), rlimits, the bounding and ambient capability sets emptied but for
 * CAP_SYS_ADMIN kept ambient (the cgroup namespace below needs it), nothing else.
 * Fds: 0-2 the command's stdin, stdout and stderr, 3 the report pipe (the caller sees end
 * of file once the command is exec'd, or a report of the step that failed), 4 the status
 * pipe (the command's wait status goes there; the caller alone holds its read end), 5 ..
 * 5 + ncg - 1 the run's cgroup files, opened by the caller.  Nothing else is open.
 *
 * argv: [name, ncg, seccomp (0 or 1), path, the command's argv...]; the environment is the
 * command's.
 *
 * In order, every call checked: not dumpable (nothing in the sandbox may trace PID 1 or
 * read its memory); the parent-death signal, and the caller still there; join the run's
 * cgroups ("0": ourselves) and close their files; a new cgroup namespace (rooted at the
 * run's cgroups); every capability dropped; no_new_privs; the seccomp filter (if asked;
 * the command inherits all of this); fds 3 and 4 close-on-exec; fork the command, which
 * execs path; our copy of the command line wiped; close 0-3; reap every child until the
 * command ends; write its wait status to fd 4; exit with its exit code (128 + signal),
 * which ends the namespace and kills whatever is left in it.
 */
#include <linux/capability.h>
#include <linux/prctl.h>
#include <signal.h>
#include <stddef.h>

#include "_ns_common.h"
#include "_ns_filter.h"

#define NF_WALL 0x40000000 /* __WALL */
#define NF_POLLOUT 0x004
#define NF_POLLERR 0x008
#define NF_POLLHUP 0x010

#if defined(__x86_64__)
static long sys6(long n, long a, long b, long c, long d, long e)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  hlt\n");
#elif defined(__aarch64__)
static long sys6(long n, long a, long b, long c, long d, long e)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;

    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
                     : "memory", "cc");
    return x0;
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl init_main\n"
        "  brk #0\n");
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0)

/* What the compiler may call even in a freestanding program. */
void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
    return dst;
}

static struct sock_filter filter[FILTER_MAX];

static void __attribute__((noreturn)) leave(int code)
{
    for (;;)
        sys1(SYS_exit_group, code);
}

static void __attribute__((noreturn)) fail(long err, int step, int index)
{
    struct report r;

    r.err = (int)-err;
    r.step = step;
    r.index = index;
    sys3(SYS_write, NF_INIT_REPORT_FD, &r, sizeof r);
    leave(127);
}

void __attribute__((noreturn, used)) init_main(long *sp)
{
    long argc = sp[0], rc, cmd, done;
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    int status = 0, ncg, fd, i;

    /* First of all: the exec made us dumpable again. */
    if ((rc = sys2(SYS_prctl, PR_SET_DUMPABLE, 0)) < 0)
        fail(rc, STEP_DUMPABLE, 0);
    if (argc < 5 || argv[1][0] < '0' || argv[1][0] > '8' || argv[1][1] != '\0')
        fail(-EINVAL, STEP_EXEC, -1); /* the launcher always passes these */
    ncg = argv[1][0] - '0';
    /* Re-armed (a change of credentials would have cleared it), then the caller checked:
     * it alone reads the status pipe, and its fds close before its death signal is sent. */
    if ((rc = sys2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL)) < 0)
        fail(rc, STEP_PDEATHSIG, 2);
    {
        struct {
            int fd;
            short events, revents;
        } alive = {NF_INIT_STATUS_FD, NF_POLLOUT, 0};
        struct {
            long sec, nsec;
        } now = {0, 0};
        if (sys4(SYS_ppoll, &alive, 1, &now, 0) < 0 || (alive.revents & (NF_POLLERR | NF_POLLHUP)))
            leave(127);
    }
    /* The run's cgroups before anything of the command runs. */
    for (i = 0; i < ncg; i++) {
        fd = NF_INIT_STATUS_FD + 1 + i;
        if ((rc = sys3(SYS_write, fd, "0", 1)) != 1)
            fail(rc < 0 ? rc : -EIO, STEP_CGROUP, i);
        sys1(SYS_close, fd);
    }
    if ((rc = sys1(SYS_unshare, CLONE_NEWCGROUP)) < 0)
        fail(rc, STEP_CGROUPNS, 0);
    {
        struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct caps[2];
        memset(caps, 0, sizeof caps);
        if ((rc = sys2(SYS_capset, &head, caps)) < 0)
            fail(rc, STEP_CAPS, 65);
        if ((rc = sys2(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)) < 0)
            fail(rc, STEP_CAPS, 64);
    }
    if ((rc = sys2(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1)) < 0)
        fail(rc, STEP_NO_NEW_PRIVS, 0);
    if (argv[2][0] == '1') {
        struct sock_fprog prog;
        prog.len = build_filter(filter);
        prog.filter = filter;
        if ((rc = sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) < 0)
            fail(rc, STEP_SECCOMP, 0);
    }
    if ((rc = sys3(SYS_fcntl, NF_INIT_REPORT_FD, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */)) < 0 ||
        (rc = sys3(SYS_fcntl, NF_INIT_STATUS_FD, 2, 1)) < 0)
        fail(rc, STEP_FD_MAP, 3);
    cmd = sys6(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (cmd == 0)
        fail(sys3(SYS_execve, argv[3], argv + 4, envp), STEP_EXEC, 0);
    if (cmd < 0)
        fail(cmd, STEP_FORK, 0);
    /* /proc/1/cmdline: our name only (the arguments are the command's own, shown there). */
    for (i = 1; i < argc; i++)
        for (char *c = argv[i]; *c; c++)
            *c = '\0';
    /* The caller sees the command's exec (or its report) directly: our copies go. */
    for (fd = 0; fd <= NF_INIT_REPORT_FD; fd++)
        sys1(SYS_close, fd);
    for (;;) {
        done = sys4(SYS_wait4, -1, &status, NF_WALL, 0);
        if (done == cmd)
            break;
        if (done < 0 && done != -EINTR)
            leave(126);
    }
    while (sys3(SYS_write, NF_INIT_STATUS_FD, &status, sizeof status) == -EINTR)
        ;
    if ((status & 0x7f) == 0)
        leave((status >> 8) & 0xff);
    leave(128 + (status & 0x7f));
}
