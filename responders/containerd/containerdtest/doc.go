// Package containerdtest runs containers directly through containerd, not
// through dockerd, for tests: it finds the daemon's socket, makes a private
// namespace, imports the busybox test image into it as an OCI archive and
// starts tasks. Everything it creates is removed when the test ends, the
// namespace last; nothing outside that namespace is touched.
//
// Helpers take a testing.TB and fail (in CI) or skip (locally) through
// internal/testutil's gate when containerd is missing. They are safe to
// call from parallel tests that use their own namespaces.
package containerdtest
