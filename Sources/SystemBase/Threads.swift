import Glibc

private final class ThreadBody {
  let body: () -> Void
  init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new plain, detached thread (`pthread_create`, `pthread_detach`): for work that
/// blocks, which must not run on Swift's cooperative pool or Dispatch's.
public func startDetachedThread(_ body: @escaping () -> Void) {
  let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
  var thread = pthread_t()
  let result = pthread_create(
    &thread, nil,
    { argument in
      Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
      return nil
    }, box)
  precondition(result == 0, "pthread_create failed with \(result)")
  pthread_detach(thread)
}

/// Makes the calling thread run only when a core would otherwise idle: `SCHED_IDLE`
/// (`sched_setscheduler`), whose threads any ordinary thread that wakes preempts at once (sched(7));
/// where that is refused, nice 19 (`setpriority`). Either applies to this thread alone (on Linux,
/// pid 0 is the calling thread).
public func runThisThreadOnlyWhenIdle() {
  // SCHED_IDLE is 5 in <linux/sched.h>; glibc declares it only under _GNU_SOURCE, which Swift's
  // Glibc module is not built with.
  let schedIdle: Int32 = 5
  var parameters = sched_param(sched_priority: 0)
  if sched_setscheduler(0, schedIdle, &parameters) != 0 {
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
  }
}
