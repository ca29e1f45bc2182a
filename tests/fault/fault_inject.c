/* libreverb-fault.so: an LD_PRELOAD library that makes chosen system calls of the real reverbd
 * binary fail on purpose, for tests/fault/fault_test.cpp. It interposes recv, recvfrom, read,
 * send, sendto, sendmsg, writev, accept, accept4 (and watches epoll_ctl); every other call, and
 * every call not chosen, goes straight to the next definition (libc, or a sanitizer's
 * interceptor when the sanitizer runtime is preloaded first).
 *
 * Configuration, read once from the environment:
 *   REVERB_FAULT_CALLS   comma-separated names of the calls to fault, e.g. "send,sendmsg"
 *   REVERB_FAULT_FDS     which descriptors: "conn" (a connected stream socket; the default),
 *                        "listen" (a listening socket; the default for accept calls) or "any"
 *   REVERB_FAULT_EVERY   fault every Nth matching call (default 1: all of them)
 *   REVERB_FAULT_SKIP    let the first N matching calls through (default 0)
 *   REVERB_FAULT_LIMIT   inject at most N faults (default: no limit)
 *   REVERB_FAULT_ERRNO   fail with -1 and this errno, doing nothing: EAGAIN, EINTR, ECONNRESET,
 *                        ENOMEM, EMFILE, ENFILE, ECONNABORTED, ENOBUFS, EPIPE, or a number
 *   REVERB_FAULT_SHORT   instead of an error, move at most this many bytes (data calls only)
 *   REVERB_FAULT_REPORT  a file that holds "matched M faults F\n": faults F is exact at any time
 *                        (rewritten at each fault), matched M (calls that matched) only at exit
 *
 * Faults that leave bytes in a socket (EAGAIN, EINTR, a short receive) would strand them under
 * edge-triggered epoll, where no new edge comes for bytes already queued: a fault the kernel never
 * makes. So after such a receive fault on a descriptor registered with EPOLLET, the library
 * re-registers it (EPOLL_CTL_MOD with the events last given), and the kernel reports the queued
 * bytes again: exactly what happens when bytes arrive just after a read that found none.
 * Accept faults accept nothing: the connection stays in the backlog, as behind an aborted one.
 *
 * Threading: any thread; counters are atomic. No allocation after the first call. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum call {
  kRecv,
  kRecvfrom,
  kRead,
  kSend,
  kSendto,
  kSendmsg,
  kWritev,
  kAccept,
  kAccept4,
  kEpollCtl,
  kCalls
};
static const char* const kNames[kCalls] = {"recv",    "recvfrom", "read",   "send",    "sendto",
                                           "sendmsg", "writev",   "accept", "accept4", "epoll_ctl"};

enum fd_class { kAnyFd, kConnFd, kListenFd };

static struct {
  atomic_int ready; /* 0: not read yet, 1: being read, 2: done */
  int chosen[kCalls];
  int fds; /* -1: the default for the call */
  long every, skip, limit, error, shortCount;
  int reportFd;
  void (*real[kCalls])(void);
  atomic_long matched, faults;
} config;

/* The last EPOLL_CTL_ADD/MOD of each descriptor, to re-arm it after a receive fault. */
enum { kMaxFd = 65536 };
static struct registration {
  int epfd; /* 0: none */
  struct epoll_event event;
} registrations[kMaxFd];

static long envLong(const char* name, long fallback) {
  const char* v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : fallback;
}

static long errnoNamed(const char* v) {
  static const struct {
    const char* name;
    int value;
  } known[] = {
      {"EAGAIN", EAGAIN}, {"EINTR", EINTR},   {"ECONNRESET", ECONNRESET},     {"ENOMEM", ENOMEM},
      {"EMFILE", EMFILE}, {"ENFILE", ENFILE}, {"ECONNABORTED", ECONNABORTED}, {"ENOBUFS", ENOBUFS},
      {"EPIPE", EPIPE}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i) {
    if (strcmp(v, known[i].name) == 0) return known[i].value;
  }
  return strtol(v, NULL, 10);
}

/* The next definition of call c (libc's, or a sanitizer's interceptor), as a generic function
 * pointer: ISO C converts function pointers into one another, not from dlsym's void*. */
typedef void (*any_function)(void);
static any_function real(enum call c) {
  any_function f = __atomic_load_n(&config.real[c], __ATOMIC_ACQUIRE);
  if (f == NULL) {
    void* found = dlsym(RTLD_NEXT, kNames[c]);
    if (found == NULL) {
      fprintf(stderr, "libreverb-fault: no next definition of %s\n", kNames[c]);
      abort();
    }
    memcpy(&f, &found, sizeof f);
    __atomic_store_n(&config.real[c], f, __ATOMIC_RELEASE);
  }
  return f;
}

static void writeReport(void) {
  if (config.reportFd < 0) return;
  char line[96];
  int n = snprintf(line, sizeof line, "matched %ld faults %ld\n", atomic_load(&config.matched),
                   atomic_load(&config.faults));
  /* Fixed width would be tidier; a shorter line than before cannot happen (counts only grow). */
  if (pwrite(config.reportFd, line, (size_t)n, 0) < 0) {
    /* Nothing to do: the test then finds no report and fails. */
  }
}

static void readConfig(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&config.ready, &expected, 1)) {
    while (atomic_load(&config.ready) != 2) {
    }
    return;
  }
  for (int c = 0; c < kCalls; ++c) real((enum call)c);
  const char* calls = getenv("REVERB_FAULT_CALLS");
  if (calls != NULL) {
    for (int c = 0; c < kCalls - 1; ++c) {
      const size_t len = strlen(kNames[c]);
      for (const char* p = calls; (p = strstr(p, kNames[c])) != NULL; p += len) {
        if ((p == calls || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) config.chosen[c] = 1;
      }
    }
  }
  const char* fds = getenv("REVERB_FAULT_FDS");
  config.fds = fds == NULL                  ? -1
               : strcmp(fds, "any") == 0    ? kAnyFd
               : strcmp(fds, "listen") == 0 ? kListenFd
                                            : kConnFd;
  config.every = envLong("REVERB_FAULT_EVERY", 1);
  if (config.every < 1) config.every = 1;
  config.skip = envLong("REVERB_FAULT_SKIP", 0);
  config.limit = envLong("REVERB_FAULT_LIMIT", -1);
  config.shortCount = envLong("REVERB_FAULT_SHORT", 0);
  const char* error = getenv("REVERB_FAULT_ERRNO");
  config.error = error ? errnoNamed(error) : 0;
  config.reportFd = -1;
  const char* report = getenv("REVERB_FAULT_REPORT");
  if (report != NULL) {
    config.reportFd = open(report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    writeReport();
  }
  atomic_store(&config.ready, 2);
}

/* Reads the configuration (and opens the report) before main, so the report's descriptor is open
 * before reverbd's first count of its descriptors; writes the final counts at exit. */
__attribute__((constructor)) static void atLoad(void) {
  readConfig();
}
__attribute__((destructor)) static void atExit(void) {
  writeReport();
}

static enum fd_class classOf(int fd) {
  int listening = 0;
  socklen_t size = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0) return kAnyFd;
  if (listening) return kListenFd;
  int type = 0;
  size = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM) return kAnyFd;
  return kConnFd;
}

/* Whether this call on fd fails now. */
static int shouldFault(enum call c, int fd) {
  if (atomic_load_explicit(&config.ready, memory_order_acquire) != 2) readConfig();
  if (!config.chosen[c]) return 0;
  const enum fd_class wanted = config.fds >= 0                   ? (enum fd_class)config.fds
                               : (c == kAccept || c == kAccept4) ? kListenFd
                                                                 : kConnFd;
  if (wanted != kAnyFd && classOf(fd) != wanted) return 0;
  const long n = atomic_fetch_add(&config.matched, 1) + 1;
  if (n <= config.skip || (n - config.skip) % config.every != 0) return 0;
  if (config.limit >= 0) {
    long f = atomic_load(&config.faults);
    do {
      if (f >= config.limit) return 0;
    } while (!atomic_compare_exchange_weak(&config.faults, &f, f + 1));
  } else {
    atomic_fetch_add(&config.faults, 1);
  }
  writeReport();
  return 1;
}

/* The real calls' types. */
typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event*);
typedef ssize_t (*recv_fn)(int, void*, size_t, int);
typedef ssize_t (*recvfrom_fn)(int, void*, size_t, int, __SOCKADDR_ARG, socklen_t*);
typedef ssize_t (*read_fn)(int, void*, size_t);
typedef ssize_t (*send_fn)(int, const void*, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void*, size_t, int, __CONST_SOCKADDR_ARG, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr*, int);
typedef ssize_t (*writev_fn)(int, const struct iovec*, int);
typedef int (*accept_fn)(int, __SOCKADDR_ARG, socklen_t*);
typedef int (*accept4_fn)(int, __SOCKADDR_ARG, socklen_t*, int);

/* After a receive fault that leaves bytes queued: a new edge, as if they had just arrived. */
static void rearm(int fd) {
  if (fd < 0 || fd >= kMaxFd) return;
  struct registration r = registrations[fd];
  if (r.epfd <= 0 || !(r.event.events & EPOLLET)) return;
  epoll_ctl_fn ctl = (epoll_ctl_fn)real(kEpollCtl);
  ctl(r.epfd, EPOLL_CTL_MOD, fd, &r.event);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  epoll_ctl_fn ctl = (epoll_ctl_fn)real(kEpollCtl);
  const int result = ctl(epfd, op, fd, event);
  if (result == 0 && fd >= 0 && fd < kMaxFd) {
    if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event != NULL) {
      registrations[fd].epfd = epfd;
      registrations[fd].event = *event;
    } else if (op == EPOLL_CTL_DEL) {
      registrations[fd].epfd = 0;
    }
  }
  return result;
}

/* A receive: fault it, or shorten it and re-arm. `len` is in/out. Returns 1 if the call must
 * fail with -1 (errno set). */
static int receiveFault(enum call c, int fd, size_t* len) {
  if (!shouldFault(c, fd)) return 0;
  if (config.shortCount > 0) {
    if (*len > (size_t)config.shortCount) *len = (size_t)config.shortCount;
    rearm(fd); /* after the real call would be exact; before is the same: MOD reports at the
                  next epoll_wait, which comes after this call returns */
    return 0;
  }
  if (config.error == EAGAIN || config.error == EWOULDBLOCK || config.error == EINTR) rearm(fd);
  errno = (int)config.error;
  return 1;
}

/* A send: fault it, or shorten it. */
static int sendFault(enum call c, int fd, size_t* len) {
  if (!shouldFault(c, fd)) return 0;
  if (config.shortCount > 0) {
    if (*len > (size_t)config.shortCount) *len = (size_t)config.shortCount;
    return 0;
  }
  errno = (int)config.error;
  return 1;
}

ssize_t recv(int fd, void* buf, size_t len, int flags) {
  if (receiveFault(kRecv, fd, &len)) return -1;
  recv_fn f = (recv_fn)real(kRecv);
  return f(fd, buf, len, flags);
}

ssize_t recvfrom(int fd, void* buf, size_t len, int flags, __SOCKADDR_ARG from,
                 socklen_t* fromLen) {
  if (receiveFault(kRecvfrom, fd, &len)) return -1;
  recvfrom_fn f = (recvfrom_fn)real(kRecvfrom);
  return f(fd, buf, len, flags, from, fromLen);
}

ssize_t read(int fd, void* buf, size_t len) {
  if (receiveFault(kRead, fd, &len)) return -1;
  read_fn f = (read_fn)real(kRead);
  return f(fd, buf, len);
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (sendFault(kSend, fd, &len)) return -1;
  send_fn f = (send_fn)real(kSend);
  return f(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void* buf, size_t len, int flags, __CONST_SOCKADDR_ARG to,
               socklen_t toLen) {
  if (sendFault(kSendto, fd, &len)) return -1;
  sendto_fn f = (sendto_fn)real(kSendto);
  return f(fd, buf, len, flags, to, toLen);
}

/* Vector calls: a short count keeps the first iovecs whole, cuts one, drops the rest. */
static int shortenVector(const struct iovec* in, int count, size_t limit, struct iovec* out) {
  int n = 0;
  for (; n < count && n < 64 && limit > 0; ++n) {
    out[n] = in[n];
    if (out[n].iov_len > limit) out[n].iov_len = limit;
    limit -= out[n].iov_len;
  }
  return n;
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  size_t len = (size_t)-1;
  if (sendFault(kSendmsg, fd, &len)) return -1;
  sendmsg_fn f = (sendmsg_fn)real(kSendmsg);
  if (len == (size_t)-1) return f(fd, msg, flags);
  struct iovec cut[64];
  struct msghdr shorter = *msg;
  shorter.msg_iov = cut;
  shorter.msg_iovlen = (size_t)shortenVector(msg->msg_iov, (int)msg->msg_iovlen, len, cut);
  return f(fd, &shorter, flags);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  size_t len = (size_t)-1;
  if (sendFault(kWritev, fd, &len)) return -1;
  writev_fn f = (writev_fn)real(kWritev);
  if (len == (size_t)-1) return f(fd, iov, count);
  struct iovec cut[64];
  return f(fd, cut, shortenVector(iov, count, len, cut));
}

int accept(int fd, __SOCKADDR_ARG address, socklen_t* length) {
  if (shouldFault(kAccept, fd)) {
    errno = (int)config.error;
    return -1;
  }
  accept_fn f = (accept_fn)real(kAccept);
  return f(fd, address, length);
}

int accept4(int fd, __SOCKADDR_ARG address, socklen_t* length, int flags) {
  if (shouldFault(kAccept4, fd)) {
    errno = (int)config.error;
    return -1;
  }
  accept4_fn f = (accept4_fn)real(kAccept4);
  return f(fd, address, length, flags);
}
