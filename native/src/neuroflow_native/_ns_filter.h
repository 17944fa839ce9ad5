/* The seccomp-bpf filter a sandboxed command runs under, shared by the namespace launcher
 * (_namespace.c: seccomp_filter(), and a PID 1 made as a copy of the caller) and the init
 * program (_ns_init.c), which builds it without libc.  Architecture checked first; denied:
 * at least what Docker's default profile denies. */
#ifndef NF_NS_FILTER_H
#define NF_NS_FILTER_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef CLONE_NEWNS
#include <linux/sched.h> /* the clone flags, where libc did not define them */
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
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
#error "neuroflow_native's namespace launcher supports x86_64 and aarch64"
#endif

/* Namespace flags a sandboxed clone() may not use. */
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | \
                  CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)

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

#define PUT(code, k, jt, jf) (f[n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define PUTS(code, k) (f[n++] = (struct sock_filter)BPF_STMT(code, k))

/* Write the filter into f (FILTER_MAX entries); return its length. */
static unsigned short build_filter(struct sock_filter *f)
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
    return n;
}

#endif
