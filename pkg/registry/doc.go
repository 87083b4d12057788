// Package registry is the container tree: which containers are registered,
// how they nest, where their copies go, their queue limits and their rules.
//
// A container is described by a YAML file (one per container; see
// docs/containers.md). A set of files is validated as a whole: unknown
// parents, duplicate ids or names and cycles are errors naming FILE:LINE:COL.
// Store persists registrations under the daemon's state directory so that a
// restart keeps them.
//
// The registry decides nothing about records; package router reads it.
package registry
