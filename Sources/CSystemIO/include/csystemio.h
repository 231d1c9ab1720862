#ifndef CSYSTEMIO_H
#define CSYSTEMIO_H

/// The async-signal-safe half of SystemIO's interrupt handling (Interrupt.swift is the other).
///
/// Temporaries are registered in a fixed table of preallocated path buffers, so the signal
/// handler never allocates, never takes a lock and calls only unlink(2) and _exit(2).

/// Number of temporaries that can be registered at once; more are not tracked by the handler
/// (they are still removed by the orderly path and by the next run's stale-temporary cleanup).
#define DSC_TEMPORARY_SLOTS 256
/// Longest registrable path, terminating NUL included.
#define DSC_TEMPORARY_PATH_MAX 4096

/// Installs the SIGINT and SIGTERM handler (idempotent). The first signal only records itself
/// (`dsc_interrupt_count` becomes 1); a second one unlinks every registered temporary and exits
/// with 128 + its number (130 for SIGINT, 143 for SIGTERM). Returns 0, or -1 with errno set.
int dsc_interrupt_install(void);

/// Signals received since start (or the last reset); relaxed atomic load.
int dsc_interrupt_count(void);
/// The last signal received (0 when none).
int dsc_interrupt_signal(void);
/// Records `signal` as if it had arrived once (tests, and code that requests a stop).
void dsc_interrupt_request(int signal);
/// Forgets every received signal.
void dsc_interrupt_reset(void);

/// Copies `path` into a free slot and returns the slot's index, or -1 when the table is full
/// or the path is too long. Thread-safe (lock-free); not for use inside a signal handler.
int dsc_temporary_register(const char *path);
/// Frees `slot` (a value `dsc_temporary_register` returned; -1 is ignored).
void dsc_temporary_unregister(int slot);
/// Number of slots in use (tests).
int dsc_temporary_count(void);

/// Non-zero while SystemIO's fault injection has rules installed (FaultInjection.swift). The
/// write/read/fsync/rename wrappers test it with one relaxed load before anything else.
extern _Atomic int dsc_fault_injection_armed;

static inline int dsc_fault_injection_is_armed(void) {
    return __atomic_load_n((int *)&dsc_fault_injection_armed, __ATOMIC_RELAXED);
}

static inline void dsc_fault_injection_set_armed(int armed) {
    __atomic_store_n((int *)&dsc_fault_injection_armed, armed, __ATOMIC_RELAXED);
}

/// Allocates the blocks of bytes [0, length) of `fd` without changing its size (Linux
/// fallocate with FALLOC_FL_KEEP_SIZE). Returns 0, or -1 with errno set (EOPNOTSUPP where the
/// file system or the platform cannot).
int dsc_reserve(int fd, long long length);

#endif
