// The libfuse3 low-level API as Swift sees it. Imported by FuseAdapter only.
#ifndef BKLOGFS_CFUSE_SHIM_H
#define BKLOGFS_CFUSE_SHIM_H

// Must be defined before the header is included; a cSettings define does not reach the Swift importer.
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <errno.h>

// At FUSE_USE_VERSION 35, fuse_session_loop_mt is a macro choosing a versioned symbol: Swift cannot call it.
static inline int cfuse_session_loop_mt(struct fuse_session *se, int clone_fd, unsigned int max_idle_threads) {
  struct fuse_loop_config config;
  config.clone_fd = clone_fd;
  config.max_idle_threads = max_idle_threads;
  return fuse_session_loop_mt(se, &config);
}

// fuse_session_new is a macro at this version too (it passes the library's own struct size).
static inline struct fuse_session *cfuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *ops,
                                                    void *userdata) {
  return fuse_session_new(args, ops, sizeof(*ops), userdata);
}

#endif
