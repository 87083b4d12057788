// Package beneath does file work inside a directory held open by a
// descriptor, never by path string: every name is resolved from the
// directory's descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
// | RESOLVE_NO_MAGICLINKS), and creating, renaming and removing use the
// *at calls on that descriptor. A symlink or a ".." planted by whoever can
// write inside the directory therefore cannot lead the daemon, which runs
// as root, outside it.
//
// It is for the files the daemon creates on behalf of a container (its
// file target and rotated copies, its queue spool, its scoped control
// socket). It is not a sandbox: bind mounts inside the directory are
// followed, and whoever can replace the directory itself is trusted.
package beneath
