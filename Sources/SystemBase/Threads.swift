import CLinux
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

/// A lock whose waiters sleep at once (`pthread_mutex_lock`, a plain futex wait), for state that
/// many threads touch in bursts: Synchronization's `Mutex` spins before it sleeps, which on a
/// machine of few cores turns a burst of short critical sections (the kernel's forgets, one per
/// FUSE thread) into cores spent spinning.
public final class SleepingMutex<Value: ~Copyable>: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private var value: Value

  public init(_ value: consuming Value) {
    self.value = value
    mutex = UnsafeMutablePointer.allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }

  /// Runs `body` with the value, holding the lock (`pthread_mutex_lock`, `pthread_mutex_unlock`).
  public func withLock<Result: ~Copyable, Failure: Error>(
    _ body: (inout Value) throws(Failure) -> Result
  ) throws(Failure) -> Result {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body(&value)
  }
}

/// Gives the memory freed since to the system (`malloc_trim`): glibc keeps freed memory in its
/// heap for reuse, so a process that dropped much of what it held would otherwise keep its size.
public func returnFreedMemory() {
  _ = malloc_trim(0)
}

/// The bytes of the heap in use (glibc's `mallinfo2`: small blocks in use plus large mapped ones):
/// what the process's data costs, without the freed memory glibc keeps for reuse.
public func heapBytesInUse() -> Int {
  let info = mallinfo2()
  return Int(info.uordblks + info.hblkhd)
}
