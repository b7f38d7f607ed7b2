// Package evidence writes and verifies evidence bundles: a directory of
// files, each hashed (SHA-256) and counted against a size cap as it is
// written, sealed by a manifest.json that lists every file's hash and size.
// The manifest's own SHA-256 is what the journal records, so the journal
// vouches for the whole bundle (chain of custody).
//
// A bundle is built in <base>/<id>.partial and renamed <base>/<id> only
// once its manifest is on disk; one that failed or hit its cap is renamed
// <id>.incomplete, has no manifest, and holds an INCOMPLETE file saying
// why. Verify re-checks a sealed bundle.
//
// Every responder that collects evidence writes through it (docker's
// container.snapshot, containerd.snapshot, the Kubernetes responder's
// pod.evidence) and describes what it collected in its own manifest type,
// which embeds the file list; Verify reads only that list. Fail and
// Sealed.Result give them one failure path and one result shape.
//
// A Bundle is used by one goroutine at a time. Seal or Abandon ends it;
// every file it opens is closed before Write returns.
package evidence
