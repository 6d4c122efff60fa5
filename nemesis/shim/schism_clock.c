/* schism_clock: an LD_PRELOAD shim that skews a C server's wall clock.
 *
 * It overrides clock_gettime, gettimeofday and time. Each asks the kernel directly
 * (syscall(SYS_clock_gettime, ...)), so the shim never calls dlsym or malloc: that is
 * what makes libfaketime deadlock inside jemalloc-linked Redis (RECIPES.md section 6).
 * Only CLOCK_REALTIME and CLOCK_REALTIME_COARSE are skewed; monotonic clocks stay real,
 * so the server's timeouts keep working.
 *
 * The skew comes from the file named by SCHISM_CLOCK_FILE, mapped shared and read on
 * every call, so the nemesis changes it at run time by rewriting the file in place:
 *   int64 offset_ns; int64 anchor_ns; double rate;   (native byte order, 24 bytes)
 * skewed = real + offset_ns + (real - anchor_ns) * (rate - 1).
 * Without the variable, or if the file cannot be mapped, time is not changed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct schism_skew {
    volatile int64_t offset_ns;
    volatile int64_t anchor_ns;
    volatile double rate;
};

static struct schism_skew *volatile skew_map;
static volatile int skew_state; /* 0: not looked yet, 1: mapped, 2: none */

static struct schism_skew *skew(void) {
    int st = __atomic_load_n(&skew_state, __ATOMIC_ACQUIRE);
    if (st == 1) return skew_map;
    if (st == 2) return 0;
    const char *path = getenv("SCHISM_CLOCK_FILE");
    void *m = MAP_FAILED;
    if (path && *path) {
        int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            m = mmap(0, sizeof(struct schism_skew), PROT_READ, MAP_SHARED, fd, 0);
            syscall(SYS_close, fd);
        }
    }
    if (m == MAP_FAILED) {
        __atomic_store_n(&skew_state, 2, __ATOMIC_RELEASE);
        return 0;
    }
    skew_map = (struct schism_skew *)m;
    __atomic_store_n(&skew_state, 1, __ATOMIC_RELEASE);
    return skew_map;
}

static int64_t adjust(int64_t real) {
    struct schism_skew *s = skew();
    if (!s) return real;
    int64_t off = s->offset_ns, anchor = s->anchor_ns;
    double rate = s->rate;
    if (!(rate > 0.0)) rate = 1.0;
    return real + off + (int64_t)((double)(real - anchor) * (rate - 1.0));
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    long rc = syscall(SYS_clock_gettime, id, ts);
    if (rc == 0 && ts && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t t = adjust((int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec);
        ts->tv_sec = (time_t)(t / 1000000000LL);
        ts->tv_nsec = (long)(t % 1000000000LL);
        if (ts->tv_nsec < 0) {
            ts->tv_nsec += 1000000000L;
            ts->tv_sec -= 1;
        }
    }
    return (int)rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
