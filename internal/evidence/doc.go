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
// The responders that collect evidence (the Kubernetes responder's
// pod.evidence) describe what they collected in their own manifest type,
// which embeds the file list; Verify reads only that list.
//
// A Bundle is used by one goroutine at a time. Seal or Abandon ends it;
// every file it opens is closed before Write returns.
package evidence
