internal import CFuse
import Glibc
import LogFS
import Logging
import ObjectStore
import SystemBase

// The libfuse low-level callbacks. They live here, not in main.swift: top-level code there is
// main-actor isolated, and libfuse calls these on its own worker threads.

/// The name of the extended attribute on the mount's root that holds the counters as JSON.
public let statisticsAttribute = "user.bklogfs.stats"

private func context(_ request: fuse_req_t?) -> FuseContext {
  Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
}

/// The one place a failed request is answered: logged once, at its kind's level (a missing name
/// only at trace, a failed fetch as an error), and replied with its kind's errno.
private func reply(_ request: fuse_req_t?, _ error: FilesystemError, _ context: FuseContext) {
  logFailure(error, context)
  fuse_reply_err(request, error.errno)
}

private func logFailure(_ error: FilesystemError, _ context: FuseContext) {
  context.logger.log(level: error.level, "\(error.message) (answered \(String(cString: strerror(error.errno))))")
}

private func statBuffer(_ attributes: Attributes, _ context: FuseContext) -> stat {
  var buffer = stat()
  buffer.st_ino = UInt(attributes.inode)
  switch attributes.kind {
  case .directory:
    buffer.st_mode = S_IFDIR | 0o555
    buffer.st_nlink = 2
  case .file:
    buffer.st_mode = S_IFREG | 0o444
    buffer.st_nlink = 1
  case .symlink:
    buffer.st_mode = S_IFLNK | 0o777
    buffer.st_nlink = 1
  }
  buffer.st_uid = context.uid
  buffer.st_gid = context.gid
  buffer.st_size = Int(attributes.size)
  // An archived object's bytes are offline: no blocks, as `ls -s` and `du` show of an HSM's files.
  buffer.st_blocks = attributes.isOffline ? 0 : Int((attributes.size + 511) / 512)
  buffer.st_blksize = 1 << 17
  let time = timespec(tv_sec: Int(attributes.modified.seconds), tv_nsec: Int(attributes.modified.nanoseconds))
  buffer.st_mtim = time
  buffer.st_ctim = time
  buffer.st_atim = time
  return buffer
}

/// Immutable files (archived logs) are kept long; everything else for the directory TTL.
private func ttl(_ attributes: Attributes, _ context: FuseContext) -> Double {
  attributes.isImmutable ? context.caching.fileTTL : context.caching.directoryTTL
}

/// How long the kernel keeps the attributes: not at all for a file whose size is learned when it is
/// opened, nor for a growing log's (`tail -f` polls `fstat`). The kernel takes a timeout of 0 as expired at once (not at the next tick), so an `fstat`
/// right after the open that sized the file, and a read past the size 0 it held, ask for the
/// attributes again and get the size.
private func attributesTTL(_ attributes: Attributes, _ context: FuseContext) -> Double {
  attributes.sizeIsKnown && !attributes.isGrowing ? ttl(attributes, context) : 0
}

private func entryParameters(_ attributes: Attributes, _ context: FuseContext) -> fuse_entry_param {
  var entry = fuse_entry_param()
  entry.ino = attributes.inode
  entry.generation = 1
  entry.attr = statBuffer(attributes, context)
  entry.attr_timeout = attributesTTL(attributes, context)
  entry.entry_timeout = ttl(attributes, context)
  return entry
}

private func name(_ pointer: UnsafePointer<CChar>?) -> String? {
  pointer.flatMap { String(validatingCString: $0) }
}

private let readOnly: @convention(c) (fuse_req_t?) -> Void = { fuse_reply_err($0, EROFS) }

func makeOperations() -> fuse_lowlevel_ops {
  var ops = fuse_lowlevel_ops()

  ops.`init` = { userdata, connection in
    guard let connection, let userdata else { return }
    // libfuse sizes the kernel's max_pages from max_write: 1 MiB lets reads of 1 MiB through.
    connection.pointee.max_write = 1 << 20
    // Must equal the max_read mount option, or libfuse ends the session.
    connection.pointee.max_read = 1 << 20
    connection.pointee.max_readahead = 1 << 20
    // Archived logs never change, and a log that may (a running job's) is opened without
    // keep_cache: the kernel need not check attributes on every read of a cached page.
    connection.pointee.want &= ~UInt32(FUSE_CAP_AUTO_INVAL_DATA)
    Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue().onReady()
  }

  ops.lookup = { request, parent, namePointer in
    let context = context(request)
    guard let name = name(namePointer) else {
      fuse_reply_err(request, ENOENT)
      return
    }
    do throws(FilesystemError) {
      // The kernel holds the inode once the reply reaches it: counted before (a forget may follow
      // at once), and given back if the reply did not get there (the request was interrupted).
      var entry = entryParameters(try context.filesystem.lookup(parent: parent, name: name, reference: true), context)
      context.notices.drain(seconds: 1)
      if fuse_reply_entry(request, &entry) != 0 { context.filesystem.forget(entry.ino, count: 1) }
    } catch  where error.kind == .notFound {
      // Inode 0 tells the kernel to remember the name as missing for a while.
      logFailure(error, context)
      var entry = fuse_entry_param()
      entry.entry_timeout = context.caching.directoryTTL
      fuse_reply_entry(request, &entry)
    } catch {
      reply(request, error, context)
    }
  }

  ops.readlink = { request, inode in
    let context = context(request)
    do throws(FilesystemError) {
      _ = try context.filesystem.readLink(inode).withCString { fuse_reply_readlink(request, $0) }
    } catch {
      reply(request, error, context)
    }
  }

  ops.forget = { request, inode, count in
    context(request).filesystem.forget(inode, count: count)
    fuse_reply_none(request)
  }
  ops.forget_multi = { request, count, forgets in
    let filesystem = context(request).filesystem
    for forgotten in UnsafeBufferPointer(start: forgets, count: count) {
      filesystem.forget(forgotten.ino, count: forgotten.nlookup)
    }
    fuse_reply_none(request)
  }

  ops.getattr = { request, inode, _ in
    let context = context(request)
    do throws(FilesystemError) {
      let attributes = try context.filesystem.attributes(of: inode)
      var buffer = statBuffer(attributes, context)
      fuse_reply_attr(request, &buffer, attributesTTL(attributes, context))
    } catch {
      reply(request, error, context)
    }
  }

  ops.opendir = { request, inode, info in
    let context = context(request)
    do throws(FilesystemError) {
      info!.pointee.fh = try context.filesystem.openDirectory(inode)
      // A listing that found files changed told the kernel to drop what it holds of them: the
      // reply waits for that, so that a `stat` after `ls` sees the change.
      context.notices.drain(seconds: 1)
      fuse_reply_open(request, info)
    } catch {
      reply(request, error, context)
    }
  }

  ops.readdir = { request, _, size, offset, info in
    fillDirectory(request, size: size, offset: offset, info: info, plus: false)
  }
  ops.readdirplus = { request, _, size, offset, info in
    fillDirectory(request, size: size, offset: offset, info: info, plus: true)
  }

  ops.releasedir = { request, _, info in
    context(request).filesystem.releaseDirectory(info!.pointee.fh)
    fuse_reply_err(request, 0)
  }

  ops.open = { request, inode, info in
    let context = context(request)
    guard (info!.pointee.flags & O_ACCMODE) == O_RDONLY else {
      fuse_reply_err(request, EROFS)
      return
    }
    do throws(FilesystemError) {
      let immutable = try context.filesystem.attributes(of: inode).isImmutable
      info!.pointee.fh = try context.filesystem.openFile(inode)
      // Archived logs never change: pages read once stay valid across opens. A file that may still
      // change (a running job's log) is read afresh on every open.
      info!.pointee.keep_cache = immutable ? 1 : 0
      fuse_reply_open(request, info)
    } catch {
      reply(request, error, context)
    }
  }

  ops.read = { request, _, size, offset, info in
    let context = context(request)
    do throws(FilesystemError) {
      let pieces = try context.filesystem.readPieces(info!.pointee.fh, offset: UInt64(offset), count: size)
      var vectors: [iovec] = []
      withIOVectors(pieces[...], &vectors) { _ = fuse_reply_iov(request, $0.baseAddress, Int32($0.count)) }
    } catch {
      reply(request, error, context)
    }
  }

  ops.release = { request, _, info in
    context(request).filesystem.releaseFile(info!.pointee.fh)
    fuse_reply_err(request, 0)
  }

  ops.statfs = { request, _ in
    var stats = statvfs()
    stats.f_bsize = 1 << 17
    stats.f_frsize = 1 << 17
    stats.f_namemax = 255
    fuse_reply_statfs(request, &stats)
  }

  // Without `default_permissions` the kernel asks here for `access` and `faccessat` (and chdir);
  // every node is readable by all but a file whose object is archived and not restored, so that
  // `find -readable` and `test -r` pass it by. Writes are refused by the kernel (a read-only mount).
  ops.access = { request, inode, mask in
    let context = context(request)
    guard mask & R_OK != 0 else {
      fuse_reply_err(request, 0)
      return
    }
    do throws(FilesystemError) {
      try context.filesystem.checkReadable(inode)
      fuse_reply_err(request, 0)
    } catch  where error.kind == .archived {
      // Not a failure: the question had an answer. Open and read say why, at warning.
      context.logger.debug("\(error.message) (answered access with EACCES)")
      fuse_reply_err(request, EACCES)
    } catch {
      reply(request, error, context)
    }
  }

  ops.getxattr = { request, inode, namePointer, size in
    let context = context(request)
    guard let wanted = name(namePointer) else {
      fuse_reply_err(request, ENODATA)
      return
    }
    let value: [UInt8]
    if inode == LogFilesystem.rootInode && wanted == statisticsAttribute {
      value = Array(context.filesystem.statistics().json().utf8)
    } else if inode == LogFilesystem.rootInode, let fixed = context.rootAttributes[wanted] {
      value = fixed
    } else if wanted == LogFilesystem.versionsAttribute {
      do throws(FilesystemError) {
        // Not a file of a store that keeps versions: no such attribute.
        guard let list = try context.filesystem.versionList(of: inode) else {
          fuse_reply_err(request, ENODATA)
          return
        }
        value = Array(list.utf8)
      } catch {
        return reply(request, error, context)
      }
    } else if wanted.hasPrefix(LogFilesystem.attributePrefix) {
      do throws(FilesystemError) {
        guard let found = try context.filesystem.extendedAttributes(of: inode).first(where: { $0.name == wanted })
        else {
          fuse_reply_err(request, ENODATA)
          return
        }
        value = Array(found.value.utf8)
      } catch {
        return reply(request, error, context)
      }
    } else {
      fuse_reply_err(request, ENODATA)
      return
    }
    replyXattr(request, value, size: size)
  }

  // A file's facts are listed, so `getfattr -d` shows them (and `rsync -X` copies them: see
  // doc/SEMANTICS.md); the statistics attribute is not, so nothing copies it.
  ops.listxattr = { request, inode, size in
    let context = context(request)
    do throws(FilesystemError) {
      var names: [UInt8] = []
      for attribute in try context.filesystem.extendedAttributes(of: inode) {
        names += Array(attribute.name.utf8) + [0]
      }
      replyXattr(request, names, size: size)
    } catch {
      reply(request, error, context)
    }
  }

  ops.setattr = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.mknod = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.mkdir = { request, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.unlink = { request, _, _ in fuse_reply_err(request, EROFS) }
  ops.rmdir = { request, _, _ in fuse_reply_err(request, EROFS) }
  ops.symlink = { request, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.rename = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.link = { request, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.write = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.create = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.setxattr = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
  ops.removexattr = { request, _, _ in fuse_reply_err(request, EROFS) }
  return ops
}

/// Answers a getxattr or listxattr: the length when `size` is 0 (the caller asks how much room to
/// make), ERANGE when the value does not fit, else the value.
private func replyXattr(_ request: fuse_req_t?, _ value: [UInt8], size: Int) {
  if size == 0 {
    fuse_reply_xattr(request, value.count)
  } else if size < value.count {
    fuse_reply_err(request, ERANGE)
  } else {
    value.withUnsafeBytes { _ = fuse_reply_buf(request, $0.baseAddress, $0.count) }
  }
}

/// Fills one readdir (or readdirplus) reply from the snapshot taken at opendir.
private func fillDirectory(
  _ request: fuse_req_t?, size: Int, offset: off_t, info: UnsafeMutablePointer<fuse_file_info>?, plus: Bool
) {
  let context = context(request)
  let entries: ArraySlice<DirectoryEntry>
  do throws(FilesystemError) {
    entries = try context.filesystem.readDirectory(info!.pointee.fh, from: Int(offset))
  } catch {
    return reply(request, error, context)
  }
  let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
  defer { buffer.deallocate() }
  var used = 0
  // readdirplus hands the kernel each entry as a lookup does, but "." and "..", which it skips.
  var referenced: [UInt64] = []
  for (position, entry) in entries.enumerated() {
    // An entry's offset is where the next readdir starts: the position after it, counted from the
    // offset asked for (the slice's own indices need not be those offsets).
    let nextOffset = offset + off_t(position + 1)
    let added = entry.name.withCString { cName -> Int in
      if plus {
        var parameters = entryParameters(entry.attributes, context)
        // Node 0: the kernel takes the name only, and looks the entry up if it is used; its position
        // is its d_ino (see DirectoryEntry.handsInode).
        if !entry.handsInode { parameters.ino = 0 }
        if entry.numberIsPosition { parameters.attr.st_ino = UInt(nextOffset) }
        return fuse_add_direntry_plus(request, buffer + used, size - used, cName, &parameters, nextOffset)
      } else {
        var buffer2 = statBuffer(entry.attributes, context)
        if entry.numberIsPosition { buffer2.st_ino = UInt(nextOffset) }
        return fuse_add_direntry(request, buffer + used, size - used, cName, &buffer2, nextOffset)
      }
    }
    if added > size - used { break }
    used += added
    if plus && entry.handsInode && entry.name != "." && entry.name != ".."
      && context.filesystem.reference(entry.attributes.inode)
    {
      referenced.append(entry.attributes.inode)
    }
  }
  if fuse_reply_buf(request, buffer, used) != 0 {
    for inode in referenced { context.filesystem.forget(inode, count: 1) }
  }
}

/// The name of the extended attribute on the mount's root that names the buckets it reads, as JSON,
/// for `bklogfs restore` (not listed, like the statistics).
public let bucketsAttribute = "user.bklogfs.buckets"

/// Reads a mount's counters, as JSON, from the attribute on its root.
public func readStatistics(mountpoint: String) throws(FuseError) -> String {
  let value: [UInt8]?
  do throws(SystemCallError) {
    value = try FileSystem.extendedAttribute(mountpoint, statisticsAttribute)
  } catch {
    throw FuseError(description: "cannot read the counters of \(mountpoint): \(error.reason)")
  }
  guard let value else { throw FuseError(description: "\(mountpoint) is not the root of a bklogfs mount") }
  return String(decoding: value, as: UTF8.self)
}

/// Calls `body` with an iovec for each piece, each valid for the whole call.
private func withIOVectors(
  _ pieces: ArraySlice<ArraySlice<UInt8>>, _ vectors: inout [iovec], _ body: (UnsafeBufferPointer<iovec>) -> Void
) {
  guard let piece = pieces.first else {
    vectors.withUnsafeBufferPointer(body)
    return
  }
  piece.withUnsafeBytes { bytes in
    vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
    withIOVectors(pieces.dropFirst(), &vectors, body)
  }
}
