/// A store that can also be written: the bucket the shared block cache keeps blocks in.
///
/// Only the shared cache writes; every store a mount serves files from stays read-only.
public protocol WritableObjectClient: ObjectClient {
  /// The whole object, or nil when no object has the key. Fails with `.invalidResponse` when the
  /// object is longer than `limit` bytes.
  func getObject(key: String, limit: Int) throws(ObjectStoreError) -> [UInt8]?

  /// Writes `bytes` as the object `key`, replacing any object of that key.
  func put(key: String, bytes: [UInt8]) throws(ObjectStoreError)
}
