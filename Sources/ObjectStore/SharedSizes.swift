/// The sizes of objects that never change, kept where other machines find them (the shared cache
/// of `--shared-cache`), for a store whose listings give no sizes: a mount asks the store only for
/// the sizes no machine recorded. Never a source of truth: a size the store contradicts is dropped.
public protocol SharedSizes: Sendable {
  /// The size recorded for the object `key` of the store whose identity is `source`; nil when none
  /// is recorded, the record is damaged or unreachable, or this process dropped it.
  func size(source: String, key: String) -> UInt64?

  /// Records the size of a fixed object, learned from its store, behind the caller: no reader waits.
  func record(source: String, key: String, size: UInt64)

  /// Drops a recorded size the store contradicted: this process does not use it again until it
  /// records one itself.
  func drop(source: String, key: String)
}
