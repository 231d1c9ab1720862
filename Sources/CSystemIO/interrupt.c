#include "csystemio.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

// Slot states. A slot's path buffer is written only by the thread that moved it FREE -> CLAIMED,
// read by the handler only after it moved it READY -> UNLINKING, so a path is never read while
// another thread rewrites it (a half-overwritten path could name a file dsconvert did not create).
enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_READY = 2, SLOT_UNLINKING = 3 };

static _Atomic int slot_state[DSC_TEMPORARY_SLOTS];
static char slot_path[DSC_TEMPORARY_SLOTS][DSC_TEMPORARY_PATH_MAX];

_Atomic int dsc_fault_injection_armed;

static _Atomic int received_count;
static _Atomic int received_signal;
static _Atomic int installed;

static void handle_signal(int sig) {
    int saved_errno = errno;
    atomic_store_explicit(&received_signal, sig, memory_order_relaxed);
    int before = atomic_fetch_add_explicit(&received_count, 1, memory_order_acq_rel);
    if (before == 0) {
        // First signal: the conversion loops see it between chunks, stop and clean up in order.
        errno = saved_errno;
        return;
    }
    // Second signal: remove what is registered and leave now. Only unlink(2) and _exit(2), both
    // async-signal-safe; the atomics are lock-free (checked in dsc_interrupt_install).
    for (int i = 0; i < DSC_TEMPORARY_SLOTS; i++) {
        int expected = SLOT_READY;
        if (atomic_compare_exchange_strong_explicit(&slot_state[i], &expected, SLOT_UNLINKING,
                                                    memory_order_acquire, memory_order_relaxed)) {
            unlink(slot_path[i]);
        }
    }
    _exit(128 + sig);
}

int dsc_interrupt_install(void) {
    if (!atomic_is_lock_free(&received_count)) {
        errno = ENOTSUP;
        return -1;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handle_signal;
    sigemptyset(&sa.sa_mask);
    // Block the other signal while one is handled, so two arriving together count in order.
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        atomic_store(&installed, 0);
        return -1;
    }
    return 0;
}

int dsc_interrupt_count(void) { return atomic_load_explicit(&received_count, memory_order_relaxed); }
int dsc_interrupt_signal(void) { return atomic_load_explicit(&received_signal, memory_order_relaxed); }

void dsc_interrupt_request(int signal) {
    atomic_store_explicit(&received_signal, signal, memory_order_relaxed);
    int expected = 0;
    atomic_compare_exchange_strong_explicit(&received_count, &expected, 1, memory_order_relaxed, memory_order_relaxed);
}

void dsc_interrupt_reset(void) {
    atomic_store_explicit(&received_count, 0, memory_order_relaxed);
    atomic_store_explicit(&received_signal, 0, memory_order_relaxed);
}

int dsc_temporary_register(const char *path) {
    size_t n = strlen(path);
    if (n >= DSC_TEMPORARY_PATH_MAX) return -1;
    for (int i = 0; i < DSC_TEMPORARY_SLOTS; i++) {
        int expected = SLOT_FREE;
        if (atomic_compare_exchange_strong_explicit(&slot_state[i], &expected, SLOT_CLAIMED,
                                                    memory_order_acquire, memory_order_relaxed)) {
            memcpy(slot_path[i], path, n + 1);
            atomic_store_explicit(&slot_state[i], SLOT_READY, memory_order_release);
            return i;
        }
    }
    return -1;
}

void dsc_temporary_unregister(int slot) {
    if (slot < 0 || slot >= DSC_TEMPORARY_SLOTS) return;
    int expected = SLOT_READY;
    // Fails only while the handler unlinks this slot, and the handler then exits the process.
    atomic_compare_exchange_strong_explicit(&slot_state[slot], &expected, SLOT_FREE,
                                            memory_order_release, memory_order_relaxed);
}

int dsc_temporary_count(void) {
    int n = 0;
    for (int i = 0; i < DSC_TEMPORARY_SLOTS; i++) {
        if (atomic_load_explicit(&slot_state[i], memory_order_relaxed) != SLOT_FREE) n++;
    }
    return n;
}
